/* weft — HTTP/2 server connections (http_int.h).
 *
 * The session (http2.h) is driven from stream callbacks, never from a task
 * of its own: the readiness callback feeds what arrived to nghttp2, whose
 * events make stream objects and start one handler task per request. A
 * handler talks to its stream only through the stream object: body bytes
 * it reads come from the stream's input buffer (and open the flow-control
 * windows as they are read), bytes it writes go to the stream's output
 * buffer, which nghttp2 pulls as the peer's windows allow. Frames go out
 * once per loop turn for every connection that has some (the server's
 * flush event), gathered into one write.
 *
 * Backpressure: a handler writing faster than the client reads waits once
 * its stream holds 64 KiB; a client that does not read its socket makes
 * the connection's write queue grow, and past 256 KiB the connection stops
 * reading (and so stops answering PINGs and SETTINGS: floods of those
 * cannot grow the queue either).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "eager.h"
#include "http_int.h"

#define STREAM_OUT_HIGH (64 * 1024)
#define CONN_OUT_HIGH (256 * 1024)
#define SCRATCH (16 * 1024)

typedef struct h2stream h2stream;

struct h2state {
  weft__h2 *sess;
  hconn *c;
  weft__list dirty_link; /* server->dirty */
  weft__list streams;    /* h2stream.link */
  unsigned nstreams;     /* stream objects alive */
  bool in_recv;          /* inside weft__h2_recv: do not send yet */
  bool goaway_sent;
  bool failed; /* the session ended: send what is left and close */
};

struct h2stream {
  weft__list link; /* h2state.streams */
  weft_http_request *r;
  h2state *h;
  weft_task *task;
  weft__hbuf in; /* body bytes received, not read yet */
  size_t in_pos;
  weft__hbuf out; /* body bytes to send */
  size_t out_pos;
  weft__waiter *reader; /* handler waiting for body bytes */
  weft__waiter *writer; /* handler waiting for room in `out` */
  uint64_t got;         /* body bytes received, for Content-Length */
  uint32_t code;        /* close code */
  bool in_end;          /* END_STREAM received */
  bool out_end;         /* no more body to send */
  bool deferred;        /* nghttp2 waits for weft__h2_resume */
  bool closed;          /* nghttp2 closed the stream */
  bool started;         /* a handler task was spawned */
  bool body;            /* a body follows the response head */
  bool bad;             /* the body broke Content-Length: reset */
};

static __thread uint8_t scratch[SCRATCH];

static void pump(hconn *c);

/* ---- flushing ---- */

static void mark_dirty(h2state *h) {
  weft_http_server *s = h->c->srv;
  if (weft__list_linked(&h->dirty_link))
    return;
  bool first = weft__list_empty(&s->dirty);
  weft__list_push_back(&s->dirty, &h->dirty_link);
  if (first)
    event_active(s->flush_ev, 0, 0);
}

static int send_frames(h2state *h, bool *idle) {
  return weft__h2_send_idle(h->sess, h->c->st, CONN_OUT_HIGH, idle);
}

void weft__h2_flush_dirty(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_http_server *s = arg;
  weft__list *n;
  while ((n = weft__list_pop_front(&s->dirty)) != NULL) {
    h2state *h = weft__container_of(n, h2state, dirty_link);
    if (h->c->kind == HC_H2)
      pump(h->c);
  }
}

/* ---- streams ---- */

/* Stream objects (with their buffers, when small) kept for reuse per
 * server: a stream a request is the common case. */
#define H2S_CACHE 1024
#define H2S_BUF_KEEP (16 * 1024)

static inline h2stream *stream_alloc(weft_http_server *s) {
  h2stream *st = s->free_h2s;
  if (st == NULL)
    return weft__calloc(1, sizeof *st);
  s->free_h2s = (h2stream *)st->link.next;
  s->nfree_h2s--;
  /* Field by field: a memset of the whole is a `rep stos`, slow to start
   * on this hot path. */
  st->link.next = st->link.prev = NULL;
  st->r = NULL;
  st->h = NULL;
  st->task = NULL;
  st->in.len = st->in_pos = 0;
  st->out.len = st->out_pos = 0;
  st->reader = st->writer = NULL;
  st->got = 0;
  st->code = 0;
  st->in_end = st->out_end = st->deferred = st->closed = st->started =
      st->body = st->bad = false;
  return st;
}

