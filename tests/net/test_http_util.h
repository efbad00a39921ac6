/* What the HTTP server suites share: a server on 127.0.0.1 port 0 with a
 * router of test handlers, shell commands (curl, nghttp, h2load) run from a
 * task while the loop goes on serving, raw socket exchanges, and the TLS
 * certificates of test_tls_certs.sh. */
#ifndef TEST_HTTP_UTIL_H
#define TEST_HTTP_UTIL_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/http.h>
#include <weft/server.h>
#include <weft/stream.h>
#include <weft/tls.h>

#include "test.h"

/* Not every suite uses every helper. */
#pragma GCC diagnostic ignored "-Wunused-function"

extern char **environ;

#define RUN(fn, arg) T_EQ(t_run((fn), (arg)), 0)

static inline bool th_have(const char *prog) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
  return system(cmd) == 0;
}

#define TH_NEED(prog)                                                          \
  do {                                                                         \
    if (!th_have(prog)) {                                                      \
      fprintf(stderr, "  (%s is not installed: skipped)\n", prog);             \
      return;                                                                  \
    }                                                                          \
  } while (0)

/* Runs `sh -c cmd` with stdout and stderr into out (NUL-terminated, cut at
 * cap), waiting from the task so the loop keeps serving. Returns the exit
 * status, 124 after `timeout` seconds (the command is killed), or -1. */
