/* http-codec: the protocol layer without I/O (net/http1.h, net/http2.h,
 * net/http_msg.h).
 *
 * HTTP/1: requests and responses parsed whole and byte by byte, pipelined
 * messages one at a time, chunked bodies with trailers, every limit (414,
 * 431), and the smuggling cases (duplicate and conflicting Content-Length,
 * Content-Length with Transfer-Encoding, obs-fold, bare LF, bad chunk
 * sizes, unknown transfer codings) refused with 400. Serialising heads and
 * chunks. HTTP/2: a client session and a server session of http2.h talk to
 * each other in memory, request and response with bodies and trailers, so
 * the one integration is checked in both roles.
 */
#include <string.h>

#include "http1.h"
#include "http2.h"
#include "test.h"

static const weft__h1_limits lim = {8192, 32768, 100};

typedef struct parsed {
  weft__http_msg msg;
  weft__h1 p;
  char body[65536];
  size_t body_len;
} parsed;

/* Feeds all of s (in pieces of `step` bytes) through one message; returns
 * the bytes used, or -1 with p->p.status set. */
static ssize_t parse_one(parsed *p, int kind, const char *s, size_t len,
                         size_t step) {
  weft__http_msg_init(&p->msg, kind, NULL);
  weft__h1_init(&p->p, kind, &p->msg, &lim);
  p->body_len = 0;
  size_t off = 0, avail = 0;
  while (p->p.state != WEFT__H1_DONE) {
    if (off + avail < len)
      avail = off + step <= len ? step : len - off;
    if (avail == 0)
      break;
    weft__h1_set_sink(&p->p, p->body + p->body_len,
                      sizeof p->body - p->body_len);
    /* Each piece in a buffer of its own, clobbered and freed after the
     * feed: the parser must keep nothing pointing into fed bytes. */
    char *piece = malloc(avail);
    memcpy(piece, s + off, avail);
    ssize_t n = weft__h1_feed(&p->p, piece, avail);
    memset(piece, 'Z', avail);
    free(piece);
    if (n < 0)
      return -1;
    p->body_len += p->p.dst_len;
    off += (size_t)n;
    avail -= (size_t)n;
    if (n == 0 && p->p.state != WEFT__H1_HEAD && p->p.state != WEFT__H1_DONE &&
        avail == 0 && off == len)
      break;
  }
  return (ssize_t)off;
}

static void fini(parsed *p) {
  weft__h1_release(&p->p);
  weft__http_msg_fini(&p->msg);
}

static void test_request_simple(void) {
  static const char req[] = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\n"
                            "X-Long:  spaced value  \r\nACCEPT: */*\r\n\r\n";
  for (size_t step = 1; step <= sizeof req; step += (step < 8 ? 1 : 37)) {
    parsed *p = calloc(1, sizeof *p);
    T_EQ(parse_one(p, WEFT__HTTP_REQUEST, req, sizeof req - 1, step),
         (ssize_t)sizeof req - 1);
    T_EQ(p->p.state, WEFT__H1_DONE);
    T_STREQ(p->msg.method, "GET");
    T_STREQ(p->msg.target, "/a/b?x=1&y=2");
    T_STREQ(p->msg.path, "/a/b");
    T_STREQ(p->msg.query, "x=1&y=2");
    T_STREQ(p->msg.authority, "example.com");
    T_EQ(p->msg.version, 11);
    T_TRUE(p->msg.keep_alive);
    T_EQ(p->msg.hdrs.n, 3);
    const weft_http_field *f = weft__http_hdrs_find(&p->msg.hdrs, "x-long", 6);
    T_TRUE(f != NULL);
    if (f)
      T_STREQ(f->value, "spaced value");
    T_TRUE(weft__http_hdrs_find(&p->msg.hdrs, "accept", 6) != NULL);
    fini(p);
    free(p);
  }
}

