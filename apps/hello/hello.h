/* weft-hello's flags and its tour, kept out of main.c so that main.c reads
 * like the aiohttp example. Header-only, for this app alone.
 *
 * The tour (weft-hello --tour) starts the program itself on a free port in
 * a child process, fetches / over HTTP/1.1 and over h2c (prior knowledge),
 * with curl when it is installed and with a raw socket otherwise, sends a
 * burst of keep-alive requests on one connection, then stops the child
 * with SIGTERM and checks that it shut down cleanly; then does the same
 * with --workers 2 and checks that both loops served.
 */
#ifndef WEFT_HELLO_H
#define WEFT_HELLO_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/http.h>

#include "app.h"

static const char *const hello_prog = "weft-hello";

static void hello_usage(void) {
  printf("usage: %s [--host H] [--port P] [--tls-cert F --tls-key F]\n"
         "                  [--workers N] [--tour]\n"
         "  Serves GET / with \"Hello, World!\" over HTTP/1.1 and HTTP/2\n"
         "  (h2 by ALPN with TLS, h2c otherwise) until SIGINT or SIGTERM.\n"
         "  --host H       address to listen on (default 127.0.0.1)\n"
         "  --port P       port (default 0: a free one, printed)\n"
         "  --tls-cert F   serve https with this PEM certificate chain ...\n"
         "  --tls-key F    ... and this private key\n"
         "  --workers N    N loops on N threads sharing the port "
         "(SO_REUSEPORT)\n"
         "  --tour         run itself and fetch from it (weft-tour)\n"
         "Prints \"listening on http://HOST:PORT\" (https:// with TLS) "
         "first.\n",
         hello_prog);
}

static double hello_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- raw clients (no curl needed) ---- */

static int hello_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* n keep-alive GETs on one connection; returns how many got the body. */
static int hello_h1_burst(int port, int n) {
  int fd = hello_connect(port);
  if (fd < 0)
    return 0;
  static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  char buf[8192] = "";
  int ok = 0;
  size_t len = 0;
  for (int i = 0; i < n; i++) {
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
      break;
    char *end;
    while ((end = strstr(buf, "Hello, World!")) == NULL || len == 0) {
      ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
      if (k <= 0)
        goto out;
      len += (size_t)k;
      buf[len] = '\0';
    }
    size_t used = (size_t)(end + 13 - buf);
    memmove(buf, buf + used, len - used);
    len -= used;
    buf[len] = '\0';
    ok++;
  }
out:
  close(fd);
  return ok;
}

/* GET / over h2c with prior knowledge: the connection preface, SETTINGS,
 * one HEADERS frame (HPACK: indexed :method GET, :path /, :scheme http and
 * a literal :authority), then frames until stream 1 ends. Returns 1 when
 * the DATA said Hello, World!. */
static int hello_h2c_raw(int port) {
  int fd = hello_connect(port);
  if (fd < 0)
    return 0;
  unsigned char out[128];
  size_t n = 0;
  memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  n = 24;
  unsigned char settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
  memcpy(out + n, settings, 9);
  n += 9;
  static const unsigned char block[] = {0x82, 0x84, 0x86, 0x41, 9,   '1', '2',
                                        '7',  '.',  '0',  '.',  '0', '.', '1'};
  unsigned char hd[9] = {0, 0, sizeof block, 1, 0x05, 0, 0, 0, 1};
  memcpy(out + n, hd, 9);
  n += 9;
  memcpy(out + n, block, sizeof block);
  n += sizeof block;
  int got = 0;
  if (write(fd, out, n) != (ssize_t)n)
    goto done;
  unsigned char buf[16384];
  size_t len = 0;
  for (;;) {
    ssize_t k = read(fd, buf + len, sizeof buf - len);
    if (k <= 0)
      break;
    len += (size_t)k;
    size_t off = 0;
    while (len - off >= 9) {
      size_t fl =
          (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
      if (len - off < 9 + fl)
        break;
      unsigned type = buf[off + 3], flags = buf[off + 4];
      unsigned sid = ((unsigned)buf[off + 5] & 0x7f) << 24 |
                     (unsigned)buf[off + 6] << 16 |
                     (unsigned)buf[off + 7] << 8 | buf[off + 8];
      if (type == 0 && sid == 1 && fl == 13 &&
          memcmp(buf + off + 9, "Hello, World!", 13) == 0)
        got = 1;
      if (sid == 1 && (flags & 1))
        goto done;
      off += 9 + fl;
    }
    memmove(buf, buf + off, len - off);
    len -= off;
  }
done:
  close(fd);
  return got;
}

/* Runs curl with the protocol flag; returns 1 when it printed the body. */
static int hello_curl(int port, const char *flag, char *version, size_t vcap) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "curl -s -m 5 %s -w '\\n%%{http_version}' http://127.0.0.1:%d/ "
           "2>/dev/null",
           flag, port);
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    return 0;
  char out[256] = "";
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  pclose(p);
  char *nl = strchr(out, '\n');
  if (nl != NULL)
    snprintf(version, vcap, "%s", nl + 1);
  return strncmp(out, "Hello, World!\n", 14) == 0;
}

