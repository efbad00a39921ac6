/* weft — the parent side of process pools (weft/proc.h).
 *
 * A pool belongs to one loop and is driven by libevent callbacks on it: each
 * worker has a socket (requests and replies), a pipe carrying its stderr, and
 * a pidfd that becomes readable when the process exits. Nothing here blocks
 * the loop and nothing needs a lock.
 *
 * Workers are started with posix_spawn() of /proc/self/exe, never by a bare
 * fork() of this (possibly multi-threaded) process; docs/internals/offload.md
 * gives the reasons. A worker is ready once it has said hello.
 *
 * A call lives in its task's frame (pcall). It is either queued
 * (pool->queue), handed to one worker (worker->pipe, call->wk: the oldest
 * runs, up to `depth - 1` more wait in the worker's socket), or done. Every
 * way out of a worker goes through one of: the reply (call_finish), the
 * worker's death (reap), a timeout or malformed message (call_fail plus
 * worker_kill), the task giving up (call_abandon), or back to the queue for
 * calls that waited behind a running call that ended badly (requeue_rest).
 * So each call ends exactly once and no call is lost when a worker dies.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/proc.h>

#include "internal.h"
#include "procmsg.h"

extern char **environ;

#define RX_STAGE 65536
#define PIPE_MAX 8 /* calls handed to one worker at once, at most */
/* Calls that run longer than this on average are not pipelined. */
#define PIPE_MAX_CALL_NS 200000

enum { WK_STARTING, WK_IDLE, WK_BUSY, WK_DYING };

typedef struct worker worker;

typedef struct pcall {
  weft__list link; /* pool->queue */
  weft_procpool *pool;
  const char *name;
  size_t name_len;
  const void *in;
  size_t in_len;
  weft_bytes out;
  int rc;
  bool done;
  bool queued;
  weft__waiter w;
  worker *wk;    /* the worker it was handed to, while there */
  unsigned slot; /* its place in wk->pipe */
  uint64_t timeout_ns;
  char msg[200]; /* why it failed, for weft_proc_errmsg() */
} pcall;

struct worker {
  weft__list link; /* pool->idle while idle */
  weft_procpool *pool;
  pid_t pid;
  int fd, errfd, pidfd;
  weft__proc_shm *shm; /* doorbells, or NULL */
  uint64_t rep_seen;   /* shm->rep when we last read the socket */
  struct event *rev, *wev, *errev, *pev, *tev;
  int state;
  bool killed;   /* by us: its death fails no call */
  bool ready;    /* said hello */
  bool exited;   /* its process is gone: being reaped, takes no more calls */
  bool can_skip; /* reads cancel marks: calls may be pipelined to it */
  /* Calls handed over, oldest first: the oldest runs, the others wait in
   * the worker's socket. A NULL entry is an orphan: its caller gave up, its
   * reply will be dropped. */
  pcall *pipe[PIPE_MAX];
  uint32_t pseq[PIPE_MAX];
  unsigned phead, pn;
  uint32_t seq;
  uint64_t calls;      /* replies received */
  uint64_t sent;       /* calls handed over */
  uint64_t head_since; /* when the running call started */
  uint8_t *txown;      /* the unsent rest of a request whose caller gave up */
  /* Sending the current request. */
  /* Sending: the requests not yet (fully) sent, in order, as iovecs (a
   * header of its own per pipeline slot, the name, the caller's `in`). */
  weft__proc_hdr txh[PIPE_MAX];
  struct iovec tx[3 * PIPE_MAX + 1];
  int txn, txi;
  int batch; /* > 0: inside worker_read; requests are sent at its end */
  /* Receiving. */
  uint8_t *stage;
  size_t spos, slen;
  weft__proc_hdr rxh;
  size_t rxh_got;
  bool in_body;
  uint8_t *body;
  size_t body_len, body_got;
  /* stderr, forwarded line by line. */
  char ebuf[4096];
  size_t elen;
};

struct weft_procpool {
  weft_loop *loop;
  size_t nworkers, queue_max;
  unsigned depth;   /* pipeline depth per worker */
  uint64_t call_ns; /* how long calls run, a moving average */
  uint64_t calls_timed;
  uint64_t max_calls;
  uint64_t call_timeout_ns;
  double start_timeout;
  size_t max_msg;
  uint64_t spin_ns;
  double spin_us;
  worker **w; /* nworkers slots; a dying worker leaves its slot */
  size_t alive, starting;
  worker **gone; /* dying workers not yet reaped */
  size_t ngone, gone_cap;
  weft__list idle;
  weft__list queue;
  size_t queued, running;
  weft__list room;    /* tasks waiting for room in the queue */
  weft__list drained; /* shutdown waiting for queue and workers to empty */
  char **argv;
  char *argbuf;
  bool closed;
  int start_fail;
  weft_procpool_stats st;
};

static __thread char errmsg[512];

const char *weft_proc_errmsg(void) { return errmsg; }

