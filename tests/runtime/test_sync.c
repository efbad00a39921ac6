/* weft tests — sync: queue, semaphore, lock, event, condition.
 *
 * Each waiting call is checked for what its wait leaves behind when it is
 * cancelled or hits a deadline (the object must be exactly as before, and
 * nothing may be lost or duplicated), for FIFO wake order, and for the
 * races where a wait is satisfied and then cancelled before the task runs
 * again. Deadline tests run on the virtual clock, so a 60 s timeout takes no
 * real time.
 */
#include <stdint.h>
#include <stdlib.h>

#include "test.h"

#define ITEM(i) ((void *)(uintptr_t)(i))

/* Lets every task that is ready run until it parks (spawned tasks start at
 * the next turn, and some take a couple of steps to reach their wait). */
static void settle(void) {
  for (int i = 0; i < 4; i++)
    T_OK(weft_yield());
}

/* ---- a generic waiter: one task doing one waiting call ---- */

enum op { OP_GET, OP_PUT, OP_JOIN, OP_SEM, OP_LOCK, OP_EVENT, OP_COND };

typedef struct rec {
  int order[32]; /* indices of waiters, in the order their call returned */
  int n;
} rec;

typedef struct waiter_arg {
  enum op op;
  weft_queue *q;
  weft_sem *s;
  weft_lock *l;
  weft_event *e;
  weft_cond *c;
  int idx;
  rec *rec;       /* optional: where to log the return order */
  double timeout; /* > 0: wait inside a deadline scope this long */
  bool release;   /* give back the permit / lock once obtained */
  bool probe;     /* make one more suspension after the call, into `after` */
  void *item;     /* in for put, out for get */
  /* Results. */
  int rc;
  int scope_rc;
  int after;
  bool returned;
  bool held; /* OP_COND: held the lock when the wait returned */
  double t_end;
} waiter_arg;

static int waiter(void *p) {
  waiter_arg *a = p;
  weft_timeout scope;
  if (a->op == OP_COND) {
    int rc = weft_lock_acquire(a->l);
    if (rc != 0)
      return rc;
  }
  if (a->timeout > 0)
    weft_timeout_enter(&scope, a->timeout);
  switch (a->op) {
  case OP_GET:
    a->rc = weft_queue_get(a->q, &a->item);
    break;
  case OP_PUT:
    a->rc = weft_queue_put(a->q, a->item);
    break;
  case OP_JOIN:
    a->rc = weft_queue_join(a->q);
    break;
  case OP_SEM:
    a->rc = weft_sem_acquire(a->s);
    break;
  case OP_LOCK:
    a->rc = weft_lock_acquire(a->l);
    break;
  case OP_EVENT:
    a->rc = weft_event_wait(a->e);
    break;
  case OP_COND:
    a->rc = weft_cond_wait(a->c, a->l);
    /* Only the owner gets EDEADLK from try_acquire. */
    a->held = weft_lock_try_acquire(a->l) == WEFT_EDEADLK;
    break;
  }
  if (a->timeout > 0)
    a->scope_rc = weft_timeout_exit(&scope);
  a->returned = true;
  a->t_end = weft_now();
  if (a->rec != NULL)
    a->rec->order[a->rec->n++] = a->idx;
  if (a->probe)
    a->after = weft_yield();
  if (a->rc == 0 && a->release) {
    if (a->op == OP_SEM)
      weft_sem_release(a->s);
    if (a->op == OP_LOCK && weft_lock_release(a->l) != 0)
      return WEFT_EPERM;
  }
  if (a->op == OP_COND && a->held && weft_lock_release(a->l) != 0)
    return WEFT_EPERM;
  return a->rc;
}

/* Spawns a waiter and lets it reach its wait. */
static weft_task *start(waiter_arg *a) {
  weft_task *t = NULL;
  T_OK(weft_spawn(&t, waiter, a));
  settle();
  T_FALSE(a->returned);
  return t;
}

/* Joins a task and returns its result. */
static int finish(weft_task *t) {
  int res = 1;
  T_OK(weft_join(t, &res));
  return res;
}

static void check_order(const rec *r, int n) {
  T_EQ(r->n, n);
  for (int i = 0; i < n && i < r->n; i++)
    T_EQ(r->order[i], i);
}

#define RUN(fn) T_EQ(t_run((fn), NULL), 0)
#define RUNV(fn) T_EQ(t_run_virtual((fn), NULL), 0)

/* ---- queue ---- */

static int queue_basic_main(void *arg) {
  (void)arg;
  weft_queue *q;
  void *v = NULL;
  T_OK(weft_queue_new(&q, 3));
  T_RC(weft_queue_try_get(q, &v), WEFT_EAGAIN);
  for (int i = 1; i <= 3; i++)
    T_OK(weft_queue_try_put(q, ITEM(i)));
  T_RC(weft_queue_try_put(q, ITEM(4)), WEFT_EAGAIN);
  T_EQ(weft_queue_len(q), 3);
  for (int i = 1; i <= 3; i++) {
    T_OK(weft_queue_get(q, &v));
    T_EQ((uintptr_t)v, i);
  }
  T_EQ(weft_queue_len(q), 0);
  /* Wrap around the ring: the order must survive it. */
  int next_in = 10, next_out = 10;
  for (int round = 0; round < 20; round++) {
    while (weft_queue_len(q) < 3)
      T_OK(weft_queue_put(q, ITEM(next_in++)));
    for (int k = 0; k < 2; k++) {
      T_OK(weft_queue_try_get(q, &v));
      T_EQ((uintptr_t)v, next_out++);
    }
  }
  weft_queue_free(q);

  /* Unbounded: grows (and shrinks) as needed, keeping order. */
  T_OK(weft_queue_new(&q, 0));
  next_in = next_out = 1;
  for (int round = 0; round < 3; round++) {
    for (int k = 0; k < 5000; k++)
      T_OK(weft_queue_try_put(q, ITEM(next_in++)));
    for (int k = 0; k < 3000; k++) {
      T_OK(weft_queue_try_get(q, &v));
      T_EQ((uintptr_t)v, next_out++);
    }
  }
  T_EQ(weft_queue_len(q), next_in - next_out);
  while (weft_queue_try_get(q, &v) == 0)
    T_EQ((uintptr_t)v, next_out++);
  T_EQ(next_out, next_in);
  /* NULL is an item like any other. */
  T_OK(weft_queue_put(q, NULL));
  v = ITEM(1);
  T_OK(weft_queue_get(q, &v));
  T_TRUE(v == NULL);
  weft_queue_free(q);
  return 0;
}
static void test_queue_basic(void) { RUN(queue_basic_main); }

