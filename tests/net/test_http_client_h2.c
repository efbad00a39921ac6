/* http-client-h2: the client over HTTP/2 against weft's server - h2c with
 * prior knowledge and h2 over TLS by ALPN: 1 000 concurrent requests on
 * one connection, the server's stream limit honoured (requests wait for a
 * slot), bodies both ways, trailers, gzip, streams reset by an unread
 * response, a cancellation or a timeout while the connection goes on, a
 * server going away, certificates that must fail verification, and TLS
 * sessions resumed by the pool's next connection to an origin. */
#include "test_http_client_util.h"

#include "http_int.h" /* a request's connection, for its TLS stream */

static th_app app;
static weft_http_server *srv;
static int port;
static char base[64];
static int conc, conc_peak;

/* /conc: counts requests in progress, sleeps 50 ms. */
static int h_conc(weft_http_request *r, void *arg) {
  (void)arg;
  conc++;
  if (conc > conc_peak)
    conc_peak = conc;
  int rc = weft_sleep(0.05);
  conc--;
  return rc != 0 ? rc : weft_http_respond_text(r, 200, "done");
}

/* /flood: 64 MiB in 16 KiB writes, counting what the client let through. */
static size_t flooded;

static int h_flood(weft_http_request *r, void *arg) {
  (void)arg;
  static char buf[16384];
  int rc = weft_http_start(r, 200, "application/octet-stream", 64 << 20);
  for (int i = 0; rc == 0 && i < 4096; i++) {
    rc = weft_http_write(r, buf, sizeof buf);
    if (rc == 0)
      flooded += sizeof buf;
  }
  return rc == 0 ? weft_http_end(r) : rc;
}

/* /resumed: whether this connection's handshake resumed a session, as the
 * server saw it. */
static int h_resumed(weft_http_request *r, void *arg) {
  (void)arg;
  bool yes = r->c->st != NULL && weft_stream_tls_resumed(r->c->st);
  return weft_http_respond_text(r, 200, yes ? "resumed" : "full");
}

static weft_tls_ctx *server_tls(const char *name) {
  const char *d = th_certs();
  if (d == NULL)
    return NULL;
  char cert[128], key[128];
  snprintf(cert, sizeof cert, "%s/%s.pem", d, name);
  snprintf(key, sizeof key, "%s/%s.key", d, name);
  weft_tls_opts o = {.size = sizeof o,
                     .cert_file = cert,
                     .key_file = key,
                     .alpn = WEFT_HTTP_ALPN};
  weft_tls_ctx *c = NULL;
  T_OK(weft_tls_server_ctx_new(&c, &o));
  return c;
}

static void up(weft_http_server_opts *o, bool tls) {
  th_app_init(&app);
  T_OK(weft_http_route(app.router, "GET", "/conc", h_conc, NULL));
  T_OK(weft_http_route(app.router, "GET", "/flood", h_flood, NULL));
  T_OK(weft_http_route(app.router, "GET", "/resumed", h_resumed, NULL));
  srv = th_serve(&app, o, &port);
  snprintf(base, sizeof base, "%s://127.0.0.1:%d", tls ? "https" : "http",
           port);
  conc = conc_peak = 0;
}

static void down(void) { th_stop(srv, &app); }

#define URL(buf, path)                                                         \
  (snprintf((buf), sizeof(buf), "%s%s", base, (path)), (buf))

typedef struct job {
  weft_http_session *s;
  char url[128];
  int ok, v2;
} job;

static int job_get(void *arg) {
  job *j = arg;
  weft_http_response *r;
  if (weft_http_get(j->s, j->url, &r) != 0)
    return 0;
  const void *b;
  size_t n;
  if (weft_http_response_body(r, &b, &n) == 0 &&
      weft_http_response_status(r) == 200)
    j->ok++;
  if (weft_http_response_version(r) == 20)
    j->v2++;
  weft_http_response_free(r);
  return 0;
}

static void run_jobs(job *j, int n) {
  weft_group *g;
  T_OK(weft_group_new(&g));
  for (int i = 0; i < n; i++)
    T_OK(weft_group_spawn(g, NULL, job_get, j));
  T_OK(weft_group_wait(g));
  weft_group_free(g);
}

