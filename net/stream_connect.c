/* weft — connecting streams: one address, a Unix path, or a list of
 * addresses raced by Happy Eyeballs (RFC 8305), and names through DNS.
 *
 * Happy Eyeballs runs in the calling task, without helper tasks: every
 * attempt is a non-blocking socket watched in the loop's own epoll set
 * until it connects or fails, which marks it finished and wakes the task; the
 * task sleeps until the next attempt is due or one finishes. The first socket
 * to connect becomes the stream; the others are closed before the call returns,
 * so a cancelled or failed connect leaves no socket behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/stream.h>
#include <weft/tls.h>

#include "stream_int.h"

#ifdef WEFT_HAVE_DNS
#include <weft/dns.h>
#endif

#define DEFAULT_ATTEMPT_DELAY 0.25
/* Addresses of one name tried at most (more are rarely useful, and the
 * attempts live in one allocation). */
#define MAX_ADDRS 32

static void copy_opts(weft_stream_opts *o, const weft_stream_opts *opts) {
  memset(o, 0, sizeof *o);
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof *o ? opts->size : sizeof *o;
    memcpy(o, opts, n);
  }
  o->size = sizeof *o;
}

/* ---- attempts ---- */

typedef struct attempt {
  const weft_addr *addr;
  int fd;
  bool watched; /* io is in the loop's set, until the connect is over */
  weft__io io;
  weft_task *task;
  int err;      /* 0 connected, else why not */
  bool started; /* a connect is under way or over */
  bool done;    /* its outcome is known */
  bool seen;    /* the outcome has been acted on */
} attempt;

static void attempt_unwatch(attempt *a) {
  if (a->watched) {
    weft__io_del(&a->io);
    a->watched = false;
  }
}

static void attempt_close(attempt *a) {
  attempt_unwatch(a);
  if (a->fd >= 0) {
    close(a->fd);
    a->fd = -1;
  }
}

static void attempt_finish(attempt *a, int err) {
  a->done = true;
  a->err = err;
  if (err != 0)
    attempt_close(a);
}

/* The socket turned writable, or failed: the connect is over. */
static void on_connect(weft__io *io, uint32_t events) {
  (void)events;
  attempt *a = weft__container_of(io, attempt, io);
  attempt_unwatch(a);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  attempt_finish(a, -err);
  weft__wake(a->task, 0);
}

/* Starts a non-blocking connect. The outcome may be known at once (a Unix
 * socket, a refused port on some systems, an error). */
