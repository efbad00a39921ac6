/* weft — tasks, cancellation and deadlines.
 *
 * A task is a stackful coroutine: a C function running on its own stack that
 * may suspend anywhere (sleep, read, lock, await) while the other tasks of its
 * loop run. Tasks belong to the loop of the thread that spawned them.
 *
 * Suspending calls ("may suspend" in their comments) must be made from a
 * task: elsewhere they return WEFT_ENOTASK (and assert in debug builds).
 *
 * Cancellation is level-triggered (as in Trio): once a task is cancelled,
 * the suspension it is in and every later one return WEFT_ECANCELED until the
 * task returns. A deadline scope works the same way with WEFT_ETIMEDOUT.
 * Nothing unwinds: the task sees an error code, cleans up, and returns.
 * When both apply, cancellation wins, so an inner deadline can never swallow
 * an outer cancellation.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <weft/common.h>
#include <weft/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_task weft_task;

#define WEFT__STR2(x) #x
#define WEFT__STR(x) WEFT__STR2(x)
/* "file.c:123": where a task was spawned, shown by dumps and error reports. */
#define WEFT_SITE __FILE__ ":" WEFT__STR(__LINE__)

typedef struct weft_task_opts {
  size_t size;       /* sizeof(weft_task_opts) */
  const char *name;  /* copied; default: the function's spawn site */
  size_t stack_size; /* 0: the loop's default (64 KiB) */
} weft_task_opts;

/*
 * Spawns fn(arg) as a new task on the calling thread's loop (asyncio
 * create_task). It starts at the loop's next turn; the caller keeps running.
 * May be called from a task or from a callback on the loop's thread.
 *
 * With `out`, the caller gets a handle and must consume it with weft_join()
 * (or weft_wait_for()) or give it up with weft_detach(). With out == NULL the
 * task is detached at once. Either way the runtime owns the task until it
 * returns, so a task is never lost; a detached task that fails (returns < 0,
 * other than WEFT_ECANCELED) is reported on stderr with its spawn site, as
 * nobody else will see the error.
 *
 * A not-yet-started task is a small descriptor; its stack is taken from the
 * loop's pool when it first runs and returned when it returns.
 * Returns 0, WEFT_ENOMEM, WEFT_EINVAL (fn NULL), or WEFT_ENOLOOP.
 */
#define weft_spawn(out, fn, arg)                                               \
  weft_spawn_at((out), (fn), (arg), NULL, WEFT_SITE)
#define weft_spawn_opts(out, fn, arg, opts)                                    \
  weft_spawn_at((out), (fn), (arg), (opts), WEFT_SITE)
WEFT_EXTERN WEFT_NODISCARD int weft_spawn_at(weft_task **out, weft_task_fn fn,
                                             void *arg,
                                             const weft_task_opts *opts,
                                             const char *site);

/*
 * Waits for `t` to return (await task). May suspend.
 * Returns 0 and stores t's return value in *result (may be NULL); the handle
 * is then consumed. Returns WEFT_ECANCELED or WEFT_ETIMEDOUT when the caller
 * is cancelled or its deadline passes first: `t` keeps running and the handle
 * stays valid (join again, cancel, or detach it). WEFT_EDEADLK when t is the
 * caller, WEFT_EINVAL when t is detached or belongs to a group, WEFT_ENOTASK
 * outside a task.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_join(weft_task *t, int *result);

/* Gives up the handle: the runtime runs t to the end and frees it. */
WEFT_EXTERN void weft_detach(weft_task *t);

/* Requests cancellation of t (level-triggered; see above). t runs on until it
 * returns, each suspension failing with WEFT_ECANCELED; a task cancelled
 * before it started still starts, so it can release what `arg` holds.
 * Cancelling a finished task does nothing. Loop thread only. */
WEFT_EXTERN void weft_cancel(weft_task *t);

/* Waits until at least one of tasks[0..n) has returned (asyncio.wait
 * FIRST_COMPLETED) and stores its index in *index. Handles are not
 * consumed. May suspend. Returns 0, WEFT_EINVAL (n == 0),
 * WEFT_ECANCELED, WEFT_ETIMEDOUT, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_wait_any(weft_task *const *tasks, size_t n,
                                             size_t *index);

/* Runs fn(arg) as a child task and waits up to `seconds` for it
 * (asyncio.wait_for). In time: stores its result in *result, returns 0. On
 * timeout the child is cancelled and awaited (so nothing it holds outlives the
 * call), *result gets what it returned, and the call returns WEFT_ETIMEDOUT.
 * If the caller is cancelled, the child is cancelled and awaited the same way
 * and WEFT_ECANCELED returned. May suspend. Also WEFT_ENOMEM, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_wait_for(weft_task_fn fn, void *arg,
                                             double seconds, int *result);

/* Lets every other ready task run, then resumes (asyncio.sleep(0)). A
 * checkpoint: returns WEFT_ECANCELED / WEFT_ETIMEDOUT when cancelled or past
 * a deadline, else 0. WEFT_ENOTASK outside a task. */
WEFT_EXTERN int weft_yield(void);

/* Suspends for `seconds` (asyncio.sleep). Returns 0 when the time is up,
 * WEFT_ECANCELED, WEFT_ETIMEDOUT when a deadline comes first, WEFT_ENOTASK. */
WEFT_EXTERN int weft_sleep(double seconds);

/* The running task, or NULL outside a task. */
WEFT_EXTERN weft_task *weft_current(void);
/* True when the running task has been cancelled. */
WEFT_EXTERN bool weft_cancelled(void);

WEFT_EXTERN bool weft_task_done(const weft_task *t);
/* t's return value; meaningful once weft_task_done(t). */
WEFT_EXTERN int weft_task_result(const weft_task *t);
WEFT_EXTERN const char *weft_task_name(const weft_task *t);
/* Copies `name`. Returns 0 or WEFT_ENOMEM. */
WEFT_EXTERN int weft_task_set_name(weft_task *t, const char *name);
/* A number unique within the process, for logs. */
WEFT_EXTERN uint64_t weft_task_id(const weft_task *t);

/*
 * Deadline scopes (asyncio.timeout). Between enter and exit, every suspension
 * of the task fails with WEFT_ETIMEDOUT once the deadline has passed; scopes
 * nest, the earliest deadline rules, and an expired outer scope stays expired
 * after an inner one exits. Exit scopes in reverse order of entering. The
 * struct lives in the caller's frame; its fields are private.
 */
typedef struct weft_timeout {
  uint64_t deadline;
  uint64_t saved;
  struct weft_timeout *outer;
  weft_task *task;
  int fired;
} weft_timeout;

/* Enters a scope whose deadline is `seconds` from now (INFINITY: none). */
WEFT_EXTERN void weft_timeout_enter(weft_timeout *scope, double seconds);
/* Same with an absolute deadline on the weft_now() clock. */
WEFT_EXTERN void weft_timeout_enter_at(weft_timeout *scope, double when);
/* Leaves the scope. Returns WEFT_ETIMEDOUT when this scope's deadline made a
 * suspension fail, 0 otherwise, WEFT_ENOTASK outside a task. */
WEFT_EXTERN int weft_timeout_exit(weft_timeout *scope);

#ifdef __cplusplus
}
#endif

#endif
