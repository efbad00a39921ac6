/* weft — HTTP/2 connections of the client (http_client_int.h).
 *
 * One connection carries every request to its origin as streams. Like the
 * server's (http_server2.c), the nghttp2 session is driven from stream
 * callbacks, never from a task of its own: the readiness callback feeds
 * what arrived to the session, whose events fill the responses and wake
 * the tasks waiting on them; frames to send go out once per loop turn for
 * every connection that has some (the session's flush event), so a
 * hundred requests submitted in one turn leave in one write.
 *
 * Stream slots. A request takes a slot before it submits its stream and
 * gives it back when the stream closes; there are as many slots as the
 * server's SETTINGS_MAX_CONCURRENT_STREAMS, and a request that finds none
 * waits in line for one (handed over directly as a stream closes).
 *
 * Flow control. The connection window opens as DATA arrives, and each
 * stream's window as its reader takes the bytes: a response nobody reads
 * stops its own stream, never the others.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client_int.h"

#define STREAM_OUT_HIGH (64 * 1024)
#define CONN_OUT_HIGH (256 * 1024)
#define SCRATCH (16 * 1024)

struct hc_h2 {
  weft__h2 *sess;
  hc_conn *c;
  weft__list dirty_link; /* session->dirty */
  weft__list streams;    /* hc_stream.link: streams nghttp2 knows */
  size_t nslots;         /* slots taken */
  weft__list slot_waiters;
  bool dead;
};

struct hc_stream {
  weft__list link;
  hc_h2 *h;
  weft_http_response *r; /* NULL once the response let go */
  int32_t sid;
  weft__hbuf in; /* body bytes received, not read yet */
  size_t in_pos;
  weft__hbuf out; /* request body bytes to send */
  size_t out_pos;
  weft__waiter *reader;
  weft__waiter *writer;
  uint32_t code;
  bool head;     /* the final response head arrived */
  bool in_end;   /* END_STREAM received */
  bool out_end;  /* the request body is all in `out` */
  bool deferred; /* nghttp2 waits for weft__h2_resume */
  bool closed;   /* nghttp2 closed it (or the connection died) */
  int err;       /* why it failed, when it did */
};

static __thread uint8_t scratch[SCRATCH];

static const weft__h2_limits limits = {
    .max_streams = 100, /* streams the server may open: none (no push) */
    .stream_window = 1 << 20,
    .conn_window = 16 << 20,
    .max_header_bytes = 256 * 1024,
    .max_headers = 256,
    .max_glitches = 100000,
};

static void pump(hc_conn *c);

size_t weft__hc2_streams(const hc_conn *c) { return c->h2 ? c->h2->nslots : 0; }

bool weft__hc2_usable(const hc_conn *c) {
  return c->state == CS_H2 && c->h2 != NULL && !c->h2->dead &&
         weft__h2_may_open(c->h2->sess);
}

static void mark_dirty(hc_h2 *h) {
  weft_http_session *s = h->c->h->s;
  if (h->dead || weft__list_linked(&h->dirty_link))
    return;
  bool first = weft__list_empty(&s->dirty);
  weft__list_push_back(&s->dirty, &h->dirty_link);
  if (first)
    event_active(s->flush_ev, 0, 0);
}

void weft__hc2_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_http_session *s = arg;
  weft__list *n;
  while ((n = weft__list_pop_front(&s->dirty)) != NULL) {
    hc_h2 *h = weft__container_of(n, hc_h2, dirty_link);
    if (!h->dead)
      pump(h->c);
  }
}

#define wake weft__slot_wake

/* Parks the task on *slot until a wake, within the request's times. */
static int park(weft__waiter **slot, const char *what, hc_stream *st,
                const hc_time *t, bool reading) {
  hc_scopes sc;
  weft__hc_time_enter(&sc, t, reading);
  int rc = weft__slot_park(slot, what, st);
  /* A wake that came counts even if a time ran out just after: the scopes
   * are only left here (the timeout shows at the next wait). */
  (void)weft__hc_time_exit(&sc, rc);
  return rc;
}

