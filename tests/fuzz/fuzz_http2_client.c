/* libFuzzer target: the HTTP/2 client session (net/http2.h) with three
 * requests open (GET, HEAD, a POST with a body), fed arbitrary bytes as
 * the server's side of the connection, with the HTTP client's limits;
 * whatever it answers is drained. The stream events do with the responses
 * what the client's do (net/http_client2.c): a final head after a 1xx
 * moves from the trailer list, a 1xx resets the message, data is consumed.
 * It must never crash, read out of bounds or leak.
 *
 *   build-fuzz/tests/fuzz/fuzz-http2-client -max_total_time=60
 */
#include <stdlib.h>
#include <string.h>

#include "http2.h"

typedef struct req {
  weft__http_msg q, r; /* the request, the response */
  int32_t sid;
  bool head, body, closed;
  size_t out_left;
} req;

static weft__h2 *sess;
static req reqs[3];

static void *begin(void *o, int32_t sid, void *ud, weft__http_msg **msg) {
  (void)o, (void)sid;
  req *q = ud;
  if (q == NULL || q->closed)
    return NULL; /* a push: refused */
  *msg = &q->r;
  return q;
}

static int head(void *o, void *ud, bool tr, bool end, bool big) {
  (void)o, (void)end;
  req *q = ud;
  weft__http_msg *m = &q->r;
  if (big) {
    weft__h2_reset(sess, q->sid, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  if (q->head)
    return 0;
  if (tr) {
    weft__http_hdrs t = m->trailers;
    m->trailers = m->hdrs;
    m->hdrs = t;
    m->trailers.n = 0;
  }
  if (m->status < 200) {
    bool h = m->head;
    weft__http_msg_reset(m);
    m->head = h;
    return 0;
  }
  q->head = true;
  return 0;
}

static int data_ev(void *o, void *ud, const uint8_t *p, size_t n) {
  (void)o, (void)p;
  req *q = ud;
  weft__h2_consume_conn(sess, n);
  weft__h2_consume_stream(sess, q->sid, n);
  return 0;
}

static int end(void *o, void *ud) {
  (void)o, (void)ud;
  return 0;
}

static int closed(void *o, void *ud, uint32_t code) {
  (void)o, (void)code;
  ((req *)ud)->closed = true;
  return 0;
}

static ssize_t rd(void *o, void *ud, uint8_t *b, size_t l, bool *eof,
                  const weft__http_hdrs **t) {
  (void)o, (void)t;
  req *q = ud;
  size_t n = q->out_left < l ? q->out_left : l;
  memset(b, 'x', n);
  q->out_left -= n;
  *eof = q->out_left == 0;
  return (ssize_t)n;
}

static const weft__h2_events ev = {begin, head, data_ev, end, closed, rd};

static const weft__h2_limits lim = {100,        1 << 20, 16 << 20,
                                    256 * 1024, 256,     100000};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (weft__h2_new(&sess, false, &lim, &ev, NULL) != 0)
    return 0;
  int rc = weft__h2_start(sess);
  static const char *const methods[] = {"GET", "HEAD", "POST"};
  for (int i = 0; i < 3; i++) {
    req *q = &reqs[i];
    memset(q, 0, sizeof *q);
    weft__http_msg_init(&q->q, WEFT__HTTP_REQUEST, NULL);
    weft__http_msg_init(&q->r, WEFT__HTTP_RESPONSE, NULL);
    q->q.method = methods[i];
    q->q.target = "/";
    q->q.authority = "example.test";
    q->q.scheme = "http";
    q->r.head = i == 1;
    q->out_left = i == 2 ? 70000 : 0; /* past the first window */
    q->q.content_length = (int64_t)q->out_left;
    if (rc == 0)
      q->sid = weft__h2_submit(sess, -1, &q->q, q->out_left > 0, q);
  }
  const uint8_t *out;
  while (weft__h2_send(sess, &out) > 0) {
  }
  size_t off = 0;
  while (rc == 0 && off < size) {
    size_t n = size - off < 100 ? size - off : 100;
    rc = weft__h2_recv(sess, data + off, n);
    off += n;
    while (weft__h2_send(sess, &out) > 0) {
    }
  }
  weft__h2_free(sess);
  for (int i = 0; i < 3; i++) {
    weft__http_msg_fini(&reqs[i].q);
    weft__http_msg_fini(&reqs[i].r);
  }
  return 0;
}
