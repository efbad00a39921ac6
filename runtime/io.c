/* weft — raw fd readiness: an epoll set of the loop's own, nested in
 * libevent's, for every socket weft watches (streams, listeners, UDP
 * endpoints, connects under way, c-ares's sockets): a busy loop sees them
 * all every turn, and streams get the kernel's exact flags.
 *
 * libevent folds EPOLLHUP and EPOLLERR into EV_READ|EV_WRITE, which look like
 * any other edge. A stream reading edge-triggered then cannot trust a short
 * read to mean "the socket is empty" — a reset that came with the data would
 * raise no new edge — and pays one more recv() that says EAGAIN per wait. With
 * the raw flags it knows: a short read empties the socket unless the edge
 * carried EPOLLRDHUP, EPOLLHUP or EPOLLERR (Tokio reads the same way). On a
 * TCP echo server that one recv was the whole difference to libuv.
 *
 * The set is one more fd in libevent's epoll, watched level-triggered: when
 * any of its fds is ready, libevent calls io_ready, which collects the ready
 * fds with a non-blocking epoll_wait and calls each one's callback. A loop
 * that is busy polls the set itself first (weft__io_poll, from poll_io), so
 * a busy turn costs that one epoll_wait, not libevent's and then the set's.
 * The set is made with the loop, so fd counts stay flat whenever the first
 * socket comes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

/* Ready fds collected per epoll_wait. More stay ready and come next turn
 * (the set's own event is level-triggered), so a burst cannot starve the
 * run queue. */
#define IO_BATCH 64

struct weft__ioset {
  int epfd;
  struct event *ev;
  struct epoll_event batch[IO_BATCH];
  int n, i;  /* the batch being dispatched, and where */
  bool busy; /* poll_io polls the set before libevent's (weft__io_poll) */
};

/* Collects the ready fds without blocking and calls each one's callback. */
static int poll_set(struct weft__ioset *set) {
  int n;
  do
    n = epoll_wait(set->epfd, set->batch, IO_BATCH, 0);
  while (n < 0 && errno == EINTR);
  set->n = n > 0 ? n : 0;
  for (set->i = 0; set->i < set->n; set->i++) {
    weft__io *io = set->batch[set->i].data.ptr;
    if (io != NULL) /* NULL: removed by an earlier callback of this batch */
      io->cb(io, set->batch[set->i].events);
  }
  n = set->n;
  set->n = set->i = 0;
  return n;
}

/* The set turns busy when libevent's wait found it with several fds ready
 * (a loop running behind its sockets, as under load; one fd is what a
 * ping-pong with one peer looks like), and stays busy while the loop's own
 * polls find any. */
int weft__io_poll(weft_loop *loop) {
  int n = poll_set(loop->io);
  loop->io->busy = n > 0;
  return n;
}

bool weft__io_busy(const weft_loop *loop) { return loop->io->busy; }

static void io_ready(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_loop *loop = arg;
  loop->io->busy = poll_set(loop->io) > 1;
}

int weft__io_init(weft_loop *loop) {
  struct weft__ioset *set = weft__calloc(1, sizeof *set);
  if (set == NULL)
    return WEFT_ENOMEM;
  set->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (set->epfd < 0) {
    int rc = -errno;
    weft__free(set);
    return rc;
  }
  set->ev =
      event_new(loop->base, set->epfd, EV_READ | EV_PERSIST, io_ready, loop);
  if (set->ev == NULL || event_add(set->ev, NULL) != 0) {
    if (set->ev != NULL)
      event_free(set->ev);
    close(set->epfd);
    weft__free(set);
    return WEFT_ENOMEM;
  }
  loop->io = set;
  return 0;
}

int weft__io_add(weft_loop *loop, weft__io *io, int fd, uint32_t events) {
  io->loop = loop;
  io->fd = fd;
  weft__list_init(&io->kick);
  struct epoll_event ev = {.events = events, .data.ptr = io};
  if (epoll_ctl(loop->io->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    return errno == ENOMEM || errno == ENOSPC ? WEFT_ENOMEM : -errno;
  return 0;
}

int weft__io_mod(weft__io *io, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = io};
  if (epoll_ctl(io->loop->io->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0)
    return errno == ENOMEM || errno == ENOSPC ? WEFT_ENOMEM : -errno;
  return 0;
}

void weft__io_del(weft__io *io) {
  weft_loop *loop = io->loop;
  if (loop == NULL)
    return;
  struct weft__ioset *set = loop->io;
  /* Before the fd is closed: a dup of it elsewhere would keep it in the set. */
  (void)epoll_ctl(set->epfd, EPOLL_CTL_DEL, io->fd, NULL);
  /* The batch being dispatched may still name io further on. */
  for (int j = set->i + 1; j < set->n; j++)
    if (set->batch[j].data.ptr == io)
      set->batch[j].data.ptr = NULL;
  weft__list_remove(&io->kick);
  io->loop = NULL;
}

void weft__io_kick(weft__io *io) {
  if (io->loop != NULL && !weft__list_linked(&io->kick))
    weft__list_push_back(&io->loop->io_kicked, &io->kick);
}

bool weft__io_kicks_pending(const weft_loop *loop) {
  return !weft__list_empty(&loop->io_kicked);
}

void weft__io_run_kicks(weft_loop *loop) {
  /* Only those kicked before this pass: a callback that kicks again runs at
   * the next turn, not in a loop here. */
  weft__list pass;
  weft__list_init(&pass);
  weft__list_splice(&pass, &loop->io_kicked);
  weft__list *n;
  while ((n = weft__list_pop_front(&pass)) != NULL) {
    weft__io *io = weft__container_of(n, weft__io, kick);
    io->cb(io, 0);
  }
}

void weft__io_fini(weft_loop *loop) {
  struct weft__ioset *set = loop->io;
  if (set == NULL)
    return;
  event_free(set->ev);
  close(set->epfd);
  weft__free(set);
  loop->io = NULL;
}
