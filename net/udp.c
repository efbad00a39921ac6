/* weft — UDP endpoints.
 *
 * One non-blocking datagram socket in the loop's own epoll set (weft__io),
 * edge-triggered for both directions, added once when the endpoint is made:
 * waiting never costs an epoll_ctl, and a loop kept busy by its streams
 * still sees a datagram at its next turn. Every call first tries the system
 * call and parks only on EAGAIN. An edge wakes the oldest waiter of its
 * direction; a waiter that got a datagram (or sent one) while others still wait
 * wakes the next one, since more data may already be queued and no new edge
 * would come for it. A woken waiter that finds nothing (another task took it
 * first) parks again at the front, so the order of waiters holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/udp.h>

#include "internal.h"

struct weft_udp {
  weft_loop *loop;
  int fd;
  bool connected;
  weft__io io;        /* in the loop's set */
  weft__list readers; /* weft__waiter, oldest first */
  weft__list writers;
};

static void wake_front(weft__list *head) {
  weft__list *n = weft__list_pop_front(head);
  if (n != NULL)
    weft__waiter_complete(weft__container_of(n, weft__waiter, link), 0);
}

/* An error or hang-up wakes both directions: their calls then say what it
 * is (an ICMP error on a connected socket comes back from recv or send). */
static void on_io(weft__io *io, uint32_t events) {
  weft_udp *u = weft__container_of(io, weft_udp, io);
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
    wake_front(&u->readers);
  if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
    wake_front(&u->writers);
}

static int set_int(int fd, int level, int name, int v) {
  return setsockopt(fd, level, name, &v, sizeof v) == 0 ? 0 : -errno;
}

int weft_udp_new(weft_udp **out, const weft_addr *local,
                 const weft_addr *remote, const weft_udp_opts *opts) {
  if (out == NULL)
    return WEFT_EINVAL;
  *out = NULL;
  weft_loop *loop = weft__tls_loop;
  if (loop == NULL)
    return WEFT_ENOLOOP;
  if ((local == NULL || local->len == 0) &&
      (remote == NULL || remote->len == 0))
    return WEFT_EINVAL;
  int family = weft_addr_family(local && local->len ? local : remote);
  if (local && local->len && remote && remote->len &&
      weft_addr_family(remote) != family)
    return WEFT_EINVAL;
  weft_udp_opts o = {0};
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  weft_udp *u = weft__calloc(1, sizeof *u);
  if (u == NULL)
    return WEFT_ENOMEM;
  u->loop = loop;
  weft__list_init(&u->readers);
  weft__list_init(&u->writers);
  int rc;
  u->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u->fd < 0) {
    rc = -errno;
    goto fail;
  }
  if ((o.reuse_addr &&
       (rc = set_int(u->fd, SOL_SOCKET, SO_REUSEADDR, 1)) != 0) ||
      (o.reuse_port &&
       (rc = set_int(u->fd, SOL_SOCKET, SO_REUSEPORT, 1)) != 0) ||
      (o.broadcast &&
       (rc = set_int(u->fd, SOL_SOCKET, SO_BROADCAST, 1)) != 0) ||
      (o.v6only && family == AF_INET6 &&
       (rc = set_int(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) != 0) ||
      (o.recv_buffer > 0 &&
       (rc = set_int(u->fd, SOL_SOCKET, SO_RCVBUF, o.recv_buffer)) != 0) ||
      (o.send_buffer > 0 &&
       (rc = set_int(u->fd, SOL_SOCKET, SO_SNDBUF, o.send_buffer)) != 0))
    goto fail;
  if (local && local->len && bind(u->fd, &local->u.sa, local->len) != 0) {
    rc = -errno;
    goto fail;
  }
  if (remote && remote->len) {
    /* A UDP connect only records the peer: it never blocks. */
    if (connect(u->fd, &remote->u.sa, remote->len) != 0) {
      rc = -errno;
      goto fail;
    }
    u->connected = true;
  }
  u->io.cb = on_io;
  if ((rc = weft__io_add(loop, &u->io, u->fd, EPOLLIN | EPOLLOUT | EPOLLET)) !=
      0)
    goto fail;
  weft__obj_add(loop);
  *out = u;
  return 0;

fail:
  if (u->fd >= 0)
    close(u->fd);
  weft__free(u);
  return rc;
}

void weft_udp_free(weft_udp *u) {
  if (u == NULL)
    return;
  weft__io_del(&u->io);
  weft__waiters_complete_all(&u->readers, WEFT_ECANCELED);
  weft__waiters_complete_all(&u->writers, WEFT_ECANCELED);
  close(u->fd);
  weft__obj_del(u->loop);
  weft__free(u);
}

/* Parks the calling task on `head` until an edge (or the waiter before it)
 * wakes it. `front`: a waiter that was woken for nothing keeps its place.
 * Returns 0 (try again), the waker's WEFT_ECANCELED when the endpoint was
 * freed (it must not be touched then), or park's cancellation / deadline. */
