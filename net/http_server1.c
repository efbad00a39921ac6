/* weft — HTTP/1.1 server connections (http_int.h).
 *
 * Between requests a connection is driven by stream callbacks: the
 * readiness callback reads what came into a buffer and parses it, and only
 * once a whole request head is there does a task start (h1_task). That task
 * runs the handler, finishes the response, and goes on with the next
 * request if its head is already buffered (pipelining: responses go out in
 * order, several in one write); when none is, it flushes, gives the buffer
 * back and returns, leaving the connection to the callback again. So an
 * idle keep-alive connection is the hconn, its stream and the stream's
 * event: no task, no stack, no buffer.
 *
 * A connection that must close after its answer (bad request, Connection:
 * close, limits, shutdown) ends in "lingering close", as nginx does: our
 * write side is shut, and what the client still sends is read and dropped
 * for up to 2 s, so the answer is not lost to a reset.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_int.h"

/* The read buffer starts at this size and grows for large heads. */
#define RBUF_MIN 4096
/* Responses are gathered in the output buffer up to this size. */
#define CORK_MAX (16 * 1024)
/* A body the handler left unread is read and dropped when at most this
 * much of it remains; beyond, the connection closes instead. */
#define DRAIN_MAX (64 * 1024)
/* A parser's scratch buffer (a field being assembled) up to this size
 * stays with a cached state. */
#define SCRATCH_KEEP 1024
/* h1 states kept for reuse per server. */
#define H1_CACHE 256

struct h1state {
  h1state *next_free; /* in the server's cache */
  weft__h1 p;
  weft_http_request *r; /* the request being read or served */
  char *rbuf;
  size_t rpos, rlen, rcap;
  weft__hbuf out;  /* responses not yet written */
  bool head_timed; /* the head timeout runs for the request being read */
  bool lingering;
};

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

static void on_readable(weft_stream *st, int ev, void *arg);
static int h1_task(void *arg);

/* ---- state ---- */

static void state_put(hconn *c) {
  h1state *h = c->h1;
  if (h == NULL)
    return;
  c->h1 = NULL;
  weft_http_server *s = c->srv;
  if (h->r != NULL) {
    weft__req_put(h->r);
    h->r = NULL;
  }
  if (h->p.sc_cap > SCRATCH_KEEP)
    weft__h1_release(&h->p); /* a small one stays with the cached state */
  if (h->rcap > RBUF_MIN) {
    weft__free(h->rbuf);
    h->rbuf = NULL;
    h->rcap = 0;
  }
  if (h->out.cap > CORK_MAX)
    weft__hbuf_free(&h->out);
  h->out.len = 0;
  h->rpos = h->rlen = 0;
  if (s->nfree_h1 < H1_CACHE && !s->freed) {
    h->next_free = s->free_h1;
    s->free_h1 = h;
    s->nfree_h1++;
    return;
  }
  weft__h1_release(&h->p);
  weft__free(h->rbuf);
  weft__hbuf_free(&h->out);
  weft__free(h);
}

/* Readies the state for a new request (its request object and parser). */
static int begin_request(hconn *c) {
  h1state *h = c->h1;
  h->r = weft__req_get(c, &weft__h1_ops);
  if (h->r == NULL)
    return WEFT_ENOMEM;
  weft__h1_next(&h->p, &h->r->req);
  h->head_timed = false;
  return 0;
}

static int state_get(hconn *c) {
  if (c->h1 != NULL)
    return c->h1->r != NULL ? 0 : begin_request(c);
  weft_http_server *s = c->srv;
  h1state *h = s->free_h1;
  if (h != NULL) {
    s->free_h1 = h->next_free;
    s->nfree_h1--;
  } else {
    h = weft__calloc(1, sizeof *h);
    if (h == NULL)
      return WEFT_ENOMEM;
  }
  weft__h1_reuse(&h->p, &s->h1proto, NULL);
  h->r = NULL;
  h->lingering = false;
  c->h1 = h;
  int rc = begin_request(c);
  if (rc != 0)
    state_put(c);
  return rc;
}

void weft__h1_conn_free(hconn *c) { state_put(c); }

void weft__h1_cache_free(weft_http_server *s) {
  while (s->free_h1 != NULL) {
    h1state *h = s->free_h1;
    s->free_h1 = h->next_free;
    weft__h1_release(&h->p);
    weft__free(h->rbuf);
    weft__hbuf_free(&h->out);
    weft__free(h);
  }
  s->nfree_h1 = 0;
}

