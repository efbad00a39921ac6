/* weft — the one intrusive list: circular, doubly linked, with a sentinel
 * head (libuv queue.h, h2o linklist.h). Used for run queues, waiters and the
 * list of live tasks. A node not on any list points at itself. */
#ifndef WEFT_LIST_H
#define WEFT_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct weft__list {
  struct weft__list *next;
  struct weft__list *prev;
} weft__list;

#define weft__container_of(ptr, type, member)                                  \
  ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void weft__list_init(weft__list *h) { h->next = h->prev = h; }

static inline bool weft__list_empty(const weft__list *h) {
  return h->next == h;
}

/* True when the node is on a list (nodes are initialised to point at
 * themselves and reset when removed). */
static inline bool weft__list_linked(const weft__list *n) {
  return n->next != n;
}

static inline void weft__list_push_back(weft__list *h, weft__list *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}

static inline void weft__list_push_front(weft__list *h, weft__list *n) {
  n->next = h->next;
  n->prev = h;
  h->next->prev = n;
  h->next = n;
}

static inline void weft__list_remove(weft__list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

static inline weft__list *weft__list_front(const weft__list *h) {
  return h->next == h ? NULL : h->next;
}

static inline weft__list *weft__list_pop_front(weft__list *h) {
  weft__list *n = h->next;
  if (n == h)
    return NULL;
  weft__list_remove(n);
  return n;
}

/* Moves every node of `from` to the back of `to`, leaving `from` empty. */
static inline void weft__list_splice(weft__list *to, weft__list *from) {
  if (weft__list_empty(from))
    return;
  from->next->prev = to->prev;
  to->prev->next = from->next;
  from->prev->next = to;
  to->prev = from->prev;
  weft__list_init(from);
}

#define weft__list_foreach(it, head)                                           \
  for ((it) = (head)->next; (it) != (head); (it) = (it)->next)

#endif
