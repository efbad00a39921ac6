/* weft — structured concurrency: task groups and gather.
 *
 * A group owns the tasks spawned into it (asyncio.TaskGroup, Trio nursery).
 * weft_group_wait() waits for all of them; the first child that fails
 * (returns < 0) cancels its siblings, and wait returns that first error.
 */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include <weft/task.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_group weft_group;

/* Makes an empty group on the calling thread's loop. Returns 0,
 * WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_group_new(weft_group **out);

/* Spawns fn(arg) into the group. `out` (may be NULL) receives a borrowed
 * handle, valid until weft_group_free(): it may be cancelled or inspected
 * (weft_task_done, weft_task_result), not joined or detached; a child whose
 * handle was asked for keeps its small descriptor until then. Returns 0,
 * WEFT_ENOMEM, or WEFT_ECANCELED when the group is already failing or cancelled
 * (fn is then not run: free what arg holds). */
#define weft_group_spawn(g, out, fn, arg)                                      \
  weft_group_spawn_at((g), (out), (fn), (arg), NULL, WEFT_SITE)
WEFT_EXTERN WEFT_NODISCARD int
weft_group_spawn_at(weft_group *g, weft_task **out, weft_task_fn fn, void *arg,
                    const weft_task_opts *opts, const char *site);

/*
 * Waits until every child has returned. May suspend. Returns 0 when all
 * succeeded, else the first child failure (a child returning < 0 other than
 * the WEFT_ECANCELED the group itself caused). If the waiting task is
 * cancelled or its deadline passes, the children are cancelled and awaited
 * and WEFT_ECANCELED / WEFT_ETIMEDOUT is returned: no child outlives the
 * wait. The group may be spawned into and waited on again afterwards.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_group_wait(weft_group *g);

/* Cancels every child; spawns fail with WEFT_ECANCELED until the next
 * weft_group_wait() returns. */
WEFT_EXTERN void weft_group_cancel(weft_group *g);

/* Children that have not returned yet. */
WEFT_EXTERN size_t weft_group_size(const weft_group *g);

/* Frees the group. Children still running (wait was not called) are
 * cancelled and handed to the runtime, which reports their failures.
 * NULL ok. */
WEFT_EXTERN void weft_group_free(weft_group *g);

/* One call of weft_gather(): fn(arg), its result stored in `result`. */
typedef struct weft_call {
  weft_task_fn fn;
  void *arg;
  int result;
} weft_call;

/* Runs calls[0..n) concurrently, each as a task in a group, and waits for
 * all (asyncio.gather, with TaskGroup's failure rule: the first failure
 * cancels the rest). Each calls[i].result receives its task's result
 * (WEFT_ECANCELED for one cancelled before it returned). Returns 0, the first
 * failure, WEFT_ECANCELED / WEFT_ETIMEDOUT, WEFT_ENOMEM, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_gather(weft_call *calls, size_t n);

#ifdef __cplusplus
}
#endif

#endif
