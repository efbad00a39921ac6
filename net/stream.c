/* weft — streams: buffers, water marks and waiting over a transport.
 *
 * Each stream's socket is in the loop's own epoll set (runtime/io.c),
 * registered once, edge-triggered, for both directions (no epoll_ctl per
 * wait). An edge only records readiness, wakes the tasks waiting for it, and
 * pushes out queued bytes; every read happens in the task that asked,
 * straight into its buffer or the stream's. A system call is made first and
 * a task parks only after the readiness is used up: an EAGAIN, or a short
 * read from an edge that carried no end or error (the raw epoll flags say
 * so, which libevent's events do not: that saves one recv per wait).
 *
 * Reads pull: nothing is read until a task asks, so an unread stream stops
 * its peer through TCP flow control, and an idle stream holds no buffer
 * (the read buffer is dropped whenever a read parks on an empty one).
 * Writes push: the bytes the socket does not take at once are queued and
 * sent by the event as the socket drains; a write that finds the queue at
 * the high-water mark waits until it is down to the low-water mark.
 *
 * docs/internals/streams.md explains the layering, the buffers, and what a
 * cancelled call leaves behind.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/stream.h>

#include "stream_int.h"

/* Free room a read into the stream's buffer asks the kernel to fill. */
#define READ_CHUNK (16 * 1024)
/* A read that finds the buffer empty and wants at least this much reads
 * straight into the caller's memory. */
#define DIRECT_READ 1024
#define DEFAULT_HIGH (64 * 1024)
#define DEFAULT_CLOSE_TIMEOUT 5.0
/* Pieces handed to one writev. */
#define IOV_BATCH 64

/* ---- buffers ---- */

static void buf_free(weft__buf *b) {
  weft__free(b->data);
  *b = (weft__buf){0};
}

/* Makes room for at least `room` free bytes after the held ones, moving
 * them to the front or growing. Returns 0 or WEFT_ENOMEM. */
static int buf_reserve(weft__buf *b, size_t room) {
  size_t len = weft__buf_len(b);
  if (b->cap - b->end >= room)
    return 0;
  if (b->start > 0 && b->cap - len >= room) {
    memmove(b->data, b->data + b->start, len);
    b->start = 0;
    b->end = len;
    return 0;
  }
  if (room > SIZE_MAX - len)
    return WEFT_ENOMEM;
  size_t cap = b->cap ? b->cap : READ_CHUNK;
  while (cap < len + room) {
    if (cap > SIZE_MAX / 2)
      return WEFT_ENOMEM;
    cap *= 2;
  }
  char *d = weft__malloc(cap);
  if (d == NULL)
    return WEFT_ENOMEM;
  if (len > 0)
    memcpy(d, b->data + b->start, len);
  weft__free(b->data);
  b->data = d;
  b->start = 0;
  b->end = len;
  b->cap = cap;
  return 0;
}

static void buf_consume(weft__buf *b, size_t n) {
  assert(n <= weft__buf_len(b));
  b->start += n;
  if (b->start == b->end)
    b->start = b->end = 0;
}

/* ---- the plain socket transport ---- */

static ssize_t plain_read(weft__transport *t, void *buf, size_t len,
                          int *want) {
  for (;;) {
    ssize_t n = recv(t->s->fd, buf, len, 0);
    if (n > 0) {
      /* A short read emptied the socket, and bytes or an end that come
       * later raise a new edge; only an end or error that came with this
       * edge must still be read (rclosed). */
      if ((size_t)n < len && !t->s->rclosed)
        t->s->readable = false;
      return n;
    }
    if (n == 0)
      return WEFT_EOF;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      *want = WEFT__WANT_READ;
      return WEFT_EAGAIN;
    }
    return -errno;
  }
}

static ssize_t plain_writev(weft__transport *t, const struct iovec *iov, int n,
                            int *want) {
  if (n == 0)
    return 0;
  struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
  for (;;) {
    /* send/sendmsg for MSG_NOSIGNAL: a closed peer is an EPIPE, not a
     * SIGPIPE that kills the program. send for one buffer: the kernel has
     * no iovec to copy in. */
    ssize_t w =
        n == 1 ? send(t->s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
               : sendmsg(t->s->fd, &msg, MSG_NOSIGNAL);
    if (w >= 0)
      return w;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      *want = WEFT__WANT_WRITE;
      return WEFT_EAGAIN;
    }
    return -errno;
  }
}

static size_t plain_wpending(weft__transport *t) {
  (void)t;
  return 0;
}

static bool plain_rpending(weft__transport *t) {
  (void)t;
  return false;
}

static int plain_shutdown(weft__transport *t, int *want) {
  (void)want;
  if (shutdown(t->s->fd, SHUT_WR) != 0 && errno != ENOTCONN)
    return -errno;
  return 0;
}

static void plain_free(weft__transport *t) { (void)t; }

