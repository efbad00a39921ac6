/* weft — futures: a value that arrives once, awaited by tasks.
 *
 * A future belongs to the loop that made it; tasks of that loop await it.
 * It can be resolved or failed from any thread: the loop wakes, and the
 * waiters resume on the loop's thread. Futures are reference counted so a
 * thread that will resolve one can hold it safely while the awaiting task
 * gives up (cancelled, timed out) and drops its own reference.
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_future weft_future;

/* Makes a pending future on the calling thread's loop, holding one
 * reference for the caller. Returns 0, WEFT_ENOMEM, WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int weft_future_new(weft_future **out);

/* Adds a reference (for a thread, a callback, ...). Any thread. */
WEFT_EXTERN void weft_future_ref(weft_future *f);
/* Drops a reference; the last one frees the future. Any thread; NULL ok.
 * Dropping the last reference while tasks await it wakes them with
 * WEFT_ECANCELED. */
WEFT_EXTERN void weft_future_free(weft_future *f);

/* Settles the future with `value` (resolve) or with the error `err` < 0
 * (fail). Only the first settlement counts. Any thread. Returns 0,
 * WEFT_EALREADY when already settled, WEFT_EINVAL (fail with err >= 0). */
WEFT_EXTERN int weft_future_resolve(weft_future *f, void *value);
WEFT_EXTERN int weft_future_fail(weft_future *f, int err);

/* Waits until the future settles. May suspend; loop thread only. Returns 0
 * and stores the value in *value (may be NULL), or the error it failed
 * with. WEFT_ECANCELED / WEFT_ETIMEDOUT when the caller is cancelled or its
 * deadline passes first (the future is untouched), WEFT_ENOTASK,
 * WEFT_EWRONGLOOP when the future belongs to another loop. */
WEFT_EXTERN WEFT_NODISCARD int weft_future_await(weft_future *f, void **value);

/* True once settled. Any thread. */
WEFT_EXTERN bool weft_future_done(const weft_future *f);

#ifdef __cplusplus
}
#endif

#endif
