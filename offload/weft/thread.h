/* weft — thread pools: run blocking calls off the loop (asyncio.to_thread,
 * loop.run_in_executor).
 *
 * A thread pool is shared by every loop of the process: any task of any loop
 * may submit to it, and the result comes back to the submitting task through
 * its own loop (no polling). Queues are bounded: when a pool's queue is full a
 * submitting task waits for room instead of memory growing without limit.
 *
 * weft keeps two process-wide pools, made on first use, so that one kind of
 * work cannot starve another (libuv issue #28: DNS starving file I/O in one
 * shared pool): WEFT_POOL_BLOCKING for the user's blocking calls
 * (weft_to_thread) and WEFT_POOL_FS for file I/O (weft/fs.h). Programs may
 * make more pools of their own with weft_threadpool_new().
 *
 * Cancellation and deadlines (see weft/task.h) apply to the wait. A job that
 * has not started when its task is cancelled is removed from the queue and
 * never runs. A job that has started runs to the end on its worker and its
 * result is discarded (as asyncio does): the call returns at once, it never
 * waits for a busy worker. Because the function may still be running after
 * the call returned, `arg` must then stay valid until the function returns:
 * give a `release` function (weft_thread_opts) and the pool calls it once the
 * function is done with `arg`.
 */
#ifndef WEFT_THREAD_H
#define WEFT_THREAD_H

#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_threadpool weft_threadpool;

/* A blocking function run on a worker thread. It must not call weft
 * functions that suspend (there is no task there). Its return value reaches
 * the caller unchanged, so it may be a count, a pointer cast to intptr_t or a
 * negative WEFT_E* code, as the caller and the function agree. */
typedef intptr_t (*weft_thread_fn)(void *arg);

/* The process-wide pools. */
enum weft_pool_kind {
  WEFT_POOL_BLOCKING = 0, /* weft_to_thread(): the user's blocking calls */
  WEFT_POOL_FS = 1,       /* weft/fs.h: file I/O */
};

typedef struct weft_threadpool_opts {
  size_t size; /* sizeof(weft_threadpool_opts) */
  /* Most worker threads; they are started on demand. Default 4 (as libuv),
   * or $WEFT_THREADPOOL_SIZE / $WEFT_FSPOOL_SIZE for the process pools. */
  size_t threads;
  /* Most jobs queued and not started; further submitters wait for room.
   * Default 1024. */
  size_t queue_max;
  /* How long an idle worker, and a task waiting for a job, keep checking
   * for work / for the result before they sleep, in microseconds. Waking a
   * sleeping thread costs tens of µs, so a short spin makes back-to-back
   * jobs fast; it is bounded, so an idle pool uses no CPU. At most one
   * worker of a pool spins at a time. Default 50; negative: never spin. */
  double spin_us;
  /* Name shown in stats and thread names (copied, at most 15 bytes kept).
   * Default "weft-pool". */
  const char *name;
} weft_threadpool_opts;

/* A pool's counters. Totals count since the pool was made. */
typedef struct weft_threadpool_stats {
  uint64_t submitted; /* jobs handed to the pool */
  uint64_t completed; /* jobs whose function returned */
  uint64_t cancelled; /* removed before they started (caller cancelled) */
  uint64_t abandoned; /* started, and their caller gave up: result dropped */
  uint64_t refused;   /* failed with WEFT_ECLOSED by a shutdown */
  uint64_t waited;    /* submissions that had to wait for room */
  size_t queued;      /* jobs in the queue now */
  size_t waiting;     /* submitters waiting for room now */
  size_t running;     /* jobs running now */
  size_t threads;     /* worker threads alive now */
  size_t queue_max;   /* the queue bound */
  size_t threads_max; /* the thread bound */
} weft_threadpool_stats;

/* Makes a pool (no thread starts until the first job). Any thread. Returns
 * 0, WEFT_ENOMEM, WEFT_EINVAL (opts->size wrong). */
WEFT_EXTERN WEFT_NODISCARD int
weft_threadpool_new(weft_threadpool **out, const weft_threadpool_opts *opts);

/*
 * Stops the pool: new submissions fail with WEFT_ECLOSED; jobs still queued
 * (or waiting for room) are never started and their callers get WEFT_ECLOSED
 * (their `release`, if any, runs); running jobs get `timeout` seconds to
 * finish. Workers still busy at the deadline are abandoned: their callers get
 * WEFT_ECLOSED at once, and the threads exit (and drop their hold on the
 * pool's memory) whenever their function returns. From a task this suspends
 * (other tasks run on); elsewhere it blocks the calling thread. Calling it
 * again does nothing more than wait again. Returns 0 when every worker has
 * exited, WEFT_ETIMEDOUT when some were abandoned, WEFT_ECANCELED when the
 * calling task was cancelled while waiting (the pool is closed all the same).
 */
WEFT_EXTERN int weft_threadpool_shutdown(weft_threadpool *p, double timeout);

/* Shuts the pool down without waiting (timeout 0) and lets go of it; its
 * memory goes when the last abandoned worker exits. NULL ok. Refuses (does
 * nothing) for the process-wide pools, which live as long as the process. */
WEFT_EXTERN void weft_threadpool_free(weft_threadpool *p);

/* Fills *out with the pool's counters. Any thread. */
WEFT_EXTERN void weft_threadpool_stats_get(weft_threadpool *p,
                                           weft_threadpool_stats *out);

/* The process-wide pool of a kind, made on first use. Returns NULL when it
 * cannot be made (no memory) or `kind` is unknown. Any thread. */
WEFT_EXTERN weft_threadpool *weft_threadpool_default(int kind);

/* Sets the options of a process-wide pool before its first use. Returns 0,
 * WEFT_EBUSY when the pool already exists, WEFT_EINVAL. */
WEFT_EXTERN int weft_threadpool_default_config(int kind,
                                               const weft_threadpool_opts *o);

/* Per-call options of weft_to_thread_opts(). */
typedef struct weft_thread_opts {
  size_t size;           /* sizeof(weft_thread_opts) */
  weft_threadpool *pool; /* NULL: the WEFT_POOL_BLOCKING pool */
  /* Called exactly once with `arg` when the call returns WEFT_ECANCELED,
   * WEFT_ETIMEDOUT or WEFT_ECLOSED: once the function has returned (on the
   * worker thread), or at once (on the caller's thread) when it never
   * started. Not called when the call returns 0 or WEFT_ENOMEM/EINVAL: the
   * caller then still owns `arg`. May be NULL. */
  void (*release)(void *arg);
} weft_thread_opts;

/*
 * Runs fn(arg) on a worker of the WEFT_POOL_BLOCKING pool and waits for it,
 * suspending only the calling task (asyncio.to_thread). May suspend; loop
 * thread, from a task. Returns 0 when fn ran, with its return value in
 * *result (may be NULL); WEFT_ECANCELED / WEFT_ETIMEDOUT when the task is
 * cancelled or its deadline passes first (fn never ran, or runs on and its
 * result is dropped: see the top of this file for `arg`); WEFT_ECLOSED when
 * the pool is shut down; WEFT_ENOMEM; WEFT_EINVAL (fn NULL); WEFT_ENOTASK.
 * A job that finished just as the task was cancelled counts as done: the
 * call returns 0 and the cancellation shows at the next suspension.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_to_thread(weft_thread_fn fn, void *arg,
                                              intptr_t *result);

/* The same on the pool and with the release function of `opts` (NULL: as
 * weft_to_thread). */
WEFT_EXTERN WEFT_NODISCARD int
weft_to_thread_opts(weft_thread_fn fn, void *arg, intptr_t *result,
                    const weft_thread_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