void weft__h2_cache_free(weft_http_server *s) {
  while (s->free_h2s != NULL) {
    h2stream *st = s->free_h2s;
    s->free_h2s = (h2stream *)st->link.next;
    weft__hbuf_free(&st->in);
    weft__hbuf_free(&st->out);
    weft__free(st);
  }
  s->nfree_h2s = 0;
}

static void stream_free(h2stream *st) {
  h2state *h = st->h;
  hconn *c = h->c;
  weft_http_server *s = c->srv;
  if (st->r != NULL)
    weft__req_put(st->r);
  weft__list_remove(&st->link);
  h->nstreams--;
  if (s->nfree_h2s < H2S_CACHE && !s->freed) {
    if (st->in.cap > H2S_BUF_KEEP)
      weft__hbuf_free(&st->in);
    if (st->out.cap > H2S_BUF_KEEP)
      weft__hbuf_free(&st->out);
    st->link.next = (weft__list *)s->free_h2s;
    s->free_h2s = st;
    s->nfree_h2s++;
  } else {
    weft__hbuf_free(&st->in);
    weft__hbuf_free(&st->out);
    weft__free(st);
  }
  weft__hconn_unref(c);
}

#define wake weft__slot_wake

/* Parks the handler on *slot until a wake. */
static int park(weft__waiter **slot, const char *what, h2stream *st) {
  return weft__slot_park(slot, what, st);
}

static int stream_task(void *arg) {
  h2stream *st = arg;
  h2state *h = st->h;
  hconn *c = h->c;
  weft_http_request *r = st->r;
  weft__req_run(r);
  st->task = NULL;
  /* Body bytes the handler left are dropped; later ones too (on arrival). */
  size_t left = st->in.len - st->in_pos;
  if (left > 0 && !st->closed && h->sess != NULL)
    weft__h2_consume(h->sess, st->r->sid, left);
  st->in.len = st->in_pos = 0;
  weft__req_done(r);
  if (c->kind == HC_H2 && !st->closed && r->rstate != RS_ENDED) {
    /* Failed mid-answer: the stream is reset. */
    weft__h2_reset(h->sess, r->sid, NGHTTP2_INTERNAL_ERROR);
    mark_dirty(h);
  }
  if (st->closed || c->kind == HC_DEAD)
    stream_free(st);
  return 0;
}

/* ---- session events ---- */

static void *ev_begin(void *owner, int32_t sid, void *ud,
                      weft__http_msg **msg) {
  h2state *h = owner;
  if (ud != NULL) {
    *msg = &((h2stream *)ud)->r->req;
    return ud;
  }
  h2stream *st = stream_alloc(h->c->srv);
  if (st == NULL)
    return NULL;
  st->r = weft__req_get(h->c, &weft__h2_ops);
  if (st->r == NULL) {
    weft__hbuf_free(&st->in);
    weft__hbuf_free(&st->out);
    weft__free(st);
    return NULL;
  }
  st->r->sid = sid;
  st->r->drv = st;
  st->r->req.version = 20;
  st->h = h;
  weft__list_push_back(&h->streams, &st->link);
  h->nstreams++;
  h->c->refs++;
  if (h->nstreams == 1)
    weft__hconn_timeout(h->c, -1);
  *msg = &st->r->req;
  return st;
}