static int t_h2c_many(void *arg) {
  (void)arg;
  up(NULL, false);
  weft_http_session_opts o = {.size = sizeof o, .h2 = 1};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  job j = {.s = s};
  URL(j.url, "/");
  run_jobs(&j, 1000);
  T_EQ(j.ok, 1000);
  T_EQ(j.v2, 1000);
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.connects, 1);
  T_EQ(st.h2_streams, 1000);
  T_EQ(st.peak_open, 1);
  weft_http_server_stats ss;
  weft_http_server_stats_get(srv, &ss);
  T_EQ(ss.connections, 1);
  T_EQ(ss.h2_connections, 1);
  T_EQ(ss.requests, 1000);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

static int t_slots(void *arg) {
  (void)arg;
  weft_http_server_opts so = {.size = sizeof so, .h2_max_streams = 10};
  up(&so, false);
  weft_http_session_opts o = {.size = sizeof o, .h2 = 1};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  job j = {.s = s};
  URL(j.url, "/conc");
  double t0 = weft_now();
  run_jobs(&j, 100);
  double took = weft_now() - t0;
  T_EQ(j.ok, 100);
  /* Never more than the server allows, and no stream refused: 10 waves. */
  T_LE(conc_peak, 10);
  T_GE(took, 0.45);
  weft_http_server_stats ss;
  weft_http_server_stats_get(srv, &ss);
  T_EQ(ss.connections, 1);
  T_EQ(ss.h2_resets_recv, 0);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

typedef struct gen {
  size_t left;
  uint64_t sum;
} gen;

static ssize_t gen_fn(void *arg, void *buf, size_t cap) {
  gen *g = arg;
  size_t n = g->left < cap ? g->left : cap;
  unsigned char *p = buf;
  for (size_t i = 0; i < n; i++) {
    p[i] = (unsigned char)(g->left - i);
    g->sum += p[i];
  }
  g->left -= n;
  return (ssize_t)n;
}

static void bodies(weft_http_session *s) {
  char url[128];
  static char big[300000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 19);
  weft_http_req_opts o = {
      .size = sizeof o, .body = big, .body_len = sizeof big};
  weft_http_response *r;
  T_OK(weft_http_fetch(s, "POST", URL(url, "/echo"), &o, &r));
  T_EQ(weft_http_response_version(r), 20);
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, sizeof big);
  T_TRUE(memcmp(b, big, sizeof big) == 0);
  weft_http_response_free(r);
  gen g = {.left = 500000};
  weft_http_req_opts f = {
      .size = sizeof f, .body_fn = gen_fn, .body_arg = &g, .body_fn_len = -1};
  T_OK(weft_http_fetch(s, "PUT", URL(url, "/count"), &f, &r));
  T_OK(weft_http_response_body(r, &b, &n));
  char want[64];
  snprintf(want, sizeof want, "500000 %llu", (unsigned long long)g.sum);
  T_STREQ(b, want);
  weft_http_response_free(r);
  /* A streamed answer with a trailer, read in small pieces. */
  T_OK(weft_http_get(s, URL(url, "/stream/2000000"), &r));
  size_t total = 0;
  char buf[1000];
  ssize_t k;
  while ((k = weft_http_response_read(r, buf, sizeof buf)) > 0)
    total += (size_t)k;
  T_EQ(k, 0);
  T_EQ(total, 2000000);
  T_STREQ(weft_http_response_trailer(r, "x-total"), "2000000");
  weft_http_response_free(r);
  /* HEAD. */
  T_OK(weft_http_fetch(s, "HEAD", URL(url, "/"), NULL, &r));
  T_EQ(weft_http_response_status(r), 200);
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 0);
  weft_http_response_free(r);
}

/* The server up over TLS with the test CA's "valid" certificate; ca gets
 * the CA file's path. NULL (said on stderr) when openssl is missing. */
static weft_tls_ctx *tls_up(char *ca, size_t cap) {
  weft_tls_ctx *tls = server_tls("valid");
  if (tls == NULL) {
    fprintf(stderr, "  (openssl is missing: skipped)\n");
    return NULL;
  }
  weft_http_server_opts so = {.size = sizeof so, .tls = tls};
  up(&so, true);
  snprintf(ca, cap, "%s/ca.pem", th_certs());
  return tls;
}