/* Getters are served in the order they came, each with the next item. */
static int queue_getters_fifo_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 4));
  rec r = {0};
  waiter_arg a[6];
  weft_task *t[6];
  for (int i = 0; i < 6; i++) {
    a[i] = (waiter_arg){.op = OP_GET, .q = q, .idx = i, .rec = &r};
    t[i] = start(&a[i]);
  }
  for (int i = 0; i < 6; i++)
    T_OK(weft_queue_put(q, ITEM(100 + i)));
  /* Each put went straight to a getter. */
  T_EQ(weft_queue_len(q), 0);
  for (int i = 0; i < 6; i++) {
    T_EQ(finish(t[i]), 0);
    T_EQ((uintptr_t)a[i].item, 100 + i);
  }
  check_order(&r, 6);
  weft_queue_free(q);
  return 0;
}
static void test_queue_getters_fifo(void) { RUN(queue_getters_fifo_main); }

/* Putters on a full queue get in in the order they came: each get moves the
 * oldest putter's item in behind the others. */
static int queue_putters_fifo_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 2));
  T_OK(weft_queue_put(q, ITEM(1)));
  T_OK(weft_queue_put(q, ITEM(2)));
  rec r = {0};
  waiter_arg a[5];
  weft_task *t[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (waiter_arg){
        .op = OP_PUT, .q = q, .idx = i, .rec = &r, .item = ITEM(3 + i)};
    t[i] = start(&a[i]);
  }
  T_EQ(weft_queue_len(q), 2);
  /* A late putter cannot slip in ahead of the waiting ones. */
  T_RC(weft_queue_try_put(q, ITEM(99)), WEFT_EAGAIN);
  void *v;
  for (int i = 1; i <= 7; i++) {
    T_OK(weft_queue_get(q, &v));
    T_EQ((uintptr_t)v, i);
    T_EQ(weft_queue_len(q), i <= 5 ? 2 : 7 - i);
  }
  for (int i = 0; i < 5; i++)
    T_EQ(finish(t[i]), 0);
  check_order(&r, 5);
  weft_queue_free(q);
  return 0;
}
static void test_queue_putters_fifo(void) { RUN(queue_putters_fifo_main); }

/* A cancelled get took nothing: the next item goes to the next getter. */
static int queue_get_cancel_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 2));
  waiter_arg a = {.op = OP_GET, .q = q, .item = ITEM(7)};
  weft_task *t = start(&a);
  weft_cancel(t);
  T_EQ(finish(t), WEFT_ECANCELED);
  T_RC(a.rc, WEFT_ECANCELED);
  T_TRUE(a.item == ITEM(7)); /* untouched */
  /* The dead getter is gone from the queue: the item stays for the next. */
  T_OK(weft_queue_put(q, ITEM(1)));
  T_EQ(weft_queue_len(q), 1);
  void *v;
  T_OK(weft_queue_try_get(q, &v));
  T_TRUE(v == ITEM(1));

  /* Two getters, the first cancelled: an item put right after goes to
   * exactly one of them, and whoever does not get it is still waiting. */
  waiter_arg a1 = {.op = OP_GET, .q = q}, a2 = {.op = OP_GET, .q = q};
  weft_task *t1 = start(&a1), *t2 = start(&a2);
  weft_cancel(t1);
  T_OK(weft_queue_put(q, ITEM(2)));
  int r1 = finish(t1);
  settle();
  int got =
      (r1 == 0 && a1.item == ITEM(2)) + (a2.returned && a2.item == ITEM(2));
  T_EQ(got, 1);
  if (r1 != 0) {
    T_RC(r1, WEFT_ECANCELED);
    T_EQ(weft_queue_len(q), 0);
  } else {
    T_FALSE(a2.returned);
    T_OK(weft_queue_put(q, ITEM(3)));
  }
  T_EQ(finish(t2), 0);
  T_TRUE(a2.item == (r1 == 0 ? ITEM(3) : ITEM(2)));
  T_EQ(weft_queue_len(q), 0);
  weft_queue_free(q);
  return 0;
}
static void test_queue_get_cancel(void) { RUN(queue_get_cancel_main); }

/* The race: an item is handed to a waiting getter, and the getter is
 * cancelled before it runs again. It must still return the item; the
 * cancellation shows at its next suspension. */
static int queue_get_handoff_cancel_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 1));
  waiter_arg a = {.op = OP_GET, .q = q, .probe = true};
  weft_task *t = start(&a);
  T_OK(weft_queue_put(q, ITEM(42)));
  weft_cancel(t);
  T_EQ(finish(t), 0);
  T_TRUE(a.item == ITEM(42));
  T_RC(a.after, WEFT_ECANCELED);
  T_EQ(weft_queue_len(q), 0);
  weft_queue_free(q);
  return 0;
}
static void test_queue_get_handoff_cancel(void) {
  RUN(queue_get_handoff_cancel_main);
}

static int queue_get_timeout_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 1));
  double t0 = weft_now();
  waiter_arg a = {.op = OP_GET, .q = q, .timeout = 60, .item = ITEM(7)};
  weft_task *t = start(&a);
  T_EQ(finish(t), WEFT_ETIMEDOUT);
  T_RC(a.scope_rc, WEFT_ETIMEDOUT);
  T_TRUE(a.item == ITEM(7));
  T_NEAR(a.t_end - t0, 60, 0.5);
  /* Nothing waits any more: a put stays in the queue. */
  T_OK(weft_queue_put(q, ITEM(1)));
  T_EQ(weft_queue_len(q), 1);
  void *v;
  T_OK(weft_queue_get(q, &v));
  T_TRUE(v == ITEM(1));
  weft_queue_free(q);
  return 0;
}
static void test_queue_get_timeout(void) { RUNV(queue_get_timeout_main); }

static int get_one(void *p) {
  void *v;
  return weft_queue_get(p, &v);
}

/* The same through weft_wait_for: the child is cancelled and awaited. */
static int queue_get_wait_for_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 1));
  double t0 = weft_now();
  int res = 1;
  T_RC(weft_wait_for(get_one, q, 60, &res), WEFT_ETIMEDOUT);
  T_RC(res, WEFT_ECANCELED);
  T_NEAR(weft_now() - t0, 60, 0.5);
  T_OK(weft_queue_try_put(q, ITEM(1)));
  T_EQ(weft_queue_len(q), 1);
  T_OK(weft_wait_for(get_one, q, 60, &res));
  T_EQ(res, 0);
  T_EQ(weft_queue_len(q), 0);
  weft_queue_free(q);
  return 0;
}
static void test_queue_get_wait_for(void) { RUNV(queue_get_wait_for_main); }

/* A cancelled put enqueued nothing. */
static int queue_put_cancel_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 1));
  T_OK(weft_queue_put(q, ITEM(1)));
  waiter_arg a = {.op = OP_PUT, .q = q, .item = ITEM(2)};
  weft_task *t = start(&a);
  weft_cancel(t);
  T_EQ(finish(t), WEFT_ECANCELED);
  T_EQ(weft_queue_len(q), 1);
  void *v;
  T_OK(weft_queue_get(q, &v));
  T_TRUE(v == ITEM(1));
  /* The cancelled putter's item did not move in when the slot freed. */
  T_EQ(weft_queue_len(q), 0);
  T_RC(weft_queue_try_get(q, &v), WEFT_EAGAIN);
  /* Nor does join wait for it. */
  T_OK(weft_queue_task_done(q));
  T_OK(weft_queue_join(q));
  T_RC(weft_queue_task_done(q), WEFT_EINVAL);
  weft_queue_free(q);
  return 0;
}
static void test_queue_put_cancel(void) { RUN(queue_put_cancel_main); }

