/* weft — byte streams over TCP, Unix sockets and TLS (asyncio's
 * StreamReader and StreamWriter in one object).
 *
 * A stream is a connected socket with a read buffer and a write buffer.
 * Reads pull bytes on demand (nothing is read ahead in the background, so a
 * slow reader pushes back on its peer through TCP); writes are buffered and
 * sent as the socket accepts them, and a writer that gets ahead of its peer
 * waits at the high-water mark, so the write buffer never grows without
 * bound. TLS sits below the stream (weft/tls.h): the same calls read and
 * write plaintext whether the stream is encrypted or not.
 *
 * Tasks. Every call that may suspend must be made from a task on the loop
 * that made the stream, and honours cancellation and deadline scopes
 * (WEFT_ECANCELED / WEFT_ETIMEDOUT). One task may read while another writes;
 * a second task reading (or writing) while one already does gets
 * WEFT_EBUSY. Streams are not thread-safe.
 *
 * What a failed call leaves behind (docs/internals/streams.md):
 *   - A read that fails for any reason (cancelled, timed out, limit, end of
 *     stream, reset) consumed nothing: every byte that arrived stays in the
 *     read buffer for the next read. End of stream and errors are sticky
 *     and reported only once the buffered bytes are gone (so a peer that
 *     sends "abc" and resets gives "abc", then WEFT_ECONNRESET).
 *   - A write that fails has queued a prefix of its data, which will still be
 *     sent: none of it when it failed before queuing anything (always the
 *     case for a write that fits under the high-water mark), part of it when
 *     a larger write was cancelled between chunks. weft_stream_info() counts
 *     bytes queued, so the exact prefix is its difference across the call.
 *     Either way the peer may have seen a partial message: after a failed
 *     write most protocols must close the stream.
 *
 * Errors common to the calls: WEFT_ENOTASK (outside a task), WEFT_EWRONGLOOP
 * (another loop's stream), WEFT_ECANCELED / WEFT_ETIMEDOUT, WEFT_ENOMEM, and
 * for a stream freed under a waiting call, WEFT_ECANCELED.
 */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include <sys/types.h>
#include <sys/uio.h>
#include <weft/addr.h>
#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stream weft_stream;
typedef struct weft_tls_ctx weft_tls_ctx; /* weft/tls.h */

/* Stream options. Zero fields take the default; NULL options mean all
 * defaults. `size` must be sizeof(weft_stream_opts) so the struct can
 * grow. */
typedef struct weft_stream_opts {
  size_t size;
  /* Write buffer high-water mark: a write waits while this many bytes are
   * queued and not yet taken by the kernel. Default 64 KiB. */
  size_t write_high;
  /* Low-water mark: a waiting write, and weft_stream_drain(), resume once
   * the buffer is at or below it. Default write_high / 4. */
  size_t write_low;
  /* TCP_NODELAY on TCP streams (as asyncio): 0 default (on), > 0 on,
   * < 0 off. */
  int nodelay;
  /* > 0: TCP keepalive, first probe after this many idle seconds (see
   * weft_stream_set_keepalive). 0: off (default). */
  double keepalive;
  /* Happy Eyeballs (RFC 8305): seconds between starting connection
   * attempts to successive addresses. 0: 0.25 s. */
  double attempt_delay;
  /* Address to bind the socket to before connecting (NULL: any). */
  const weft_addr *local;
  /* TLS: when set, connect calls run the TLS handshake with this client
   * context before they return (weft/tls.h). */
  weft_tls_ctx *tls;
  /* TLS: the name sent as SNI and checked against the certificate.
   * Default: the host given to weft_stream_connect(); with an address and
   * no name, the certificate must name the IP address. Copied. */
  const char *server_name;
  /* Seconds weft_stream_close() spends at most sending what is still
   * buffered (and the TLS close_notify) before it gives up and resets the
   * connection. Default 5 s; the caller's deadline scopes apply too. */
  double close_timeout;
} weft_stream_opts;

/* ---- connecting ---- */

/* Connects over TCP to `host` (a name or a numeric IPv4/IPv6 address) and
 * `port`. A name is resolved to all its IPv6 and IPv4 addresses, which are
 * tried by Happy Eyeballs (see weft_stream_connect_addrs). With opts->tls,
 * the TLS handshake runs before the call returns. May suspend. On success
 * *out is a new stream the caller frees with weft_stream_close() or
 * weft_stream_free(). On failure nothing is left open and *out is
 * untouched. Returns 0, a DNS error (weft/dns.h), the connection error
 * (WEFT_ECONNREFUSED, WEFT_ENETUNREACH, ...; when every address failed,
 * the first address's error), a TLS error (weft/tls.h), WEFT_EINVAL (port
 * out of range, NULL host). */