static const weft__transport_vt plain_vt = {
    .name = "tcp",
    .read = plain_read,
    .writev = plain_writev,
    .wpending = plain_wpending,
    .rpending = plain_rpending,
    .shutdown = plain_shutdown,
    .free = plain_free,
};

/* ---- readiness and the event ---- */

/* Wakes the drain waiters whose level is reached (or all, on an error). */
static void wake_drainers(weft_stream *s) {
  if (weft__list_empty(&s->drainers))
    return;
  size_t q = weft__stream_wqueued(s);
  weft__list *n = s->drainers.next;
  while (n != &s->drainers) {
    weft__list *next = n->next;
    weft__waiter *w = weft__container_of(n, weft__waiter, link);
    if (s->werr != 0 || q <= (size_t)(uintptr_t)w->data) {
      weft__list_remove(n);
      weft__waiter_complete(w, s->werr);
    }
    n = next;
  }
}

/* Sends queued bytes until the queue is empty or the socket is full. Runs
 * in tasks and in the event callback: it never waits. */
static void flush_queue(weft_stream *s) {
  while (s->werr == 0 && weft__stream_wqueued(s) > 0 &&
         weft__stream_ready(s, s->wwant)) {
    struct iovec iov = {s->wbuf.data + s->wbuf.start, weft__buf_len(&s->wbuf)};
    int want = 0;
    ssize_t n = s->tp->vt->writev(s->tp, &iov, iov.iov_len ? 1 : 0, &want);
    if (n == WEFT_EAGAIN) {
      weft__stream_spent(s, want);
      s->wwant = want;
      break;
    }
    if (n < 0) {
      s->werr = (int)n;
      break;
    }
    s->wwant = WEFT__WANT_WRITE;
    buf_consume(&s->wbuf, (size_t)n);
  }
  /* An empty queue holds no memory: most streams are idle most of the
   * time, and a buffer per idle stream adds up. */
  if (weft__buf_len(&s->wbuf) == 0 && s->wbuf.data != NULL)
    buf_free(&s->wbuf);
  wake_drainers(s);
}

static void wake_io(weft_stream *s) {
  weft__list *n = s->io_waiters.next;
  while (n != &s->io_waiters) {
    weft__list *next = n->next;
    weft__waiter *w = weft__container_of(n, weft__waiter, link);
    if (weft__stream_ready(s, (int)(uintptr_t)w->data)) {
      weft__list_remove(n);
      weft__waiter_complete(w, 0);
    }
    n = next;
  }
}

/* The events of a weft_stream_notify() request that hold now. */
static inline int notify_ready(const weft_stream *s) {
  int ev = 0;
  if ((s->notify_events & WEFT_STREAM_READABLE) &&
      (weft__buf_len(&s->rbuf) > 0 || s->rerr != 0 ||
       weft__stream_ready(s, s->rwant) || weft__stream_rpending(s)))
    ev |= WEFT_STREAM_READABLE;
  if ((s->notify_events & WEFT_STREAM_DRAINED) &&
      (s->werr != 0 || weft__stream_wqueued(s) <= s->low))
    ev |= WEFT_STREAM_DRAINED;
  return ev;
}

/* Calls the notify callback if its events hold (one-shot). */
static void notify_check(weft_stream *s) {
  int ev = notify_ready(s);
  if (ev == 0)
    return;
  weft_stream_notify_fn fn = s->notify_fn;
  s->notify_fn = NULL;
  s->notify_events = 0;
  fn(s, ev, s->notify_arg);
}

/* An edge of the socket (events: raw epoll flags), or a kick (0). */
static void on_io(weft__io *io, uint32_t events) {
  weft_stream *s = weft__container_of(io, weft_stream, io);
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
    s->rclosed = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
    s->readable = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
    s->writable = true;
  if (weft__stream_wqueued(s) > 0 && s->werr == 0)
    flush_queue(s);
  wake_io(s);
  if (s->notify_fn != NULL)
    notify_check(s); /* last: the callback may free s */
}

/* Parks the calling task on `head` with `data` until woken. Returns 0 when
 * a waker completed the wait, else park's error. */
static int park_on(weft_stream *s, weft__list *head, uintptr_t data,
                   const char *what) {
  weft__waiter w;
  weft__waiter_init(&w, s->loop->current);
  w.data = (void *)data;
  weft__list_push_back(head, &w.link);
  int rc;
  do
    rc = weft__park(what, s, 0);
  while (rc == 0 && !w.done);
  if (!w.done)
    weft__list_remove(&w.link);
  if (s->released)
    return WEFT_ECANCELED;
  if (w.done)
    return w.status;
  return rc;
}

int weft__stream_wait_io(weft_stream *s, int want) {
  if (s->released)
    return WEFT_ECANCELED;
  if (weft__stream_ready(s, want))
    return 0;
  return park_on(s, &s->io_waiters, (uintptr_t)want,
                 (want & WEFT__WANT_WRITE) ? "stream_io_write"
                                           : "stream_io_read");
}