static int queue_put_timeout_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 1));
  T_OK(weft_queue_put(q, ITEM(1)));
  double t0 = weft_now();
  waiter_arg a = {.op = OP_PUT, .q = q, .item = ITEM(2), .timeout = 60};
  weft_task *t = start(&a);
  T_EQ(finish(t), WEFT_ETIMEDOUT);
  T_RC(a.scope_rc, WEFT_ETIMEDOUT);
  T_NEAR(a.t_end - t0, 60, 0.5);
  T_EQ(weft_queue_len(q), 1);
  void *v;
  T_OK(weft_queue_get(q, &v));
  T_TRUE(v == ITEM(1));
  T_RC(weft_queue_try_get(q, &v), WEFT_EAGAIN);
  weft_queue_free(q);
  return 0;
}
static void test_queue_put_timeout(void) { RUNV(queue_put_timeout_main); }

/* A putter whose item was moved in, then cancelled before it ran: the put
 * succeeded and the item is in the queue exactly once. */
static int queue_put_moved_cancel_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 1));
  T_OK(weft_queue_put(q, ITEM(1)));
  waiter_arg a = {.op = OP_PUT, .q = q, .item = ITEM(2), .probe = true};
  weft_task *t = start(&a);
  void *v;
  T_OK(weft_queue_get(q, &v));
  T_TRUE(v == ITEM(1));
  weft_cancel(t);
  T_EQ(finish(t), 0);
  T_RC(a.after, WEFT_ECANCELED);
  T_EQ(weft_queue_len(q), 1);
  T_OK(weft_queue_try_get(q, &v));
  T_TRUE(v == ITEM(2));
  T_RC(weft_queue_try_get(q, &v), WEFT_EAGAIN);
  weft_queue_free(q);
  return 0;
}
static void test_queue_put_moved_cancel(void) {
  RUN(queue_put_moved_cancel_main);
}

static int queue_close_main(void *arg) {
  (void)arg;
  weft_queue *q;
  void *v;

  /* Waiting getters wake with WEFT_ECLOSED. */
  T_OK(weft_queue_new(&q, 2));
  waiter_arg g[3];
  weft_task *gt[3];
  for (int i = 0; i < 3; i++) {
    g[i] = (waiter_arg){.op = OP_GET, .q = q};
    gt[i] = start(&g[i]);
  }
  weft_queue_close(q);
  for (int i = 0; i < 3; i++)
    T_EQ(finish(gt[i]), WEFT_ECLOSED);
  T_RC(weft_queue_get(q, &v), WEFT_ECLOSED);
  T_RC(weft_queue_put(q, ITEM(1)), WEFT_ECLOSED);
  weft_queue_close(q); /* twice is fine */
  weft_queue_free(q);

  /* Waiting putters wake with WEFT_ECLOSED and enqueued nothing; what was
   * in the queue drains in order, then gets fail. */
  T_OK(weft_queue_new(&q, 2));
  T_OK(weft_queue_put(q, ITEM(1)));
  T_OK(weft_queue_put(q, ITEM(2)));
  waiter_arg p[2];
  weft_task *pt[2];
  for (int i = 0; i < 2; i++) {
    p[i] = (waiter_arg){.op = OP_PUT, .q = q, .item = ITEM(10 + i)};
    pt[i] = start(&p[i]);
  }
  weft_queue_close(q);
  for (int i = 0; i < 2; i++)
    T_EQ(finish(pt[i]), WEFT_ECLOSED);
  T_EQ(weft_queue_len(q), 2);
  T_RC(weft_queue_put(q, ITEM(3)), WEFT_ECLOSED);
  T_RC(weft_queue_try_put(q, ITEM(3)), WEFT_ECLOSED);
  T_OK(weft_queue_get(q, &v));
  T_TRUE(v == ITEM(1));
  T_OK(weft_queue_try_get(q, &v));
  T_TRUE(v == ITEM(2));
  T_RC(weft_queue_get(q, &v), WEFT_ECLOSED);
  T_RC(weft_queue_try_get(q, &v), WEFT_ECLOSED);
  /* Join still counts the two items put before the close. */
  T_OK(weft_queue_task_done(q));
  T_OK(weft_queue_task_done(q));
  T_OK(weft_queue_join(q));
  weft_queue_free(q);
  return 0;
}
static void test_queue_close(void) { RUN(queue_close_main); }

static int queue_join_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 0));
  T_OK(weft_queue_join(q)); /* nothing put: returns at once */
  T_RC(weft_queue_task_done(q), WEFT_EINVAL);
  for (int i = 0; i < 3; i++)
    T_OK(weft_queue_put(q, ITEM(i)));
  rec r = {0};
  waiter_arg j[2];
  weft_task *jt[2];
  for (int i = 0; i < 2; i++) {
    j[i] = (waiter_arg){.op = OP_JOIN, .q = q, .idx = i, .rec = &r};
    jt[i] = start(&j[i]);
  }
  void *v;
  /* Getting is not finishing: only task_done counts. */
  for (int i = 0; i < 3; i++)
    T_OK(weft_queue_get(q, &v));
  settle();
  T_FALSE(j[0].returned);
  T_OK(weft_queue_task_done(q));
  T_OK(weft_queue_task_done(q));
  settle();
  T_FALSE(j[0].returned);
  T_FALSE(j[1].returned);
  T_OK(weft_queue_task_done(q));
  for (int i = 0; i < 2; i++)
    T_EQ(finish(jt[i]), 0);
  check_order(&r, 2);
  T_RC(weft_queue_task_done(q), WEFT_EINVAL);
  T_OK(weft_queue_join(q));

  /* An item handed straight to a getter counts as put too. */
  waiter_arg g = {.op = OP_GET, .q = q};
  weft_task *gt = start(&g);
  T_OK(weft_queue_put(q, ITEM(5)));
  T_EQ(finish(gt), 0);
  waiter_arg j2 = {.op = OP_JOIN, .q = q};
  weft_task *jt2 = start(&j2);
  T_OK(weft_queue_task_done(q));
  T_EQ(finish(jt2), 0);
  weft_queue_free(q);
  return 0;
}
static void test_queue_join(void) { RUN(queue_join_main); }

static int queue_join_cancel_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 0));
  T_OK(weft_queue_put(q, ITEM(1)));
  waiter_arg j = {.op = OP_JOIN, .q = q};
  weft_task *jt = start(&j);
  weft_cancel(jt);
  T_EQ(finish(jt), WEFT_ECANCELED);
  /* The count is intact: one task_done is still owed, and only one. */
  waiter_arg j2 = {.op = OP_JOIN, .q = q};
  weft_task *jt2 = start(&j2);
  T_OK(weft_queue_task_done(q));
  T_EQ(finish(jt2), 0);
  T_RC(weft_queue_task_done(q), WEFT_EINVAL);
  T_EQ(weft_queue_len(q), 1); /* join does not touch the items */
  weft_queue_free(q);
  return 0;
}
static void test_queue_join_cancel(void) { RUN(queue_join_cancel_main); }

