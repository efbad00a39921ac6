/* weft — the loop: one per thread, a libevent event_base underneath.
 *
 * A turn of the loop runs the ready tasks (bounded by the scheduler's budget),
 * then polls libevent: without blocking when tasks are still ready, else
 * blocking until the earliest timer or an event. Timers that came due wake
 * their tasks, and the next turn runs them.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <event2/event.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

__thread weft_loop *weft__tls_loop WEFT__TLS_IE;

/* ---- thread-safe calls ---- */

static void drain_notify(weft_loop *loop) {
  uint64_t v;
  while (read(loop->notify_fd, &v, sizeof v) > 0) {
  }
}

static void run_tscalls(weft_loop *loop) {
  weft__list local;
  weft__list_init(&local);
  pthread_mutex_lock(&loop->tslock);
  weft__list_splice(&local, &loop->tsq);
  pthread_mutex_unlock(&loop->tslock);
  weft__list *n;
  while ((n = weft__list_pop_front(&local)) != NULL) {
    weft__tscall *c = weft__container_of(n, weft__tscall, link);
    bool owned = c->owned;
    void (*fn)(void *) = c->fn;
    void *arg = c->arg;
    if (owned)
      weft__free(c);
    fn(arg);
  }
}

/* The eventfd sits in the loop's own set (level-triggered), so a call from
 * another thread is seen by the poll a busy loop makes every turn. */
static void on_notify(weft__io *io, uint32_t events) {
  (void)events;
  weft_loop *loop = weft__container_of(io, weft_loop, notify_io);
  drain_notify(loop);
  run_tscalls(loop);
}

int weft__loop_post(weft_loop *loop, weft__tscall *c) {
  pthread_mutex_lock(&loop->tslock);
  if (loop->ts_closed) {
    pthread_mutex_unlock(&loop->tslock);
    return WEFT_ECLOSED;
  }
  bool was_empty = weft__list_empty(&loop->tsq);
  weft__list_push_back(&loop->tsq, &c->link);
  pthread_mutex_unlock(&loop->tslock);
  if (was_empty) {
    /* Only the first call of a batch needs to wake the loop: it drains the
     * whole queue. A racing extra write costs one spurious wake-up. */
    uint64_t one = 1;
    ssize_t w;
    do
      w = write(loop->notify_wfd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
  }
  return 0;
}

int weft_loop_call_threadsafe(weft_loop *loop, void (*fn)(void *), void *arg) {
  if (loop == NULL || fn == NULL)
    return WEFT_EINVAL;
  weft__tscall *c = weft__malloc(sizeof *c);
  if (c == NULL)
    return WEFT_ENOMEM;
  c->fn = fn;
  c->arg = arg;
  c->owned = true;
  int rc = weft__loop_post(loop, c);
  if (rc != 0)
    weft__free(c);
  return rc;
}

/* ---- polling ---- */

/* The loop's clock wakes it through a timerfd of its own, armed only when
 * the earliest timer changes. libevent's own timers would make epoll_wait
 * sleep in whole milliseconds (which this kernel rounds up to its 4 ms tick:
 * a 1 ms sleep took 4 ms), and its EVENT_BASE_FLAG_PRECISE_TIMER re-arms a
 * timerfd on every poll, non-blocking ones included: one system call more
 * per loop turn. */
static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  weft_loop *loop = arg;
  uint64_t expirations;
  while (read(fd, &expirations, sizeof expirations) > 0) {
  }
  loop->timer_ev_due = WEFT__NO_DEADLINE;
}