static inline int th_cmd(char *out, size_t cap, double timeout, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
static inline int th_cmd(char *out, size_t cap, double timeout, const char *fmt,
                         ...) {
  /* Static: filled and handed to posix_spawn without a suspension. */
  static char cmd[1 << 17];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 2);
  char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  pid_t pid;
  int err = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(sv[1]);
  if (err != 0) {
    close(sv[0]);
    return -1;
  }
  weft_stream *s = NULL;
  if (weft_stream_from_fd(&s, sv[0], NULL) != 0) {
    close(sv[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  size_t len = 0;
  char sink[4096];
  weft_timeout scope;
  weft_timeout_enter(&scope, timeout);
  bool timed_out = false;
  for (;;) {
    char *dst = cap > len + 1 ? out + len : sink;
    size_t room = cap > len + 1 ? cap - len - 1 : sizeof sink;
    ssize_t n = weft_stream_read(s, dst, room);
    if (n == WEFT_ETIMEDOUT)
      timed_out = true;
    if (n <= 0)
      break;
    if (dst != sink)
      len += (size_t)n;
  }
  (void)weft_timeout_exit(&scope);
  if (cap > 0)
    out[len] = '\0';
  weft_stream_free(s);
  if (timed_out)
    kill(pid, SIGKILL);
  int st = 0;
  /* The command has closed its output: it is exiting. Poll so that a
   * daemonised grandchild cannot hold the test. */
  for (int i = 0; i < 5000; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      break;
    if (i == 4999) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
    (void)weft_sleep(0.001);
  }
  if (timed_out)
    return 124;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Connects to 127.0.0.1:port, sends req, and reads until the server closes
 * (or `timeout`, or cap bytes). Returns the bytes read or an error. */
static inline ssize_t th_raw(int port, const void *req, size_t n, char *resp,
                             size_t cap, double timeout) {
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", port);
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, &a, NULL);
  if (rc != 0)
    return rc;
  size_t len = 0;
  weft_timeout scope;
  weft_timeout_enter(&scope, timeout);
  rc = n > 0 ? weft_stream_write(s, req, n) : 0;
  while (rc == 0 && len + 1 < cap) {
    ssize_t k = weft_stream_read(s, resp + len, cap - 1 - len);
    if (k <= 0)
      break;
    len += (size_t)k;
  }
  (void)weft_timeout_exit(&scope);
  resp[len] = '\0';
  weft_stream_abort(s);
  return rc != 0 ? rc : (ssize_t)len;
}

/* Counts occurrences of needle in s. */
static inline int th_count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

/* ---- test handlers ---- */

static int h_hello(weft_http_request *r, void *arg) {
  (void)arg;
  return weft_http_respond_text(r, 200, "Hello, World!");
}

/* The body back (up to 64 MiB). */
static int h_echo(weft_http_request *r, void *arg) {
  (void)arg;
  weft_http_set_max_body(r, 64 << 20);
  const void *body;
  size_t len;
  int rc = weft_http_read_body(r, &body, &len);
  if (rc != 0)
    return rc;
  return weft_http_respond(r, 200, "application/octet-stream", body, len);
}

/* Reads the body streamed, answers its size and a checksum. */
static int h_count(weft_http_request *r, void *arg) {
  (void)arg;
  weft_http_set_max_body(r, (size_t)1 << 40);
  char buf[16384];
  uint64_t total = 0, sum = 0;
  for (;;) {
    ssize_t n = weft_http_read(r, buf, sizeof buf);
    if (n < 0)
      return (int)n;
    if (n == 0)
      break;
    for (ssize_t i = 0; i < n; i++)
      sum += (unsigned char)buf[i];
    total += (uint64_t)n;
  }
  char out[64];
  snprintf(out, sizeof out, "%llu %llu", (unsigned long long)total,
           (unsigned long long)sum);
  const char *t = weft_http_trailer(r, "x-trailer");
  if (t != NULL)
    snprintf(out + strlen(out), sizeof out - strlen(out), " %s", t);
  return weft_http_respond_text(r, 200, out);
}

/* n bytes ('a'..'z' repeating), streamed without a length. */
static int h_stream(weft_http_request *r, void *arg) {
  (void)arg;
  long n = atol(weft_http_param(r, "n"));
  int rc = weft_http_start(r, 200, "text/plain", -1);
  char buf[16384];
  long off = 0;
  while (rc == 0 && off < n) {
    size_t k = n - off < (long)sizeof buf ? (size_t)(n - off) : sizeof buf;
    for (size_t i = 0; i < k; i++)
      buf[i] = (char)('a' + (off + (long)i) % 26);
    rc = weft_http_write(r, buf, k);
    off += (long)k;
  }
  if (rc == 0)
    rc = weft_http_add_trailer(r, "X-Total", weft_http_param(r, "n"));
  return rc == 0 ? weft_http_end(r) : rc;
}

/* Sleeps ?ms (default 100) and answers "slept <ms>". */
static int h_sleep(weft_http_request *r, void *arg) {
  int *done = arg;
  const char *q = weft_http_query(r);
  int ms = strncmp(q, "ms=", 3) == 0 ? atoi(q + 3) : 100;
  int rc = weft_sleep(ms / 1000.0);
  if (rc != 0)
    return rc;
  char out[32];
  snprintf(out, sizeof out, "slept %d", ms);
  rc = weft_http_respond_text(r, 200, out);
  if (rc == 0 && done != NULL)
    (*done)++;
  return rc;
}

/* The value of request header X-Echo. */
static int h_header(weft_http_request *r, void *arg) {
  (void)arg;
  const char *v = weft_http_header(r, "x-echo");
  return weft_http_respond_text(r, 200, v ? v : "(none)");
}

static int h_file(weft_http_request *r, void *arg) {
  int rc = weft_http_send_file(r, 200, "application/octet-stream", arg);
  if (rc == WEFT_ENOENT)
    return weft_http_respond_text(r, 404, "no file\n");
  return rc;
}

static int h_user(weft_http_request *r, void *arg) {
  (void)arg;
  char out[256];
  snprintf(out, sizeof out, "user %s", weft_http_param(r, "id"));
  return weft_http_respond_text(r, 200, out);
}

/* The suites' application. */
typedef struct th_app {
  weft_http_router *router;
  int slept;
  char file[256];
} th_app;

static void th_app_init(th_app *a) {
  memset(a, 0, sizeof *a);
  T_OK(weft_http_router_new(&a->router));
  T_OK(weft_http_route(a->router, "GET", "/", h_hello, NULL));
  T_OK(weft_http_route(a->router, "POST", "/echo", h_echo, NULL));
  T_OK(weft_http_route(a->router, "PUT", "/echo", h_echo, NULL));
  T_OK(weft_http_route(a->router, "POST", "/count", h_count, NULL));
  T_OK(weft_http_route(a->router, "PUT", "/count", h_count, NULL));
  T_OK(weft_http_route(a->router, "GET", "/stream/{n}", h_stream, NULL));
  T_OK(weft_http_route(a->router, "GET", "/sleep", h_sleep, &a->slept));
  T_OK(weft_http_route(a->router, "GET", "/header", h_header, NULL));
  T_OK(weft_http_route(a->router, "GET", "/file", h_file, a->file));
  T_OK(weft_http_route(a->router, "GET", "/users/{id}", h_user, NULL));
}

static weft_http_server *th_serve(th_app *a, const weft_http_server_opts *o,
                                  int *port) {
  weft_addr addr;
  (void)weft_addr_ip(&addr, "127.0.0.1", 0);
  weft_http_server *srv = NULL;
  T_OK(weft_http_serve(&srv, &addr, weft_http_router_handler, a->router, o));
  if (srv != NULL) {
    weft_addr real;
    T_OK(weft_http_server_addr(srv, &real));
    *port = weft_addr_port(&real);
  }
  return srv;
}

static void th_stop(weft_http_server *srv, th_app *a) {
  T_GE(weft_http_server_shutdown(srv, 2), 0);
  weft_http_server_free(srv);
  weft_http_router_free(a->router);
}

/* Makes the test certificates in a fresh directory; returns it or NULL. */
static inline const char *th_certs(void) {
  static char dir[64];
  if (dir[0] != '\0')
    return dir;
  if (!th_have("openssl"))
    return NULL;
  snprintf(dir, sizeof dir, "/tmp/weft-http-certs-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return NULL;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "sh %s %s >/dev/null 2>&1", TLS_CERTS_SH, dir);
  if (system(cmd) != 0)
    return NULL;
  return dir;
}

static inline void th_certs_cleanup(void) {
  const char *d = th_certs();
  if (d != NULL) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    (void)system(cmd);
  }
}

#endif
