/* weft — what the stream files share (stream.c, stream_connect.c, tls.c):
 * the stream object, its buffers, and the transport interface TLS plugs
 * into. docs/internals/streams.md tells the whole story.
 *
 * Layering (curl's connection filters, libdill's tls_attach):
 *
 *   protocol code (HTTP, WebSocket, ...)   bytes in, bytes out, no I/O
 *   weft_stream                            buffers, water marks, waiting
 *   weft__transport                        plain socket | TLS (OpenSSL)
 *   the socket                             non-blocking fd, one libevent event
 *
 * A transport does non-blocking I/O only: it moves bytes or says what it
 * waits for (WEFT_EAGAIN and a WEFT__WANT_* readiness). All waiting, and
 * all buffering the caller sees, is the stream's.
 */
#ifndef WEFT_STREAM_INT_H
#define WEFT_STREAM_INT_H

#include <weft/stream.h>

#include "internal.h"

struct event;

/* Readiness a transport waits for. A TLS read may need the socket to be
 * writable (and a TLS write readable), so the two are separate from "which
 * direction of the stream asked". */
enum { WEFT__WANT_READ = 1, WEFT__WANT_WRITE = 2 };

typedef struct weft__transport weft__transport;

typedef struct weft__transport_vt {
  const char *name;
  /* Reads up to len bytes into buf. Returns the count (> 0), WEFT_EOF at
   * the peer's orderly end, WEFT_EAGAIN with *want set, or an error. */
  ssize_t (*read)(weft__transport *t, void *buf, size_t len, int *want);
  /* Takes bytes from iov[0..n) (n may be 0: only push out what the
   * transport holds). Returns the count taken (>= 0; bytes taken may still
   * sit in the transport, see wpending), WEFT_EAGAIN with *want set when
   * nothing could be taken, or an error. */
  ssize_t (*writev)(weft__transport *t, const struct iovec *iov, int n,
                    int *want);
  /* Bytes taken by writev and not yet on the socket. */
  size_t (*wpending)(weft__transport *t);
  /* True when bytes can be read without new data on the socket (TLS
   * records OpenSSL holds already: libevent #854). */
  bool (*rpending)(weft__transport *t);
  /* Ends our write direction (TLS close_notify, then TCP FIN). Returns 0,
   * WEFT_EAGAIN with *want set, or an error. */
  int (*shutdown)(weft__transport *t, int *want);
  /* Frees the transport (not the socket). */
  void (*free)(weft__transport *t);
} weft__transport_vt;

struct weft__transport {
  const weft__transport_vt *vt;
  weft_stream *s;
};

/* A byte buffer: data[start, end) is held, data[end, cap) is free. */
typedef struct weft__buf {
  char *data;
  size_t start, end, cap;
} weft__buf;

static inline size_t weft__buf_len(const weft__buf *b) {
  return b->end - b->start;
}

struct weft_stream {
  weft_loop *loop;
  int fd;
  int family;
  weft__io io; /* in the loop's epoll set, edge-triggered, for life */
  /* Readiness not yet used up: set by an edge, cleared when a system call
   * says EAGAIN, or by a short read when the edge carried no end or error
   * (rclosed): a new edge comes with the next bytes, so nothing is lost. */
  bool readable, writable;
  bool rclosed; /* an edge said EPOLLRDHUP/HUP/ERR: read on to the end */

  weft__transport *tp;   /* plain, or TLS once started */
  weft__transport plain; /* the plain socket transport */
  weft__transport *tls;  /* == tp once TLS is on */

  /* Read side. */
  weft__buf rbuf;
  int rerr;  /* sticky end (WEFT_EOF) or error, after rbuf drains */
  int rwant; /* readiness the last read lacked */
  bool reading;

  /* Write side. */
  weft__buf wbuf;
  int werr;      /* sticky write error */
  int wwant;     /* readiness the queued bytes wait for */
  bool writing;  /* a task is in a write (EBUSY for a second one) */
  bool shut;     /* our write side is ended */
  bool shutting; /* ... or being ended */
  size_t high, low;
  size_t peak;

