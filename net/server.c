/* weft — stream servers: the listener, the accept loop, connection limits,
 * idle timeouts and graceful shutdown (docs/internals/servers.md).
 *
 * Accepting happens in a readiness callback, not in a task: the listening
 * socket sits in the loop's own epoll set (level-triggered, beside its
 * connections, so a loop kept busy by them still accepts at once), the
 * callback accepts a bounded batch, and each connection gets a handler task
 * spawned from there (a spawn never suspends, and the task starts at the
 * loop's next turn). The socket leaves the set - accepting pauses, and the
 * kernel's backlog holds new peers - whenever the server must not take
 * more: at max_connections,
 * during a back-off after EMFILE/ENFILE (a level-triggered listener with no
 * free descriptor would otherwise fire at once, forever), and once closed.
 * Any connection that ends re-evaluates that, so the pause lasts exactly as
 * long as its cause.
 *
 * A server stays allocated while its user holds it or any connection task
 * still runs: weft_server_free() only drops the user's hold (and cancels
 * the handlers), and the last connection frees the memory.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/server.h>
#include <weft/tls.h>

#include "internal.h"

/* Connections accepted per readiness callback before the loop runs other
 * work: bounds the time one busy listener can hold the loop. */
#define ACCEPT_BATCH 64
/* Back-off after running out of descriptors or memory, doubling from the
 * first to the last value while it persists. */
#define BACKOFF_MIN_NS (10 * 1000000ull)
#define BACKOFF_MAX_NS (1000 * 1000000ull)

enum { C_STARTING, C_SERVING, C_CLOSING };

typedef struct conn {
  weft__list link; /* server->conns */
  weft_server *srv;
  weft_task *task; /* valid while linked: unlinked before the task returns */
  int fd;          /* until the stream owns it */
  weft_stream *stream;
  uint64_t last_sig;    /* bytes moved, at the last idle check */
  uint64_t last_active; /* when they last moved (real clock, ns) */
  uint8_t phase;
  bool idled;     /* cancelled by the idle timeout */
  bool cancelled; /* cancelled by a shutdown or a free */
} conn;

struct weft_server {
  weft_loop *loop;
  weft_serve_fn fn;
  weft_server_accept_fn accept_fn; /* or this, without tasks */
  void *arg;
  int fd; /* listening socket, -1 once closed */
  weft_addr addr;
  weft__io listen_io;
  struct event *backoff_ev;
  struct event *sweep_ev;
  bool listening;   /* listen_io is in the loop's set */
  bool backing_off; /* backoff_ev is pending */
  bool sweeping;    /* sweep_ev is added */
  bool closing;
  bool freed;    /* the user let go: the last one out frees it */
  unsigned busy; /* tasks inside weft_server_shutdown */
  uint64_t backoff_ns;
  weft__list conns;
  weft__list drained; /* waiters for conns to become empty */
  size_t nconns;
  weft_server_stats stats;

  /* Options. */
  size_t max_conns;
  uint64_t idle_ns;
  weft_tls_ctx *tls;
  weft_stream_opts sopts;
  bool has_sopts;
  size_t stack_size;

  /* Unix socket file to remove on close (ours, by device and inode). */
  char *unix_path;
  dev_t unix_dev;
  ino_t unix_ino;
};

static void on_accept(weft__io *io, uint32_t events);

/* ---- pausing and resuming accept ---- */

static bool want_accept(const weft_server *s) {
  return !s->closing && !s->backing_off &&
         (s->max_conns == 0 || s->nconns < s->max_conns);
}

/* Puts the listening socket in the loop's set or takes it out, to match
 * want_accept(). */
static void update_accept(weft_server *s) {
  bool want = want_accept(s);
  if (want == s->listening)
    return;
  if (want) {
    if (weft__io_add(s->loop, &s->listen_io, s->fd, EPOLLIN) == 0)
      s->listening = true;
  } else {
    weft__io_del(&s->listen_io);
    s->listening = false;
    if (!s->closing && !s->backing_off)
      s->stats.limit_pauses++;
  }
}

static void on_backoff(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_server *s = arg;
  s->backing_off = false;
  update_accept(s);
}

static void start_backoff(weft_server *s) {
  s->stats.fd_backoffs++;
  s->backoff_ns = s->backoff_ns == 0 ? BACKOFF_MIN_NS : s->backoff_ns * 2;
  if (s->backoff_ns > BACKOFF_MAX_NS)
    s->backoff_ns = BACKOFF_MAX_NS;
  struct timeval tv = {.tv_sec = (time_t)(s->backoff_ns / 1000000000u),
                       .tv_usec =
                           (suseconds_t)(s->backoff_ns % 1000000000u / 1000)};
  s->backing_off = true;
  if (evtimer_add(s->backoff_ev, &tv) != 0)
    s->backing_off = false; /* cannot happen with a valid timer; never stall */
  update_accept(s);
}