static void attempt_start(attempt *a, weft_loop *loop,
                          const weft_stream_opts *o) {
  a->started = true;
  a->fd = socket(a->addr->u.sa.sa_family,
                 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (a->fd < 0) {
    attempt_finish(a, -errno);
    return;
  }
  if (o->local != NULL && o->local->len > 0) {
    if (a->addr->u.sa.sa_family == o->local->u.sa.sa_family &&
        bind(a->fd, &o->local->u.sa, o->local->len) != 0) {
      attempt_finish(a, -errno);
      return;
    }
  }
  int r;
  do
    r = connect(a->fd, &a->addr->u.sa, a->addr->len);
  while (r != 0 && errno == EINTR);
  if (r == 0) {
    attempt_finish(a, 0);
    return;
  }
  if (errno != EINPROGRESS) {
    attempt_finish(a, -errno);
    return;
  }
  /* In the loop's own set, as streams are: a loop they keep busy sees the
   * connect end at its next turn. */
  a->io.cb = on_connect;
  int rc = weft__io_add(loop, &a->io, a->fd, EPOLLOUT);
  if (rc != 0)
    attempt_finish(a, rc);
  else
    a->watched = true;
}

/* RFC 8305 section 4: alternate the families, starting with the first
 * address's, each family keeping its own order. */
static void interleave(const weft_addr *in, size_t n, const weft_addr **out) {
  int first = in[0].u.sa.sa_family;
  size_t i = 0, j = 0, k = 0;
  bool want_first = true;
  while (k < n) {
    /* i scans the first family, j the others. */
    while (i < n && in[i].u.sa.sa_family != first)
      i++;
    while (j < n && in[j].u.sa.sa_family == first)
      j++;
    if (want_first && i < n)
      out[k++] = &in[i++];
    else if (!want_first && j < n)
      out[k++] = &in[j++];
    else if (i < n)
      out[k++] = &in[i++];
    else
      out[k++] = &in[j++];
    want_first = !want_first;
  }
}

static uint64_t delay_ns(const weft_stream_opts *o) {
  double d = o->attempt_delay > 0 ? o->attempt_delay : DEFAULT_ATTEMPT_DELAY;
  return (uint64_t)(d * 1e9);
}

/* Races connects to addrs[0..n). Returns 0 with the connected socket in
 * *fd_out, or the error of the first address when all failed. */
static int race(weft_task *t, const weft_addr *addrs, size_t n,
                const weft_stream_opts *o, int *fd_out) {
  weft_loop *loop = t->loop;
  attempt *att = weft__calloc(n, sizeof *att);
  const weft_addr **order = weft__calloc(n, sizeof *order);
  if (att == NULL || order == NULL) {
    weft__free(att);
    weft__free(order);
    return WEFT_ENOMEM;
  }
  interleave(addrs, n, order);
  for (size_t i = 0; i < n; i++) {
    att[i].addr = order[i];
    att[i].fd = -1;
    att[i].task = t;
  }
  uint64_t step = delay_ns(o);
  size_t next = 0, active = 0;
  int win = -1, rc = 0;
  uint64_t next_due = 0;
  for (;;) {
    weft__loop_update_time(loop);
    /* Start the next attempt when it is due, or at once when nothing is
     * under way (the previous one failed). */
    if (next < n && (active == 0 || loop->now >= next_due)) {
      attempt_start(&att[next], loop, o);
      next_due = loop->now + step;
      next++;
      active++;
    }
    for (size_t i = 0; i < next; i++) {
      attempt *a = &att[i];
      if (!a->done || a->seen)
        continue;
      a->seen = true;
      active--;
      if (a->err == 0 && win < 0)
        win = (int)i;
    }
    if (win >= 0)
      break;
    if (active == 0 && next < n)
      continue; /* the last one failed at once: start another now */
    if (active == 0) {
      rc = att[0].err; /* every one failed: say why the first did */
      break;
    }
    rc = next < n ? weft__park_until("connect", addrs, next_due)
                  : weft__park("connect", addrs, 0);
    if (rc != 0)
      break;
  }
  for (size_t i = 0; i < n; i++)
    if ((int)i != win)
      attempt_close(&att[i]);
  if (win >= 0) {
    attempt_unwatch(&att[win]);
    *fd_out = att[win].fd;
    rc = 0;
  }
  weft__free(att);
  weft__free(order);
  return rc;
}

/* Makes the stream over a connected fd and runs TLS when asked. */
static int finish(weft_stream **out, weft_loop *loop, int fd,
                  const weft_stream_opts *o, const char *name) {
  weft_stream *s;
  int rc = weft__stream_new(&s, loop, fd, o);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  if (o->tls != NULL) {
    rc = weft_stream_start_tls(s, o->tls,
                               o->server_name ? o->server_name : name);
    if (rc != 0) {
      /* A failed handshake leaves nothing open. */
      weft_stream_free(s);
      return rc;
    }
  }
  *out = s;
  return 0;
}

static int connect_list(weft_stream **out, const weft_addr *addrs, size_t n,
                        const weft_stream_opts *opts, const char *name) {
  WEFT__NEED_TASK(t);
  if (out == NULL || addrs == NULL || n == 0)
    return WEFT_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (addrs[i].len == 0)
      return WEFT_EINVAL;
  weft_stream_opts o;
  copy_opts(&o, opts);
  int rc = weft__checkpoint(t);
  if (rc != 0)
    return rc;
  int fd = -1;
  rc = race(t, addrs, n, &o, &fd);
  if (rc != 0)
    return rc;
  return finish(out, t->loop, fd, &o, name);
}

int weft_stream_connect_addrs(weft_stream **out, const weft_addr *addrs,
                              size_t n, const weft_stream_opts *opts) {
  return connect_list(out, addrs, n, opts, NULL);
}

int weft_stream_connect_addr(weft_stream **out, const weft_addr *addr,
                             const weft_stream_opts *opts) {
  return connect_list(out, addr, addr ? 1 : 0, opts, NULL);
}

int weft_stream_connect_unix(weft_stream **out, const char *path,
                             const weft_stream_opts *opts) {
  weft_addr a;
  int rc = weft_addr_unix(&a, path);
  if (rc != 0)
    return rc;
  return weft_stream_connect_addr(out, &a, opts);
}

/* The one place names become addresses (all of them, IPv6 and IPv4, in the
 * order to try). Numeric addresses need no DNS. */
static int resolve(const char *host, int port, weft_addr *out, size_t max,
                   size_t *n) {
  if (weft_addr_ip(&out[0], host, port) == 0) {
    *n = 1;
    return 0;
  }
#ifdef WEFT_HAVE_DNS
  weft_resolve_opts ro = {.size = sizeof ro, .port = port};
  return weft_resolve(host, &ro, out, max, n);
#else
  (void)max;
  (void)n;
  return WEFT_ENOSYS;
#endif
}

int weft_stream_connect(weft_stream **out, const char *host, int port,
                        const weft_stream_opts *opts) {
  WEFT__NEED_TASK(t);
  (void)t;
  if (out == NULL || host == NULL || port < 0 || port > 65535)
    return WEFT_EINVAL;
  weft_addr *addrs = weft__calloc(MAX_ADDRS, sizeof *addrs);
  if (addrs == NULL)
    return WEFT_ENOMEM;
  size_t n = 0;
  int rc = resolve(host, port, addrs, MAX_ADDRS, &n);
  if (rc == 0) {
    /* A name, not an IP literal, is what TLS checks and sends as SNI. */
    weft_addr probe;
    const char *name = weft_addr_ip(&probe, host, port) == 0 ? NULL : host;
    rc = connect_list(out, addrs, n, opts, name);
  }
  weft__free(addrs);
  return rc;
}