static int queue_join_timeout_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 0));
  T_OK(weft_queue_put(q, ITEM(1)));
  double t0 = weft_now();
  waiter_arg j = {.op = OP_JOIN, .q = q, .timeout = 60};
  weft_task *jt = start(&j);
  T_EQ(finish(jt), WEFT_ETIMEDOUT);
  T_RC(j.scope_rc, WEFT_ETIMEDOUT);
  T_NEAR(j.t_end - t0, 60, 0.5);
  T_OK(weft_queue_task_done(q));
  T_OK(weft_queue_join(q));
  T_RC(weft_queue_task_done(q), WEFT_EINVAL);
  weft_queue_free(q);
  return 0;
}
static void test_queue_join_timeout(void) { RUNV(queue_join_timeout_main); }

/* ---- producer / consumer ---- */

#define PC_PRODUCERS 4
#define PC_CONSUMERS 4
#define PC_PER 25000
#define PC_ITEMS (PC_PRODUCERS * PC_PER)

typedef struct pc_state {
  weft_queue *q;
  unsigned char *seen;
  size_t got;
  size_t bad; /* out of range, or out of order from one producer */
} pc_state;

typedef struct pc_arg {
  pc_state *s;
  int id;
} pc_arg;

static int producer(void *p) {
  pc_arg *a = p;
  for (int i = 0; i < PC_PER; i++) {
    int rc = weft_queue_put(a->s->q, ITEM(a->id * PC_PER + i + 1));
    if (rc != 0)
      return rc;
    if (i % 97 == 0 && (rc = weft_yield()) != 0)
      return rc;
  }
  return 0;
}

static int consumer(void *p) {
  pc_arg *a = p;
  pc_state *s = a->s;
  /* The queue is FIFO and this task's gets are sequential, so the items of
   * one producer reach it in increasing order. */
  long last[PC_PRODUCERS];
  for (int i = 0; i < PC_PRODUCERS; i++)
    last[i] = -1;
  for (size_t n = 0;; n++) {
    void *v;
    int rc = weft_queue_get(s->q, &v);
    if (rc == WEFT_ECLOSED)
      return 0;
    if (rc != 0)
      return rc;
    uintptr_t x = (uintptr_t)v;
    if (x == 0 || x > PC_ITEMS) {
      s->bad++;
    } else {
      long idx = (long)x - 1;
      int prod = (int)(idx / PC_PER);
      if (idx <= last[prod])
        s->bad++;
      last[prod] = idx;
      s->seen[idx]++;
    }
    s->got++;
    if ((rc = weft_queue_task_done(s->q)) != 0)
      return rc;
    if (n % 13 == 0 && (rc = weft_yield()) != 0)
      return rc;
  }
}

static int producer_consumer_main(void *arg) {
  (void)arg;
  pc_state s = {0};
  s.seen = calloc(PC_ITEMS, 1);
  T_TRUE(s.seen != NULL);
  if (s.seen == NULL)
    return 1;
  T_OK(weft_queue_new(&s.q, 64));
  pc_arg pa[PC_PRODUCERS], ca[PC_CONSUMERS];
  weft_task *pt[PC_PRODUCERS], *ct[PC_CONSUMERS];
  for (int i = 0; i < PC_CONSUMERS; i++) {
    ca[i] = (pc_arg){&s, i};
    T_OK(weft_spawn(&ct[i], consumer, &ca[i]));
  }
  for (int i = 0; i < PC_PRODUCERS; i++) {
    pa[i] = (pc_arg){&s, i};
    T_OK(weft_spawn(&pt[i], producer, &pa[i]));
  }
  for (int i = 0; i < PC_PRODUCERS; i++)
    T_EQ(finish(pt[i]), 0);
  /* Every item put has been processed once join returns. */
  T_OK(weft_queue_join(s.q));
  T_EQ(s.got, PC_ITEMS);
  T_EQ(weft_queue_len(s.q), 0);
  weft_queue_close(s.q);
  for (int i = 0; i < PC_CONSUMERS; i++)
    T_EQ(finish(ct[i]), 0);
  T_EQ(s.got, PC_ITEMS);
  T_EQ(s.bad, 0);
  size_t once = 0;
  for (size_t i = 0; i < PC_ITEMS; i++)
    once += s.seen[i] == 1;
  T_EQ(once, PC_ITEMS);
  weft_queue_free(s.q);
  free(s.seen);
  return 0;
}
static void test_queue_producer_consumer(void) { RUN(producer_consumer_main); }

static int queue_free_main(void *arg) {
  (void)arg;
  weft_queue *q;
  /* Getters of an empty queue. */
  T_OK(weft_queue_new(&q, 1));
  waiter_arg g[2];
  weft_task *gt[2];
  for (int i = 0; i < 2; i++) {
    g[i] = (waiter_arg){.op = OP_GET, .q = q};
    gt[i] = start(&g[i]);
  }
  weft_queue_free(q);
  for (int i = 0; i < 2; i++)
    T_EQ(finish(gt[i]), WEFT_ECANCELED);
  /* Putters of a full queue, and a joiner. */
  T_OK(weft_queue_new(&q, 1));
  T_OK(weft_queue_put(q, ITEM(1)));
  waiter_arg p = {.op = OP_PUT, .q = q, .item = ITEM(2)};
  waiter_arg j = {.op = OP_JOIN, .q = q};
  weft_task *ptk = start(&p), *jt = start(&j);
  weft_queue_free(q);
  T_EQ(finish(ptk), WEFT_ECANCELED);
  T_EQ(finish(jt), WEFT_ECANCELED);
  weft_queue_free(NULL);
  return 0;
}
static void test_queue_free_wakes(void) { RUN(queue_free_main); }

/* An unbounded queue that cannot grow says so, and stays usable. */
static bool fail_alloc;
static void *f_malloc(size_t n) { return fail_alloc ? NULL : malloc(n); }
static void *f_realloc(void *p, size_t n) {
  return fail_alloc ? NULL : realloc(p, n);
}