int weft__stream_wait_drain(weft_stream *s, size_t level) {
  for (;;) {
    if (s->released)
      return WEFT_ECANCELED;
    if (s->werr != 0)
      return s->werr;
    if (weft__stream_wqueued(s) <= level)
      return 0;
    int rc = park_on(s, &s->drainers, level, "stream_drain");
    if (rc != 0)
      return rc;
  }
}

/* ---- making and freeing ---- */

static void apply_nodelay(weft_stream *s, const weft_stream_opts *o) {
  if (s->family != AF_INET && s->family != AF_INET6)
    return;
  int on = o->nodelay >= 0;
  (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int weft__stream_new(weft_stream **out, weft_loop *loop, int fd,
                     const weft_stream_opts *opts) {
  weft_stream_opts o = {0};
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  weft_stream *s = weft__calloc(1, sizeof *s);
  if (s == NULL)
    return WEFT_ENOMEM;
  s->loop = loop;
  s->fd = fd;
  s->readable = s->writable = true;
  s->rwant = WEFT__WANT_READ;
  s->wwant = WEFT__WANT_WRITE;
  s->high = o.write_high ? o.write_high : DEFAULT_HIGH;
  s->low = o.write_low ? o.write_low : s->high / 4;
  if (s->low > s->high)
    s->low = s->high;
  s->close_timeout =
      o.close_timeout > 0 ? o.close_timeout : DEFAULT_CLOSE_TIMEOUT;
  s->plain.vt = &plain_vt;
  s->plain.s = s;
  s->tp = &s->plain;
  weft__list_init(&s->io_waiters);
  weft__list_init(&s->drainers);
  if (o.server_name != NULL) {
    s->server_name = weft__strdup(o.server_name);
    if (s->server_name == NULL)
      goto nomem;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  s->family = getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 ? ss.ss_family
                                                                : AF_UNSPEC;

  /* Edge-triggered, registered once for the stream's life. */
  s->io.cb = on_io;
  int rc =
      weft__io_add(loop, &s->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  if (rc != 0) {
    weft__free(s->server_name);
    weft__free(s);
    return rc;
  }
  apply_nodelay(s, &o);
  if (o.keepalive > 0)
    (void)weft_stream_set_keepalive(s, true, o.keepalive);
  weft__obj_add(loop);
  *out = s;
  return 0;

nomem:
  weft__free(s->server_name);
  weft__free(s);
  return WEFT_ENOMEM;
}

int weft_stream_from_fd(weft_stream **out, int fd,
                        const weft_stream_opts *opts) {
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  if (out == NULL)
    return WEFT_EINVAL;
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
    return WEFT_EBADF;
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
      type != SOCK_STREAM)
    return WEFT_EINVAL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK)))
    return -errno;
  return weft__stream_new(out, loop, fd, opts);
}

static void destroy(weft_stream *s) {
  weft__obj_del(s->loop);
  weft__free(s->server_name);
  weft__free(s);
}

void weft__stream_release(weft_stream *s, bool reset) {
  if (s->released)
    return;
  s->released = true;
  s->notify_fn = NULL;
  weft__io_del(&s->io);
  if (s->tls != NULL) {
    s->tls->vt->free(s->tls);
    s->tls = NULL;
  }
  s->tp = NULL;
  buf_free(&s->rbuf);
  buf_free(&s->wbuf);
  if (reset) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(s->fd);
  s->fd = -1;
  /* The woken tasks see `released` and return WEFT_ECANCELED without
   * touching anything else; the memory stays until the last one leaves. */
  weft__waiters_complete_all(&s->io_waiters, WEFT_ECANCELED);
  weft__waiters_complete_all(&s->drainers, WEFT_ECANCELED);
}

int weft__stream_leave(weft_stream *s, int rc) {
  assert(s->busy > 0);
  s->busy--;
  if (s->released) {
    if (s->busy == 0)
      destroy(s);
    return rc < 0 ? WEFT_ECANCELED : rc;
  }
  return rc;
}

/* Frees at once: the socket side now, the memory when no task is inside a
 * call any more. */
static void free_now(weft_stream *s, bool reset) {
  if (s->tls != NULL && !reset && s->werr == 0 && !s->shut) {
    /* A best-effort close_notify: one try, never a wait. */
    int want;
    (void)s->tls->vt->shutdown(s->tls, &want);
  }
  weft__stream_release(s, reset);
  if (s->busy == 0)
    destroy(s);
}

void weft_stream_free(weft_stream *s) {
  if (s == NULL || s->released)
    return;
  free_now(s, false);
}

void weft_stream_abort(weft_stream *s) {
  if (s == NULL || s->released)
    return;
  free_now(s, true);
}

/* Common entry checks of calls that may suspend. */
#define ENTER(s)                                                               \
  WEFT__NEED_TASK(t_);                                                         \
  if ((s) == NULL)                                                             \
    return WEFT_EINVAL;                                                        \
  if ((s)->loop != t_->loop)                                                   \
    return WEFT_EWRONGLOOP;                                                    \
  if ((s)->released)                                                           \
  return WEFT_ECANCELED

