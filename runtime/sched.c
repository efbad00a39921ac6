/* weft — the scheduler: switching between tasks, parking and waking.
 *
 * Tasks switch directly to the next ready task (no trip through a scheduler
 * context), so a handoff is one register save/restore. The loop's own context
 * (the thread's stack) is entered only when nothing is ready or when the
 * per-turn budget runs out; it then polls I/O and timers and starts a new turn.
 * The budget bounds the work done between two polls, so a set of tasks that
 * keep yielding cannot starve I/O (libuv core.c, Tokio's event_interval).
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Task runs between two I/O polls. Large enough that the poll's system call
 * is amortised to a few ns a switch, small enough to poll every few µs under
 * a busy ping-pong. */
#define WEFT__BUDGET 256

/* ---- sanitizer fiber annotations ----
 * ASan and TSan must be told when the stack changes under them, or they see
 * one thread's stack jump around and report nonsense. */
#ifdef WEFT__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
static __thread void *main_fake_stack;
static __thread const void *main_bottom;
static __thread size_t main_size;
#endif
#ifdef WEFT__TSAN
#include <sanitizer/tsan_interface.h>
static __thread void *main_fiber;
static __thread void *dead_fiber; /* a finished task's, destroyed off it */
#endif

static inline void san_before(weft_task *from, weft_task *to, bool dying) {
  (void)from;
  (void)to;
  (void)dying;
#ifdef WEFT__ASAN
  void **save =
      dying ? NULL : (from ? &from->san_fake_stack : &main_fake_stack);
  if (to)
    __sanitizer_start_switch_fiber(save, to->stack.lo - weft__page_size,
                                   (size_t)(to->stack.hi - to->stack.lo) +
                                       weft__page_size);
  else
    __sanitizer_start_switch_fiber(save, main_bottom, main_size);
#endif
#ifdef WEFT__TSAN
  if (main_fiber == NULL)
    main_fiber = __tsan_get_current_fiber();
  if (to && to->san_fiber == NULL)
    to->san_fiber = __tsan_create_fiber(0);
  __tsan_switch_to_fiber(to ? to->san_fiber : main_fiber, 0);
#endif
}

/* Runs in whatever context a switch lands in. A task that just finished
 * could not give its own stack back while standing on it; do it here. */
static inline void after_switch(weft_task *self) {
  (void)self;
  weft_loop *loop = weft__tls_loop;
  if (loop->dead_stack.kind != WEFT__STACK_NONE) {
    weft__stack_put(&loop->pool, &loop->dead_stack);
    loop->dead_stack.kind = WEFT__STACK_NONE;
  }
#ifdef WEFT__ASAN
  const void *old_bottom;
  size_t old_size;
  __sanitizer_finish_switch_fiber(self ? self->san_fake_stack : main_fake_stack,
                                  &old_bottom, &old_size);
  if (self && main_bottom == NULL) {
    /* The thread's first switch into a task comes from its own stack:
     * remember that stack for the switches back. */
    main_bottom = old_bottom;
    main_size = old_size;
  }
#endif
#ifdef WEFT__TSAN
  if (dead_fiber) {
    __tsan_destroy_fiber(dead_fiber);
    dead_fiber = NULL;
  }
#endif
}

/* ---- switching ---- */

static void task_entry(void *p);

/* Gives a task that never ran its stack (and, for ucontext, its initial
 * frame; the assembly backends boot it on the stack when first switched
 * to). Returns false when no stack could be had: the task then finishes with
 * WEFT_ENOMEM unrun. */
static bool prepare(weft_loop *loop, weft_task *t) {
  if (weft__stack_take(&loop->pool, t->stack_size, &t->stack) != 0)
    return false;
#ifdef WEFT__ASAN
  /* A reused stack still carries the shadow of frames that never returned
   * (the previous task's entry frame). */
  ASAN_UNPOISON_MEMORY_REGION(t->stack.lo, (size_t)(t->stack.hi - t->stack.lo));
#endif
#if !defined(WEFT__CTX_HAVE_START)
  if (weft__ctx_make(&t->ctx, t->stack.lo, t->stack.hi, task_entry, t) != 0) {
    weft__stack_put(&loop->pool, &t->stack);
    t->stack.kind = WEFT__STACK_NONE;
    return false;
  }
  t->flags |= WEFT__T_STARTED;
#endif
  return true;
}

static void finish(weft_task *t, int result);
static void finish_unrun(weft_loop *loop, weft_task *t);

/* Tasks alive beyond which the next one's stack is unlikely to be in the
 * caches: the first level of the data TLB has 64 entries, one a stack. */