/* ---- idle connections ---- */

/* Bytes received plus bytes handed to the kernel so far: it grows whenever
 * anything moves in either direction, whether or not the handler has
 * consumed it yet. */
static uint64_t activity(const weft_stream *st) {
  weft_stream_info in;
  weft_stream_info_get(st, &in);
  return in.bytes_read + in.read_buffered + in.bytes_written -
         in.write_buffered;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_server *s = arg;
  uint64_t now = weft__clock_real_ns();
  weft__list *it;
  weft__list_foreach(it, &s->conns) {
    conn *c = weft__container_of(it, conn, link);
    if (c->phase != C_SERVING || c->idled || c->cancelled)
      continue;
    uint64_t sig = activity(c->stream);
    if (sig != c->last_sig) {
      c->last_sig = sig;
      c->last_active = now;
    } else if (now - c->last_active >= s->idle_ns) {
      c->idled = true;
      s->stats.idle_timeouts++;
      weft_cancel(c->task);
    }
  }
}

static void update_sweep(weft_server *s) {
  if (s->idle_ns == 0)
    return;
  bool want = s->nconns > 0;
  if (want == s->sweeping)
    return;
  if (want) {
    uint64_t period = s->idle_ns / 4;
    if (period < 1000000u)
      period = 1000000u;
    struct timeval tv = {.tv_sec = (time_t)(period / 1000000000u),
                         .tv_usec = (suseconds_t)(period % 1000000000u / 1000)};
    if (event_add(s->sweep_ev, &tv) == 0)
      s->sweeping = true;
  } else {
    event_del(s->sweep_ev);
    s->sweeping = false;
  }
}

/* ---- connections ---- */

static void really_free(weft_server *s) {
  if (s->backoff_ev)
    event_free(s->backoff_ev);
  if (s->sweep_ev)
    event_free(s->sweep_ev);
  weft__free(s->unix_path);
  weft__obj_del(s->loop);
  weft__free(s);
}

/* Failures that are the peer's or the server's doing, not the handler's:
 * counted, never reported. */
static bool quiet_error(int rc) {
  return rc == WEFT_EOF || rc == WEFT_ECONNRESET || rc == WEFT_EPIPE ||
         rc == WEFT_ECONNABORTED || rc == WEFT_ETIMEDOUT ||
         rc == WEFT_ECANCELED || (rc <= -4200 && rc > -4300); /* TLS */
}

static void report(weft_server *s, conn *c, int rc) {
  char local[WEFT_ADDR_STRLEN], peer[WEFT_ADDR_STRLEN] = "?";
  weft_addr pa;
  if (c->stream != NULL && weft_stream_peer_addr(c->stream, &pa) == 0)
    weft_addr_format(&pa, peer, sizeof peer);
  fprintf(s->loop->dbg_out ? s->loop->dbg_out : stderr,
          "weft: connection handler (server %s, peer %s) failed with %s (%s)\n",
          weft_addr_format(&s->addr, local, sizeof local), peer,
          weft_err_name(rc), weft_strerror(rc));
}

/* A connection is over: the server may accept again, shutdown may end,
 * and a freed server goes with its last connection. */
static void slot_end(weft_server *s) {
  s->nconns--;
  s->stats.active = s->nconns;
  if (s->backing_off) {
    /* A descriptor was just given back: try at once rather than wait. */
    event_del(s->backoff_ev);
    s->backing_off = false;
  }
  update_accept(s);
  update_sweep(s);
  if (s->nconns == 0) {
    weft__waiters_complete_all(&s->drained, 0);
    if (s->freed && s->busy == 0)
      really_free(s);
  }
}

static void conn_end(conn *c) {
  weft_server *s = c->srv;
  weft__list_remove(&c->link);
  weft__free(c);
  slot_end(s);
}

void weft_server_conn_done(weft_server *s) {
  assert(s->accept_fn != NULL && s->nconns > 0);
  slot_end(s);
}

/* Hands one accepted socket to the accept callback. */
static void adopt(weft_server *s, int fd) {
  s->nconns++;
  s->stats.accepted++;
  s->stats.active = s->nconns;
  if (s->nconns > s->stats.peak)
    s->stats.peak = s->nconns;
  if (s->accept_fn(s, fd, s->arg) < 0) {
    close(fd);
    s->stats.dropped++;
    s->stats.accepted--;
    s->nconns--;
    s->stats.active = s->nconns;
  }
}

