/* weft — debug aids: counters, the loop-stall detector, task dumps. */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H

#include <stdio.h>
#include <weft/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stats {
  uint64_t tasks_alive;     /* spawned and not yet freed */
  uint64_t tasks_spawned;   /* since the loop was made */
  uint64_t switches;        /* context switches into tasks */
  uint64_t loop_iterations; /* turns of the loop (I/O polls) */
  uint64_t stalls;          /* stalls the detector reported */
  uint64_t stacks_mapped;   /* stacks carved out of memory so far */
  uint64_t stacks_cached;   /* stacks ready for reuse now */
  uint64_t objects_alive;   /* futures, queues, groups... not yet freed */
} weft_stats;

/* Fills *out with the loop's counters. Loop thread. */
WEFT_EXTERN void weft_loop_stats(weft_loop *loop, weft_stats *out);

/* The stall detector's default threshold, in seconds: 100 ms. */
#define WEFT_STALL_DEFAULT 0.1

/*
 * Turns the loop-stall detector on (threshold in seconds, e.g.
 * WEFT_STALL_DEFAULT) or off (0). When on, any task that runs longer than the
 * threshold without suspending — a blocking call in a coroutine — is
 * reported on stderr with its name, spawn site and how long it held the
 * loop, and counted in weft_stats.stalls. In the environment, WEFT_STALL=1
 * turns it on for every loop with the default threshold, and
 * WEFT_STALL_MS=N with a threshold of N ms. Returns 0 or WEFT_EINVAL.
 */
WEFT_EXTERN int weft_stall_detector(weft_loop *loop, double threshold);

/* Where stall reports and task dumps go (default stderr). */
WEFT_EXTERN void weft_debug_output(weft_loop *loop, FILE *out);

/* Writes every live task of the loop to `out`: id, name, state, spawn site,
 * and what it waits on. Loop thread, from a task or not. */
WEFT_EXTERN void weft_dump_tasks(weft_loop *loop, FILE *out);

/* Dumps the tasks of the loop to its debug output whenever the process gets
 * SIGUSR1 (also enabled by WEFT_DEBUG_SIGUSR1=1). Returns 0, WEFT_EBUSY when
 * another loop catches signals, WEFT_ENOMEM. */
WEFT_EXTERN int weft_dump_on_sigusr1(weft_loop *loop, bool on);

#ifdef __cplusplus
}
#endif

#endif
