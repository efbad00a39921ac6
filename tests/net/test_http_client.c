/* http-client: the client against weft's own server over HTTP/1.1 - GET,
 * bodies of every kind both ways, keep-alive reuse counted on both sides,
 * redirects and loops, gzip and deflate, cookies, basic auth, the
 * User-Agent, URLs (IPv6 literals, ports, queries), and the errors that
 * need no misbehaving server (refused, bad URL, body limit). */
/* The test DNS server (a thread answering by name rules): first, for
 * _GNU_SOURCE. */
#include "../../apps/resolve/responder.h"

#include <weft/dns.h>
#include <zlib.h>

#include "http_client_int.h"
#include "test_http_client_util.h"

static th_app app;
static weft_http_server *srv;
static int port;
static char base[64];

/* ---- more handlers ---- */

/* /redir?n=K: 302 to /redir?n=K-1, and at 0 the hello. */
static int h_redir(weft_http_request *r, void *arg) {
  (void)arg;
  int n = atoi(weft_http_query(r) + 2);
  if (n <= 0)
    return weft_http_respond_text(r, 200, "arrived");
  char loc[64];
  snprintf(loc, sizeof loc, "/redir?n=%d", n - 1);
  T_OK(weft_http_add_header(r, "Location", loc));
  return weft_http_respond_text(r, 302, "moving on");
}

/* /loop: redirects to itself (relative "loop"). */
static int h_loop(weft_http_request *r, void *arg) {
  (void)arg;
  T_OK(weft_http_add_header(r, "Location", "loop"));
  return weft_http_respond_text(r, 302, "again");
}

/* /status/{code}: that code, with Location /method for 3xx. */
static int h_status(weft_http_request *r, void *arg) {
  (void)arg;
  int code = atoi(weft_http_param(r, "code"));
  if (code / 100 == 3)
    T_OK(weft_http_add_header(r, "Location", "/method"));
  return weft_http_respond_text(r, code, "status");
}

/* /method: "<METHOD> <body length>". */
static int h_method(weft_http_request *r, void *arg) {
  (void)arg;
  const void *b;
  size_t n = 0;
  int rc = weft_http_read_body(r, &b, &n);
  if (rc != 0)
    return rc;
  char out[64];
  snprintf(out, sizeof out, "%s %zu", weft_http_method(r), n);
  return weft_http_respond_text(r, 200, out);
}

/* /gzip and /deflate: 100 000 bytes of text, compressed. */
static int h_zip(weft_http_request *r, void *arg) {
  bool gz = arg != NULL;
  static char text[100000];
  for (size_t i = 0; i < sizeof text; i++)
    text[i] = "abcdefghij"[i % 10];
  z_stream z = {0};
  T_EQ(deflateInit2(&z, 6, Z_DEFLATED, gz ? 31 : 15, 8, Z_DEFAULT_STRATEGY),
       Z_OK);
  static unsigned char out[120000];
  z.next_in = (Bytef *)text;
  z.avail_in = sizeof text;
  z.next_out = out;
  z.avail_out = sizeof out;
  T_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t n = z.total_out;
  deflateEnd(&z);
  T_OK(weft_http_add_header(r, "Content-Encoding", gz ? "gzip" : "deflate"));
  return weft_http_respond(r, 200, "text/plain", out, n);
}

/* /setcookie: sets two cookies; /cookie: echoes the Cookie header. */
static int h_setcookie(weft_http_request *r, void *arg) {
  (void)arg;
  T_OK(weft_http_add_header(r, "Set-Cookie", "a=1; Path=/"));
  T_OK(weft_http_add_header(r, "Set-Cookie", "b=two; Path=/; HttpOnly"));
  T_OK(weft_http_add_header(r, "Set-Cookie", "gone=x; Max-Age=0"));
  return weft_http_respond_text(r, 200, "set");
}

