/* weft — HTTP/1.1 and HTTP/2 servers (aiohttp.web, in C).
 *
 * One server object serves HTTP/1.1 (llhttp) and HTTP/2 (nghttp2): h2 over
 * TLS when the client picks it by ALPN, and on cleartext connections h2c,
 * either with prior knowledge or by "Upgrade: h2c". Each request runs a
 * handler as a task of its own, whichever protocol carried it, so a
 * handler may await anything (sleep, read the body, call a database). An
 * idle keep-alive connection holds no task and no stack: a few hundred
 * bytes waiting on a libevent event (docs/internals/http.md).
 *
 *   static int hello(weft_http_request *req, void *arg) {
 *     return weft_http_respond_text(req, 200, "Hello, World!");
 *   }
 *   ...
 *   weft_http_server *srv;
 *   int rc = weft_http_serve(&srv, &addr, hello, NULL, NULL);
 *
 * Handlers. A handler gets the request and answers it through the same
 * object: weft_http_respond() (a whole body), weft_http_start() /
 * weft_http_write() / weft_http_end() (a streamed body), or
 * weft_http_send_file(). It returns 0 once it has answered (what happens
 * when it does not: weft_http_handler). Handlers run on the loop of the
 * server; all calls on a request are made from its handler's task, and the
 * request is freed when the handler returns.
 *
 * Limits. Every limit has a default close to nginx's and h2o's (the
 * options below say which), and going over one gets the answer RFC 9110
 * asks for: 400, 408, 413, 414, 431, a RST_STREAM or a GOAWAY, never a
 * disturbance of other connections.
 *
 * Errors common to the calls that may suspend: WEFT_ENOTASK (outside a
 * task), WEFT_ECANCELED (the handler was cancelled: the client went away,
 * reset the stream, or the server shut down), WEFT_ETIMEDOUT (a deadline
 * scope, or the server's body/send timeouts), WEFT_ENOMEM.
 */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include <stdio.h>
#include <sys/types.h>
#include <weft/addr.h>
#include <weft/common.h>
#include <weft/server.h>
#include <weft/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_http_server weft_http_server;
typedef struct weft_http_request weft_http_request;
typedef struct weft_http_router weft_http_router;

/* The ALPN list a TLS context for an HTTP server should offer (h2 first):
 * weft_tls_opts.alpn = WEFT_HTTP_ALPN. A context without ALPN serves
 * HTTP/1.1 only. */
#define WEFT_HTTP_ALPN ((const char *const[]){"h2", "http/1.1", NULL})

/* One header field. name and value are NUL-terminated too; both live as
 * long as the message they belong to. Names of received headers are as the
 * peer sent them over HTTP/1.1, lower case over HTTP/2. */
typedef struct weft_http_field {
  const char *name;
  const char *value;
  size_t name_len;
  size_t value_len;
} weft_http_field;

/*
 * A request handler. Runs as a task (it may suspend anywhere) with the
 * request, which it answers and must not use after returning. Returns 0
 * (or >= 0) on success. What the server does when it returns:
 *   - answered completely: nothing more;
 *   - a streamed answer not ended: ended (the last chunk / END_STREAM), or
 *     reset when the handler failed (< 0);
 *   - not answered: 500 when it failed, else 204 (no content);
 *   - request body not read: discarded when small (HTTP/1.1 keeps the
 *     connection), else the connection is closed after the answer.
 * A failure other than the client's own doing (WEFT_ECANCELED after a
 * reset, WEFT_EPIPE, WEFT_ECONNRESET, WEFT_ETIMEDOUT) is counted in
 * handler_errors and reported on stderr. Never affects other requests.
 */
typedef int (*weft_http_handler)(weft_http_request *req, void *arg);

/* Server options. Zero fields take the defaults; NULL options mean all
 * defaults. `size` must be sizeof(weft_http_server_opts). */