/* Room for at least `want` more bytes in the read buffer, within limit. */
static int rbuf_room(h1state *h, size_t want, size_t limit) {
  if (h->rpos > 0 && h->rpos == h->rlen)
    h->rpos = h->rlen = 0;
  if (h->rcap - h->rlen >= want)
    return 0;
  if (h->rpos > 0) {
    memmove(h->rbuf, h->rbuf + h->rpos, h->rlen - h->rpos);
    h->rlen -= h->rpos;
    h->rpos = 0;
    if (h->rcap - h->rlen >= want)
      return 0;
  }
  size_t cap = h->rcap ? h->rcap : RBUF_MIN;
  while (cap - h->rlen < want)
    cap *= 2;
  if (cap > limit && h->rcap >= limit)
    return h->rcap > h->rlen ? 0 : WEFT_ELIMIT;
  if (cap > limit)
    cap = limit > h->rlen ? limit : h->rlen + 1;
  char *d = weft__realloc(h->rbuf, cap);
  if (d == NULL)
    return WEFT_ENOMEM;
  h->rbuf = d;
  h->rcap = cap;
  return 0;
}

/* ---- closing ---- */

static void on_linger(weft_stream *st, int ev, void *arg) {
  (void)ev;
  hconn *c = arg;
  char buf[4096];
  for (;;) {
    ssize_t n = weft_stream_try_read(st, buf, sizeof buf);
    if (n > 0)
      continue;
    if (n == WEFT_EAGAIN)
      break;
    weft__hconn_close(c); /* the end, or an error: done */
    return;
  }
  if (weft__stream_wqueued(st) == 0 && !st->shut) {
    (void)shutdown(st->fd, SHUT_WR);
    st->shut = true;
  }
  int want = WEFT_STREAM_READABLE;
  if (weft__stream_wqueued(st) > 0)
    want |= WEFT_STREAM_DRAINED;
  if (weft_stream_notify(st, want, on_linger, c) != 0)
    weft__hconn_close(c);
}

/* Ends the connection after what is queued: lingering close. Callback
 * context (no task holds the connection). */
static void linger(hconn *c) {
  if (c->kind == HC_DEAD)
    return;
  if (c->h1 != NULL) {
    c->h1->lingering = true;
    state_put(c);
  }
  weft__hconn_timeout(c, TQ_LINGER);
  if (c->tls) {
    /* No half-close over TLS without a close_notify dance: the queue is
     * flushed by the stream; close once it is out. */
  }
  on_linger(c->st, 0, c);
}

/* Answers a request the server refuses (bad head, limits, timeout) and
 * closes. Callback context. */
static void refuse(hconn *c, int status) {
  weft_http_server *s = c->srv;
  const char *reason = weft_http_reason(status);
  char buf[256];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                   status, reason, strlen(reason) + 1, reason);
  struct iovec iov = {buf, (size_t)n};
  if (status == 408)
    s->stats.timeouts++;
  else
    s->stats.bad_requests++;
  s->stats.responses[status / 100]++;
  if (weft_stream_try_writev(c->st, &iov, 1) != 0) {
    weft__hconn_close(c);
    return;
  }
  linger(c);
}

/* ---- reading heads (callback context) ---- */

enum { P_MORE, P_HEAD, P_ERROR, P_GONE };

/* True when h2c prior knowledge may start here. */
static bool may_preface(const hconn *c) {
  return !c->tls && c->nreq == 0 && c->srv->o.h2 >= 0;
}

/* Parses what is buffered. P_HEAD: a request head is complete (h->r). */
static int parse(hconn *c) {
  h1state *h = c->h1;
  if (h->p.state == WEFT__H1_IDLE && h->rlen > h->rpos && may_preface(c) &&
      h->rpos == 0) {
    size_t n = h->rlen < PREFACE_LEN ? h->rlen : PREFACE_LEN;
    if (memcmp(h->rbuf, PREFACE, n) == 0) {
      if (n < PREFACE_LEN)
        return P_MORE;
      /* HTTP/2 with prior knowledge: hand everything over. */
      c->kind = HC_H2;
      weft__hconn_timeout(c, -1);
      c->refs++; /* the session may end (and close c) at once */
      int rc = weft__h2_conn_start(c, h->rbuf, h->rlen, NULL, NULL);
      state_put(c);
      if (rc != 0)
        weft__hconn_close(c);
      weft__hconn_unref(c);
      return P_GONE;
    }
  }
  while (h->rpos < h->rlen) {
    ssize_t n = weft__h1_feed(&h->p, h->rbuf + h->rpos, h->rlen - h->rpos);
    if (n < 0)
      return P_ERROR;
    h->rpos += (size_t)n;
    if (h->p.state == WEFT__H1_HEAD || h->p.state == WEFT__H1_DONE)
      return P_HEAD;
    if (n == 0)
      break;
  }
  if (h->rpos == h->rlen)
    h->rpos = h->rlen = 0;
  /* A head has begun and is not complete: its timeout runs from this turn
   * (set only now, so a head that comes whole never touches the list). */
  if (h->p.state == WEFT__H1_START && !h->head_timed) {
    h->head_timed = true;
    weft__hconn_timeout(c, TQ_HEAD);
  }
  return P_MORE;
}

