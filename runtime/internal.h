/* weft — what the runtime's files share: the loop and task structs, the
 * scheduler's entry points, and the waiter protocol every waiting primitive
 * (sync, future, join, group, and the net layer later) is built on.
 *
 * The waiter protocol:
 *   1. the primitive links a weft__waiter (in its own frame) into its wait
 * list;
 *   2. it calls weft__park(), which suspends the task;
 *   3. a waker unlinks the waiter and calls weft__waiter_complete(), which
 *      marks it done (with a status and optional data) and readies the task;
 *   4. after weft__park() returns, `w.done` says whether the wait was
 *      satisfied. If it was, the primitive returns success even when park
 *      reported a cancellation that raced with it (nothing is lost); if it was
 *      not, the primitive unlinks the waiter and returns park's error.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <pthread.h>
#include <stdio.h>
#include <weft/weft.h>

#include "ctx.h"
#include "list.h"
#include "stack.h"

#define WEFT__NO_DEADLINE UINT64_MAX

/* Sanitizers that must hear about stack switches (sched.c). */
#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif

/* Task states. */
enum {
  WEFT__READY,   /* on the run queue (never run yet unless T_STARTED) */
  WEFT__RUNNING, /* the loop's current task */
  WEFT__WAITING, /* parked */
  WEFT__DONE     /* returned; descriptor kept until its handle goes */
};

/* Task flags. */
enum {
  WEFT__T_CANCELLED = 1 << 0, /* level-triggered cancellation requested */
  WEFT__T_DETACHED = 1 << 1,  /* nobody holds a handle */
  WEFT__T_GROUP = 1 << 2,     /* owned by a group */
  WEFT__T_NOCANCEL = 1 << 3,  /* current park ignores cancel and deadlines */
  WEFT__T_SLEEP = 1 << 4,     /* current park's timer ends a sleep */
  WEFT__T_KEEP = 1 << 5,      /* group child whose borrowed handle is out */
  WEFT__T_STARTED = 1 << 6,   /* has run at least once */
  WEFT__T_YIELD = 1 << 7,     /* suspended by weft_yield's direct switch: the
                                 resumer hands it its checkpoint (sched.c) */
};

typedef struct weft__waiter {
  weft__list link;
  weft_task *task;
  void *data; /* what the waker hands over (an item, a value) */
  int status; /* the waker's verdict, valid when done */
  bool done;
} weft__waiter;

struct weft_task {
  weft__ctx ctx;
  weft_loop *loop;
  weft__list link; /* run queue */
  weft_task_fn fn;
  void *arg;
  weft__stack stack;
  size_t stack_size; /* requested; 0 = loop default */
  int result;
  int wake_status; /* why park returned: 0, WEFT_ECANCELED, WEFT_ETIMEDOUT */
  uint8_t state;
  uint8_t flags;
  uint32_t heap_idx; /* 1-based slot in the timer heap; 0 = no timer */
  uint64_t timer_due;
  uint64_t deadline; /* effective deadline of the scopes, or NO_DEADLINE */
  weft_timeout *scopes;
  weft__list joiners; /* waiters of weft_join / weft_wait_any */
  weft_group *group;
  weft__list group_link;
  weft__list all_link;   /* loop->tasks, for dumps and shutdown */
  const char *wait_what; /* what the task is parked on, for dumps */
  const void *wait_on;
  const char *site;
  char *name;
  uint64_t id;
#if defined(WEFT__ASAN) || defined(WEFT__TSAN)
  void *san_fake_stack;
  void *san_fiber;
#endif
};

/* A call queued by weft_loop_call_threadsafe. */
typedef struct weft__tscall {
  weft__list link;
  void (*fn)(void *);
  void *arg;
  bool owned; /* allocated by weft_loop_call_threadsafe: freed when run */
} weft__tscall;

/* Queues an embedded call node (cannot fail for lack of memory). Returns 0
 * or WEFT_ECLOSED. Any thread. */
int weft__loop_post(weft_loop *loop, weft__tscall *c);