typedef struct weft_http_server_opts {
  size_t size;
  /* TLS server context (weft/tls.h), borrowed: it must outlive the server.
   * With ALPN (WEFT_HTTP_ALPN) clients may choose h2. NULL: cleartext. */
  weft_tls_ctx *tls;
  /* HTTP/2: 0 (default) on - by ALPN over TLS, and h2c (prior knowledge
   * and Upgrade: h2c) on cleartext; < 0 off (HTTP/1.1 only). */
  int h2;
  /* Listener: backlog, SO_REUSEPORT (one server per worker loop of
   * weft_run_workers), IPV6_V6ONLY; as weft_server_opts. */
  int backlog;
  bool reuse_port;
  bool v6only;
  /* Connections served at once; at the limit accepting pauses (the
   * kernel's backlog holds the next ones). 0: no limit but the process's
   * descriptors. */
  size_t max_connections;

  /* ---- HTTP/1.1 limits ---- */
  /* Longest request target (the URL), in bytes: longer gets 414. Default
   * 8 KiB (nginx: large_client_header_buffers 8k). */
  size_t max_target;
  /* Request line and header fields together, in bytes: more gets 431
   * (414 when the target alone is over max_target). Also bounds an HTTP/2
   * header list (decoded), and trailers. Default 32 KiB (nginx: 4 × 8k). */
  size_t max_header_bytes;
  /* Header fields in a request: more gets 431. Default 100 (h2o). */
  size_t max_headers;
  /* Request body, in bytes: a larger Content-Length gets 413 before the
   * handler runs; a body that grows past it (chunked, HTTP/2) fails the
   * handler's read with WEFT_ELIMIT and gets 413 (or a reset) when nothing
   * was answered yet. A handler may change it for its own request
   * (weft_http_set_max_body). Default 1 MiB (nginx client_max_body_size).
   * SIZE_MAX: no limit. */
  size_t max_body;
  /* Seconds from a request's first byte to the end of its header block
   * (slowloris): past it, 408 and close. Default 60 (nginx
   * client_header_timeout). */
  double header_timeout;
  /* Seconds a handler's body read may wait for the next bytes: past it the
   * read fails with WEFT_ETIMEDOUT, 408 is sent if nothing was answered,
   * and the connection closes. Default 60 (nginx client_body_timeout). */
  double body_timeout;
  /* Seconds a write may wait for the client to take bytes. Default 60
   * (nginx send_timeout). */
  double send_timeout;
  /* Seconds an idle connection (HTTP/1.1 between requests, HTTP/2 with no
   * stream open) is kept. Default 75 (nginx keepalive_timeout). */
  double keepalive_timeout;
  /* Requests served on one HTTP/1.1 connection before it is closed
   * (Connection: close on the last). 0 (default): no limit. */
  unsigned max_requests;

  /* ---- HTTP/2 limits ---- */
  /* SETTINGS_MAX_CONCURRENT_STREAMS sent to clients; streams over it are
   * refused (RST_STREAM REFUSED_STREAM). Default 100 (h2o; nghttp2 itself
   * advertises no limit). */
  uint32_t h2_max_streams;
  /* Receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE): request
   * body bytes a stream may have in flight and not yet read by its handler.
   * WINDOW_UPDATEs go out as the handler reads. Default 256 KiB. */
  uint32_t h2_stream_window;
  /* Receive window of the whole connection. Default 1 MiB. */
  uint32_t h2_conn_window;
  /* Peer-caused stream errors and resets a connection may cause
   * (CVE-2023-44487 rapid reset, CVE-2025-8671 MadeYouReset): a budget of
   * this many, refilled by a tenth of it each second; once spent, GOAWAY
   * ENHANCE_YOUR_CALM. Default 1000. */
  uint32_t h2_max_glitches;

  /* ---- the rest ---- */
  /* Each request answered writes one line here (NULL, the default: no
   * access log): peer, time, request line, status, body bytes, seconds. */
  FILE *access_log;
  /* When set (e.g. "/metrics"), GET of this path is answered by the server
   * itself, in the Prometheus text format: the server's counters and the
   * loop's (weft_stats). NULL (default): not served. */
  const char *metrics_path;
  /* Stack size of handler tasks; 0: the loop's default (64 KiB). */
  size_t stack_size;
} weft_http_server_opts;

/*
 * Starts serving HTTP on `addr` (IPv4, IPv6 or Unix; port 0 picks a free
 * port: weft_http_server_addr), calling handler(req, arg) for each request.
 * Never suspends; loop thread. *out is freed with weft_http_server_free
 * (after weft_http_server_shutdown for a graceful end). Returns 0,
 * WEFT_EINVAL (bad options), the listener's errors (WEFT_EADDRINUSE, ...;
 * see weft_serve), WEFT_ENOMEM, WEFT_ENOLOOP.
 */