static int t_tls(void *arg) {
  (void)arg;
  char ca[128], url[128], body[64];
  weft_tls_ctx *tls = tls_up(ca, sizeof ca);
  if (tls == NULL)
    return 0;
  /* Verified against the test CA: h2 by ALPN. */
  weft_http_session_opts o = {.size = sizeof o, .ca_file = ca};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  job j = {.s = s};
  URL(j.url, "/");
  run_jobs(&j, 300);
  T_EQ(j.ok, 300);
  T_EQ(j.v2, 300);
  T_EQ(hc_stats(s).connects, 1);
  bodies(s);
  /* localhost is in the certificate too. */
  snprintf(url, sizeof url, "https://localhost:%d/", port);
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  HC_QUIET(s);
  weft_http_session_free(s);
  /* HTTP/2 turned off: HTTP/1.1 over TLS. */
  o.h2 = -1;
  T_OK(weft_http_session_new(&s, &o));
  weft_http_response *r;
  T_OK(weft_http_get(s, URL(url, "/"), &r));
  T_EQ(weft_http_response_version(r), 11);
  weft_http_response_free(r);
  weft_http_session_free(s);
  /* The system's CA store does not know the test CA. */
  T_OK(weft_http_session_new(&s, NULL));
  T_RC(weft_http_get(s, URL(url, "/"), &r), WEFT_ETLS_UNKNOWN_CA);
  HC_QUIET(s);
  T_EQ(hc_stats(s).open, 0);
  weft_http_session_free(s);
  /* Insecure: it works (and says so on stderr). */
  weft_http_session_opts io = {.size = sizeof io, .insecure = true};
  T_OK(weft_http_session_new(&s, &io));
  T_EQ(hc_get(s, URL(url, "/"), body, sizeof body), 200);
  weft_http_session_free(s);
  down();
  weft_tls_ctx_free(tls);

  /* Bad certificates, each its own error. */
  static const struct {
    const char *cert;
    int err;
  } bad[] = {
      {"expired", WEFT_ETLS_EXPIRED},
      {"wronghost", WEFT_ETLS_HOSTNAME},
      {"unknownca", WEFT_ETLS_UNKNOWN_CA},
      {"selfsigned", WEFT_ETLS_SELF_SIGNED},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tls = server_tls(bad[i].cert);
    weft_http_server_opts so = {.size = sizeof so, .tls = tls};
    up(&so, true);
    T_OK(weft_http_session_new(&s, &o));
    snprintf(url, sizeof url, "https://localhost:%d/", port);
    int rc = weft_http_get(s, url, &r);
    if (rc != bad[i].err)
      fprintf(stderr, "  %s: %s\n", bad[i].cert, weft_err_name(rc));
    T_RC(rc, bad[i].err);
    T_EQ(hc_stats(s).open, 0);
    weft_http_session_free(s);
    down();
    weft_tls_ctx_free(tls);
  }
  return 0;
}

/* Two requests over two connections of one session (the first closed by
 * the pool's keep-alive timeout in between): the second handshake resumes
 * the session the first got, over h2 and HTTP/1.1; not with a context of
 * the caller's whose cache is off. */
static int t_tls_resume(void *arg) {
  (void)arg;
  char ca[128], url[128], body[64];
  weft_tls_ctx *tls = tls_up(ca, sizeof ca);
  if (tls == NULL)
    return 0;
  weft_tls_opts off = {.size = sizeof off,
                       .ca_file = ca,
                       .alpn = WEFT_HTTP_ALPN,
                       .session_cache_size = -1};
  weft_tls_ctx *cold = NULL;
  T_OK(weft_tls_client_ctx_new(&cold, &off));
  static const struct {
    int h2, version;
    bool cache;
  } runs[] = {{0, 20, true}, {-1, 11, true}, {0, 20, false}};
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    weft_http_session_opts o = {.size = sizeof o,
                                .ca_file = ca,
                                .h2 = runs[i].h2,
                                .keepalive_timeout = 0.05,
                                .tls = runs[i].cache ? NULL : cold};
    weft_http_session *s;
    T_OK(weft_http_session_new(&s, &o));
    for (int k = 0; k < 2; k++) {
      weft_http_response *r;
      T_OK(weft_http_get(s, URL(url, "/resumed"), &r));
      T_EQ(weft_http_response_version(r), runs[i].version);
      const void *b;
      size_t n;
      T_OK(weft_http_response_body(r, &b, &n));
      snprintf(body, sizeof body, "%.*s", (int)n, (const char *)b);
      T_STREQ(body, k == 1 && runs[i].cache ? "resumed" : "full");
      weft_http_response_free(r);
      T_OK(weft_sleep(0.3)); /* past the keep-alive: the pool closes it */
      T_EQ(hc_stats(s).open, 0);
    }
    T_EQ(hc_stats(s).connects, 2);
    weft_http_session_free(s);
  }
  weft_tls_ctx_free(cold);
  down();
  weft_tls_ctx_free(tls);
  return 0;
}

