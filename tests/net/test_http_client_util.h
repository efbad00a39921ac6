/* What the HTTP client suites share: the pool's invariants, fake servers
 * that misbehave on purpose (close, reset, cut a body short, never answer),
 * and real peers (nginx, h2o) started in a temporary directory on a free
 * loopback port and stopped at the end. The server suites' helpers
 * (test_http_util.h: weft's own server and its test handlers, the
 * certificates) come along. */
#ifndef TEST_HTTP_CLIENT_UTIL_H
#define TEST_HTTP_CLIENT_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <weft/http_client.h>

#include "test_http_util.h"

/* The pool's counts once nothing is in flight: every open connection idle
 * (or an HTTP/2 one with no stream), nobody waiting. */
#define HC_QUIET(s)                                                            \
  do {                                                                         \
    weft_http_session_stats st_;                                               \
    weft_http_session_stats_get((s), &st_);                                    \
    T_EQ(st_.busy, 0);                                                         \
    T_EQ(st_.waiting, 0);                                                      \
    T_EQ(st_.streams, 0);                                                      \
    T_EQ(st_.open, st_.idle);                                                  \
  } while (0)

static weft_http_session_stats hc_stats(weft_http_session *s) {
  weft_http_session_stats st;
  weft_http_session_stats_get(s, &st);
  return st;
}

/* GET url, the whole body into out (cut at cap). Returns the status or an
 * error. */
static int hc_get(weft_http_session *s, const char *url, char *out,
                  size_t cap) {
  weft_http_response *r;
  int rc = weft_http_get(s, url, &r);
  if (rc != 0)
    return rc;
  const void *body;
  size_t len;
  rc = weft_http_response_body(r, &body, &len);
  if (rc == 0 && out != NULL && cap > 0) {
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(out, body, n);
    out[n] = '\0';
  }
  int status = weft_http_response_status(r);
  weft_http_response_free(r);
  return rc != 0 ? rc : status;
}

/* ---- fake servers (weft_serve with a handler per behaviour) ---- */

typedef struct hc_fake {
  weft_server *srv;
  int port;
  int accepted;
  int requests;
  int (*fn)(struct hc_fake *f, weft_stream *s);
} hc_fake;

static int hc_fake_conn(weft_stream *s, void *arg) {
  hc_fake *f = arg;
  f->accepted++;
  return f->fn(f, s);
}

static void hc_fake_start(hc_fake *f, int (*fn)(hc_fake *, weft_stream *)) {
  memset(f, 0, sizeof *f);
  f->fn = fn;
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  T_OK(weft_serve(&f->srv, &a, hc_fake_conn, f, NULL));
  weft_addr real;
  T_OK(weft_server_addr(f->srv, &real));
  f->port = weft_addr_port(&real);
}

static void hc_fake_stop(hc_fake *f) {
  (void)weft_server_shutdown(f->srv, 0.1);
  weft_server_free(f->srv);
}

/* Reads one request head (up to the blank line). Returns 0 or an error. */
static int hc_fake_head(weft_stream *s) {
  char buf[8192];
  ssize_t n = weft_stream_read_until(s, "\r\n\r\n", 4, buf, sizeof buf);
  return n < 0 ? (int)n : 0;
}

static int hc_fake_send(weft_stream *s, const char *text) {
  return weft_stream_write(s, text, strlen(text));
}

/* ---- real peers ---- */

/* A free port on 127.0.0.1 (bound and released: a peer takes it next). */
static int hc_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &l) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

typedef struct hc_peer {
  pid_t pid;
  char dir[64];
  int port, tls_port, h2c_port;
} hc_peer;

/* Waits (from a task) until 127.0.0.1:port accepts. */
static bool hc_wait_port(int port, double secs) {
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", port);
  for (double t = 0; t < secs; t += 0.02) {
    weft_stream *s;
    if (weft_stream_connect_addr(&s, &a, NULL) == 0) {
      weft_stream_free(s);
      return true;
    }
    (void)weft_sleep(0.02);
  }
  return false;
}

static bool hc_spawn(hc_peer *p, char *const argv[]) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  char log[128];
  snprintf(log, sizeof log, "%s/peer.log", p->dir);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int err = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  return err == 0;
}

static void hc_peer_stop(hc_peer *p) {
  if (p->pid > 0) {
    kill(p->pid, SIGTERM);
    int st;
    for (int i = 0; i < 300; i++) {
      if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->pid = 0;
        break;
      }
      (void)weft_sleep(0.01);
    }
    if (p->pid > 0) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &st, 0);
      p->pid = 0;
    }
  }
  if (p->dir[0] != '\0') {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", p->dir);
    (void)system(cmd);
  }
}

static void hc_write_file(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f != NULL) {
    fputs(text, f);
    fclose(f);
  }
}

/* A body of n bytes of text that compresses well, for gzip. */
static void hc_write_text(const char *dir, const char *name, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  for (size_t i = 0; f != NULL && i < n; i++)
    fputc("weft http client "[i % 17], f);
  if (f != NULL)
    fclose(f);
}

/*
 * nginx in a temporary directory: HTTP/1.1 on p->port, h2 over TLS on
 * p->tls_port (certificate `cert` from the test CA directory), h2c (prior
 * knowledge) on p->h2c_port. Locations:
 *   /conn          "<connection serial>\n" (the same serial = one connection)
 *   /big.txt       64 KiB of text (gzip'd on request: chunked)
 *   /redir         301 to /conn; /loop: 302 to itself
 *   /slow          proxied to a port that never answers (timeouts)
 * Returns false (and skips) when nginx is missing or does not start.
 */
