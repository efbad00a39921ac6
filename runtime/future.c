/* weft — futures. Settling is a compare-and-swap, so any thread may do it;
 * waking the waiters always happens on the loop's thread (directly, or via an
 * embedded thread-safe call that cannot fail for lack of memory), so the wait
 * list needs no lock. */
#include <assert.h>

#include "internal.h"

enum { PENDING, SETTLING, SETTLED };

struct weft_future {
  weft_loop *loop;
  int refs;  /* atomic */
  int state; /* atomic: PENDING -> SETTLING -> SETTLED */
  void *value;
  int err;
  weft__list waiters; /* loop thread only */
  weft__tscall wake;  /* posted when settled from another thread */
};

int weft_future_new(weft_future **out) {
  weft_loop *loop = weft__tls_loop;
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_future *f = weft__calloc(1, sizeof *f);
  if (f == NULL)
    return WEFT_ENOMEM;
  f->loop = loop;
  f->refs = 1;
  weft__list_init(&f->waiters);
  weft__obj_add(loop);
  *out = f;
  return 0;
}

void weft_future_ref(weft_future *f) {
  __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}

void weft_future_free(weft_future *f) {
  if (f == NULL)
    return;
  if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  /* Awaiting tasks hold a reference, so nobody waits on a dying future. */
  assert(weft__list_empty(&f->waiters));
  weft__obj_del(f->loop);
  weft__free(f);
}

static void wake_waiters(void *arg) {
  weft_future *f = arg;
  weft__waiters_complete_all(&f->waiters, 0);
}

static void wake_waiters_posted(void *arg) {
  wake_waiters(arg);
  weft_future_free(arg); /* the reference the settling thread took */
}

static int settle(weft_future *f, void *value, int err) {
  int expect = PENDING;
  if (!__atomic_compare_exchange_n(&f->state, &expect, SETTLING, false,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return WEFT_EALREADY;
  f->value = value;
  f->err = err;
  __atomic_store_n(&f->state, SETTLED, __ATOMIC_RELEASE);
  if (weft__tls_loop == f->loop) {
    wake_waiters(f);
  } else {
    weft_future_ref(f);
    f->wake.fn = wake_waiters_posted;
    f->wake.arg = f;
    f->wake.owned = false;
    if (weft__loop_post(f->loop, &f->wake) != 0)
      weft_future_free(f); /* loop closing: no task can be waiting */
  }
  return 0;
}

int weft_future_resolve(weft_future *f, void *value) {
  if (f == NULL)
    return WEFT_EINVAL;
  return settle(f, value, 0);
}

int weft_future_fail(weft_future *f, int err) {
  if (f == NULL || err >= 0)
    return WEFT_EINVAL;
  return settle(f, NULL, err);
}

bool weft_future_done(const weft_future *f) {
  return __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) == SETTLED;
}

int weft_future_await(weft_future *f, void **value) {
  WEFT__NEED_TASK(t);
  if (f == NULL)
    return WEFT_EINVAL;
  if (f->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (!weft_future_done(f)) {
    weft_future_ref(f);
    weft__waiter w;
    weft__waiter_init(&w, t);
    weft__list_push_back(&f->waiters, &w.link);
    int rc;
    do
      rc = weft__park("future", f, 0);
    while (rc == 0 && !w.done);
    if (!w.done)
      weft__list_remove(&w.link);
    weft_future_free(f);
    if (!w.done)
      return rc;
  }
  if (value != NULL)
    *value = f->value;
  return f->err;
}
