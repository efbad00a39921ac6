/* libFuzzer target: the HTTP/1.1 request parser (net/http1.h) fed
 * arbitrary bytes, cut into pieces at arbitrary points (the first byte of
 * the input says how), messages parsed one after another as a server
 * would, with the server's default limits. It must never crash, read out
 * of bounds or leak; every input ends in messages or a clean error.
 *
 *   CC=clang cmake -S . -B build-fuzz -DWEFT_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz-http1
 *   build-fuzz/tests/fuzz/fuzz-http1 -max_total_time=60
 */
#include <stdint.h>
#include <string.h>

#include "http1.h"

static const weft__h1_limits lim = {8192, 32768, 100};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t step = 1 + data[0] % 64;
  data++;
  size--;
  weft__http_msg msg;
  weft__h1 h;
  weft__http_msg_init(&msg, WEFT__HTTP_REQUEST, NULL);
  weft__h1_init(&h, WEFT__HTTP_REQUEST, &msg, &lim);
  static char body[4096];
  size_t off = 0, avail = 0;
  int guard = 0;
  while (off < size && guard++ < 1000000) {
    if (avail == 0)
      avail = size - off < step ? size - off : step;
    weft__h1_set_sink(&h, body, sizeof body);
    ssize_t n = weft__h1_feed(&h, (const char *)data + off, avail);
    if (n < 0)
      break;
    off += (size_t)n;
    avail -= (size_t)n;
    if (h.state == WEFT__H1_DONE) {
      weft__http_msg_reset(&msg);
      weft__h1_next(&h, &msg);
    } else if (n == 0 && avail > 0 && h.state != WEFT__H1_HEAD) {
      break; /* cannot happen: the parser always takes bytes */
    }
  }
  weft__h1_release(&h);
  weft__http_msg_fini(&msg);
  return 0;
}
