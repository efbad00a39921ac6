/* libFuzzer target: the HTTP/2 server session (net/http2.h) fed the client
 * preface and then arbitrary frames, as the server's connection driver
 * does, with the server's default limits; whatever it answers is drained.
 * Stream events keep the heads in messages the way the server does.
 *
 *   build-fuzz/tests/fuzz/fuzz-http2 -max_total_time=60
 */
#include <stdint.h>
#include <string.h>

#include "http2.h"

typedef struct st {
  weft__http_msg msg;
  struct st *next;
} st;

static st *streams;

static void *begin(void *o, int32_t sid, void *ud, weft__http_msg **msg) {
  (void)o;
  (void)sid;
  if (ud != NULL) {
    *msg = &((st *)ud)->msg;
    return ud;
  }
  st *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  weft__http_msg_init(&s->msg, WEFT__HTTP_REQUEST, NULL);
  s->next = streams;
  streams = s;
  *msg = &s->msg;
  return s;
}
static int head(void *o, void *ud, bool tr, bool end, bool big) {
  (void)o, (void)ud, (void)tr, (void)end, (void)big;
  return 0;
}
static weft__h2 *sess;
static int data_ev(void *o, void *ud, const uint8_t *p, size_t n) {
  (void)o, (void)ud, (void)p;
  (void)n;
  return 0;
}
static int end(void *o, void *ud) {
  (void)o, (void)ud;
  return 0;
}
static int closed(void *o, void *ud, uint32_t code) {
  (void)o, (void)ud, (void)code;
  return 0;
}
static ssize_t rd(void *o, void *ud, uint8_t *b, size_t l, bool *eof,
                  const weft__http_hdrs **t) {
  (void)o, (void)ud, (void)b, (void)l, (void)t;
  *eof = true;
  return 0;
}
static const weft__h2_events ev = {begin, head, data_ev, end, closed, rd};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  weft__h2_limits lim = {100, 262144, 1 << 20, 32768, 100, 1000};
  if (weft__h2_new(&sess, true, &lim, &ev, NULL) != 0)
    return 0;
  (void)weft__h2_start(sess);
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  int rc = weft__h2_recv(sess, (const uint8_t *)preface, 24);
  size_t off = 0;
  while (rc == 0 && off < size) {
    size_t n = size - off < 100 ? size - off : 100;
    rc = weft__h2_recv(sess, data + off, n);
    off += n;
    const uint8_t *out;
    while (weft__h2_send(sess, &out) > 0) {
    }
  }
  weft__h2_free(sess);
  while (streams != NULL) {
    st *s = streams;
    streams = s->next;
    weft__http_msg_fini(&s->msg);
    free(s);
  }
  return 0;
}
