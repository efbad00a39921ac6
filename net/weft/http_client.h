/* weft — the HTTP client (aiohttp.ClientSession, in C).
 *
 * A session owns a connection pool and the settings every request shares;
 * requests are made from tasks, as many at once as you like, and each gets a
 * response whose body is read whole or streamed:
 *
 *   weft_http_session *s;
 *   int rc = weft_http_session_new(&s, NULL);
 *   ...
 *   weft_http_response *r;
 *   rc = weft_http_get(s, "https://example.org/", &r);
 *   if (rc == 0) {
 *     const void *body;
 *     size_t len;
 *     rc = weft_http_response_body(r, &body, &len);
 *     printf("%d, %zu bytes\n", weft_http_response_status(r), len);
 *     weft_http_response_free(r);
 *   }
 *   weft_http_session_free(s);
 *
 * Protocols. HTTP/1.1 with keep-alive, and HTTP/2 over TLS when the server
 * picks it by ALPN (or on cleartext with prior knowledge, when asked): then
 * one connection carries every request to that server as concurrent
 * streams, up to the server's SETTINGS_MAX_CONCURRENT_STREAMS; requests
 * beyond it wait for a stream to end. Both run on the codecs the server uses
 * (net/http1.h over llhttp, net/http2.h over nghttp2; docs/internals/http.md).
 *
 * The pool. Connections are kept per (scheme, host, port): at most `limit`
 * open in all (100) and `limit_per_host` to one origin (no limit); a request
 * over the limits waits, in order, for a connection to come back. An idle
 * connection is closed after keepalive_timeout, or as soon as the server
 * closes it; a request that fails on a reused connection before anything of
 * the response came is retried once on a new one when its method is
 * idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE). A connection goes back
 * to the pool only when its response was read to the end; every other
 * ending (an error, a timeout, a cancellation, a response freed unread)
 * closes it (HTTP/1.1) or resets the stream (HTTP/2), so the next request
 * never finds the connection in a bad state and the pool's counts never
 * drift (weft_http_session_stats).
 *
 * Errors every request call may return: WEFT_EINVAL (a bad URL or option),
 * WEFT_ENOTSUP (a scheme other than http and https), DNS errors (weft/dns.h:
 * WEFT_ENOHOST, ...), connection errors (WEFT_ECONNREFUSED,
 * WEFT_ENETUNREACH, ...), TLS errors (weft/tls.h: WEFT_ETLS_UNKNOWN_CA,
 * WEFT_ETLS_HOSTNAME, ...), WEFT_ETIMEDOUT (one of the timeouts below, or a
 * deadline scope of the caller), WEFT_ECANCELED, WEFT_ECONNRESET (the
 * connection or the HTTP/2 stream was reset), WEFT_EHTTP_NO_RESPONSE (the
 * server closed the connection without answering), WEFT_EHTTP_TRUNCATED (the
 * body ended before its length or its last chunk), WEFT_EBADMSG (a malformed
 * response), WEFT_EPROTO (an HTTP/2 protocol error),
 * WEFT_EHTTP_REDIRECTS (more redirects than allowed), WEFT_ELIMIT (a body
 * over the limit), WEFT_ENOMEM, WEFT_ENOTASK (outside a task).
 *
 * Threads: a session belongs to the loop of the thread that made it, and is
 * used from that loop's tasks only (one session per worker loop).
 */
#ifndef WEFT_HTTP_CLIENT_H
#define WEFT_HTTP_CLIENT_H

#include <sys/types.h>
#include <weft/common.h>
#include <weft/http.h>
#include <weft/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_http_session weft_http_session;
typedef struct weft_http_response weft_http_response;

/* Session options. Zero fields take the defaults; NULL options mean all
 * defaults. `size` must be sizeof(weft_http_session_opts). */