WEFT_EXTERN WEFT_NODISCARD int
weft_http_serve(weft_http_server **out, const weft_addr *addr,
                weft_http_handler handler, void *arg,
                const weft_http_server_opts *opts);

/* The address the server listens on (with the real port). Never
 * suspends. Returns 0 or WEFT_EINVAL. */
WEFT_EXTERN int weft_http_server_addr(const weft_http_server *s,
                                      weft_addr *out);

/*
 * Graceful shutdown: stops accepting; idle connections are closed at once,
 * HTTP/1.1 connections after the response in progress (Connection: close),
 * HTTP/2 connections get a GOAWAY and finish the streams they have. After
 * `grace` seconds the handlers still running are cancelled and awaited.
 * May suspend. Returns the number of handlers cancelled (0: all finished),
 * or WEFT_ECANCELED / WEFT_ETIMEDOUT (the caller's; handlers were cancelled
 * and awaited all the same), WEFT_EDEADLK (called from one of its own
 * handlers), WEFT_EINVAL, WEFT_ENOTASK.
 */
WEFT_EXTERN int weft_http_server_shutdown(weft_http_server *s, double grace);

/* Frees the server (NULL ok). Never suspends. Connections still open are
 * closed and their handlers cancelled; the memory goes when the last one
 * has returned. Call weft_http_server_shutdown first for a graceful end. */
WEFT_EXTERN void weft_http_server_free(weft_http_server *s);

typedef struct weft_http_server_stats {
  uint64_t connections;     /* accepted */
  uint64_t active;          /* open now */
  uint64_t idle;            /* open now and waiting for a request */
  uint64_t h2_connections;  /* of the accepted, how many spoke HTTP/2 */
  uint64_t requests;        /* handled (both protocols) */
  uint64_t in_flight;       /* handlers running now */
  uint64_t responses[6];    /* by class: [1] 1xx ... [5] 5xx */
  uint64_t bad_requests;    /* answered 400/413/414/431 by the server */
  uint64_t timeouts;        /* 408s and connections closed by a timeout */
  uint64_t handler_errors;  /* handlers that failed for their own reason */
  uint64_t h2_resets_recv;  /* RST_STREAMs from clients */
  uint64_t h2_goaways_calm; /* connections ended with ENHANCE_YOUR_CALM */
  uint64_t tls_failures;    /* TLS handshakes that failed */
  uint64_t bytes_in;        /* request bytes read (bodies included) */
  uint64_t bytes_out;       /* response bytes written */
} weft_http_server_stats;

/* Fills *out. Never suspends. */
WEFT_EXTERN void weft_http_server_stats_get(const weft_http_server *s,
                                            weft_http_server_stats *out);

/* ---- the request ---- */

/* The method ("GET"), the target as sent ("/a/b?x=1"), its path ("/a/b")
 * and query ("x=1"; "" without one), not percent-decoded, and the
 * authority (Host, or :authority over HTTP/2; "" when absent). Valid until
 * the handler returns. Never suspend. */
WEFT_EXTERN const char *weft_http_method(const weft_http_request *r);
WEFT_EXTERN const char *weft_http_target(const weft_http_request *r);
WEFT_EXTERN const char *weft_http_path(const weft_http_request *r);
WEFT_EXTERN const char *weft_http_query(const weft_http_request *r);
WEFT_EXTERN const char *weft_http_authority(const weft_http_request *r);
/* 10, 11 or 20 (HTTP/1.0, 1.1, 2). */
WEFT_EXTERN int weft_http_version(const weft_http_request *r);

/* The first value of header `name` (any case), or NULL. Several fields of
 * one name are not joined: weft_http_header_at walks them all. */
WEFT_EXTERN const char *weft_http_header(const weft_http_request *r,
                                         const char *name);
/* Number of request header fields / the i-th (NULL past the end). */
WEFT_EXTERN size_t weft_http_header_count(const weft_http_request *r);
WEFT_EXTERN const weft_http_field *
weft_http_header_at(const weft_http_request *r, size_t i);
/* A trailer field of the request (after the body was read to its end). */
WEFT_EXTERN const char *weft_http_trailer(const weft_http_request *r,
                                          const char *name);