typedef struct cjob {
  weft_http_session *s;
  char url[128];
  int rc;
} cjob;

static int cjob_run(void *arg) {
  cjob *j = arg;
  char body[64];
  j->rc = hc_get(j->s, j->url, body, sizeof body);
  return 0;
}

/* Streams end badly; the connection goes on. */
static int t_streams(void *arg) {
  (void)arg;
  up(NULL, false);
  weft_http_session_opts o = {.size = sizeof o, .h2 = 1};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  bodies(s);
  char url[128], body[64];
  /* Unread: the stream is reset, the connection kept. */
  weft_http_response *r;
  T_OK(weft_http_get(s, URL(url, "/stream/10000000"), &r));
  char buf[100];
  T_GT(weft_http_response_read(r, buf, sizeof buf), 0);
  weft_http_response_free(r);
  T_EQ(hc_get(s, URL(url, "/"), body, sizeof body), 200);
  /* Backpressure: a reader that stops holds the server at the stream's
   * window (1 MiB), not at the 64 MiB it wants to send. */
  flooded = 0;
  T_OK(weft_http_get(s, URL(url, "/flood"), &r));
  T_GT(weft_http_response_read(r, buf, sizeof buf), 0);
  T_OK(weft_sleep(0.3));
  T_LT(flooded, 2 << 20);
  size_t got = 0;
  for (int i = 0; i < 100; i++) {
    ssize_t k = weft_http_response_read(r, buf, sizeof buf);
    T_GT(k, 0);
    got += (size_t)k;
  }
  T_OK(weft_sleep(0.1));
  T_LT(flooded, (2 << 20) + got + 65536);
  weft_http_response_free(r);
  /* Cancelled while the server thinks. */
  cjob c = {.s = s};
  URL(c.url, "/sleep?ms=2000");
  weft_task *t;
  T_OK(weft_spawn(&t, cjob_run, &c));
  T_OK(weft_sleep(0.05));
  T_EQ(hc_stats(s).streams, 1);
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_RC(c.rc, WEFT_ECANCELED);
  /* A read timeout. */
  weft_http_req_opts ro = {.size = sizeof ro, .read_timeout = 0.05};
  T_RC(weft_http_fetch(s, "GET", URL(url, "/sleep?ms=500"), &ro, &r),
       WEFT_ETIMEDOUT);
  T_EQ(hc_get(s, URL(url, "/"), body, sizeof body), 200);
  T_OK(weft_sleep(0.05));
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.connects, 1);
  T_EQ(st.open, 1);
  HC_QUIET(s);
  weft_http_server_stats ss;
  weft_http_server_stats_get(srv, &ss);
  T_EQ(ss.connections, 1);
  /* The server goes away (GOAWAY, close): the pool lets the connection
   * go. */
  T_GE(weft_http_server_shutdown(srv, 1), 0);
  T_OK(weft_sleep(0.1));
  T_EQ(hc_stats(s).open, 0);
  T_RC(weft_http_get(s, URL(url, "/"), &r), WEFT_ECONNREFUSED);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

#define CASE(name, fn)                                                         \
  static void name(void) { RUN(fn, NULL); }
CASE(test_h2c_many, t_h2c_many)
CASE(test_slots, t_slots)
CASE(test_tls, t_tls)
CASE(test_streams, t_streams)
CASE(test_tls_resume, t_tls_resume)

static void test_cleanup(void) { th_certs_cleanup(); }

static const t_case cases[] = {
    {"h2c_many", test_h2c_many},
    {"slots", test_slots},
    {"tls", test_tls},
    {"streams", test_streams},
    {"tls_resume", test_tls_resume},
    {"cleanup", test_cleanup},
    {NULL, NULL},
};

T_MAIN("http-client-h2", cases)
