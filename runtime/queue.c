/* weft — the queue (asyncio.Queue): a FIFO of pointers between tasks.
 *
 * The items sit in a ring buffer that grows on demand up to the capacity (so
 * a queue made with a large bound costs nothing until it fills) and shrinks
 * again when mostly empty. Waiting tasks are kept in three FIFO lists of
 * weft__waiters living in their own frames: getters, putters and joiners.
 *
 * Two invariants make the code short and the order fair:
 *   - getters wait only while the queue is empty, and a put with a getter
 *     waiting hands the item straight to the oldest one;
 *   - putters wait only while the queue is full, and a get from a full queue
 *     moves the oldest putter's item in behind the others.
 * So an item never overtakes another, and a task that arrives late never
 * takes an item or a slot before one that was already waiting.
 *
 * What a cancellation leaves behind (tokio PR #5947): a putter's item enters
 * the queue only when a getter completes the putter's waiter, and a getter's
 * item is taken only when a putter completes the getter's waiter. Completion
 * wins over a cancellation that races with it, so a cancelled put enqueued
 * nothing and a cancelled get took nothing.
 */
#include <assert.h>
#include <string.h>

#include "internal.h"

/* Smallest ring allocated, and the size below which it never shrinks. */
#define RING_MIN 8
#define RING_SHRINK_MIN 64

struct weft_queue {
  weft_loop *loop;
  void **ring;
  size_t ring_size;  /* slots allocated */
  size_t head;       /* index of the oldest item */
  size_t len;        /* items held */
  size_t capacity;   /* 0: unbounded */
  size_t unfinished; /* items put and not yet marked done */
  bool closed;
  weft__list getters;
  weft__list putters;
  weft__list joiners;
};

int weft_queue_new(weft_queue **out, size_t capacity) {
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_queue *q = weft__calloc(1, sizeof *q);
  if (q == NULL)
    return WEFT_ENOMEM;
  q->loop = loop;
  q->capacity = capacity;
  weft__list_init(&q->getters);
  weft__list_init(&q->putters);
  weft__list_init(&q->joiners);
  weft__obj_add(loop);
  *out = q;
  return 0;
}

void weft_queue_free(weft_queue *q) {
  if (q == NULL)
    return;
  /* Woken waiters read only their own waiter, never the queue, so it can go
   * before they run. */
  weft__waiters_complete_all(&q->getters, WEFT_ECANCELED);
  weft__waiters_complete_all(&q->putters, WEFT_ECANCELED);
  weft__waiters_complete_all(&q->joiners, WEFT_ECANCELED);
  weft__obj_del(q->loop);
  weft__free(q->ring);
  weft__free(q);
}

/* Moves the items into a ring of `size` slots (size >= len). */
static int ring_resize(weft_queue *q, size_t size) {
  assert(size >= q->len);
  if (size > SIZE_MAX / sizeof(void *))
    return WEFT_ENOMEM;
  void **ring = weft__malloc(size * sizeof(void *));
  if (ring == NULL)
    return WEFT_ENOMEM;
  /* The items may wrap around the end of the old ring: copy both parts. */
  size_t first = q->ring_size - q->head;
  if (first > q->len)
    first = q->len;
  if (q->len > 0) {
    memcpy(ring, q->ring + q->head, first * sizeof(void *));
    memcpy(ring + first, q->ring, (q->len - first) * sizeof(void *));
  }
  weft__free(q->ring);
  q->ring = ring;
  q->ring_size = size;
  q->head = 0;
  return 0;
}

/* Appends an item; the caller has checked the capacity. Fails only when the
 * ring must grow and cannot. */
static int push(weft_queue *q, void *item) {
  if (q->len == q->ring_size) {
    size_t size = q->ring_size < RING_MIN ? RING_MIN : q->ring_size;
    if (q->ring_size >= RING_MIN) {
      if (size > SIZE_MAX / 2)
        return WEFT_ENOMEM;
      size *= 2;
    }
    if (q->capacity != 0 && size > q->capacity)
      size = q->capacity;
    int rc = ring_resize(q, size);
    if (rc != 0)
      return rc;
  }
  size_t tail = q->head + q->len;
  if (tail >= q->ring_size)
    tail -= q->ring_size;
  q->ring[tail] = item;
  q->len++;
  return 0;
}

static void *pop(weft_queue *q) {
  assert(q->len > 0);
  void *item = q->ring[q->head];
  if (++q->head == q->ring_size)
    q->head = 0;
  q->len--;
  /* Give back memory after a burst, halving so that a queue hovering at one
   * size does not copy on every get. A failed shrink changes nothing. */
  if (q->ring_size >= RING_SHRINK_MIN && q->len < q->ring_size / 4)
    (void)ring_resize(q, q->ring_size / 2);
  return item;
}