/* Starts the program itself on a free port (with `--workers N` when
 * `workers` is not NULL) and reads the line saying where it listens.
 * Returns the port, or 0 after killing a child that did not say it; *pid is
 * the child, *out_fd the read end of its standard output (kept open while
 * it runs). */
static int hello_spawn(const char *self, const char *workers, pid_t *pid,
                       int *out_fd, char *line, size_t cap, double *started) {
  int fds[2];
  line[0] = '\0';
  if (pipe(fds) != 0)
    return 0;
  *pid = fork();
  if (*pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    if (workers != NULL)
      execl("/proc/self/exe", self, "--port", "0", "--workers", workers,
            (char *)NULL);
    else
      execl("/proc/self/exe", self, "--port", "0", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  *out_fd = fds[0];
  size_t n = 0;
  double t0 = hello_now();
  struct pollfd pfd = {fds[0], POLLIN, 0};
  while (n < cap - 1 && strchr(line, '\n') == NULL && poll(&pfd, 1, 5000) > 0) {
    ssize_t k = read(fds[0], line + n, cap - 1 - n);
    if (k <= 0)
      break;
    n += (size_t)k;
    line[n] = '\0';
  }
  *started = hello_now() - t0;
  int port = 0;
  char *colon = strrchr(line, ':');
  if (strncmp(line, "listening on http://127.0.0.1:", 30) != 0 ||
      colon == NULL || (port = atoi(colon + 1)) <= 0) {
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    close(fds[0]);
    port = 0;
  }
  char *nl = strchr(line, '\n');
  if (nl != NULL)
    *nl = '\0';
  return port;
}

/* Stops the child with SIGTERM; returns its exit status (-1: killed). */
static int hello_stop(pid_t pid, int out_fd, double *took) {
  kill(pid, SIGTERM);
  int status = 0;
  double s0 = hello_now();
  waitpid(pid, &status, 0);
  *took = hello_now() - s0;
  close(out_fd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Sockets listening on 127.0.0.1:port (/proc/net/tcp, state 0A). */
static int hello_listeners(int port) {
  FILE *f = fopen("/proc/net/tcp", "r");
  if (f == NULL)
    return -1;
  char want[32], row[512];
  snprintf(want, sizeof want, "0100007F:%04X", port);
  int n = 0;
  while (fgets(row, sizeof row, f) != NULL) {
    char local[64], remote[64], st[8];
    if (sscanf(row, "%*d: %63s %63s %7s", local, remote, st) == 3 &&
        strcmp(local, want) == 0 && strcmp(st, "0A") == 0)
      n++;
  }
  fclose(f);
  return n;
}

/* CPU time each thread of pid has run, in ns (/proc/PID/task/TID/schedstat). */
typedef struct hello_thread {
  int tid;
  unsigned long long ns;
} hello_thread;

static int hello_threads(pid_t pid, hello_thread *t, int max) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *e;
  while (n < max && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char p[384];
    snprintf(p, sizeof p, "%s/%s/schedstat", dir, e->d_name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
      continue;
    if (fscanf(f, "%llu", &t[n].ns) == 1)
      t[n++].tid = atoi(e->d_name);
    fclose(f);
  }
  closedir(d);
  return n;
}

/* With --workers 2: two sockets listen on the port, connections spread over
 * them (SO_REUSEPORT), and each worker's loop serves some: its thread runs
 * for a while during the burst, where an idle one does not. */
static bool hello_workers_tour(const char *self) {
  static const char what[] =
      "--workers 2: two loops share the port, and both serve";
  pid_t pid;
  int out_fd;
  char line[256];
  double started;
  int port = hello_spawn(self, "2", &pid, &out_fd, line, sizeof line, &started);
  if (port == 0)
    return app_row(what, false, "no \"listening on\" line: \"%s\"", line);
  enum { CONNS = 64, MAXT = 16 };
  hello_thread before[MAXT], after[MAXT];
  int nb = hello_threads(pid, before, MAXT);
  int got = 0;
  for (int i = 0; i < CONNS; i++)
    got += hello_h1_burst(port, 20) == 20;
  int na = hello_threads(pid, after, MAXT), served = 0;
  for (int i = 0; i < na; i++) {
    unsigned long long was = 0;
    for (int j = 0; j < nb; j++)
      if (before[j].tid == after[i].tid)
        was = before[j].ns;
    served += after[i].ns - was > 300000; /* 0.3 ms of CPU: it served */
  }
  int listening = hello_listeners(port);
  double took;
  bool stopped = hello_stop(pid, out_fd, &took) == 0;
  return app_row(what, listening == 2 && got == CONNS && served >= 2 && stopped,
                 "%d listening sockets, %d/%d connections answered, %d "
                 "threads served, SIGTERM: %s",
                 listening, got, CONNS, served, stopped ? "exit 0" : "failed");
}

static int hello_tour(const char *self) {
  pid_t pid;
  int out_fd;
  char line[256];
  double started;
  int port =
      hello_spawn(self, NULL, &pid, &out_fd, line, sizeof line, &started);
  if (!app_row("the server prints where it listens (port 0: a free one)",
               port > 0, "\"%s\" after %.0f ms", line, started * 1000))
    return 1;
  bool ok = true;
  bool have_curl = system("curl --version >/dev/null 2>&1") == 0;
  char v1[16] = "?", v2[16] = "?";
  int h1, h2;
  if (have_curl) {
    h1 = hello_curl(port, "--http1.1", v1, sizeof v1);
    h2 = hello_curl(port, "--http2-prior-knowledge", v2, sizeof v2);
  } else {
    h1 = hello_h1_burst(port, 1);
    h2 = hello_h2c_raw(port);
    snprintf(v1, sizeof v1, "1.1");
    snprintf(v2, sizeof v2, "2");
  }
  ok &= app_row("GET / answers \"Hello, World!\" over HTTP/1.1", h1 == 1,
                "%s, HTTP/%s", h1 ? "Hello, World!" : "no answer", v1);
  ok &= app_row("... and over HTTP/2 (h2c, prior knowledge)", h2 == 1,
                "%s, HTTP/%s (%s)", h2 ? "Hello, World!" : "no answer", v2,
                have_curl ? "curl" : "raw socket");
  if (have_curl) {
    char v3[16] = "?";
    int up = hello_curl(port, "--http2", v3, sizeof v3);
    ok &= app_row("... and over HTTP/2 by Upgrade: h2c", up == 1, "%s, HTTP/%s",
                  up ? "Hello, World!" : "no answer", v3);
  }
  enum { N = 2000 };
  double b0 = hello_now();
  int got = hello_h1_burst(port, N);
  double took = hello_now() - b0;
  ok &= app_row("keep-alive: many requests on one connection", got == N,
                "%d/%d answered, %.0f requests/s (one at a time)", got, N,
                got / took);
  int st = hello_stop(pid, out_fd, &took);
  ok &= app_row("SIGTERM: a graceful shutdown", st == 0,
                "exit status %d after %.0f ms", st, took * 1000);
  ok &= hello_workers_tour(self);
  return ok ? 0 : 1;
}

/* Reads the flags into run options (exits for --help, --tour and bad
 * flags). The strings stay argv's. */
static weft_http_run_opts hello_flags(int argc, char **argv,
                                      weft_http_router *app) {
  weft_http_run_opts o = {.size = sizeof o};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      hello_usage();
      exit(0);
    } else if (strcmp(a, "--tour") == 0) {
      weft_http_router_free(app);
      exit(hello_tour(argv[0]));
    } else if (strcmp(a, "--port") == 0) {
      o.port = (int)app_num(argc, argv, &i, 0, 65535);
    } else if (strcmp(a, "--workers") == 0) {
      o.workers = (int)app_num(argc, argv, &i, 0, 1024);
    } else if (v != NULL && strcmp(a, "--host") == 0) {
      o.host = argv[++i];
    } else if (v != NULL && strcmp(a, "--tls-cert") == 0) {
      o.tls_cert = argv[++i];
    } else if (v != NULL && strcmp(a, "--tls-key") == 0) {
      o.tls_key = argv[++i];
    } else {
      app_bad_arg(hello_prog, a);
    }
  }
  if ((o.tls_cert == NULL) != (o.tls_key == NULL)) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", hello_prog);
    exit(2);
  }
  return o;
}

#endif
