/* weft — where an HTTP/2 session meets a stream: the frames nghttp2 has to
 * send go out to the socket in batches. Shared by the server's and the
 * client's connection drivers (http_server2.c, http_client2.c); the session
 * itself (http2.c) does no I/O. */
#include <string.h>
#include <sys/uio.h>
#include <weft/stream.h>

#include "http2.h"
#include "stream_int.h"

/* nghttp2 hands out one frame at a time; small frames are gathered here so
 * that a burst (a SETTINGS ACK, WINDOW_UPDATEs, many small responses) leaves
 * in one send. One buffer per thread: the call never suspends. */
#define BATCH (64 * 1024)
static __thread uint8_t batch[BATCH];

int weft__h2_send_to(weft__h2 *h, weft_stream *st, size_t high) {
  return weft__h2_send_idle(h, st, high, NULL);
}

int weft__h2_send_idle(weft__h2 *h, weft_stream *st, size_t high, bool *idle) {
  /* The thread's buffer, looked up once: in a shared library each lookup
   * is a call (__tls_get_addr), which the compiler would otherwise repeat
   * for every frame rather than keep the address; the empty asm hides
   * where b came from. */
  uint8_t *b = batch;
  __asm__("" : "+r"(b));
  size_t used = 0;
  nghttp2_session *s = weft__h2_session(h);
  /* What the stream holds changes only when this writes to it: asked
   * again after each write, not before each frame. */
  size_t queued = weft__stream_wqueued(st);
  for (;;) {
    if (queued + used >= high)
      break; /* the peer is slow: the driver waits for DRAINED */
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s, &data);
    if (n < 0)
      return weft__h2_send_failed(h, n);
    if (n == 0) {
      if (idle != NULL)
        *idle = true;
      break;
    }
    if (used + (size_t)n > BATCH) {
      struct iovec iov = {b, used};
      int rc = used ? weft_stream_try_writev(st, &iov, 1) : 0;
      used = 0;
      if (rc != 0)
        return rc;
      queued = weft__stream_wqueued(st);
    }
    if ((size_t)n > BATCH) {
      /* A frame bigger than the batch goes as it is (queued, not copied
       * twice). */
      struct iovec iov = {(void *)data, (size_t)n};
      int rc = weft_stream_try_writev(st, &iov, 1);
      if (rc != 0)
        return rc;
      queued = weft__stream_wqueued(st);
      continue;
    }
    memcpy(b + used, data, (size_t)n);
    used += (size_t)n;
  }
  if (used > 0) {
    struct iovec iov = {b, used};
    return weft_stream_try_writev(st, &iov, 1);
  }
  return 0;
}
