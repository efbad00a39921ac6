/* weft — synchronisation between tasks of one loop: queue, semaphore, lock,
 * event, condition.
 *
 * Every waiting call may suspend, honours cancellation and deadlines
 * (returning WEFT_ECANCELED / WEFT_ETIMEDOUT), and wakes waiters in FIFO
 * order. A wait that has been satisfied (an item handed over, a permit or the
 * lock granted) counts as done even if the task is cancelled before it runs
 * again: cancellation then shows at the task's next suspension, so nothing
 * is ever lost between the two. These objects belong to one loop and are not
 * thread-safe; other threads use weft_loop_call_threadsafe() or futures.
 * Freeing an object wakes its waiters with WEFT_ECANCELED.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- queue (asyncio.Queue): a FIFO of pointers ---- */

typedef struct weft_queue weft_queue;

/* Makes a queue holding at most `capacity` items (0: unbounded) on the
 * calling thread's loop. Memory for the items grows as they arrive, so a
 * large bound costs nothing until used. Returns 0, WEFT_ENOMEM,
 * WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_new(weft_queue **out,
                                              size_t capacity);
/* Frees the queue (NULL ok). Waiting tasks wake with WEFT_ECANCELED; items
 * still queued are dropped (the queue never owns what they point to). */
WEFT_EXTERN void weft_queue_free(weft_queue *q);

/* Appends `item` (any pointer, NULL too), waiting while the queue is full;
 * a waiting getter gets it directly. May suspend. Returns 0, WEFT_ECLOSED,
 * WEFT_ECANCELED / WEFT_ETIMEDOUT (the item was not enqueued), WEFT_ENOMEM
 * (the item memory could not grow; not enqueued), WEFT_EWRONGLOOP,
 * WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_put(weft_queue *q, void *item);
/* Takes the oldest item into *item (item may be NULL to drop it), waiting
 * while the queue is empty. May suspend. Returns 0, WEFT_ECLOSED once closed
 * and drained, WEFT_ECANCELED / WEFT_ETIMEDOUT (no item was taken: it stays
 * for the next getter), WEFT_EWRONGLOOP, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_get(weft_queue *q, void **item);
/* Never suspend: 0, WEFT_EAGAIN when full / empty (a try_put never
 * overtakes a waiting putter), WEFT_ECLOSED, and for try_put WEFT_ENOMEM.
 * Callable outside tasks on the loop's thread. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_try_put(weft_queue *q, void *item);
WEFT_EXTERN WEFT_NODISCARD int weft_queue_try_get(weft_queue *q, void **item);
/* Items in the queue (not counting those of waiting putters). */
WEFT_EXTERN size_t weft_queue_len(const weft_queue *q);

/* Marks one gotten item processed; the last one wakes the joiners. Never
 * suspends. Returns 0, or WEFT_EINVAL when called more times than items
 * were put. */
WEFT_EXTERN int weft_queue_task_done(weft_queue *q);
/* Waits until every item ever put has been marked done (at once when none
 * is pending). May suspend. Returns 0, WEFT_ECANCELED, WEFT_ETIMEDOUT (the
 * count is untouched), WEFT_EWRONGLOOP, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_join(weft_queue *q);
/* Closes the queue: puts fail with WEFT_ECLOSED (waiting putters wake with
 * it, their items not enqueued), gets drain what is left and then fail with
 * WEFT_ECLOSED. Joiners are unaffected: the items put before still count.
 * Closing twice does nothing. */
WEFT_EXTERN void weft_queue_close(weft_queue *q);

/* ---- semaphore ---- */

typedef struct weft_sem weft_sem;
/* Makes a semaphore with `value` permits. Returns 0, WEFT_ENOMEM,
 * WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_sem_new(weft_sem **out, size_t value);
/* Frees it (NULL ok); waiting tasks wake with WEFT_ECANCELED. */
WEFT_EXTERN void weft_sem_free(weft_sem *s);
/* Takes a permit, waiting for one. May suspend. 0, WEFT_ECANCELED,
 * WEFT_ETIMEDOUT (no permit taken), WEFT_EWRONGLOOP, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_sem_acquire(weft_sem *s);
/* Takes a permit if one is free. Never suspends. 0 or WEFT_EAGAIN. A waiting
 * task is never overtaken. */
