/* weft — the condition variable (asyncio.Condition), over a weft_lock.
 *
 * A wait gives the lock up, waits for a signal, and takes the lock back
 * before returning. Taking it back ignores cancellation and deadlines: the
 * caller's code after the wait (and its cleanup on error) runs under the
 * lock, so returning without it would break the one rule a caller relies on.
 * A cancelled or timed-out wait may therefore return a little later than the
 * cancel, once the lock is free; that wait is bounded by the other holders'
 * critical sections, which are short by design.
 *
 * A signal completes the oldest waiter, so a signal sent before a waiter was
 * cancelled is not lost: that waiter returns 0 and must act on it.
 */
#include "lock.h"

struct weft_cond {
  weft_loop *loop;
  weft__list waiters;
};

int weft_cond_new(weft_cond **out) {
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_cond *c = weft__calloc(1, sizeof *c);
  if (c == NULL)
    return WEFT_ENOMEM;
  c->loop = loop;
  weft__list_init(&c->waiters);
  weft__obj_add(loop);
  *out = c;
  return 0;
}

void weft_cond_free(weft_cond *c) {
  if (c == NULL)
    return;
  /* The woken waiters go on to re-take their lock, which is not ours. */
  weft__waiters_complete_all(&c->waiters, WEFT_ECANCELED);
  weft__obj_del(c->loop);
  weft__free(c);
}

int weft_cond_wait(weft_cond *c, weft_lock *lock) {
  WEFT__NEED_TASK(t);
  if (c->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (!weft__lock_held_by(lock, t))
    return WEFT_EPERM;
  weft__waiter w;
  weft__waiter_init(&w, t);
  weft__list_push_back(&c->waiters, &w.link);
  weft__lock_release(lock);
  int rc;
  do
    rc = weft__park("cond", c, 0);
  while (rc == 0 && !w.done);
  if (w.done)
    rc = w.status;
  else
    weft__list_remove(&w.link);
  int lrc = weft__lock_acquire_nocancel(lock, t);
  /* Only a freed lock fails the re-take; report it over a signal. */
  return lrc != 0 ? lrc : rc;
}

void weft_cond_signal(weft_cond *c) {
  weft__list *n = weft__list_pop_front(&c->waiters);
  if (n != NULL)
    weft__waiter_complete(weft__container_of(n, weft__waiter, link), 0);
}

void weft_cond_broadcast(weft_cond *c) {
  weft__waiters_complete_all(&c->waiters, 0);
}