int weft_stream_close(weft_stream *s) {
  if (s == NULL)
    return 0;
  WEFT__NEED_TASK(t);
  if (s->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (s->released)
    return 0;
  weft__stream_enter(s);
  int rc = 0;
  bool reset = false;
  weft_timeout scope;
  weft_timeout_enter(&scope, s->close_timeout);
  if (weft__stream_wqueued(s) > 0)
    rc = s->werr != 0 ? s->werr : weft__stream_wait_drain(s, 0);
  if (rc == 0 && s->werr == 0 && s->tls != NULL && !s->shut && !s->released) {
    /* The close_notify, so the peer can tell our end from a truncation. A
     * peer that never reads cannot hold us past the close timeout. */
    for (;;) {
      int want = 0;
      int r = s->tls->vt->shutdown(s->tls, &want);
      if (r != WEFT_EAGAIN)
        break;
      weft__stream_spent(s, want);
      if (weft__stream_wait_io(s, want) != 0)
        break;
    }
  }
  (void)weft_timeout_exit(&scope);
  if (rc != 0 && !s->released) {
    /* Queued bytes could not go: the peer must not take the truncated
     * stream for a complete one. */
    reset = true;
  }
  if (!s->released)
    weft__stream_release(s, reset);
  s->busy--;
  if (s->busy == 0)
    destroy(s);
  return rc;
}

/* ---- reading ---- */

/* One attempt to read more into the stream's buffer. Returns 0 (bytes
 * came), WEFT_EAGAIN (wait for s->rwant), or the sticky end / error. */
static int read_more(weft_stream *s, size_t need) {
  if (s->rerr != 0)
    return s->rerr;
  if (!weft__stream_ready(s, s->rwant) && !weft__stream_rpending(s))
    return WEFT_EAGAIN;
  size_t room = need > READ_CHUNK ? need : READ_CHUNK;
  int rc = buf_reserve(&s->rbuf, room);
  if (rc != 0)
    return rc;
  int want = 0;
  ssize_t n = s->tp->vt->read(s->tp, s->rbuf.data + s->rbuf.end,
                              s->rbuf.cap - s->rbuf.end, &want);
  if (n > 0) {
    s->rbuf.end += (size_t)n;
    s->rwant = WEFT__WANT_READ;
    return 0;
  }
  if (n == WEFT_EAGAIN) {
    weft__stream_spent(s, want);
    s->rwant = want;
    return WEFT_EAGAIN;
  }
  if (n == WEFT_ENOMEM)
    return WEFT_ENOMEM;
  s->rerr = (int)n;
  return s->rerr;
}

/* Waits for the read side's readiness. An empty buffer is given back first:
 * a stream parked in a read holds no buffer memory. */
static int read_wait(weft_stream *s) {
  if (weft__buf_len(&s->rbuf) == 0 && s->rbuf.data != NULL)
    buf_free(&s->rbuf);
  return weft__stream_wait_io(s, s->rwant);
}

/* Reads until at least `min` bytes are buffered. Returns 0 or an error
 * (with what arrived still buffered). */
static int fill(weft_stream *s, size_t min) {
  while (weft__buf_len(&s->rbuf) < min) {
    int rc = read_more(s, min - weft__buf_len(&s->rbuf));
    if (rc == WEFT_EAGAIN)
      rc = read_wait(s);
    if (rc != 0)
      return rc;
    if (s->released)
      return WEFT_ECANCELED;
  }
  return 0;
}

int weft__stream_fill(weft_stream *s, size_t min) { return fill(s, min); }

#define ENTER_READ(s)                                                          \
  ENTER(s);                                                                    \
  if ((s)->reading)                                                            \
    return WEFT_EBUSY;                                                         \
  (s)->reading = true;                                                         \
  weft__stream_enter(s)

static ssize_t leave_read(weft_stream *s, ssize_t rc) {
  s->reading = false;
  bool gone = s->released;
  (void)weft__stream_leave(s, 0); /* may free s */
  return gone && rc < 0 ? WEFT_ECANCELED : rc;
}

static void take(weft_stream *s, void *buf, size_t n) {
  memcpy(buf, s->rbuf.data + s->rbuf.start, n);
  buf_consume(&s->rbuf, n);
  s->nread += n;
}

static ssize_t read_some(weft_stream *s, void *buf, size_t len) {
  for (;;) {
    size_t have = weft__buf_len(&s->rbuf);
    if (have > 0) {
      size_t n = have < len ? have : len;
      take(s, buf, n);
      return (ssize_t)n;
    }
    if (s->rerr != 0)
      return s->rerr;
    if (len >= DIRECT_READ &&
        (weft__stream_ready(s, s->rwant) || weft__stream_rpending(s))) {
      /* Nothing buffered: read straight into the caller's memory. */
      int want = 0;
      ssize_t n = s->tp->vt->read(s->tp, buf, len, &want);
      if (n > 0) {
        s->rwant = WEFT__WANT_READ;
        s->nread += (size_t)n;
        return n;
      }
      if (n == WEFT_EAGAIN) {
        weft__stream_spent(s, want);
        s->rwant = want;
      } else {
        s->rerr = (int)n;
        continue;
      }
    } else {
      int rc = read_more(s, 1);
      if (rc == 0)
        continue;
      if (rc != WEFT_EAGAIN)
        return rc;
    }
    int rc = read_wait(s);
    if (rc != 0)
      return rc;
    if (s->released)
      return WEFT_ECANCELED;
  }
}

ssize_t weft_stream_read(weft_stream *s, void *buf, size_t len) {
  ENTER_READ(s);
  ssize_t rc = len == 0 ? 0 : read_some(s, buf, len);
  return leave_read(s, rc);
}

int weft_stream_read_exactly(weft_stream *s, void *buf, size_t n) {
  ENTER_READ(s);
  int rc = fill(s, n);
  if (rc == 0)
    take(s, buf, n);
  return (int)leave_read(s, rc);
}

/* Finds delim in the first `limit` buffered bytes, starting the search at
 * `from`. Returns the length through the delimiter, or 0. */
static size_t find_delim(const weft_stream *s, const void *delim, size_t dlen,
                         size_t from, size_t limit) {
  size_t have = weft__buf_len(&s->rbuf);
  if (have > limit)
    have = limit;
  if (have < dlen || from > have - dlen)
    return 0;
  const char *base = s->rbuf.data + s->rbuf.start;
  const char *p = memmem(base + from, have - from, delim, dlen);
  return p ? (size_t)(p - base) + dlen : 0;
}

/* Reads until delim is buffered within `limit` bytes. Returns the length
 * through it (> 0), WEFT_ELIMIT, or the end / error. */
static ssize_t until(weft_stream *s, const void *delim, size_t dlen,
                     size_t limit) {
  size_t from = 0;
  for (;;) {
    size_t n = find_delim(s, delim, dlen, from, limit);
    if (n > 0)
      return (ssize_t)n;
    size_t have = weft__buf_len(&s->rbuf);
    if (have >= limit)
      return WEFT_ELIMIT;
    /* The next search starts where a delimiter split across two reads
     * could begin. */
    from = have >= dlen ? have - dlen + 1 : 0;
    int rc = fill(s, have + 1);
    if (rc != 0)
      return rc;
  }
}

ssize_t weft_stream_read_until(weft_stream *s, const void *delim, size_t dlen,
                               void *buf, size_t cap) {
  if (delim == NULL || dlen == 0 || (buf == NULL && cap > 0))
    return WEFT_EINVAL;
  ENTER_READ(s);
  ssize_t rc = until(s, delim, dlen, cap);
  if (rc > 0)
    take(s, buf, (size_t)rc);
  return leave_read(s, rc);
}

ssize_t weft_stream_readline(weft_stream *s, char *buf, size_t cap) {
  if (buf == NULL || cap < 2)
    return WEFT_EINVAL;
  ENTER_READ(s);
  ssize_t rc = until(s, "\n", 1, cap - 1);
  if (rc == WEFT_EOF && weft__buf_len(&s->rbuf) > 0)
    rc = (ssize_t)weft__buf_len(&s->rbuf); /* the last line, unterminated */
  if (rc > 0) {
    take(s, buf, (size_t)rc);
    buf[rc] = '\0';
  }
  return leave_read(s, rc);
}

ssize_t weft_stream_read_to_eof(weft_stream *s, void *buf, size_t cap) {
  if (buf == NULL && cap > 0)
    return WEFT_EINVAL;
  ENTER_READ(s);
  ssize_t rc;
  for (;;) {
    size_t have = weft__buf_len(&s->rbuf);
    if (have > cap) {
      rc = WEFT_ELIMIT;
      break;
    }
    int r = fill(s, have + 1);
    if (r == WEFT_EOF) {
      rc = (ssize_t)weft__buf_len(&s->rbuf);
      if (rc > 0)
        take(s, buf, (size_t)rc);
      break;
    }
    if (r != 0) {
      rc = r;
      break;
    }
  }
  return leave_read(s, rc);
}

int weft_stream_peek(weft_stream *s, size_t min, const void **data,
                     size_t *len) {
  if (data == NULL || len == NULL)
    return WEFT_EINVAL;
  ENTER_READ(s);
  int rc = min > 0 ? fill(s, min) : 0;
  if (!s->released) {
    *data = s->rbuf.data + s->rbuf.start;
    *len = weft__buf_len(&s->rbuf);
  } else {
    *data = NULL;
    *len = 0;
  }
  return (int)leave_read(s, rc);
}

int weft_stream_consume(weft_stream *s, size_t n) {
  if (s == NULL || s->released || n > weft__buf_len(&s->rbuf))
    return WEFT_EINVAL;
  buf_consume(&s->rbuf, n);
  s->nread += n;
  return 0;
}

size_t weft_stream_buffered(const weft_stream *s) {
  return weft__buf_len(&s->rbuf);
}

/* ---- writing ---- */

/* Where a write is in the caller's gather list. */
typedef struct cursor {
  const struct iovec *iov;
  int n;
  int i;
  size_t off;
  size_t left; /* bytes not yet sent or queued */
} cursor;

static void cursor_advance(cursor *c, size_t k) {
  c->left -= k;
  while (k > 0) {
    size_t piece = c->iov[c->i].iov_len - c->off;
    if (k < piece) {
      c->off += k;
      return;
    }
    k -= piece;
    c->i++;
    c->off = 0;
  }
  while (c->i < c->n && c->iov[c->i].iov_len == 0)
    c->i++;
}

/* Accounts for one write of the queue's first `queued` bytes followed by
 * the caller's: n bytes went, or the socket is full (WEFT_EAGAIN: wait for
 * `want`), or it failed (sticky). Returns whether the socket may take more. */
static bool wrote(weft_stream *s, cursor *c, ssize_t n, int want,
                  size_t queued) {
  if (n == WEFT_EAGAIN) {
    weft__stream_spent(s, want);
    s->wwant = want;
    return false;
  }
  if (n < 0) {
    s->werr = (int)n;
    return false;
  }
  s->wwant = WEFT__WANT_WRITE;
  size_t from_q = (size_t)n < queued ? (size_t)n : queued;
  buf_consume(&s->wbuf, from_q);
  cursor_advance(c, (size_t)n - from_q);
  s->nwritten += (size_t)n - from_q;
  return true;
}

/* Sends the queue and then the caller's bytes in one system call, as far as
 * the socket takes them. Returns 0 or the write error (sticky). */
static int send_now(weft_stream *s, cursor *c) {
  while (c->left > 0 && s->werr == 0 && weft__stream_ready(s, s->wwant)) {
    struct iovec iov[IOV_BATCH];
    int k = 0;
    size_t queued = weft__buf_len(&s->wbuf);
    if (queued > 0)
      iov[k++] = (struct iovec){s->wbuf.data + s->wbuf.start, queued};
    for (int i = c->i; i < c->n && k < IOV_BATCH; i++) {
      size_t off = i == c->i ? c->off : 0;
      if (c->iov[i].iov_len > off)
        iov[k++] = (struct iovec){(char *)c->iov[i].iov_base + off,
                                  c->iov[i].iov_len - off};
    }
    int want = 0;
    ssize_t n = s->tp->vt->writev(s->tp, iov, k, &want);
    if (!wrote(s, c, n, want, queued))
      break;
  }
  return s->werr;
}

/* Copies up to `room` of the caller's bytes into the queue. */
static int queue_some(weft_stream *s, cursor *c, size_t room) {
  size_t k = c->left < room ? c->left : room;
  int rc = buf_reserve(&s->wbuf, k);
  if (rc != 0)
    return rc;
  size_t done = 0;
  int i = c->i;
  size_t off = c->off;
  while (done < k) {
    size_t piece = c->iov[i].iov_len - off;
    if (piece > k - done)
      piece = k - done;
    memcpy(s->wbuf.data + s->wbuf.end, (char *)c->iov[i].iov_base + off, piece);
    s->wbuf.end += piece;
    done += piece;
    i++;
    off = 0;
  }
  cursor_advance(c, k);
  s->nwritten += k;
  size_t q = weft__stream_wqueued(s);
  if (q > s->peak)
    s->peak = q;
  return 0;
}

static int write_iov(weft_stream *s, cursor *c) {
  while (c->left > 0) {
    if (s->released)
      return WEFT_ECANCELED;
    if (s->werr != 0)
      return s->werr;
    if (s->shut || s->shutting)
      return WEFT_EPIPE;
    size_t q = weft__stream_wqueued(s);
    if (q >= s->high) {
      /* Backpressure: nothing more is queued until the peer has taken
       * enough. */
      int rc = weft__stream_wait_drain(s, s->low);
      if (rc != 0)
        return rc;
      continue;
    }
    int rc = send_now(s, c);
    if (rc != 0)
      return rc;
    if (c->left == 0)
      break;
    q = weft__stream_wqueued(s);
    if (q < s->high) {
      rc = queue_some(s, c, s->high - q);
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}

#define ENTER_WRITE(s)                                                         \
  ENTER(s);                                                                    \
  if ((s)->writing)                                                            \
    return WEFT_EBUSY;                                                         \
  (s)->writing = true;                                                         \
  weft__stream_enter(s)

static int leave_write(weft_stream *s, int rc) {
  s->writing = false;
  return weft__stream_leave(s, rc);
}

int weft_stream_writev(weft_stream *s, const struct iovec *iov, int iovcnt) {
  if (iovcnt < 0 || (iov == NULL && iovcnt > 0))
    return WEFT_EINVAL;
  ENTER_WRITE(s);
  cursor c = {.iov = iov, .n = iovcnt};
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > SIZE_MAX - c.left) {
      c.left = 0;
      return leave_write(s, WEFT_EINVAL);
    }
    c.left += iov[i].iov_len;
  }
  cursor_advance(&c, 0);
  int rc;
  if (c.left == 0)
    rc = s->werr != 0 ? s->werr : (s->shut ? WEFT_EPIPE : 0);
  else
    rc = write_iov(s, &c);
  return leave_write(s, rc);
}

int weft_stream_write(weft_stream *s, const void *data, size_t len) {
  struct iovec iov = {(void *)data, len};
  return weft_stream_writev(s, &iov, 1);
}

int weft_stream_drain(weft_stream *s) {
  ENTER(s);
  weft__stream_enter(s);
  return weft__stream_leave(s, weft__stream_wait_drain(s, s->low));
}

int weft_stream_flush(weft_stream *s) {
  ENTER(s);
  weft__stream_enter(s);
  return weft__stream_leave(s, weft__stream_wait_drain(s, 0));
}

size_t weft_stream_write_buffered(const weft_stream *s) {
  return s->released ? 0 : weft__stream_wqueued(s);
}

int weft_stream_shutdown(weft_stream *s) {
  ENTER(s);
  if (s->shut)
    return 0;
  if (s->writing || s->shutting)
    return WEFT_EBUSY;
  weft__stream_enter(s);
  s->shutting = true;
  int rc = weft__stream_wait_drain(s, 0);
  while (rc == 0) {
    int want = 0;
    rc = s->tp->vt->shutdown(s->tp, &want);
    if (rc != WEFT_EAGAIN)
      break;
    weft__stream_spent(s, want);
    rc = weft__stream_wait_io(s, want);
  }
  if (!s->released) {
    s->shutting = false;
    if (rc == 0) {
      s->shut = true;
      if (s->tls != NULL && shutdown(s->fd, SHUT_WR) != 0 && errno != ENOTCONN)
        rc = -errno;
    }
  }
  return weft__stream_leave(s, rc);
}

/* ---- addresses, options, counters ---- */

int weft_stream_peer_addr(const weft_stream *s, weft_addr *out) {
  if (s == NULL || out == NULL || s->released)
    return WEFT_EINVAL;
  memset(out, 0, sizeof *out);
  socklen_t len = sizeof out->u;
  if (getpeername(s->fd, &out->u.sa, &len) != 0)
    return -errno;
  out->len = len;
  return 0;
}

int weft_stream_local_addr(const weft_stream *s, weft_addr *out) {
  if (s == NULL || out == NULL || s->released)
    return WEFT_EINVAL;
  memset(out, 0, sizeof *out);
  socklen_t len = sizeof out->u;
  if (getsockname(s->fd, &out->u.sa, &len) != 0)
    return -errno;
  out->len = len;
  return 0;
}

static bool is_tcp(const weft_stream *s) {
  return s->family == AF_INET || s->family == AF_INET6;
}

int weft_stream_set_nodelay(weft_stream *s, bool on) {
  if (s == NULL || s->released)
    return WEFT_EINVAL;
  if (!is_tcp(s))
    return WEFT_ENOTSUP;
  int v = on;
  if (setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
    return -errno;
  return 0;
}

int weft_stream_set_keepalive(weft_stream *s, bool on, double idle) {
  if (s == NULL || s->released)
    return WEFT_EINVAL;
  if (!is_tcp(s))
    return WEFT_ENOTSUP;
  int v = on;
  if (on) {
    if (!(idle >= 1) || idle > INT_MAX)
      return WEFT_EINVAL;
    int secs = (int)idle;
    int intvl = secs / 3 > 0 ? secs / 3 : 1;
    int cnt = 3;
    if (setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof secs) ||
        setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) ||
        setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt))
      return -errno;
  }
  if (setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v) != 0)
    return -errno;
  return 0;
}