#define WEFT__PREFETCH_TASKS 64

/* Starts bringing in what resuming the task at the front of the run queue
 * will touch first: the three cache lines at its saved stack pointer (the
 * saved registers and the frames it returns through). With a million tasks
 * alive each resumption otherwise waits for a TLB walk and a cache miss in
 * turn (~190 ns a task here); issued one task ahead, they overlap with the
 * current task's run. A task that never ran has no stack yet (sp NULL).
 * Inlined by force: GCC 12 otherwise deems a function of loads and
 * prefetches pure, and drops the call. */
static inline __attribute__((always_inline)) void
prefetch_front(weft_loop *loop) {
#if defined(WEFT__CTX_HAVE_START)
  weft__list *f = loop->runq.next;
  if (loop->tasks_running <= WEFT__PREFETCH_TASKS || f == &loop->runq)
    return;
  const char *sp = weft__container_of(f, weft_task, link)->ctx.sp;
  if (sp != NULL) {
    __builtin_prefetch(sp);
    __builtin_prefetch(sp + 64);
    __builtin_prefetch(sp + 128);
  }
#else
  (void)loop;
#endif
}

/* The next task of this turn, off the run queue, or NULL when the turn is
 * over (nothing ready, or the budget is spent). With `ahead`, starts
 * bringing in the stack of the one after it. */
static inline __attribute__((always_inline)) weft_task *
pop_ready(weft_loop *loop, bool ahead) {
  if (loop->budget == 0)
    return NULL;
  weft__list *n = weft__list_pop_front(&loop->runq);
  if (n == NULL)
    return NULL;
  loop->budget--;
  if (ahead)
    prefetch_front(loop);
  return weft__container_of(n, weft_task, link);
}

/* The next task to run in this turn, ready to be switched to, or NULL.
 * `ahead` as for pop_ready: every caller but weft_yield's fast path, where
 * the check alone cost 0.3 ns of a 10.3 ns handoff between two tasks. */
static inline __attribute__((always_inline)) weft_task *
next_ready(weft_loop *loop, bool ahead) {
  weft_task *t;
  while ((t = pop_ready(loop, ahead)) != NULL) {
    if ((t->flags & WEFT__T_STARTED) || prepare(loop, t))
      return t;
    finish_unrun(loop, t);
  }
  return NULL;
}

static inline void stall_begin(weft_loop *loop) {
  if (loop->stall_ns)
    loop->run_start = weft__clock_real_ns();
}

static inline void stall_end(weft_loop *loop, weft_task *t) {
  if (loop->stall_ns) {
    uint64_t ran = weft__clock_real_ns() - loop->run_start;
    if (ran > loop->stall_ns)
      weft__stall_check(loop, t, ran);
  }
}

/* Makes `to` (NULL: the loop's context) the running one. Returns the value
 * to hand it with the switch: for a task suspended in weft_yield's direct
 * switch, what weft_yield returns to it (its checkpoint, computed here
 * because nothing of weft_yield runs after the switch). */
static inline __attribute__((always_inline)) int enter(weft_loop *loop,
                                                       weft_task *to) {
  loop->current = to;
  if (to == NULL)
    return 0;
  to->state = WEFT__RUNNING;
  loop->stats.switches++;
  if (to->stack.kind == WEFT__STACK_CANARY &&
      !weft__stack_canary_ok(&to->stack))
    weft__stack_overflow(to, "the canary at the top of its stack was "
                             "overwritten (a task on the stack above "
                             "overflowed into it)");
  int handed = 0;
  if (to->flags & WEFT__T_YIELD) {
    to->flags &= (uint8_t)~WEFT__T_YIELD;
    handed = weft__checkpoint(to);
  }
  stall_begin(loop);
  return handed;
}

/* Switches from the running context (`self`, NULL for the loop's) to `to`
 * (NULL for the loop's) and returns when something switches back. A task
 * that never ran is booted on its stack. */
static inline __attribute__((always_inline)) void
switch_to(weft_loop *loop, weft_task *self, weft_task *to) {
  weft__ctx *from = self ? &self->ctx : &loop->ctx;
  int handed = enter(loop, to);
  san_before(self, to, false);
  if (to == NULL) {
    weft__ctx_switch(from, &loop->ctx, 0);
  } else if (to->flags & WEFT__T_STARTED) {
    weft__ctx_switch(from, &to->ctx, handed);
  } else {
#if defined(WEFT__CTX_HAVE_START)
    to->flags |= WEFT__T_STARTED;
    weft__ctx_switch_start(from, to->stack.hi, task_entry, to);
#endif
  }
  after_switch(self);
}