static bool hc_nginx_start(hc_peer *p, const char *certs, const char *cert) {
  memset(p, 0, sizeof *p);
  if (access("/usr/sbin/nginx", X_OK) != 0) {
    fprintf(stderr, "  (nginx is not installed: skipped)\n");
    return false;
  }
  snprintf(p->dir, sizeof p->dir, "/tmp/weft-nginx-XXXXXX");
  if (mkdtemp(p->dir) == NULL)
    return false;
  p->port = hc_free_port();
  p->tls_port = hc_free_port();
  p->h2c_port = hc_free_port();
  hc_write_text(p->dir, "big.txt", 65536);
  char conf[4096];
  snprintf(conf, sizeof conf,
           "worker_processes 1;\n"
           "pid %s/nginx.pid;\n"
           "error_log %s/error.log warn;\n"
           "events { worker_connections 4096; }\n"
           "http {\n"
           "  access_log off;\n"
           "  client_body_temp_path %s/tmp;\n"
           "  proxy_temp_path %s/tmp; fastcgi_temp_path %s/tmp;\n"
           "  uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;\n"
           "  keepalive_requests 100000;\n"
           "  http2_max_concurrent_streams 128;\n"
           "  gzip on; gzip_types text/plain; gzip_min_length 0;\n"
           "  default_type text/plain;\n"
           "  server {\n"
           "    listen 127.0.0.1:%d;\n"
           "    listen 127.0.0.1:%d ssl http2;\n"
           "    ssl_certificate %s/%s.pem; ssl_certificate_key %s/%s.key;\n"
           "    root %s;\n"
           "    location = /conn { return 200 \"$connection\\n\"; }\n"
           "    location = /redir { return 301 /conn; }\n"
           "    location = /loop { return 302 /loop; }\n"
           "    location = /short {\n"
           "      keepalive_timeout 300ms; return 200 \"short\\n\";\n"
           "    }\n"
           "  }\n"
           "  server {\n"
           "    listen 127.0.0.1:%d http2;\n"
           "    root %s;\n"
           "    location = /conn { return 200 \"$connection\\n\"; }\n"
           "  }\n"
           "}\n",
           p->dir, p->dir, p->dir, p->dir, p->dir, p->dir, p->dir, p->port,
           p->tls_port, certs, cert, certs, cert, p->dir, p->h2c_port, p->dir);
  hc_write_file(p->dir, "nginx.conf", conf);
  char cpath[128], prefix[80];
  snprintf(cpath, sizeof cpath, "%s/nginx.conf", p->dir);
  snprintf(prefix, sizeof prefix, "%s/", p->dir);
  char *argv[] = {"/usr/sbin/nginx",
                  "-p",
                  prefix,
                  "-c",
                  cpath,
                  "-g",
                  "daemon off; master_process off;",
                  NULL};
  if (!hc_spawn(p, argv) || !hc_wait_port(p->port, 5) ||
      !hc_wait_port(p->tls_port, 5) || !hc_wait_port(p->h2c_port, 5)) {
    fprintf(stderr, "  (nginx did not start: see %s)\n", p->dir);
    hc_peer_stop(p);
    T_TRUE(false);
    return false;
  }
  return true;
}

/* h2o in a temporary directory: h2 over TLS on p->tls_port, HTTP/1.1 and
 * h2c (prior knowledge) on p->port, serving files: /big.txt (64 KiB) and
 * /index.txt ("hello from h2o\n"). */
static bool hc_h2o_start(hc_peer *p, const char *certs) {
  memset(p, 0, sizeof *p);
  if (access("/usr/bin/h2o", X_OK) != 0) {
    fprintf(stderr, "  (h2o is not installed: skipped)\n");
    return false;
  }
  snprintf(p->dir, sizeof p->dir, "/tmp/weft-h2o-XXXXXX");
  if (mkdtemp(p->dir) == NULL)
    return false;
  p->port = hc_free_port();
  p->tls_port = hc_free_port();
  hc_write_text(p->dir, "big.txt", 65536);
  hc_write_file(p->dir, "index.txt", "hello from h2o\n");
  char conf[2048];
  /* As root, h2o would switch to "nobody", who cannot write here. */
  snprintf(conf, sizeof conf,
           "%s"
           "pid-file: %s/h2o.pid\n"
           "error-log: %s/error.log\n"
           "http2-max-concurrent-requests-per-connection: 100\n"
           "listen:\n"
           "  host: 127.0.0.1\n"
           "  port: %d\n"
           "listen:\n"
           "  host: 127.0.0.1\n"
           "  port: %d\n"
           "  ssl:\n"
           "    certificate-file: %s/valid.pem\n"
           "    key-file: %s/valid.key\n"
           "hosts:\n"
           "  default:\n"
           "    paths:\n"
           "      /:\n"
           "        file.dir: %s\n",
           geteuid() == 0 ? "user: root\n" : "", p->dir, p->dir, p->port,
           p->tls_port, certs, certs, p->dir);
  hc_write_file(p->dir, "h2o.conf", conf);
  char cpath[128];
  snprintf(cpath, sizeof cpath, "%s/h2o.conf", p->dir);
  char *argv[] = {"/usr/bin/h2o", "-c", cpath, NULL};
  if (!hc_spawn(p, argv) || !hc_wait_port(p->port, 5) ||
      !hc_wait_port(p->tls_port, 5)) {
    fprintf(stderr, "  (h2o did not start: see %s)\n", p->dir);
    hc_peer_stop(p);
    T_TRUE(false);
    return false;
  }
  return true;
}

#endif