static int ev_head(void *owner, void *ud, bool trailers, bool end,
                   bool too_big) {
  h2state *h = owner;
  h2stream *st = ud;
  weft_http_server *s = h->c->srv;
  if (trailers || st->started)
    return 0;
  st->started = true;
  /* A request without a body ends here: ev_end would only repeat in_end
   * (the session has checked that such a head promises no body), so the
   * end goes with the head (1). A request answered or reset below ends
   * as it may. */
  int ret = end ? 1 : 0;
  if (too_big) {
    /* Answered by the server: 431, no handler. */
    s->stats.bad_requests++;
    s->stats.responses[4]++;
    st->r->res.status = 431;
    st->r->res.content_length = 0;
    st->out_end = true;
    (void)weft__h2_submit(h->sess, st->r->sid, &st->r->res, false, st);
    st->r->rstate = RS_ENDED;
    return ret;
  }
  if (st->r->req.method == NULL || st->r->req.path == NULL) {
    weft__h2_reset(h->sess, st->r->sid, NGHTTP2_PROTOCOL_ERROR);
    return ret;
  }
  if (end)
    st->in_end = true; /* no body: the handler need not wait for ev_end */
  if (weft__http_spawn(s, stream_task, st, &st->task) != 0) {
    st->task = NULL;
    weft__h2_reset(h->sess, st->r->sid, NGHTTP2_INTERNAL_ERROR);
    return ret;
  }
  /* The handler runs now, while the request is in the cache (the caller,
   * pump, holds a reference on the connection). A handler that closed the
   * connection (freeing the server) stops the session's input here. */
  if (weft__task_run_now(st->task) && h->c->kind != HC_H2)
    return WEFT_ECANCELED;
  return ret;
}

static int ev_data(void *owner, void *ud, const uint8_t *p, size_t n) {
  h2state *h = owner;
  h2stream *st = ud;
  st->got += n;
  if (st->bad || !weft__h2_body_ok(h->sess, st->r->sid,
                                   st->r->req.content_length, st->got, false))
    st->bad = true;
  if (st->bad || !st->started ||
      (st->task == NULL && st->r->rstate != RS_NONE)) {
    weft__h2_consume(h->sess, st->r->sid, n); /* nobody will read it */
    return 0;
  }
  if (st->in_pos > 0 && st->in_pos == st->in.len)
    st->in_pos = st->in.len = 0;
  if (weft__hbuf_add(&st->in, p, n) != 0)
    return WEFT_ENOMEM;
  wake(&st->reader, 0);
  return 0;
}

static int ev_end(void *owner, void *ud) {
  h2state *h = owner;
  h2stream *st = ud;
  if (st->bad || !weft__h2_body_ok(h->sess, st->r->sid,
                                   st->r->req.content_length, st->got, true)) {
    st->bad = true; /* reset: the handler hears of it as the stream closes */
    return 0;
  }
  st->in_end = true;
  wake(&st->reader, 0);
  return 0;
}

static int ev_close(void *owner, void *ud, uint32_t code) {
  h2state *h = owner;
  h2stream *st = ud;
  st->closed = true;
  st->code = code;
  size_t left = st->in.len - st->in_pos;
  if (left > 0)
    weft__h2_consume(h->sess, st->r->sid, left); /* the connection's window */
  st->in.len = st->in_pos = 0;
  if (code != NGHTTP2_NO_ERROR && st->task != NULL) {
    /* The client reset the stream (or we did): nobody waits for the
     * answer any more. */
    weft_cancel(st->task);
  }
  wake(&st->reader, WEFT_ECONNRESET);
  wake(&st->writer, WEFT_ECONNRESET);
  if (st->task == NULL)
    stream_free(st);
  if (h->nstreams == 0 && h->c->kind == HC_H2)
    weft__hconn_timeout(h->c, TQ_IDLE);
  return 0;
}

static ssize_t ev_read(void *owner, void *ud, uint8_t *buf, size_t len,
                       bool *eof, const weft__http_hdrs **trailers) {
  (void)owner;
  h2stream *st = ud;
  size_t have = st->out.len - st->out_pos;
  if (have == 0) {
    if (st->out_end) {
      *eof = true;
      *trailers = &st->r->res.trailers;
      return 0;
    }
    st->deferred = true;
    return WEFT_EAGAIN;
  }
  size_t n = have < len ? have : len;
  memcpy(buf, st->out.data + st->out_pos, n);
  st->out_pos += n;
  if (st->out_pos == st->out.len) {
    st->out_pos = st->out.len = 0;
    if (st->out_end) {
      *eof = true;
      *trailers = &st->r->res.trailers;
    }
  }
  if (st->out.len - st->out_pos <= STREAM_OUT_HIGH / 2)
    wake(&st->writer, 0);
  return (ssize_t)n;
}

static const weft__h2_events events = {
    .begin = ev_begin,
    .head = ev_head,
    .data = ev_data,
    .end = ev_end,
    .close = ev_close,
    .read = ev_read,
};

