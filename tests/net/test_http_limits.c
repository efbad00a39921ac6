/* http-limits: every limit of the HTTP server hit on purpose, each with the
 * answer it must get, while other connections go on being served:
 * 414, 431 (size and count), 413 (Content-Length and a growing chunked
 * body), 408 (header timeout, body timeout), keep-alive idle close,
 * smuggling attempts on the wire (400 and close: the smuggled request is
 * never answered), slowloris (many connections sending a byte at a time),
 * HTTP/2 stream limit (REFUSED_STREAM), rapid reset (CVE-2023-44487),
 * CONTINUATION flood, PING and SETTINGS floods, an HPACK bomb (431).
 */
#include <arpa/inet.h>

#include "test_http_util.h"

/* Reads a whole body with the server's default limit (1 MiB). */
static int h_body(weft_http_request *r, void *arg) {
  (void)arg;
  const void *b;
  size_t n;
  int rc = weft_http_read_body(r, &b, &n);
  if (rc != 0)
    return rc;
  char out[32];
  snprintf(out, sizeof out, "got %zu", n);
  return weft_http_respond_text(r, 200, out);
}

static weft_http_server *serve(th_app *a, const weft_http_server_opts *o,
                               int *port) {
  th_app_init(a);
  T_OK(weft_http_route(a->router, "POST", "/body", h_body, NULL));
  return th_serve(a, o, port);
}

/* A request on a fresh connection that must be answered at once. */
static void still_served(int port) {
  char resp[1024];
  static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            "\r\n";
  double t0 = weft_now();
  T_GT(th_raw(port, req, sizeof req - 1, resp, sizeof resp, 2), 0);
  T_TRUE(strstr(resp, "Hello, World!") != NULL);
  T_LT(weft_now() - t0, 0.5);
}

/* Sends req and expects `status` and a closed connection. */
static void expect(int port, const char *req, size_t n, const char *status) {
  static char resp[65536];
  ssize_t got = th_raw(port, req, n, resp, sizeof resp, 5);
  T_GT(got, 0);
  if (strstr(resp, status) != resp)
    fprintf(stderr, "  want %s, got: %.80s\n", status, resp);
  T_TRUE(strstr(resp, status) == resp);
  T_EQ(th_count(resp, "HTTP/1.1 "), 1); /* nothing after it */
}

