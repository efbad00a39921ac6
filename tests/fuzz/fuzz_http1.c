/* libFuzzer target: the HTTP/1.1 parser (net/http1.h) fed arbitrary
 * bytes, cut into pieces at arbitrary points, messages parsed one after
 * another. The first byte of the input says how: its low six bits give the
 * piece size; with its top bit clear the bytes are requests, parsed as the
 * server does with its default limits; with it set they are responses,
 * parsed as the HTTP client does with its limits (interim 1xx answers
 * skipped, a body up to the end of the input when nothing else ends it),
 * and bit 6 says they answer HEAD. It must never crash, read out of bounds
 * or leak; every input ends in messages or a clean error.
 *
 *   CC=clang cmake -S . -B build-fuzz -DWEFT_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz-http1
 *   build-fuzz/tests/fuzz/fuzz-http1 -max_total_time=60
 */
#include <stdint.h>
#include <string.h>

#include "http1.h"

static const weft__h1_limits server_lim = {8192, 32768, 100};
static const weft__h1_limits client_lim = {8192, 256 * 1024, 256};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t step = 1 + data[0] % 64;
  bool response = data[0] & 0x80, head = data[0] & 0x40;
  int kind = response ? WEFT__HTTP_RESPONSE : WEFT__HTTP_REQUEST;
  data++;
  size--;
  weft__http_msg msg;
  weft__h1 h;
  weft__http_msg_init(&msg, kind, NULL);
  weft__h1_init(&h, kind, &msg, response ? &client_lim : &server_lim);
  if (response)
    weft__h1_expect_head(&h, head);
  static char body[4096];
  size_t off = 0, avail = 0;
  int guard = 0;
  bool failed = false;
  while (off < size && guard++ < 1000000) {
    if (avail == 0)
      avail = size - off < step ? size - off : step;
    weft__h1_set_sink(&h, body, sizeof body);
    ssize_t n = weft__h1_feed(&h, (const char *)data + off, avail);
    if (n < 0) {
      failed = true;
      break;
    }
    off += (size_t)n;
    avail -= (size_t)n;
    if (h.state == WEFT__H1_DONE) {
      weft__http_msg_reset(&msg);
      weft__h1_next(&h, &msg);
      if (response)
        weft__h1_expect_head(&h, head);
    } else if (n == 0 && avail > 0 && h.state != WEFT__H1_HEAD) {
      break; /* cannot happen: the parser always takes bytes */
    }
  }
  /* The client's end of input: a body that runs to the close ends. */
  if (response && !failed && weft__h1_body_until_eof(&h))
    (void)weft__h1_finish(&h);
  weft__h1_release(&h);
  weft__http_msg_fini(&msg);
  return 0;
}