static int queue_nomem_main(void *arg) {
  (void)arg;
  weft_queue *q;
  T_OK(weft_queue_new(&q, 0));
  for (int i = 0; i < 8; i++)
    T_OK(weft_queue_put(q, ITEM(i + 1)));
  size_t len = weft_queue_len(q);
  fail_alloc = true;
  /* Whatever the ring's size, filling it must hit the failure. */
  int rc = 0;
  for (int i = 0; i < 1 << 12 && rc == 0; i++) {
    rc = weft_queue_try_put(q, ITEM(1000 + i));
    if (rc == 0)
      len++;
  }
  T_RC(rc, WEFT_ENOMEM);
  T_RC(weft_queue_put(q, ITEM(99)), WEFT_ENOMEM);
  weft_queue *q2 = NULL;
  weft_sem *s = NULL;
  weft_lock *l = NULL;
  weft_event *e = NULL;
  weft_cond *c = NULL;
  T_RC(weft_queue_new(&q2, 1), WEFT_ENOMEM);
  T_RC(weft_sem_new(&s, 1), WEFT_ENOMEM);
  T_RC(weft_lock_new(&l), WEFT_ENOMEM);
  T_RC(weft_event_new(&e), WEFT_ENOMEM);
  T_RC(weft_cond_new(&c), WEFT_ENOMEM);
  fail_alloc = false;
  T_EQ(weft_queue_len(q), len);
  T_OK(weft_queue_put(q, ITEM(99)));
  void *v;
  for (int i = 0; i < 8; i++) {
    T_OK(weft_queue_try_get(q, &v));
    T_EQ((uintptr_t)v, i + 1);
  }
  for (size_t i = 8; i < len; i++) {
    T_OK(weft_queue_try_get(q, &v));
    T_EQ((uintptr_t)v, 1000 + (i - 8));
  }
  T_OK(weft_queue_try_get(q, &v));
  T_TRUE(v == ITEM(99));
  T_EQ(weft_queue_len(q), 0);
  weft_queue_free(q);
  return 0;
}
static void test_queue_nomem(void) {
  weft_allocator a = {f_malloc, f_realloc, free};
  T_OK(weft_set_allocator(&a));
  RUN(queue_nomem_main);
  T_OK(weft_set_allocator(NULL));
}

/* ---- semaphore ---- */

static int sem_basic_main(void *arg) {
  (void)arg;
  weft_sem *s;
  T_OK(weft_sem_new(&s, 2));
  T_EQ(weft_sem_value(s), 2);
  T_OK(weft_sem_acquire(s));
  T_OK(weft_sem_try_acquire(s));
  T_RC(weft_sem_try_acquire(s), WEFT_EAGAIN);
  T_EQ(weft_sem_value(s), 0);
  weft_sem_release(s);
  weft_sem_release(s);
  weft_sem_release(s); /* beyond the start value is allowed */
  T_EQ(weft_sem_value(s), 3);
  weft_sem_free(s);
  weft_sem_free(NULL);
  return 0;
}
static void test_sem_basic(void) { RUN(sem_basic_main); }

/* Permits go to waiters in arrival order, directly: nobody overtakes. */
static int sem_fifo_main(void *arg) {
  (void)arg;
  weft_sem *s;
  T_OK(weft_sem_new(&s, 0));
  rec r = {0};
  waiter_arg a[5];
  weft_task *t[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (waiter_arg){.op = OP_SEM, .s = s, .idx = i, .rec = &r};
    t[i] = start(&a[i]);
  }
  weft_sem_release(s);
  /* The permit went to the oldest waiter, not into the count. */
  T_EQ(weft_sem_value(s), 0);
  T_RC(weft_sem_try_acquire(s), WEFT_EAGAIN);
  settle();
  T_EQ(r.n, 1);
  T_TRUE(a[0].returned);
  for (int i = 1; i < 5; i++)
    weft_sem_release(s);
  for (int i = 0; i < 5; i++)
    T_EQ(finish(t[i]), 0);
  check_order(&r, 5);
  T_EQ(weft_sem_value(s), 0);
  weft_sem_free(s);
  return 0;
}
static void test_sem_fifo(void) { RUN(sem_fifo_main); }

static int sem_cancel_main(void *arg) {
  (void)arg;
  weft_sem *s;
  T_OK(weft_sem_new(&s, 0));
  waiter_arg a = {.op = OP_SEM, .s = s};
  weft_task *t = start(&a);
  weft_cancel(t);
  T_EQ(finish(t), WEFT_ECANCELED);
  T_EQ(weft_sem_value(s), 0);
  /* No permit goes to the departed waiter. */
  weft_sem_release(s);
  T_EQ(weft_sem_value(s), 1);

  /* A permit handed over before the cancel is kept (and given back). */
  T_OK(weft_sem_acquire(s));
  waiter_arg b = {.op = OP_SEM, .s = s, .release = true, .probe = true};
  t = start(&b);
  weft_sem_release(s);
  weft_cancel(t);
  T_EQ(finish(t), 0);
  T_RC(b.after, WEFT_ECANCELED);
  T_EQ(weft_sem_value(s), 1);
  weft_sem_free(s);
  return 0;
}
static void test_sem_cancel(void) { RUN(sem_cancel_main); }

static int sem_timeout_main(void *arg) {
  (void)arg;
  weft_sem *s;
  T_OK(weft_sem_new(&s, 0));
  double t0 = weft_now();
  waiter_arg a = {.op = OP_SEM, .s = s, .timeout = 60};
  weft_task *t = start(&a);
  T_EQ(finish(t), WEFT_ETIMEDOUT);
  T_RC(a.scope_rc, WEFT_ETIMEDOUT);
  T_NEAR(a.t_end - t0, 60, 0.5);
  T_EQ(weft_sem_value(s), 0);
  weft_sem_release(s);
  T_EQ(weft_sem_value(s), 1);
  weft_sem_free(s);
  return 0;
}
static void test_sem_timeout(void) { RUNV(sem_timeout_main); }

typedef struct bound_state {
  weft_sem *s;
  int cur, max, done;
} bound_state;

static int bounded_worker(void *p) {
  bound_state *b = p;
  int rc = weft_sem_acquire(b->s);
  if (rc != 0)
    return rc;
  if (++b->cur > b->max)
    b->max = b->cur;
  for (int i = 0; i < 3 && rc == 0; i++)
    rc = weft_yield();
  b->cur--;
  b->done++;
  weft_sem_release(b->s);
  return rc;
}

static int sem_bounds_main(void *arg) {
  (void)arg;
  bound_state b = {0};
  T_OK(weft_sem_new(&b.s, 3));
  weft_task *t[20];
  for (int i = 0; i < 20; i++)
    T_OK(weft_spawn(&t[i], bounded_worker, &b));
  for (int i = 0; i < 20; i++)
    T_EQ(finish(t[i]), 0);
  T_EQ(b.max, 3);
  T_EQ(b.cur, 0);
  T_EQ(b.done, 20);
  T_EQ(weft_sem_value(b.s), 3);
  weft_sem_free(b.s);
  return 0;
}
static void test_sem_bounds(void) { RUN(sem_bounds_main); }

static int sem_free_main(void *arg) {
  (void)arg;
  weft_sem *s;
  T_OK(weft_sem_new(&s, 0));
  waiter_arg a[3];
  weft_task *t[3];
  for (int i = 0; i < 3; i++) {
    a[i] = (waiter_arg){.op = OP_SEM, .s = s};
    t[i] = start(&a[i]);
  }
  weft_sem_free(s);
  for (int i = 0; i < 3; i++)
    T_EQ(finish(t[i]), WEFT_ECANCELED);
  return 0;
}
static void test_sem_free_wakes(void) { RUN(sem_free_main); }

