/* weft — the lock: mutual exclusion between tasks of one loop.
 *
 * The lock is owned by a task, so a release by anyone else (a bug that a
 * plain flag would hide) fails with WEFT_EPERM, and a task that acquires a
 * lock it already holds gets WEFT_EDEADLK instead of waiting forever.
 *
 * A release with waiters hands the lock straight to the oldest one (it
 * becomes the owner before it even runs), so a task that keeps re-acquiring
 * cannot starve the others, and waiters get it strictly in arrival order.
 * Hence: waiters exist only while the lock is held.
 */
#include <assert.h>

#include "lock.h"

struct weft_lock {
  weft_loop *loop;
  weft_task *owner; /* NULL: free */
  weft__list waiters;
};

int weft_lock_new(weft_lock **out) {
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_lock *l = weft__calloc(1, sizeof *l);
  if (l == NULL)
    return WEFT_ENOMEM;
  l->loop = loop;
  weft__list_init(&l->waiters);
  weft__obj_add(loop);
  *out = l;
  return 0;
}

void weft_lock_free(weft_lock *l) {
  if (l == NULL)
    return;
  weft__waiters_complete_all(&l->waiters, WEFT_ECANCELED);
  weft__obj_del(l->loop);
  weft__free(l);
}

/* Waits in line for the lock. `flags` are weft__park's. */
static int acquire_slow(weft_lock *l, weft_task *t, int flags) {
  weft__waiter w;
  weft__waiter_init(&w, t);
  weft__list_push_back(&l->waiters, &w.link);
  int rc;
  do
    rc = weft__park("lock", l, flags);
  while (rc == 0 && !w.done);
  if (w.done) {
    /* 0: the releaser made us the owner, keep it even if cancelled since. */
    assert(w.status != 0 || l->owner == t);
    return w.status;
  }
  weft__list_remove(&w.link);
  return rc;
}

int weft_lock_acquire(weft_lock *l) {
  WEFT__NEED_TASK(t);
  if (l->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (l->owner == t)
    return WEFT_EDEADLK;
  if (l->owner == NULL) {
    assert(weft__list_empty(&l->waiters));
    l->owner = t;
    return 0;
  }
  return acquire_slow(l, t, 0);
}

int weft_lock_try_acquire(weft_lock *l) {
  /* Not a suspending call, but the owner must be a task: no assertion, just
   * the error. */
  weft_task *t = weft_current();
  if (t == NULL)
    return WEFT_ENOTASK;
  if (l->owner == t)
    return WEFT_EDEADLK;
  if (l->owner != NULL)
    return WEFT_EAGAIN;
  l->owner = t;
  return 0;
}

void weft__lock_release(weft_lock *l) {
  weft__list *n = weft__list_pop_front(&l->waiters);
  if (n == NULL) {
    l->owner = NULL;
    return;
  }
  weft__waiter *w = weft__container_of(n, weft__waiter, link);
  l->owner = w->task;
  weft__waiter_complete(w, 0);
}

int weft_lock_release(weft_lock *l) {
  weft_task *t = weft_current();
  if (l->owner == NULL || l->owner != t)
    return WEFT_EPERM;
  weft__lock_release(l);
  return 0;
}

bool weft_lock_locked(const weft_lock *l) { return l->owner != NULL; }

bool weft__lock_held_by(const weft_lock *l, const weft_task *t) {
  return l->owner == t && t != NULL;
}

int weft__lock_acquire_nocancel(weft_lock *l, weft_task *t) {
  assert(l->owner != t);
  if (l->owner == NULL) {
    l->owner = t;
    return 0;
  }
  return acquire_slow(l, t, WEFT__PARK_NOCANCEL);
}