WEFT_EXTERN WEFT_NODISCARD int
weft_stream_connect(weft_stream **out, const char *host, int port,
                    const weft_stream_opts *opts);

/* Connects to one address: IPv4, IPv6 or Unix (weft/addr.h). Otherwise as
 * weft_stream_connect. May suspend. A Unix socket whose listener's
 * backlog is full fails with WEFT_EAGAIN. */
WEFT_EXTERN WEFT_NODISCARD int
weft_stream_connect_addr(weft_stream **out, const weft_addr *addr,
                         const weft_stream_opts *opts);

/* Connects to the first of `n` addresses that answers, by Happy Eyeballs
 * (RFC 8305): the list is reordered to alternate between families,
 * starting with the family of addrs[0]; a new attempt starts every
 * opts->attempt_delay (0.25 s) or as soon as the previous one fails; the
 * first attempt to connect wins and every other is closed. May suspend.
 * The array is only read during the call. Returns as weft_stream_connect;
 * WEFT_EINVAL when n == 0. */
WEFT_EXTERN WEFT_NODISCARD int
weft_stream_connect_addrs(weft_stream **out, const weft_addr *addrs, size_t n,
                          const weft_stream_opts *opts);

/* Connects to the Unix-domain socket at `path` ('@' first: abstract).
 * May suspend. As weft_stream_connect_addr. */
WEFT_EXTERN WEFT_NODISCARD int
weft_stream_connect_unix(weft_stream **out, const char *path,
                         const weft_stream_opts *opts);

/* Adopts a connected stream socket (one from accept(), socketpair(), ...):
 * makes it non-blocking and wraps it in a stream. Never suspends (the TLS
 * handshake of an accepted connection is weft_stream_start_tls(), called by
 * the task that serves it; opts->tls is ignored here). Callable from a task
 * or a callback on the loop's thread. On success the stream owns `fd` and
 * closes it; on failure the caller still owns it. Returns 0, WEFT_EBADF
 * (not open, or not a socket), WEFT_EINVAL (a socket, but not a stream
 * one), WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int
weft_stream_from_fd(weft_stream **out, int fd, const weft_stream_opts *opts);

/* ---- reading ---- */

/* Reads at least one and at most `len` bytes into buf, waiting until some
 * arrive (asyncio read(n)). Buffered bytes are returned first, without
 * touching the socket. May suspend. Returns the count (> 0; 0 only when
 * len == 0), WEFT_EOF once the peer has finished sending and the buffer is
 * empty, WEFT_ECONNRESET, a TLS error, or a common error (nothing
 * consumed). */
WEFT_EXTERN ssize_t weft_stream_read(weft_stream *s, void *buf, size_t len);

/* Reads exactly `n` bytes into buf (asyncio readexactly). May suspend; the
 * stream buffers up to n bytes meanwhile. Returns 0, or WEFT_EOF when the
 * stream ends first (the bytes that did arrive stay readable: see
 * weft_stream_buffered), WEFT_ECONNRESET, a common error (nothing
 * consumed). */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_read_exactly(weft_stream *s,
                                                        void *buf, size_t n);

/* Reads up to and including the first occurrence of `delim` (dlen >= 1
 * bytes) into buf, which holds at most `cap` bytes: the size limit
 * (asyncio readuntil with limit). May suspend. Returns the count including
 * the delimiter, WEFT_ELIMIT when `cap` bytes arrived without a delimiter
 * among them, WEFT_EOF when the stream ends before a delimiter, or another
 * error; on every error nothing is consumed (read the bytes with
 * weft_stream_read to discard or use them). */
WEFT_EXTERN ssize_t weft_stream_read_until(weft_stream *s, const void *delim,
                                           size_t dlen, void *buf, size_t cap);

/* Reads one line: up to and including "\n", or the last bytes before the
 * end of the stream when they end without one (asyncio readline). The line
 * is NUL-terminated in buf, so it may be at most cap - 1 bytes long. May
 * suspend. Returns the line's length (without the NUL), WEFT_EOF when the
 * stream ended with nothing buffered, WEFT_ELIMIT when the line is longer
 * (nothing consumed), or another error. */
WEFT_EXTERN ssize_t weft_stream_readline(weft_stream *s, char *buf, size_t cap);

