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

/* Makes a queue holding at most `capacity` items (0: unbounded). Returns 0,
 * WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_new(weft_queue **out, size_t capacity);
WEFT_EXTERN void weft_queue_free(weft_queue *q);

/* Appends `item`, waiting while the queue is full. May suspend. Returns 0,
 * WEFT_ECLOSED, WEFT_ECANCELED / WEFT_ETIMEDOUT (the item was not enqueued),
 * WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_put(weft_queue *q, void *item);
/* Takes the oldest item, waiting while the queue is empty. May suspend.
 * Returns 0, WEFT_ECLOSED once closed and drained, WEFT_ECANCELED /
 * WEFT_ETIMEDOUT (no item was taken: it stays for the next getter),
 * WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_get(weft_queue *q, void **item);
/* Never suspend: WEFT_EAGAIN when full / empty, WEFT_ECLOSED. Callable
 * outside tasks on the loop's thread. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_try_put(weft_queue *q, void *item);
WEFT_EXTERN WEFT_NODISCARD int weft_queue_try_get(weft_queue *q, void **item);
WEFT_EXTERN size_t weft_queue_len(const weft_queue *q);

/* Marks one gotten item processed. Returns 0, or WEFT_EINVAL when called
 * more times than items were put. */
WEFT_EXTERN int weft_queue_task_done(weft_queue *q);
/* Waits until every item ever put has been marked done. May suspend.
 * Returns 0, WEFT_ECANCELED, WEFT_ETIMEDOUT, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_queue_join(weft_queue *q);
/* Closes the queue: puts fail with WEFT_ECLOSED (waiting putters wake with
 * it), gets drain what is left and then fail with WEFT_ECLOSED. */
WEFT_EXTERN void weft_queue_close(weft_queue *q);

/* ---- semaphore ---- */

typedef struct weft_sem weft_sem;
WEFT_EXTERN WEFT_NODISCARD int weft_sem_new(weft_sem **out, size_t value);
WEFT_EXTERN void weft_sem_free(weft_sem *s);
/* Takes a permit, waiting for one. May suspend. 0, WEFT_ECANCELED,
 * WEFT_ETIMEDOUT (no permit taken), WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_sem_acquire(weft_sem *s);
/* 0 or WEFT_EAGAIN. A waiting task is never overtaken. */
WEFT_EXTERN WEFT_NODISCARD int weft_sem_try_acquire(weft_sem *s);
/* Returns a permit; the oldest waiter gets it directly. */
WEFT_EXTERN void weft_sem_release(weft_sem *s);
WEFT_EXTERN size_t weft_sem_value(const weft_sem *s);

/* ---- lock (mutex between tasks; not recursive) ---- */

typedef struct weft_lock weft_lock;
WEFT_EXTERN WEFT_NODISCARD int weft_lock_new(weft_lock **out);
WEFT_EXTERN void weft_lock_free(weft_lock *l);
/* May suspend. 0, WEFT_ECANCELED, WEFT_ETIMEDOUT (lock not held),
 * WEFT_EDEADLK (the caller holds it), WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_lock_acquire(weft_lock *l);
WEFT_EXTERN WEFT_NODISCARD int weft_lock_try_acquire(weft_lock *l);
/* Hands the lock to the oldest waiter. Returns 0, or WEFT_EPERM when the
 * caller does not hold it. */
WEFT_EXTERN int weft_lock_release(weft_lock *l);
WEFT_EXTERN bool weft_lock_locked(const weft_lock *l);

/* ---- event (asyncio.Event) ---- */

typedef struct weft_event weft_event;
WEFT_EXTERN WEFT_NODISCARD int weft_event_new(weft_event **out);
WEFT_EXTERN void weft_event_free(weft_event *e);
/* Sets the flag and wakes every waiter. */
WEFT_EXTERN void weft_event_set(weft_event *e);
WEFT_EXTERN void weft_event_clear(weft_event *e);
WEFT_EXTERN bool weft_event_is_set(const weft_event *e);
/* Returns at once when set, else waits for weft_event_set(). May suspend.
 * 0, WEFT_ECANCELED, WEFT_ETIMEDOUT, WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_event_wait(weft_event *e);

/* ---- condition (asyncio.Condition, over a weft_lock) ---- */

typedef struct weft_cond weft_cond;
WEFT_EXTERN WEFT_NODISCARD int weft_cond_new(weft_cond **out);
WEFT_EXTERN void weft_cond_free(weft_cond *c);
/* Releases `lock` (held by the caller), waits for a signal, and takes the
 * lock back before returning, also when cancelled or timed out, so the caller
 * always holds the lock afterwards. May suspend. 0, WEFT_ECANCELED,
 * WEFT_ETIMEDOUT, WEFT_EPERM (lock not held), WEFT_ENOTASK. */
WEFT_EXTERN WEFT_NODISCARD int weft_cond_wait(weft_cond *c, weft_lock *lock);
/* Wakes the oldest waiter / every waiter. */
WEFT_EXTERN void weft_cond_signal(weft_cond *c);
WEFT_EXTERN void weft_cond_broadcast(weft_cond *c);

#ifdef __cplusplus
}
#endif

#endif