static int conn_main(void *arg) {
  conn *c = arg;
  weft_server *s = c->srv;
  weft_stream *st = NULL;
  int rc = weft_stream_from_fd(&st, c->fd, s->has_sopts ? &s->sopts : NULL);
  if (rc != 0) {
    close(c->fd);
    c->fd = -1;
    s->stats.dropped++;
    report(s, c, rc);
    goto out;
  }
  c->fd = -1;
  c->stream = st;
  if (s->tls != NULL) {
    /* A peer that never finishes its handshake holds a connection slot:
     * the idle timeout bounds that too (on top of the context's own
     * handshake timeout). */
    weft_timeout scope;
    if (s->idle_ns)
      weft_timeout_enter(&scope, (double)s->idle_ns / 1e9);
    rc = weft_stream_start_tls(st, s->tls, NULL);
    if (s->idle_ns)
      (void)weft_timeout_exit(&scope);
    if (rc != 0) {
      if (!c->cancelled)
        s->stats.tls_failures++;
      weft_stream_free(st);
      c->stream = NULL;
      goto out;
    }
  }
  c->last_sig = activity(st);
  c->last_active = weft__clock_real_ns();
  c->phase = C_SERVING;
  rc = s->fn(st, s->arg);
  c->phase = C_CLOSING;
  if (rc < 0 && !c->idled && !c->cancelled) {
    if (quiet_error(rc)) {
      s->stats.peer_errors++;
    } else {
      s->stats.handler_errors++;
      report(s, c, rc);
    }
  }
  c->stream = NULL;
  if (weft_cancelled())
    weft_stream_free(st); /* nothing to wait for: drop what is queued */
  else
    (void)weft_stream_close(st);
out:
  conn_end(c);
  return 0;
}

/* Takes one accepted socket into a connection task. Returns false when it
 * had to be closed for lack of memory. */
static bool conn_start(weft_server *s, int fd) {
  conn *c = weft__calloc(1, sizeof *c);
  if (c == NULL)
    goto drop;
  c->srv = s;
  c->fd = fd;
  weft_task_opts to = {.size = sizeof to, .stack_size = s->stack_size};
  if (weft_spawn_at(&c->task, conn_main, c, &to, "weft_serve connection") !=
      0) {
    weft__free(c);
    goto drop;
  }
  weft_detach(c->task); /* still valid until conn_main returns */
  weft__list_push_back(&s->conns, &c->link);
  s->nconns++;
  s->stats.accepted++;
  s->stats.active = s->nconns;
  if (s->nconns > s->stats.peak)
    s->stats.peak = s->nconns;
  update_sweep(s);
  return true;
drop:
  close(fd);
  s->stats.dropped++;
  fprintf(s->loop->dbg_out ? s->loop->dbg_out : stderr,
          "weft: server dropped an accepted connection: out of memory\n");
  return false;
}

static void on_accept(weft__io *io, uint32_t events) {
  (void)events;
  weft_server *s = weft__container_of(io, weft_server, listen_io);
  for (int i = 0; i < ACCEPT_BATCH && want_accept(s); i++) {
    int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      switch (errno) {
      case EAGAIN:
#if EWOULDBLOCK != EAGAIN
      case EWOULDBLOCK:
#endif
        return;
      case EINTR:
        i--;
        continue;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        /* The connection stays in the backlog; try again after a pause or
         * as soon as a connection of ours ends. */
        start_backoff(s);
        return;
      case ECONNABORTED:
      case EPROTO:
      case EPERM: /* firewall */
        /* That one peer is gone; the next may be fine. */
        s->stats.accept_errors++;
        continue;
      default:
        /* Network errors Linux passes on from the new socket (ENETDOWN,
         * EHOSTUNREACH, ...): count and go on, but never spin on one. */
        s->stats.accept_errors++;
        start_backoff(s);
        return;
      }
    }
    s->backoff_ns = 0;
    if (s->accept_fn != NULL) {
      adopt(s, fd);
      continue;
    }
    if (!conn_start(s, fd)) {
      start_backoff(s);
      return;
    }
  }
  update_accept(s);
}

/* ---- listening ---- */

static int set_int(int fd, int level, int name, int v) {
  return setsockopt(fd, level, name, &v, sizeof v) == 0 ? 0 : -errno;
}

/* A Unix socket file may be left by a server that died. It is replaced only
 * when nobody accepts on it any more. */