static bool full(const weft_queue *q) {
  return q->capacity != 0 && q->len >= q->capacity;
}

/* The put that does not wait: hands the item to the oldest getter, or
 * appends it. WEFT_EAGAIN when full. */
static int put_now(weft_queue *q, void *item) {
  if (q->closed)
    return WEFT_ECLOSED;
  weft__list *n = weft__list_pop_front(&q->getters);
  if (n != NULL) {
    /* Getters wait only on an empty queue, so nothing is overtaken. */
    assert(q->len == 0);
    weft__waiter *w = weft__container_of(n, weft__waiter, link);
    w->data = item;
    q->unfinished++;
    weft__waiter_complete(w, 0);
    return 0;
  }
  if (full(q))
    return WEFT_EAGAIN;
  int rc = push(q, item);
  if (rc != 0)
    return rc;
  q->unfinished++;
  return 0;
}

/* The get that does not wait. WEFT_EAGAIN when empty and open. */
static int get_now(weft_queue *q, void **item) {
  if (q->len == 0)
    return q->closed ? WEFT_ECLOSED : WEFT_EAGAIN;
  void *v = pop(q);
  weft__list *n = weft__list_pop_front(&q->putters);
  if (n != NULL) {
    /* The queue was full: the slot just freed goes to the oldest putter,
     * whose item now counts as put. No allocation: the ring had room for
     * it a moment ago (pop shrinks only a ring that is mostly empty, which a
     * full one with waiting putters is not). */
    weft__waiter *w = weft__container_of(n, weft__waiter, link);
    int rc = push(q, w->data);
    assert(rc == 0);
    (void)rc;
    q->unfinished++;
    weft__waiter_complete(w, 0);
  }
  if (item != NULL)
    *item = v;
  return 0;
}

int weft_queue_try_put(weft_queue *q, void *item) { return put_now(q, item); }

int weft_queue_try_get(weft_queue *q, void **item) { return get_now(q, item); }

int weft_queue_put(weft_queue *q, void *item) {
  WEFT__NEED_TASK(t);
  if (q->loop != t->loop)
    return WEFT_EWRONGLOOP;
  int rc = put_now(q, item);
  if (rc != WEFT_EAGAIN)
    return rc;
  weft__waiter w;
  weft__waiter_init(&w, t);
  w.data = item;
  weft__list_push_back(&q->putters, &w.link);
  do
    rc = weft__park("queue_put", q, 0);
  while (rc == 0 && !w.done);
  if (w.done)
    return w.status; /* 0: a getter moved the item in; or closed / freed */
  weft__list_remove(&w.link);
  return rc;
}

int weft_queue_get(weft_queue *q, void **item) {
  WEFT__NEED_TASK(t);
  if (q->loop != t->loop)
    return WEFT_EWRONGLOOP;
  int rc = get_now(q, item);
  if (rc != WEFT_EAGAIN)
    return rc;
  weft__waiter w;
  weft__waiter_init(&w, t);
  weft__list_push_back(&q->getters, &w.link);
  do
    rc = weft__park("queue_get", q, 0);
  while (rc == 0 && !w.done);
  if (w.done) {
    /* A handed-over item is returned even if a cancellation raced in after
     * the handoff: dropping it here would lose it. */
    if (w.status == 0 && item != NULL)
      *item = w.data;
    return w.status;
  }
  weft__list_remove(&w.link);
  return rc;
}

size_t weft_queue_len(const weft_queue *q) { return q->len; }

int weft_queue_task_done(weft_queue *q) {
  if (q->unfinished == 0)
    return WEFT_EINVAL;
  if (--q->unfinished == 0)
    weft__waiters_complete_all(&q->joiners, 0);
  return 0;
}

int weft_queue_join(weft_queue *q) {
  WEFT__NEED_TASK(t);
  if (q->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (q->unfinished == 0)
    return 0;
  weft__waiter w;
  weft__waiter_init(&w, t);
  weft__list_push_back(&q->joiners, &w.link);
  int rc;
  do
    rc = weft__park("queue_join", q, 0);
  while (rc == 0 && !w.done);
  if (w.done)
    return w.status;
  weft__list_remove(&w.link);
  return rc;
}

void weft_queue_close(weft_queue *q) {
  if (q->closed)
    return;
  q->closed = true;
  /* Putters wait only on a full queue and getters only on an empty one, so
   * at most one of these lists is non-empty. Getters of an empty closed
   * queue will never get anything. Joiners keep waiting: the items already
   * in the queue still get processed and marked done. */
  weft__waiters_complete_all(&q->putters, WEFT_ECLOSED);
  weft__waiters_complete_all(&q->getters, WEFT_ECLOSED);
}
