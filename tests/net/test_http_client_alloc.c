/* http-client-alloc: every allocation of a client request fails once, in
 * turn (nghttp2's failmalloc): over HTTP/1.1 and HTTP/2, with a body each
 * way, a redirect and gzip. Each run must end in a clean error or success -
 * never a crash, a leak (under ASan) or a pool count left behind - and the
 * same session must then serve a request normally. The server runs on a
 * thread (and loop) of its own, whose allocations never fail: the faults
 * are the client's. */
#include <pthread.h>
#include <zlib.h>

#include "test_http_client_util.h"

static long fail_at;  /* the armed allocation that fails (1-based) */
static long counted;  /* armed allocations so far */
static bool armed;    /* only the client's request is counted */
static bool injected; /* the failure happened */

static pthread_t client_thread;

static bool should_fail(void) {
  if (!pthread_equal(pthread_self(), client_thread) || !armed)
    return false;
  if (++counted == fail_at) {
    injected = true;
    return true;
  }
  return false;
}

static void *f_malloc(size_t n) { return should_fail() ? NULL : malloc(n); }
static void *f_realloc(void *p, size_t n) {
  return should_fail() ? NULL : realloc(p, n);
}
static void f_free(void *p) { free(p); }

static const weft_allocator failing = {f_malloc, f_realloc, f_free};

/* /zip: a gzip'd body; /go: a redirect to it. */
static int h_zip(weft_http_request *r, void *arg) {
  (void)arg;
  static char text[20000];
  for (size_t i = 0; i < sizeof text; i++)
    text[i] = "0123456789"[i % 10];
  static unsigned char out[30000];
  z_stream z = {0};
  deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)text;
  z.avail_in = sizeof text;
  z.next_out = out;
  z.avail_out = sizeof out;
  deflate(&z, Z_FINISH);
  size_t n = z.total_out;
  deflateEnd(&z);
  int rc = weft_http_add_header(r, "Content-Encoding", "gzip");
  return rc ? rc : weft_http_respond(r, 200, "text/plain", out, n);
}

static int h_go(weft_http_request *r, void *arg) {
  (void)arg;
  int rc = weft_http_add_header(r, "Location", "/zip");
  return rc ? rc : weft_http_respond_text(r, 302, "go");
}

typedef struct run {
  bool h2;
  int rc;
  int port;
} run;

/* The server's thread: serves until `stop` is set. */
static _Atomic bool stop;
static _Atomic int srv_port;

static int srv_main(void *arg) {
  (void)arg;
  th_app app;
  th_app_init(&app);
  T_OK(weft_http_route(app.router, "GET", "/zip", h_zip, NULL));
  T_OK(weft_http_route(app.router, "GET", "/go", h_go, NULL));
  int port = 0;
  weft_http_server *srv = th_serve(&app, NULL, &port);
  srv_port = port;
  while (!stop)
    T_OK(weft_sleep(0.002));
  th_stop(srv, &app);
  return 0;
}

static void *srv_thread(void *arg) {
  (void)arg;
  RUN(srv_main, NULL);
  return NULL;
}

/* One request the way the suite makes it: POST a body to /echo, read it
 * back; GET /go (redirect, gzip) and read it. */
static int request(weft_http_session *s, int port) {
  char url[128];
  static char body[50000];
  memset(body, 'b', sizeof body);
  weft_http_req_opts o = {
      .size = sizeof o, .body = body, .body_len = sizeof body};
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
  weft_http_response *r;
  int rc = weft_http_fetch(s, "POST", url, &o, &r);
  if (rc != 0)
    return rc;
  const void *b;
  size_t n;
  rc = weft_http_response_body(r, &b, &n);
  if (rc == 0 && (n != sizeof body || weft_http_response_status(r) != 200))
    rc = WEFT_EBADMSG;
  weft_http_response_free(r);
  if (rc != 0)
    return rc;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/go", port);
  if ((rc = weft_http_get(s, url, &r)) != 0)
    return rc;
  rc = weft_http_response_body(r, &b, &n);
  if (rc == 0 && n != 20000)
    rc = WEFT_EBADMSG;
  weft_http_response_free(r);
  return rc;
}

static int t_one(void *arg) {
  run *ru = arg;
  int port = ru->port;
  weft_http_session_opts o = {.size = sizeof o, .h2 = ru->h2 ? 1 : 0};
  weft_http_session *s = NULL;
  armed = true;
  int rc = weft_http_session_new(&s, &o);
  if (rc == 0)
    rc = request(s, port);
  armed = false;
  ru->rc = rc;
  if (getenv("T_VERBOSE") != NULL)
    fprintf(stderr, "fail_at %ld: %s\n", fail_at, weft_err_name(rc));
  if (s != NULL) {
    /* Whatever failed, the pool is whole (once a stream reset has gone
     * out: the next loop turn) and the session works. */
    T_OK(weft_sleep(0.01));
    HC_QUIET(s);
    T_OK(request(s, port));
    HC_QUIET(s);
    weft_http_session_free(s);
  } else {
    T_RC(rc, WEFT_ENOMEM);
  }
  return 0;
}

static void each(bool h2) {
  int fails = 0;
  long n;
  for (n = 1; n < 5000; n++) {
    T_OK(weft_set_allocator(&failing));
    client_thread = pthread_self();
    fail_at = n;
    counted = 0;
    injected = false;
    stop = false;
    srv_port = 0;
    pthread_t th;
    T_EQ(pthread_create(&th, NULL, srv_thread, NULL), 0);
    while (srv_port == 0)
      usleep(1000);
    run ru = {.h2 = h2, .port = srv_port};
    RUN(t_one, &ru);
    stop = true;
    pthread_join(th, NULL);
    T_OK(weft_set_allocator(NULL));
    if (!injected) {
      T_OK(ru.rc); /* past the last allocation: it all worked */
      break;
    }
    if (ru.rc != 0)
      fails++;
  }
  fprintf(stderr,
          "  %s: %ld allocations, each failed once (%d requests "
          "failed cleanly)\n",
          h2 ? "h2c" : "HTTP/1.1", n - 1, fails);
  T_GT(n, 10);
}

static void test_h1(void) { each(false); }
static void test_h2(void) { each(true); }

static const t_case cases[] = {
    {"h1", test_h1},
    {"h2", test_h2},
    {NULL, NULL},
};

T_MAIN("http-client-alloc", cases)