typedef struct weft_http_session_opts {
  size_t size;
  /* Connections open at once, to all hosts (aiohttp TCPConnector limit):
   * default 100; SIZE_MAX: no limit. Idle ones count: at the limit, the
   * oldest idle connection to another host is closed to make room. */
  size_t limit;
  /* Connections open at once to one (scheme, host, port). 0 (default): only
   * `limit` applies. An HTTP/2 origin uses one connection whatever this
   * says. */
  size_t limit_per_host;
  /* Seconds an idle connection is kept for reuse. Default 15 (aiohttp's). */
  double keepalive_timeout;

  /* Default timeouts of each request, in seconds (aiohttp ClientTimeout);
   * a request's options may override them. 0 takes the default; < 0 means
   * none. `total`: the whole request, from the call to the end of its body
   * (default 300). `connect`: getting a connection - waiting for the pool,
   * DNS, TCP, TLS (default: none but total). `read`: waiting for the next
   * bytes of the response (default: none but total). */
  double total_timeout;
  double connect_timeout;
  double read_timeout;

  /* TLS. `tls`: a client context of yours (weft_tls_client_ctx_new),
   * borrowed: it must outlive the session; give it ALPN {"h2", "http/1.1"}
   * for HTTP/2. NULL (default): the session makes one that verifies
   * servers against the system's CA store (or `ca_file`) and offers h2.
   * `insecure`: no verification at all - for tests only; the session says
   * so on stderr when it is made. */
  weft_tls_ctx *tls;
  const char *ca_file;
  bool insecure;

  /* HTTP/2: 0 (default): over TLS when the server picks it by ALPN,
   * HTTP/1.1 on cleartext. > 0: also on cleartext, with prior knowledge
   * (h2c: the server must speak HTTP/2 on that port). < 0: never. */
  int h2;

  /* Redirects followed by default (aiohttp max_redirects): 10. < 0: none
   * followed (the 3xx is the response). */
  int max_redirects;
  /* Keep the cookies servers set and send them back (a per-session jar, in
   * memory). Default off: no Cookie header is ever sent on your behalf. */
  bool cookies;
  /* Sent as User-Agent unless a request sets its own. NULL: "weft/VERSION";
   * "" sends none. Copied. */
  const char *user_agent;
  /* Ask for gzip and deflate (Accept-Encoding) and decode such bodies as
   * they are read. 0 (default): on; < 0: off (bodies as sent). */
  int decompress;
  /* Largest body weft_http_response_body() reads into memory. Default
   * 64 MiB; a request's max_body overrides it. */
  size_t max_body;
} weft_http_session_opts;

/* Makes a session on the calling thread's loop. Never suspends; loop thread.
 * Returns 0, WEFT_EINVAL (bad options), a TLS context error (ca_file:
 * WEFT_ENOENT, WEFT_ETLS_BADCERT), WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int
weft_http_session_new(weft_http_session **out,
                      const weft_http_session_opts *opts);

/* Closes every idle connection now and every busy HTTP/1.1 one as its
 * request ends (aiohttp session.close()), then frees the session once no
 * response of it is alive. Requests waiting for a connection wake with
 * WEFT_ECANCELED; new requests fail with WEFT_ECLOSED. Responses still held
 * stay readable over HTTP/1.1; over HTTP/2 their connection is closed now
 * and their reads fail with WEFT_ECONNRESET. Never suspends. NULL ok. */
WEFT_EXTERN void weft_http_session_free(weft_http_session *s);

typedef struct weft_http_session_stats {
  uint64_t connects;         /* connections opened (TCP + TLS done) */
  uint64_t connect_failures; /* attempts that failed (DNS, TCP, TLS) */
  uint64_t reused;      /* requests sent on a connection taken from the pool */
  uint64_t requests;    /* requests sent (each attempt and redirect) */
  uint64_t retries;     /* retried after a reused connection failed */
  uint64_t h2_streams;  /* of the requests, how many went as HTTP/2 streams */
  uint64_t closed_idle; /* idle connections closed: timeout, limit, the
                           server closing them */
  /* Now: */
  size_t open;      /* connections open or being opened */
  size_t idle;      /* ... of which idle in the pool */
  size_t busy;      /* ... of which carrying a request (HTTP/1.1) or a
                       stream (HTTP/2) */
  size_t h2_open;   /* ... of which HTTP/2 */
  size_t streams;   /* HTTP/2 streams open */
  size_t waiting;   /* requests waiting for a connection or a stream */
  size_t peak_open; /* the most connections ever open at once */
} weft_http_session_stats;

/* Fills *out. Never suspends. */
WEFT_EXTERN void weft_http_session_stats_get(const weft_http_session *s,
                                             weft_http_session_stats *out);

/* A request body read piece by piece: copies at most `cap` bytes into buf
 * and returns the count, 0 at the end, or a WEFT_E* error (the request then
 * fails with it). Runs in the requesting task and may suspend. */
typedef ssize_t (*weft_http_body_fn)(void *arg, void *buf, size_t cap);

/* Per-request options. Zero fields take the session's settings; NULL
 * options mean all of them. `size` must be sizeof(weft_http_req_opts). */
typedef struct weft_http_req_opts {
  size_t size;
  /* Header fields to send, `nheaders` of them (names and values copied;
   * name_len / value_len 0 mean strlen). Host, Content-Length,
   * Transfer-Encoding and Connection are the client's own and are refused
   * (WEFT_EINVAL); a User-Agent, Accept-Encoding or Authorization here
   * replaces the session's. */
  const weft_http_field *headers;
  size_t nheaders;
  /* The body: `body` / `body_len` bytes (borrowed for the call), or
   * `body_fn`(body_arg) pieces of `body_fn_len` bytes in all (-1: unknown,
   * sent chunked on HTTP/1.1), or the file at `body_file` (its size; read
   * as reads of a local disk are, blocking the loop briefly). One at most.
   * A body made by body_fn cannot be sent again, so a request with one is
   * neither retried nor redirected with its body (the 307/308 is then
   * the response). */
  const void *body;
  size_t body_len;
  weft_http_body_fn body_fn;
  void *body_arg;
  int64_t body_fn_len;
  const char *body_file;
  /* Content-Type of the body (NULL: none sent). */
  const char *content_type;
  /* Basic authentication (RFC 7617). A "user:pass@" in the URL does the
   * same. Not sent again after a redirect to another origin. */
  const char *user;
  const char *password;
  /* Timeouts of this request, as the session's (0: the session's; < 0:
   * none). */
  double total_timeout;
  double connect_timeout;
  double read_timeout;
  /* Redirects to follow: 0 takes the session's; < 0 follows none. */
  int max_redirects;
  /* Body limit of weft_http_response_body (0: the session's). */
  size_t max_body;
} weft_http_req_opts;