static int h_cookie(weft_http_request *r, void *arg) {
  (void)arg;
  const char *c = weft_http_header(r, "cookie");
  return weft_http_respond_text(r, 200, c ? c : "(none)");
}

/* /auth: the Authorization header; /ua: the User-Agent. */
static int h_auth(weft_http_request *r, void *arg) {
  const char *v = weft_http_header(r, arg ? "user-agent" : "authorization");
  return weft_http_respond_text(r, 200, v ? v : "(none)");
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

/* ---- the suite's server ---- */

static void up(void) {
  th_app_init(&app);
  T_OK(weft_http_route(app.router, "GET", "/redir", h_redir, NULL));
  T_OK(weft_http_route(app.router, "GET", "/loop", h_loop, NULL));
  T_OK(weft_http_route(app.router, "*", "/status/{code}", h_status, NULL));
  T_OK(weft_http_route(app.router, "*", "/method", h_method, NULL));
  T_OK(weft_http_route(app.router, "GET", "/gzip", h_zip, "gz"));
  T_OK(weft_http_route(app.router, "GET", "/deflate", h_zip, NULL));
  T_OK(weft_http_route(app.router, "GET", "/setcookie", h_setcookie, NULL));
  T_OK(weft_http_route(app.router, "GET", "/cookie", h_cookie, NULL));
  T_OK(weft_http_route(app.router, "GET", "/auth", h_auth, NULL));
  T_OK(weft_http_route(app.router, "GET", "/ua", h_auth, "ua"));
  T_OK(weft_http_route(app.router, "GET", "/flood", h_flood, NULL));
  srv = th_serve(&app, NULL, &port);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
}

static void down(void) { th_stop(srv, &app); }

static weft_http_server_stats sstats(void) {
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  return st;
}

#define URL(buf, path)                                                         \
  (snprintf((buf), sizeof(buf), "%s%s", base, (path)), (buf))

/* ---- tests ---- */

static int t_get(void *arg) {
  (void)arg;
  up();
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  char url[128], body[256];
  weft_http_response *r;
  T_OK(weft_http_get(s, URL(url, "/"), &r));
  T_EQ(weft_http_response_status(r), 200);
  T_EQ(weft_http_response_version(r), 11);
  /* Header names in any case. */
  T_STREQ(weft_http_response_header(r, "CONTENT-TYPE"),
          "text/plain; charset=utf-8");
  T_STREQ(weft_http_response_header(r, "content-length"), "13");
  T_EQ(weft_http_response_content_length(r), 13);
  T_TRUE(weft_http_response_header(r, "x-nothing") == NULL);
  T_GT(weft_http_response_header_count(r), 2);
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 13);
  T_STREQ(b, "Hello, World!");
  T_STREQ(weft_http_response_url(r), url);
  weft_http_response_free(r);
  /* Nine more: one connection, reused. */
  for (int i = 0; i < 9; i++)
    T_EQ(hc_get(s, url, body, sizeof body), 200);
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.connects, 1);
  T_EQ(st.reused, 9);
  T_EQ(st.open, 1);
  T_EQ(sstats().connections, 1);
  HC_QUIET(s);
  /* A 404 is a response, not an error. */
  T_EQ(hc_get(s, URL(url, "/nowhere"), body, sizeof body), 404);
  /* The User-Agent. */
  T_EQ(hc_get(s, URL(url, "/ua"), body, sizeof body), 200);
  T_STREQ(body, "weft/" WEFT_VERSION_STRING);
  weft_http_session_free(s);
  weft_http_session_opts o = {.size = sizeof o, .user_agent = "tester/1"};
  T_OK(weft_http_session_new(&s, &o));
  T_EQ(hc_get(s, URL(url, "/ua"), body, sizeof body), 200);
  T_STREQ(body, "tester/1");
  weft_http_session_free(s);
  down();
  return 0;
}

