/* weft — the event (asyncio.Event): a flag tasks can wait on.
 *
 * A set wakes every waiter with its waiter already completed, so a waiter
 * returns 0 even if the flag is cleared again (or the task cancelled) before
 * it runs: it saw the event happen, as with asyncio.
 */
#include "internal.h"

struct weft_event {
  weft_loop *loop;
  bool set;
  weft__list waiters;
};

int weft_event_new(weft_event **out) {
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_event *e = weft__calloc(1, sizeof *e);
  if (e == NULL)
    return WEFT_ENOMEM;
  e->loop = loop;
  weft__list_init(&e->waiters);
  weft__obj_add(loop);
  *out = e;
  return 0;
}

void weft_event_free(weft_event *e) {
  if (e == NULL)
    return;
  weft__waiters_complete_all(&e->waiters, WEFT_ECANCELED);
  weft__obj_del(e->loop);
  weft__free(e);
}

void weft_event_set(weft_event *e) {
  e->set = true;
  weft__waiters_complete_all(&e->waiters, 0);
}

void weft_event_clear(weft_event *e) { e->set = false; }

bool weft_event_is_set(const weft_event *e) { return e->set; }

int weft_event_wait(weft_event *e) {
  WEFT__NEED_TASK(t);
  if (e->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (e->set)
    return 0;
  weft__waiter w;
  weft__waiter_init(&w, t);
  weft__list_push_back(&e->waiters, &w.link);
  int rc;
  do
    rc = weft__park("event", e, 0);
  while (rc == 0 && !w.done);
  if (w.done)
    return w.status;
  weft__list_remove(&w.link);
  return rc;
}
