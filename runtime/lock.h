/* weft — what the condition variable needs from the lock: a way to give the
 * lock up without an owner check and to take it back without being
 * interruptible (cond.c). */
#ifndef WEFT_LOCK_INTERNAL_H
#define WEFT_LOCK_INTERNAL_H

#include "internal.h"

/* True when `t` holds `l`. */
bool weft__lock_held_by(const weft_lock *l, const weft_task *t);
/* Releases `l`, held by the caller, handing it to the oldest waiter. */
void weft__lock_release(weft_lock *l);
/* Takes `l` for `t` (the running task), waiting for it without honouring
 * cancellation or deadlines: only a release (or a free, which returns
 * WEFT_ECANCELED and leaves the lock not held) ends the wait. Returns 0 or
 * WEFT_ECANCELED. */
int weft__lock_acquire_nocancel(weft_lock *l, weft_task *t);

#endif