WEFT_EXTERN WEFT_NODISCARD int weft_sem_try_acquire(weft_sem *s);
/* Returns a permit; the oldest waiter gets it directly. Never suspends.
 * Releasing more than was acquired raises the count (no upper bound). */
WEFT_EXTERN void weft_sem_release(weft_sem *s);
/* Permits free right now. */
WEFT_EXTERN size_t weft_sem_value(const weft_sem *s);

/* ---- lock (mutex between tasks; not recursive) ---- */

typedef struct weft_lock weft_lock;
/* Makes an unlocked lock. Returns 0, WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_lock_new(weft_lock **out);
/* Frees it (NULL ok); waiting tasks wake with WEFT_ECANCELED. */
WEFT_EXTERN void weft_lock_free(weft_lock *l);
/* Takes the lock for the calling task, waiting in line for it. May suspend.
 * 0, WEFT_ECANCELED, WEFT_ETIMEDOUT (lock not held), WEFT_EDEADLK (the
 * caller holds it), WEFT_EWRONGLOOP, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_lock_acquire(weft_lock *l);
/* Takes the lock if it is free. Never suspends. 0, WEFT_EAGAIN, WEFT_EDEADLK
 * (the caller holds it), WEFT_ENOTASK (only a task can own a lock; no debug
 * assertion, as this call never suspends). */
WEFT_EXTERN WEFT_NODISCARD int weft_lock_try_acquire(weft_lock *l);
/* Hands the lock to the oldest waiter, or frees it. Never suspends. Returns
 * 0, or WEFT_EPERM when the calling task does not hold it (or the caller is
 * not a task). */
WEFT_EXTERN int weft_lock_release(weft_lock *l);
/* True when some task holds the lock. */
WEFT_EXTERN bool weft_lock_locked(const weft_lock *l);

/* ---- event (asyncio.Event) ---- */

typedef struct weft_event weft_event;
/* Makes an event, not set. Returns 0, WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_event_new(weft_event **out);
/* Frees it (NULL ok); waiting tasks wake with WEFT_ECANCELED. */
WEFT_EXTERN void weft_event_free(weft_event *e);
/* Sets the flag and wakes every waiter. Never suspends. */
WEFT_EXTERN void weft_event_set(weft_event *e);
/* Clears the flag; tasks already woken by a set still return 0. */
WEFT_EXTERN void weft_event_clear(weft_event *e);
/* True while the flag is set. */
WEFT_EXTERN bool weft_event_is_set(const weft_event *e);
/* Returns at once when set, else waits for weft_event_set(). May suspend.
 * 0, WEFT_ECANCELED, WEFT_ETIMEDOUT, WEFT_EWRONGLOOP, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_event_wait(weft_event *e);

/* ---- condition (asyncio.Condition, over a weft_lock) ---- */

typedef struct weft_cond weft_cond;
/* Makes a condition. Returns 0, WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_cond_new(weft_cond **out);
/* Frees it (NULL ok); waiting tasks wake with WEFT_ECANCELED (after taking
 * their lock back, as always). */
WEFT_EXTERN void weft_cond_free(weft_cond *c);
/* Releases `lock` (held by the caller), waits for a signal, and takes the
 * lock back before returning, also when cancelled or timed out, so the caller
 * always holds the lock afterwards (taking it back ignores cancellation and
 * deadlines, so such a return may come only once the lock is free). May
 * suspend. 0 (signalled; also when a cancellation arrived after the signal),
 * WEFT_ECANCELED, WEFT_ETIMEDOUT, WEFT_EPERM (lock not held; nothing done),
 * WEFT_EWRONGLOOP, WEFT_ENOTASK. Only if `lock` is freed meanwhile does it
 * return WEFT_ECANCELED without the lock. Spurious wake-ups do not happen,
 * but recheck the predicate anyway: another task may run first. */
WEFT_EXTERN WEFT_NODISCARD int weft_cond_wait(weft_cond *c, weft_lock *lock);
/* Wakes the oldest waiter / every waiter. Never suspends; the caller need
 * not hold the lock. A signal with nobody waiting is not remembered. */
WEFT_EXTERN void weft_cond_signal(weft_cond *c);
WEFT_EXTERN void weft_cond_broadcast(weft_cond *c);

#ifdef __cplusplus
}
#endif

#endif
