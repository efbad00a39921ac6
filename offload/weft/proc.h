/* weft — process pools for CPU-bound work (concurrent.futures
 * ProcessPoolExecutor).
 *
 * A call runs a function registered by name in a worker process: bytes go
 * in, bytes come back. Workers are this same program started again
 * (/proc/self/exe) in worker mode, never a fork of the running process, so a
 * pool is safe to start however many threads the program already runs
 * (docs/internals/offload.md says why). Hence the one rule:
 *
 *     int main(int argc, char **argv) {
 *       weft_proc_main();   // first thing: a worker serves here and exits
 *       ...
 *
 * and register functions with WEFT_PROC_FUNCTION (or weft_proc_register()
 * before weft_proc_main()), so the worker knows them too.
 *
 * No call is silently lost: a worker that crashes (signal, abort, exit)
 * fails exactly the call it was running with WEFT_ECRASHED and a message
 * naming the signal or exit status (weft_proc_errmsg()); a call past its
 * timeout kills its worker and fails with WEFT_ETIMEDOUT; a malformed or
 * truncated message from a worker fails the call with WEFT_EBADMSG. In each
 * case the worker is replaced and every other call goes on. A worker's
 * stderr reaches the parent's stderr, each line prefixed with
 * "[worker PID] ".
 *
 * A pool belongs to the loop that made it: only its tasks may call it.
 */
#ifndef WEFT_PROC_H
#define WEFT_PROC_H

#include <string.h>
#include <weft/bytes.h>
#include <weft/common.h>
#include <weft/error.h> /* the codes the struct macros return */

#ifdef __cplusplus
extern "C" {
#endif

/* A function callable in a worker: reads in[0..in_len), may fill *out
 * (weft_bytes_alloc/weft_bytes_set), returns 0 or a negative WEFT_E* code,
 * which the caller's weft_proc_call() returns (with *out still delivered).
 * Runs in the worker process, outside any loop. */
typedef int (*weft_proc_fn)(const void *in, size_t in_len, weft_bytes *out);

/* A registration; static storage (see WEFT_PROC_FUNCTION). */
typedef struct weft_proc_def {
  const char *name;
  weft_proc_fn fn;
  struct weft_proc_def *next;
} weft_proc_def;

/* Adds a registration (kept, not copied). Called by WEFT_PROC_FUNCTION at
 * load time. Not thread-safe: register before starting threads. */
WEFT_EXTERN void weft_proc_register_def(weft_proc_def *d);

/* Registers fn under `name` (copied) at run time. Must happen before
 * weft_proc_main() for workers to know it. Returns 0, WEFT_EEXIST,
 * WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_EXTERN int weft_proc_register(const char *name, weft_proc_fn fn);

/* Defines and registers a worker function:
 *   WEFT_PROC_FUNCTION(square) { ...in, in_len, out...; return 0; } */
#define WEFT_PROC_FUNCTION(fname)                                              \
  static int weft__pfn_##fname(const void *in, size_t in_len,                  \
                               weft_bytes *out);                               \
  static weft_proc_def weft__pdef_##fname = {#fname, weft__pfn_##fname, 0};    \
  __attribute__((constructor)) static void weft__preg_##fname(void) {          \
    weft_proc_register_def(&weft__pdef_##fname);                               \
  }                                                                            \
  static int weft__pfn_##fname(const void *in, size_t in_len, weft_bytes *out)

/* Defines a worker function over fixed-layout structs (plain data, no
 * pointers): the body gets `const in_type *in` and `out_type *out`
 * (zeroed). A request of the wrong size fails with WEFT_EBADMSG. Call it
 * with weft_proc_call_struct(). */
#define WEFT_PROC_STRUCT_FUNCTION(fname, in_type, out_type)                    \
  static int weft__pfx_##fname(const in_type *in, out_type *out);              \
  WEFT_PROC_FUNCTION(fname) {                                                  \
    if (in_len != sizeof(in_type))                                             \
      return WEFT_EBADMSG;                                                     \
    in_type a_;                                                                \
    memcpy(&a_, in, sizeof a_);                                                \
    out_type *o_ = (out_type *)weft_bytes_alloc(out, sizeof(out_type));        \
    if (o_ == NULL)                                                            \
      return WEFT_ENOMEM;                                                      \
    memset(o_, 0, sizeof *o_);                                                 \
    return weft__pfx_##fname(&a_, o_);                                         \
  }                                                                            \
  static int weft__pfx_##fname(const in_type *in, out_type *out)

/*
 * Call first thing in main(). In a process a pool started as its worker,
 * it serves calls until the pool lets it go and then exits the process
 * (never returning). In any other process it returns at once.
 */
WEFT_EXTERN void weft_proc_main(void);

/* True inside a worker process (in a registered function). */
WEFT_EXTERN bool weft_proc_is_worker(void);

/* Describes the last failed weft_proc_ call on this thread ("worker 1234
 * running 'crash' was killed by signal 11 (SIGSEGV)"). Read it right after
 * the failing call. Static per thread; "" when nothing failed yet. */
WEFT_EXTERN const char *weft_proc_errmsg(void);

typedef struct weft_procpool weft_procpool;

