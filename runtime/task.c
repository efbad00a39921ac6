/* weft — tasks: spawn, join, detach, cancel, wait_any, wait_for, and the
 * bookkeeping that makes sure no task is lost and no failure goes unseen. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* A task that lives a few µs would otherwise spend a third of its
 * instructions in malloc and free: freed descriptors are kept on a per-loop
 * LIFO (chained through `link.next`, so the next spawn gets a warm one),
 * bounded by the stack cache's size. weft__task_new and weft__task_free
 * (internal.h) are the fast halves. */

/* A fresh descriptor is made clean once: what the cache keeps as it is. */
static weft_task *task_malloc(weft_loop *loop) {
  weft_task *t = weft__malloc(sizeof *t);
  if (t != NULL) {
    t->ctx = (weft__ctx){0};
    t->loop = loop;
    weft__list_init(&t->joiners);
    weft__list_init(&t->group_link);
    t->stack.kind = WEFT__STACK_NONE;
    t->heap_idx = 0;
    t->wait_what = NULL;
    t->wait_on = NULL;
    t->name = NULL;
  }
  return t;
}

weft_task *weft__task_alloc_slow(weft_loop *loop) {
  if (loop->heap_cap < loop->stats.tasks_alive + 1) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    weft_task **h = weft__realloc(loop->heap, cap * sizeof *h);
    if (h == NULL)
      return NULL;
    loop->heap = h;
    loop->heap_cap = cap;
  }
  weft__list *n = loop->free_tasks;
  if (n == NULL)
    return task_malloc(loop);
  loop->free_tasks = n->next;
  loop->free_tasks_len--;
  return weft__container_of(n, weft_task, link);
}

void weft__task_free_slow(weft_task *t) {
  weft_loop *loop = t->loop;
  if (t->name != NULL) {
    weft__free(t->name);
    t->name = NULL;
  }
#ifdef WEFT_DEBUG
  assert(t->heap_idx == 0 && t->stack.kind == WEFT__STACK_NONE &&
         weft__list_empty(&t->joiners) && !weft__list_linked(&t->group_link));
#endif
  if (!WEFT__TASK_CACHE || loop->free_tasks_len >= loop->pool.cache_max) {
    weft__free(t);
    return;
  }
  t->link.next = loop->free_tasks;
  loop->free_tasks = &t->link;
  loop->free_tasks_len++;
}

void weft__task_cache_fini(weft_loop *loop) {
  weft__list *n;
  while ((n = loop->free_tasks) != NULL) {
    loop->free_tasks = n->next;
    weft__free(weft__container_of(n, weft_task, link));
  }
  loop->free_tasks_len = 0;
}

int weft__spawn_task(weft_task **out, weft_task_fn fn, void *arg,
                     const weft_task_opts *opts, const char *site) {
  weft_loop *loop = weft__tls_loop;
  if (loop == NULL)
    return WEFT_ENOLOOP;
  if (fn == NULL)
    return WEFT_EINVAL;
  weft_task_opts o = {0};
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  char *name = NULL;
  if (o.name != NULL && (name = weft__strdup(o.name)) == NULL)
    return WEFT_ENOMEM;
  weft_task *t = weft__task_new(loop, fn, arg, o.stack_size, site);
  if (t == NULL) {
    weft__free(name);
    return WEFT_ENOMEM;
  }
  t->name = name;
  *out = t;
  return 0;
}

int weft_spawn_at(weft_task **out, weft_task_fn fn, void *arg,
                  const weft_task_opts *opts, const char *site) {
  weft_task *t;
  int rc = weft__spawn_task(&t, fn, arg, opts, site);
  if (rc != 0)
    return rc;
  if (out != NULL)
    *out = t;
  else
    t->flags |= WEFT__T_DETACHED;
  weft__task_start(t);
  return 0;
}

void weft__report_failure(weft_task *t, const char *why) {
  fprintf(t->loop->dbg_out ? t->loop->dbg_out : stderr,
          "weft: task %llu '%s' (spawned at %s) failed with %s (%s) and %s\n",
          (unsigned long long)t->id, weft_task_name(t), t->site,
          weft_err_name(t->result), weft_strerror(t->result), why);
}

/* The handle of a finished task is gone: report a failure nobody can see any
 * more, and free the descriptor. */
void weft__task_release(weft_task *t) {
  assert(t->state == WEFT__DONE);
  if ((t->flags & WEFT__T_DETACHED) && t->result < 0 &&
      t->result != WEFT_ECANCELED)
    weft__report_failure(t, "nobody joined it (it was detached)");
  weft__task_free(t);
}

void weft_detach(weft_task *t) {
  if (t == NULL || (t->flags & (WEFT__T_DETACHED | WEFT__T_GROUP)))
    return;
  t->flags |= WEFT__T_DETACHED;
  if (t->state == WEFT__DONE)
    weft__task_release(t);
}

void weft_cancel(weft_task *t) {
  if (t == NULL || t->state == WEFT__DONE)
    return;
  t->flags |= WEFT__T_CANCELLED;
  if (t->state == WEFT__WAITING && !(t->flags & WEFT__T_NOCANCEL))
    weft__wake(t, WEFT_ECANCELED);
}

