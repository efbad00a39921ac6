/* weft — waiting for signals from tasks. libevent turns the signal into an
 * event on the loop (its self-pipe), so no user code runs in signal context. */
#include <event2/event.h>
#include <signal.h>
#include <string.h>

#include "internal.h"

#define NSIG_MAX 65

typedef struct sigwaiter {
  weft__waiter w;
  const int *signums;
  size_t n;
} sigwaiter;

struct weft__sigstate {
  struct event *ev[NSIG_MAX];
  unsigned pending[NSIG_MAX]; /* arrived while nobody waited */
  weft__list waiters;
};

/* libevent lets only one event_base catch signals at a time; this records
 * which loop does, so a second one gets a clear WEFT_EBUSY. */
static weft_loop *signal_owner;

static void on_signal(evutil_socket_t signum, short what, void *arg) {
  (void)what;
  weft_loop *loop = arg;
  struct weft__sigstate *s = loop->sig;
  weft__list *it;
  weft__list_foreach(it, &s->waiters) {
    sigwaiter *sw = weft__container_of(it, sigwaiter, w.link);
    for (size_t i = 0; i < sw->n; i++) {
      if (sw->signums[i] == (int)signum) {
        weft__list_remove(&sw->w.link);
        sw->w.data = (void *)(intptr_t)signum;
        weft__waiter_complete(&sw->w, 0);
        return;
      }
    }
  }
  s->pending[signum]++;
}

int weft__signal_catch(weft_loop *loop, int signum,
                       void (*cb)(evutil_socket_t, short, void *)) {
  weft_loop *owner = NULL;
  if (!__atomic_compare_exchange_n(&signal_owner, &owner, loop, false,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
      owner != loop)
    return WEFT_EBUSY;
  if (loop->sig == NULL) {
    loop->sig = weft__calloc(1, sizeof *loop->sig);
    if (loop->sig == NULL)
      return WEFT_ENOMEM;
    weft__list_init(&loop->sig->waiters);
  }
  if (loop->sig->ev[signum] != NULL)
    return 0;
  struct event *ev =
      event_new(loop->base, signum, EV_SIGNAL | EV_PERSIST, cb, loop);
  if (ev == NULL)
    return WEFT_ENOMEM;
  if (event_add(ev, NULL) != 0) {
    event_free(ev);
    return WEFT_EINVAL;
  }
  loop->sig->ev[signum] = ev;
  return 0;
}

int weft_signal_wait(const int *signums, size_t n, int *which) {
  WEFT__NEED_TASK(t);
  if (signums == NULL || n == 0)
    return WEFT_EINVAL;
  weft_loop *loop = t->loop;
  for (size_t i = 0; i < n; i++) {
    int s = signums[i];
    if (s <= 0 || s >= NSIG_MAX || s == SIGKILL || s == SIGSTOP)
      return WEFT_EINVAL;
    int rc = weft__signal_catch(loop, s, on_signal);
    if (rc != 0)
      return rc;
  }
  for (size_t i = 0; i < n; i++) {
    if (loop->sig->pending[signums[i]] > 0) {
      loop->sig->pending[signums[i]]--;
      if (which)
        *which = signums[i];
      return 0;
    }
  }
  sigwaiter sw = {.signums = signums, .n = n};
  weft__waiter_init(&sw.w, t);
  weft__list_push_back(&loop->sig->waiters, &sw.w.link);
  int rc;
  do
    rc = weft__park("signal", signums, 0);
  while (rc == 0 && !sw.w.done);
  if (!sw.w.done) {
    weft__list_remove(&sw.w.link);
    return rc;
  }
  if (which)
    *which = (int)(intptr_t)sw.w.data;
  return 0;
}

void weft__signal_fini(weft_loop *loop) {
  if (loop->sig != NULL) {
    for (int i = 0; i < NSIG_MAX; i++)
      if (loop->sig->ev[i] != NULL)
        event_free(loop->sig->ev[i]);
    weft__free(loop->sig);
    loop->sig = NULL;
  }
  weft_loop *me = loop;
  __atomic_compare_exchange_n(&signal_owner, &me, NULL, false, __ATOMIC_ACQ_REL,
                              __ATOMIC_ACQUIRE);
}