/* ---- lock ---- */

static int release_lock(void *p) { return weft_lock_release(p); }

static int lock_basic_main(void *arg) {
  (void)arg;
  weft_lock *l;
  T_OK(weft_lock_new(&l));
  T_FALSE(weft_lock_locked(l));
  T_RC(weft_lock_release(l), WEFT_EPERM);
  T_OK(weft_lock_acquire(l));
  T_TRUE(weft_lock_locked(l));
  T_RC(weft_lock_acquire(l), WEFT_EDEADLK);
  T_RC(weft_lock_try_acquire(l), WEFT_EDEADLK);
  /* Another task may not release it. */
  weft_task *t;
  T_OK(weft_spawn(&t, release_lock, l));
  T_EQ(finish(t), WEFT_EPERM);
  T_TRUE(weft_lock_locked(l));
  T_OK(weft_lock_release(l));
  T_FALSE(weft_lock_locked(l));
  T_RC(weft_lock_release(l), WEFT_EPERM);
  T_OK(weft_lock_try_acquire(l));
  T_OK(weft_lock_release(l));
  weft_lock_free(l);
  weft_lock_free(NULL);
  return 0;
}
static void test_lock_basic(void) { RUN(lock_basic_main); }

typedef struct excl_state {
  weft_lock *l;
  int inside, max_inside;
  long counter;
} excl_state;

static int excl_worker(void *p) {
  excl_state *s = p;
  for (int i = 0; i < 100; i++) {
    int rc = weft_lock_acquire(s->l);
    if (rc != 0)
      return rc;
    if (++s->inside > s->max_inside)
      s->max_inside = s->inside;
    /* A read-modify-write split by a suspension: only exclusion keeps the
     * count right. */
    long v = s->counter;
    rc = weft_yield();
    s->counter = v + 1;
    s->inside--;
    int rrc = weft_lock_release(s->l);
    if (rc != 0)
      return rc;
    if (rrc != 0)
      return rrc;
  }
  return 0;
}

static int lock_excludes_main(void *arg) {
  (void)arg;
  excl_state s = {0};
  T_OK(weft_lock_new(&s.l));
  weft_task *t[10];
  for (int i = 0; i < 10; i++)
    T_OK(weft_spawn(&t[i], excl_worker, &s));
  for (int i = 0; i < 10; i++)
    T_EQ(finish(t[i]), 0);
  T_EQ(s.counter, 1000);
  T_EQ(s.max_inside, 1);
  T_FALSE(weft_lock_locked(s.l));
  weft_lock_free(s.l);
  return 0;
}
static void test_lock_excludes(void) { RUN(lock_excludes_main); }

static int lock_fifo_main(void *arg) {
  (void)arg;
  weft_lock *l;
  T_OK(weft_lock_new(&l));
  T_OK(weft_lock_acquire(l));
  rec r = {0};
  waiter_arg a[5];
  weft_task *t[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (waiter_arg){
        .op = OP_LOCK, .l = l, .idx = i, .rec = &r, .release = true};
    t[i] = start(&a[i]);
  }
  T_OK(weft_lock_release(l));
  /* Handed to the oldest waiter at once: not free for the taking. */
  T_TRUE(weft_lock_locked(l));
  T_RC(weft_lock_try_acquire(l), WEFT_EAGAIN);
  for (int i = 0; i < 5; i++)
    T_EQ(finish(t[i]), 0);
  check_order(&r, 5);
  T_FALSE(weft_lock_locked(l));
  weft_lock_free(l);
  return 0;
}
static void test_lock_fifo(void) { RUN(lock_fifo_main); }

static int lock_cancel_main(void *arg) {
  (void)arg;
  weft_lock *l;
  T_OK(weft_lock_new(&l));
  T_OK(weft_lock_acquire(l));
  waiter_arg a = {.op = OP_LOCK, .l = l, .release = true};
  weft_task *t = start(&a);
  weft_cancel(t);
  T_EQ(finish(t), WEFT_ECANCELED);
  /* Still ours, and a release does not hand it to the departed waiter. */
  T_TRUE(weft_lock_locked(l));
  T_RC(weft_lock_acquire(l), WEFT_EDEADLK);
  T_OK(weft_lock_release(l));
  T_FALSE(weft_lock_locked(l));

  /* Handed over, then cancelled before running: the waiter owns it. */
  T_OK(weft_lock_acquire(l));
  waiter_arg b = {.op = OP_LOCK, .l = l, .release = true, .probe = true};
  t = start(&b);
  T_OK(weft_lock_release(l));
  weft_cancel(t);
  T_EQ(finish(t), 0);
  T_RC(b.after, WEFT_ECANCELED);
  T_FALSE(weft_lock_locked(l));
  weft_lock_free(l);
  return 0;
}
static void test_lock_cancel(void) { RUN(lock_cancel_main); }

static int lock_timeout_main(void *arg) {
  (void)arg;
  weft_lock *l;
  T_OK(weft_lock_new(&l));
  T_OK(weft_lock_acquire(l));
  double t0 = weft_now();
  waiter_arg a = {.op = OP_LOCK, .l = l, .timeout = 60, .release = true};
  weft_task *t = start(&a);
  T_EQ(finish(t), WEFT_ETIMEDOUT);
  T_RC(a.scope_rc, WEFT_ETIMEDOUT);
  T_NEAR(a.t_end - t0, 60, 0.5);
  T_TRUE(weft_lock_locked(l));
  T_OK(weft_lock_release(l));
  T_FALSE(weft_lock_locked(l));
  weft_lock_free(l);
  return 0;
}
static void test_lock_timeout(void) { RUNV(lock_timeout_main); }

static int lock_free_main(void *arg) {
  (void)arg;
  weft_lock *l;
  T_OK(weft_lock_new(&l));
  T_OK(weft_lock_acquire(l));
  waiter_arg a[2];
  weft_task *t[2];
  for (int i = 0; i < 2; i++) {
    a[i] = (waiter_arg){.op = OP_LOCK, .l = l};
    t[i] = start(&a[i]);
  }
  weft_lock_free(l);
  for (int i = 0; i < 2; i++)
    T_EQ(finish(t[i]), WEFT_ECANCELED);
  return 0;
}
static void test_lock_free_wakes(void) { RUN(lock_free_main); }

/* ---- event ---- */

static int event_main(void *arg) {
  (void)arg;
  weft_event *e;
  T_OK(weft_event_new(&e));
  T_FALSE(weft_event_is_set(e));
  rec r = {0};
  waiter_arg a[5];
  weft_task *t[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (waiter_arg){.op = OP_EVENT, .e = e, .idx = i, .rec = &r};
    t[i] = start(&a[i]);
  }
  weft_event_set(e);
  T_TRUE(weft_event_is_set(e));
  /* Cleared before the waiters run: they saw it set, so they return 0. */
  weft_event_clear(e);
  T_FALSE(weft_event_is_set(e));
  for (int i = 0; i < 5; i++)
    T_EQ(finish(t[i]), 0);
  check_order(&r, 5);
  /* Set: a wait returns at once. */
  weft_event_set(e);
  T_OK(weft_event_wait(e));
  weft_event_free(e);
  weft_event_free(NULL);
  return 0;
}
static void test_event(void) { RUN(event_main); }

