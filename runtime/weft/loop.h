/* weft — the event loop (one per thread, a libevent event_base underneath).
 *
 * Most programs only call weft_run(): it makes a loop, runs `main` as the
 * first task, and frees everything when main returns (asyncio.run). The loop
 * object is exposed for programs that run several loops (one per thread) or
 * that must reach a loop from another thread.
 */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_loop weft_loop;
struct event_base;

/* A task body: runs on its own stack, may suspend, returns 0 (or a value
 * >= 0) on success and a negative WEFT_E* code on failure. */
typedef int (*weft_task_fn)(void *arg);

/* Loop options. Zero fields take the default; NULL options mean all
 * defaults. `size` must be sizeof(weft_loop_opts) so the struct can grow. */
typedef struct weft_loop_opts {
  size_t size;
  /* Default stack size of a task, in bytes, rounded up to whole pages.
   * Default 64 KiB; minimum 16 KiB. */
  size_t stack_size;
  /* Stacks kept ready (memory still mapped) for reuse after tasks return;
   * the rest are given back to the kernel when the loop goes idle. As many
   * freed task descriptors are kept for reuse too. Default 1024. */
  size_t stack_cache;
  /* Stacks that get an mprotect'ed guard page when the kernel cannot place
   * a guard without a VMA of its own (before Linux 6.13). Past this budget
   * stacks are checked by canary instead (docs/internals/stacks.md).
   * Default 8192; -1 means never use mprotect guards. */
  long mprotect_guards;
  /* Run timers and deadlines on a simulated clock: when no task can run and
   * no I/O is ready, time jumps to the next timer. For tests. */
  bool virtual_clock;
  /* Loop-stall detector threshold in seconds; 0 follows $WEFT_STALL and
   * $WEFT_STALL_MS, or leaves the detector off. See weft/debug.h. */
  double stall_threshold;
} weft_loop_opts;

/* Runs `main(arg)` as the first task on a new loop in this thread and
 * returns its result once it returns. Tasks still alive then are cancelled
 * and awaited (as asyncio.run does), then the loop is freed. Returns main's
 * result, or WEFT_ENOMEM / WEFT_EBUSY (a loop already runs on this thread)
 * when the loop cannot be made. */
WEFT_EXTERN int weft_run(weft_task_fn main, void *arg);
WEFT_EXTERN int weft_run_opts(weft_task_fn main, void *arg,
                              const weft_loop_opts *opts);

/* Makes a loop bound to the calling thread. Returns 0, WEFT_ENOMEM, or
 * WEFT_EBUSY when this thread already has a loop. */
WEFT_EXTERN WEFT_NODISCARD int weft_loop_new(weft_loop **out,
                                             const weft_loop_opts *opts);

/* Runs `main(arg)` as a task on `loop` until it returns; stores its result
 * in *result (may be NULL). Then cancels and awaits every task still alive.
 * Must be called on the loop's thread, outside any task. Returns 0, or
 * WEFT_ENOMEM, WEFT_EBUSY (already running). */
WEFT_EXTERN int weft_loop_run(weft_loop *loop, weft_task_fn main, void *arg,
                              int *result);

/* Frees a loop that no longer runs. Returns WEFT_EBUSY, freeing nothing,
 * while the loop still owns live objects (futures, queues, tasks, ...);
 * weft_loop_stats() tells which. NULL is allowed. */
WEFT_EXTERN int weft_loop_free(weft_loop *loop);

/* The loop of the calling thread, or NULL. */
WEFT_EXTERN weft_loop *weft_loop_current(void);

/* The libevent base under the loop, for adding your own events. Callbacks
 * run outside any task: they may wake tasks but never suspend. While the
 * loop's streams keep it busy, the base is polled at least once a
 * millisecond, so an event (other than one made active) may wait that long;
 * docs/internals/scheduler.md says why. */
WEFT_EXTERN struct event_base *weft_loop_base(weft_loop *loop);

/* Calls fn(arg) on the loop's thread, outside any task, soon. Safe from any
 * thread, including the loop's own; wakes the loop if it sleeps. Calls made
 * by one thread run in the order made. Returns 0, WEFT_ENOMEM, or
 * WEFT_ECLOSED when the loop is being freed (fn will not run). */
WEFT_EXTERN int weft_loop_call_threadsafe(weft_loop *loop,
                                          void (*fn)(void *arg), void *arg);

/* ---- many cores: one loop per thread ----
 *
 * Share-nothing workers (nginx workers, Seastar shards): each thread runs its
 * own loop and nothing of one loop is touched by another. Servers opened in
 * each worker with SO_REUSEPORT (weft_server_opts.reuse_port) share a port
 * and the kernel spreads the connections between them.
 */

/*
 * Starts n threads (n <= 0: one per online CPU), each running main(arg) as the
 * first task of a loop of its own (with `opts`, may be NULL), and waits for
 * all of them. Blocks the calling thread: call it outside any task
 * (typically from main()); a task calling it would stall its own loop. Any
 * thread. Like a task group, the first
 * main that fails (returns < 0, other than a WEFT_ECANCELED this call caused)
 * cancels the mains of the other workers; their tasks see WEFT_ECANCELED at
 * their next suspension. Returns 0 when every main returned >= 0, else the
 * first failure in time; WEFT_EINVAL (main NULL), WEFT_EAGAIN / WEFT_ENOMEM
 * when a thread could not be started (the ones started are cancelled and
 * joined first), or a loop's own WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_run_workers(int n, weft_task_fn main, void *arg);
WEFT_EXTERN int weft_run_workers_opts(int n, weft_task_fn main, void *arg,
                                      const weft_loop_opts *opts);

/* The calling thread's worker number, 0 .. n-1, or -1 on a thread that
 * weft_run_workers() did not start. */
WEFT_EXTERN int weft_worker_index(void);
/* Number of workers of the calling worker's weft_run_workers(), or 0. */
WEFT_EXTERN int weft_worker_count(void);

/* Asks every worker of the calling worker's weft_run_workers() to stop: each
 * weft_workers_wait_stop() returns 0, now or when next called (a graceful
 * shutdown started by one worker, e.g. the one that waits for SIGTERM).
 * Never suspends; any thread of those workers. Returns 0, or WEFT_EINVAL on
 * a thread that is not a worker. Stopping twice does nothing more. */
WEFT_EXTERN int weft_workers_stop(void);
/* True once weft_workers_stop() was called (false outside workers). */
WEFT_EXTERN bool weft_workers_stopping(void);
/* Waits until weft_workers_stop() is called by any worker. May suspend.
 * Returns 0, WEFT_ECANCELED, WEFT_ETIMEDOUT, WEFT_ENOTASK, or WEFT_EINVAL on
 * a thread that is not a worker (or outside the worker's main loop). */
WEFT_EXTERN WEFT_NODISCARD int weft_workers_wait_stop(void);

/* The loop's clock: monotonic seconds (virtual when the loop runs a virtual
 * clock), cached per loop turn like uv_now(). Outside a loop: real time. */
WEFT_EXTERN double weft_now(void);
WEFT_EXTERN uint64_t weft_now_ns(void);

/* Virtual clock only: moves time forward by `seconds`, firing the timers
 * that come due. Returns 0, or WEFT_EINVAL on a real clock. */
WEFT_EXTERN int weft_clock_advance(weft_loop *loop, double seconds);

#ifdef __cplusplus
}
#endif

#endif