static int fail_msg(int rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail_msg(int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  return rc;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void dispatch(weft_procpool *p);
static void worker_kill(worker *w);
static bool orphan(worker *w, pcall *c);

/* ---- ending calls ---- */

static void check_drained(weft_procpool *p) {
  if (p->queued == 0 && p->running == 0)
    weft__waiters_complete_all(&p->drained, 0);
}

/* Ends a call (running or queued) with rc; the task wakes. */
static void call_finish(pcall *c, int rc) {
  weft_procpool *p = c->pool;
  if (c->wk != NULL) {
    c->wk->pipe[c->slot] = NULL;
    c->wk = NULL;
    p->running--;
  } else if (c->queued) {
    weft__list_remove(&c->link);
    c->queued = false;
    p->queued--;
  }
  c->rc = rc;
  c->done = true;
  weft__waiter_complete(&c->w, 0);
  check_drained(p);
}

/* Ends a call with a failure and says why. */
static void call_fail(pcall *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_fail(pcall *c, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, sizeof c->msg, fmt, ap);
  va_end(ap);
  call_finish(c, rc);
}

/* ---- a worker's pipeline ---- */

/* The call the worker runs now (NULL: none, or an orphan). */
static pcall *pipe_head(const worker *w) {
  return w->pn ? w->pipe[w->phead] : NULL;
}

static void pipe_pop(worker *w) {
  w->pipe[w->phead] = NULL;
  w->phead = (w->phead + 1) % PIPE_MAX;
  w->pn--;
}

/* Times the running call: its own timeout, or, for an orphan (a call whose
 * caller gave up while it waited in the pipeline), a short grace. An orphan
 * the worker skipped replies within microseconds; one that is still running
 * after the grace had started before the caller gave up, so it is stopped
 * the only way there is, with its worker, as a cancelled running call is. */
#define ORPHAN_GRACE_US 10000
static void arm_timeout(worker *w) {
  if (w->pn == 0)
    return;
  w->head_since = now_ns();
  pcall *c = pipe_head(w);
  uint64_t ns = c != NULL ? c->timeout_ns : ORPHAN_GRACE_US * 1000ull;
  if (ns == 0)
    return;
  struct timeval tv = {.tv_sec = (time_t)(ns / 1000000000u),
                       .tv_usec = (suseconds_t)(ns % 1000000000u / 1000)};
  event_add(w->tev, &tv);
}

/* The worker is going: the calls queued behind its running one never
 * started (it runs them in order, and a reply it sent before going has been
 * read), so they go back to the front of the pool's queue, in order. */
static void requeue_rest(worker *w) {
  weft_procpool *p = w->pool;
  while (w->pn > 1) {
    unsigned i = (w->phead + w->pn - 1) % PIPE_MAX;
    pcall *c = w->pipe[i];
    w->pipe[i] = NULL;
    w->pn--;
    if (c == NULL)
      continue;
    c->wk = NULL;
    p->running--;
    c->queued = true;
    p->queued++;
    weft__list_push_front(&p->queue, &c->link);
  }
}

/* ---- stderr forwarding ---- */

static void err_emit(worker *w, const char *s, size_t n) {
  char pre[32];
  int pl = snprintf(pre, sizeof pre, "[worker %d] ", (int)w->pid);
  struct iovec iov[3] = {{pre, (size_t)pl}, {(void *)s, n}, {"\n", 1}};
  ssize_t r;
  do
    r = writev(STDERR_FILENO, iov, 3);
  while (r < 0 && errno == EINTR);
  (void)r; /* stderr gone: nothing to tell anyone */
}

static void err_pump(worker *w, bool eof) {
  for (;;) {
    ssize_t n = read(w->errfd, w->ebuf + w->elen, sizeof w->ebuf - w->elen);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        eof = true;
      break;
    }
    w->elen += (size_t)n;
    char *s = w->ebuf, *nl;
    while ((nl = memchr(s, '\n', w->elen - (size_t)(s - w->ebuf))) != NULL) {
      err_emit(w, s, (size_t)(nl - s));
      s = nl + 1;
    }
    size_t rest = w->elen - (size_t)(s - w->ebuf);
    if (rest == sizeof w->ebuf) {
      err_emit(w, w->ebuf, rest); /* a very long line: pass it in pieces */
      rest = 0;
    } else {
      memmove(w->ebuf, s, rest);
    }
    w->elen = rest;
  }
  if (eof && w->elen > 0) {
    err_emit(w, w->ebuf, w->elen);
    w->elen = 0;
  }
  if (eof && w->errev != NULL)
    event_del(w->errev);
}

static void err_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  err_pump(arg, false);
}

/* ---- worker processes ---- */

static void worker_free(worker *w) {
  if (w->rev)
    event_free(w->rev);
  if (w->wev)
    event_free(w->wev);
  if (w->errev)
    event_free(w->errev);
  if (w->pev)
    event_free(w->pev);
  if (w->tev)
    event_free(w->tev);
  if (w->fd >= 0)
    close(w->fd);
  if (w->errfd >= 0)
    close(w->errfd);
  if (w->pidfd >= 0)
    close(w->pidfd);
  weft__free(w->txown);
  if (w->shm != NULL)
    munmap(w->shm, sizeof *w->shm);
  weft__free(w->stage);
  weft__free(w->body);
  weft__free(w);
}

/* Takes w out of service: off its slot and the idle list. It stays in
 * `gone` until its process has been reaped. */
static void worker_leave(worker *w) {
  weft_procpool *p = w->pool;
  if (w->state == WK_DYING)
    return;
  if (w->state == WK_STARTING)
    p->starting--;
  if (w->state == WK_IDLE)
    weft__list_remove(&w->link);
  w->state = WK_DYING;
  for (size_t i = 0; i < p->nworkers; i++)
    if (p->w[i] == w)
      p->w[i] = NULL;
  p->alive--;
  /* Stop talking to it: closing our end makes a live worker exit. */
  if (w->rev)
    event_del(w->rev);
  if (w->wev)
    event_del(w->wev);
  if (w->tev)
    event_del(w->tev);
  if (w->fd >= 0) {
    close(w->fd);
    w->fd = -1;
  }
  p->gone[p->ngone++] = w; /* room reserved in worker_spawn */
}

static void worker_kill(worker *w) {
  w->killed = true;
  kill(w->pid, SIGKILL);
  worker_leave(w);
}

static void describe_exit(char *buf, size_t n, int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char *ab = sigabbrev_np(sig);
    snprintf(buf, n, "was killed by signal %d (SIG%s)%s", sig, ab ? ab : "?",
             WCOREDUMP(status) ? ", core dumped" : "");
  } else if (WIFEXITED(status)) {
    snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
  } else {
    snprintf(buf, n, "ended (wait status %#x)", status);
  }
}