static int t_urls(void *arg) {
  (void)arg;
  up();
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  char url[128], body[256];
  /* A query, a fragment (not sent), "localhost" through the resolver. */
  snprintf(url, sizeof url, "http://localhost:%d/users/7?x=1#frag", port);
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  T_STREQ(body, "user 7");
  /* An IPv6 literal, when the machine has ::1 (a server of its own). */
  th_app a6;
  th_app_init(&a6);
  weft_addr addr;
  (void)weft_addr_ip(&addr, "::1", 0);
  weft_http_server *s6 = NULL;
  if (weft_http_serve(&s6, &addr, weft_http_router_handler, a6.router, NULL) ==
      0) {
    weft_addr real;
    T_OK(weft_http_server_addr(s6, &real));
    snprintf(url, sizeof url, "http://[::1]:%d/users/v6",
             weft_addr_port(&real));
    T_EQ(hc_get(s, url, body, sizeof body), 200);
    T_STREQ(body, "user v6");
    th_stop(s6, &a6);
  } else {
    weft_http_router_free(a6.router);
  }
  /* Bad URLs. */
  weft_http_response *r;
  T_RC(weft_http_get(s, "127.0.0.1/", &r), WEFT_EINVAL);
  T_RC(weft_http_get(s, "ftp://127.0.0.1/", &r), WEFT_ENOTSUP);
  T_RC(weft_http_get(s, "http://127.0.0.1:99999/", &r), WEFT_EINVAL);
  T_RC(weft_http_get(s, "http:///x", &r), WEFT_EINVAL);
  T_RC(weft_http_get(s, "http://[::1/", &r), WEFT_EINVAL);
  /* A refused port: a clear error, nothing left counted. */
  int closed = hc_free_port();
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", closed);
  T_RC(weft_http_get(s, url, &r), WEFT_ECONNREFUSED);
  weft_http_session_stats st = hc_stats(s);
  T_EQ(st.connect_failures, 1);
  /* A name that does not resolve (NXDOMAIN from the test DNS server). */
  dnsr *dns = NULL;
  T_EQ(dnsr_start(&dns, "127.0.0.1", 0), 0);
  weft_addr da;
  (void)weft_addr_ip(&da, "127.0.0.1", dns->port);
  const char *const none[] = {NULL};
  weft_resolver_opts ro = {.size = sizeof ro,
                           .servers = &da,
                           .nservers = 1,
                           .timeout = 1,
                           .tries = 1,
                           .domains = none};
  T_OK(weft_dns_configure(&ro));
  T_RC(weft_http_get(s, "http://no-such-host.nx.test/", &r), WEFT_ENOHOST);
  dnsr_stop(dns);
  T_EQ(hc_stats(s).connect_failures, 2);
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
  if (n > 1000)
    n = 1000 + (g->left % 7000 < n - 1000 ? g->left % 7000 : 0);
  unsigned char *p = buf;
  for (size_t i = 0; i < n; i++) {
    p[i] = (unsigned char)(g->left - i);
    g->sum += p[i];
  }
  g->left -= n;
  return (ssize_t)n;
}