/* An fd in the loop's own epoll set (io.c), embedded in its owner. The
 * callback gets the kernel's epoll flags as they are (EPOLLRDHUP, EPOLLHUP
 * and EPOLLERR included, which libevent folds away), or 0 when it runs
 * because of weft__io_kick. It runs on the loop's thread, outside any task,
 * and may free its owner (after weft__io_del). */
typedef struct weft__io {
  void (*cb)(struct weft__io *io, uint32_t events);
  weft_loop *loop; /* NULL once deleted */
  int fd;
  weft__list kick;
} weft__io;

struct weft_loop {
  weft__ctx ctx; /* the thread's own context: the scheduler runs here */
  weft_task *current;
  weft__list runq;
  unsigned budget; /* task runs left before the next I/O poll */
  struct event_base *base;

  /* Timers: a binary min-heap of tasks keyed by timer_due. */
  weft_task **heap;
  size_t heap_len, heap_cap;
  int timer_fd; /* timerfd (CLOCK_MONOTONIC, absolute) that wakes the loop */
  struct event *timer_ev;
  uint64_t timer_ev_due; /* when timer_fd fires, or NO_DEADLINE */
  uint64_t now;          /* cached clock, ns */
  bool virtual_clock;

  /* Thread-safe calls. Lock order: tslock is a leaf; nothing else is taken
   * while it is held. */
  pthread_mutex_t tslock;
  weft__list tsq;
  bool ts_closed;
  int notify_fd; /* eventfd (or pipe read end) that wakes the loop */
  int notify_wfd;
  weft__io notify_io; /* in the loop's own set: no wait behind libevent's */

  weft__stack_pool pool;
  weft__stack dead_stack; /* of the task that just returned; freed off it */

  /* Descriptors of freed tasks kept for the next spawns, chained through
   * `link.next` (LIFO, so the next spawn gets a warm one). A task that lives
   * a few µs otherwise spends a third of its instructions in malloc and
   * free. Bounded by pool.cache_max, like the hot stacks. */
  weft__list *free_tasks;
  size_t free_tasks_len;

  weft__list tasks;       /* every live task */
  uint64_t tasks_running; /* spawned and not returned */
  uint64_t next_id;
  bool running;
  bool draining; /* main returned: remaining tasks are being cancelled */

  weft_stats stats;

  /* Debug aids. */
  uint64_t stall_ns; /* 0: detector off */
  uint64_t run_start;
  FILE *dbg_out;
  struct event *usr1_ev;
  void *altstack;

  /* Signals (weft_signal_wait). */
  struct weft__sigstate *sig;

  /* Per-loop state of other modules (weft__loop_slot), finished at free. */
  weft__list slots;

  /* Raw fd readiness (io.c): the loop's own epoll set, and the fds whose
   * callback must run at the next poll. */
  struct weft__ioset *io;
  weft__list io_kicked;
  uint64_t base_polled; /* loop clock of libevent's last poll */
};

/* Adds fd to the loop's set with `events` (EPOLLIN, EPOLLET, ...; cb set by
 * the caller). Returns 0, WEFT_ENOMEM, or a negated errno. */
int weft__io_add(weft_loop *loop, weft__io *io, int fd, uint32_t events);
/* Changes the events io is watched for. Returns as weft__io_add. */
int weft__io_mod(weft__io *io, uint32_t events);
/* Takes io out of the set (before its fd is closed) and out of the kick
 * list; a callback still due in the current batch will not run. */
void weft__io_del(weft__io *io);
/* Has io's callback run (with events 0) at the next poll of the loop, which
 * then does not block: for readiness that is already there and raises no
 * new edge. */
void weft__io_kick(weft__io *io);
bool weft__io_kicks_pending(const weft_loop *loop);
/* Makes the loop's set (weft_loop_new) / frees it (weft_loop_free). Returns
 * 0, WEFT_ENOMEM, or a negated errno. */