static int clear_stale_unix(const weft_addr *addr) {
  const char *path = addr->u.un.sun_path;
  struct stat st;
  if (path[0] == '\0' || lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
    return 0; /* abstract, absent, or not a socket (bind will say) */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  int rc = connect(fd, &addr->u.sa, addr->len);
  int err = errno;
  close(fd);
  if (rc == 0 || err == EAGAIN)
    return WEFT_EADDRINUSE; /* a live listener (EAGAIN: backlog full) */
  if (err == ECONNREFUSED && unlink(path) != 0 && errno != ENOENT)
    return -errno;
  return 0;
}

static int open_listener(weft_server *s, const weft_addr *addr,
                         const weft_server_opts *o) {
  int family = weft_addr_family(addr);
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
    return WEFT_EINVAL;
  int rc;
  if (family == AF_UNIX && (rc = clear_stale_unix(addr)) != 0)
    return rc;
  s->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0)
    return -errno;
  if (family != AF_UNIX) {
    /* As asyncio: a restarted server can bind while old connections sit in
     * TIME_WAIT. */
    if ((rc = set_int(s->fd, SOL_SOCKET, SO_REUSEADDR, 1)) != 0)
      return rc;
    if (o->v6only && family == AF_INET6 &&
        (rc = set_int(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) != 0)
      return rc;
  }
  if (o->reuse_port && (rc = set_int(s->fd, SOL_SOCKET, SO_REUSEPORT, 1)) != 0)
    return rc;
  if (bind(s->fd, &addr->u.sa, addr->len) != 0)
    return -errno;
  if (family == AF_UNIX && addr->u.un.sun_path[0] != '\0') {
    const char *path = addr->u.un.sun_path;
    struct stat st;
    if ((s->unix_path = weft__strdup(path)) == NULL)
      return WEFT_ENOMEM;
    if (stat(path, &st) == 0) {
      s->unix_dev = st.st_dev;
      s->unix_ino = st.st_ino;
    }
    if (o->unix_mode != 0 && chmod(path, (mode_t)o->unix_mode) != 0)
      return -errno;
  }
  if (listen(s->fd, o->backlog > 0 ? o->backlog : 4096) != 0)
    return -errno;
  socklen_t len = sizeof s->addr.u.ss;
  if (getsockname(s->fd, &s->addr.u.sa, &len) != 0)
    return -errno;
  s->addr.len = len;
  if (family == AF_UNIX)
    s->addr = *addr; /* getsockname drops an abstract name's length */
  return 0;
}

static void remove_unix_path(weft_server *s) {
  if (s->unix_path == NULL)
    return;
  struct stat st;
  /* Only our own file: another server may have replaced it since. */
  if (stat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
      st.st_ino == s->unix_ino)
    (void)unlink(s->unix_path);
  weft__free(s->unix_path);
  s->unix_path = NULL;
}

int weft_serve(weft_server **out, const weft_addr *addr, weft_serve_fn handler,
               void *arg, const weft_server_opts *opts) {
  if (out == NULL)
    return WEFT_EINVAL;
  *out = NULL;
  if (addr == NULL || addr->len == 0)
    return WEFT_EINVAL;
  weft_loop *loop = weft__tls_loop;
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_server_opts o = {0};
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  if (!(o.idle_timeout >= 0) || isinf(o.idle_timeout))
    return WEFT_EINVAL;
  if ((handler == NULL) == (o.accept == NULL))
    return WEFT_EINVAL; /* exactly one way of taking connections */
  if (o.accept != NULL)
    o.idle_timeout = 0; /* the owner's business */
  weft_server *s = weft__calloc(1, sizeof *s);
  if (s == NULL)
    return WEFT_ENOMEM;
  s->loop = loop;
  s->fn = handler;
  s->accept_fn = o.accept;
  s->arg = arg;
  s->fd = -1;
  weft__list_init(&s->conns);
  weft__list_init(&s->drained);
  s->max_conns = o.max_connections;
  s->idle_ns = (uint64_t)(o.idle_timeout * 1e9);
  s->tls = o.tls;
  s->stack_size = o.stack_size;
  if (o.stream != NULL) {
    size_t n = o.stream->size && o.stream->size < sizeof s->sopts
                   ? o.stream->size
                   : sizeof s->sopts;
    memcpy(&s->sopts, o.stream, n);
    s->sopts.size = sizeof s->sopts;
    /* Connect-time fields mean nothing for an accepted stream, and
     * pointers must not outlive the call that gave them. */
    s->sopts.local = NULL;
    s->sopts.tls = NULL;
    s->sopts.server_name = NULL;
    s->has_sopts = true;
  }
  int rc = open_listener(s, addr, &o);
  if (rc != 0)
    goto fail;
  rc = WEFT_ENOMEM;
  s->listen_io.cb = on_accept;
  s->backoff_ev = evtimer_new(loop->base, on_backoff, s);
  s->sweep_ev = event_new(loop->base, -1, EV_PERSIST, on_sweep, s);
  if (s->backoff_ev == NULL || s->sweep_ev == NULL)
    goto fail;
  if ((rc = weft__io_add(loop, &s->listen_io, s->fd, EPOLLIN)) != 0)
    goto fail;
  s->listening = true;
  weft__obj_add(loop);
  *out = s;
  return 0;

fail:
  if (s->backoff_ev)
    event_free(s->backoff_ev);
  if (s->sweep_ev)
    event_free(s->sweep_ev);
  if (s->fd >= 0)
    close(s->fd);
  remove_unix_path(s);
  weft__free(s);
  return rc;
}

int weft_server_addr(const weft_server *s, weft_addr *out) {
  if (s == NULL || out == NULL)
    return WEFT_EINVAL;
  *out = s->addr;
  return 0;
}

void weft_server_close(weft_server *s) {
  if (s == NULL || s->closing)
    return;
  s->closing = true;
  if (s->backing_off) {
    event_del(s->backoff_ev);
    s->backing_off = false;
  }
  if (s->listening) {
    weft__io_del(&s->listen_io);
    s->listening = false;
  }
  close(s->fd);
  s->fd = -1;
  remove_unix_path(s);
}

bool weft_server_closing(const weft_server *s) { return s->closing; }

size_t weft_server_connections(const weft_server *s) { return s->nconns; }

void weft_server_stats_get(const weft_server *s, weft_server_stats *out) {
  *out = s->stats;
}

/* Cancels every handler still running; returns how many. */
static size_t cancel_all(weft_server *s) {
  size_t n = 0;
  weft__list *it;
  weft__list_foreach(it, &s->conns) {
    conn *c = weft__container_of(it, conn, link);
    if (!c->cancelled && !c->idled) {
      c->cancelled = true;
      s->stats.cancelled++;
      n++;
    }
    weft_cancel(c->task);
  }
  return n;
}

static int wait_drained(weft_server *s, weft_task *t, int flags) {
  while (s->nconns > 0) {
    weft__waiter w;
    weft__waiter_init(&w, t);
    weft__list_push_back(&s->drained, &w.link);
    int rc;
    do
      rc = weft__park("server shutdown", s, flags);
    while (rc == 0 && !w.done);
    if (!w.done) {
      weft__list_remove(&w.link);
      return rc;
    }
  }
  return 0;
}

int weft_server_shutdown(weft_server *s, double grace) {
  WEFT__NEED_TASK(t);
  if (s == NULL || isnan(grace))
    return WEFT_EINVAL;
  if (s->loop != t->loop)
    return WEFT_EWRONGLOOP;
  /* A handler waiting for its own server to drain would wait forever. */
  weft__list *it;
  weft__list_foreach(it, &s->conns) {
    if (weft__container_of(it, conn, link)->task == t)
      return WEFT_EDEADLK;
  }
  weft_server_close(s);
  s->busy++; /* a free meanwhile must leave the memory to us */
  int caller_rc = 0;
  if (s->nconns > 0 && grace > 0) {
    weft_timeout scope;
    weft_timeout_enter(&scope, grace);
    int rc = wait_drained(s, t, 0);
    bool grace_over = weft_timeout_exit(&scope) == WEFT_ETIMEDOUT;
    if (rc != 0 && !(rc == WEFT_ETIMEDOUT && grace_over))
      caller_rc = rc; /* the caller's own cancellation or deadline */
  }
  size_t cancelled = 0;
  if (s->accept_fn != NULL) {
    /* Adopted connections are their owner's to end: report what is
     * left. */
    cancelled = s->nconns;
  } else if (s->nconns > 0) {
    cancelled = cancel_all(s);
    (void)wait_drained(s, t, WEFT__PARK_NOCANCEL);
  }
  if (--s->busy == 0 && s->freed)
    really_free(s); /* freed by another task while we waited */
  return caller_rc != 0 ? caller_rc : (int)cancelled;
}

void weft_server_free(weft_server *s) {
  if (s == NULL)
    return;
  weft_server_close(s);
  if (s->nconns == 0 && s->busy == 0) {
    really_free(s);
    return;
  }
  /* Handlers run on until they see the cancellation; the last one out
   * (a connection in conn_end, or a task in weft_server_shutdown) frees the
   * server. */
  s->freed = true;
  (void)cancel_all(s);
}
