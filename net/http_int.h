/* weft — what the HTTP server's files share: the server, its connections
 * and requests, and the two protocol drivers' entry points
 * (docs/internals/http.md).
 *
 *   http_server.c    the server: accepting (weft_serve's accept hook),
 *                    timeouts, shutdown, stats, metrics, access log, and
 *                    the request/response API, which calls the driver
 *   http_server1.c   HTTP/1.1 connections (llhttp through http1.h)
 *   http_server2.c   HTTP/2 connections (nghttp2 through http2.h)
 *
 * A connection is a small heap object (hconn) with its weft_stream. It is
 * driven by stream callbacks (weft_stream_notify) while no request is being
 * handled, so an idle connection holds no task and no buffer. A request
 * gets a task when its head is complete.
 */
#ifndef WEFT_HTTP_INT_H
#define WEFT_HTTP_INT_H

#include <assert.h>

#include <event2/event.h>
#include <weft/http.h>
#include <weft/server.h>
#include <weft/stream.h>

#include "http1.h"
#include "http2.h"
#include "stream_int.h"

typedef struct hconn hconn;
typedef struct h1state h1state;
typedef struct h2state h2state;

/* What a connection is doing. */
enum {
  HC_TLS,  /* TLS handshake in a task */
  HC_H1,   /* HTTP/1.x */
  HC_H2,   /* HTTP/2 */
  HC_DEAD, /* closed; freed once nothing refers to it */
};

/* Timeout lists: each holds connections in deadline order (every entry of
 * one list has the same timeout, so appending keeps it sorted). */
enum { TQ_IDLE, TQ_HEAD, TQ_LINGER, TQ_COUNT };

struct hconn {
  weft__list link;  /* server->conns */
  weft__list tlink; /* a timeout list, or unlinked */
  uint64_t deadline;
  weft_http_server *srv;
  weft_stream *st;
  uint8_t kind; /* HC_* */
  uint8_t tq;   /* the list tlink is on */
  bool closing; /* close after the current request (shutdown, errors) */
  bool tls;
  unsigned refs;   /* tasks and streams that keep the object */
  weft_task *task; /* HC_TLS / HC_H1: the task at work, or NULL */
  h1state *h1;     /* HC_H1 while a request is in progress */
  h2state *h2;     /* HC_H2 */
  uint32_t nreq;   /* requests seen */
};

/* The protocol side of a request, implemented by each driver. */
typedef struct proto_ops {
  /* Body bytes: count, 0 at the end, or an error. */
  ssize_t (*read)(weft_http_request *r, void *buf, size_t len);
  /* Sends the response head (r->res); `body` false: nothing follows. */
  int (*start)(weft_http_request *r, bool body);
  /* Body bytes of a started response. */
  int (*write)(weft_http_request *r, const void *p, size_t n);
  /* Ends a started response (trailers in r->res.trailers). */
  int (*end)(weft_http_request *r);
  /* Sends n bytes of fd from off as the body (after start). */
  int (*sendfile)(weft_http_request *r, int fd, off_t off, size_t n);
} proto_ops;

#define REQ_PARAMS 8

enum { RS_NONE, RS_STARTED, RS_ENDED };

struct weft_http_request {
  hconn *c;
  const proto_ops *ops;
  weft__http_msg req;
  weft__http_msg res;
  uint8_t rstate;     /* RS_* */
  bool in_respond;    /* inside weft_http_respond: no flush per write */
  bool is_head;       /* HEAD: no body goes out */
  bool out_chunked;   /* HTTP/1.1 chunked response */
  bool continue_sent; /* 100 Continue went out */
  bool body_end;      /* the request body was read to its end */
  int body_err;       /* sticky body error */
  int64_t out_left;   /* announced Content-Length not yet sent, or -1 */
  size_t max_body;
  uint64_t body_read;
  void *body_buf; /* weft_http_read_body's copy */
  uint64_t bytes_out;
  uint64_t t0;
  uint8_t nparams;
  struct {
    const char *name, *value;
  } params[REQ_PARAMS];
  int32_t sid; /* HTTP/2 stream */
  void *drv;   /* the driver's object for it (HTTP/2: the stream's) */
  /* First arena blocks of the two messages, so a small request allocates
   * nothing more. */
  WEFT__ARENA_INLINE(1024) inl_req;
  WEFT__ARENA_INLINE(256) inl_res;
};

struct weft_http_server {
  weft_loop *loop;
  weft_server *listener;
  weft_http_handler fn;
  void *arg;
  weft_http_server_opts o; /* defaults filled in */
  char *metrics_path;
  size_t metrics_len; /* strlen(metrics_path) */
  weft__h1_limits h1lim;
  weft__h1 h1proto; /* a fresh request parser, copied by weft__h1_reuse */
  weft__h2_limits h2lim;
  weft__list conns;
  size_t nconns;
  weft__list tq[TQ_COUNT];
  uint64_t tq_ns[TQ_COUNT]; /* each list's timeout */
  struct event *tick;
  bool ticking;
  /* HTTP/2 connections with frames to send, written once per loop turn
   * (so many streams' frames go out in one write). */
  struct event *flush_ev;
  weft__list dirty;
  weft__list drained; /* shutdown waiters: conns / handlers gone */
  weft_http_server_stats stats;
  bool closing;
  bool freed;
  unsigned busy; /* tasks inside weft_http_server_shutdown */
  /* Requests whose memory is kept for the next ones (LIFO). */
  weft__list *free_reqs;
  size_t nfree_reqs;
  h1state *free_h1;
  size_t nfree_h1;
  struct h2stream *free_h2s;
  size_t nfree_h2s;
};

/* ---- http_server.c, for the drivers ---- */