/* A path parameter captured by the router ("{id}" in "/users/{id}"), or
 * NULL. */
WEFT_EXTERN const char *weft_http_param(const weft_http_request *r,
                                        const char *name);

/* The peer's address. Returns 0 or a negated errno. */
WEFT_EXTERN int weft_http_peer_addr(const weft_http_request *r, weft_addr *out);

/* The Content-Length the client announced, or -1 (chunked, HTTP/2 without
 * one, or none: then there may still be a body). */
WEFT_EXTERN int64_t weft_http_content_length(const weft_http_request *r);

/* Changes this request's body limit (default: the server's max_body);
 * takes effect for bytes not read yet. SIZE_MAX: none. */
WEFT_EXTERN void weft_http_set_max_body(weft_http_request *r, size_t limit);

/*
 * Reads the next bytes of the request body, streamed: at least one and at
 * most `len`, waiting for them (HTTP/1.1 sends "100 Continue" first when
 * the client asked). HTTP/2 flow control opens as bytes are read here. May
 * suspend. Returns the count, 0 at the end of the body, WEFT_ELIMIT past
 * the body limit, WEFT_EBADMSG (a malformed chunked body: the connection
 * will close), WEFT_ECONNRESET / WEFT_EOF (the client went away
 * mid-body), WEFT_ETIMEDOUT (body_timeout), or a common error.
 */
WEFT_EXTERN ssize_t weft_http_read(weft_http_request *r, void *buf, size_t len);

/* Reads the whole body (up to the body limit) into memory the request owns
 * and points *data / *len at it (valid until the handler returns; NUL-
 * terminated for convenience). May suspend. Returns 0, or as
 * weft_http_read (WEFT_ELIMIT when the body is over the limit). */
WEFT_EXTERN WEFT_NODISCARD int
weft_http_read_body(weft_http_request *r, const void **data, size_t *len);

/* ---- the response ---- */

/* Adds a response header field (copied). Date, Content-Length,
 * Transfer-Encoding and Connection are the server's: setting them is
 * WEFT_EINVAL (Content-Length: see weft_http_start). Before the response
 * starts. Never suspends. Returns 0, WEFT_EALREADY (headers sent),
 * WEFT_EINVAL (a name or value with CR, LF or NUL, or a reserved name),
 * WEFT_ENOMEM. */
WEFT_EXTERN int weft_http_add_header(weft_http_request *r, const char *name,
                                     const char *value);

/* Sends a complete response: status, the added headers, Content-Type
 * (when content_type is not NULL), Content-Length and the body (no body
 * on HEAD, 1xx, 204, 304). May suspend (backpressure). Returns 0,
 * WEFT_EALREADY (already answered), WEFT_EINVAL (status outside
 * 200...599), WEFT_EPIPE / WEFT_ECONNRESET (the client went away), or a
 * common error. */
WEFT_EXTERN int weft_http_respond(weft_http_request *r, int status,
                                  const char *content_type, const void *body,
                                  size_t len);
/* Same with text/plain; charset=utf-8 and strlen(text). */
WEFT_EXTERN int weft_http_respond_text(weft_http_request *r, int status,
                                       const char *text);

/* Starts a streamed response: sends the status and headers. With
 * content_length >= 0 exactly that many bytes must follow; with -1 the
 * body is chunked (HTTP/1.1) or framed by DATA frames (HTTP/2) and may have
 * trailers. May suspend. Returns as weft_http_respond. */
WEFT_EXTERN int weft_http_start(weft_http_request *r, int status,
                                const char *content_type,
                                int64_t content_length);
/* Sends body bytes of a started response; waits while the client is slow
 * to take them (backpressure; send_timeout). May suspend. Returns 0,
 * WEFT_EINVAL (not started, or more than the announced length), WEFT_EPIPE
 * / WEFT_ECONNRESET / WEFT_ECANCELED (the client went away), or a common
 * error. */
WEFT_EXTERN int weft_http_write(weft_http_request *r, const void *data,
                                size_t len);
/* Adds a trailer field, sent by weft_http_end (chunked or HTTP/2 bodies
 * only; others drop it). Never suspends. Returns 0, WEFT_EINVAL,
 * WEFT_ENOMEM. */