static int m_sizes(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  char *req = malloc(100000);
  strcpy(req, "GET /");
  memset(req + 5, 'a', 9000);
  strcpy(req + 9005, " HTTP/1.1\r\nHost: x\r\n\r\n");
  expect(port, req, strlen(req), "HTTP/1.1 414 ");
  strcpy(req, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
  size_t n = strlen(req);
  memset(req + n, 'b', 40000);
  strcpy(req + n + 40000, "\r\n\r\n");
  expect(port, req, strlen(req), "HTTP/1.1 431 ");
  strcpy(req, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 150; i++)
    sprintf(req + strlen(req), "X-%d: v\r\n", i);
  strcat(req, "\r\n");
  expect(port, req, strlen(req), "HTTP/1.1 431 ");
  /* 413: announced, and grown past the limit in chunks. */
  static const char big[] = "POST /body HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: 2000000\r\n\r\n";
  expect(port, big, sizeof big - 1, "HTTP/1.1 413 ");
  strcpy(req, "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
              "chunked\r\n\r\n");
  for (int i = 0; i < 20; i++) {
    n = strlen(req);
    strcpy(req + n, "1000\r\n");
    memset(req + n + 6, 'c', 4096);
    strcpy(req + n + 6 + 4096, "\r\n");
  }
  /* 80 KiB of chunks so far: under the limit. The rest comes slowly from a
   * 1.2 MiB body: the handler's read fails and 413 goes back. */
  char *huge = malloc(1300000 + 200);
  strcpy(huge, "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
               "chunked\r\n\r\n");
  n = strlen(huge);
  for (int i = 0; i < 300; i++) {
    memcpy(huge + n, "1000\r\n", 6);
    memset(huge + n + 6, 'c', 4096);
    memcpy(huge + n + 6 + 4096, "\r\n", 2);
    n += 6 + 4096 + 2;
  }
  expect(port, huge, n, "HTTP/1.1 413 ");
  free(huge);
  free(req);
  still_served(port);
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_GE(st.bad_requests, 5);
  th_stop(srv, &a);
  return 0;
}
static void test_sizes(void) { RUN(m_sizes, NULL); }

/* The smuggled second request must never be answered. */
static int m_smuggling(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  static const char *const attempts[] = {
      "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
      "GET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
      "Content-Length: 44\r\n\r\n"
      "GET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      " chunked\r\nX: y\r\n\r\n0\r\n\r\n"
      "GET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabcXX0\r\n\r\nGET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;\r\nabc\r\n0\r\n\r\nGET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "1g\r\na\r\n0\r\n\r\nGET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
      "0\r\n\r\nGET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /body HTTP/1.1\r\nHost: x\nContent-Length: 44\r\n\r\n"
      "GET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n"
      "GET /users/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      NULL};
  static char resp[8192];
  for (int i = 0; attempts[i] != NULL; i++) {
    ssize_t n =
        th_raw(port, attempts[i], strlen(attempts[i]), resp, sizeof resp, 5);
    T_GT(n, 0);
    if (strstr(resp, "HTTP/1.1 400 ") != resp)
      fprintf(stderr, "  attempt %d: %.60s\n", i, resp);
    T_TRUE(strstr(resp, "HTTP/1.1 400 ") == resp);
    T_TRUE(strstr(resp, "smuggled") == NULL);
    T_TRUE(strstr(resp, "Connection: close") != NULL);
  }
  still_served(port);
  th_stop(srv, &a);
  return 0;
}
static void test_smuggling(void) { RUN(m_smuggling, NULL); }

static int m_timeouts(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server_opts o = {.size = sizeof o,
                             .header_timeout = 0.3,
                             .body_timeout = 0.3,
                             .keepalive_timeout = 0.3};
  weft_http_server *srv = serve(&a, &o, &port);
  static char resp[4096];
  /* Half a head: 408 after the header timeout. */
  double t0 = weft_now();
  static const char half[] = "GET / HTTP/1.1\r\nHost: x\r\n";
  T_GT(th_raw(port, half, sizeof half - 1, resp, sizeof resp, 3), 0);
  T_TRUE(strstr(resp, "HTTP/1.1 408 ") == resp);
  T_GE(weft_now() - t0, 0.29);
  T_LT(weft_now() - t0, 1.5);
  /* A body that stops: the handler's read times out, 408. */
  static const char body[] = "POST /body HTTP/1.1\r\nHost: x\r\n"
                             "Content-Length: 10\r\n\r\nabc";
  t0 = weft_now();
  T_GT(th_raw(port, body, sizeof body - 1, resp, sizeof resp, 3), 0);
  T_TRUE(strstr(resp, "HTTP/1.1 408 ") == resp);
  T_LT(weft_now() - t0, 1.5);
  /* An idle keep-alive connection is closed after the idle timeout. */
  static const char one[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  t0 = weft_now();
  T_GT(th_raw(port, one, sizeof one - 1, resp, sizeof resp, 3), 0);
  T_TRUE(strstr(resp, "Hello, World!") != NULL);
  T_GE(weft_now() - t0, 0.29);
  T_LT(weft_now() - t0, 1.5);
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_GE(st.timeouts, 2);
  th_stop(srv, &a);
  return 0;
}
static void test_timeouts(void) { RUN(m_timeouts, NULL); }

/* ---- slowloris ---- */

typedef struct loris {
  int port;
  bool got_408;
  bool closed;
} loris;

/* Sends a head a byte at a time, every 20 ms, until the server ends it. */
static int loris_main(void *arg) {
  loris *l = arg;
  weft_addr ad;
  (void)weft_addr_ip(&ad, "127.0.0.1", l->port);
  weft_stream *s;
  if (weft_stream_connect_addr(&s, &ad, NULL) != 0)
    return 0;
  static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "\r\n\r\n";
  char resp[512];
  ssize_t n = 0;
  for (size_t i = 0; i < sizeof head - 1; i++) {
    if (weft_stream_write(s, head + i, 1) != 0 || weft_sleep(0.02) != 0)
      break;
    n = weft_stream_try_read(s, resp, sizeof resp - 1);
    if (n != WEFT_EAGAIN)
      break; /* answered (or closed) */
  }
  if (n == WEFT_EAGAIN || n == 0) {
    weft_timeout sc;
    weft_timeout_enter(&sc, 3);
    n = weft_stream_read(s, resp, sizeof resp - 1);
    (void)weft_timeout_exit(&sc);
  }
  if (n > 0) {
    resp[n] = '\0';
    l->got_408 = strstr(resp, "HTTP/1.1 408") == resp;
  }
  weft_stream_abort(s);
  return 0;
}

static int m_slowloris(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server_opts o = {.size = sizeof o, .header_timeout = 1};
  weft_http_server *srv = serve(&a, &o, &port);
  enum { N = 300 };
  static loris l[N];
  weft_task *t[N];
  for (int i = 0; i < N; i++) {
    l[i] = (loris){.port = port};
    T_OK(weft_spawn(&t[i], loris_main, &l[i]));
  }
  /* While they trickle, normal requests are answered at once. */
  (void)weft_sleep(0.2);
  double worst = 0;
  for (int i = 0; i < 20; i++) {
    double t0 = weft_now();
    still_served(port);
    if (weft_now() - t0 > worst)
      worst = weft_now() - t0;
    (void)weft_sleep(0.02);
  }
  T_LT(worst, 0.5);
  weft_stats ls;
  weft_loop_stats(weft_loop_current(), &ls);
  /* Heads that have not arrived hold no handler task on the server. */
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_EQ(st.in_flight, 0);
  int got = 0;
  for (int i = 0; i < N; i++) {
    T_OK(weft_join(t[i], NULL));
    got += l[i].got_408;
  }
  T_EQ(got, N);
  weft_http_server_stats_get(srv, &st);
  T_GE(st.timeouts, N);
  th_stop(srv, &a);
  return 0;
}
static void test_slowloris(void) { RUN(m_slowloris, NULL); }

/* ---- HTTP/2 on a raw socket ---- */

static size_t frame(uint8_t *b, int type, int flags, uint32_t sid,
                    const void *payload, size_t n) {
  b[0] = (uint8_t)(n >> 16);
  b[1] = (uint8_t)(n >> 8);
  b[2] = (uint8_t)n;
  b[3] = (uint8_t)type;
  b[4] = (uint8_t)flags;
  b[5] = (uint8_t)(sid >> 24 & 0x7f);
  b[6] = (uint8_t)(sid >> 16);
  b[7] = (uint8_t)(sid >> 8);
  b[8] = (uint8_t)sid;
  if (n > 0)
    memcpy(b + 9, payload, n);
  return 9 + n;
}

/* GET / (HPACK: indexed :method GET, :path /, :scheme http, literal
 * :authority). */
static const uint8_t get_block[] = {0x82, 0x84, 0x86, 0x41, 1, 'x'};

static weft_stream *h2_open(int port) {
  weft_addr ad;
  (void)weft_addr_ip(&ad, "127.0.0.1", port);
  weft_stream *s = NULL;
  T_OK(weft_stream_connect_addr(&s, &ad, NULL));
  if (s == NULL)
    return NULL;
  uint8_t b[64];
  memcpy(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  size_t n = 24 + frame(b + 24, 4, 0, 0, NULL, 0);
  T_OK(weft_stream_write(s, b, n));
  return s;
}

typedef struct h2seen {
  int goaway;      /* error code + 1, 0: none */
  int rst_refused; /* RST_STREAMs with REFUSED_STREAM */
  int rst_other;
  int rst_protocol; /* of rst_other: PROTOCOL_ERROR */
  int headers;
  int ping_acks;
  bool closed;
} h2seen;

/* Reads frames for up to `secs` (or until the connection ends). */
static void h2_read(weft_stream *s, h2seen *seen, double secs) {
  weft_timeout sc;
  weft_timeout_enter(&sc, secs);
  uint8_t hd[9];
  static uint8_t payload[1 << 16];
  for (;;) {
    int rc = weft_stream_read_exactly(s, hd, 9);
    if (rc != 0) {
      seen->closed = rc != WEFT_ETIMEDOUT;
      break;
    }
    size_t n = (size_t)hd[0] << 16 | (size_t)hd[1] << 8 | hd[2];
    if (n > sizeof payload || weft_stream_read_exactly(s, payload, n) != 0) {
      seen->closed = true;
      break;
    }
    switch (hd[3]) {
    case 1:
      seen->headers++;
      break;
    case 3: {
      uint32_t code = ntohl(*(uint32_t *)payload);
      if (code == 7)
        seen->rst_refused++;
      else
        seen->rst_other++;
      if (code == 1)
        seen->rst_protocol++;
      break;
    }
    case 6:
      if (hd[4] & 1)
        seen->ping_acks++;
      break;
    case 7:
      seen->goaway = (int)ntohl(*(uint32_t *)(payload + 4)) + 1;
      break;
    }
  }
  (void)weft_timeout_exit(&sc);
}

static int m_h2_streams(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  weft_stream *s = h2_open(port);
  /* 110 POSTs whose bodies never come: 100 run, 10 are refused. */
  static const uint8_t post[] = {0x83, 0x04, 5,    '/',  'b', 'o',
                                 'd',  'y',  0x86, 0x41, 1,   'x'};
  static uint8_t b[110 * 32];
  size_t n = 0;
  for (uint32_t i = 0; i < 110; i++)
    n += frame(b + n, 1, 4 /* END_HEADERS */, 1 + 2 * i, post, sizeof post);
  T_OK(weft_stream_write(s, b, n));
  h2seen seen = {0};
  h2_read(s, &seen, 0.5);
  T_EQ(seen.rst_refused, 10);
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_EQ(st.in_flight, 100);
  weft_stream_free(s);
  (void)weft_sleep(0.1);
  weft_http_server_stats_get(srv, &st);
  T_EQ(st.in_flight, 0); /* the handlers went with the connection */
  still_served(port);
  th_stop(srv, &a);
  return 0;
}
static void test_h2_streams(void) { RUN(m_h2_streams, NULL); }

/* Broken requests (RFC 9113 8.2, 8.3, 8.1.1): each resets its stream with
 * PROTOCOL_ERROR and is not answered; a regular field with a bad value is
 * dropped and the request answered; the connection goes on. */
/* HPACK, nothing indexed: GET, POST, :path / and :scheme http from the
 * static table; :authority x, content-length and new names as literals. */
#define GET "\x82\x84\x86"
#define POST "\x83\x04\x05/body\x86"
#define AUTH "\x01\x01x"
#define CL(c) "\x0f\x0d\x01" c
typedef struct h2case {
  const char *what;
  const char *block;
  size_t n;
  int flags; /* of HEADERS: 4 END_HEADERS, 1 END_STREAM */
  int data;  /* body bytes sent after the head (-1: none), with END_STREAM */
  bool trailers_open; /* 2 body bytes, then trailers without END_STREAM */
  bool ok;
} h2case;
#define C(what, block, flags, data, tr, ok)                                    \
  { what, block, sizeof block - 1, flags, data, tr, ok }
static const h2case h2cases[] = {
    C("upper-case name",
      GET AUTH "\x00\x03"
               "Foo\x01"
               "b",
      5, -1, false, false),
    C("no :path", "\x82\x86" AUTH, 5, -1, false, false),
    C("no :authority or host", GET, 5, -1, false, false),
    C("connection field",
      GET AUTH "\x00\x0a"
               "connection\x05"
               "close",
      5, -1, false, false),
    C("two :method", "\x82" GET AUTH, 5, -1, false, false),
    C("pseudo after regular",
      "\x82\x86" AUTH "\x00\x01"
      "a\x01"
      "b\x84",
      5, -1, false, false),
    C("te: gzip",
      GET AUTH "\x00\x02"
               "te\x04"
               "gzip",
      5, -1, false, false),
    C("bad :authority", GET "\x01\x03x y", 5, -1, false, false),
    C(":path without /", "\x82\x04\x01x\x86" AUTH, 5, -1, false, false),
    C("CONNECT",
      "\x02\x07"
      "CONNECT" AUTH,
      5, -1, false, false),
    C("content-length, no body", GET AUTH CL("5"), 5, -1, false, false),
    C("body over content-length", POST AUTH CL("2"), 4, 5, false, false),
    C("body under content-length", POST AUTH CL("9"), 4, 5, false, false),
    C("trailers not ending", POST AUTH, 4, -1, true, false),
    C("control byte in a value: dropped",
      GET AUTH "\x00\x01"
               "a\x03"
               "b\x01"
               "c",
      5, -1, false, true),
    C("body as content-length", POST AUTH CL("5"), 4, 5, false, true),
};
#undef C
#undef CL
#undef AUTH
#undef POST
#undef GET

static int m_h2_bad(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  for (size_t i = 0; i < sizeof h2cases / sizeof h2cases[0]; i++) {
    const h2case *c = &h2cases[i];
    weft_stream *s = h2_open(port);
    uint8_t b[256];
    size_t n = frame(b, 1, c->flags, 1, c->block, c->n);
    if (c->data >= 0)
      n += frame(b + n, 0, 1, 1, "hello", (size_t)c->data);
    if (c->trailers_open) {
      static const uint8_t tr[] = {0x00, 1, 'a', 1, 'b'};
      n += frame(b + n, 0, 0, 1, "hi", 2);
      n += frame(b + n, 1, 4, 1, tr, sizeof tr);
    }
    T_OK(weft_stream_write(s, b, n));
    h2seen seen = {0};
    h2_read(s, &seen, 0.3);
    if ((seen.headers > 0) != c->ok || seen.rst_protocol != (c->ok ? 0 : 1))
      fprintf(stderr, "  %s: %d HEADERS, %d RST_STREAM(PROTOCOL_ERROR)\n",
              c->what, seen.headers, seen.rst_protocol);
    T_EQ(seen.headers > 0, c->ok);
    T_EQ(seen.rst_protocol, c->ok ? 0 : 1);
    T_EQ(seen.goaway, 0);
    weft_stream_free(s);
  }
  still_served(port);
  th_stop(srv, &a);
  return 0;
}
static void test_h2_bad(void) { RUN(m_h2_bad, NULL); }

/* Rapid reset: streams opened and cancelled at once, over and over. */
static int m_rapid_reset(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  weft_stream *s = h2_open(port);
  static uint8_t b[1000 * 40];
  uint32_t sid = 1;
  h2seen seen = {0};
  uint32_t cancel = htonl(8);
  for (int round = 0; round < 20 && seen.goaway == 0; round++) {
    size_t n = 0;
    for (int i = 0; i < 1000; i++, sid += 2) {
      n += frame(b + n, 1, 5, sid, get_block, sizeof get_block);
      n += frame(b + n, 3, 0, sid, &cancel, 4);
    }
    if (weft_stream_write(s, b, n) != 0)
      break;
    h2_read(s, &seen, 0.01);
  }
  h2_read(s, &seen, 2);
  T_EQ(seen.goaway, 0xb + 1); /* ENHANCE_YOUR_CALM */
  T_LT(sid, 20000);
  weft_stream_free(s);
  weft_http_server_stats st;
  weft_http_server_stats_get(srv, &st);
  T_GE(st.h2_goaways_calm, 1);
  T_GE(st.h2_resets_recv, 1000); /* the glitch budget's worth, at least */
  still_served(port);
  th_stop(srv, &a);
  return 0;
}
static void test_rapid_reset(void) { RUN(m_rapid_reset, NULL); }

/* CONTINUATION flood: one header block that never ends. */
static int m_continuation(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  weft_stream *s = h2_open(port);
  static uint8_t b[100000];
  size_t n = frame(b, 1, 0, 1, get_block, sizeof get_block);
  static const uint8_t field[] = {0x40, 2, 'x', 'a', 1, 'b'};
  while (n + 9 + sizeof field < sizeof b)
    n += frame(b + n, 9, 0, 1, field, sizeof field);
  int wrc = weft_stream_write(s, b, n);
  (void)wrc; /* the server may close before it has read all */
  h2seen seen = {0};
  h2_read(s, &seen, 2);
  T_TRUE(seen.goaway != 0 || seen.closed);
  T_EQ(seen.headers, 0);
  weft_stream_free(s);
  still_served(port);
  th_stop(srv, &a);
  return 0;
}
static void test_continuation(void) { RUN(m_continuation, NULL); }

/* PING and SETTINGS floods from a client that does not read: the server's
 * queue stays bounded (it stops reading, or ends the session). */
static int m_ping_flood(void *arg) {
  int type = (int)(intptr_t)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  weft_stream *s = h2_open(port);
  static uint8_t b[17 * 2000];
  uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  size_t n = 0;
  for (int i = 0; i < 2000; i++)
    n += frame(b + n, type, 0, 0, type == 6 ? data : NULL, type == 6 ? 8 : 0);
  int sent = 0;
  weft_timeout sc;
  weft_timeout_enter(&sc, 2);
  for (int round = 0; round < 100; round++) {
    if (weft_stream_write(s, b, n) != 0)
      break;
    sent += 2000;
  }
  (void)weft_timeout_exit(&sc);
  /* Other clients are served meanwhile. */
  still_served(port);
  h2seen seen = {0};
  h2_read(s, &seen, 1);
  if (sent >= 200000)
    T_TRUE(seen.goaway != 0 || seen.closed);
  weft_stream_free(s);
  th_stop(srv, &a);
  return 0;
}
static void test_ping_flood(void) { RUN(m_ping_flood, (void *)6); }
static void test_settings_flood(void) { RUN(m_ping_flood, (void *)4); }

/* An HPACK bomb: a 4 KiB field indexed once, then referenced 14 times in
 * one block (1 byte each): 60 KiB decoded (nghttp will not send more). The
 * stream gets 431, the connection goes on. */
static int m_hpack_bomb(void *arg) {
  (void)arg;
  th_app a;
  int port;
  weft_http_server *srv = serve(&a, NULL, &port);
  char out[16384];
  if (th_have("nghttp")) {
    static char cmd[100000];
    char val[4001];
    memset(val, 'v', 4000);
    val[4000] = '\0';
    cmd[0] = '\0';
    for (int i = 0; i < 15; i++)
      snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " -H 'x-b: %s'",
               val);
    T_EQ(th_cmd(out, sizeof out, 10,
                "nghttp -v %s http://127.0.0.1:%d/ 2>&1 | grep -a ':status'",
                cmd, port),
         0);
    T_TRUE(strstr(out, "431") != NULL);
  }
  still_served(port);
  th_stop(srv, &a);
  return 0;
}
static void test_hpack_bomb(void) { RUN(m_hpack_bomb, NULL); }

static const t_case cases[] = {
    {"sizes", test_sizes},
    {"smuggling", test_smuggling},
    {"timeouts", test_timeouts},
    {"slowloris", test_slowloris},
    {"h2_streams", test_h2_streams},
    {"h2_bad", test_h2_bad},
    {"rapid_reset", test_rapid_reset},
    {"continuation", test_continuation},
    {"ping_flood", test_ping_flood},
    {"settings_flood", test_settings_flood},
    {"hpack_bomb", test_hpack_bomb},
    {NULL, NULL},
};

T_MAIN("http-limits", cases)