static void test_request_body_chunked(void) {
  static const char req[] =
      "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n";
  for (size_t step = 1; step <= sizeof req; step += 5) {
    parsed *p = calloc(1, sizeof *p);
    T_EQ(parse_one(p, WEFT__HTTP_REQUEST, req, sizeof req - 1, step),
         (ssize_t)sizeof req - 1);
    T_EQ(p->p.state, WEFT__H1_DONE);
    T_TRUE(p->msg.chunked);
    T_EQ(p->body_len, 12);
    T_TRUE(memcmp(p->body, "hello, world", 12) == 0);
    T_EQ(p->msg.trailers.n, 1);
    fini(p);
    free(p);
  }
}

static void test_pipelined(void) {
  static const char two[] =
      "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
      "\r\nabcGET /3 HTTP/1.0\r\n\r\n";
  parsed *p = calloc(1, sizeof *p);
  weft__http_msg_init(&p->msg, WEFT__HTTP_REQUEST, NULL);
  weft__h1_init(&p->p, WEFT__HTTP_REQUEST, &p->msg, &lim);
  const char *s = two;
  size_t left = sizeof two - 1;
  const char *paths[] = {"/1", "/2", "/3"};
  for (int i = 0; i < 3; i++) {
    size_t body = 0;
    while (p->p.state != WEFT__H1_DONE) {
      weft__h1_set_sink(&p->p, p->body + body, sizeof p->body - body);
      ssize_t n = weft__h1_feed(&p->p, s, left);
      T_GE(n, 0);
      if (n < 0)
        break;
      body += p->p.dst_len;
      s += n;
      left -= (size_t)n;
    }
    T_STREQ(p->msg.path, paths[i]);
    T_EQ(body, i == 1 ? 3 : 0);
    if (i == 2)
      T_FALSE(p->msg.keep_alive); /* HTTP/1.0 without keep-alive */
    weft__http_msg_reset(&p->msg);
    weft__h1_next(&p->p, &p->msg);
  }
  T_EQ(left, 0);
  fini(p);
  free(p);
}

/* Each must be refused with `status`. */
static void refused(const char *req, int status) {
  parsed *p = calloc(1, sizeof *p);
  ssize_t n = parse_one(p, WEFT__HTTP_REQUEST, req, strlen(req), strlen(req));
  if (n >= 0)
    fprintf(stderr, "  accepted: %s\n", req);
  T_EQ(n, -1);
  T_EQ(p->p.status, status);
  fini(p);
  free(p);
}

