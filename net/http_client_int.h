/* weft — what the HTTP client's files share (docs/internals/http.md,
 * "The client").
 *
 *   http_client.c       the session, the pool, weft_http_fetch (retries,
 *                       redirects, auth, cookies) and the response API
 *   http_client1.c      HTTP/1.1 exchanges on a connection the requesting
 *                       task owns (llhttp through http1.h)
 *   http_client2.c      HTTP/2 connections shared by many requests, driven
 *                       from stream callbacks (nghttp2 through http2.h)
 *   http_client_util.c  URLs, base64, the cookie jar, body decoding (zlib)
 *
 * Ownership. A connection (hc_conn) belongs to its origin (hc_host) and is
 * counted there and in the session from the moment a slot is reserved for
 * it (before connecting) until it is destroyed: those two counts are the
 * pool's limits, and nothing else changes them. A task that uses a
 * connection holds a reference; a dead connection's memory goes with the
 * last one.
 */
#ifndef WEFT_HTTP_CLIENT_INT_H
#define WEFT_HTTP_CLIENT_INT_H

#include <event2/event.h>
#include <weft/http_client.h>
#include <weft/stream.h>
#include <zlib.h>

#include "http1.h"
#include "http2.h"
#include "stream_int.h"

typedef struct hc_host hc_host;
typedef struct hc_conn hc_conn;
typedef struct hc_h2 hc_h2;
typedef struct hc_stream hc_stream;

/* A waiter's status asking it to look at the pool again (the pool changed
 * in a way it may use). */
#define HC_RETRY 1

/* An origin: scheme, host, port. Kept until the session goes. */
struct hc_host {
  weft__list link; /* session->hosts */
  weft_http_session *s;
  char *host; /* as connected to: a name or an IP literal, no brackets */
  int port;
  bool tls;
  weft__list idle;    /* idle HTTP/1.1 connections, most recent first */
  weft__list h2conns; /* HTTP/2 connections (usually one) */
  size_t nconns;      /* open or being opened */
  size_t nprobing;    /* being opened, and may turn out to speak HTTP/2 */
  bool h1_known;      /* its TLS server picked http/1.1 (or no ALPN) */
};

enum {
  CS_CONNECTING, /* slot reserved, connecting */
  CS_BUSY,       /* HTTP/1.1, carrying a request */
  CS_IDLE,       /* HTTP/1.1, in the pool */
  CS_H2,         /* HTTP/2, shared */
  CS_DEAD,       /* closed; memory goes with the last reference */
};

struct hc_conn {
  weft__list hlink; /* host->idle or host->h2conns */
  weft__list ilink; /* session->idle (oldest first), when idle */
  weft__list alink; /* session->conns */
  hc_host *h;
  weft_stream *st;
  uint8_t state;
  bool reused;  /* has carried a request before */
  bool probing; /* counted in h->nprobing */
  unsigned refs;
  double idle_since;
  /* HTTP/1.1: the parser and the read buffer (kept between requests). */
  weft__h1 p;
  char *rbuf;
  size_t rpos, rlen, rcap;
  weft__hbuf out;
  /* HTTP/2. */
  hc_h2 *h2;
};

/* A task waiting in the pool for a connection of host `h`. The waker hands
 * over a connection (w.data; CS_BUSY: use it, CS_CONNECTING: connect it) or
 * asks for a new look (HC_RETRY). */
typedef struct hc_wait {
  weft__waiter w;
  hc_host *h;
} hc_wait;

/* Session options with the defaults filled in, and copies of strings. */
typedef struct hc_opts {
  size_t limit, limit_per_host;
  double keepalive, total, connect, read;
  int h2;
  int max_redirects;
  bool cookies;
  char *user_agent; /* NULL: none */
  size_t ua_len;
  bool decompress;
  size_t max_body;
} hc_opts;

typedef struct hc_cookie hc_cookie;

struct weft_http_session {
  weft_loop *loop;
  hc_opts o;
  weft_tls_ctx *tls;
  bool own_tls;
  weft__list hosts;
  weft__list conns;   /* every connection */
  weft__list idle;    /* idle connections of every host, oldest first */
  weft__list waiters; /* hc_wait, FIFO */
  size_t nconns;
  struct event *idle_ev;
  /* HTTP/2 connections with frames to send, written once per loop turn. */
  struct event *flush_ev;
  weft__list dirty;
  weft_http_session_stats st;
  hc_cookie *cookies;
  weft__list free_resps; /* responses kept for reuse */
  size_t nfree_resps;
  unsigned refs; /* the user's, plus each request and response alive */
  bool closed;
};

/* What the requesting task wants sent; its strings live for the call. */
typedef struct hc_req {
  const char *method;
  bool idempotent;
  bool is_head;
  weft__http_msg *msg; /* head: method, target, authority, scheme, fields */
  /* Body: one of bytes, file, fn (see weft_http_req_opts). */
  const void *body;
  size_t body_len;
  int body_fd; /* -1: none */
  weft_http_body_fn body_fn;
  void *body_arg;
  int64_t length;    /* of the body, or -1 (chunked / unknown); -2: no body */
  bool cross_origin; /* redirected to another origin: no credentials */
} hc_req;

/* Request-wide deadlines: the total one (absolute, weft_now clock) and the
 * read timeout of each wait for bytes (seconds, or INFINITY). */
typedef struct hc_time {
  double deadline;
  double read;
} hc_time;