int weft__io_init(weft_loop *loop);
void weft__io_run_kicks(weft_loop *loop);
/* Collects the set's ready fds without blocking and runs their callbacks,
 * for a loop that polls the set before libevent's. Returns how many were
 * ready. */
int weft__io_poll(weft_loop *loop);
/* Whether the set's fds kept the loop busy of late, so that polling the set
 * alone likely finds some ready (io.c says when). */
bool weft__io_busy(const weft_loop *loop);
void weft__io_fini(weft_loop *loop);

/* Per-loop slots: the one hook for state a module keeps per loop and makes on
 * first use (the net layer's default DNS resolver). The module embeds the
 * node in its own object and adds it; weft_loop_free() calls each fini, last
 * added first, once the loop has no tasks left and before the event base
 * goes, so fini may still free libevent events. Slot objects are the loop's
 * own and do not count in objects_alive (a user never frees them). Loop
 * thread only. */
typedef struct weft__loop_slot {
  weft__list link;
  const void *key; /* the owning module's tag: the address of a static */
  void (*fini)(struct weft__loop_slot *slot);
} weft__loop_slot;

/* Adds `s` (key and fini set) to the loop. */
void weft__loop_slot_add(weft_loop *loop, weft__loop_slot *s);
/* The slot added under `key`, or NULL. */
weft__loop_slot *weft__loop_slot_get(weft_loop *loop, const void *key);
/* Takes `s` off its loop without calling fini (the module frees it). */
void weft__loop_slot_remove(weft__loop_slot *s);

/* Thread-locals read on every request use the initial-exec model: an
 * offset from the thread pointer, where the default model for a shared
 * library calls __tls_get_addr at each use. Only for small variables: the
 * room for them is short when the library is loaded by dlopen. */
#define WEFT__TLS_IE __attribute__((tls_model("initial-exec")))

/* Per-thread current loop. */
extern __thread weft_loop *weft__tls_loop WEFT__TLS_IE;

static inline weft_loop *weft__loop(void) { return weft__tls_loop; }

/* Allocation through the user's hook. */
void *weft__malloc(size_t n);
void *weft__calloc(size_t n, size_t m);
void *weft__realloc(void *p, size_t n);
void weft__free(void *p);
char *weft__strdup(const char *s);

/* Clock. */
uint64_t weft__clock_real_ns(void);
void weft__loop_update_time(weft_loop *loop);

/* Scheduler. */
/* Appends t to its loop's run queue. */
static inline void weft__ready(weft_task *t) {
  t->state = WEFT__READY;
  weft__list_push_back(&t->loop->runq, &t->link);
}
/* Readies a parked task; park returns `status`. A task not parked (already
 * woken by another waker, or running) is left alone. */
static inline void weft__wake(weft_task *t, int status) {
  if (t->state != WEFT__WAITING)
    return;
  t->wake_status = status;
  weft__ready(t);
}
int weft__park(const char *what, const void *on, int flags);
/* Flags for weft__park. */
#define WEFT__PARK_NOCANCEL 1 /* only a waker can end it */
int weft__park_until(const char *what, const void *on, uint64_t due);
void weft__fire_deadline(weft_task *t);
/* weft_cancelled() inline, for the library's own hot paths (the public one
 * is a call, and weft_current() another inside it). */
static inline bool weft__cancelled(void) {
  weft_loop *loop = weft__tls_loop;
  return loop != NULL && loop->current != NULL &&
         (loop->current->flags & WEFT__T_CANCELLED);
}
/* The checkpoint every suspension starts with: WEFT_ECANCELED when the task is
 * cancelled, WEFT_ETIMEDOUT (marking the expired scopes) when a deadline
 * passed, else 0. */
static inline int weft__checkpoint(weft_task *t) {
  if (t->flags & WEFT__T_CANCELLED)
    return WEFT_ECANCELED;
  if (t->deadline != WEFT__NO_DEADLINE && t->deadline <= t->loop->now) {
    weft__fire_deadline(t);
    return WEFT_ETIMEDOUT;
  }
  return 0;
}