static void worker_read(worker *w);

/* The process has exited (its pidfd is readable): collect its status, fail
 * the call it was running, and free it. */
static void reap(worker *w) {
  weft_procpool *p = w->pool;
  w->exited = true;
  if (w->state != WK_DYING)
    worker_read(w); /* a reply it sent before dying still counts */
  int status = 0;
  pid_t r;
  do
    r = waitpid(w->pid, &status, 0); /* exited: returns at once */
  while (r < 0 && errno == EINTR);
  bool was_starting = !w->ready;
  bool partial = w->rxh_got > 0 || w->in_body;
  pcall *c = pipe_head(w);
  requeue_rest(w);
  if (w->state != WK_DYING)
    worker_leave(w);
  err_pump(w, true);
  char how[96];
  describe_exit(how, sizeof how, status);
  if (c != NULL) {
    if (partial) {
      p->st.bad_msgs++;
      call_fail(c, WEFT_EBADMSG,
                "worker %d running '%.*s' sent a truncated reply and %s",
                (int)w->pid, (int)c->name_len, c->name, how);
    } else {
      p->st.crashed++;
      call_fail(c, WEFT_ECRASHED, "worker %d running '%.*s' %s", (int)w->pid,
                (int)c->name_len, c->name, how);
    }
  } else if (was_starting && !w->killed) {
    fprintf(stderr, "weft: procpool: worker %d %s before it was ready\n",
            (int)w->pid, how);
  }
  if (was_starting && ++p->start_fail >= 3 && p->queued > 0) {
    /* Workers cannot start at all: fail what waits instead of trying
     * forever. The next call tries again. */
    p->start_fail = 0;
    while (!weft__list_empty(&p->queue))
      call_fail(weft__container_of(p->queue.next, pcall, link), WEFT_ECRASHED,
                "process pool workers fail to start (does main() call "
                "weft_proc_main() first?)");
  }
  for (size_t i = 0; i < p->ngone; i++)
    if (p->gone[i] == w) {
      p->gone[i] = p->gone[--p->ngone];
      break;
    }
  worker_free(w);
  dispatch(p);
}

static void pidfd_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  reap(arg);
}

/* Protocol violation by the worker: fail its call, replace it. */
static void bad_message(worker *w, int rc, const char *why) {
  weft_procpool *p = w->pool;
  pcall *c = pipe_head(w);
  p->st.bad_msgs++;
  requeue_rest(w);
  if (c != NULL) {
    call_fail(c, rc, "worker %d running '%.*s': %s; worker replaced",
              (int)w->pid, (int)c->name_len, c->name, why);
  } else {
    fprintf(stderr, "weft: procpool: worker %d: %s; replacing it\n",
            (int)w->pid, why);
  }
  worker_kill(w);
}

/* A complete reply for the running call. */
static void got_reply(worker *w, uint8_t *body) {
  weft_procpool *p = w->pool;
  pcall *c = pipe_head(w);
  w->calls++;
  int status = w->rxh.status;
  w->rxh_got = 0;
  w->in_body = false;
  w->body = NULL;
  if (w->tev)
    event_del(w->tev);
  /* Calls long enough that the round trip to the parent is noise gain
   * nothing from pipelining and may wait behind each other: pick() stops
   * pipelining while the average is long. */
  uint64_t ran = now_ns() - w->head_since;
  if (p->calls_timed++ == 0)
    p->call_ns = ran; /* the first measure replaces the "unknown" start */
  else
    p->call_ns = p->call_ns - p->call_ns / 8 + ran / 8;
  if (c != NULL) {
    p->st.completed++;
    c->out.data = body;
    c->out.len = w->rxh.len;
    call_finish(c, status);
  } else {
    weft__free(body); /* an orphan's: its caller is gone */
  }
  pipe_pop(w);
  arm_timeout(w);
  if (w->pn > 0 || w->exited)
    ; /* busy with the calls behind it, or dead and being reaped */
  else if (p->max_calls && w->calls >= p->max_calls) {
    p->st.retired++;
    worker_leave(w); /* it sees EOF and exits; reap() frees it */
  } else {
    /* Most recently used first: that worker is the one still spinning for
     * its next request (and the others get to sleep). */
    w->state = WK_IDLE;
    weft__list_push_front(&p->idle, &w->link);
  }
  dispatch(p);
}

/* Parses what the stage holds. Returns false once w left service. */
static bool parse(worker *w) {
  weft_procpool *p = w->pool;
  while (w->spos < w->slen || (w->in_body && w->body_got == w->body_len)) {
    if (w->state == WK_DYING)
      return false; /* retired after its last reply: nothing more to read */
    if (!w->in_body) {
      size_t n = sizeof w->rxh - w->rxh_got;
      if (n > w->slen - w->spos)
        n = w->slen - w->spos;
      memcpy((char *)&w->rxh + w->rxh_got, w->stage + w->spos, n);
      w->rxh_got += n;
      w->spos += n;
      if (w->rxh_got < sizeof w->rxh)
        return true;
      weft__proc_hdr *h = &w->rxh;
      if (h->magic != WEFT__PROC_MAGIC) {
        bad_message(w, WEFT_EBADMSG, "malformed message (bad magic)");
        return false;
      }
      if (w->state == WK_STARTING) {
        if (h->kind != WEFT__MSG_HELLO || h->status != (int32_t)w->pid ||
            h->len != 0 || h->name_len != 0) {
          bad_message(w, WEFT_EBADMSG, "malformed hello");
          return false;
        }
        event_del(w->tev);
        w->rxh_got = 0;
        w->ready = true;
        w->can_skip = h->seq == 1 && w->shm != NULL;
        w->state = WK_IDLE;
        p->starting--;
        p->start_fail = 0;
        weft__list_push_back(&p->idle, &w->link);
        dispatch(p);
        continue;
      }
      if (w->state != WK_BUSY || w->pn == 0) {
        bad_message(w, WEFT_EBADMSG, "message while no call runs");
        return false;
      }
      if (h->kind != WEFT__MSG_REPLY || h->seq != w->pseq[w->phead] ||
          h->name_len != 0) {
        bad_message(w, WEFT_EBADMSG, "malformed reply");
        return false;
      }
      if (h->len > p->max_msg) {
        bad_message(w, WEFT_EMSGSIZE, "reply larger than max_msg");
        return false;
      }
      w->in_body = true;
      w->body_len = (size_t)h->len;
      w->body_got = 0;
      /* An empty reply allocates nothing: out.data stays NULL. */
      w->body = w->body_len ? weft__malloc(w->body_len) : NULL;
      if (w->body == NULL && w->body_len) {
        bad_message(w, WEFT_ENOMEM, "no memory for the reply");
        return false;
      }
    }
    size_t n = w->body_len - w->body_got;
    if (n > w->slen - w->spos)
      n = w->slen - w->spos;
    if (n)
      memcpy(w->body + w->body_got, w->stage + w->spos, n);
    w->body_got += n;
    w->spos += n;
    if (w->body_got == w->body_len)
      got_reply(w, w->body);
    else
      return true;
  }
  return true;
}