int weft_stream_fd(const weft_stream *s) {
  return s == NULL || s->released ? -1 : s->fd;
}

void weft_stream_info_get(const weft_stream *s, weft_stream_info *out) {
  memset(out, 0, sizeof *out);
  out->bytes_read = s->nread;
  out->bytes_written = s->nwritten;
  out->write_peak = s->peak;
  if (s->released)
    return;
  out->read_buffered = weft__buf_len(&s->rbuf);
  out->write_buffered = weft__stream_wqueued(s);
  out->tls = s->tls != NULL;
  out->eof = s->rerr == WEFT_EOF;
  out->shut = s->shut;
}

/* ---- waiting on a bare fd ---- */

typedef struct fd_wait {
  weft__waiter w;
  short got;
} fd_wait;

static void on_fd(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  fd_wait *fw = arg;
  fw->got = what;
  if (!fw->w.done)
    weft__waiter_complete(&fw->w, 0);
}

int weft__wait_fd(int fd, short events) {
  WEFT__NEED_TASK(t);
  int rc = weft__checkpoint(t);
  if (rc != 0)
    return rc;
  fd_wait fw = {0};
  weft__waiter_init(&fw.w, t);
  struct event *ev = event_new(t->loop->base, fd, events, on_fd, &fw);
  if (ev == NULL)
    return WEFT_ENOMEM;
  if (event_add(ev, NULL) != 0) {
    event_free(ev);
    return WEFT_ENOMEM;
  }
  do
    rc = weft__park("wait_fd", NULL, 0);
  while (rc == 0 && !fw.w.done);
  event_free(ev);
  return fw.w.done ? 0 : rc;
}