/* Moves c to timeout list q (deadline now + its timeout), or off every
 * list (q == -1). Inline: twice a request. */
static inline void weft__hconn_timeout(hconn *c, int q) {
  weft_http_server *s = c->srv;
  if (weft__list_linked(&c->tlink))
    weft__list_remove(&c->tlink);
  if (q < 0)
    return;
  c->tq = (uint8_t)q;
  /* The loop's clock as of this turn: a deadline may come a turn early. */
  c->deadline = s->loop->now + s->tq_ns[q];
  weft__list_push_back(&s->tq[q], &c->tlink);
}
/* Closes c's connection now (no flush) and frees it once nothing refers to
 * it. Never suspends. */
void weft__hconn_close(hconn *c);
/* weft__hconn_unref's end: frees the dead connection. */
void weft__hconn_free(hconn *c);
/* Drops one reference; frees a dead connection with none left. */
static inline void weft__hconn_unref(hconn *c) {
  assert(c->refs > 0);
  if (--c->refs == 0)
    weft__hconn_free(c);
}
/* A new request object (its messages initialised), or NULL. */
weft_http_request *weft__req_new(void);
/* A request object, from the cache or new; and back. Inline: once a
 * request. */
static inline weft_http_request *weft__req_get(hconn *c, const proto_ops *ops) {
  weft_http_server *s = c->srv;
  weft_http_request *r;
  if (s->free_reqs != NULL) {
    weft__list *n = s->free_reqs;
    s->free_reqs = n->next;
    s->nfree_reqs--;
    r = (weft_http_request *)n;
    /* weft__req_put emptied its arenas (the inline blocks, their caps set)
     * and freed its body copy: the messages need only their fields. */
    weft__http_msg_clear(&r->req);
    weft__http_msg_clear(&r->res);
  } else if ((r = weft__req_new()) == NULL) {
    return NULL;
  }
  r->c = c;
  r->ops = ops;
  r->rstate = RS_NONE;
  r->in_respond = false;
  r->is_head = false;
  r->out_chunked = false;
  r->continue_sent = false;
  r->body_end = false;
  r->body_err = 0;
  r->out_left = -1;
  r->max_body = s->o.max_body;
  r->body_read = 0;
  r->bytes_out = 0;
  r->t0 = s->loop->now; /* the loop's clock, as of this turn (nginx too) */
  r->nparams = 0;
  r->sid = 0;
  r->drv = NULL;
  return r;
}
void weft__req_free(weft_http_request *r);
/* Request objects kept for reuse per server. */
#define WEFT__REQ_CACHE 256
/* Inline: once a request. */
static inline void weft__req_put(weft_http_request *r) {
  weft_http_server *s = r->c->srv;
  if (r->body_buf != NULL) {
    weft__free(r->body_buf);
    r->body_buf = NULL;
  }
  weft__arena_reset(&r->req.arena);
  weft__arena_reset(&r->res.arena);
  if (s->nfree_reqs < WEFT__REQ_CACHE && !s->freed) {
    weft__list *n = (weft__list *)r;
    n->next = s->free_reqs;
    s->free_reqs = n;
    s->nfree_reqs++;
    return;
  }
  weft__req_free(r);
}
/* Runs the handler for r and completes the response whatever it did.
 * In a task. Returns when the response has been handed over. */
void weft__req_run(weft_http_request *r);
/* Writes r's access-log line. */
void weft__req_log(weft_http_request *r);
/* Writes the access-log line and counts the response. */
static inline void weft__req_done(weft_http_request *r) {
  weft_http_server *s = r->c->srv;
  int cls = r->res.status / 100;
  if (cls >= 1 && cls <= 5)
    s->stats.responses[cls]++;
  s->stats.bytes_out += r->bytes_out;
  if (s->o.access_log != NULL)
    weft__req_log(r);
}
/* Spawns a task for fn(arg) with the server's stack size. */
int weft__http_spawn(weft_http_server *s, weft_task_fn fn, void *arg,
                     weft_task **out);

/* ---- the drivers ---- */

/* HTTP/1.1 (http_server1.c): starts serving c, whose first bytes may
 * already sit in `pre` (n bytes, copied). */
void weft__h1_conn_start(hconn *c, const char *pre, size_t n);
void weft__h1_conn_free(hconn *c);
/* Frees the server's cache of HTTP/1.1 states. */
void weft__h1_cache_free(weft_http_server *s);
/* A deadline of list q passed. */
void weft__h1_conn_timeout(hconn *c, int q);
/* Shutdown: closes c if idle, else marks it to close after the request. */
void weft__h1_conn_shutdown(hconn *c);

/* HTTP/2 (http_server2.c): starts an HTTP/2 session on c, feeding it the
 * bytes already received. With `upgrade` (h2c Upgrade), stream 1 is that
 * request. */
int weft__h2_conn_start(hconn *c, const char *pre, size_t n,
                        weft_http_request *upgrade, const char *settings);
void weft__h2_conn_free(hconn *c);
void weft__h2_conn_timeout(hconn *c);
void weft__h2_conn_shutdown(hconn *c);
void weft__h2_conn_cancel(hconn *c); /* cancels every handler */
/* RST_STREAMs c's client has sent so far (0 without a session). */
uint64_t weft__h2_conn_resets(const hconn *c);
/* Frees the server's cache of HTTP/2 stream objects. */
void weft__h2_cache_free(weft_http_server *s);
/* The server's flush event: writes the frames of every dirty connection. */
void weft__h2_flush_dirty(evutil_socket_t fd, short what, void *arg);

extern const proto_ops weft__h1_ops;
extern const proto_ops weft__h2_ops;

#endif
