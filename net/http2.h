/* weft — the HTTP/2 session: nghttp2 set up safely, for either role, with
 * no I/O (docs/internals/http.md).
 *
 * A weft__h2 wraps one nghttp2_session (server or client) and turns its
 * callbacks into a few events on weft__http_msg: a stream's head arrived
 * (request headers for a server, response headers for a client, or
 * trailers), body bytes arrived, the peer ended its side, the stream
 * closed. Bytes from the transport go in with weft__h2_recv(); frames to
 * send come out of weft__h2_send(). Sending a message is
 * weft__h2_submit(), whose body is pulled through the `read` event as
 * flow control allows.
 *
 * What nghttp2 1.52 leaves to its user is done here: an allocator through
 * weft's hook; SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 advertises none);
 * flood limits set explicitly (CONTINUATION frames, SETTINGS entries,
 * outbound ACKs, the stream reset rate); a bound on each header list
 * (decoded size and count: HPACK bombs); flow control tied to what the
 * application has consumed (no automatic WINDOW_UPDATE); and a budget of
 * "glitches" - peer-caused stream errors and resets - whose exhaustion
 * ends the session with GOAWAY ENHANCE_YOUR_CALM (CVE-2023-44487 rapid
 * reset, CVE-2025-8671 MadeYouReset; nghttp2 1.52 has no glitch counter).
 * A server's session checks request heads itself (nghttp2's HTTP checks,
 * a second pass over every field, are off for it; http2.c says what is
 * checked), and its owner checks bodies against Content-Length
 * (weft__h2_body_ok); a client's session keeps nghttp2's checks.
 */
#ifndef WEFT_HTTP2_H
#define WEFT_HTTP2_H

#include <nghttp2/nghttp2.h>

#include "http_msg.h"

typedef struct weft__h2 weft__h2;

typedef struct weft__h2_limits {
  uint32_t max_streams;    /* SETTINGS_MAX_CONCURRENT_STREAMS we send */
  uint32_t stream_window;  /* SETTINGS_INITIAL_WINDOW_SIZE we send */
  uint32_t conn_window;    /* our connection receive window */
  size_t max_header_bytes; /* decoded header list, RFC 9113 6.5.2 size */
  size_t max_headers;      /* fields in a header list */
  uint32_t max_glitches;   /* budget; refilled by a tenth a second */
} weft__h2_limits;

/* Events. `ud` is the stream's pointer set by `begin` (or by
 * weft__h2_submit on a client). Each returns 0, or < 0 to make the session
 * fail (nghttp2 then sends GOAWAY INTERNAL_ERROR). */
typedef struct weft__h2_events {
  /* A head begins: on a stream the peer opened (server; ud NULL), or on a
   * known stream (ud: its pointer; the head is a response or trailers).
   * Returns the stream's pointer and, in *msg, the message to fill
   * (trailers go to its trailers list). Returning NULL refuses a new
   * stream (RST_STREAM REFUSED_STREAM). */
  void *(*begin)(void *owner, int32_t sid, void *ud, weft__http_msg **msg);
  /* A head is complete in the stream's message. `too_big` says a limit
   * (header bytes or count) was passed: the fields past it were dropped.
   * `trailers`: this head was trailers. `end`: no body follows. Returns 1
   * when, with `end`, it took the stream's end as well: no `end` event
   * follows then. */
  int (*head)(void *owner, void *ud, bool trailers, bool end, bool too_big);
  /* Body bytes. The application consumes them (weft__h2_consume) as it
   * reads them: until then they hold the flow-control window. */
  int (*data)(void *owner, void *ud, const uint8_t *p, size_t n);
  /* The peer ended its side of the stream (after the last data or
   * trailers). */
  int (*end)(void *owner, void *ud);
  /* The stream closed (code: NGHTTP2_NO_ERROR, or the reset's). The
   * pointer is not used by the session after this. */
  int (*close)(void *owner, void *ud, uint32_t code);
  /* Body bytes to send for a submitted message: copies at most len into
   * buf; returns the count (0 with *eof set at the end), or WEFT_EAGAIN
   * when none are ready yet (weft__h2_resume once there are). At the end,
   * *trailers (when set and not empty) go after the last byte. */
  ssize_t (*read)(void *owner, void *ud, uint8_t *buf, size_t len, bool *eof,
                  const weft__http_hdrs **trailers);
} weft__h2_events;

/* Makes a session for `server` or client role with `lim` (copied); the
 * owner pointer is passed back to every event. Returns 0 or WEFT_ENOMEM. */
int weft__h2_new(weft__h2 **out, bool server, const weft__h2_limits *lim,
                 const weft__h2_events *ev, void *owner);
/* Queues our SETTINGS and connection window (after weft__h2_upgrade, if
 * any). Returns 0 or WEFT_ENOMEM. */
int weft__h2_start(weft__h2 *h);
void weft__h2_free(weft__h2 *h);

/* Server: takes over an HTTP/1.1 request that asked to upgrade (h2c): the
 * HTTP2-Settings payload (base64url, as sent), whether it was HEAD, and
 * stream 1's pointer. Returns 0, WEFT_EBADMSG (bad settings), or
 * WEFT_ENOMEM. */