static inline void weft__waiter_init(weft__waiter *w, weft_task *t) {
  weft__list_init(&w->link);
  w->task = t;
  w->data = NULL;
  w->status = 0;
  w->done = false;
}

/* Marks w satisfied with `status` and readies its task. The caller has
 * already unlinked w. */
static inline void weft__waiter_complete(weft__waiter *w, int status) {
  w->done = true;
  w->status = status;
  weft__wake(w->task, 0);
}

/* A slot that holds at most one waiting task (a stream's reader, its
 * writer): wakes the task with `status`, if one waits. */
static inline void weft__slot_wake(weft__waiter **slot, int status) {
  weft__waiter *w = *slot;
  if (w != NULL) {
    *slot = NULL;
    weft__waiter_complete(w, status);
  }
}
/* Parks the running task in *slot until weft__slot_wake. Returns the
 * waker's status, or park's error (cancelled, timed out: the slot is empty
 * again). */
int weft__slot_park(weft__waiter **slot, const char *what, const void *on);

/* Wakes every waiter of a list with `status` (used by frees and closes). */
void weft__waiters_complete_all(weft__list *head, int status);

/* Timer heap. */
void weft__timer_arm(weft_loop *loop, weft_task *t, uint64_t due);
void weft__timer_disarm(weft_loop *loop, weft_task *t);
void weft__timers_fire(weft_loop *loop);
uint64_t weft__timer_next(weft_loop *loop);
void weft__run_ready(weft_loop *loop);

/* Tasks. */
void weft__task_cancel_all(weft_loop *loop);
void weft__task_reap(weft_loop *loop); /* frees done tasks nobody joined */
void weft__task_cache_fini(weft_loop *loop); /* frees the cached descriptors */
void weft__task_release(weft_task *t); /* drops the handle of a done task */
void weft__report_failure(weft_task *t, const char *why);
int weft__spawn_task(weft_task **out, weft_task_fn fn, void *arg,
                     const weft_task_opts *opts, const char *site);
/* Waits for t to return without being interruptible (used after cancelling
 * a child whose resources must not outlive the caller). */
void weft__join_uninterruptible(weft_task *t);

/* Freed task descriptors are kept per loop for the next spawns (task.c has
 * why), except under ASan, where every descriptor goes back to malloc so
 * that a use after free is caught instead of landing in a recycled task. */
#ifdef WEFT__ASAN
#define WEFT__TASK_CACHE 0
#else
#define WEFT__TASK_CACHE 1
#endif

/* The slow halves of the two below (task.c): a clean descriptor when the
 * cache is empty or the timer heap must grow, and a free that cannot just
 * push the descriptor on the cache. */
weft_task *weft__task_alloc_slow(weft_loop *loop);
void weft__task_free_slow(weft_task *t);

/* The spawn every caller shares, once the options are read: a descriptor
 * with its per-spawn fields set, linked into the loop's list of tasks, not
 * started. A descriptor from the cache is clean: what a returned task
 * leaves behind is already what a new one needs (its lists empty, no timer,
 * no stack, no name, the same loop), so only what differs from task to task
 * is set. Every task owns a timer-heap slot from birth (the slow path grows
 * the heap), so arming a timer later never fails. NULL when out of memory. */
static inline weft_task *weft__task_new(weft_loop *loop, weft_task_fn fn,
                                        void *arg, size_t stack_size,
                                        const char *site) {
  weft__list *n = loop->free_tasks;
  weft_task *t;
  if (n != NULL && loop->heap_cap > loop->stats.tasks_alive) {
    loop->free_tasks = n->next;
    loop->free_tasks_len--;
    t = weft__container_of(n, weft_task, link);
  } else if ((t = weft__task_alloc_slow(loop)) == NULL) {
    return NULL;
  }
  t->fn = fn;
  t->arg = arg;
  t->stack_size = stack_size;
  t->result = 0;
  t->wake_status = 0;
  t->state = WEFT__READY;
  t->flags = 0;
  t->deadline = WEFT__NO_DEADLINE;
  t->scopes = NULL;
  t->group = NULL;
  t->site = site ? site : "?";
  t->id = loop->next_id++;
#if defined(WEFT__CTX_HAVE_START)
  t->ctx.sp = NULL; /* no stack to prefetch until it runs (sched.c) */
#endif
#if defined(WEFT__ASAN) || defined(WEFT__TSAN)
  t->san_fake_stack = NULL;
  t->san_fiber = NULL;
#endif
  weft__list_push_back(&loop->tasks, &t->all_link);
  loop->stats.tasks_alive++;
  loop->stats.tasks_spawned++;
  return t;
}