void weft__task_cancel_all(weft_loop *loop) {
  weft__list *it;
  weft__list_foreach(it, &loop->tasks) {
    weft_task *t = weft__container_of(it, weft_task, all_link);
    weft_cancel(t);
  }
}

/* At the end of a run: tasks that returned but whose handle was never
 * consumed. Their failures would otherwise vanish. */
void weft__task_reap(weft_loop *loop) {
  weft__list *n;
  while ((n = weft__list_front(&loop->tasks)) != NULL) {
    weft_task *t = weft__container_of(n, weft_task, all_link);
    assert(t->state == WEFT__DONE);
    if (t->result < 0 && t->result != WEFT_ECANCELED)
      weft__report_failure(t, "its handle was never joined");
    if (t->flags & WEFT__T_GROUP) {
      /* A kept group child whose group was never waited on or freed. */
      weft__list_remove(&t->group_link);
    }
    weft__task_free(t);
  }
}

static int wait_done(weft_task *self, weft_task *t, int flags) {
  (void)self;
  weft__waiter w;
  weft__waiter_init(&w, self);
  weft__list_push_back(&t->joiners, &w.link);
  int rc;
  do
    rc = weft__park("join", t, flags);
  while (rc == 0 && !w.done);
  if (w.done)
    return 0;
  weft__list_remove(&w.link);
  return rc;
}

int weft_join(weft_task *t, int *result) {
  WEFT__NEED_TASK(self);
  if (t == NULL)
    return WEFT_EINVAL;
  if (t == self)
    return WEFT_EDEADLK;
  if (t->flags & (WEFT__T_DETACHED | WEFT__T_GROUP))
    return WEFT_EINVAL;
  if (t->state != WEFT__DONE) {
    int rc = wait_done(self, t, 0);
    if (rc != 0)
      return rc;
  }
  if (result != NULL)
    *result = t->result;
  weft__task_release(t);
  return 0;
}

void weft__join_uninterruptible(weft_task *t) {
  weft_task *self = weft__tls_loop->current;
  if (t->state != WEFT__DONE)
    (void)wait_done(self, t, WEFT__PARK_NOCANCEL);
}

int weft_wait_any(weft_task *const *tasks, size_t n, size_t *index) {
  WEFT__NEED_TASK(self);
  if (tasks == NULL || n == 0)
    return WEFT_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (tasks[i] == self)
      return WEFT_EDEADLK;
    if (tasks[i]->state == WEFT__DONE) {
      if (index)
        *index = i;
      return 0;
    }
  }
  weft__waiter small[8];
  weft__waiter *w = n <= 8 ? small : weft__calloc(n, sizeof *w);
  if (w == NULL)
    return WEFT_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    weft__waiter_init(&w[i], self);
    weft__list_push_back(&tasks[i]->joiners, &w[i].link);
  }
  int rc;
  size_t found = n;
  for (;;) {
    rc = weft__park("wait_any", tasks[0], 0);
    for (size_t i = 0; i < n && found == n; i++)
      if (w[i].done)
        found = i;
    if (found != n || rc != 0)
      break;
  }
  for (size_t i = 0; i < n; i++)
    if (!w[i].done)
      weft__list_remove(&w[i].link);
  if (w != small)
    weft__free(w);
  if (found == n)
    return rc;
  if (index)
    *index = found;
  return 0;
}

int weft_wait_for(weft_task_fn fn, void *arg, double seconds, int *result) {
  WEFT__NEED_TASK(self);
  weft_task *child;
  weft_task_opts o = {.size = sizeof o};
  int rc = weft__spawn_task(&child, fn, arg, &o, "weft_wait_for");
  if (rc != 0)
    return rc;
  weft__task_start(child);
  weft_timeout scope;
  weft_timeout_enter(&scope, seconds);
  rc = child->state == WEFT__DONE ? 0 : wait_done(self, child, 0);
  int trc = weft_timeout_exit(&scope);
  if (rc != 0) {
    /* Timed out or cancelled: the child must not outlive the call. */
    weft_cancel(child);
    weft__join_uninterruptible(child);
    if (rc == WEFT_ETIMEDOUT && trc != WEFT_ETIMEDOUT)
      rc = WEFT_ETIMEDOUT; /* an outer deadline: still a timeout */
  }
  if (result != NULL)
    *result = child->result;
  weft__task_release(child);
  return rc;
}

weft_task *weft_current(void) {
  weft_loop *loop = weft__tls_loop;
  return loop ? loop->current : NULL;
}

bool weft_cancelled(void) { return weft__cancelled(); }

bool weft_task_done(const weft_task *t) { return t->state == WEFT__DONE; }
int weft_task_result(const weft_task *t) { return t->result; }
uint64_t weft_task_id(const weft_task *t) { return t->id; }

const char *weft_task_name(const weft_task *t) {
  return t->name ? t->name : t->site;
}

int weft_task_set_name(weft_task *t, const char *name) {
  char *n = NULL;
  if (name != NULL && (n = weft__strdup(name)) == NULL)
    return WEFT_ENOMEM;
  weft__free(t->name);
  t->name = n;
  return 0;
}