/* ---- the connection ---- */

static void on_io(weft_stream *s, int ev, void *arg);

/* Ends the connection: what is queued (a GOAWAY) goes out first when the
 * socket takes it now. */
static void finish(hconn *c) { weft__hconn_close(c); }

/* Feeds input, sends output, and decides what to wait for. */
static void pump(hconn *c) {
  h2state *h = c->h2;
  weft_http_server *s = c->srv;
  int rc = 0;
  /* The session said it had nothing more to send after the last input,
   * and nothing has come since: asking it again would cost a call. */
  bool idle = false;
  if (h->failed)
    goto out;
  while (weft__stream_wqueued(c->st) < CONN_OUT_HIGH) {
    ssize_t n = weft_stream_try_read(c->st, scratch, sizeof scratch);
    if (n == WEFT_EAGAIN)
      break;
    idle = false;
    if (n <= 0) {
      finish(c); /* the client is gone */
      return;
    }
    s->stats.bytes_in += (uint64_t)n;
    h->in_recv = true;
    c->refs++; /* handlers run inside: the connection may close under us */
    rc = weft__h2_recv(h->sess, scratch, (size_t)n);
    h->in_recv = false;
    if (c->kind != HC_H2) {
      weft__hconn_unref(c);
      return;
    }
    weft__hconn_unref(c);
    if (rc != 0) {
      if (rc == WEFT_ELIMIT)
        s->stats.h2_goaways_calm++;
      h->failed = true;
      break;
    }
    /* Answer as we go: a flood of PINGs must not pile up ACKs. */
    if ((rc = send_frames(h, &idle)) != 0) {
      finish(c);
      return;
    }
  }
out:
  if (!idle && (rc = send_frames(h, &idle)) != 0) {
    finish(c);
    return;
  }
  /* Everything is sent (or waits for DRAINED): no flush needed this turn. */
  if (weft__list_linked(&h->dirty_link))
    weft__list_remove(&h->dirty_link);
  if (!h->failed && weft__h2_calmed(h->sess)) {
    h->failed = true;
    s->stats.h2_goaways_calm++;
  }
  if (h->failed ||
      (!weft__h2_want_read(h->sess) && !weft__h2_want_write(h->sess))) {
    /* Over: close once the last frames (GOAWAY) are out. */
    if (weft__stream_wqueued(c->st) == 0) {
      finish(c);
      return;
    }
    h->failed = true;
    if (weft_stream_notify(c->st, WEFT_STREAM_DRAINED, on_io, c) != 0)
      finish(c);
    return;
  }
  int want = WEFT_STREAM_DRAINED;
  if (weft__stream_wqueued(c->st) < CONN_OUT_HIGH)
    want |= WEFT_STREAM_READABLE;
  /* Nothing queued and nothing more to send (the session said so just
   * now, or says so when asked): no DRAINED, which would fire at once. */
  if (weft__stream_wqueued(c->st) == 0 &&
      (idle || !weft__h2_want_write(h->sess)))
    want &= ~WEFT_STREAM_DRAINED;
  if (weft_stream_notify(c->st, want, on_io, c) != 0)
    finish(c);
}

static void on_io(weft_stream *s, int ev, void *arg) {
  (void)s;
  (void)ev;
  hconn *c = arg;
  if (c->kind != HC_H2)
    return;
  if (c->h2->failed && weft__stream_wqueued(c->st) == 0) {
    finish(c);
    return;
  }
  pump(c);
}

