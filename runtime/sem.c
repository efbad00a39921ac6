/* weft — the semaphore: a count of permits shared by the tasks of one loop.
 *
 * A release with waiters hands its permit straight to the oldest waiter
 * instead of raising the count, so a task arriving later (or calling
 * try_acquire) can never take a permit a waiter was already in line for.
 * Hence: waiters exist only while the count is 0.
 */
#include <assert.h>

#include "internal.h"

struct weft_sem {
  weft_loop *loop;
  size_t value;
  weft__list waiters;
};

int weft_sem_new(weft_sem **out, size_t value) {
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_sem *s = weft__calloc(1, sizeof *s);
  if (s == NULL)
    return WEFT_ENOMEM;
  s->loop = loop;
  s->value = value;
  weft__list_init(&s->waiters);
  weft__obj_add(loop);
  *out = s;
  return 0;
}

void weft_sem_free(weft_sem *s) {
  if (s == NULL)
    return;
  weft__waiters_complete_all(&s->waiters, WEFT_ECANCELED);
  weft__obj_del(s->loop);
  weft__free(s);
}

int weft_sem_try_acquire(weft_sem *s) {
  if (s->value == 0 || !weft__list_empty(&s->waiters))
    return WEFT_EAGAIN;
  s->value--;
  return 0;
}

int weft_sem_acquire(weft_sem *s) {
  WEFT__NEED_TASK(t);
  if (s->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (weft_sem_try_acquire(s) == 0)
    return 0;
  weft__waiter w;
  weft__waiter_init(&w, t);
  weft__list_push_back(&s->waiters, &w.link);
  int rc;
  do
    rc = weft__park("semaphore", s, 0);
  while (rc == 0 && !w.done);
  if (w.done)
    return w.status; /* 0: a release gave us its permit; keep it */
  weft__list_remove(&w.link);
  return rc;
}

void weft_sem_release(weft_sem *s) {
  weft__list *n = weft__list_pop_front(&s->waiters);
  if (n != NULL) {
    assert(s->value == 0);
    weft__waiter_complete(weft__container_of(n, weft__waiter, link), 0);
    return;
  }
  assert(s->value < SIZE_MAX);
  s->value++;
}

size_t weft_sem_value(const weft_sem *s) { return s->value; }