/* ---- without a task: try_read, try_writev, notify ---- */

ssize_t weft_stream_try_read(weft_stream *s, void *buf, size_t len) {
  if (s == NULL || (buf == NULL && len > 0))
    return WEFT_EINVAL;
  if (s->released)
    return WEFT_ECANCELED;
  if (s->loop != weft__loop())
    return WEFT_EWRONGLOOP;
  if (s->reading)
    return WEFT_EBUSY;
  if (len == 0)
    return 0;
  size_t have = weft__buf_len(&s->rbuf);
  if (have > 0) {
    size_t n = have < len ? have : len;
    take(s, buf, n);
    if (weft__buf_len(&s->rbuf) == 0)
      buf_free(&s->rbuf); /* the caller keeps its own buffer */
    return (ssize_t)n;
  }
  if (s->rerr != 0)
    return s->rerr;
  if (!weft__stream_ready(s, s->rwant) && !weft__stream_rpending(s))
    return WEFT_EAGAIN;
  int want = 0;
  ssize_t n = s->tp->vt->read(s->tp, buf, len, &want);
  if (n > 0) {
    s->rwant = WEFT__WANT_READ;
    weft__stream_spent(s, want);
    s->nread += (size_t)n;
    return n;
  }
  if (n == WEFT_EAGAIN) {
    weft__stream_spent(s, want);
    s->rwant = want;
    return WEFT_EAGAIN;
  }
  if (n == WEFT_ENOMEM)
    return n;
  s->rerr = (int)n;
  return n;
}