static int t_bodies(void *arg) {
  (void)arg;
  up();
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  char url[128];
  /* Bytes out, bytes back. */
  static char big[300000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('A' + i % 23);
  weft_http_req_opts o = {.size = sizeof o,
                          .body = big,
                          .body_len = sizeof big,
                          .content_type = "application/octet-stream"};
  weft_http_response *r;
  T_OK(weft_http_fetch(s, "POST", URL(url, "/echo"), &o, &r));
  T_EQ(weft_http_response_status(r), 200);
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, sizeof big);
  T_TRUE(memcmp(b, big, sizeof big) == 0);
  weft_http_response_free(r);
  /* Streamed from a function: unknown length (chunked), then known. */
  for (int known = 0; known < 2; known++) {
    gen g = {.left = 200000};
    weft_http_req_opts f = {.size = sizeof f,
                            .body_fn = gen_fn,
                            .body_arg = &g,
                            .body_fn_len = known ? 200000 : -1};
    T_OK(weft_http_fetch(s, "PUT", URL(url, "/count"), &f, &r));
    T_OK(weft_http_response_body(r, &b, &n));
    char want[64];
    snprintf(want, sizeof want, "200000 %llu", (unsigned long long)g.sum);
    T_STREQ(b, want);
    weft_http_response_free(r);
  }
  /* A file. */
  char path[] = "/tmp/weft-hc-body-XXXXXX";
  int fd = mkstemp(path);
  T_EQ(write(fd, big, 100000), 100000);
  close(fd);
  weft_http_req_opts ff = {.size = sizeof ff, .body_file = path};
  T_OK(weft_http_fetch(s, "POST", URL(url, "/echo"), &ff, &r));
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 100000);
  T_TRUE(memcmp(b, big, 100000) == 0);
  weft_http_response_free(r);
  ff.body_file = "/nonexistent/file";
  T_RC(weft_http_fetch(s, "POST", URL(url, "/echo"), &ff, &r), WEFT_ENOENT);
  unlink(path);
  /* A chunked response, streamed in small reads, with its trailer. */
  T_OK(weft_http_get(s, URL(url, "/stream/1000000"), &r));
  T_EQ(weft_http_response_content_length(r), -1);
  T_STREQ(weft_http_response_header(r, "transfer-encoding"), "chunked");
  size_t total = 0;
  bool ok = true;
  char buf[777];
  ssize_t k;
  while ((k = weft_http_response_read(r, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < k; i++)
      ok &= buf[i] == (char)('a' + (total + (size_t)i) % 26);
    total += (size_t)k;
  }
  T_EQ(k, 0);
  T_EQ(total, 1000000);
  T_TRUE(ok);
  T_STREQ(weft_http_response_trailer(r, "x-total"), "1000000");
  T_EQ(weft_http_response_read(r, buf, sizeof buf), 0);
  weft_http_response_free(r);
  /* Backpressure: nothing is read ahead of the caller, so a reader that
   * stops holds the server back (here at what the TCP buffers hold: far
   * less than the 64 MiB it wants to send). */
  flooded = 0;
  T_OK(weft_http_get(s, URL(url, "/flood"), &r));
  T_GT(weft_http_response_read(r, buf, sizeof buf), 0);
  T_OK(weft_sleep(0.3));
  T_LT(flooded, 16 << 20);
  weft_http_response_free(r);
  /* The body limit: WEFT_ELIMIT, and the connection is not kept. */
  weft_http_req_opts lim = {.size = sizeof lim, .max_body = 1000};
  T_OK(weft_http_fetch(s, "GET", URL(url, "/stream/5000"), &lim, &r));
  T_RC(weft_http_response_body(r, &b, &n), WEFT_ELIMIT);
  T_RC(weft_http_response_read(r, buf, sizeof buf), WEFT_ELIMIT);
  weft_http_response_free(r);
  /* HEAD: the head only, and the connection goes on. */
  T_OK(weft_http_fetch(s, "HEAD", URL(url, "/"), NULL, &r));
  T_EQ(weft_http_response_status(r), 200);
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 0);
  weft_http_response_free(r);
  /* Headers of the caller's, and the ones it may not set. */
  weft_http_field hf[] = {{.name = "X-Echo", .value = "mine"}};
  weft_http_req_opts ho = {.size = sizeof ho, .headers = hf, .nheaders = 1};
  T_OK(weft_http_fetch(s, "GET", URL(url, "/header"), &ho, &r));
  T_OK(weft_http_response_body(r, &b, &n));
  T_STREQ(b, "mine");
  weft_http_response_free(r);
  weft_http_field bad[] = {{.name = "Content-Length", .value = "3"}};
  ho.headers = bad;
  T_RC(weft_http_fetch(s, "GET", URL(url, "/header"), &ho, &r), WEFT_EINVAL);
  weft_http_field crlf[] = {{.name = "X-A", .value = "a\r\nb: c"}};
  ho.headers = crlf;
  T_RC(weft_http_fetch(s, "GET", URL(url, "/header"), &ho, &r), WEFT_EINVAL);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

