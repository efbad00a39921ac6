/* weft — eager start: running a task just spawned at once, from a libevent
 * callback, instead of at its turn on the run queue (runtime/eager.c). */
#ifndef WEFT_EAGER_H
#define WEFT_EAGER_H

#include "internal.h"

/* Runs t, just spawned and never run, now, from the loop's own context,
 * until it returns or first parks. Returns false, and leaves t queued, when
 * called from a task or outside a running loop. */
bool weft__task_run_now(weft_task *t);

#endif