/* What every task leaving the CPU does first. */
static inline __attribute__((always_inline)) void
leave(weft_loop *loop, weft_task *self, char *sp) {
  stall_end(loop, self);
  if (self->stack.kind == WEFT__STACK_CANARY && sp < self->stack.lo + 256) {
    /* Without a guard page, catch a deep stack at the next switch instead. */
    weft__stack_overflow(self, "its stack pointer went below the stack");
  }
}

/* The running task gives up the CPU: it has already put itself on a wait
 * list or the run queue. Returns when it runs again. */
static void switch_out(weft_loop *loop, weft_task *self) {
  leave(loop, self, __builtin_frame_address(0));
  weft_task *next = next_ready(loop, true);
  if (next == self) {
    enter(loop, self);
    return;
  }
  switch_to(loop, self, next);
}

void weft__waiters_complete_all(weft__list *head, int status) {
  weft__list *n;
  while ((n = weft__list_pop_front(head)) != NULL)
    weft__waiter_complete(weft__container_of(n, weft__waiter, link), status);
}

static int park(weft_loop *loop, weft_task *t, const char *what, const void *on,
                int flags, uint64_t due) {
  if (flags & WEFT__PARK_NOCANCEL) {
    t->flags |= WEFT__T_NOCANCEL;
  } else {
    int rc = weft__checkpoint(t);
    if (rc != 0)
      return rc;
    if (t->deadline < due)
      due = t->deadline;
    if (due != WEFT__NO_DEADLINE)
      weft__timer_arm(loop, t, due);
  }
  t->state = WEFT__WAITING;
  t->wait_what = what;
  t->wait_on = on;
  t->wake_status = 0;
  switch_out(loop, t);
  t->flags &= (uint8_t) ~(WEFT__T_NOCANCEL | WEFT__T_SLEEP);
  t->wait_what = NULL;
  t->wait_on = NULL;
  if (t->heap_idx != 0)
    weft__timer_disarm(loop, t);
  return t->wake_status;
}

int weft__park(const char *what, const void *on, int flags) {
  weft_loop *loop = weft__tls_loop;
  weft_task *t = loop ? loop->current : NULL;
  if (t == NULL)
    return WEFT_ENOTASK;
  return park(loop, t, what, on, flags, WEFT__NO_DEADLINE);
}

int weft__park_until(const char *what, const void *on, uint64_t due) {
  weft_loop *loop = weft__tls_loop;
  weft_task *t = loop ? loop->current : NULL;
  if (t == NULL)
    return WEFT_ENOTASK;
  t->flags |= WEFT__T_SLEEP;
  return park(loop, t, what, on, 0, due);
}

/* The waiter lives in this frame while the slot points at it; the slot is
 * emptied (by the waker, or below) before the frame goes. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
int weft__slot_park(weft__waiter **slot, const char *what, const void *on) {
  weft__waiter w;
  weft__waiter_init(&w, weft__tls_loop->current);
  *slot = &w;
  int rc;
  do
    rc = weft__park(what, on, 0);
  while (rc == 0 && !w.done);
  if (!w.done)
    *slot = NULL;
  return w.done ? w.status : rc;
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif

weft_task *weft__need_task(const char *fn_name) {
  weft_loop *loop = weft__tls_loop;
  weft_task *t = loop ? loop->current : NULL;
#ifdef WEFT_DEBUG
  if (t == NULL) {
    fprintf(stderr, "weft: %s() called outside a task\n", fn_name);
    assert(!"suspending call outside a task");
  }
#else
  (void)fn_name;
#endif
  return t;
}

/* Where the sanitizers need no word after a switch, weft_yield switches
 * straight from its own frame as a tail call: the task resumes directly in
 * its caller, with what weft_yield returns handed over by whoever resumes
 * it (enter). A resumed task otherwise returns through the switch routine,
 * switch_out and weft_yield, and each of those returns is mispredicted
 * (the CPU's return stack holds another task's calls): ~6 ns apiece here. */
#if defined(WEFT__CTX_HAVE_START) && !defined(WEFT__ASAN) &&                   \
    !defined(WEFT__TSAN)
#define DIRECT_YIELD 1
#endif

