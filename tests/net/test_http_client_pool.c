/* http-client-pool: the pool under faults. Each case injects one (a server
 * that closes idle connections, closes them just as a request comes,
 * resets mid-body, cuts a chunked body, never answers, answers garbage; a
 * request cancelled mid-way or while waiting; a response freed unread)
 * and then checks the pool's counters: no slot leaked or counted twice
 * (aiohttp #861, #2189, #4936), nothing left busy or waiting, and the next
 * request works. */
#include "test_http_client_util.h"

static th_app app;
static weft_http_server *srv;
static int port;
static char base[64];

static void up(const weft_http_server_opts *o) {
  th_app_init(&app);
  srv = th_serve(&app, o, &port);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
}

static void down(void) { th_stop(srv, &app); }

#define URL(buf, path)                                                         \
  (snprintf((buf), sizeof(buf), "%s%s", base, (path)), (buf))

static const char OK_RESP[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";

/* ---- limits ---- */

typedef struct job {
  weft_http_session *s;
  char url[128];
  int ok, fail, last_err;
} job;

static int job_get(void *arg) {
  job *j = arg;
  char body[64];
  int rc = hc_get(j->s, j->url, body, sizeof body);
  if (rc == 200)
    j->ok++;
  else {
    j->fail++;
    j->last_err = rc;
  }
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

static int t_limits(void *arg) {
  (void)arg;
  up(NULL);
  /* Total limit 3: 60 requests at once, 3 connections accepted. */
  weft_http_session_opts o = {.size = sizeof o, .limit = 3};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  job j = {.s = s};
  URL(j.url, "/sleep?ms=10");
  run_jobs(&j, 60);
  T_EQ(j.ok, 60);
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.peak_open, 3);
  T_EQ(st.connects, 3);
  T_EQ(st.reused, 57);
  weft_http_server_stats ss;
  weft_http_server_stats_get(srv, &ss);
  T_EQ(ss.connections, 3);
  HC_QUIET(s);
  weft_http_session_free(s);

  /* Per host 2 of a total of 3, two origins (127.0.0.1 and localhost are
   * two): 2 each, and a slot moves from one to the other as it idles. */
  o.limit_per_host = 2;
  T_OK(weft_http_session_new(&s, &o));
  job a = {.s = s}, b = {.s = s};
  URL(a.url, "/sleep?ms=10");
  snprintf(b.url, sizeof b.url, "http://localhost:%d/sleep?ms=10", port);
  weft_group *g;
  T_OK(weft_group_new(&g));
  for (int i = 0; i < 20; i++) {
    T_OK(weft_group_spawn(g, NULL, job_get, &a));
    T_OK(weft_group_spawn(g, NULL, job_get, &b));
  }
  T_OK(weft_group_wait(g));
  weft_group_free(g);
  T_EQ(a.ok + b.ok, 40);
  st = hc_stats(s);
  T_LE(st.peak_open, 3);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

/* ---- idle connections ---- */

static int t_idle(void *arg) {
  (void)arg;
  /* The client's own idle timeout. */
  up(NULL);
  weft_http_session_opts o = {.size = sizeof o, .keepalive_timeout = 0.2};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  job j = {.s = s};
  URL(j.url, "/sleep?ms=5");
  run_jobs(&j, 5);
  T_EQ(hc_stats(s).open, 5);
  T_EQ(hc_stats(s).idle, 5);
  T_OK(weft_sleep(0.4));
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.open, 0);
  T_EQ(st.closed_idle, 5);
  weft_http_session_free(s);
  down();

  /* A server that closes idle connections first (its keepalive 0.1 s):
   * the pool notices, and the next request opens a new one. */
  weft_http_server_opts so = {.size = sizeof so, .keepalive_timeout = 0.1};
  up(&so);
  T_OK(weft_http_session_new(&s, NULL));
  char url[128], body[64];
  T_EQ(hc_get(s, URL(url, "/"), body, sizeof body), 200);
  T_EQ(hc_stats(s).idle, 1);
  T_OK(weft_sleep(0.4));
  st = hc_stats(s);
  T_EQ(st.open, 0);
  T_EQ(st.closed_idle, 1);
  T_EQ(hc_get(s, URL(url, "/"), body, sizeof body), 200);
  st = hc_stats(s);
  T_EQ(st.connects, 2);
  T_EQ(st.retries, 0);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

/* Answers the first request of each connection, then reads the next one
 * and closes without answering: the race a pooled connection loses when
 * the server closes it just as the request goes out. */
static int fake_race(hc_fake *f, weft_stream *s) {
  if (hc_fake_head(s) != 0)
    return 0;
  f->requests++;
  if (hc_fake_send(s, OK_RESP) != 0)
    return 0;
  (void)hc_fake_head(s);
  return 0;
}

static int t_retry(void *arg) {
  (void)arg;
  hc_fake f;
  hc_fake_start(&f, fake_race);
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  char url[128], body[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", f.port);
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  /* GET: retried once on a new connection. */
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  T_STREQ(body, "ok");
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.retries, 1);
  T_EQ(st.connects, 2);
  T_EQ(f.accepted, 2);
  /* POST is not idempotent: the error, no retry. */
  weft_http_req_opts o = {.size = sizeof o, .body = "x", .body_len = 1};
  weft_http_response *r;
  T_RC(weft_http_fetch(s, "POST", url, &o, &r), WEFT_EHTTP_NO_RESPONSE);
  T_EQ(hc_stats(s).retries, 1);
  HC_QUIET(s);
  T_EQ(hc_stats(s).open, 0);
  weft_http_session_free(s);
  hc_fake_stop(&f);
  return 0;
}

/* ---- broken responses ---- */

static int fake_reset(hc_fake *f, weft_stream *s) {
  (void)f;
  if (hc_fake_head(s) != 0)
    return 0;
  char buf[4096];
  memset(buf, 'r', sizeof buf);
  (void)hc_fake_send(s, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
  if (weft_stream_write(s, buf, sizeof buf) != 0 || weft_stream_flush(s) != 0)
    return 0;
  (void)weft_sleep(0.05);
  /* SO_LINGER 0: the client sees a reset mid-body. */
  struct linger l = {1, 0};
  setsockopt(weft_stream_fd(s), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  return 0; /* the server closes the socket: with linger 0, a reset */
}

static int fake_chunked_cut(hc_fake *f, weft_stream *s) {
  (void)f;
  if (hc_fake_head(s) != 0)
    return 0;
  (void)hc_fake_send(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n5\r\nwor");
  return 0; /* the server closes: a FIN mid-chunk */
}

static int fake_length_cut(hc_fake *f, weft_stream *s) {
  (void)f;
  if (hc_fake_head(s) != 0)
    return 0;
  (void)hc_fake_send(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
  return 0;
}

static int fake_garbage(hc_fake *f, weft_stream *s) {
  (void)f;
  if (hc_fake_head(s) != 0)
    return 0;
  (void)hc_fake_send(s, "SMTP ready\r\n\r\n");
  return 0;
}

static int fake_silent(hc_fake *f, weft_stream *s) {
  (void)f;
  (void)hc_fake_head(s);
  char b[64];
  while (weft_stream_read(s, b, sizeof b) > 0)
    ;
  return 0;
}

static int fake_close_at_once(hc_fake *f, weft_stream *s) {
  (void)f;
  (void)hc_fake_head(s);
  return 0;
}

/* Until-EOF bodies (no length, no chunking) are complete at the close. */
static int fake_until_eof(hc_fake *f, weft_stream *s) {
  (void)f;
  if (hc_fake_head(s) != 0)
    return 0;
  (void)hc_fake_send(s, "HTTP/1.0 200 OK\r\n\r\nall of it");
  return 0;
}

/* Fetches from a fake server and reads the body; returns the error. */
static int fetch_fake(int (*fn)(hc_fake *, weft_stream *), bool *head_ok,
                      char *body, size_t cap) {
  hc_fake f;
  hc_fake_start(&f, fn);
  weft_http_session_opts o = {.size = sizeof o, .total_timeout = 5};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", f.port);
  weft_http_response *r;
  int rc = weft_http_get(s, url, &r);
  *head_ok = rc == 0;
  if (rc == 0) {
    const void *b;
    size_t n;
    rc = weft_http_response_body(r, &b, &n);
    if (rc == 0 && body != NULL)
      snprintf(body, cap, "%s", (const char *)b);
    weft_http_response_free(r);
  }
  HC_QUIET(s);
  T_EQ(hc_stats(s).open, 0);
  weft_http_session_free(s);
  hc_fake_stop(&f);
  return rc;
}

static int t_broken(void *arg) {
  (void)arg;
  bool head;
  char body[64];
  T_RC(fetch_fake(fake_reset, &head, NULL, 0), WEFT_ECONNRESET);
  T_TRUE(head);
  T_RC(fetch_fake(fake_chunked_cut, &head, NULL, 0), WEFT_EHTTP_TRUNCATED);
  T_TRUE(head);
  T_RC(fetch_fake(fake_length_cut, &head, NULL, 0), WEFT_EHTTP_TRUNCATED);
  T_RC(fetch_fake(fake_garbage, &head, NULL, 0), WEFT_EBADMSG);
  T_FALSE(head);
  T_RC(fetch_fake(fake_close_at_once, &head, NULL, 0), WEFT_EHTTP_NO_RESPONSE);
  T_OK(fetch_fake(fake_until_eof, &head, body, sizeof body));
  T_STREQ(body, "all of it");
  return 0;
}

/* ---- timeouts ---- */

static int t_timeouts(void *arg) {
  (void)arg;
  hc_fake f;
  hc_fake_start(&f, fake_silent);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", f.port);
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  weft_http_response *r;
  /* The whole request, and between reads. */
  weft_http_req_opts o = {.size = sizeof o, .total_timeout = 0.2};
  double t0 = weft_now();
  T_RC(weft_http_fetch(s, "GET", url, &o, &r), WEFT_ETIMEDOUT);
  T_GE(weft_now() - t0, 0.19);
  T_LT(weft_now() - t0, 3); /* generous: a busy machine is slow */
  weft_http_req_opts o2 = {.size = sizeof o2, .read_timeout = 0.1};
  T_RC(weft_http_fetch(s, "GET", url, &o2, &r), WEFT_ETIMEDOUT);
  HC_QUIET(s);
  T_EQ(hc_stats(s).open, 0);
  weft_http_session_free(s);
  hc_fake_stop(&f);

  /* A body that stalls: the read timeout between reads, mid-body. */
  up(NULL);
  weft_http_session_opts so = {.size = sizeof so, .read_timeout = 0.1};
  T_OK(weft_http_session_new(&s, &so));
  T_RC(weft_http_get(s, URL(url, "/sleep?ms=500"), &r), WEFT_ETIMEDOUT);
  /* The connection was closed, not pooled; the next request works. */
  T_EQ(hc_stats(s).open, 0);
  char body[64];
  T_EQ(hc_get(s, URL(url, "/"), body, sizeof body), 200);
  HC_QUIET(s);
  weft_http_session_free(s);

  /* Connect timeout covers waiting for the pool: limit 1, held. */
  weft_http_session_opts lo = {.size = sizeof lo, .limit = 1};
  T_OK(weft_http_session_new(&s, &lo));
  weft_http_response *held;
  T_OK(weft_http_get(s, URL(url, "/stream/100000"), &held));
  weft_http_req_opts co = {.size = sizeof co, .connect_timeout = 0.1};
  T_RC(weft_http_fetch(s, "GET", URL(url, "/"), &co, &r), WEFT_ETIMEDOUT);
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.waiting, 0);
  T_EQ(st.open, 1);
  T_EQ(st.busy, 1);
  weft_http_response_free(held); /* unread: the connection closes */
  T_EQ(hc_stats(s).open, 0);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

/* ---- cancellation ---- */

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

static int t_cancel(void *arg) {
  (void)arg;
  up(NULL);
  weft_http_session_opts o = {.size = sizeof o, .limit = 1};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  /* Cancelled while the server thinks: the connection is closed. */
  cjob a = {.s = s};
  URL(a.url, "/sleep?ms=1000");
  weft_task *t;
  T_OK(weft_spawn(&t, cjob_run, &a));
  T_OK(weft_sleep(0.05));
  T_EQ(hc_stats(s).busy, 1);
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_RC(a.rc, WEFT_ECANCELED);
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.open, 0);
  HC_QUIET(s);
  /* Cancelled while waiting for the only connection. */
  cjob b = {.s = s}, c = {.s = s};
  URL(b.url, "/sleep?ms=100");
  URL(c.url, "/");
  weft_task *tb, *tc;
  T_OK(weft_spawn(&tb, cjob_run, &b));
  T_OK(weft_sleep(0.02));
  T_OK(weft_spawn(&tc, cjob_run, &c));
  T_OK(weft_sleep(0.02));
  T_EQ(hc_stats(s).waiting, 1);
  weft_cancel(tc);
  T_OK(weft_join(tc, NULL));
  T_RC(c.rc, WEFT_ECANCELED);
  T_EQ(hc_stats(s).waiting, 0);
  T_OK(weft_join(tb, NULL));
  T_EQ(b.rc, 200);
  st = hc_stats(s);
  T_EQ(st.open, 1);
  T_EQ(st.idle, 1);
  /* Cancelled mid-body: the connection is not pooled half-read. */
  cjob d = {.s = s};
  URL(d.url, "/stream/50000000");
  T_OK(weft_spawn(&t, cjob_run, &d));
  T_OK(weft_sleep(0.05));
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_TRUE(d.rc == WEFT_ECANCELED || d.rc == WEFT_ELIMIT);
  T_EQ(hc_stats(s).open, 0);
  char body[64];
  T_EQ(hc_get(s, URL(a.url, "/"), body, sizeof body), 200);
  T_STREQ(body, "Hello, World!");
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

/* A response freed with its body unread: small or large, the connection
 * is closed (HTTP/1.1), never handed on with bytes in it. */
static int t_unread(void *arg) {
  (void)arg;
  up(NULL);
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  char url[128], body[64];
  weft_http_response *r;
  T_OK(weft_http_get(s, URL(url, "/stream/100000"), &r));
  char buf[100];
  T_GT(weft_http_response_read(r, buf, sizeof buf), 0);
  weft_http_response_free(r);
  T_EQ(hc_stats(s).open, 0);
  T_EQ(hc_get(s, URL(url, "/"), body, sizeof body), 200);
  T_STREQ(body, "Hello, World!");
  HC_QUIET(s);
  /* Freeing the session with a response still held: the response stays
   * readable, then everything goes. */
  T_OK(weft_http_get(s, URL(url, "/stream/3000"), &r));
  weft_http_session_free(s);
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 3000);
  weft_http_response_free(r);
  down();
  return 0;
}

#define CASE(name, fn)                                                         \
  static void name(void) { RUN(fn, NULL); }
CASE(test_limits, t_limits)
CASE(test_idle, t_idle)
CASE(test_retry, t_retry)
CASE(test_broken, t_broken)
CASE(test_timeouts, t_timeouts)
CASE(test_cancel, t_cancel)
CASE(test_unread, t_unread)

static const t_case cases[] = {
    {"limits", test_limits},     {"idle", test_idle},
    {"retry", test_retry},       {"broken", test_broken},
    {"timeouts", test_timeouts}, {"cancel", test_cancel},
    {"unread", test_unread},     {NULL, NULL},
};

T_MAIN("http-client-pool", cases)
