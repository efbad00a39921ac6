/* weft — deadline scopes (asyncio.timeout, Trio's move_on_after).
 *
 * A task keeps the chain of its open scopes and, cached, the earliest of
 * their deadlines; every suspension arms its timer at that deadline. When it
 * passes, each scope whose own deadline has passed is marked `fired`, so an
 * inner scope cannot claim (and swallow) an outer scope's timeout: the outer
 * one stays expired, and the task's next suspension fails again. */
#include <assert.h>
#include <math.h>

#include "internal.h"

static void enter_ns(weft_timeout *s, uint64_t deadline) {
  weft_loop *loop = weft__tls_loop;
  weft_task *t = loop ? loop->current : NULL;
  s->task = t;
  s->deadline = deadline;
  s->fired = 0;
  s->outer = NULL;
  s->saved = WEFT__NO_DEADLINE;
  if (t == NULL)
    return;
  s->outer = t->scopes;
  s->saved = t->deadline;
  t->scopes = s;
  if (deadline < t->deadline)
    t->deadline = deadline;
}

static uint64_t from_seconds(uint64_t base, double seconds) {
  if (isnan(seconds) || seconds <= 0)
    return base;
  double ns = seconds * 1e9;
  if (ns >= (double)(WEFT__NO_DEADLINE - base))
    return WEFT__NO_DEADLINE;
  return base + (uint64_t)ns;
}

void weft_timeout_enter(weft_timeout *s, double seconds) {
  enter_ns(s, from_seconds(weft_now_ns(), seconds));
}

void weft_timeout_enter_at(weft_timeout *s, double when) {
  enter_ns(s, from_seconds(0, when));
}

int weft_timeout_exit(weft_timeout *s) {
  weft_task *t = s->task;
  if (t == NULL)
    return WEFT_ENOTASK;
  /* Scopes nest: leaving one that is not the innermost is a bug in the
   * caller that would corrupt the chain. */
  assert(t->scopes == s);
  t->scopes = s->outer;
  t->deadline = s->saved;
  s->task = NULL;
  return s->fired ? WEFT_ETIMEDOUT : 0;
}

void weft__fire_deadline(weft_task *t) {
  uint64_t now = t->loop->now;
  for (weft_timeout *s = t->scopes; s != NULL; s = s->outer)
    if (s->deadline <= now)
      s->fired = 1;
}