  /* Tasks waiting: for readiness (data = WEFT__WANT_* mask) and for the
   * write queue to drain (data = the level to reach). */
  weft__list io_waiters;
  weft__list drainers;

  /* Lifetime: tasks inside calls; a free while some are inside releases
   * the socket and wakes them, and the last one out frees the memory. */
  unsigned busy;
  bool released;

  /* A callback waiting instead of a task (weft_stream_notify): one-shot,
   * called from the event once one of notify_events holds. */
  weft_stream_notify_fn notify_fn;
  void *notify_arg;
  int notify_events;

  uint64_t nread, nwritten;
  double close_timeout;
  double attempt_delay;
  char *server_name; /* TLS name from the options (copied) */
};

/* Makes a stream over a connected, non-blocking socket (the stream owns it
 * on success). Never suspends. */
int weft__stream_new(weft_stream **out, weft_loop *loop, int fd,
                     const weft_stream_opts *opts);

/* A task enters / leaves a call on s. leave returns rc, mapped to
 * WEFT_ECANCELED when the stream was freed meanwhile, and frees the memory
 * when it was the last one inside. */
static inline void weft__stream_enter(weft_stream *s) { s->busy++; }
int weft__stream_leave(weft_stream *s, int rc);

/* Waits until the socket is ready for `want` (WEFT__WANT_*). Returns 0 (try
 * the operation again), WEFT_ECANCELED when the stream was freed meanwhile,
 * or park's cancellation / deadline. */
int weft__stream_wait_io(weft_stream *s, int want);

/* Waits until at most `level` bytes are queued for writing (0: all out of
 * the transport too). Returns 0, the write error, or as wait_io. */
int weft__stream_wait_drain(weft_stream *s, size_t level);

/* Reads until at least `min` bytes are buffered. Returns 0, or the end /
 * error (what arrived stays buffered), or as wait_io. */
int weft__stream_fill(weft_stream *s, size_t min);

/* Bytes queued for writing: in the stream's buffer and in the transport. */
static inline size_t weft__stream_wqueued(const weft_stream *s) {
  /* Only TLS holds bytes of its own (a plain socket's wpending is 0);
   * s->tls is the transport once set. */
  return weft__buf_len(&s->wbuf) +
         (s->tls != NULL ? s->tls->vt->wpending(s->tls) : 0);
}

/* True when the transport holds bytes to read without new data on the
 * socket: TLS only, so a plain stream makes no call. */
static inline bool weft__stream_rpending(const weft_stream *s) {
  return s->tls != NULL && s->tls->vt->rpending(s->tls);
}

/* Records a transport's EAGAIN: which readiness is used up. */
static inline void weft__stream_spent(weft_stream *s, int want) {
  if (want & WEFT__WANT_READ)
    s->readable = false;
  if (want & WEFT__WANT_WRITE)
    s->writable = false;
}

/* True when `want` readiness is (still) there. */
static inline bool weft__stream_ready(const weft_stream *s, int want) {
  return ((want & WEFT__WANT_READ) && s->readable) ||
         ((want & WEFT__WANT_WRITE) && s->writable);
}

/* Releases the socket side of s: the event, the transport, the buffers, the
 * fd (with SO_LINGER 0 when `reset`), and wakes every waiter. */
void weft__stream_release(weft_stream *s, bool reset);

/* Waits (with a one-shot event) until fd is ready for EV_READ / EV_WRITE.
 * For sockets that are not streams yet: connect attempts, listeners in
 * tests. Returns 0, or park's cancellation / deadline. May suspend. */
int weft__wait_fd(int fd, short events);

/* Sessions a client TLS context holds for resumption now (tls.c), for the
 * tests. Any thread. */
size_t weft__tls_sessions(weft_tls_ctx *ctx);

#endif