/* Reads everything until the peer finishes sending (asyncio read(-1)),
 * into buf of `cap` bytes. May suspend. Returns the count (0 when the
 * stream had already ended), WEFT_ELIMIT when more than cap bytes arrive
 * (nothing consumed), WEFT_ECONNRESET or another error (nothing consumed). */
WEFT_EXTERN ssize_t weft_stream_read_to_eof(weft_stream *s, void *buf,
                                            size_t cap);

/* Waits until at least `min` bytes are buffered, then points *data at the
 * buffered bytes and sets *len (>= min) — without copying or consuming
 * them, for parsers that work in place. The view is valid until the next
 * call on the stream's read side. min == 0 never suspends. May suspend.
 * Returns 0, or WEFT_EOF / WEFT_ECONNRESET / another error when fewer than
 * `min` bytes can ever arrive (*data and *len then still show what is
 * buffered). */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_peek(weft_stream *s, size_t min,
                                                const void **data, size_t *len);

/* Drops the first n buffered bytes (after weft_stream_peek). Never
 * suspends. Returns 0, or WEFT_EINVAL when fewer are buffered. */
WEFT_EXTERN int weft_stream_consume(weft_stream *s, size_t n);

/* Bytes read from the socket and not yet consumed. Never suspends. */
WEFT_EXTERN size_t weft_stream_buffered(const weft_stream *s);

/* ---- writing ---- */

/* Writes len bytes: sends what the socket takes at once and queues the
 * rest; while the queue is at the high-water mark, waits until it drains
 * to the low-water mark (backpressure). Returns once all of data is sent
 * or queued: the caller may reuse buf at once. May suspend. Returns 0,
 * WEFT_EPIPE (the write side was shut down, or the peer closed),
 * WEFT_ECONNRESET, a TLS error, or a common error. See the top of this
 * file for what a failed write has queued. */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_write(weft_stream *s,
                                                 const void *data, size_t len);

/* Same for a gather list (one system call for all the pieces when the
 * socket takes them). May suspend. */
WEFT_EXTERN WEFT_NODISCARD int
weft_stream_writev(weft_stream *s, const struct iovec *iov, int iovcnt);

/* Waits until at most the low-water mark is queued (asyncio drain). May
 * suspend. Returns 0, or the error that stopped sending (WEFT_EPIPE,
 * WEFT_ECONNRESET, ...), or a common error (the queue is untouched). */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_drain(weft_stream *s);

/* Waits until nothing is queued: every byte has been handed to the kernel
 * (which still has to deliver it). May suspend. Returns as drain. */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_flush(weft_stream *s);

/* Bytes queued and not yet taken by the kernel. Never suspends. */
WEFT_EXTERN size_t weft_stream_write_buffered(const weft_stream *s);

/* Ends the write side (asyncio write_eof): flushes the queue, then sends
 * the TLS close_notify on a TLS stream, then the TCP FIN. Reading goes on
 * until the peer ends too. Later writes fail with WEFT_EPIPE; shutting
 * down twice does nothing. May suspend. Returns 0, a write error, or a
 * common error (cancelled: the queue stays, nothing was ended). */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_shutdown(weft_stream *s);

/* ---- closing ---- */

/* Closes the stream gracefully and frees it: sends what is still queued
 * (and a TLS close_notify), then closes the socket, spending at most
 * opts->close_timeout on it; past that, or when the calling task is
 * cancelled or its deadline passes, the connection is reset instead. The
 * stream is freed whatever happens: never use it again. Tasks still waiting
 * on it wake with WEFT_ECANCELED. May suspend. Returns 0, or the error that
 * kept the queued bytes from being sent (they are dropped). NULL is
 * allowed. */
WEFT_EXTERN int weft_stream_close(weft_stream *s);

/* Closes the socket and frees the stream at once, dropping what is still
 * queued; the peer sees a FIN (or a reset, if unread bytes remained). Never
 * suspends; callable from a callback on the loop's thread. Tasks waiting on
 * the stream wake with WEFT_ECANCELED. NULL is allowed. */
WEFT_EXTERN void weft_stream_free(weft_stream *s);

/* Like weft_stream_free, but the peer sees a reset (TCP RST, SO_LINGER 0)
 * instead of an orderly end. Never suspends. NULL is allowed. */
WEFT_EXTERN void weft_stream_abort(weft_stream *s);

/* ---- without a task: for protocol drivers ----
 *
 * A server that keeps thousands of idle keep-alive connections cannot hold
 * a task (and its stack) for each: these calls let a driver read, write and
 * wait from plain callbacks on the loop's thread, and start a task only
 * when there is work (net/http_server.c does so). They never suspend.
 */

