/* http-server-h1: the HTTP server over HTTP/1.1 against curl and raw
 * sockets: keep-alive, pipelining with responses in order, chunked bodies
 * both ways, 100-continue, HEAD, Date and Content-Length, Connection:
 * close, HTTP/1.0, large streamed bodies both ways, files, TLS, the access
 * log, /metrics, no task held by idle connections, graceful shutdown with
 * requests in flight. Every server binds 127.0.0.1 port 0; every command
 * runs under a deadline; every test leaves its loop clean.
 */
#include "test_http_util.h"

static int m_curl_basics(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  char out[8192];
  T_EQ(th_cmd(out, sizeof out, 10, "curl -s --http1.1 -i http://127.0.0.1:%d/",
              port),
       0);
  T_TRUE(strstr(out, "HTTP/1.1 200 OK\r\n") == out);
  T_TRUE(strstr(out, "\r\nDate: ") != NULL);
  T_TRUE(strstr(out, "\r\nContent-Length: 13\r\n") != NULL);
  T_TRUE(strstr(out, "\r\n\r\nHello, World!") != NULL);
  /* HEAD: the same head, no body. */
  T_EQ(th_cmd(out, sizeof out, 10, "curl -s --http1.1 -I http://127.0.0.1:%d/",
              port),
       0);
  T_TRUE(strstr(out, "Content-Length: 13") != NULL);
  T_TRUE(strstr(out, "Hello") == NULL);
  /* 404 and 405 with Allow. */
  T_EQ(th_cmd(out, sizeof out, 10,
              "curl -s -o /dev/null -w '%%{http_code}' "
              "http://127.0.0.1:%d/nowhere",
              port),
       0);
  T_STREQ(out, "404");
  T_EQ(th_cmd(out, sizeof out, 10, "curl -s -i -X DELETE http://127.0.0.1:%d/",
              port),
       0);
  T_TRUE(strstr(out, "HTTP/1.1 405") == out);
  T_TRUE(strstr(out, "Allow: GET, HEAD\r\n") != NULL);
  /* A path parameter, a header read back. */
  T_EQ(
      th_cmd(out, sizeof out, 10, "curl -s http://127.0.0.1:%d/users/42", port),
      0);
  T_STREQ(out, "user 42");
  T_EQ(th_cmd(out, sizeof out, 10,
              "curl -s -H 'X-Echo: some value' http://127.0.0.1:%d/header",
              port),
       0);
  T_STREQ(out, "some value");
  /* Several requests on one connection (curl reuses it). */
  T_EQ(th_cmd(out, sizeof out, 10,
              "curl -s -v http://127.0.0.1:%d/ http://127.0.0.1:%d/ "
              "http://127.0.0.1:%d/ 2>&1",
              port, port, port),
       0);
  T_EQ(th_count(out, "Hello, World!"), 3);
  T_TRUE(strstr(out, "Re-using existing connection") != NULL);
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_GE(st.requests, 9);
  th_stop(srv, &a);
  return 0;
}
static void test_curl_basics(void) {
  TH_NEED("curl");
  RUN(m_curl_basics, NULL);
}

/* 16 requests in one write; the first is slow, yet the answers come in
 * order. */
static int m_pipelining(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  char req[4096] = "";
  for (int i = 0; i < 16; i++) {
    int ms = i == 0 ? 100 : (i % 3) * 5;
    snprintf(req + strlen(req), sizeof req - strlen(req),
             "GET /sleep?ms=%d HTTP/1.1\r\nHost: x\r\n%s\r\n", ms,
             i == 15 ? "Connection: close\r\n" : "");
  }
  static char resp[65536];
  ssize_t n = th_raw(port, req, strlen(req), resp, sizeof resp, 10);
  T_GT(n, 0);
  T_EQ(th_count(resp, "HTTP/1.1 200 OK"), 16);
  /* In order: the sleeps as asked. */
  const char *p = resp;
  for (int i = 0; i < 16; i++) {
    int ms = i == 0 ? 100 : (i % 3) * 5;
    char want[32];
    snprintf(want, sizeof want, "slept %d", ms);
    const char *q = strstr(p, want);
    T_TRUE(q != NULL);
    if (q == NULL)
      break;
    p = q + strlen(want);
  }
  T_TRUE(strstr(resp, "Connection: close") != NULL);
  th_stop(srv, &a);
  return 0;
}
static void test_pipelining(void) { RUN(m_pipelining, NULL); }

/* Chunked uploads (raw, with a trailer, and by curl), chunked downloads,
 * 100-continue. */