/* A head is complete: a task takes over. */
static void dispatch(hconn *c) {
  weft__hconn_timeout(c, -1);
  c->refs++;
  if (weft__http_spawn(c->srv, h1_task, c, &c->task) != 0) {
    c->task = NULL;
    c->refs--;
    weft__hconn_close(c);
  }
}

/* Parks the connection on its readiness callback: idle (no buffer) when
 * nothing of a next request has come, else waiting for the rest of a
 * head. */
static void wait_input(hconn *c) {
  h1state *h = c->h1;
  if (h != NULL && h->rpos == h->rlen &&
      (h->r == NULL || h->p.state == WEFT__H1_IDLE)) {
    state_put(c);
    h = NULL;
  }
  if (h == NULL)
    weft__hconn_timeout(c, TQ_IDLE);
  if (c->closing && h == NULL) {
    /* Shutting down and nothing pending: close now. */
    weft__hconn_close(c);
    return;
  }
  if (weft_stream_notify(c->st, WEFT_STREAM_READABLE, on_readable, c) != 0)
    weft__hconn_close(c);
}

/* Reads and parses until a head is complete or the socket is empty. */
static void pump(hconn *c) {
  weft_http_server *s = c->srv;
  if (state_get(c) != 0) {
    weft__hconn_close(c);
    return;
  }
  for (;;) {
    h1state *h = c->h1;
    int rc = rbuf_room(h, 1024, s->o.max_header_bytes + RBUF_MIN);
    if (rc != 0) {
      /* The head is over every limit without llhttp noticing (cannot
       * happen: it counts every byte); refuse it anyway. */
      refuse(c, 431);
      return;
    }
    ssize_t n =
        weft_stream_try_read(c->st, h->rbuf + h->rlen, h->rcap - h->rlen);
    if (n == WEFT_EAGAIN)
      break;
    if (n <= 0) {
      /* The end, or an error: nothing to answer to. */
      weft__hconn_close(c);
      return;
    }
    h->rlen += (size_t)n;
    s->stats.bytes_in += (uint64_t)n;
    switch (parse(c)) {
    case P_HEAD:
      dispatch(c);
      return;
    case P_ERROR:
      refuse(c, h->p.status ? h->p.status : 400);
      return;
    case P_GONE:
      return;
    }
  }
  wait_input(c);
}

static void on_readable(weft_stream *st, int ev, void *arg) {
  (void)st;
  (void)ev;
  hconn *c = arg;
  if (c->kind == HC_H1 && c->task == NULL)
    pump(c);
}

void weft__h1_conn_start(hconn *c, const char *pre, size_t n) {
  c->kind = HC_H1;
  if (n == 0) {
    wait_input(c);
    return;
  }
  if (state_get(c) != 0 || rbuf_room(c->h1, n, SIZE_MAX) != 0) {
    weft__hconn_close(c);
    return;
  }
  memcpy(c->h1->rbuf, pre, n);
  c->h1->rlen = n;
  switch (parse(c)) {
  case P_HEAD:
    dispatch(c);
    return;
  case P_ERROR:
    refuse(c, c->h1->p.status ? c->h1->p.status : 400);
    return;
  case P_GONE:
    return;
  }
  pump(c);
}

void weft__h1_conn_timeout(hconn *c, int q) {
  if (c->task != NULL)
    return; /* a handler runs: its own deadlines apply */
  if (q == TQ_HEAD && c->h1 != NULL && !c->h1->lingering) {
    refuse(c, 408);
    return;
  }
  weft__hconn_close(c); /* keep-alive idle, or lingering over */
}

void weft__h1_conn_shutdown(hconn *c) {
  c->closing = true;
  if (c->task == NULL)
    weft__hconn_close(c); /* idle, or a head still coming: close now */
}

/* ---- writing (in the task) ---- */

