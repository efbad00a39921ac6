/* http-server-h2: the HTTP server over HTTP/2 against curl, nghttp and
 * h2load: h2c with prior knowledge and by Upgrade, h2 over TLS by ALPN,
 * many concurrent streams, large bodies both ways under flow control,
 * trailers, the same handlers as HTTP/1.1, and GOAWAY on graceful shutdown
 * with streams in flight.
 */
#include "test_http_util.h"

static int m_curl(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  char out[8192];
  T_EQ(th_cmd(out, sizeof out, 10,
              "curl -s --http2-prior-knowledge -i http://127.0.0.1:%d/", port),
       0);
  T_TRUE(strstr(out, "HTTP/2 200") == out);
  T_TRUE(strstr(out, "content-length: 13") != NULL);
  T_TRUE(strstr(out, "date: ") != NULL);
  T_TRUE(strstr(out, "\r\n\r\nHello, World!") != NULL);
  /* Upgrade: h2c, then more requests on the upgraded connection. */
  T_EQ(th_cmd(out, sizeof out, 10,
              "curl -s --http2 -w ' %%{http_version}' http://127.0.0.1:%d/ "
              "http://127.0.0.1:%d/users/5",
              port, port),
       0);
  T_STREQ(out, "Hello, World! 2user 5 2");
  /* 404, 405 with allow, HEAD. */
  T_EQ(th_cmd(out, sizeof out, 10,
              "curl -s --http2-prior-knowledge -i -X PATCH "
              "http://127.0.0.1:%d/",
              port),
       0);
  T_TRUE(strstr(out, "HTTP/2 405") == out);
  T_TRUE(strstr(out, "allow: GET, HEAD") != NULL);
  T_EQ(th_cmd(out, sizeof out, 10,
              "curl -s --http2-prior-knowledge -I http://127.0.0.1:%d/", port),
       0);
  T_TRUE(strstr(out, "content-length: 13") != NULL);
  /* Content-Lengths below 1000 (from a table) and above (formatted). */
  static const int lens[] = {999, 123456};
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    char want[64];
    snprintf(want, sizeof want, "content-length: %d\r\n", lens[i]);
    T_EQ(th_cmd(out, sizeof out, 10,
                "head -c %d /dev/zero | curl -s --http2-prior-knowledge -i "
                "--data-binary @- -o /dev/null -D - http://127.0.0.1:%d/echo",
                lens[i], port),
         0);
    T_TRUE(strstr(out, want) != NULL);
  }
  /* Bodies both ways, larger than every window. */
  T_EQ(th_cmd(out, sizeof out, 60,
              "head -c 30000000 /dev/zero | curl -s --http2-prior-knowledge "
              "--data-binary @- http://127.0.0.1:%d/count",
              port),
       0);
  T_STREQ(out, "30000000 0");
  T_EQ(th_cmd(out, sizeof out, 60,
              "curl -s --http2-prior-knowledge -o /dev/null -w "
              "'%%{size_download}' http://127.0.0.1:%d/stream/30000000",
              port),
       0);
  T_STREQ(out, "30000000");
  T_EQ(th_cmd(out, sizeof out, 60,
              "head -c 3000000 /dev/urandom > /tmp/weft-h2-up.$$; curl -s "
              "--http2-prior-knowledge --data-binary @/tmp/weft-h2-up.$$ "
              "http://127.0.0.1:%d/echo | cmp - /tmp/weft-h2-up.$$ && echo "
              "same; rm -f /tmp/weft-h2-up.$$",
              port),
       0);
  T_STREQ(out, "same\n");
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_GE(st.h2_connections, 7);
  th_stop(srv, &a);
  return 0;
}
static void test_curl(void) {
  TH_NEED("curl");
  RUN(m_curl, NULL);
}

/* nghttp: many streams on one connection, trailers. */
static int m_nghttp(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  static char out[262144];
  char urls[8192] = "";
  for (int i = 0; i < 50; i++)
    snprintf(urls + strlen(urls), sizeof urls - strlen(urls),
             " 'http://127.0.0.1:%d/sleep?ms=%d&i=%d'", port, 50 + i % 5, i);
  double t0 = weft_now();
  T_EQ(th_cmd(out, sizeof out, 20, "nghttp -n -s %s", urls), 0);
  /* 50 streams of 50 ms at once on one connection: far less than 2.5 s. */
  T_LT(weft_now() - t0, 1.5);
  T_EQ(a.slept, 50);
  /* Trailers of a streamed answer. */
  T_EQ(th_cmd(out, sizeof out, 20, "nghttp -v http://127.0.0.1:%d/stream/100",
              port),
       0);
  T_TRUE(strstr(out, "x-total: 100") != NULL);
  T_TRUE(strstr(out, "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100") != NULL);
  th_stop(srv, &a);
  return 0;
}
static void test_nghttp(void) {
  TH_NEED("nghttp");
  RUN(m_nghttp, NULL);
}