int weft_stream_try_writev(weft_stream *s, const struct iovec *iov,
                           int iovcnt) {
  if (s == NULL || iovcnt < 0 || (iov == NULL && iovcnt > 0))
    return WEFT_EINVAL;
  if (s->released)
    return WEFT_ECANCELED;
  if (s->loop != weft__loop())
    return WEFT_EWRONGLOOP;
  if (s->writing)
    return WEFT_EBUSY;
  if (s->werr != 0)
    return s->werr;
  if (s->shut || s->shutting)
    return WEFT_EPIPE;
  cursor c = {.iov = iov, .n = iovcnt};
  if (iovcnt == 1 && iov[0].iov_len > 0 && weft__buf_len(&s->wbuf) == 0 &&
      weft__stream_ready(s, s->wwant)) {
    /* The common case (one buffer, nothing queued): send_now's first
     * round without its gather list. */
    int want = 0;
    ssize_t n = s->tp->vt->writev(s->tp, iov, 1, &want);
    if (n == (ssize_t)iov[0].iov_len) {
      /* All of it went: only the count to keep. */
      s->wwant = WEFT__WANT_WRITE;
      s->nwritten += (size_t)n;
      return 0;
    }
    c.left = iov[0].iov_len;
    (void)wrote(s, &c, n, want, 0);
  } else {
    for (int i = 0; i < iovcnt; i++) {
      if (iov[i].iov_len > SIZE_MAX - c.left)
        return WEFT_EINVAL;
      c.left += iov[i].iov_len;
    }
    cursor_advance(&c, 0);
  }
  if (c.left == 0)
    return 0;
  int rc = send_now(s, &c);
  if (rc == 0 && c.left > 0) {
    /* No high-water mark here: the caller bounds what it queues. */
    rc = queue_some(s, &c, c.left);
  }
  return rc;
}

int weft_stream_notify(weft_stream *s, int events, weft_stream_notify_fn fn,
                       void *arg) {
  if (s == NULL || (events != 0 && fn == NULL) ||
      (events & ~(WEFT_STREAM_READABLE | WEFT_STREAM_DRAINED)) != 0)
    return WEFT_EINVAL;
  if (s->released)
    return WEFT_ECANCELED;
  s->notify_fn = events != 0 ? fn : NULL;
  s->notify_arg = arg;
  s->notify_events = events;
  if (events == 0)
    return 0;
  /* Readiness already there raises no new edge: have the callback run once
   * more at the next turn, where the check is made. */
  if (notify_ready(s) != 0)
    weft__io_kick(&s->io);
  return 0;
}
