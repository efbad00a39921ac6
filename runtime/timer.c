/* weft — task timers: a binary min-heap of tasks keyed by when they must
 * wake (sleep end or deadline). A task waits on one thing at a time, so one
 * heap slot per task is enough and costs no allocation per sleep. */
#include <assert.h>
#include <time.h>

#include "internal.h"

uint64_t weft__clock_real_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void weft__loop_update_time(weft_loop *loop) {
  if (!loop->virtual_clock)
    loop->now = weft__clock_real_ns();
}

static inline bool before(const weft_task *a, const weft_task *b) {
  return a->timer_due < b->timer_due;
}

static inline void place(weft_loop *loop, size_t i, weft_task *t) {
  loop->heap[i] = t;
  t->heap_idx = (uint32_t)(i + 1);
}

static void sift_up(weft_loop *loop, size_t i) {
  weft_task *t = loop->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(t, loop->heap[parent]))
      break;
    place(loop, i, loop->heap[parent]);
    i = parent;
  }
  place(loop, i, t);
}

static void sift_down(weft_loop *loop, size_t i) {
  weft_task *t = loop->heap[i];
  size_t n = loop->heap_len;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && before(loop->heap[c + 1], loop->heap[c]))
      c++;
    if (!before(loop->heap[c], t))
      break;
    place(loop, i, loop->heap[c]);
    i = c;
  }
  place(loop, i, t);
}

void weft__timer_arm(weft_loop *loop, weft_task *t, uint64_t due) {
  if (t->heap_idx != 0)
    weft__timer_disarm(loop, t);
  if (loop->heap_len == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    weft_task **h = weft__realloc(loop->heap, cap * sizeof *h);
    if (h == NULL) {
      /* No room to remember the timer. Wake the task now: it sees the time
       * is not up (sleep loops) or the deadline not passed, and a sleeping
       * task simply re-parks. Better a spurious wake than a lost one. */
      t->timer_due = due;
      return;
    }
    loop->heap = h;
    loop->heap_cap = cap;
  }
  t->timer_due = due;
  loop->heap[loop->heap_len] = t;
  loop->heap_len++;
  sift_up(loop, loop->heap_len - 1);
}

void weft__timer_disarm(weft_loop *loop, weft_task *t) {
  if (t->heap_idx == 0)
    return;
  size_t i = t->heap_idx - 1;
  t->heap_idx = 0;
  loop->heap_len--;
  if (i == loop->heap_len)
    return;
  weft_task *last = loop->heap[loop->heap_len];
  place(loop, i, last);
  if (i > 0 && before(last, loop->heap[(i - 1) / 2]))
    sift_up(loop, i);
  else
    sift_down(loop, i);
}

/* The earliest timer, or NO_DEADLINE. */
uint64_t weft__timer_next(weft_loop *loop) {
  return loop->heap_len ? loop->heap[0]->timer_due : WEFT__NO_DEADLINE;
}

/* Wakes every task whose timer is due at loop->now. A timer ends a sleep
 * (status 0) unless the task's deadline has passed too, in which case the
 * deadline wins: the scopes that expired are marked and the task sees
 * WEFT_ETIMEDOUT. */
void weft__timers_fire(weft_loop *loop) {
  while (loop->heap_len > 0 && loop->heap[0]->timer_due <= loop->now) {
    weft_task *t = loop->heap[0];
    weft__timer_disarm(loop, t);
    if (t->deadline <= loop->now) {
      weft__fire_deadline(t);
      weft__wake(t, WEFT_ETIMEDOUT);
    } else {
      weft__wake(t, 0);
    }
  }
}