/* ---- slots ---- */

static void slot_give(hc_h2 *h) {
  if (!h->dead && weft__h2_may_open(h->sess)) {
    weft__list *n = weft__list_pop_front(&h->slot_waiters);
    if (n != NULL) {
      weft__waiter *w = weft__container_of(n, weft__waiter, link);
      weft__waiter_complete(w, 0); /* the slot passes on */
      return;
    }
  }
  h->nslots--;
  if (h->nslots == 0 && !h->dead)
    weft__hc_h2_idle(h->c, true);
}

/* More slots than taken (the server's SETTINGS raised the limit): hand
 * them to waiters. Or no new streams at all (GOAWAY): they look again. */
static void slots_check(hc_h2 *h) {
  if (h->dead || !weft__h2_may_open(h->sess)) {
    weft__list *n;
    while ((n = weft__list_pop_front(&h->slot_waiters)) != NULL)
      weft__waiter_complete(weft__container_of(n, weft__waiter, link),
                            HC_RETRY);
    return;
  }
  uint32_t max = weft__h2_peer_max_streams(h->sess);
  while (h->nslots < max && !weft__list_empty(&h->slot_waiters)) {
    weft__list *n = weft__list_pop_front(&h->slot_waiters);
    h->nslots++;
    weft__waiter_complete(weft__container_of(n, weft__waiter, link), 0);
  }
}

static int slot_take(hc_h2 *h, const hc_time *t) {
  if (h->nslots < weft__h2_peer_max_streams(h->sess) &&
      weft__list_empty(&h->slot_waiters)) {
    if (h->nslots++ == 0)
      weft__hc_h2_idle(h->c, false);
    return 0;
  }
  weft__waiter w;
  weft__waiter_init(&w, weft_current());
  weft__list_push_back(&h->slot_waiters, &w.link);
  weft_http_session *s = h->c->h->s;
  s->st.waiting++;
  hc_scopes sc;
  weft__hc_time_enter(&sc, t, false);
  int rc = 0;
  while (rc == 0 && !w.done)
    rc = weft__park("http2 stream slot", h, 0);
  rc = weft__hc_time_exit(&sc, rc);
  s->st.waiting--;
  if (!w.done) {
    weft__list_remove(&w.link);
    return rc;
  }
  if (w.status == 0)
    weft__hc_h2_idle(h->c, false);
  return w.status;
}

/* ---- streams ---- */

static void stream_free(hc_stream *st) {
  if (weft__list_linked(&st->link))
    weft__list_remove(&st->link);
  weft__hbuf_free(&st->in);
  weft__hbuf_free(&st->out);
  weft__free(st);
}

/* The stream is over for nghttp2: the slot goes back. */
static void stream_closed(hc_stream *st, uint32_t code, int err) {
  hc_h2 *h = st->h;
  st->closed = true;
  st->code = code;
  if (st->err == 0 && err != 0)
    st->err = err;
  weft__list_remove(&st->link);
  wake(&st->reader, 0);
  wake(&st->writer, 0);
  slot_give(h);
  if (st->r == NULL)
    stream_free(st);
}

/* ---- session events ---- */

static void *ev_begin(void *owner, int32_t sid, void *ud,
                      weft__http_msg **msg) {
  (void)owner;
  (void)sid;
  hc_stream *st = ud;
  if (st == NULL || st->r == NULL)
    return NULL; /* a push (refused: we disable them), or abandoned */
  *msg = &st->r->msg;
  return st;
}

