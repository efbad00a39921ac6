/* weft — task groups (structured concurrency) and gather. */
#include <assert.h>

#include "internal.h"

/* struct weft_group is in internal.h: the scheduler accounts for a child
 * that returns (weft__group_child_done) without a call. */

int weft_group_new(weft_group **out) {
  weft_loop *loop = weft__tls_loop;
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_group *g = weft__calloc(1, sizeof *g);
  if (g == NULL)
    return WEFT_ENOMEM;
  g->loop = loop;
  weft__list_init(&g->children);
  weft__list_init(&g->kept);
  weft__list_init(&g->waiters);
  weft__obj_add(loop);
  *out = g;
  return 0;
}

static void cancel_children(weft_group *g) {
  weft__list *it;
  weft__list_foreach(it, &g->children) {
    weft_cancel(weft__container_of(it, weft_task, group_link));
  }
}

/* The spawn weft_group_spawn_at and weft_gather share. */
static inline int group_spawn(weft_loop *loop, weft_group *g, weft_task **out,
                              weft_task_fn fn, void *arg,
                              const weft_task_opts *opts, const char *site) {
  if (g->cancelled || g->first_error != 0)
    return WEFT_ECANCELED;
  weft_task *t;
  if (opts == NULL) {
    if (fn == NULL)
      return WEFT_EINVAL;
    if ((t = weft__task_new(loop, fn, arg, 0, site)) == NULL)
      return WEFT_ENOMEM;
  } else {
    int rc = weft__spawn_task(&t, fn, arg, opts, site);
    if (rc != 0)
      return rc;
  }
  t->flags |= WEFT__T_GROUP;
  t->group = g;
  if (out != NULL) {
    t->flags |= WEFT__T_KEEP;
    *out = t;
  }
  weft__list_push_back(&g->children, &t->group_link);
  g->running++;
  weft__task_start(t);
  return 0;
}

int weft_group_spawn_at(weft_group *g, weft_task **out, weft_task_fn fn,
                        void *arg, const weft_task_opts *opts,
                        const char *site) {
  if (g == NULL)
    return WEFT_EINVAL;
  weft_loop *loop = weft__tls_loop;
  if (loop == NULL)
    return WEFT_ENOLOOP;
  return group_spawn(loop, g, out, fn, arg, opts, site);
}

void weft__group_fail(weft_group *g, int error) {
  g->first_error = error;
  cancel_children(g);
}

static void park_until_empty(weft_group *g, weft_task *self, int flags,
                             int *rc) {
  while (g->running > 0) {
    weft__waiter w;
    weft__waiter_init(&w, self);
    weft__list_push_back(&g->waiters, &w.link);
    int prc;
    do
      prc = weft__park("group", g, flags);
    while (prc == 0 && !w.done);
    if (!w.done) {
      weft__list_remove(&w.link);
      *rc = prc;
      return;
    }
  }
}

int weft_group_wait(weft_group *g) {
  WEFT__NEED_TASK(self);
  if (g == NULL)
    return WEFT_EINVAL;
  int rc = 0;
  park_until_empty(g, self, 0, &rc);
  if (rc != 0) {
    /* The waiter was cancelled or timed out: no child may outlive it. */
    g->cancelled = true;
    cancel_children(g);
    park_until_empty(g, self, WEFT__PARK_NOCANCEL, &rc);
  }
  int result = rc != 0 ? rc : g->first_error;
  /* The group is reusable: forget this round's failure. Handles given out
   * stay valid until the group is freed, so results can be read. */
  g->first_error = 0;
  g->cancelled = false;
  return result;
}

void weft_group_cancel(weft_group *g) {
  if (g == NULL)
    return;
  g->cancelled = true;
  cancel_children(g);
}

size_t weft_group_size(const weft_group *g) { return g->running; }

void weft_group_free(weft_group *g) {
  if (g == NULL)
    return;
  weft__list *n;
  /* Children still running go to the runtime, which reports their failures
   * (they are cancelled, so mostly there will be none). */
  while ((n = weft__list_pop_front(&g->children)) != NULL) {
    weft_task *t = weft__container_of(n, weft_task, group_link);
    t->flags = (uint8_t)((t->flags & ~(WEFT__T_GROUP | WEFT__T_KEEP)) |
                         WEFT__T_DETACHED);
    t->group = NULL;
    weft_cancel(t);
  }
  while ((n = weft__list_pop_front(&g->kept)) != NULL)
    weft__task_free(weft__container_of(n, weft_task, group_link));
  assert(weft__list_empty(&g->waiters));
  weft__obj_del(g->loop);
  weft__free(g);
}

static int gather_one(void *arg) {
  weft_call *c = arg;
  c->result = c->fn(c->arg);
  return c->result;
}

int weft_gather(weft_call *calls, size_t n) {
  WEFT__NEED_TASK(self);
  (void)self;
  if (n > 0 && calls == NULL)
    return WEFT_EINVAL;
  for (size_t i = 0; i < n; i++)
    calls[i].result = WEFT_ECANCELED; /* until it returns */
  weft_group *g;
  int rc = weft_group_new(&g);
  if (rc != 0)
    return rc;
  int spawn_rc = 0;
  weft_loop *loop = weft__tls_loop;
  for (size_t i = 0; i < n && spawn_rc == 0; i++) {
    spawn_rc =
        group_spawn(loop, g, NULL, gather_one, &calls[i], NULL, "weft_gather");
    if (spawn_rc != 0 && spawn_rc != WEFT_ECANCELED)
      weft_group_cancel(g);
  }
  rc = weft_group_wait(g);
  weft_group_free(g);
  if (spawn_rc == WEFT_ENOMEM)
    return WEFT_ENOMEM;
  return rc;
}