WEFT_EXTERN int weft_http_add_trailer(weft_http_request *r, const char *name,
                                      const char *value);
/* Ends a started response (last chunk and trailers / END_STREAM) and waits
 * until it is handed to the transport. May suspend. Returns 0, WEFT_EINVAL
 * (fewer bytes than the announced length: the connection is closed), or as
 * weft_http_write. */
WEFT_EXTERN int weft_http_end(weft_http_request *r);

/* Sends the file at `path` as a complete response (Content-Length from its
 * size). On cleartext HTTP/1.1 the bytes go from the page cache to the
 * socket with sendfile(2), never through user space; over TLS and HTTP/2
 * they are read in 64 KiB pieces. Reading the file blocks the loop as
 * reads of a local disk do (use offload/ for slow disks). May suspend.
 * Returns 0, WEFT_ENOENT / WEFT_EACCES / WEFT_EISDIR (nothing sent: answer
 * 404 or 403 yourself), or as weft_http_write. */
WEFT_EXTERN int weft_http_send_file(weft_http_request *r, int status,
                                    const char *content_type, const char *path);

/* True once the response has started (headers sent or queued). */
WEFT_EXTERN bool weft_http_responded(const weft_http_request *r);

/* A status code's reason phrase ("Not Found"); "" for an unknown one. */
WEFT_EXTERN const char *weft_http_reason(int status);

/* ---- the router ---- */

/* Makes an empty router. Returns 0 or WEFT_ENOMEM. Any thread; not
 * thread-safe while routes are added, read-only (and shareable between
 * worker loops) afterwards. */
WEFT_EXTERN WEFT_NODISCARD int weft_http_router_new(weft_http_router **out);
/* Frees it (NULL ok); no server may use it any more. */
WEFT_EXTERN void weft_http_router_free(weft_http_router *r);

/*
 * Adds a route: requests with `method` ("GET", ...; "*" any) whose path
 * matches `pattern` run fn(req, arg). A pattern is a path whose segments
 * may be parameters: "/users/{id}" matches "/users/42" (weft_http_param(req,
 * "id") is "42"); a last segment "{name...}" matches the rest of the path,
 * slashes included. Literal segments win over parameters, and earlier
 * routes over later ones. A GET route answers HEAD too. Returns 0,
 * WEFT_EINVAL (a pattern not starting with '/', or a bad parameter),
 * WEFT_EEXIST (the same method and pattern twice), WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_http_route(weft_http_router *r, const char *method,
                                const char *pattern, weft_http_handler fn,
                                void *arg);

/* The handler for paths no route matches (default: 404). A path some
 * route matches with another method gets 405 with an Allow header, not
 * the fallback. */
WEFT_EXTERN void weft_http_router_fallback(weft_http_router *r,
                                           weft_http_handler fn, void *arg);

/* Dispatches `req` through the router `router`: pass it as the server's
 * handler with the router as its arg. May suspend (the route's handler
 * does). Returns the handler's result. */
WEFT_EXTERN int weft_http_router_handler(weft_http_request *req, void *router);

/* ---- a whole program: serve until SIGINT or SIGTERM ---- */

typedef struct weft_http_run_opts {
  size_t size;
  const char *host;               /* numeric address; NULL: 127.0.0.1 */
  int port;                       /* 0: a free port */
  const char *tls_cert, *tls_key; /* PEM files: serve https (h2 by ALPN) */
  int workers;                    /* loops on as many threads sharing the port
                                     (SO_REUSEPORT); 0 or 1: one */
  double grace;                   /* shutdown grace in seconds; 0: 10 */
  const weft_http_server_opts *server; /* the rest; may be NULL */
} weft_http_run_opts;

/*
 * Runs an HTTP server as a program's main does (aiohttp's web.run_app):
 * makes the loop(s), listens, prints "listening on http://HOST:PORT"
 * (https:// with a certificate) as the first line of stdout, serves until
 * SIGINT or SIGTERM, then shuts down gracefully. Blocks; call it outside
 * any loop (from main). Returns 0, or the first error (printed on stderr
 * too).
 */
WEFT_EXTERN int weft_http_run(weft_http_handler handler, void *arg,
                              const weft_http_run_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