int weft_yield(void) {
  WEFT__NEED_TASK(t);
  int rc = weft__checkpoint(t);
  if (rc != 0)
    return rc;
  weft_loop *loop = t->loop;
  weft__ready(t);
#ifdef DIRECT_YIELD
  leave(loop, t, __builtin_frame_address(0));
  weft_task *next = next_ready(loop, false);
  if (next == t) {
    enter(loop, t);
    return weft__checkpoint(t);
  }
  t->flags |= WEFT__T_YIELD;
  int handed = enter(loop, next);
  if (next == NULL)
    return weft__ctx_switch(&t->ctx, &loop->ctx, 0);
  if (next->flags & WEFT__T_STARTED)
    return weft__ctx_switch(&t->ctx, &next->ctx, handed);
  next->flags |= WEFT__T_STARTED;
  return weft__ctx_switch_start(&t->ctx, next->stack.hi, task_entry, next);
#else
  switch_out(loop, t);
  return weft__checkpoint(t);
#endif
}

int weft_sleep(double seconds) {
  WEFT__NEED_TASK(t);
  if (!(seconds > 0)) /* also NaN */
    return weft_yield();
  weft_loop *loop = t->loop;
  weft__loop_update_time(loop);
  double ns = seconds * 1e9;
  uint64_t due = ns >= (double)(UINT64_MAX - loop->now)
                     ? WEFT__NO_DEADLINE - 1
                     : loop->now + (uint64_t)ns;
  for (;;) {
    int rc = weft__park_until("sleep", NULL, due);
    if (rc != 0)
      return rc;
    if (loop->now >= due)
      return 0;
    /* Woken early by nobody in particular (not expected): sleep on. */
  }
}

/* ---- task start and end ---- */

static void task_entry(void *p) {
  weft_task *t = p;
  after_switch(t);
  finish(t, t->fn(t->arg));
}

/* Everything that happens when a task's function has returned (or when it
 * could not be started): waiters learn, owners are told, the descriptor goes
 * if nobody holds it. Runs on the loop's thread. */
static void complete(weft_loop *loop, weft_task *t, int result) {
  t->result = result;
  t->state = WEFT__DONE;
  loop->tasks_running--;
  if (!weft__list_empty(&t->joiners))
    weft__waiters_complete_all(&t->joiners, 0);
  if (t->flags & WEFT__T_GROUP)
    weft__group_child_done(t);
  else if (t->flags & WEFT__T_DETACHED)
    weft__task_release(t);
}

static void finish_unrun(weft_loop *loop, weft_task *t) {
  complete(loop, t, WEFT_ENOMEM);
}

static void finish(weft_task *t, int result) {
  weft_loop *loop = t->loop;
  stall_end(loop, t);
  if (!weft__stack_canary_ok(&t->stack))
    weft__stack_overflow(t, "the canary at the top of its stack was "
                            "overwritten");
    /* The stack goes back to the pool while we still stand on it: nothing
     * writes to a pool stack before its next task boots on it, and that
     * happens only once we have jumped off (it may be the task we jump to).
     * Only the ucontext backend writes a first frame when it takes a stack;
     * there, and for a stack that needs more than a store to give back (an
     * own mapping), whoever runs next gives it back. */
#if defined(WEFT__CTX_HAVE_START)
  if (!weft__stack_put_hot(&loop->pool, &t->stack))
#endif
  {
    /* A task resumed by a direct yield runs nothing after the switch, so
     * an earlier dead stack may still wait here; we are not on it. */
    if (loop->dead_stack.kind != WEFT__STACK_NONE)
      weft__stack_put(&loop->pool, &loop->dead_stack);
    loop->dead_stack = t->stack;
  }
  t->stack.kind = WEFT__STACK_NONE;
#ifdef WEFT__TSAN
  dead_fiber = t->san_fiber; /* destroyed by whoever runs next */
  t->san_fiber = NULL;
#endif
  complete(loop, t, result); /* may free t */
  weft_task *next = next_ready(loop, true);
  int handed = enter(loop, next);
  san_before(NULL, next, true);
  if (next == NULL) {
    weft__ctx_jump(&loop->ctx, 0);
  } else if (next->flags & WEFT__T_STARTED) {
    weft__ctx_jump(&next->ctx, handed);
  } else {
#if defined(WEFT__CTX_HAVE_START)
    next->flags |= WEFT__T_STARTED;
    weft__ctx_jump_start(next->stack.hi, task_entry, next);
#endif
  }
}

/* ---- the loop side ---- */

/* Runs ready tasks until none is ready or the turn's budget is spent. Called
 * on the loop's own context. */
void weft__run_ready(weft_loop *loop) {
  loop->budget = WEFT__BUDGET;
  weft_task *t = next_ready(loop, true);
  if (t != NULL)
    switch_to(loop, NULL, t);
  loop->current = NULL;
  assert(loop->dead_stack.kind == WEFT__STACK_NONE);
}