static void worker_read_(worker *w);
static void worker_write(worker *w);

static void worker_read(worker *w) {
  w->batch++;
  worker_read_(w);
  w->batch--;
  if (w->batch == 0 && w->state != WK_DYING && w->txi < w->txn)
    worker_write(w);
}

static void worker_read_(worker *w) {
  while (w->state != WK_DYING) {
    ssize_t n;
    if (w->in_body && w->body_len - w->body_got >= RX_STAGE) {
      /* A big body: straight into place. */
      n = recv(w->fd, w->body + w->body_got, w->body_len - w->body_got, 0);
      if (n > 0) {
        w->body_got += (size_t)n;
        if (w->body_got == w->body_len)
          got_reply(w, w->body);
        continue;
      }
    } else {
      n = recv(w->fd, w->stage, RX_STAGE, 0);
      if (n > 0) {
        w->spos = 0;
        w->slen = (size_t)n;
        if (!parse(w))
          return;
        continue;
      }
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    /* End of file or error: the worker is going; reap() tells why. Stop
     * reading until then. */
    event_del(w->rev);
    return;
  }
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  worker_read(arg);
}

static void worker_write(worker *w) {
  if (w->fd < 0)
    return; /* leaving: nothing more goes to it */
  while (w->txi < w->txn) {
    struct msghdr m = {.msg_iov = w->tx + w->txi,
                       .msg_iovlen = (size_t)(w->txn - w->txi)};
    ssize_t n = sendmsg(w->fd, &m, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        event_add(w->wev, NULL);
        return;
      }
      break; /* dead: reap() fails the call */
    }
    size_t left = (size_t)n;
    while (w->txi < w->txn && left >= w->tx[w->txi].iov_len)
      left -= w->tx[w->txi++].iov_len;
    if (w->txi < w->txn) {
      w->tx[w->txi].iov_base = (char *)w->tx[w->txi].iov_base + left;
      w->tx[w->txi].iov_len -= left;
    }
  }
  event_del(w->wev);
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  worker_write(arg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  worker *w = arg;
  weft_procpool *p = w->pool;
  if (w->state == WK_STARTING) {
    fprintf(stderr,
            "weft: procpool: worker %d did not start in %.1f s; killing it "
            "(does main() call weft_proc_main() first?)\n",
            (int)w->pid, p->start_timeout);
    worker_kill(w);
    return;
  }
  if (w->pn == 0)
    return;
  uint32_t seq = w->pseq[w->phead];
  worker_read(w); /* a reply already here wins over the timer */
  if (w->state == WK_DYING || w->pn == 0 || w->pseq[w->phead] != seq)
    return;
  pcall *c = pipe_head(w);
  requeue_rest(w);
  if (c == NULL) {
    worker_kill(w); /* an orphan still running: see arm_timeout() */
    dispatch(p);
    return;
  }
  p->st.timeouts++;
  call_fail(
      c, WEFT_ETIMEDOUT, "call '%.*s' timed out after %.3f s; worker %d killed",
      (int)c->name_len, c->name, (double)c->timeout_ns / 1e9, (int)w->pid);
  worker_kill(w);
  dispatch(p); /* the calls behind it go to other workers */
}

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

/* Starts a worker process into a free slot. */
static int worker_spawn(weft_procpool *p) {
  size_t slot = 0;
  while (slot < p->nworkers && p->w[slot] != NULL)
    slot++;
  if (slot == p->nworkers)
    return WEFT_EBUSY;
  /* Every worker alive, and this one, may end up in `gone` at once. */
  if (p->ngone + p->alive + 1 > p->gone_cap) {
    size_t cap = (p->ngone + p->alive + 1) * 2;
    worker **g = weft__realloc(p->gone, cap * sizeof *g);
    if (g == NULL)
      return WEFT_ENOMEM;
    p->gone = g;
    p->gone_cap = cap;
  }
  worker *w = weft__calloc(1, sizeof *w);
  if (w == NULL)
    return WEFT_ENOMEM;
  w->pool = p;
  w->fd = w->errfd = w->pidfd = -1;
  weft__list_init(&w->link);
  int sv[2] = {-1, -1}, ep[2] = {-1, -1};
  int rc = 0;
  w->stage = weft__malloc(RX_STAGE);
  if (w->stage == NULL) {
    rc = WEFT_ENOMEM;
    goto fail;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
      pipe2(ep, O_CLOEXEC) < 0) {
    rc = -errno;
    goto fail;
  }
  /* Doorbells: optional, the socket works without them. */
  int shmfd = memfd_create("weft-doorbells", MFD_CLOEXEC);
  if (shmfd >= 0) {
    void *m = MAP_FAILED;
    if (ftruncate(shmfd, sizeof(weft__proc_shm)) == 0)
      m = mmap(NULL, sizeof(weft__proc_shm), PROT_READ | PROT_WRITE, MAP_SHARED,
               shmfd, 0);
    if (m != MAP_FAILED) {
      w->shm = m;
    } else {
      close(shmfd);
      shmfd = -1;
    }
  }

  /* The environment: ours, plus the worker's instructions. */
  size_t nenv = 0;
  while (environ[nenv] != NULL)
    nenv++;
  char **envp = weft__calloc(nenv + 2, sizeof *envp);
  char var[128];
  snprintf(var, sizeof var, WEFT__PROC_ENV "=%ld:%g:%llu", (long)getpid(),
           p->spin_us, (unsigned long long)p->max_msg);
  if (envp == NULL) {
    rc = WEFT_ENOMEM;
    goto fail;
  }
  size_t k = 0;
  for (size_t i = 0; i < nenv; i++)
    if (strncmp(environ[i], WEFT__PROC_ENV "=", sizeof WEFT__PROC_ENV) != 0)
      envp[k++] = environ[i];
  envp[k++] = var;
  envp[k] = NULL;

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, sv[1], WEFT__PROC_FD);
  posix_spawn_file_actions_adddup2(&fa, ep[1], STDERR_FILENO);
  if (shmfd >= 0)
    posix_spawn_file_actions_adddup2(&fa, shmfd, WEFT__PROC_SHM_FD);
  posix_spawn_file_actions_addclosefrom_np(
      &fa, (shmfd >= 0 ? WEFT__PROC_SHM_FD : WEFT__PROC_FD) + 1);
  posix_spawnattr_init(&at);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int err = posix_spawn(&pid, "/proc/self/exe", &fa, &at, p->argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  weft__free(envp);
  if (shmfd >= 0)
    close(shmfd);
  close(sv[1]);
  close(ep[1]);
  sv[1] = ep[1] = -1;
  if (err != 0) {
    rc = -err;
    goto fail;
  }
  w->pid = pid;
  w->fd = sv[0];
  w->errfd = ep[0];
  sv[0] = ep[0] = -1;
  fcntl(w->fd, F_SETFL, O_NONBLOCK);
  fcntl(w->errfd, F_SETFL, O_NONBLOCK);
  w->pidfd = pidfd_open_(pid);
  struct event_base *b = p->loop->base;
  w->rev = event_new(b, w->fd, EV_READ | EV_PERSIST, read_cb, w);
  w->wev = event_new(b, w->fd, EV_WRITE | EV_PERSIST, write_cb, w);
  w->errev = event_new(b, w->errfd, EV_READ | EV_PERSIST, err_cb, w);
  w->tev = evtimer_new(b, timer_cb, w);
  if (w->pidfd >= 0)
    w->pev = event_new(b, w->pidfd, EV_READ, pidfd_cb, w);
  struct timeval stv = {
      .tv_sec = (time_t)p->start_timeout,
      .tv_usec =
          (suseconds_t)((p->start_timeout - (double)(time_t)p->start_timeout) *
                        1e6)};
  if (w->rev == NULL || w->wev == NULL || w->errev == NULL || w->tev == NULL ||
      w->pidfd < 0 || w->pev == NULL || event_add(w->rev, NULL) != 0 ||
      event_add(w->errev, NULL) != 0 || event_add(w->pev, NULL) != 0 ||
      event_add(w->tev, &stv) != 0) {
    rc = w->pidfd < 0 ? WEFT_ENOSYS : WEFT_ENOMEM;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    goto fail;
  }
  w->state = WK_STARTING;
  p->w[slot] = w;
  p->alive++;
  p->starting++;
  p->st.spawned++;
  return 0;

fail:
  for (int i = 0; i < 2; i++) {
    if (sv[i] >= 0)
      close(sv[i]);
    if (ep[i] >= 0)
      close(ep[i]);
  }
  worker_free(w);
  return rc;
}

/* Hands c to w: it runs at once if w is idle, else after w's others. */
static void start_call(weft_procpool *p, worker *w, pcall *c) {
  if (w->state == WK_IDLE)
    weft__list_remove(&w->link);
  w->state = WK_BUSY;
  unsigned slot = (w->phead + w->pn) % PIPE_MAX;
  w->pipe[slot] = c;
  w->pn++;
  c->wk = w;
  c->slot = slot;
  p->running++;
  w->sent++;
  w->seq++;
  w->pseq[slot] = w->seq;
  if (w->txi == w->txn) {
    w->txi = w->txn = 0;
    weft__free(w->txown); /* sent: no longer needed */
    w->txown = NULL;
  } else if (w->txn + 3 > (int)(sizeof w->tx / sizeof w->tx[0])) {
    memmove(w->tx, w->tx + w->txi, (size_t)(w->txn - w->txi) * sizeof *w->tx);
    w->txn -= w->txi;
    w->txi = 0;
  }
  w->txh[slot] = (weft__proc_hdr){.magic = WEFT__PROC_MAGIC,
                                  .kind = WEFT__MSG_CALL,
                                  .name_len = (uint16_t)c->name_len,
                                  .seq = w->seq,
                                  .len = c->in_len};
  w->tx[w->txn++] = (struct iovec){&w->txh[slot], sizeof w->txh[slot]};
  w->tx[w->txn++] = (struct iovec){(void *)c->name, c->name_len};
  if (c->in_len)
    w->tx[w->txn++] = (struct iovec){(void *)c->in, c->in_len};
  if (w->pn == 1)
    arm_timeout(w);
  /* Replies read in one go free slots together: their successors then go
   * out in one sendmsg when the read is over. */
  if (w->batch == 0)
    worker_write(w);
}

/* The worker the next queued call should go to: an idle one, else the
 * least loaded busy one that may take one more in its pipeline, else NULL. */
static worker *pick(weft_procpool *p) {
  if (!weft__list_empty(&p->idle))
    return weft__container_of(p->idle.next, worker, link);
  if (p->call_ns > PIPE_MAX_CALL_NS)
    return NULL;
  worker *best = NULL;
  for (size_t i = 0; i < p->nworkers; i++) {
    worker *w = p->w[i];
    if (w == NULL || w->state != WK_BUSY || !w->can_skip || w->exited ||
        w->pn >= p->depth || (p->max_calls && w->sent >= p->max_calls))
      continue;
    if (best == NULL || w->pn < best->pn)
      best = w;
  }
  /* Nor behind a call that has run long already, whatever the average. */
  if (best != NULL && now_ns() - best->head_since > PIPE_MAX_CALL_NS)
    return NULL;
  return best;
}

/* Hands queued calls to workers and starts workers for the rest. */
static void dispatch(weft_procpool *p) {
  worker *w;
  while (!weft__list_empty(&p->queue) && (w = pick(p)) != NULL) {
    pcall *c = weft__container_of(weft__list_pop_front(&p->queue), pcall, link);
    c->queued = false;
    p->queued--;
    start_call(p, w, c);
    /* Room in the queue: the oldest waiting caller may come in. */
    weft__list *n = weft__list_pop_front(&p->room);
    if (n != NULL)
      weft__waiter_complete(weft__container_of(n, weft__waiter, link), 0);
  }
  while (p->queued > p->starting && p->alive < p->nworkers) {
    int rc = worker_spawn(p);
    if (rc != 0) {
      if (p->alive == 0) {
        while (!weft__list_empty(&p->queue))
          call_fail(weft__container_of(p->queue.next, pcall, link), rc,
                    "cannot start a process pool worker: %s",
                    weft_strerror(rc));
      }
      break;
    }
  }
}

/* ---- the pool ---- */

static int read_cmdline(weft_procpool *p) {
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return WEFT_ENOSYS;
  size_t cap = 4096, len = 0;
  char *buf = weft__malloc(cap);
  while (buf != NULL) {
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    if (len + 1 == cap) {
      char *nb = weft__realloc(buf, cap * 2);
      if (nb == NULL) {
        weft__free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  close(fd);
  if (buf == NULL)
    return WEFT_ENOMEM;
  buf[len] = '\0';
  size_t argc = 0;
  for (size_t i = 0; i < len; i++)
    if (buf[i] == '\0')
      argc++;
  if (len > 0 && buf[len - 1] != '\0')
    argc++;
  char **argv = weft__calloc(argc + 2, sizeof *argv);
  if (argv == NULL) {
    weft__free(buf);
    return WEFT_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
    argv[k++] = buf + i;
  if (k == 0)
    argv[k++] = "weft-worker";
  argv[k] = NULL;
  p->argv = argv;
  p->argbuf = buf;
  return 0;
}

int weft_procpool_new(weft_procpool **out, const weft_procpool_opts *opts) {
  if (out == NULL)
    return WEFT_EINVAL;
  *out = NULL;
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_procpool_opts o = {0};
  if (opts != NULL) {
    if (opts->size == 0 || opts->size > sizeof o)
      return WEFT_EINVAL;
    memcpy(&o, opts, opts->size);
  }
  if (getenv(WEFT__PROC_ENV) != NULL && !weft_proc_is_worker()) {
    /* Started as a worker, yet running the program's own main: starting
     * workers from here would start workers without end. */
    return fail_msg(WEFT_EINVAL,
                    "this process was started as a process pool worker but "
                    "main() did not call weft_proc_main() first");
  }
  weft_procpool *p = weft__calloc(1, sizeof *p);
  if (p == NULL)
    return WEFT_ENOMEM;
  p->loop = loop;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  p->nworkers = o.workers ? o.workers : ncpu > 0 ? (size_t)ncpu : 1;
  p->queue_max = o.queue_max ? o.queue_max : 1024;
  p->depth = o.pipeline ? (unsigned)o.pipeline : 4;
  /* No pipelining until a call has shown how long calls take. */
  p->call_ns = PIPE_MAX_CALL_NS + 1;
  if (p->depth > PIPE_MAX)
    p->depth = PIPE_MAX;
  p->max_calls = o.max_calls_per_worker;
  p->call_timeout_ns =
      o.call_timeout > 0 ? (uint64_t)(o.call_timeout * 1e9) : 0;
  p->start_timeout = o.start_timeout > 0 ? o.start_timeout : 10;
  p->max_msg = o.max_msg ? o.max_msg : ((size_t)1 << 30);
  p->spin_us = o.spin_us == 0 ? 50 : o.spin_us < 0 ? 0 : o.spin_us;
  p->spin_ns = (uint64_t)(p->spin_us * 1000);
  weft__list_init(&p->idle);
  weft__list_init(&p->queue);
  weft__list_init(&p->room);
  weft__list_init(&p->drained);
  p->w = weft__calloc(p->nworkers, sizeof *p->w);
  int rc = p->w == NULL ? WEFT_ENOMEM : read_cmdline(p);
  if (rc != 0) {
    weft__free(p->w);
    weft__free(p);
    return rc;
  }
  weft__obj_add(loop);
  *out = p;
  return 0;
}

void weft_procpool_stats_get(weft_procpool *p, weft_procpool_stats *out) {
  *out = p->st;
  out->workers = p->alive;
  out->queued = p->queued;
  out->running = p->running;
}

/* Kills every worker and waits for each (SIGKILL makes that quick). */
static void kill_all(weft_procpool *p, int rc) {
  for (size_t i = 0; i < p->nworkers; i++) {
    worker *w = p->w[i];
    if (w == NULL)
      continue;
    while (w->pn > 0) {
      pcall *c = pipe_head(w);
      if (c != NULL)
        call_fail(c, rc, "call '%.*s' ended by the pool's shutdown",
                  (int)c->name_len, c->name);
      pipe_pop(w);
    }
    worker_kill(w);
  }
}

void weft_procpool_free(weft_procpool *p) {
  if (p == NULL)
    return;
  p->closed = true;
  while (!weft__list_empty(&p->queue))
    call_finish(weft__container_of(p->queue.next, pcall, link), WEFT_ECANCELED);
  weft__waiters_complete_all(&p->room, WEFT_ECANCELED);
  kill_all(p, WEFT_ECANCELED);
  weft__waiters_complete_all(&p->drained, WEFT_ECANCELED);
  for (size_t i = 0; i < p->ngone; i++) {
    worker *w = p->gone[i];
    if (!w->killed)
      kill(w->pid, SIGKILL);
    while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    err_pump(w, true);
    worker_free(w);
  }
  weft__obj_del(p->loop);
  weft__free(p->gone);
  weft__free(p->w);
  weft__free(p->argv);
  weft__free(p->argbuf);
  weft__free(p);
}

int weft_procpool_shutdown(weft_procpool *p, int how, double timeout) {
  WEFT__NEED_TASK(t);
  if (p == NULL || (how != WEFT_PROC_WAIT && how != WEFT_PROC_CANCEL))
    return WEFT_EINVAL;
  p->closed = true;
  weft__waiters_complete_all(&p->room, WEFT_ECLOSED);
  if (how == WEFT_PROC_CANCEL) {
    while (!weft__list_empty(&p->queue)) {
      pcall *c = weft__container_of(p->queue.next, pcall, link);
      p->st.cancelled++;
      call_finish(c, WEFT_ECANCELED);
    }
    /* Calls waiting in a worker behind the running one have not started
     * either. */
    for (size_t i = 0; i < p->nworkers; i++) {
      worker *w = p->w[i];
      for (unsigned k = 1; w != NULL && k < w->pn; k++) {
        pcall *c = w->pipe[(w->phead + k) % PIPE_MAX];
        if (c != NULL && orphan(w, c)) {
          p->st.cancelled++;
          call_finish(c, WEFT_ECANCELED);
        }
      }
    }
  }
  int rc = 0;
  if (p->queued > 0 || p->running > 0) {
    weft_timeout scope;
    weft_timeout_enter(&scope, timeout > 0 ? timeout : INFINITY);
    weft__waiter w;
    weft__waiter_init(&w, t);
    weft__list_push_back(&p->drained, &w.link);
    do
      rc = weft__park("procpool shutdown", p, 0);
    while (rc == 0 && !w.done);
    if (!w.done)
      weft__list_remove(&w.link);
    int src = weft_timeout_exit(&scope);
    if (w.done)
      rc = w.status;
    if (rc != 0) {
      /* Out of time, or the caller was cancelled: end what still runs. */
      int crc = src == WEFT_ETIMEDOUT ? WEFT_ECLOSED : rc;
      while (!weft__list_empty(&p->queue))
        call_finish(weft__container_of(p->queue.next, pcall, link), crc);
      kill_all(p, crc);
      if (src == WEFT_ETIMEDOUT)
        rc = WEFT_ETIMEDOUT;
    }
  }
  /* Idle workers: closing their socket makes them exit. */
  for (size_t i = 0; i < p->nworkers; i++)
    if (p->w[i] != NULL)
      worker_leave(p->w[i]);
  return rc;
}

/* ---- calls ---- */

/* Reads what every busy worker has sent (the spinning task's poll). */
static void poll_workers(weft_procpool *p) {
  for (size_t i = 0; i < p->nworkers; i++) {
    worker *w = p->w[i];
    if (w == NULL || w->state != WK_BUSY)
      continue;
    /* Read only when the worker has rung (or is mid-reply): no system
     * call per turn of the spin. */
    if (w->shm != NULL && !w->rxh_got && !w->in_body) {
      uint64_t r = __atomic_load_n(&w->shm->rep, __ATOMIC_ACQUIRE);
      if (r == w->rep_seen)
        continue;
      w->rep_seen = r;
    }
    worker_read(w);
  }
}

/* Makes a request that is still being sent independent of its caller's
 * memory: the unsent rest is copied. Returns false without memory. */
static bool tx_detach(worker *w) {
  size_t n = 0;
  for (int i = w->txi; i < w->txn; i++)
    n += w->tx[i].iov_len;
  uint8_t *b = weft__malloc(n ? n : 1);
  if (b == NULL)
    return false;
  size_t k = 0;
  for (int i = w->txi; i < w->txn; i++) {
    memcpy(b + k, w->tx[i].iov_base, w->tx[i].iov_len);
    k += w->tx[i].iov_len;
  }
  weft__free(w->txown);
  w->txown = b;
  w->tx[0] = (struct iovec){b, n};
  w->txi = 0;
  w->txn = 1;
  return true;
}

/* Takes c, waiting in w's pipeline behind the running call, out of it:
 * the worker is told to skip it (and if it has started it already, it runs
 * to the end with its reply dropped; see arm_timeout()). Returns false when
 * there was no memory to finish sending its request without it. */
static bool orphan(worker *w, pcall *c) {
  weft_procpool *p = w->pool;
  /* Requests not fully sent yet (this one, or others after it) must not
   * read their callers' memory after this call returns. */
  if (w->txi < w->txn && !tx_detach(w))
    return false;
  uint32_t seq = w->pseq[c->slot];
  if (w->shm != NULL)
    __atomic_store_n(&w->shm->cancel[seq % 64], seq, __ATOMIC_RELEASE);
  w->pipe[c->slot] = NULL;
  c->wk = NULL;
  p->running--;
  return true;
}

/* Gives up on c (its task was cancelled or passed its deadline). A queued
 * call is dropped. A call waiting behind another in a worker's pipeline is
 * marked for the worker to skip (if the worker got to it first, it runs to
 * the end and its reply is dropped). A running call dies with its worker:
 * that is the only way to stop a function mid-run. Returns true when c
 * turned out to be finished already (its reply was in the socket): the
 * caller then takes the result. */
static bool call_abandon(pcall *c) {
  weft_procpool *p = c->pool;
  if (c->wk != NULL && c->slot == c->wk->phead) {
    worker_read(c->wk);
    if (c->done)
      return true;
  }
  p->st.cancelled++;
  if (c->queued) {
    weft__list_remove(&c->link);
    c->queued = false;
    p->queued--;
    weft__list *n = weft__list_pop_front(&p->room);
    if (n != NULL)
      weft__waiter_complete(weft__container_of(n, weft__waiter, link), 0);
  } else if (c->wk != NULL) {
    worker *w = c->wk;
    if (c->slot == w->phead || !orphan(w, c)) {
      w->pipe[c->slot] = NULL;
      c->wk = NULL;
      p->running--;
      pcall *h = pipe_head(w); /* not c: c's slot is empty now */
      if (h != NULL)
        call_fail(h, WEFT_ENOMEM, "out of memory cancelling a call");
      requeue_rest(w);
      worker_kill(w);
      dispatch(p);
    }
  }
  check_drained(p);
  return false;
}

int weft_proc_call_opts(weft_procpool *p, const char *name, const void *in,
                        size_t in_len, weft_bytes *out,
                        const weft_proc_opts *opts) {
  WEFT__NEED_TASK(t);
  if (out != NULL) {
    out->data = NULL;
    out->len = 0;
  }
  if (p == NULL || name == NULL || (in == NULL && in_len > 0))
    return WEFT_EINVAL;
  weft_proc_opts o = {0};
  if (opts != NULL) {
    if (opts->size == 0 || opts->size > sizeof o)
      return WEFT_EINVAL;
    memcpy(&o, opts, opts->size);
  }
  if (p->loop != t->loop)
    return WEFT_EWRONGLOOP;
  size_t name_len = strlen(name);
  if (name_len == 0 || name_len > WEFT__PROC_NAME_MAX ||
      weft__proc_lookup(name, name_len) == NULL)
    return fail_msg(WEFT_ENOENT, "no process pool function '%s' is registered",
                    name);
  if (in_len > p->max_msg)
    return fail_msg(WEFT_EMSGSIZE, "request to '%s' larger than max_msg", name);
  int rc = weft__checkpoint(t);
  if (rc != 0)
    return rc;
  /* Backpressure: wait for room in the queue. */
  while (p->queued >= p->queue_max && !p->closed) {
    weft__waiter w;
    weft__waiter_init(&w, t);
    weft__list_push_back(&p->room, &w.link);
    do
      rc = weft__park("procpool queue room", p, 0);
    while (rc == 0 && !w.done);
    if (!w.done) {
      weft__list_remove(&w.link);
      return rc;
    }
    if (w.status != 0)
      return w.status; /* the pool is going away: do not touch it */
  }
  if (p->closed)
    return fail_msg(WEFT_ECLOSED, "process pool is shut down");

  pcall c = {.pool = p,
             .name = name,
             .name_len = name_len,
             .in = in,
             .in_len = in_len};
  c.timeout_ns = o.timeout > 0    ? (uint64_t)(o.timeout * 1e9)
                 : o.timeout == 0 ? p->call_timeout_ns
                                  : 0;
  weft__waiter_init(&c.w, t);
  weft__list_init(&c.link);
  p->st.calls++;
  weft__list_push_back(&p->queue, &c.link);
  c.queued = true;
  p->queued++;
  dispatch(p);

  /* Spin: a fast function's reply is often back within microseconds, well
   * before the loop could sleep and be woken. Only while no other task is
   * ready (the loop would otherwise go to sleep now), and then reading every
   * busy worker, so one spinning task serves the replies of all. */
  weft_loop *loop = t->loop;
  if (p->spin_ns > 0 && !c.done) {
    uint64_t until = now_ns() + p->spin_ns;
    unsigned turns = 0;
    while (!c.done) {
      if (!weft__list_empty(&loop->runq))
        break; /* others have work: park; the loop polls between them */
      poll_workers(p);
      if (c.done || ((++turns & 7) == 0 && now_ns() >= until))
        break;
      if ((turns & 7) == 0)
        sched_yield(); /* the worker may be waiting for this core */
      rc = weft_yield();
      if (rc != 0)
        break;
    }
  }
  if (!c.done && rc == 0) {
    do
      rc = weft__park("procpool call", p, 0);
    while (rc == 0 && !c.done);
  }
  if (!c.done && !call_abandon(&c)) {
    if (rc == WEFT_ETIMEDOUT)
      fail_msg(rc, "call '%s' passed the task's deadline", name);
    return rc;
  }
  if (c.rc < 0 && c.msg[0] != '\0')
    snprintf(errmsg, sizeof errmsg, "%s", c.msg);
  if (out != NULL)
    *out = c.out;
  else
    weft_bytes_free(&c.out);
  return c.rc;
}

int weft_proc_call(weft_procpool *p, const char *name, const void *in,
                   size_t in_len, weft_bytes *out) {
  return weft_proc_call_opts(p, name, in, in_len, out, NULL);
}

int weft_proc_call_fixed(weft_procpool *p, const char *name, const void *in,
                         size_t in_size, void *out, size_t out_size) {
  weft_bytes b = {0};
  int rc = weft_proc_call(p, name, in, in_size, &b);
  if (rc == 0 && b.len != out_size)
    rc = fail_msg(WEFT_EBADMSG, "'%s' replied %zu bytes, expected %zu", name,
                  b.len, out_size);
  if (rc == 0 && out_size)
    memcpy(out, b.data, out_size);
  weft_bytes_free(&b);
  return rc;
}