/* Reads like weft_stream_read, but never waits: buffered bytes first, else
 * one attempt on the socket. Callable from a task or a callback on the
 * loop's thread. Returns the count (> 0; 0 only when len == 0), WEFT_EAGAIN
 * when nothing has arrived (see weft_stream_notify), WEFT_EOF,
 * WEFT_ECONNRESET, a TLS error, WEFT_EBUSY (a task is inside a read),
 * WEFT_ECANCELED (freed), WEFT_EWRONGLOOP, WEFT_ENOMEM. */
WEFT_EXTERN ssize_t weft_stream_try_read(weft_stream *s, void *buf, size_t len);

/* Writes like weft_stream_writev, but never waits: sends what the socket
 * takes now and queues all the rest, past the high-water mark if need be
 * (the caller bounds what it queues, with weft_stream_write_buffered() and
 * WEFT_STREAM_DRAINED). The caller may reuse the memory at once. Callable
 * from a task or a callback on the loop's thread. Returns 0, WEFT_EPIPE,
 * WEFT_ECONNRESET, a TLS error, WEFT_EBUSY (a task is inside a write),
 * WEFT_ECANCELED (freed), WEFT_EWRONGLOOP, WEFT_ENOMEM (nothing queued). */
WEFT_EXTERN WEFT_NODISCARD int
weft_stream_try_writev(weft_stream *s, const struct iovec *iov, int iovcnt);

/* Events of weft_stream_notify. */
#define WEFT_STREAM_READABLE 1 /* a read would not wait (data, end, error) */
#define WEFT_STREAM_DRAINED                                                    \
  2 /* at most the low-water mark is queued, or                                \
       writing failed */

typedef void (*weft_stream_notify_fn)(weft_stream *s, int events, void *arg);

/* Asks for one call of fn(s, events_that_hold, arg), made outside any task
 * on the loop's thread, once any of `events` holds: when readiness comes,
 * or at the next loop turn when it holds already. One-shot: call again
 * from the callback to go on watching. A new request replaces the last;
 * events == 0 cancels it. A freed stream never calls. The callback may free
 * the stream. Tasks reading or writing the stream meanwhile are not
 * affected. Never suspends. Returns 0, WEFT_EINVAL, WEFT_ECANCELED
 * (freed). */
WEFT_EXTERN int weft_stream_notify(weft_stream *s, int events,
                                   weft_stream_notify_fn fn, void *arg);

/* ---- addresses, options, counters ---- */

/* The peer's / our own address. Never suspends. Returns 0 or a negated
 * errno (WEFT_ENOTCONN). */
WEFT_EXTERN int weft_stream_peer_addr(const weft_stream *s, weft_addr *out);
WEFT_EXTERN int weft_stream_local_addr(const weft_stream *s, weft_addr *out);

/* Turns TCP_NODELAY on or off (on by default). Never suspends. Returns 0,
 * WEFT_ENOTSUP on a Unix socket, or a negated errno. */
WEFT_EXTERN int weft_stream_set_nodelay(weft_stream *s, bool on);

/* Turns TCP keepalive on (first probe after `idle` seconds without traffic,
 * then one every idle / 3 seconds (at least 1 s), the connection failing
 * with WEFT_ETIMEDOUT after 3 unanswered probes) or off. Never suspends.
 * Returns 0, WEFT_ENOTSUP on a Unix socket, WEFT_EINVAL (idle < 1 when on),
 * or a negated errno. */
WEFT_EXTERN int weft_stream_set_keepalive(weft_stream *s, bool on, double idle);

/* The socket, for options weft does not wrap. Do not read, write or close
 * it. */
WEFT_EXTERN int weft_stream_fd(const weft_stream *s);

/* Counters and buffer levels of a stream. */
typedef struct weft_stream_info {
  uint64_t bytes_read;    /* taken from the stream by reads (consumed) */
  uint64_t bytes_written; /* accepted by writes (sent or queued) */
  size_t read_buffered;   /* received and not consumed */
  size_t write_buffered;  /* queued and not yet taken by the kernel */
  size_t write_peak;      /* the most that was ever queued at once */
  bool tls;               /* TLS is on */
  bool eof;               /* the peer has finished sending */
  bool shut;              /* our write side is shut down */
} weft_stream_info;

/* Fills *out. Never suspends. */
WEFT_EXTERN void weft_stream_info_get(const weft_stream *s,
                                      weft_stream_info *out);

#ifdef __cplusplus
}
#endif

#endif