int weft__h2_conn_start(hconn *c, const char *pre, size_t n,
                        weft_http_request *upgrade, const char *settings) {
  weft_http_server *s = c->srv;
  h2state *h = weft__calloc(1, sizeof *h);
  if (h == NULL) {
    if (upgrade != NULL)
      weft__req_put(upgrade);
    return WEFT_ENOMEM;
  }
  h->c = c;
  weft__list_init(&h->dirty_link);
  weft__list_init(&h->streams);
  c->h2 = h;
  c->kind = HC_H2;
  s->stats.h2_connections++;
  int rc = weft__h2_new(&h->sess, true, &s->h2lim, &events, h);
  if (rc != 0) {
    if (upgrade != NULL)
      weft__req_put(upgrade);
    return rc;
  }
  if (upgrade != NULL) {
    /* Stream 1 is the request that asked for the upgrade. */
    h2stream *st = stream_alloc(s);
    if (st == NULL) {
      weft__req_put(upgrade);
      return WEFT_ENOMEM;
    }
    st->r = upgrade;
    st->r->ops = &weft__h2_ops;
    st->r->sid = 1;
    st->r->drv = st;
    st->h = h;
    st->in_end = true;
    weft__list_push_back(&h->streams, &st->link);
    h->nstreams++;
    c->refs++;
    rc = weft__h2_upgrade(h->sess, settings,
                          strcmp(upgrade->req.method, "HEAD") == 0, st);
    if (rc != 0) {
      stream_free(st);
      return rc;
    }
  }
  if ((rc = weft__h2_start(h->sess)) != 0)
    return rc;
  if (upgrade != NULL) {
    h2stream *st = weft__h2_stream_ud(h->sess, 1);
    st->started = true;
    if (weft__http_spawn(s, stream_task, st, &st->task) != 0) {
      st->task = NULL;
      weft__h2_reset(h->sess, 1, NGHTTP2_INTERNAL_ERROR);
    }
  } else {
    weft__hconn_timeout(c, TQ_IDLE);
  }
  if (n > 0) {
    h->in_recv = true;
    c->refs++;
    rc = weft__h2_recv(h->sess, (const uint8_t *)pre, n);
    h->in_recv = false;
    weft__hconn_unref(c);
    if (c->kind != HC_H2)
      return 0;
    if (rc != 0) {
      if (rc == WEFT_ELIMIT)
        s->stats.h2_goaways_calm++;
      h->failed = true;
    }
  }
  pump(c);
  return 0;
}

void weft__h2_conn_free(hconn *c) {
  h2state *h = c->h2;
  if (h == NULL)
    return;
  if (weft__list_linked(&h->dirty_link))
    weft__list_remove(&h->dirty_link);
  c->srv->stats.h2_resets_recv += weft__h2_resets_recv(h->sess);
  weft__h2_free(h->sess);
  weft__free(h);
  c->h2 = NULL;
}

uint64_t weft__h2_conn_resets(const hconn *c) {
  return c->h2 != NULL ? weft__h2_resets_recv(c->h2->sess) : 0;
}

/* The connection is closing: every handler is cancelled, and stream objects
 * whose handler has returned go now (deleting a session closes no streams
 * through callbacks). Runs while the connection still holds its own
 * reference, so nothing is freed under the walk but the streams. */
void weft__h2_conn_cancel(hconn *c) {
  h2state *h = c->h2;
  if (h == NULL)
    return;
  if (weft__list_linked(&h->dirty_link))
    weft__list_remove(&h->dirty_link);
  h->failed = true;
  weft__list *n = h->streams.next;
  while (n != &h->streams) {
    h2stream *st = weft__container_of(n, h2stream, link);
    n = n->next;
    st->closed = true;
    wake(&st->reader, WEFT_ECANCELED);
    wake(&st->writer, WEFT_ECANCELED);
    if (st->task != NULL)
      weft_cancel(st->task);
    else
      stream_free(st);
  }
}

void weft__h2_conn_timeout(hconn *c) {
  h2state *h = c->h2;
  if (h->nstreams > 0)
    return;
  weft__h2_goaway(h->sess, NGHTTP2_NO_ERROR);
  h->failed = true;
  pump(c);
}

void weft__h2_conn_shutdown(hconn *c) {
  h2state *h = c->h2;
  if (h == NULL || h->goaway_sent)
    return;
  h->goaway_sent = true;
  weft__h2_goaway(h->sess, NGHTTP2_NO_ERROR);
  if (h->nstreams == 0)
    h->failed = true; /* nothing to finish: close once GOAWAY is out */
  pump(c);
}

/* ---- the request side ---- */

/* The request's stream object: it lives until its handler has returned,
 * whatever nghttp2 does with the stream (closed: st->closed). */
static h2stream *S(weft_http_request *r) { return r->drv; }