/*
 * Sends a request and waits for the response's head (aiohttp's
 * `async with session.request(method, url) as resp`): connects or takes a
 * pooled connection, sends the method, headers and body, follows redirects
 * (301/302: POST becomes GET; 303: GET but for HEAD; 307/308: same method
 * and body), and returns with the final response's status and headers in
 * *out, its body not read yet. `url`: http:// or https://, a host name or
 * an IPv4 or [IPv6] literal, an optional port, path and query (a fragment
 * is dropped). May suspend. On success the caller owns *out and frees it
 * with weft_http_response_free (which hands the connection back to the
 * pool once the body was read to its end). A 4xx or 5xx is a response, not
 * an error. Returns 0 or one of the errors at the top of this file; on
 * error nothing is left open or counted.
 */
WEFT_EXTERN WEFT_NODISCARD int
weft_http_fetch(weft_http_session *s, const char *method, const char *url,
                const weft_http_req_opts *opts, weft_http_response **out);

/* weft_http_fetch(s, "GET", url, NULL, out). May suspend. */
WEFT_EXTERN WEFT_NODISCARD int
weft_http_get(weft_http_session *s, const char *url, weft_http_response **out);

/* ---- the response ---- */

/* The status code (200). Never suspends. */
WEFT_EXTERN int weft_http_response_status(const weft_http_response *r);
/* 11 or 20 (HTTP/1.1, HTTP/2; 10 for an HTTP/1.0 server). */
WEFT_EXTERN int weft_http_response_version(const weft_http_response *r);
/* The URL that answered, after redirects. Lives as long as r. */
WEFT_EXTERN const char *weft_http_response_url(const weft_http_response *r);
/* Redirects followed to get here. */
WEFT_EXTERN int weft_http_response_redirects(const weft_http_response *r);

/* The first value of header `name`, in any case ("content-type" finds
 * Content-Type), or NULL; the count of fields and the i-th (NULL past the
 * end), to walk repeated ones. Strings live as long as r. */
WEFT_EXTERN const char *weft_http_response_header(const weft_http_response *r,
                                                  const char *name);
WEFT_EXTERN size_t weft_http_response_header_count(const weft_http_response *r);
WEFT_EXTERN const weft_http_field *
weft_http_response_header_at(const weft_http_response *r, size_t i);
/* A trailer field, once the body was read to its end; NULL otherwise. */
WEFT_EXTERN const char *weft_http_response_trailer(const weft_http_response *r,
                                                   const char *name);
/* The Content-Length the server announced (of the body as sent, before any
 * decoding), or -1. */
WEFT_EXTERN int64_t
weft_http_response_content_length(const weft_http_response *r);

/*
 * Reads the next bytes of the body, streamed: at least one and at most
 * `len`, decoded when it came gzip- or deflate-encoded. Nothing is read
 * ahead of the caller, so a slow reader slows the server (TCP, or HTTP/2
 * flow control). May suspend. Returns the count, 0 at the end (the
 * connection is then back in the pool), or an error (WEFT_ETIMEDOUT,
 * WEFT_ECONNRESET, WEFT_EHTTP_TRUNCATED, WEFT_EBADMSG for a malformed or
 * undecodable body, WEFT_ECANCELED, ...); after an error the connection is
 * closed and every later read returns the same error.
 */
WEFT_EXTERN ssize_t weft_http_response_read(weft_http_response *r, void *buf,
                                            size_t len);

/* Reads the whole (rest of the) body into memory the response owns, and
 * points *data (NUL-terminated for convenience) and *len at it; valid until
 * the response is freed. May suspend. Returns 0, WEFT_ELIMIT when the
 * decoded body grows past max_body (the connection is closed), or as
 * weft_http_response_read. Calling it again returns the same body. */
WEFT_EXTERN WEFT_NODISCARD int
weft_http_response_body(weft_http_response *r, const void **data, size_t *len);

/* Frees the response (NULL ok). Never suspends. A body read to its end
 * leaves the connection in the pool; otherwise an HTTP/1.1 connection is
 * closed and an HTTP/2 stream reset (CANCEL), so nothing unread can reach
 * the next request. */
WEFT_EXTERN void weft_http_response_free(weft_http_response *r);

#ifdef __cplusplus
}
#endif

#endif