static int event_cancel_main(void *arg) {
  (void)arg;
  weft_event *e;
  T_OK(weft_event_new(&e));
  waiter_arg a = {.op = OP_EVENT, .e = e};
  waiter_arg b = {.op = OP_EVENT, .e = e};
  weft_task *ta = start(&a), *tb = start(&b);
  weft_cancel(ta);
  T_EQ(finish(ta), WEFT_ECANCELED);
  T_FALSE(weft_event_is_set(e));
  T_FALSE(b.returned);
  weft_event_set(e);
  T_EQ(finish(tb), 0);
  T_TRUE(weft_event_is_set(e));
  weft_event_free(e);
  return 0;
}
static void test_event_cancel(void) { RUN(event_cancel_main); }

static int event_timeout_main(void *arg) {
  (void)arg;
  weft_event *e;
  T_OK(weft_event_new(&e));
  double t0 = weft_now();
  waiter_arg a = {.op = OP_EVENT, .e = e, .timeout = 60};
  weft_task *t = start(&a);
  T_EQ(finish(t), WEFT_ETIMEDOUT);
  T_RC(a.scope_rc, WEFT_ETIMEDOUT);
  T_NEAR(a.t_end - t0, 60, 0.5);
  T_FALSE(weft_event_is_set(e));
  weft_event_set(e);
  T_OK(weft_event_wait(e));
  weft_event_free(e);
  return 0;
}
static void test_event_timeout(void) { RUNV(event_timeout_main); }

static int event_free_main(void *arg) {
  (void)arg;
  weft_event *e;
  T_OK(weft_event_new(&e));
  waiter_arg a[2];
  weft_task *t[2];
  for (int i = 0; i < 2; i++) {
    a[i] = (waiter_arg){.op = OP_EVENT, .e = e};
    t[i] = start(&a[i]);
  }
  weft_event_free(e);
  for (int i = 0; i < 2; i++)
    T_EQ(finish(t[i]), WEFT_ECANCELED);
  return 0;
}
static void test_event_free_wakes(void) { RUN(event_free_main); }

/* ---- condition ---- */

static int cond_fifo_main(void *arg) {
  (void)arg;
  weft_lock *l;
  weft_cond *c;
  T_OK(weft_lock_new(&l));
  T_OK(weft_cond_new(&c));
  rec r = {0};
  waiter_arg a[5];
  weft_task *t[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (waiter_arg){.op = OP_COND, .l = l, .c = c, .idx = i, .rec = &r};
    t[i] = start(&a[i]);
  }
  /* Every waiter gave the lock up while waiting. */
  T_FALSE(weft_lock_locked(l));
  /* Signal wakes one, the oldest. */
  T_OK(weft_lock_acquire(l));
  weft_cond_signal(c);
  settle();
  T_EQ(r.n, 0); /* it is waiting for the lock we hold */
  T_OK(weft_lock_release(l));
  settle();
  T_EQ(r.n, 1);
  T_TRUE(a[0].returned);
  T_TRUE(a[0].held);
  T_FALSE(a[1].returned);
  weft_cond_signal(c);
  settle();
  T_EQ(r.n, 2);
  /* Broadcast wakes the rest, each taking the lock in turn. */
  weft_cond_broadcast(c);
  for (int i = 0; i < 5; i++) {
    T_EQ(finish(t[i]), 0);
    T_TRUE(a[i].held);
  }
  check_order(&r, 5);
  T_FALSE(weft_lock_locked(l));
  /* Nobody waits: signals are not remembered. */
  weft_cond_signal(c);
  weft_cond_broadcast(c);
  weft_cond_free(c);
  weft_cond_free(NULL);
  weft_lock_free(l);
  return 0;
}
static void test_cond_fifo(void) { RUN(cond_fifo_main); }

static int cond_eperm_main(void *arg) {
  (void)arg;
  weft_lock *l;
  weft_cond *c;
  T_OK(weft_lock_new(&l));
  T_OK(weft_cond_new(&c));
  T_RC(weft_cond_wait(c, l), WEFT_EPERM);
  /* Held by another task is not held by us. */
  waiter_arg a = {.op = OP_LOCK, .l = l, .release = false};
  weft_task *t;
  T_OK(weft_spawn(&t, waiter, &a));
  settle();
  T_TRUE(weft_lock_locked(l));
  T_RC(weft_cond_wait(c, l), WEFT_EPERM);
  T_EQ(finish(t), 0);
  weft_cond_free(c);
  weft_lock_free(l);
  return 0;
}
static void test_cond_eperm(void) { RUN(cond_eperm_main); }

/* A cancelled wait returns holding the lock, even when it must wait for the
 * lock after the cancel. */
static int cond_cancel_main(void *arg) {
  (void)arg;
  weft_lock *l;
  weft_cond *c;
  T_OK(weft_lock_new(&l));
  T_OK(weft_cond_new(&c));

  /* Lock free at the cancel: taken back at once. */
  waiter_arg a = {.op = OP_COND, .l = l, .c = c};
  weft_task *t = start(&a);
  weft_cancel(t);
  T_EQ(finish(t), WEFT_ECANCELED);
  T_TRUE(a.held);
  T_FALSE(weft_lock_locked(l));

  /* Lock held by us at the cancel: the waiter waits for it, ignoring the
   * cancellation, and returns only once it holds it. */
  waiter_arg b = {.op = OP_COND, .l = l, .c = c};
  t = start(&b);
  T_OK(weft_lock_acquire(l));
  weft_cancel(t);
  settle();
  T_FALSE(b.returned);
  T_OK(weft_lock_release(l));
  T_EQ(finish(t), WEFT_ECANCELED);
  T_TRUE(b.held);
  T_FALSE(weft_lock_locked(l));

  /* Signalled, then cancelled before it ran: the signal is not lost. */
  waiter_arg d = {.op = OP_COND, .l = l, .c = c, .probe = true};
  waiter_arg e = {.op = OP_COND, .l = l, .c = c};
  t = start(&d);
  weft_task *te = start(&e);
  weft_cond_signal(c);
  weft_cancel(t);
  T_EQ(finish(t), 0);
  T_TRUE(d.held);
  T_RC(d.after, WEFT_ECANCELED);
  T_FALSE(e.returned); /* the one signal went to d */
  weft_cond_signal(c);
  T_EQ(finish(te), 0);
  T_TRUE(e.held);
  weft_cond_free(c);
  weft_lock_free(l);
  return 0;
}
static void test_cond_cancel(void) { RUN(cond_cancel_main); }