static ssize_t h2_read(weft_http_request *r, void *buf, size_t len) {
  hconn *c = r->c;
  for (;;) {
    if (c->kind != HC_H2)
      return WEFT_ECANCELED;
    h2stream *st = S(r);
    size_t have = st->in.len - st->in_pos;
    if (have > 0) {
      size_t n = have < len ? have : len;
      memcpy(buf, st->in.data + st->in_pos, n);
      st->in_pos += n;
      if (st->in_pos == st->in.len)
        st->in_pos = st->in.len = 0;
      /* The window opens by what the handler took. */
      weft__h2_consume(c->h2->sess, r->sid, n);
      mark_dirty(c->h2);
      return (ssize_t)n;
    }
    if (st->in_end)
      return 0;
    if (st->closed)
      return WEFT_ECONNRESET;
    weft_timeout scope;
    weft_timeout_enter(&scope, c->srv->o.body_timeout);
    int rc = park(&st->reader, "http2 body", st);
    bool timed_out = weft_timeout_exit(&scope) == WEFT_ETIMEDOUT;
    if (rc != 0) {
      if (timed_out)
        c->srv->stats.timeouts++;
      return rc;
    }
  }
}

static int h2_start(weft_http_request *r, bool body) {
  hconn *c = r->c;
  if (c->kind != HC_H2)
    return WEFT_ECANCELED;
  h2stream *st = S(r);
  if (st->closed)
    return WEFT_ECONNRESET;
  st->body = body;
  if (!body)
    st->out_end = true;
  int32_t rc = weft__h2_submit(c->h2->sess, r->sid, &r->res, body, st);
  if (rc < 0)
    return (int)rc;
  mark_dirty(c->h2);
  return 0;
}

static int h2_write(weft_http_request *r, const void *p, size_t n) {
  hconn *c = r->c;
  const char *d = p;
  while (n > 0) {
    if (c->kind != HC_H2)
      return WEFT_ECANCELED;
    h2stream *st = S(r);
    if (st->closed)
      return WEFT_ECONNRESET;
    size_t have = st->out.len - st->out_pos;
    if (have >= STREAM_OUT_HIGH) {
      weft_timeout scope;
      weft_timeout_enter(&scope, c->srv->o.send_timeout);
      int rc = park(&st->writer, "http2 send", st);
      (void)weft_timeout_exit(&scope);
      if (rc != 0)
        return rc;
      continue;
    }
    size_t k = STREAM_OUT_HIGH - have;
    if (k > n)
      k = n;
    if (st->out_pos > 0 && st->out_pos == st->out.len)
      st->out_pos = st->out.len = 0;
    if (weft__hbuf_add(&st->out, d, k) != 0)
      return WEFT_ENOMEM;
    r->bytes_out += k;
    d += k;
    n -= k;
    if (st->deferred) {
      st->deferred = false;
      weft__h2_resume(c->h2->sess, r->sid);
    }
    mark_dirty(c->h2);
  }
  return 0;
}

static int h2_end(weft_http_request *r) {
  hconn *c = r->c;
  if (c->kind != HC_H2)
    return WEFT_ECANCELED;
  h2stream *st = S(r);
  if (st->closed)
    return WEFT_ECONNRESET;
  if (!st->body) {
    if (r->res.trailers.n > 0)
      return 0; /* no body: nowhere for trailers to go */
    return 0;
  }
  st->out_end = true;
  if (st->deferred) {
    st->deferred = false;
    weft__h2_resume(c->h2->sess, r->sid);
  }
  mark_dirty(c->h2);
  return 0;
}

static int h2_sendfile(weft_http_request *r, int fd, off_t off, size_t n) {
  char *buf = weft__malloc(65536);
  if (buf == NULL)
    return WEFT_ENOMEM;
  int rc = 0;
  while (rc == 0 && n > 0) {
    ssize_t k = pread(fd, buf, n < 65536 ? n : 65536, off);
    if (k <= 0) {
      rc = k == 0 ? WEFT_EIO : -errno;
      break;
    }
    off += k;
    n -= (size_t)k;
    rc = h2_write(r, buf, (size_t)k);
  }
  weft__free(buf);
  return rc;
}

const proto_ops weft__h2_ops = {
    .read = h2_read,
    .start = h2_start,
    .write = h2_write,
    .end = h2_end,
    .sendfile = h2_sendfile,
};