/* Writes the gathered output: what the socket does not take now is queued
 * (at most CORK_MAX and a bit), and only past the stream's high-water mark
 * does the task wait, with the send timeout (no deadline scope for the
 * common case of an answer the socket takes at once). */
static int flush(hconn *c) {
  h1state *h = c->h1;
  if (h->out.len == 0)
    return 0;
  if (c->st == NULL)
    return WEFT_EPIPE;
  struct iovec iov = {h->out.data, h->out.len};
  int rc = weft_stream_try_writev(c->st, &iov, 1);
  h->out.len = 0;
  /* rc 0: the stream is live, so its queue may be read directly. */
  if (rc == 0 && weft__stream_wqueued(c->st) >= c->st->high) {
    weft_timeout scope;
    weft_timeout_enter(&scope, c->srv->o.send_timeout);
    rc = weft_stream_drain(c->st);
    (void)weft_timeout_exit(&scope);
  }
  if (rc != 0)
    c->closing = true;
  return rc;
}

/* Writes the gathered output followed by `p` (one system call). */
static int flush_with(hconn *c, const void *p, size_t n, const char *tail,
                      size_t tn) {
  h1state *h = c->h1;
  if (c->st == NULL)
    return WEFT_EPIPE;
  struct iovec iov[3];
  int k = 0;
  if (h->out.len > 0)
    iov[k++] = (struct iovec){h->out.data, h->out.len};
  iov[k++] = (struct iovec){(void *)p, n};
  if (tn > 0)
    iov[k++] = (struct iovec){(void *)tail, tn};
  weft_timeout scope;
  weft_timeout_enter(&scope, c->srv->o.send_timeout);
  int rc = weft_stream_writev(c->st, iov, k);
  (void)weft_timeout_exit(&scope);
  h->out.len = 0;
  if (rc != 0)
    c->closing = true;
  return rc;
}

/* True when the next request's bytes are already here: then responses
 * are gathered and written together. */
static bool more_pipelined(const hconn *c) {
  const h1state *h = c->h1;
  return h->rpos < h->rlen && h->p.state == WEFT__H1_DONE;
}

static bool body_pending(const weft_http_request *r) {
  const weft__http_msg *m = &r->req;
  return !r->body_end && r->body_err == 0 &&
         (m->chunked || (m->content_length > 0 &&
                         (uint64_t)m->content_length > r->body_read));
}

static int h1_start(weft_http_request *r, bool body) {
  hconn *c = r->c;
  h1state *h = c->h1;
  weft_http_server *s = c->srv;
  const weft__http_msg *q = &r->req;
  bool close = c->closing || s->closing || !q->keep_alive ||
               (s->o.max_requests != 0 && c->nreq >= s->o.max_requests);
  if (body_pending(r)) {
    /* An unread body is dropped when small; when large, or when the
     * client waits for a 100 Continue that will never come, the
     * connection closes after this answer. */
    if (q->chunked || (uint64_t)q->content_length - r->body_read > DRAIN_MAX ||
        (q->expect_continue && !r->continue_sent))
      close = true;
  }
  unsigned flags = WEFT__H1_DATE;
  if (body && r->res.content_length < 0) {
    if (q->version >= 11)
      flags |= WEFT__H1_CHUNKED;
    else
      close = true; /* HTTP/1.0: the end of the body is the close */
    r->out_chunked = q->version >= 11;
  }
  if (r->res.status == 204 || r->res.status == 304)
    flags |= WEFT__H1_NOLEN;
  if (close) {
    flags |= WEFT__H1_CLOSE;
    c->closing = true;
  } else if (q->version == 10) {
    flags |= WEFT__H1_KEEP;
  }
  size_t before = h->out.len;
  int rc = weft__h1_head(&h->out, &r->res, flags);
  if (rc != 0)
    return rc;
  s->stats.bytes_out += h->out.len - before; /* r->bytes_out: body only */
  return 0;
}

static int h1_write(weft_http_request *r, const void *p, size_t n) {
  hconn *c = r->c;
  h1state *h = c->h1;
  r->bytes_out += n;
  char ch[24];
  size_t chl = 0;
  if (r->out_chunked) {
    chl = weft__h1_chunk_head(ch, n);
    if (weft__hbuf_add(&h->out, ch, chl) != 0)
      return WEFT_ENOMEM;
  }
  const char *tail = r->out_chunked ? "\r\n" : "";
  size_t tn = r->out_chunked ? 2 : 0;
  if (h->out.len + n + tn <= CORK_MAX) {
    if (weft__hbuf_reserve(&h->out, n + tn) != 0)
      return WEFT_ENOMEM;
    weft__hbuf_put(&h->out, p, n);
    weft__hbuf_put(&h->out, tail, tn);
    /* A streamed body goes out as written; a whole one at the end. */
    return r->in_respond ? 0 : flush(c);
  }
  return flush_with(c, p, n, tail, tn);
}