static int ev_head(void *owner, void *ud, bool trailers, bool end,
                   bool too_big) {
  (void)owner;
  (void)end;
  hc_stream *st = ud;
  weft_http_response *r = st->r;
  if (r == NULL)
    return 0;
  weft__http_msg *m = &r->msg;
  if (too_big) {
    st->err = WEFT_EBADMSG;
    weft__h2_reset(st->h->sess, st->sid, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  if (st->head)
    return 0; /* trailers: in m->trailers */
  if (trailers) {
    /* After a 1xx, nghttp2 files the final head as "headers" too: its
     * fields are in the trailer list. */
    weft__http_hdrs t = m->trailers;
    m->trailers = m->hdrs;
    m->hdrs = t;
    m->trailers.n = 0;
    const weft_http_field *f =
        weft__http_hdrs_find(&m->hdrs, "content-length", 14);
    if (f != NULL)
      m->content_length = strtoll(f->value, NULL, 10);
  }
  if (m->status < 200) {
    /* 1xx: the answer comes next. */
    bool head = m->head;
    weft__http_msg_reset(m);
    m->head = head;
    return 0;
  }
  m->version = 20;
  m->keep_alive = true;
  st->head = true;
  r->got_any = true;
  wake(&st->reader, 0);
  return 0;
}

static int ev_data(void *owner, void *ud, const uint8_t *p, size_t n) {
  hc_h2 *h = owner;
  hc_stream *st = ud;
  /* The connection's window opens at once; the stream's as it is read. */
  weft__h2_consume_conn(h->sess, n);
  if (st->r == NULL) {
    weft__h2_consume_stream(h->sess, st->sid, n);
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
  (void)owner;
  hc_stream *st = ud;
  st->in_end = true;
  wake(&st->reader, 0);
  return 0;
}

static int ev_close(void *owner, void *ud, uint32_t code) {
  (void)owner;
  stream_closed(ud, code, code == NGHTTP2_NO_ERROR ? 0 : WEFT_ECONNRESET);
  return 0;
}

static ssize_t ev_read(void *owner, void *ud, uint8_t *buf, size_t len,
                       bool *eof, const weft__http_hdrs **trailers) {
  (void)owner;
  (void)trailers;
  hc_stream *st = ud;
  size_t have = st->out.len - st->out_pos;
  if (have == 0) {
    if (st->out_end) {
      *eof = true;
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
    if (st->out_end)
      *eof = true;
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

static int send_frames(hc_h2 *h) {
  return weft__h2_send_to(h->sess, h->c->st, CONN_OUT_HIGH);
}

/* Feeds input, sends output, decides what to wait for; closes the
 * connection when it is over. */
static void pump(hc_conn *c) {
  hc_h2 *h = c->h2;
  if (h == NULL || h->dead || c->state != CS_H2)
    return;
  weft__hc_conn_ref(c);
  int rc = 0;
  bool over = false;
  while (weft__stream_wqueued(c->st) < CONN_OUT_HIGH) {
    ssize_t n = weft_stream_try_read(c->st, scratch, sizeof scratch);
    if (n == WEFT_EAGAIN)
      break;
    if (n <= 0) {
      over = true; /* the server went away */
      break;
    }
    rc = weft__h2_recv(h->sess, scratch, (size_t)n);
    if (rc != 0 || h->dead) {
      over = true;
      break;
    }
    if ((rc = send_frames(h)) != 0) {
      over = true;
      break;
    }
  }
  if (!over && (rc = send_frames(h)) != 0)
    over = true;
  if (!over) {
    slots_check(h);
    if (!weft__h2_may_open(h->sess) && h->nslots == 0 &&
        weft__list_empty(&h->streams))
      over = true; /* GOAWAY and nothing left in flight */
    else if (!weft__h2_want_read(h->sess) && !weft__h2_want_write(h->sess))
      over = true;
  }
  if (!over) {
    int want = WEFT_STREAM_READABLE;
    if (weft__stream_wqueued(c->st) > 0)
      want |= WEFT_STREAM_DRAINED;
    if (weft_stream_notify(c->st, want, on_io, c) != 0)
      over = true;
  }
  if (over) {
    if (!weft__h2_may_open(h->sess))
      weft__hc_host_changed(c->h);
    weft__hc_conn_close(c);
  }
  weft__hc_conn_unref(c);
}

static void on_io(weft_stream *s, int ev, void *arg) {
  (void)s;
  (void)ev;
  pump(arg);
}

int weft__hc2_start(hc_conn *c) {
  hc_h2 *h = weft__calloc(1, sizeof *h);
  if (h == NULL)
    return WEFT_ENOMEM;
  h->c = c;
  weft__list_init(&h->dirty_link);
  weft__list_init(&h->streams);
  weft__list_init(&h->slot_waiters);
  c->h2 = h;
  int rc = weft__h2_new(&h->sess, false, &limits, &events, h);
  if (rc != 0)
    return rc;
  if ((rc = weft__h2_start(h->sess)) != 0)
    return rc;
  weft__hc_h2_idle(c, true);
  mark_dirty(h); /* the preface and SETTINGS go out this turn */
  return 0;
}

void weft__hc2_kill(hc_conn *c, int err) {
  hc_h2 *h = c->h2;
  if (h == NULL || h->dead)
    return;
  h->dead = true;
  if (weft__list_linked(&h->dirty_link))
    weft__list_remove(&h->dirty_link);
  weft__list *n;
  while ((n = weft__list_front(&h->streams)) != NULL) {
    hc_stream *st = weft__container_of(n, hc_stream, link);
    stream_closed(st, NGHTTP2_INTERNAL_ERROR, err);
  }
  slots_check(h); /* waiters look elsewhere */
}

void weft__hc2_free(hc_conn *c) {
  hc_h2 *h = c->h2;
  if (h == NULL)
    return;
  weft__hc2_kill(c, WEFT_ECONNRESET);
  weft__h2_free(h->sess);
  weft__free(h);
  c->h2 = NULL;
}

/* ---- requests ---- */

/* Hands the request body to the stream, as flow control takes it. */
static int send_body(hc_stream *st, const hc_req *q, const hc_time *t) {
  hc_h2 *h = st->h;
  size_t off = 0;
  uint64_t sent = 0;
  char *buf = NULL;
  int rc = 0;
  for (;;) {
    if (st->closed || h->dead)
      break; /* the answer (or an error) came first: stop sending */
    if (st->out.len - st->out_pos >= STREAM_OUT_HIGH) {
      rc = park(&st->writer, "http2 send", st, t, false);
      if (rc != 0)
        break;
      continue;
    }
    const void *p;
    ssize_t n;
    if (q->body_fn == NULL && q->body_fd < 0) {
      p = (const char *)q->body + off;
      n = (ssize_t)(q->body_len - off < STREAM_OUT_HIGH ? q->body_len - off
                                                        : STREAM_OUT_HIGH);
      off += (size_t)n;
    } else {
      if (buf == NULL && (buf = weft__malloc(STREAM_OUT_HIGH)) == NULL) {
        rc = WEFT_ENOMEM;
        break;
      }
      if (q->body_fd >= 0) {
        n = read(q->body_fd, buf, STREAM_OUT_HIGH);
        if (n < 0)
          n = -errno;
      } else {
        n = q->body_fn(q->body_arg, buf, STREAM_OUT_HIGH);
      }
      p = buf;
      if (st->closed || h->dead)
        break;
    }
    if (n < 0) {
      rc = (int)n;
      break;
    }
    sent += (uint64_t)n;
    if (q->length >= 0 && sent > (uint64_t)q->length) {
      rc = WEFT_EINVAL;
      break;
    }
    if (n == 0) {
      if (q->length >= 0 && sent != (uint64_t)q->length) {
        rc = WEFT_EINVAL;
        break;
      }
      st->out_end = true;
    } else {
      if (st->out_pos > 0 && st->out_pos == st->out.len)
        st->out_pos = st->out.len = 0;
      if (weft__hbuf_add(&st->out, p, (size_t)n) != 0) {
        rc = WEFT_ENOMEM;
        break;
      }
    }
    if (st->deferred) {
      st->deferred = false;
      weft__h2_resume(h->sess, st->sid);
    }
    mark_dirty(h);
    if (st->out_end)
      break;
  }
  weft__free(buf);
  return rc;
}

/* Gives the stream up: reset unless already closed; freed at its close. */
static void abandon(hc_stream *st) {
  hc_h2 *h = st->h;
  st->r = NULL;
  wake(&st->reader, WEFT_ECANCELED);
  wake(&st->writer, WEFT_ECANCELED);
  if (st->closed) {
    stream_free(st);
    return;
  }
  /* Bytes received and not read go back to the window. */
  size_t left = st->in.len - st->in_pos;
  weft__h2_consume_stream(h->sess, st->sid, left);
  st->in.len = st->in_pos = 0;
  weft__h2_reset(h->sess, st->sid, NGHTTP2_CANCEL);
  mark_dirty(h);
}

int weft__hc2_exchange(hc_conn *c, const hc_req *q, weft_http_response *r) {
  hc_h2 *h = c->h2;
  if (!weft__hc2_usable(c))
    return HC_RETRY;
  int rc = slot_take(h, &r->t);
  if (rc != 0)
    return rc;
  if (!weft__hc2_usable(c)) {
    slot_give(h);
    return HC_RETRY;
  }
  hc_stream *st = weft__calloc(1, sizeof *st);
  if (st == NULL) {
    slot_give(h);
    return WEFT_ENOMEM;
  }
  weft__list_init(&st->link);
  st->h = h;
  st->r = r;
  r->msg.head = q->is_head;
  bool body = q->length != -2 && q->length != 0;
  int32_t sid = weft__h2_submit(h->sess, -1, q->msg, body, st);
  if (sid < 0) {
    stream_free(st);
    slot_give(h);
    return (int)sid;
  }
  st->sid = sid;
  r->h2s = st;
  weft__list_push_back(&h->streams, &st->link);
  mark_dirty(h);
  rc = body ? send_body(st, q, &r->t) : 0;
  while (rc == 0 && !st->head && !st->closed)
    rc = park(&st->reader, "http2 response", st, &r->t, true);
  if (rc == 0 && !st->head) {
    /* Closed without an answer: refused before the server processed it
     * (REFUSED_STREAM, or past a GOAWAY's last stream) may go again. */
    rc = st->code == NGHTTP2_REFUSED_STREAM ? HC_RETRY
         : st->err                          ? st->err
                                            : WEFT_EHTTP_NO_RESPONSE;
  }
  if (rc != 0) {
    r->h2s = NULL;
    abandon(st);
    return rc;
  }
  return 0;
}

ssize_t weft__hc2_read(weft_http_response *r, void *buf, size_t len) {
  hc_stream *st = r->h2s;
  if (st == NULL)
    return r->err ? r->err : 0;
  hc_h2 *h = st->h;
  for (;;) {
    size_t have = st->in.len - st->in_pos;
    if (have > 0) {
      size_t n = have < len ? have : len;
      memcpy(buf, st->in.data + st->in_pos, n);
      st->in_pos += n;
      if (st->in_pos == st->in.len)
        st->in_pos = st->in.len = 0;
      if (!st->closed && !h->dead) {
        weft__h2_consume_stream(h->sess, st->sid, n);
        mark_dirty(h);
      }
      return (ssize_t)n;
    }
    if (st->in_end)
      return 0;
    if (st->closed)
      return st->err ? st->err : WEFT_EHTTP_TRUNCATED;
    int rc = park(&st->reader, "http2 body", st, &r->t, true);
    if (rc != 0)
      return rc;
  }
}

void weft__hc2_stream_done(weft_http_response *r) {
  hc_stream *st = r->h2s;
  if (st == NULL)
    return;
  r->h2s = NULL;
  if (st->closed) {
    stream_free(st);
    return;
  }
  if (st->in_end && st->out_end) {
    /* Both sides ended: nghttp2 closes it as soon as our last frame is
     * out, and frees it then. Nothing to reset. */
    st->r = NULL;
    return;
  }
  abandon(st);
}