/* h2load: 20 000 requests over 10 connections, 50 streams each. */
static int m_h2load(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  static char out[16384];
  T_EQ(th_cmd(out, sizeof out, 60,
              "h2load -n 20000 -c 10 -m 50 "
              "http://127.0.0.1:%d/",
              port),
       0);
  T_TRUE(strstr(out, "20000 succeeded, 0 failed, 0 errored") != NULL);
  T_TRUE(strstr(out, "20000 2xx") != NULL);
  /* Over HTTP/1.1 too. */
  T_EQ(th_cmd(out, sizeof out, 60,
              "h2load --h1 -n 5000 -c 10 "
              "http://127.0.0.1:%d/",
              port),
       0);
  T_TRUE(strstr(out, "5000 succeeded, 0 failed, 0 errored") != NULL);
  th_stop(srv, &a);
  return 0;
}
static void test_h2load(void) {
  TH_NEED("h2load");
  RUN(m_h2load, NULL);
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
  if (th_have("curl")) {
    T_EQ(th_cmd(out, sizeof out, 20,
                "curl -s --http2 --cacert %s/ca.pem -w ' %%{http_version}' "
                "https://localhost:%d/ --resolve localhost:%d:127.0.0.1",
                dir, port, port),
         0);
    T_STREQ(out, "Hello, World! 2");
    /* A client without h2 gets HTTP/1.1 on the same port. */
    T_EQ(th_cmd(out, sizeof out, 20,
                "curl -s --http1.1 --cacert %s/ca.pem -w ' %%{http_version}' "
                "https://localhost:%d/ --resolve localhost:%d:127.0.0.1",
                dir, port, port),
         0);
    T_STREQ(out, "Hello, World! 1.1");
    T_EQ(th_cmd(out, sizeof out, 60,
                "head -c 10000000 /dev/zero | curl -s --http2 --cacert "
                "%s/ca.pem --data-binary @- https://localhost:%d/count "
                "--resolve localhost:%d:127.0.0.1",
                dir, port, port),
         0);
    T_STREQ(out, "10000000 0");
  }
  if (th_have("h2load")) {
    static char big[16384];
    T_EQ(th_cmd(big, sizeof big, 60,
                "h2load -n 2000 -c 4 -m 20 https://127.0.0.1:%d/", port),
         0);
    T_TRUE(strstr(big, "2000 succeeded, 0 failed") != NULL);
    T_TRUE(strstr(big, "Application protocol: h2") != NULL);
  }
  th_stop(srv, &a);
  weft_tls_ctx_free(ctx);
  return 0;
}
static void test_tls(void) {
  const char *dir = th_certs();
  if (dir == NULL) {
    fprintf(stderr, "  (no openssl: skipped)\n");
    return;
  }
  RUN(m_tls, (void *)dir);
}

typedef struct bg {
  int port;
  int rc;
  char out[4096];
} bg;

static int run_nghttp(void *arg) {
  bg *b = arg;
  b->rc = th_cmd(b->out, sizeof b->out, 20,
                 "nghttp -v http://127.0.0.1:%d/sleep?ms=400 "
                 "http://127.0.0.1:%d/sleep?ms=300",
                 b->port, b->port);
  return 0;
}

/* Graceful shutdown: streams in flight finish, the client gets GOAWAY. */
static int m_goaway(void *arg) {
  (void)arg;
  th_app a;
  th_app_init(&a);
  int port;
  weft_http_server *srv = th_serve(&a, NULL, &port);
  bg b = {.port = port};
  weft_task *t;
  T_OK(weft_spawn(&t, run_nghttp, &b));
  while (a.slept == 0) {
    weft_http_server_stats st;
    weft_http_server_stats_get(srv, &st);
    if (st.in_flight == 2)
      break;
    (void)weft_sleep(0.01);
  }
  T_EQ(weft_http_server_shutdown(srv, 5), 0);
  T_OK(weft_join(t, NULL));
  T_EQ(b.rc, 0);
  T_TRUE(strstr(b.out, "recv GOAWAY") != NULL);
  T_EQ(th_count(b.out, "slept "), 2);
  T_EQ(a.slept, 2);
  weft_http_server_free(srv);
  weft_http_router_free(a.router);
  return 0;
}
static void test_goaway(void) {
  TH_NEED("nghttp");
  RUN(m_goaway, NULL);
}

/* A handler that frees its server while more requests of its connection are
 * still being decoded: handlers start as soon as their head is complete,
 * inside the session's input (HTTP/2) or the parser's loop (HTTP/1.1), and
 * that input must stop cleanly, with nothing leaked (ASan) and the process
 * whole. */
static int h_free(weft_http_request *r, void *arg) {
  weft_http_server **srv = arg;
  if (*srv != NULL) {
    weft_http_server_free(*srv);
    *srv = NULL;
  }
  return weft_http_respond_text(r, 200, "freed");
}

static int m_free_in_handler(void *arg) {
  (void)arg;
  const char *const loads[] = {"h2load -n 400 -c 1 -m 100",
                               "h2load --h1 -n 400 -c 1 -m 16"};
  for (int i = 0; i < 2; i++) {
    weft_http_router *router;
    T_OK(weft_http_router_new(&router));
    weft_http_server *srv = NULL;
    T_OK(weft_http_route(router, "GET", "/free", h_free, &srv));
    weft_addr addr, real;
    (void)weft_addr_ip(&addr, "127.0.0.1", 0);
    T_OK(weft_http_serve(&srv, &addr, weft_http_router_handler, router, NULL));
    T_OK(weft_http_server_addr(srv, &real));
    static char out[16384];
    (void)th_cmd(out, sizeof out, 30, "%s http://127.0.0.1:%d/free", loads[i],
                 weft_addr_port(&real));
    T_TRUE(srv == NULL);
    /* The server's memory goes once its handlers are done. */
    for (int k = 0; k < 10; k++)
      (void)weft_sleep(0.01);
    weft_http_router_free(router);
  }
  return 0;
}
static void test_free_in_handler(void) {
  TH_NEED("h2load");
  RUN(m_free_in_handler, NULL);
}

static void test_cleanup(void) { th_certs_cleanup(); }

static const t_case cases[] = {
    {"curl", test_curl},       {"nghttp", test_nghttp},
    {"h2load", test_h2load},   {"free-in-handler", test_free_in_handler},
    {"tls", test_tls},         {"goaway", test_goaway},
    {"cleanup", test_cleanup}, {NULL, NULL},
};

T_MAIN("http-server-h2", cases)