/* Queues a freshly made task. */
static inline void weft__task_start(weft_task *t) {
  weft_loop *loop = t->loop;
  loop->tasks_running++;
  if (loop->draining)
    t->flags |= WEFT__T_CANCELLED; /* the loop is shutting down */
  weft__ready(t);
}

/* Frees a done task's descriptor (its lists already empty): back on the
 * loop's cache, clean, when it has room. */
static inline void weft__task_free(weft_task *t) {
  weft_loop *loop = t->loop;
  weft__list_remove(&t->all_link);
  loop->stats.tasks_alive--;
  weft__ctx_free(&t->ctx);
  if (!WEFT__TASK_CACHE || t->name != NULL ||
      loop->free_tasks_len >= loop->pool.cache_max) {
    weft__task_free_slow(t);
    return;
  }
  t->link.next = loop->free_tasks;
  loop->free_tasks = &t->link;
  loop->free_tasks_len++;
}

/* Groups. */
struct weft_group {
  weft_loop *loop;
  weft__list children; /* running children */
  weft__list kept;     /* returned children whose borrowed handle is out */
  weft__list waiters;  /* tasks in weft_group_wait */
  size_t running;
  int first_error;
  bool cancelled;
};

/* A child's first failure: cancels its siblings (group.c). */
void weft__group_fail(weft_group *g, int error);

/* Accounts for a child of a group that has returned. */
static inline void weft__group_child_done(weft_task *t) {
  weft_group *g = t->group;
  weft__list_remove(&t->group_link);
  g->running--;
  /* A cancelled child is not a failure: either the group cancelled it
   * because of another failure, or someone cancelled just that child. */
  if (t->result < 0 && t->result != WEFT_ECANCELED && g->first_error == 0)
    weft__group_fail(g, t->result);
  if (t->flags & WEFT__T_KEEP)
    weft__list_push_back(&g->kept, &t->group_link);
  else
    weft__task_free(t);
  if (g->running == 0)
    weft__waiters_complete_all(&g->waiters, 0);
}

/* Loop object accounting: objects count so weft_loop_free can refuse. */
/* Atomic: a future's last reference may drop on another thread. */
static inline void weft__obj_add(weft_loop *loop) {
  __atomic_add_fetch(&loop->stats.objects_alive, 1, __ATOMIC_RELAXED);
}
static inline void weft__obj_del(weft_loop *loop) {
  __atomic_sub_fetch(&loop->stats.objects_alive, 1, __ATOMIC_RELEASE);
}

/* Requires a current task; returns it or NULL (the caller returns
 * WEFT_ENOTASK). Debug builds assert. */
weft_task *weft__need_task(const char *fn_name);

#define WEFT__NEED_TASK(t)                                                     \
  weft_task *t = weft__need_task(__func__);                                    \
  if (t == NULL)                                                               \
  return WEFT_ENOTASK

/* Debug aids. */
void weft__stall_check(weft_loop *loop, weft_task *t, uint64_t ran_ns);
void weft__debug_init(weft_loop *loop);
void weft__debug_fini(weft_loop *loop);
void weft__signal_fini(weft_loop *loop);

/* Stack overflow reporting (stack.c). */
void weft__stack_overflow(weft_task *t, const char *how)
    __attribute__((noreturn));
void *weft__sigaltstack_install(void);
void weft__sigaltstack_remove(void *mem);

extern int weft__loops_alive;

#endif