static int wait_io(weft_task *t, weft_udp *u, weft__list *head, bool front,
                   const char *what) {
  weft__waiter w;
  weft__waiter_init(&w, t);
  if (front)
    weft__list_push_front(head, &w.link);
  else
    weft__list_push_back(head, &w.link);
  int rc;
  do
    rc = weft__park(what, u, 0);
  while (rc == 0 && !w.done);
  if (w.done)
    return w.status;
  weft__list_remove(&w.link);
  return rc;
}

int weft_udp_send_to(weft_udp *u, const void *data, size_t len,
                     const weft_addr *to) {
  WEFT__NEED_TASK(t);
  if (u == NULL || (data == NULL && len > 0))
    return WEFT_EINVAL;
  if (u->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (to != NULL && to->len == 0)
    to = NULL;
  if (to == NULL && !u->connected)
    return WEFT_EINVAL;
  /* Senders already waiting go first; a new one joins the end of the line. */
  bool woken = false;
  if (!weft__list_empty(&u->writers)) {
    int rc = wait_io(t, u, &u->writers, false, "udp send");
    if (rc != 0)
      return rc;
    woken = true;
  }
  for (;;) {
    ssize_t n = sendto(u->fd, data, len, MSG_NOSIGNAL, to ? &to->u.sa : NULL,
                       to ? to->len : 0);
    if (n >= 0) {
      if (!weft__list_empty(&u->writers))
        wake_front(&u->writers);
      return 0;
    }
    int err = errno;
    if (err == EINTR)
      continue;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      if (woken && !weft__list_empty(&u->writers))
        wake_front(&u->writers); /* the room is still there for them */
      return -err;
    }
    int rc = wait_io(t, u, &u->writers, woken, "udp send");
    if (rc != 0)
      return rc;
    woken = true;
  }
}

int weft_udp_send(weft_udp *u, const void *data, size_t len) {
  return weft_udp_send_to(u, data, len, NULL);
}

int weft_udp_recv_from(weft_udp *u, void *buf, size_t cap, weft_addr *from) {
  WEFT__NEED_TASK(t);
  if (u == NULL || (buf == NULL && cap > 0))
    return WEFT_EINVAL;
  if (u->loop != t->loop)
    return WEFT_EWRONGLOOP;
  bool woken = false;
  if (!weft__list_empty(&u->readers)) {
    int rc = wait_io(t, u, &u->readers, false, "udp recv");
    if (rc != 0)
      return rc;
    woken = true;
  }
  for (;;) {
    weft_addr peer;
    memset(&peer, 0, sizeof peer);
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr msg = {.msg_name = &peer.u.ss,
                         .msg_namelen = sizeof peer.u.ss,
                         .msg_iov = &iov,
                         .msg_iovlen = 1};
    /* MSG_TRUNC makes Linux return the datagram's real length, so a cut is
     * seen even when the caller's buffer is exactly full. */
    ssize_t n = recvmsg(u->fd, &msg, MSG_TRUNC);
    if (n >= 0) {
      if (from != NULL) {
        peer.len = msg.msg_namelen;
        *from = peer;
      }
      if (!weft__list_empty(&u->readers))
        wake_front(&u->readers); /* more may be queued: no edge for it */
      if ((msg.msg_flags & MSG_TRUNC) || (size_t)n > cap)
        return WEFT_EMSGSIZE;
      return (int)n;
    }
    int err = errno;
    if (err == EINTR)
      continue;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      /* An ICMP error is consumed by this call; datagrams behind it are
       * still there for the next waiter. */
      if (!weft__list_empty(&u->readers))
        wake_front(&u->readers);
      return -err;
    }
    int rc = wait_io(t, u, &u->readers, woken, "udp recv");
    if (rc != 0)
      return rc;
    woken = true;
  }
}

int weft_udp_recv(weft_udp *u, void *buf, size_t cap) {
  return weft_udp_recv_from(u, buf, cap, NULL);
}

int weft_udp_local_addr(const weft_udp *u, weft_addr *out) {
  if (u == NULL || out == NULL)
    return WEFT_EINVAL;
  memset(out, 0, sizeof *out);
  socklen_t len = sizeof out->u.ss;
  if (getsockname(u->fd, &out->u.sa, &len) != 0)
    return -errno;
  out->len = len;
  return 0;
}

int weft_udp_peer_addr(const weft_udp *u, weft_addr *out) {
  if (u == NULL || out == NULL)
    return WEFT_EINVAL;
  memset(out, 0, sizeof *out);
  if (!u->connected)
    return WEFT_ENOTCONN;
  socklen_t len = sizeof out->u.ss;
  if (getpeername(u->fd, &out->u.sa, &len) != 0)
    return -errno;
  out->len = len;
  return 0;
}

int weft_udp_fd(const weft_udp *u) { return u ? u->fd : -1; }