struct weft_http_response {
  weft_http_session *s;
  hc_conn *c;     /* the connection while the body is read (a reference) */
  hc_stream *h2s; /* HTTP/2: its stream */
  char *url;
  int redirects;
  int err;      /* sticky body error */
  bool raw_end; /* the body as sent has ended */
  bool end;     /* ... and as decoded */
  bool is_head; /* a response to HEAD */
  bool got_any; /* some byte of the response arrived (retry rule) */
  hc_time t;
  size_t max_body;
  /* Decoding. */
  z_stream *z;
  bool z_raw_tried; /* deflate: a raw stream after a bad zlib header */
  bool z_end;       /* the compressed stream ended */
  char *zbuf;
  size_t zpos, zlen;
  bool body_done;
  /* Kept when the response is cached for reuse (from here on). */
  weft__list cache_link;
  weft__hbuf body;    /* weft_http_response_body's copy */
  weft__http_msg req; /* the request head of this attempt */
  weft__http_msg msg; /* the response head */
  WEFT__ARENA_INLINE(1024) inl_res;
  WEFT__ARENA_INLINE(512) inl_req;
};

/* ---- http_client.c, for the drivers ---- */

void weft__hc_conn_ref(hc_conn *c);
void weft__hc_conn_unref(hc_conn *c);
/* Closes c's socket and takes it out of the pool (its slot is free for a
 * waiter at once). Never suspends. */
void weft__hc_conn_close(hc_conn *c);
/* An HTTP/1.1 connection whose exchange ended cleanly goes back to the
 * pool (or to a waiter). */
void weft__hc_conn_release(hc_conn *c);
/* The pool changed for host h's waiters: each looks again. */
void weft__hc_host_changed(hc_host *h);
/* HTTP/2 connections: with no stream open (idle, the idle timeout runs) or
 * in use again. */
void weft__hc_h2_idle(hc_conn *c, bool idle);
/* Enters the request's scopes for one wait: the total deadline and, when
 * `reading`, the read timeout. weft__hc_time_exit returns the wait's
 * result (rc). */
typedef struct hc_scopes {
  weft_timeout total, read;
} hc_scopes;
void weft__hc_time_enter(hc_scopes *sc, const hc_time *t, bool reading);
int weft__hc_time_exit(hc_scopes *sc, int rc);

/* ---- http_client1.c ---- */

/* Sends the request on c (owned by the task) and reads the response head
 * into r->msg (1xx skipped). Returns 0 or an error (the connection must
 * then be closed); r->got_any says whether any byte of a response came. */
int weft__hc1_exchange(hc_conn *c, const hc_req *q, weft_http_response *r);
/* Reads body bytes as sent (count, 0 at the end, or an error). */
ssize_t weft__hc1_read(weft_http_response *r, void *buf, size_t len);
/* Frees the parser state of c. */
void weft__hc1_free(hc_conn *c);

/* ---- http_client2.c ---- */

/* Starts HTTP/2 on a connected c (CS_H2). Returns 0 or an error. */
int weft__hc2_start(hc_conn *c);
/* True while c can take new streams. */
bool weft__hc2_usable(const hc_conn *c);
/* Runs one request as a stream of c: waits for a stream slot, sends, waits
 * for the head. Returns 0 (r->h2s set), HC_RETRY (the connection cannot
 * take it: look in the pool again; nothing was sent that the server
 * processed), or an error. */
int weft__hc2_exchange(hc_conn *c, const hc_req *q, weft_http_response *r);
ssize_t weft__hc2_read(weft_http_response *r, void *buf, size_t len);
/* The response is done with its stream (read to the end, or abandoned:
 * then the stream is reset). */
void weft__hc2_stream_done(weft_http_response *r);
/* Frees c's HTTP/2 state (the connection is dead). */
void weft__hc2_free(hc_conn *c);
/* Ends the connection's HTTP/2 session: streams fail, waiters retry. */
void weft__hc2_kill(hc_conn *c, int err);
/* The session's flush event. */
void weft__hc2_flush(evutil_socket_t fd, short what, void *arg);
size_t weft__hc2_streams(const hc_conn *c);

/* ---- http_client_util.c ---- */

typedef struct hc_url {
  bool tls;
  char *host; /* no brackets */
  int port;
  char *target;    /* path and query, at least "/" */
  char *authority; /* host[:port] as it goes in Host / :authority */
  char *userinfo;  /* "user:pass" or NULL (percent-decoded) */
  char *buf;       /* one allocation holding the strings */
} hc_url;

/* Parses an absolute http(s) URL. Returns 0, WEFT_EINVAL, WEFT_ENOTSUP,
 * WEFT_ENOMEM. */
int weft__hc_url_parse(hc_url *u, const char *url);
void weft__hc_url_free(hc_url *u);
/* The absolute URL `ref` (a Location value) means relative to `base`, in
 * a new allocation (weft__free). NULL when out of memory. */
char *weft__hc_url_join(const char *base, const char *ref);

/* base64 of in[0..n) into out (room for 4 * ((n + 2) / 3) + 1). */
void weft__hc_base64(const void *in, size_t n, char *out);

/* Cookies: takes the Set-Cookie fields of a response from url u; writes the
 * Cookie value for a request to u into b (nothing when none). */
void weft__hc_cookies_take(weft_http_session *s, const hc_url *u,
                           const weft__http_msg *m);
int weft__hc_cookies_put(weft_http_session *s, const hc_url *u, weft__hbuf *b);
void weft__hc_cookies_free(weft_http_session *s);

/* Decoding: starts it when the response's Content-Encoding asks (gzip,
 * deflate; `identity` or none: nothing). Returns 0, WEFT_ENOTSUP (another
 * coding: the body is handed over as sent), WEFT_ENOMEM. */
int weft__hc_decode_start(weft_http_response *r);
/* Reads decoded bytes, pulling raw ones with `raw`. */
ssize_t weft__hc_decode_read(weft_http_response *r, void *buf, size_t len,
                             ssize_t (*raw)(weft_http_response *, void *,
                                            size_t));
void weft__hc_decode_free(weft_http_response *r);

#endif