static int h1_end(weft_http_request *r) {
  hconn *c = r->c;
  h1state *h = c->h1;
  if (r->out_chunked) {
    size_t before = h->out.len;
    if (weft__h1_chunk_end(&h->out, &r->res.trailers) != 0)
      return WEFT_ENOMEM;
    c->srv->stats.bytes_out += h->out.len - before;
  }
  if (h->out.len >= CORK_MAX / 2 || !more_pipelined(c) || c->closing)
    return flush(c);
  return 0;
}

static int h1_sendfile(weft_http_request *r, int fd, off_t off, size_t n) {
  hconn *c = r->c;
  weft_stream *st = c->st;
  int rc = flush(c);
  if (rc != 0)
    return rc;
  r->bytes_out += n;
  weft_timeout scope;
  weft_timeout_enter(&scope, c->srv->o.send_timeout);
  if (!c->tls)
    rc = weft_stream_flush(st); /* the stream's own queue goes first */
  char *buf = NULL;
  while (rc == 0 && n > 0) {
    if (c->st == NULL) {
      rc = WEFT_EPIPE;
      break;
    }
    if (!c->tls) {
      /* Page cache to socket, never through user space. */
      ssize_t w = sendfile(st->fd, fd, &off, n > (1u << 30) ? 1u << 30 : n);
      if (w > 0) {
        n -= (size_t)w;
        st->nwritten += (uint64_t)w;
        continue;
      }
      if (w == 0) {
        rc = WEFT_EIO; /* the file shrank */
        break;
      }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        weft__stream_spent(st, WEFT__WANT_WRITE);
        rc = weft__stream_wait_io(st, WEFT__WANT_WRITE);
        continue;
      }
      rc = -errno;
      break;
    }
    if (buf == NULL && (buf = weft__malloc(65536)) == NULL) {
      rc = WEFT_ENOMEM;
      break;
    }
    ssize_t k = pread(fd, buf, n < 65536 ? n : 65536, off);
    if (k <= 0) {
      rc = k == 0 ? WEFT_EIO : -errno;
      break;
    }
    off += k;
    n -= (size_t)k;
    rc = weft_stream_write(st, buf, (size_t)k);
  }
  weft__free(buf);
  (void)weft_timeout_exit(&scope);
  if (rc != 0)
    c->closing = true;
  return rc;
}

/* ---- reading bodies (in the task) ---- */

static ssize_t h1_read(weft_http_request *r, void *buf, size_t len) {
  hconn *c = r->c;
  h1state *h = c->h1;
  weft_http_server *s = c->srv;
  if (h->p.state == WEFT__H1_DONE)
    return 0;
  if (r->req.expect_continue && !r->continue_sent && r->rstate == RS_NONE &&
      h->rpos == h->rlen && c->st != NULL) {
    r->continue_sent = true;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    int rc = flush_with(c, cont, sizeof cont - 1, NULL, 0);
    if (rc != 0)
      return rc;
  }
  for (;;) {
    if (h->rpos < h->rlen) {
      weft__h1_set_sink(&h->p, buf, len);
      ssize_t n = weft__h1_feed(&h->p, h->rbuf + h->rpos, h->rlen - h->rpos);
      if (n < 0) {
        c->closing = true;
        return WEFT_EBADMSG;
      }
      h->rpos += (size_t)n;
      if (h->p.dst_len > 0)
        return (ssize_t)h->p.dst_len;
      if (h->p.state == WEFT__H1_DONE)
        return 0;
      if (n > 0)
        continue;
    }
    if (c->st == NULL)
      return WEFT_ECANCELED;
    if (rbuf_room(h, 1024, SIZE_MAX) != 0)
      return WEFT_ENOMEM;
    ssize_t n =
        weft_stream_try_read(c->st, h->rbuf + h->rlen, h->rcap - h->rlen);
    if (n > 0) {
      h->rlen += (size_t)n;
      continue;
    }
    if (n != WEFT_EAGAIN) {
      c->closing = true;
      return n == WEFT_EOF ? WEFT_EOF : n;
    }
    weft_timeout scope;
    weft_timeout_enter(&scope, s->o.body_timeout);
    int rc = weft__stream_wait_io(c->st, c->st->rwant);
    bool timed_out = weft_timeout_exit(&scope) == WEFT_ETIMEDOUT;
    if (rc != 0) {
      if (timed_out) {
        s->stats.timeouts++;
        c->closing = true;
      }
      return rc;
    }
  }
}