static int cond_timeout_main(void *arg) {
  (void)arg;
  weft_lock *l;
  weft_cond *c;
  T_OK(weft_lock_new(&l));
  T_OK(weft_cond_new(&c));
  double t0 = weft_now();
  waiter_arg a = {.op = OP_COND, .l = l, .c = c, .timeout = 60};
  weft_task *t = start(&a);
  /* Hold the lock across the deadline: the waiter times out at 60 s, then
   * waits for the lock until we give it up at 120 s. */
  T_OK(weft_lock_acquire(l));
  T_OK(weft_sleep(120));
  T_FALSE(a.returned);
  T_OK(weft_lock_release(l));
  T_EQ(finish(t), WEFT_ETIMEDOUT);
  T_RC(a.scope_rc, WEFT_ETIMEDOUT);
  T_TRUE(a.held);
  T_NEAR(a.t_end - t0, 120, 0.5);
  T_FALSE(weft_lock_locked(l));

  /* Lock free at the deadline. */
  t0 = weft_now();
  waiter_arg b = {.op = OP_COND, .l = l, .c = c, .timeout = 60};
  t = start(&b);
  T_EQ(finish(t), WEFT_ETIMEDOUT);
  T_TRUE(b.held);
  T_NEAR(b.t_end - t0, 60, 0.5);
  weft_cond_free(c);
  weft_lock_free(l);
  return 0;
}
static void test_cond_timeout(void) { RUNV(cond_timeout_main); }

static int cond_free_main(void *arg) {
  (void)arg;
  weft_lock *l;
  weft_cond *c;
  T_OK(weft_lock_new(&l));
  T_OK(weft_cond_new(&c));
  waiter_arg a[3];
  weft_task *t[3];
  for (int i = 0; i < 3; i++) {
    a[i] = (waiter_arg){.op = OP_COND, .l = l, .c = c};
    t[i] = start(&a[i]);
  }
  weft_cond_free(c);
  for (int i = 0; i < 3; i++) {
    T_EQ(finish(t[i]), WEFT_ECANCELED);
    T_TRUE(a[i].held);
  }
  T_FALSE(weft_lock_locked(l));
  weft_lock_free(l);
  return 0;
}
static void test_cond_free_wakes(void) { RUN(cond_free_main); }

/* ---- outside a task ---- */

static void test_notask(void) {
#ifndef WEFT_DEBUG /* debug builds assert instead */
  weft_loop *loop;
  T_OK(weft_loop_new(&loop, NULL));
  weft_queue *q;
  weft_sem *s;
  weft_lock *l;
  weft_event *e;
  weft_cond *c;
  T_OK(weft_queue_new(&q, 1));
  T_OK(weft_sem_new(&s, 1));
  T_OK(weft_lock_new(&l));
  T_OK(weft_event_new(&e));
  T_OK(weft_cond_new(&c));
  void *v;
  /* Refused even when the call would not have to wait. */
  T_RC(weft_queue_put(q, ITEM(1)), WEFT_ENOTASK);
  T_EQ(weft_queue_len(q), 0);
  T_RC(weft_queue_get(q, &v), WEFT_ENOTASK);
  T_RC(weft_queue_join(q), WEFT_ENOTASK);
  T_RC(weft_sem_acquire(s), WEFT_ENOTASK);
  T_EQ(weft_sem_value(s), 1);
  T_RC(weft_lock_acquire(l), WEFT_ENOTASK);
  T_FALSE(weft_lock_locked(l));
  T_RC(weft_lock_try_acquire(l), WEFT_ENOTASK);
  T_RC(weft_lock_release(l), WEFT_EPERM);
  T_RC(weft_event_wait(e), WEFT_ENOTASK);
  T_RC(weft_cond_wait(c, l), WEFT_ENOTASK);
  /* The calls that never wait work from plain code on the loop's thread. */
  T_OK(weft_queue_try_put(q, ITEM(1)));
  T_OK(weft_queue_try_get(q, &v));
  T_TRUE(v == ITEM(1));
  T_OK(weft_queue_task_done(q));
  T_OK(weft_sem_try_acquire(s));
  weft_sem_release(s);
  weft_event_set(e);
  weft_cond_signal(c);
  weft_queue_close(q);
  weft_queue_free(q);
  weft_sem_free(s);
  weft_lock_free(l);
  weft_event_free(e);
  weft_cond_free(c);
  T_OK(weft_loop_free(loop));
#endif
}

/* Making an object needs a loop. */
static void test_noloop(void) {
  weft_queue *q;
  weft_sem *s;
  weft_lock *l;
  weft_event *e;
  weft_cond *c;
  T_RC(weft_queue_new(&q, 1), WEFT_ENOLOOP);
  T_RC(weft_sem_new(&s, 1), WEFT_ENOLOOP);
  T_RC(weft_lock_new(&l), WEFT_ENOLOOP);
  T_RC(weft_event_new(&e), WEFT_ENOLOOP);
  T_RC(weft_cond_new(&c), WEFT_ENOLOOP);
}

static const t_case cases[] = {
    {"queue_basic", test_queue_basic},
    {"queue_getters_fifo", test_queue_getters_fifo},
    {"queue_putters_fifo", test_queue_putters_fifo},
    {"queue_get_cancel", test_queue_get_cancel},
    {"queue_get_handoff_cancel", test_queue_get_handoff_cancel},
    {"queue_get_timeout", test_queue_get_timeout},
    {"queue_get_wait_for", test_queue_get_wait_for},
    {"queue_put_cancel", test_queue_put_cancel},
    {"queue_put_timeout", test_queue_put_timeout},
    {"queue_put_moved_cancel", test_queue_put_moved_cancel},
    {"queue_close", test_queue_close},
    {"queue_join", test_queue_join},
    {"queue_join_cancel", test_queue_join_cancel},
    {"queue_join_timeout", test_queue_join_timeout},
    {"queue_producer_consumer", test_queue_producer_consumer},
    {"queue_free_wakes", test_queue_free_wakes},
    {"queue_nomem", test_queue_nomem},
    {"sem_basic", test_sem_basic},
    {"sem_fifo", test_sem_fifo},
    {"sem_cancel", test_sem_cancel},
    {"sem_timeout", test_sem_timeout},
    {"sem_bounds", test_sem_bounds},
    {"sem_free_wakes", test_sem_free_wakes},
    {"lock_basic", test_lock_basic},
    {"lock_excludes", test_lock_excludes},
    {"lock_fifo", test_lock_fifo},
    {"lock_cancel", test_lock_cancel},
    {"lock_timeout", test_lock_timeout},
    {"lock_free_wakes", test_lock_free_wakes},
    {"event", test_event},
    {"event_cancel", test_event_cancel},
    {"event_timeout", test_event_timeout},
    {"event_free_wakes", test_event_free_wakes},
    {"cond_fifo", test_cond_fifo},
    {"cond_eperm", test_cond_eperm},
    {"cond_cancel", test_cond_cancel},
    {"cond_timeout", test_cond_timeout},
    {"cond_free_wakes", test_cond_free_wakes},
    {"notask", test_notask},
    {"noloop", test_noloop},
    {NULL, NULL},
};

T_MAIN("runtime-sync", cases)