int weft__h2_upgrade(weft__h2 *h, const char *settings_b64, bool head,
                     void *ud);

/* Feeds bytes received. Returns 0, WEFT_EPROTO (the peer broke the
 * protocol: GOAWAY is queued, send it and close), WEFT_ELIMIT (a flood or
 * the glitch budget: GOAWAY ENHANCE_YOUR_CALM queued), or WEFT_ENOMEM. */
int weft__h2_recv(weft__h2 *h, const uint8_t *data, size_t len);

/* The next bytes to send: *data points into the session (valid until the
 * next call on it). Returns their count (0: nothing to send now), or a
 * negative code as weft__h2_recv. */
ssize_t weft__h2_send(weft__h2 *h, const uint8_t **data);
/* weft__h2_send in two halves, for the driver glue's loop (http2_io.c),
 * which calls nghttp2_session_mem_send on the session itself (a call less
 * a frame) and hands a negative result to weft__h2_send_failed, which maps
 * it as weft__h2_send does. */
nghttp2_session *weft__h2_session(weft__h2 *h);
int weft__h2_send_failed(weft__h2 *h, ssize_t rc);

/* Driver glue (http2_io.c), the one place a session meets a stream: hands
 * what the session has to send to `st` in batches, until nothing is left or
 * `high` bytes wait in the stream's queue. Never suspends. Returns 0, or an
 * error (from the session or the stream) when the connection must close. */
struct weft_stream;
int weft__h2_send_to(weft__h2 *h, struct weft_stream *st, size_t high);
/* weft__h2_send_to that also sets *idle when it stopped because the
 * session had nothing more to send (not at `high`): until more input, a
 * call, or a write of the owner's, asking again finds nothing. */
int weft__h2_send_idle(weft__h2 *h, struct weft_stream *st, size_t high,
                       bool *idle);

/* True while the session wants to read / has frames to write; when
 * neither, the connection can close. */
bool weft__h2_want_read(const weft__h2 *h);
bool weft__h2_want_write(const weft__h2 *h);

/* Sends a head (a response on a server, a request on a client: then a new
 * stream is made and its id returned). With `body`, the body is pulled
 * through the read event; else the stream ends with the head. A server's
 * response is not copied: m (its fields and arena) must stay as it is
 * until the stream closes. Returns the stream id
 * (client) or 0, WEFT_EINVAL, WEFT_ENOMEM. */
int32_t weft__h2_submit(weft__h2 *h, int32_t sid, weft__http_msg *m, bool body,
                        void *ud);
/* Sends trailers and ends the stream (after the body). */
int weft__h2_submit_trailers(weft__h2 *h, int32_t sid,
                             const weft__http_hdrs *t);
/* A stream whose read returned WEFT_EAGAIN has bytes again. */
void weft__h2_resume(weft__h2 *h, int32_t sid);
/* Resets a stream with `code` (NGHTTP2_*). */
void weft__h2_reset(weft__h2 *h, int32_t sid, uint32_t code);
/* n body bytes of `sid` were consumed by the application: opens the
 * windows (stream and connection; connection only once the stream is
 * gone). */
void weft__h2_consume(weft__h2 *h, int32_t sid, size_t n);
/* Graceful end: GOAWAY with the last stream id seen; streams open go on.
 * With code != 0 (ENHANCE_YOUR_CALM, ...): ends the session now. */
void weft__h2_goaway(weft__h2 *h, uint32_t code);
/* Server: the request on `sid` has `got` body bytes so far (`end`: that is
 * all). Returns false when that breaks its Content-Length `cl` (-1: none);
 * the stream is then reset (PROTOCOL_ERROR) and a glitch counted. A
 * server's session checks request heads itself, not bodies: its owner
 * calls this. */
bool weft__h2_body_ok(weft__h2 *h, int32_t sid, int64_t cl, uint64_t got,
                      bool end);
/* Counts one peer-caused error. Returns true when the budget is spent
 * (GOAWAY ENHANCE_YOUR_CALM was queued). */
bool weft__h2_glitch(weft__h2 *h);
/* Client side. The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its
 * SETTINGS arrive), and whether new streams may still be opened (false once
 * the peer sent GOAWAY or the session ended). */
uint32_t weft__h2_peer_max_streams(const weft__h2 *h);
bool weft__h2_may_open(const weft__h2 *h);
/* The two halves of weft__h2_consume, for a client that opens the
 * connection window as data arrives (so one unread response cannot stall
 * the others) and a stream's window as its reader takes the bytes. */
void weft__h2_consume_conn(weft__h2 *h, size_t n);
void weft__h2_consume_stream(weft__h2 *h, int32_t sid, size_t n);
/* The session's pointer for stream sid, or NULL. */
void *weft__h2_stream_ud(weft__h2 *h, int32_t sid);
/* The number of RST_STREAMs the peer sent, and whether the session ended
 * itself for a flood (ENHANCE_YOUR_CALM). */
uint64_t weft__h2_resets_recv(const weft__h2 *h);
bool weft__h2_calmed(const weft__h2 *h);

#endif