static void test_smuggling(void) {
  /* Content-Length twice (even equal), or with Transfer-Encoding. */
  refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
          "Content-Length: 4\r\n\r\nabcd",
          400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
          "Content-Length: 3\r\n\r\nabc",
          400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
          400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
          "Content-Length: 3\r\n\r\n0\r\n\r\n",
          400);
  /* obs-fold: a header line continued on the next. */
  refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n", 400);
  /* Transfer codings that do not end in chunked, or chunked twice. */
  refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n"
          "\r\n",
          400);
  /* Bad chunk sizes. */
  refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
          "zz\r\nhello\r\n0\r\n\r\n",
          400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
          "-5\r\nhello\r\n0\r\n\r\n",
          400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
          "fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
          400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nhelloXX0\r\n\r\n",
          400);
  /* A negative or non-numeric Content-Length. */
  refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
  refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400);
  /* Spaces before the colon, and bare CR in values. */
  refused("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
  refused("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400);
  /* Malformed request lines. */
  refused("GET / HTTP/1.1 extra\r\n\r\n", 400);
  refused("G@T / HTTP/1.1\r\n\r\n", 400);
  refused("GET / HTTP/9.9\r\n\r\n", 400);
  refused("GET /\x01 HTTP/1.1\r\n\r\n", 400);
}

static void test_limits(void) {
  char *req = malloc(70000);
  /* A target over 8 KiB: 414. */
  strcpy(req, "GET /");
  memset(req + 5, 'a', 9000);
  strcpy(req + 9005, " HTTP/1.1\r\n\r\n");
  refused(req, 414);
  /* A header block over 32 KiB: 431. */
  strcpy(req, "GET / HTTP/1.1\r\nX-Big: ");
  size_t n = strlen(req);
  memset(req + n, 'b', 40000);
  strcpy(req + n + 40000, "\r\n\r\n");
  refused(req, 431);
  /* More than 100 fields: 431. */
  strcpy(req, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 101; i++)
    sprintf(req + strlen(req), "X-%d: v\r\n", i);
  strcat(req, "\r\n");
  refused(req, 431);
  free(req);
}

static void test_response(void) {
  static const char res[] =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
  parsed *p = calloc(1, sizeof *p);
  T_EQ(parse_one(p, WEFT__HTTP_RESPONSE, res, sizeof res - 1, 3),
       (ssize_t)sizeof res - 1);
  T_EQ(p->msg.status, 200);
  T_EQ(p->msg.content_length, 5);
  T_EQ(p->body_len, 5);
  fini(p);
  /* A HEAD response: no body whatever the head says. */
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  weft__http_msg_init(&p->msg, WEFT__HTTP_RESPONSE, NULL);
  weft__h1_init(&p->p, WEFT__HTTP_RESPONSE, &p->msg, &lim);
  weft__h1_expect_head(&p->p, true);
  T_EQ(weft__h1_feed(&p->p, head, sizeof head - 1), (ssize_t)sizeof head - 1);
  T_EQ(p->p.state, WEFT__H1_DONE);
  fini(p);
  /* A body that ends with the connection. */
  static const char eof[] = "HTTP/1.0 200 OK\r\n\r\nall of it";
  weft__http_msg_init(&p->msg, WEFT__HTTP_RESPONSE, NULL);
  weft__h1_init(&p->p, WEFT__HTTP_RESPONSE, &p->msg, &lim);
  size_t got = 0;
  const char *s = eof;
  size_t left = sizeof eof - 1;
  while (left > 0) {
    weft__h1_set_sink(&p->p, p->body + got, sizeof p->body - got);
    ssize_t n = weft__h1_feed(&p->p, s, left);
    T_GE(n, 0);
    if (n <= 0)
      break;
    got += p->p.dst_len;
    s += n;
    left -= (size_t)n;
  }
  T_TRUE(weft__h1_body_until_eof(&p->p));
  T_EQ(weft__h1_finish(&p->p), 0);
  T_EQ(got, 9);
  fini(p);
  free(p);
}

static void test_serialise(void) {
  weft__http_msg m;
  weft__http_msg_init(&m, WEFT__HTTP_RESPONSE, NULL);
  m.status = 404;
  m.content_length = 9;
  T_OK(weft__http_hdrs_add(&m, &m.hdrs, "Content-Type", 12, "text/plain", 10));
  weft__hbuf b = {0};
  T_OK(weft__h1_head(&b, &m, WEFT__H1_CLOSE));
  T_OK(weft__hbuf_add(&b, "", 1));
  T_STREQ(b.data, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                  "Content-Length: 9\r\nConnection: close\r\n\r\n");
  b.len = 0;
  weft__http_msg q;
  weft__http_msg_init(&q, WEFT__HTTP_REQUEST, NULL);
  q.method = "POST";
  q.target = "/x?y";
  T_OK(weft__http_hdrs_add(&q, &q.hdrs, "Host", 4, "h", 1));
  T_OK(weft__h1_head(&b, &q, WEFT__H1_CHUNKED));
  char ch[24];
  size_t n = weft__h1_chunk_head(ch, 300);
  T_OK(weft__hbuf_add(&b, ch, n));
  T_OK(weft__h1_chunk_end(&b, &m.hdrs));
  T_OK(weft__hbuf_add(&b, "", 1));
  T_STREQ(b.data,
          "POST /x?y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
          "chunked\r\n\r\n12c\r\n0\r\nContent-Type: text/plain\r\n\r\n");
  weft__hbuf_free(&b);

  /* The longest fixed part of a response head - the longest reason, Date,
   * a 19-digit Content-Length, Connection: keep-alive: 146 bytes - into a
   * buffer with exactly 128 free (what the head once reserved for it;
   * ASan catches a write past the end). */
  weft__http_msg l;
  weft__http_msg_init(&l, WEFT__HTTP_RESPONSE, NULL);
  l.status = 431;
  l.content_length = INT64_MAX;
  b.data = weft__malloc(128);
  b.cap = 128;
  b.len = 0;
  T_OK(weft__h1_head(&b, &l, WEFT__H1_DATE | WEFT__H1_KEEP));
  T_EQ(b.len, 146);
  T_TRUE(memcmp(b.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n",
                46) == 0);
  T_TRUE(memcmp(b.data + b.len - 63,
                "Content-Length: 9223372036854775807\r\n"
                "Connection: keep-alive\r\n\r\n",
                63) == 0);
  weft__hbuf_free(&b);
  weft__http_msg_fini(&l);
  weft__http_msg_fini(&m);
  weft__http_msg_fini(&q);
}

/* ---- HTTP/2: a client and a server session in memory ---- */

typedef struct side {
  weft__h2 *h;
  weft__http_msg msg; /* the message received */
  char body[70000];
  size_t body_len;
  bool ended, closed, head;
  const char *send; /* body to send */
  size_t send_len, sent;
  weft__http_hdrs trailers;
  int32_t sid;
} side;

static void *e_begin(void *o, int32_t sid, void *ud, weft__http_msg **msg) {
  side *s = o;
  s->sid = sid;
  *msg = &s->msg;
  return ud ? ud : s;
}
static int e_head(void *o, void *ud, bool tr, bool end, bool big) {
  (void)ud;
  (void)end;
  T_FALSE(big);
  if (!tr)
    ((side *)o)->head = true;
  return 0;
}
static int e_data(void *o, void *ud, const uint8_t *p, size_t n) {
  (void)ud;
  side *s = o;
  memcpy(s->body + s->body_len, p, n);
  s->body_len += n;
  weft__h2_consume(s->h, s->sid, n);
  return 0;
}
static int e_end(void *o, void *ud) {
  (void)ud;
  ((side *)o)->ended = true;
  return 0;
}
static int e_close(void *o, void *ud, uint32_t code) {
  (void)ud;
  T_EQ(code, 0);
  ((side *)o)->closed = true;
  return 0;
}
static ssize_t e_read(void *o, void *ud, uint8_t *buf, size_t len, bool *eof,
                      const weft__http_hdrs **tr) {
  (void)ud;
  side *s = o;
  size_t n = s->send_len - s->sent;
  if (n > len)
    n = len;
  memcpy(buf, s->send + s->sent, n);
  s->sent += n;
  if (s->sent == s->send_len) {
    *eof = true;
    *tr = &s->trailers;
  }
  return (ssize_t)n;
}
static const weft__h2_events ev = {e_begin, e_head,  e_data,
                                   e_end,   e_close, e_read};

/* Moves frames from a to b until neither has anything to send. */
static void exchange(side *a, side *b) {
  for (int round = 0; round < 1000; round++) {
    bool moved = false;
    side *from[2] = {a, b}, *to[2] = {b, a};
    for (int i = 0; i < 2; i++) {
      const uint8_t *d;
      ssize_t n;
      while ((n = weft__h2_send(from[i]->h, &d)) > 0) {
        T_OK(weft__h2_recv(to[i]->h, d, (size_t)n));
        moved = true;
      }
      T_GE(n, 0);
    }
    if (!moved)
      return;
  }
}

static int m_h2(void *arg) {
  (void)arg;
  static side cli, srv;
  memset(&cli, 0, sizeof cli);
  memset(&srv, 0, sizeof srv);
  weft__h2_limits l = {100, 65535, 1 << 20, 32768, 100, 1000};
  weft__http_msg_init(&cli.msg, WEFT__HTTP_RESPONSE, NULL);
  weft__http_msg_init(&srv.msg, WEFT__HTTP_REQUEST, NULL);
  T_OK(weft__h2_new(&cli.h, false, &l, &ev, &cli));
  T_OK(weft__h2_new(&srv.h, true, &l, &ev, &srv));
  T_OK(weft__h2_start(cli.h));
  T_OK(weft__h2_start(srv.h));
  /* The client's magic comes first. */
  /* A request with a 70 000-byte body (over one window) and a trailer. */
  static char big[70000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  weft__http_msg req;
  weft__http_msg_init(&req, WEFT__HTTP_REQUEST, NULL);
  req.method = "POST";
  req.target = "/up?q=1";
  req.authority = "example.com";
  req.scheme = "http";
  T_OK(weft__http_hdrs_add(&req, &req.hdrs, "X-Mixed-Case", 12, "v", 1));
  cli.send = big;
  cli.send_len = sizeof big;
  T_OK(weft__http_hdrs_add(&req, &cli.trailers, "x-digest", 8, "abc", 3));
  int32_t sid = weft__h2_submit(cli.h, 0, &req, true, &cli);
  T_EQ(sid, 1);
  exchange(&cli, &srv);
  T_TRUE(srv.head);
  T_TRUE(srv.ended);
  T_STREQ(srv.msg.method, "POST");
  T_STREQ(srv.msg.path, "/up");
  T_STREQ(srv.msg.query, "q=1");
  T_STREQ(srv.msg.authority, "example.com");
  T_TRUE(weft__http_hdrs_find(&srv.msg.hdrs, "x-mixed-case", 12) != NULL);
  T_EQ(srv.body_len, sizeof big);
  T_TRUE(memcmp(srv.body, big, sizeof big) == 0);
  T_EQ(srv.msg.trailers.n, 1);
  /* The response. */
  weft__http_msg res;
  weft__http_msg_init(&res, WEFT__HTTP_RESPONSE, NULL);
  res.status = 201;
  res.content_length = 5;
  /* A server's response goes without copies but for a name with upper
   * case, which nghttp2 copies and lower-cases. */
  T_OK(weft__http_hdrs_add(&res, &res.hdrs, "X-Resp-Case", 11, "w", 1));
  T_OK(weft__http_hdrs_add(&res, &res.hdrs, "x-lower", 7, "z", 1));
  srv.send = "hello";
  srv.send_len = 5;
  T_EQ(weft__h2_submit(srv.h, 1, &res, true, &srv), 0);
  exchange(&cli, &srv);
  T_TRUE(cli.head);
  T_EQ(cli.msg.status, 201);
  T_EQ(cli.msg.content_length, 5);
  const weft_http_field *rf =
      weft__http_hdrs_find(&cli.msg.hdrs, "x-resp-case", 11);
  T_TRUE(rf != NULL && memcmp(rf->name, "x-resp-case", 11) == 0);
  rf = weft__http_hdrs_find(&cli.msg.hdrs, "x-lower", 7);
  T_TRUE(rf != NULL && strcmp(rf->value, "z") == 0);
  T_EQ(cli.body_len, 5);
  T_TRUE(cli.ended);
  T_TRUE(cli.closed);
  T_TRUE(srv.closed);
  weft__h2_free(cli.h);
  weft__h2_free(srv.h);
  weft__http_msg_fini(&req);
  weft__http_msg_fini(&res);
  weft__http_msg_fini(&cli.msg);
  weft__http_msg_fini(&srv.msg);
  weft__http_msg_fini(&srv.msg);
  free(cli.trailers.v);
  return 0;
}

static void test_h2_both_roles(void) { T_EQ(t_run(m_h2, NULL), 0); }

static const t_case cases[] = {
    {"request_simple", test_request_simple},
    {"request_body_chunked", test_request_body_chunked},
    {"pipelined", test_pipelined},
    {"smuggling", test_smuggling},
    {"limits", test_limits},
    {"response", test_response},
    {"serialise", test_serialise},
    {"h2_both_roles", test_h2_both_roles},
    {NULL, NULL},
};

T_MAIN("http-codec", cases)