typedef struct weft_procpool_opts {
  size_t size;      /* sizeof(weft_procpool_opts) */
  size_t workers;   /* worker processes; default: the number of cores */
  size_t queue_max; /* calls queued and not started; more wait. Default 1024 */
  /* Calls a worker serves before it is replaced (0: no limit). */
  uint64_t max_calls_per_worker;
  /* Default per-call timeout in seconds (0: none); see weft_proc_call_opts. */
  double call_timeout;
  /* A worker that has not said hello after this many seconds is killed
   * (default 10). */
  double start_timeout;
  /* Largest request or reply, bytes; a bigger reply fails its call with
   * WEFT_EMSGSIZE. Default 1 GiB. */
  size_t max_msg;
  /* How long the waiting task and an idle worker check for the next
   * message before they sleep, µs (see weft/thread.h). Default 50;
   * negative: never spin. */
  double spin_us;
  /* Calls handed to a busy worker ahead of time, the running one included,
   * so it never waits for the parent between calls (1: none). Pipelining
   * pauses while calls average over 0.2 ms, so a call seldom waits behind a
   * long one while another worker idles. Default 4, at most 8. */
  unsigned pipeline;
} weft_procpool_opts;

typedef struct weft_procpool_stats {
  uint64_t calls;     /* calls made */
  uint64_t completed; /* calls the worker answered (with any status) */
  uint64_t crashed;   /* calls failed because their worker died */
  uint64_t timeouts;  /* calls failed by their timeout */
  uint64_t cancelled; /* calls whose caller gave up (queued or running) */
  uint64_t bad_msgs;  /* malformed or truncated messages seen */
  uint64_t spawned;   /* worker processes started */
  uint64_t retired;   /* workers replaced after max_calls_per_worker */
  size_t workers;     /* worker processes alive now */
  size_t queued;      /* calls waiting for a worker now */
  size_t running;     /* calls in a worker now */
} weft_procpool_stats;

/* Makes a pool on the calling thread's loop. Workers start on demand.
 * Never suspends. Returns 0, WEFT_ENOMEM, WEFT_ENOLOOP, WEFT_EINVAL (bad
 * opts, or this process was started as a worker but did not call
 * weft_proc_main() first: refusing prevents a fork bomb), WEFT_ENOSYS (no
 * /proc/self/exe). */
WEFT_EXTERN WEFT_NODISCARD int weft_procpool_new(weft_procpool **out,
                                                 const weft_procpool_opts *o);

enum weft_proc_shutdown {
  WEFT_PROC_WAIT = 0,   /* queued calls still run */
  WEFT_PROC_CANCEL = 1, /* queued calls fail with WEFT_ECANCELED */
};

/*
 * Stops the pool: new calls fail with WEFT_ECLOSED; queued calls run
 * (WEFT_PROC_WAIT) or fail with WEFT_ECANCELED (WEFT_PROC_CANCEL); then it
 * waits up to `timeout` seconds (<= 0: no limit) for running calls, after
 * which their workers are killed and the calls fail with WEFT_ECLOSED. Idle
 * workers are told to exit. May suspend. Returns 0, WEFT_ETIMEDOUT (calls
 * were killed), WEFT_ECANCELED / WEFT_ETIMEDOUT of the caller (the workers
 * are then killed at once), WEFT_ENOTASK.
 */
WEFT_EXTERN int weft_procpool_shutdown(weft_procpool *p, int how,
                                       double timeout);

/* Frees the pool: workers still alive are killed and reaped, tasks still
 * waiting on calls wake with WEFT_ECANCELED. Loop thread. NULL ok. */
WEFT_EXTERN void weft_procpool_free(weft_procpool *p);

WEFT_EXTERN void weft_procpool_stats_get(weft_procpool *p,
                                         weft_procpool_stats *out);

/* Per-call options. */
typedef struct weft_proc_opts {
  size_t size;    /* sizeof(weft_proc_opts) */
  double timeout; /* seconds; 0: the pool's call_timeout; < 0: none */
} weft_proc_opts;

/*
 * Runs the function registered as `name` in a worker with in[0..in_len)
 * and waits for it. May suspend; from a task of the pool's loop. On return
 * *out holds the reply (freed by the caller with weft_bytes_free; empty on a
 * pool failure). Returns the function's own result (0 or its WEFT_E*), or:
 * WEFT_ENOENT (no such function), WEFT_ECRASHED (the worker died),
 * WEFT_ETIMEDOUT (the call's timeout or the task's deadline: a running call
 * is killed with its worker), WEFT_ECANCELED (the task was cancelled: a
 * queued call is removed; a running one is killed with its worker),
 * WEFT_EBADMSG (malformed or truncated reply), WEFT_EMSGSIZE, WEFT_ECLOSED
 * (pool shut down), WEFT_ENOMEM, WEFT_EWRONGLOOP, WEFT_ENOTASK. `in` is
 * read until the call returns, never after.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_proc_call(weft_procpool *p,
                                              const char *name, const void *in,
                                              size_t in_len, weft_bytes *out);
WEFT_EXTERN WEFT_NODISCARD int
weft_proc_call_opts(weft_procpool *p, const char *name, const void *in,
                    size_t in_len, weft_bytes *out, const weft_proc_opts *opts);

/* Calls a WEFT_PROC_STRUCT_FUNCTION: sends in[0..in_size) and copies the
 * reply into out[0..out_size). A reply of another size fails with
 * WEFT_EBADMSG. Returns as weft_proc_call. */
WEFT_EXTERN WEFT_NODISCARD int
weft_proc_call_fixed(weft_procpool *p, const char *name, const void *in,
                     size_t in_size, void *out, size_t out_size);
#define weft_proc_call_struct(p, name, in_ptr, out_ptr)                        \
  weft_proc_call_fixed((p), (name), (in_ptr), sizeof *(in_ptr), (out_ptr),     \
                       sizeof *(out_ptr))

#ifdef __cplusplus
}
#endif

#endif