static int t_redirects(void *arg) {
  (void)arg;
  up();
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  char url[128];
  weft_http_response *r;
  T_OK(weft_http_get(s, URL(url, "/redir?n=5"), &r));
  T_EQ(weft_http_response_status(r), 200);
  T_EQ(weft_http_response_redirects(r), 5);
  char want[128];
  snprintf(want, sizeof want, "%s/redir?n=0", base);
  T_STREQ(weft_http_response_url(r), want);
  weft_http_response_free(r);
  /* All of them on one connection. */
  T_EQ(hc_stats(s).connects, 1);
  /* Over the limit, and a loop. */
  weft_http_req_opts o = {.size = sizeof o, .max_redirects = 3};
  T_RC(weft_http_fetch(s, "GET", URL(url, "/redir?n=5"), &o, &r),
       WEFT_EHTTP_REDIRECTS);
  T_RC(weft_http_get(s, URL(url, "/loop"), &r), WEFT_EHTTP_REDIRECTS);
  /* Not followed when asked. */
  o.max_redirects = -1;
  T_OK(weft_http_fetch(s, "GET", URL(url, "/redir?n=1"), &o, &r));
  T_EQ(weft_http_response_status(r), 302);
  T_STREQ(weft_http_response_header(r, "location"), "/redir?n=0");
  weft_http_response_free(r);
  /* Methods as browsers rewrite them. */
  static const struct {
    int code;
    const char *method, *want;
  } cases[] = {
      {301, "POST", "GET 0"}, {302, "POST", "GET 0"},  {303, "POST", "GET 0"},
      {303, "PUT", "GET 0"},  {307, "POST", "POST 4"}, {308, "PUT", "PUT 4"},
      {302, "PUT", "PUT 4"},  {301, "GET", "GET 4"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[32];
    snprintf(path, sizeof path, "/status/%d", cases[i].code);
    weft_http_req_opts b = {.size = sizeof b, .body = "data", .body_len = 4};
    T_OK(weft_http_fetch(s, cases[i].method, URL(url, path), &b, &r));
    const void *d;
    size_t n;
    T_OK(weft_http_response_body(r, &d, &n));
    if (strcmp(d, cases[i].want) != 0)
      fprintf(stderr, "  %d %s -> %s\n", cases[i].code, cases[i].method,
              (const char *)d);
    T_STREQ(d, cases[i].want);
    weft_http_response_free(r);
  }
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

static int t_gzip(void *arg) {
  (void)arg;
  up();
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  char url[128];
  const char *paths[] = {"/gzip", "/deflate"};
  for (int i = 0; i < 2; i++) {
    weft_http_response *r;
    T_OK(weft_http_get(s, URL(url, paths[i]), &r));
    T_LT(weft_http_response_content_length(r), 10000);
    const void *b;
    size_t n;
    T_OK(weft_http_response_body(r, &b, &n));
    T_EQ(n, 100000);
    T_TRUE(memcmp(b, "abcdefghijabc", 13) == 0);
    weft_http_response_free(r);
  }
  HC_QUIET(s);
  T_EQ(hc_stats(s).connects, 1);
  weft_http_session_free(s);
  /* Off: the bytes as sent. */
  weft_http_session_opts o = {.size = sizeof o, .decompress = -1};
  T_OK(weft_http_session_new(&s, &o));
  weft_http_response *r;
  T_OK(weft_http_get(s, URL(url, "/gzip"), &r));
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_LT(n, 10000);
  T_EQ(((const unsigned char *)b)[0], 0x1f);
  weft_http_response_free(r);
  weft_http_session_free(s);
  down();
  return 0;
}

static int t_cookies_auth(void *arg) {
  (void)arg;
  up();
  char url[128], body[256];
  /* Without the jar, nothing is kept. */
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  T_EQ(hc_get(s, URL(url, "/setcookie"), body, sizeof body), 200);
  T_EQ(hc_get(s, URL(url, "/cookie"), body, sizeof body), 200);
  T_STREQ(body, "(none)");
  weft_http_session_free(s);
  weft_http_session_opts o = {.size = sizeof o, .cookies = true};
  T_OK(weft_http_session_new(&s, &o));
  T_EQ(hc_get(s, URL(url, "/cookie"), body, sizeof body), 200);
  T_STREQ(body, "(none)");
  T_EQ(hc_get(s, URL(url, "/setcookie"), body, sizeof body), 200);
  T_EQ(hc_get(s, URL(url, "/cookie"), body, sizeof body), 200);
  T_TRUE(strcmp(body, "b=two; a=1") == 0 || strcmp(body, "a=1; b=two") == 0);
  /* Another host (localhost is not 127.0.0.1 for cookies). */
  snprintf(url, sizeof url, "http://localhost:%d/cookie", port);
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  T_STREQ(body, "(none)");
  /* Basic auth, from the options and from the URL. */
  weft_http_req_opts a = {
      .size = sizeof a, .user = "Aladdin", .password = "open sesame"};
  weft_http_response *r;
  T_OK(weft_http_fetch(s, "GET", URL(url, "/auth"), &a, &r));
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_STREQ(b, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  weft_http_response_free(r);
  snprintf(url, sizeof url, "http://Aladdin:open%%20sesame@127.0.0.1:%d/auth",
           port);
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  T_STREQ(body, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  T_EQ(hc_get(s, URL(url, "/auth"), body, sizeof body), 200);
  T_STREQ(body, "(none)");
  /* Credentials longer than any fixed buffer go whole: "u:" and 700
   * bytes, 936 of base64. */
  static char pass[701], cred[703], want[6 + 940];
  memset(pass, 'p', 700);
  snprintf(cred, sizeof cred, "u:%s", pass);
  memcpy(want, "Basic ", 6);
  weft__hc_base64(cred, 702, want + 6);
  weft_http_req_opts la = {.size = sizeof la, .user = "u", .password = pass};
  T_OK(weft_http_fetch(s, "GET", URL(url, "/auth"), &la, &r));
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, strlen(want));
  T_STREQ(b, want);
  weft_http_response_free(r);
  weft_http_session_free(s);
  down();
  return 0;
}

/* Many tasks at once through a semaphore (the guide's tip), on a small
 * pool: all answered, never more connections than allowed. */
typedef struct many {
  weft_http_session *s;
  weft_sem *sem;
  const char *url;
  int ok;
} many;

static int many_one(void *arg) {
  many *m = arg;
  if (weft_sem_acquire(m->sem) != 0)
    return -1;
  char body[64];
  int rc = hc_get(m->s, m->url, body, sizeof body);
  weft_sem_release(m->sem);
  if (rc == 200 && strcmp(body, "slept 20") == 0)
    m->ok++;
  return 0;
}

static int t_many(void *arg) {
  (void)arg;
  up();
  weft_http_session_opts o = {.size = sizeof o, .limit = 8};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  char url[128];
  many m = {.s = s, .url = URL(url, "/sleep?ms=20")};
  T_OK(weft_sem_new(&m.sem, 50));
  weft_group *g;
  T_OK(weft_group_new(&g));
  for (int i = 0; i < 200; i++)
    T_OK(weft_group_spawn(g, NULL, many_one, &m));
  T_OK(weft_group_wait(g));
  weft_group_free(g);
  weft_sem_free(m.sem);
  T_EQ(m.ok, 200);
  weft_http_session_stats st = hc_stats(s);
  T_LE(st.peak_open, 8);
  T_EQ(st.connects, 8);
  T_LE(sstats().connections, 8);
  HC_QUIET(s);
  weft_http_session_free(s);
  down();
  return 0;
}

/* URL parsing and joining, without I/O. */
static void test_url_parts(void) {
  static const struct {
    const char *url;
    bool tls;
    const char *host, *authority, *target, *userinfo;
    int port;
  } ok[] = {
      {"http://Example.ORG", false, "example.org", "example.org", "/", NULL,
       80},
      {"https://a.b:8443/x/y?q=1#frag", true, "a.b", "a.b:8443", "/x/y?q=1",
       NULL, 8443},
      {"http://[::1]:8080/p", false, "::1", "[::1]:8080", "/p", NULL, 8080},
      {"https://[fe80::1]/", true, "fe80::1", "[fe80::1]", "/", NULL, 443},
      {"http://u:p%40ss@h:81?x", false, "h", "h:81", "/?x", "u:p@ss", 81},
      {"HTTP://h:80/", false, "h", "h", "/", NULL, 80},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    hc_url u;
    T_OK(weft__hc_url_parse(&u, ok[i].url));
    T_EQ(u.tls, ok[i].tls);
    T_STREQ(u.host, ok[i].host);
    T_STREQ(u.authority, ok[i].authority);
    T_STREQ(u.target, ok[i].target);
    T_EQ(u.port, ok[i].port);
    if (ok[i].userinfo != NULL)
      T_STREQ(u.userinfo, ok[i].userinfo);
    else
      T_TRUE(u.userinfo == NULL);
    weft__hc_url_free(&u);
  }
  static const char *const bad[] = {
      "",
      "example.org/",
      "http://",
      "http://:80/",
      "http://h:0/",
      "http://h:65536/",
      "http://h:8x/",
      "http://[::1/",
      "http://[::1]x/",
      "http://h /",
      "http://h/a b",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hc_url u;
    T_RC(weft__hc_url_parse(&u, bad[i]), WEFT_EINVAL);
  }
  hc_url u;
  T_RC(weft__hc_url_parse(&u, "ftp://h/"), WEFT_ENOTSUP);
  static const struct {
    const char *base, *ref, *want;
  } joins[] = {
      {"http://h/a/b?q", "c", "http://h/a/c"},
      {"http://h/a/b", "/x?y", "http://h/x?y"},
      {"http://h/a/b", "../c", "http://h/c"},
      {"http://h/a/b/c", "./d/../e", "http://h/a/b/e"},
      {"http://h/a/b", "?z", "http://h/a/b?z"},
      {"http://h", "x", "http://h/x"},
      {"https://h/a", "//other:81/p", "https://other:81/p"},
      {"http://h/a", "https://o/p", "https://o/p"},
  };
  for (size_t i = 0; i < sizeof joins / sizeof joins[0]; i++) {
    char *j = weft__hc_url_join(joins[i].base, joins[i].ref);
    T_STREQ(j, joins[i].want);
    weft__free(j);
  }
}

#define CASE(name, fn)                                                         \
  static void name(void) { RUN(fn, NULL); }
CASE(test_get, t_get)
CASE(test_urls, t_urls)
CASE(test_bodies, t_bodies)
CASE(test_redirects, t_redirects)
CASE(test_gzip, t_gzip)
CASE(test_cookies_auth, t_cookies_auth)
CASE(test_many, t_many)

static const t_case cases[] = {
    {"url_parts", test_url_parts},
    {"get", test_get},
    {"urls", test_urls},
    {"bodies", test_bodies},
    {"redirects", test_redirects},
    {"gzip", test_gzip},
    {"cookies_auth", test_cookies_auth},
    {"many", test_many},
    {NULL, NULL},
};

T_MAIN("http-client", cases)