/* Reads and drops what is left of a body the handler did not read, when
 * it is small. Returns false when the connection must close instead. */
static bool drain_body(weft_http_request *r) {
  if (!body_pending(r))
    return r->body_err == 0 || r->body_err == WEFT_ELIMIT ? r->body_err == 0
                                                          : false;
  if (r->c->closing)
    return false;
  char buf[4096];
  uint64_t left = DRAIN_MAX;
  r->max_body = SIZE_MAX;
  for (;;) {
    ssize_t n = h1_read(r, buf, sizeof buf);
    if (n == 0)
      return true;
    if (n < 0 || (uint64_t)n > left)
      return false;
    left -= (uint64_t)n;
  }
}

/* ---- the task ---- */

static bool h2c_upgrade_wanted(const hconn *c, const weft_http_request *r) {
  if (c->tls || c->srv->o.h2 < 0 || !r->req.upgrade ||
      r->req.content_length > 0 || r->req.chunked)
    return false;
  const char *up = weft_http_header(r, "upgrade");
  const char *set = weft_http_header(r, "http2-settings");
  return up != NULL && set != NULL && strcmp(up, "h2c") == 0;
}

/* Takes the connection to HTTP/2 with r as stream 1. Returns 0 when the
 * HTTP/2 side owns the connection (and r). */
static int upgrade_h2c(hconn *c, weft_http_request *r) {
  h1state *h = c->h1;
  static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\n"
                           "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  int rc = flush_with(c, sw, sizeof sw - 1, NULL, 0);
  if (rc != 0)
    return rc;
  const char *settings = weft_http_header(r, "http2-settings");
  h->r = NULL; /* the HTTP/2 side takes the request */
  c->kind = HC_H2;
  rc =
      weft__h2_conn_start(c, h->rbuf + h->rpos, h->rlen - h->rpos, r, settings);
  state_put(c);
  return rc;
}

static int h1_task(void *arg) {
  hconn *c = arg;
  weft_http_server *s = c->srv;
  for (;;) {
    h1state *h = c->h1;
    weft_http_request *r = h->r;
    c->nreq++;
    if (c->nreq == 1 && h2c_upgrade_wanted(c, r)) {
      c->task = NULL;
      if (upgrade_h2c(c, r) != 0)
        weft__hconn_close(c);
      weft__hconn_unref(c);
      return 0;
    }
    if (h->p.state == WEFT__H1_DONE)
      r->body_end = true;
    weft__req_run(r);
    if (c->kind == HC_DEAD)
      break;
    bool keep = !c->closing && drain_body(r);
    weft__req_done(r);
    weft__req_put(r);
    h->r = NULL;
    if (c->kind == HC_DEAD)
      break;
    if (!keep || c->closing) {
      (void)flush(c);
      c->task = NULL;
      if (c->kind != HC_DEAD)
        linger(c);
      weft__hconn_unref(c);
      return 0;
    }
    if (h->rpos == h->rlen) {
      /* Nothing of a next request yet: back to the readiness callback. */
      if (flush(c) != 0 || c->kind == HC_DEAD)
        break;
      c->task = NULL;
      wait_input(c); /* may fire at once: the callback reads */
      weft__hconn_unref(c);
      return 0;
    }
    /* The next request, if its head is already buffered. */
    if (begin_request(c) != 0) {
      c->closing = true;
      continue;
    }
    int p = parse(c);
    if (p == P_HEAD)
      continue;
    if (flush(c) != 0 || c->kind == HC_DEAD)
      break;
    c->task = NULL;
    if (p == P_ERROR)
      refuse(c, h->p.status ? h->p.status : 400);
    else
      wait_input(c); /* may fire at once: the callback reads */
    weft__hconn_unref(c);
    return 0;
  }
  /* Closed under us (shutdown, free) or failed: nothing more to send. */
  c->task = NULL;
  weft__hconn_close(c);
  weft__hconn_unref(c);
  (void)s;
  return 0;
}

const proto_ops weft__h1_ops = {
    .read = h1_read,
    .start = h1_start,
    .write = h1_write,
    .end = h1_end,
    .sendfile = h1_sendfile,
};