/* Makes the loop wake up by `due` (loop clock: CLOCK_MONOTONIC ns). */
static void arm_wakeup(weft_loop *loop, uint64_t due) {
  if (due == loop->timer_ev_due)
    return;
  struct itimerspec its = {.it_value = {.tv_sec = (time_t)(due / 1000000000u),
                                        .tv_nsec = (long)(due % 1000000000u)}};
  if (due == 0)
    its.it_value.tv_nsec = 1; /* zero would disarm the timer */
  if (timerfd_settime(loop->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
    loop->timer_ev_due = due;
}

/* How long libevent's events (signals, its timers, and those a user adds
 * to weft_loop_base; every socket weft watches is in the loop's own set)
 * may wait while that set keeps the loop busy: libevent's timers are as
 * coarse. Events made active (event_active) never wait. */
#define BASE_POLL_NS 1000000u

static bool base_active(weft_loop *loop) {
  return event_base_get_num_events(loop->base, EVENT_BASE_COUNT_ACTIVE) > 0;
}

/* A busy turn polls the loop's own set alone: one epoll_wait, where going
 * through libevent costs two (libevent's, which reports the set, then the
 * set's) and has the kernel poll the set's ready sockets twice. libevent's
 * turn comes when the set has nothing ready (then the loop may block, and
 * only libevent's wait covers everything), when it has active events
 * (before the set's poll or made by its callbacks), and at least every
 * BASE_POLL_NS. Only while the set is busy: with one peer in ping-pong, a
 * first poll of the set would mostly find it empty and cost one call more.
 * Returns whether libevent's poll may wait for a later turn. */
static bool poll_own_set(weft_loop *loop, bool ready) {
  if (loop->virtual_clock || !weft__io_busy(loop) ||
      loop->now - loop->base_polled >= BASE_POLL_NS || base_active(loop))
    return false;
  return (weft__io_poll(loop) > 0 || ready) && !base_active(loop);
}

/* One poll of libevent, which holds the loop's own set too. Blocks only
 * when no task is ready. */
static void poll_base(weft_loop *loop, bool ready) {
  loop->base_polled = loop->now;
  if (ready) {
    event_base_loop(loop->base, EVLOOP_NONBLOCK);
  } else if (loop->virtual_clock) {
    event_base_loop(loop->base, EVLOOP_NONBLOCK);
    if (weft__list_empty(&loop->runq)) {
      uint64_t next = weft__timer_next(loop);
      if (next != WEFT__NO_DEADLINE) {
        /* Nothing can run and no I/O is ready: simulated time jumps to the
         * next timer. */
        if (next > loop->now)
          loop->now = next;
      } else {
        /* Only another thread or a signal can make progress now. */
        event_base_loop(loop->base, EVLOOP_ONCE);
      }
    }
  } else {
    /* Going idle: a good moment to give surplus stacks back. */
    weft__stack_trim(&loop->pool);
    uint64_t next = weft__timer_next(loop);
    if (next != WEFT__NO_DEADLINE)
      arm_wakeup(loop, next);
    event_base_loop(loop->base, EVLOOP_ONCE);
  }
}

static bool tasks_ready(const weft_loop *loop) {
  return !weft__list_empty(&loop->runq) || weft__io_kicks_pending(loop);
}

/* One poll for I/O, then the timers that came due. */
static void poll_io(weft_loop *loop) {
  loop->stats.loop_iterations++;
  if (!poll_own_set(loop, tasks_ready(loop)))
    poll_base(loop, tasks_ready(loop)); /* the set's callbacks may wake some */
  weft__io_run_kicks(loop);
  weft__loop_update_time(loop);
  weft__timers_fire(loop);
}

/* ---- making, running, freeing ---- */

int weft_loop_new(weft_loop **out, const weft_loop_opts *opts) {
  if (out == NULL)
    return WEFT_EINVAL;
  *out = NULL;
  if (weft__tls_loop != NULL)
    return WEFT_EBUSY;
  weft_loop_opts o = {0};
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  weft_loop *loop = weft__calloc(1, sizeof *loop);
  if (loop == NULL)
    return WEFT_ENOMEM;
  weft__list_init(&loop->runq);
  weft__list_init(&loop->tsq);
  weft__list_init(&loop->tasks);
  weft__list_init(&loop->io_kicked);
  weft__list_init(&loop->slots);
  loop->notify_fd = loop->notify_wfd = loop->timer_fd = -1;
  loop->timer_ev_due = WEFT__NO_DEADLINE;
  loop->virtual_clock = o.virtual_clock;
  loop->now = weft__clock_real_ns();
  loop->next_id = 1;
  loop->dbg_out = stderr;
  pthread_mutex_init(&loop->tslock, NULL);
  /* WEFT_STACK_GUARD=mprotect|canary forces the fallbacks a kernel without
   * MADV_GUARD_INSTALL uses, to test them on a new one. */
  const char *guard = getenv("WEFT_STACK_GUARD");
  weft__stack_pool_init(&loop->pool, o.stack_size ? o.stack_size : 64 * 1024,
                        o.stack_cache ? o.stack_cache : 1024,
                        o.mprotect_guards == 0  ? 8192
                        : o.mprotect_guards < 0 ? 0
                                                : o.mprotect_guards);
  if (guard != NULL && strcmp(guard, "mprotect") == 0) {
    loop->pool.madv_guard = 0;
  } else if (guard != NULL && strcmp(guard, "canary") == 0) {
    loop->pool.madv_guard = 0;
    loop->pool.mprotect_budget = 0;
  }

  int rc = WEFT_ENOMEM;
  struct event_config *cfg = event_config_new();
  if (cfg == NULL)
    goto fail;
  /* weft owns the loop's thread: libevent needs no locks of its own. */
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  loop->base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (loop->base == NULL)
    goto fail;
  loop->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->notify_fd < 0) {
    rc = -errno;
    goto fail;
  }
  loop->notify_wfd = loop->notify_fd;
  loop->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (loop->timer_fd < 0) {
    rc = -errno;
    goto fail;
  }
  loop->timer_ev = event_new(loop->base, loop->timer_fd, EV_READ | EV_PERSIST,
                             timer_cb, loop);
  if (loop->timer_ev == NULL || event_add(loop->timer_ev, NULL) != 0)
    goto fail;
  if ((rc = weft__io_init(loop)) != 0)
    goto fail;
  loop->notify_io.cb = on_notify;
  if ((rc = weft__io_add(loop, &loop->notify_io, loop->notify_fd, EPOLLIN)) !=
      0)
    goto fail;

  loop->altstack = weft__sigaltstack_install();
  weft__tls_loop = loop;
  __atomic_add_fetch(&weft__loops_alive, 1, __ATOMIC_ACQ_REL);
  weft__debug_init(loop);
  if (o.stall_threshold > 0)
    weft_stall_detector(loop, o.stall_threshold);
  *out = loop;
  return 0;

fail:
  weft__io_fini(loop);
  if (loop->timer_ev)
    event_free(loop->timer_ev);
  if (loop->notify_fd >= 0)
    close(loop->notify_fd);
  if (loop->timer_fd >= 0)
    close(loop->timer_fd);
  if (loop->base)
    event_base_free(loop->base);
  pthread_mutex_destroy(&loop->tslock);
  weft__free(loop);
  return rc;
}

weft_loop *weft_loop_current(void) { return weft__tls_loop; }

struct event_base *weft_loop_base(weft_loop *loop) {
  return loop ? loop->base : NULL;
}

/* Runs turns until `done` says stop. */
static void run_until(weft_loop *loop, bool (*done)(weft_loop *, void *),
                      void *arg) {
  for (;;) {
    weft__run_ready(loop);
    if (done(loop, arg))
      return;
    poll_io(loop);
  }
}

static bool task_is_done(weft_loop *loop, void *arg) {
  (void)loop;
  return ((weft_task *)arg)->state == WEFT__DONE;
}

static bool nothing_runs(weft_loop *loop, void *arg) {
  (void)arg;
  return loop->tasks_running == 0;
}

int weft_loop_run(weft_loop *loop, weft_task_fn main, void *arg, int *result) {
  if (loop == NULL || main == NULL)
    return WEFT_EINVAL;
  if (loop->running || weft__tls_loop != loop || loop->current != NULL)
    return WEFT_EBUSY;
  loop->running = true;
  weft_task *t;
  weft_task_opts o = {.size = sizeof o, .name = "main"};
  int rc = weft__spawn_task(&t, main, arg, &o, "weft_loop_run");
  if (rc != 0) {
    loop->running = false;
    return rc;
  }
  weft__task_start(t);
  run_until(loop, task_is_done, t);
  if (result != NULL)
    *result = t->result;
  weft__task_release(t);

  /* Like asyncio.run: whatever main left running is cancelled and awaited,
   * so no task outlives the run and none is silently dropped. */
  loop->draining = true;
  weft__task_cancel_all(loop);
  run_until(loop, nothing_runs, NULL);
  run_tscalls(loop);
  weft__task_reap(loop);
  loop->draining = false;
  loop->running = false;
  return 0;
}

/* ---- per-loop slots ---- */

void weft__loop_slot_add(weft_loop *loop, weft__loop_slot *s) {
  weft__list_push_back(&loop->slots, &s->link);
}

weft__loop_slot *weft__loop_slot_get(weft_loop *loop, const void *key) {
  weft__list *n;
  weft__list_foreach(n, &loop->slots) {
    weft__loop_slot *s = weft__container_of(n, weft__loop_slot, link);
    if (s->key == key)
      return s;
  }
  return NULL;
}

void weft__loop_slot_remove(weft__loop_slot *s) { weft__list_remove(&s->link); }

/* Last added first: a module that builds on another's slot goes before it. */
static void fini_slots(weft_loop *loop) {
  while (!weft__list_empty(&loop->slots)) {
    weft__loop_slot *s =
        weft__container_of(loop->slots.prev, weft__loop_slot, link);
    weft__list_remove(&s->link);
    s->fini(s);
  }
}

int weft_loop_free(weft_loop *loop) {
  if (loop == NULL)
    return 0;
  if (loop->running)
    return WEFT_EBUSY;
  if (loop->stats.tasks_alive > 0 ||
      __atomic_load_n(&loop->stats.objects_alive, __ATOMIC_ACQUIRE) > 0)
    return WEFT_EBUSY;
  pthread_mutex_lock(&loop->tslock);
  loop->ts_closed = true;
  pthread_mutex_unlock(&loop->tslock);
  run_tscalls(loop); /* calls that raced in before the close still run */
  fini_slots(loop);
  weft__io_del(&loop->notify_io);
  weft__io_fini(loop);
  weft__signal_fini(loop);
  weft__debug_fini(loop);
  event_free(loop->timer_ev);
  close(loop->notify_fd);
  close(loop->timer_fd);
  event_base_free(loop->base);
  weft__stack_pool_fini(&loop->pool);
  weft__task_cache_fini(loop);
  weft__free(loop->heap);
  pthread_mutex_destroy(&loop->tslock);
  weft__sigaltstack_remove(loop->altstack);
  if (weft__tls_loop == loop)
    weft__tls_loop = NULL;
  __atomic_sub_fetch(&weft__loops_alive, 1, __ATOMIC_ACQ_REL);
  weft__free(loop);
  return 0;
}

int weft_run_opts(weft_task_fn main, void *arg, const weft_loop_opts *opts) {
  weft_loop *loop;
  int rc = weft_loop_new(&loop, opts);
  if (rc != 0)
    return rc;
  int result = 0;
  rc = weft_loop_run(loop, main, arg, &result);
  if (rc != 0)
    result = rc;
  if (weft_loop_free(loop) == WEFT_EBUSY) {
    weft_stats st;
    weft_loop_stats(loop, &st);
    fprintf(stderr,
            "weft: the loop ended with %llu objects (futures, queues, groups, "
            "...) never freed; they leak\n",
            (unsigned long long)st.objects_alive);
    loop->stats.objects_alive = 0;
    (void)weft_loop_free(loop);
  }
  return result;
}

int weft_run(weft_task_fn main, void *arg) {
  return weft_run_opts(main, arg, NULL);
}

/* ---- time ---- */

uint64_t weft_now_ns(void) {
  weft_loop *loop = weft__tls_loop;
  if (loop == NULL)
    return weft__clock_real_ns();
  weft__loop_update_time(loop);
  return loop->now;
}

double weft_now(void) { return (double)weft_now_ns() / 1e9; }

int weft_clock_advance(weft_loop *loop, double seconds) {
  if (loop == NULL || !loop->virtual_clock || !(seconds >= 0))
    return WEFT_EINVAL;
  loop->now += (uint64_t)(seconds * 1e9);
  weft__timers_fire(loop);
  return 0;
}

void weft_loop_stats(weft_loop *loop, weft_stats *out) {
  *out = loop->stats;
  out->objects_alive =
      __atomic_load_n(&loop->stats.objects_alive, __ATOMIC_ACQUIRE);
  out->stacks_mapped = loop->pool.mapped;
  out->stacks_cached = loop->pool.hot_len;
}
