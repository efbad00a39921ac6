/* weft — the HTTP/1.1 codec: llhttp for parsing, plain formatting for
 * serialising. No I/O: bytes in, messages out, and back
 * (docs/internals/http.md).
 *
 * Parsing either role. weft__h1_feed() hands llhttp the bytes and stops at
 * two points the driver must act on: the end of a head (H1_HEAD: the
 * message's head is complete in h->msg; the body, if any, follows) and the
 * end of a message (H1_DONE). Body bytes go to the sink the driver set
 * (weft__h1_set_sink), never more than it has room for. Limits llhttp does
 * not have are counted here, in its callbacks: target length (414), head
 * size and field count (431). Every lenient flag of llhttp stays off, so
 * duplicate or conflicting Content-Length, Content-Length with
 * Transfer-Encoding, obs-fold, bare CR/LF and bad chunk sizes are errors
 * (400), which a server answers by closing: no request can be smuggled.
 */
#ifndef WEFT_HTTP1_H
#define WEFT_HTTP1_H

#include <llhttp.h>

#include "http_msg.h"

typedef struct weft__h1_limits {
  size_t max_target;       /* 414 */
  size_t max_header_bytes; /* 431 (head and trailers) */
  size_t max_headers;      /* 431 */
} weft__h1_limits;

/* Where the parser is. */
enum {
  WEFT__H1_IDLE,  /* between messages: nothing of the next one seen */
  WEFT__H1_START, /* in a head */
  WEFT__H1_HEAD,  /* head complete, body (if any) next */
  WEFT__H1_BODY,  /* in the body (after the driver went on) */
  WEFT__H1_DONE,  /* message complete; weft__h1_next() for the next */
  WEFT__H1_ERROR, /* bad input: h->status says what to answer */
};

typedef struct weft__h1 {
  llhttp_t p;
  weft__http_msg *msg; /* the message being filled */
  const weft__h1_limits *lim;
  uint8_t state;
  bool in_trailers; /* header callbacks now fill msg->trailers */
  bool upgrade;     /* llhttp stopped at an Upgrade / CONNECT */
  int status;       /* on error: 400, 413, 414, 431 (or 505) */
  const char *why;  /* on error: a short reason for logs */
  size_t head_bytes;
  /* The piece being assembled (method, target, field name or value) and
   * the field name that waits for its value. A piece that arrives whole is
   * used where it lies in the bytes being fed (cur, fld); only one cut by
   * the end of a feed is gathered in the scratch buffer (cur_sc, fld_sc),
   * the name at its start and the value after it. */
  const char *cur, *fld;
  size_t cur_len, fld_len;
  bool cur_sc, fld_sc, have_fld;
  char *scratch;
  size_t sc_len, sc_cap;
  /* Body sink. */
  char *dst;
  size_t dst_cap, dst_len;
  uint64_t body_bytes; /* body bytes of this message so far */
  /* What llhttp (built loose, as Debian ships it) lets through is checked
   * here: obs-fold (a value continued on a new line), and the CRLF after
   * each chunk's data. */
  const char *feed_start, *feed_end; /* the bytes of the current feed */
  bool val_open;                     /* a value has begun and not completed */
  bool val_at_end;                   /* ... and its last piece ended the feed */
  uint64_t chunk_left; /* data bytes of the current chunk not seen */
  uint8_t crlf_left;   /* bytes of a chunk's CRLF still to check */
} weft__h1;

/* Initialises a parser of requests (WEFT__HTTP_REQUEST) or responses
 * (WEFT__HTTP_RESPONSE) filling `msg`, with limits `lim` (kept by
 * pointer). */
void weft__h1_init(weft__h1 *h, int kind, weft__http_msg *msg,
                   const weft__h1_limits *lim);
/* Readies a parser used before (initialised, maybe released), or zeroed
 * memory, as a copy of `proto`, a parser initialised with weft__h1_init
 * and never fed (its kind and limits are taken): cheaper than
 * initialising. Keeps the scratch buffer. */
void weft__h1_reuse(weft__h1 *h, const weft__h1 *proto, weft__http_msg *msg);
/* Frees the scratch buffer (the parser stays usable). */
void weft__h1_release(weft__h1 *h);

/* Client side: the response being parsed answers a HEAD (no body). */
void weft__h1_expect_head(weft__h1 *h, bool head);

/* Sets where body bytes go: at most cap bytes at dst; dst_len counts them. */
static inline void weft__h1_set_sink(weft__h1 *h, void *dst, size_t cap) {
  h->dst = dst;
  h->dst_cap = cap;
  h->dst_len = 0;
}

/*
 * Parses from data[0..len). Returns the bytes consumed (the rest belongs
 * to a later call), or -1 on bad input (h->state WEFT__H1_ERROR, h->status
 * the answer). Stops early at the end of a head (WEFT__H1_HEAD; a message
 * without a body goes straight to WEFT__H1_DONE) and at the end of a
 * message; in the body, stops when the sink is full. Messages are parsed
 * one at a time: after WEFT__H1_DONE call weft__h1_next() before feeding
 * more.
 */
ssize_t weft__h1_feed(weft__h1 *h, const char *data, size_t len);

/* The peer ended the connection: completes a body delimited by the end
 * (responses without a length). Returns 0, or -1 when a message was cut. */
int weft__h1_finish(weft__h1 *h);

/* Goes on to the next message (after WEFT__H1_DONE); `msg` has been reset
 * by the caller, or is a new one. */
static inline void weft__h1_next(weft__h1 *h, weft__http_msg *msg) {
  h->msg = msg;
  h->state = WEFT__H1_IDLE;
  h->upgrade = false;
  h->in_trailers = false;
  h->sc_len = h->cur_len = h->fld_len = 0;
  h->cur_sc = h->fld_sc = h->have_fld = false;
}

/* True when the message's body ends with the connection (a response
 * without Content-Length or chunking). */
bool weft__h1_body_until_eof(const weft__h1 *h);

/* Flags for weft__h1_head. */
enum {
  WEFT__H1_CHUNKED = 1, /* Transfer-Encoding: chunked */
  WEFT__H1_CLOSE = 2,   /* Connection: close */
  WEFT__H1_KEEP = 4,    /* Connection: keep-alive (HTTP/1.0 peers) */
  WEFT__H1_DATE = 8,    /* a Date field (servers) */
  WEFT__H1_NOLEN = 16,  /* no Content-Length even if known (1xx, 204, 304) */
};

/* Appends the serialised head of `m` (request line or status line, its
 * header fields, the framing fields asked for by `flags` and
 * m->content_length, and the blank line) to `out`. Returns 0 or
 * WEFT_ENOMEM. */
int weft__h1_head(weft__hbuf *out, const weft__http_msg *m, unsigned flags);

/* Writes the framing before an n-byte chunk ("1a2b\r\n") into buf (at
 * least 20 bytes). Returns its length. */
size_t weft__h1_chunk_head(char *buf, size_t n);
/* Appends the last chunk with `trailers` (may be NULL) and the final CRLF.
 * Returns 0 or WEFT_ENOMEM. */
int weft__h1_chunk_end(weft__hbuf *out, const weft__http_hdrs *trailers);

#endif