static int m_chunked(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  static const char up[] =
      "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\n"
      "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: yes\r\n\r\n";
  char resp[4096];
  T_GT(th_raw(port, up, sizeof up - 1, resp, sizeof resp, 10), 0);
  T_TRUE(strstr(resp, "\r\n\r\n19 ") != NULL);
  T_TRUE(strstr(resp, " yes") != NULL);
  /* Expect: 100-continue, raw: the interim answer comes before the body is
   * sent. */
  weft_addr ad;
  (void)weft_addr_ip(&ad, "127.0.0.1", port);
  weft_stream *s;
  T_OK(weft_stream_connect_addr(&s, &ad, NULL));
  static const char ask[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
                            "5\r\nExpect: 100-continue\r\n\r\n";
  T_OK(weft_stream_write(s, ask, sizeof ask - 1));
  char line[256];
  T_GT(weft_stream_readline(s, line, sizeof line), 0);
  T_STREQ(line, "HTTP/1.1 100 Continue\r\n");
  T_GT(weft_stream_readline(s, line, sizeof line), 0);
  T_OK(weft_stream_write(s, "hello", 5));
  T_GT(weft_stream_readline(s, line, sizeof line), 0);
  T_STREQ(line, "HTTP/1.1 200 OK\r\n");
  weft_stream_free(s);
  if (th_have("curl")) {
    char out[4096];
    /* curl sends a chunked upload from stdin. */
    T_EQ(th_cmd(out, sizeof out, 30,
                "head -c 3000000 /dev/zero | curl -s -T - "
                "-H 'Transfer-Encoding: chunked' http://127.0.0.1:%d/count",
                port),
         0);
    T_STREQ(out, "3000000 0");
    /* A 10 MB chunked download, with its trailer. */
    T_EQ(th_cmd(out, sizeof out, 30,
                "curl -s --raw -o /tmp/weft-h1-dl.$$ -w '%%{size_download}' "
                "http://127.0.0.1:%d/stream/10000000 && tail -c 40 "
                "/tmp/weft-h1-dl.$$ | tr -d '\\r' | grep -c 'X-Total: "
                "10000000'; rm -f /tmp/weft-h1-dl.$$",
                port),
         0);
    T_TRUE(strstr(out, "\n1") != NULL || strstr(out, "1\n") != NULL);
    /* 100-continue from curl (it asks for large bodies). */
    T_EQ(th_cmd(out, sizeof out, 30,
                "head -c 2000000 /dev/zero | curl -s -v --data-binary @- "
                "http://127.0.0.1:%d/echo -o /dev/null -w '%%{size_download}' "
                "2>&1 | grep -c '100 Continue'",
                port),
         0);
    T_STREQ(out, "1\n");
  }
  th_stop(srv, &a);
  return 0;
}
static void test_chunked(void) { RUN(m_chunked, NULL); }

/* Large bodies both ways through one connection, with backpressure: the
 * upload is counted as it is read, the download streamed. */
static int m_large(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  char out[4096];
  T_EQ(th_cmd(out, sizeof out, 60,
              "head -c 100000000 /dev/zero | curl -s --data-binary @- "
              "http://127.0.0.1:%d/count",
              port),
       0);
  T_STREQ(out, "100000000 0");
  T_EQ(th_cmd(out, sizeof out, 60,
              "curl -s -o /dev/null -w '%%{size_download}' "
              "http://127.0.0.1:%d/stream/100000000",
              port),
       0);
  T_STREQ(out, "100000000");
  th_stop(srv, &a);
  return 0;
}
static void test_large(void) {
  TH_NEED("curl");
  RUN(m_large, NULL);
}

/* Connection: close, HTTP/1.0, max_requests. */
static int m_close(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server_opts o = {.size = sizeof o, .max_requests = 3};
  weft_http_server *srv = th_serve(&a, &o, &port);
  char resp[8192];
  static const char c1[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "\r\n";
  T_GT(th_raw(port, c1, sizeof c1 - 1, resp, sizeof resp, 5), 0);
  T_TRUE(strstr(resp, "Connection: close\r\n") != NULL);
  static const char c10[] = "GET / HTTP/1.0\r\n\r\n";
  T_GT(th_raw(port, c10, sizeof c10 - 1, resp, sizeof resp, 5), 0);
  T_TRUE(strstr(resp, "HTTP/1.1 200 OK") == resp);
  T_TRUE(strstr(resp, "Hello, World!") != NULL);
  static const char k10[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                            "GET / HTTP/1.0\r\n\r\n";
  T_GT(th_raw(port, k10, sizeof k10 - 1, resp, sizeof resp, 5), 0);
  T_EQ(th_count(resp, "Hello, World!"), 2);
  T_TRUE(strstr(resp, "Connection: keep-alive") != NULL);
  /* The third request of a connection is its last. */
  static const char four[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  T_GT(th_raw(port, four, sizeof four - 1, resp, sizeof resp, 5), 0);
  T_EQ(th_count(resp, "Hello, World!"), 3);
  T_EQ(th_count(resp, "Connection: close"), 1);
  th_stop(srv, &a);
  return 0;
}
static void test_close(void) { RUN(m_close, NULL); }

static int m_file(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  snprintf(a.file, sizeof a.file, "/tmp/weft-http-file-%d", (int)getpid());
  FILE *f = fopen(a.file, "w");
  for (int i = 0; i < 300000; i++)
    fprintf(f, "%d\n", i);
  fclose(f);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  char out[4096];
  T_EQ(th_cmd(out, sizeof out, 30,
              "curl -s http://127.0.0.1:%d/file | cmp - %s && echo same", port,
              a.file),
       0);
  T_STREQ(out, "same\n");
  T_EQ(th_cmd(out, sizeof out, 30, "curl -s -I http://127.0.0.1:%d/file", port),
       0);
  struct stat st;
  stat(a.file, &st);
  char want[64];
  snprintf(want, sizeof want, "Content-Length: %lld", (long long)st.st_size);
  T_TRUE(strstr(out, want) != NULL);
  unlink(a.file);
  T_EQ(th_cmd(out, sizeof out, 30,
              "curl -s -o /dev/null -w '%%{http_code}' "
              "http://127.0.0.1:%d/file",
              port),
       0);
  T_STREQ(out, "404");
  th_stop(srv, &a);
  return 0;
}
static void test_file(void) {
  TH_NEED("curl");
  RUN(m_file, NULL);
}

static int m_tls(void *arg) {
  const char *dir = arg;
  char cert[256], key[256];
  snprintf(cert, sizeof cert, "%s/valid.pem", dir);
  snprintf(key, sizeof key, "%s/valid.key", dir);
  weft_tls_opts to = {.size = sizeof to,
                      .cert_file = cert,
                      .key_file = key,
                      .alpn = WEFT_HTTP_ALPN};
  weft_tls_ctx *ctx;
  T_OK(weft_tls_server_ctx_new(&ctx, &to));
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server_opts o = {.size = sizeof o, .tls = ctx};
  weft_http_server *srv = th_serve(&a, &o, &port);
  char out[8192];
  T_EQ(th_cmd(out, sizeof out, 20,
              "curl -s --http1.1 --cacert %s/ca.pem "
              "https://localhost:%d/ https://localhost:%d/users/7 "
              "--resolve localhost:%d:127.0.0.1",
              dir, port, port, port),
       0);
  T_STREQ(out, "Hello, World!user 7");
  T_EQ(th_cmd(out, sizeof out, 60,
              "head -c 5000000 /dev/zero | curl -s --http1.1 --cacert "
              "%s/ca.pem --data-binary @- https://localhost:%d/count "
              "--resolve localhost:%d:127.0.0.1",
              dir, port, port),
       0);
  T_STREQ(out, "5000000 0");
  /* A handshake that fails is counted and disturbs nobody. */
  T_NE(th_cmd(out, sizeof out, 20, "curl -s https://127.0.0.1:%d/", port), 0);
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_GE(st.tls_failures, 1);
  th_stop(srv, &a);
  weft_tls_ctx_free(ctx);
  return 0;
}
static void test_tls(void) {
  TH_NEED("curl");
  const char *dir = th_certs();
  if (dir == NULL) {
    fprintf(stderr, "  (no openssl: skipped)\n");
    return;
  }
  RUN(m_tls, (void *)dir);
}

/* The access log and /metrics. */
static int m_log_metrics(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  char *logbuf = NULL;
  size_t loglen = 0;
  FILE *log = open_memstream(&logbuf, &loglen);
  weft_http_server_opts o = {
      .size = sizeof o, .access_log = log, .metrics_path = "/metrics"};
  weft_http_server *srv = th_serve(&a, &o, &port);
  char resp[16384];
  static const char two[] = "GET /users/9?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                            "Connection: close\r\n\r\n";
  T_GT(th_raw(port, two, sizeof two - 1, resp, sizeof resp, 5), 0);
  T_TRUE(strstr(resp, "weft_http_requests_total 2\n") != NULL);
  T_TRUE(strstr(resp, "weft_tasks_alive ") != NULL);
  T_TRUE(strstr(resp, "text/plain; version=0.0.4") != NULL);
  th_stop(srv, &a);
  fclose(log);
  T_TRUE(logbuf != NULL && strstr(logbuf, "\"GET /users/9?x=1 HTTP/1.1\" "
                                          "200 6 ") != NULL);
  T_EQ(th_count(logbuf, "\n"), 2);
  free(logbuf);
  return 0;
}
static void test_log_metrics(void) { RUN(m_log_metrics, NULL); }

/* Idle keep-alive connections hold no task and no stack. */
static int m_idle(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  enum { N = 200 };
  weft_stream *c[N];
  weft_addr ad;
  (void)weft_addr_ip(&ad, "127.0.0.1", port);
  static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < N; i++) {
    T_OK(weft_stream_connect_addr(&c[i], &ad, NULL));
    T_OK(weft_stream_write(c[i], req, sizeof req - 1));
  }
  char buf[512];
  for (int i = 0; i < N; i++) {
    ssize_t n =
        weft_stream_read_until(c[i], "Hello, World!", 13, buf, sizeof buf);
    T_GT(n, 0);
  }
  (void)weft_sleep(0.05);
  weft_stats ls;
  weft_loop_stats(weft_loop_current(), &ls);
  /* Only this task is alive. */
  T_EQ(ls.tasks_alive, 1);
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_EQ(st.active, N);
  T_EQ(st.idle, N);
  T_EQ(st.in_flight, 0);
  for (int i = 0; i < N; i++)
    weft_stream_free(c[i]);
  th_stop(srv, &a);
  return 0;
}
static void test_idle_no_task(void) { RUN(m_idle, NULL); }

typedef struct fetch {
  int port;
  int ms;
  int got;
} fetch;

static int fetch_one(void *arg) {
  fetch *f = arg;
  char req[128], resp[1024];
  snprintf(req, sizeof req,
           "GET /sleep?ms=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
           f->ms);
  ssize_t n = th_raw(f->port, req, strlen(req), resp, sizeof resp, 10);
  if (n > 0 && strstr(resp, "slept") != NULL)
    f->got++;
  return 0;
}

/* Shutdown with requests in flight: they finish; idle connections close at
 * once; past the grace period handlers are cancelled. */
static int m_shutdown(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  enum { N = 20 };
  fetch f[N];
  weft_task *t[N];
  for (int i = 0; i < N; i++) {
    f[i] = (fetch){port, 300, 0};
    T_OK(weft_spawn(&t[i], fetch_one, &f[i]));
  }
  /* An idle keep-alive connection too. */
  weft_addr ad;
  (void)weft_addr_ip(&ad, "127.0.0.1", port);
  weft_stream *idle;
  T_OK(weft_stream_connect_addr(&idle, &ad, NULL));
  (void)weft_sleep(0.1);
  double t0 = weft_now();
  T_EQ(weft_http_server_shutdown(srv, 5), 0);
  T_LT(weft_now() - t0, 2);
  int got = 0;
  for (int i = 0; i < N; i++) {
    T_OK(weft_join(t[i], NULL));
    got += f[i].got;
  }
  T_EQ(got, N);
  char b[16];
  T_RC((int)weft_stream_read(idle, b, sizeof b), WEFT_EOF);
  weft_stream_free(idle);
  weft_http_server_free(srv);
  /* Past the grace period. */
  srv = th_serve(&a, NULL, &port);
  for (int i = 0; i < N; i++) {
    f[i] = (fetch){port, 5000, 0};
    T_OK(weft_spawn(&t[i], fetch_one, &f[i]));
  }
  (void)weft_sleep(0.1);
  t0 = weft_now();
  T_EQ(weft_http_server_shutdown(srv, 0.2), N);
  T_LT(weft_now() - t0, 2);
  for (int i = 0; i < N; i++)
    T_OK(weft_join(t[i], NULL));
  th_stop(srv, &a);
  return 0;
}
static void test_shutdown(void) { RUN(m_shutdown, NULL); }

static void test_cleanup(void) { th_certs_cleanup(); }

static const t_case cases[] = {
    {"curl_basics", test_curl_basics},
    {"pipelining", test_pipelining},
    {"chunked", test_chunked},
    {"large", test_large},
    {"close", test_close},
    {"file", test_file},
    {"tls", test_tls},
    {"log_metrics", test_log_metrics},
    {"idle_no_task", test_idle_no_task},
    {"shutdown", test_shutdown},
    {"cleanup", test_cleanup},
    {NULL, NULL},
};

T_MAIN("http-server-h1", cases)
