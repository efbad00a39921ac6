/* runtime-group: structured concurrency and gather. */
#include "test.h"

typedef struct {
  double sleep;
  int ret;
  int cleaned;
} child_arg;

static int child(void *arg) {
  child_arg *c = arg;
  int rc = weft_sleep(c->sleep);
  c->cleaned = 1;
  if (rc != 0)
    return rc;
  return c->ret;
}

static int m_all_ok(void *arg) {
  (void)arg;
  weft_group *g;
  T_OK(weft_group_new(&g));
  child_arg c[3] = {{1, 0, 0}, {2, 5, 0}, {3, 0, 0}};
  double t0 = weft_now();
  for (int i = 0; i < 3; i++)
    T_OK(weft_group_spawn(g, NULL, child, &c[i]));
  T_EQ(weft_group_size(g), 3);
  T_OK(weft_group_wait(g));
  T_NEAR(weft_now() - t0, 3, 1e-6); /* concurrent: max, not sum */
  T_EQ(weft_group_size(g), 0);
  weft_group_free(g);
  return 0;
}
static void test_all_ok(void) { T_EQ(t_run_virtual(m_all_ok, NULL), 0); }

/* The second child fails: the others are cancelled, wait returns its error. */
static int m_second_fails(void *arg) {
  (void)arg;
  weft_group *g;
  T_OK(weft_group_new(&g));
  child_arg c[4] = {
      {10, 0, 0}, {1, WEFT_EIO, 0}, {20, 0, 0}, {2, WEFT_EPIPE, 0}};
  weft_task *h[4];
  for (int i = 0; i < 4; i++)
    T_OK(weft_group_spawn(g, &h[i], child, &c[i]));
  double t0 = weft_now();
  T_RC(weft_group_wait(g), WEFT_EIO);
  T_NEAR(weft_now() - t0, 1, 1e-6); /* siblings cancelled at 1 s */
  for (int i = 0; i < 4; i++)
    T_EQ(c[i].cleaned, 1);
  T_EQ(weft_task_result(h[0]), WEFT_ECANCELED);
  T_EQ(weft_task_result(h[1]), WEFT_EIO);
  T_EQ(weft_task_result(h[3]), WEFT_ECANCELED);
  /* The group is reusable after a wait. */
  child_arg ok = {1, 0, 0};
  T_OK(weft_group_spawn(g, NULL, child, &ok));
  T_OK(weft_group_wait(g));
  weft_group_free(g);
  return 0;
}
static void test_second_child_fails(void) {
  T_EQ(t_run_virtual(m_second_fails, NULL), 0);
}

/* Spawning into a failing group is refused. */
static int fail_now(void *arg) {
  (void)arg;
  return WEFT_EIO;
}
static int m_spawn_after_fail(void *arg) {
  (void)arg;
  weft_group *g;
  T_OK(weft_group_new(&g));
  child_arg c = {10, 0, 0};
  T_OK(weft_group_spawn(g, NULL, fail_now, NULL));
  T_OK(weft_group_spawn(g, NULL, child, &c));
  T_OK(weft_yield());
  T_RC(weft_group_spawn(g, NULL, child, &c), WEFT_ECANCELED);
  T_RC(weft_group_wait(g), WEFT_EIO);
  weft_group_free(g);
  return 0;
}
static void test_spawn_after_fail(void) {
  T_EQ(t_run_virtual(m_spawn_after_fail, NULL), 0);
}

/* Cancelling the waiter cancels and awaits every child. */
static int group_waiter(void *arg) {
  child_arg *c = arg;
  weft_group *g;
  int rc = weft_group_new(&g);
  if (rc)
    return rc;
  for (int i = 0; i < 3; i++)
    T_OK(weft_group_spawn(g, NULL, child, &c[i]));
  rc = weft_group_wait(g);
  T_EQ(weft_group_size(g), 0); /* nothing outlives the wait */
  weft_group_free(g);
  return rc;
}
static int m_cancel_wait(void *arg) {
  (void)arg;
  child_arg c[3] = {{100, 0, 0}, {200, 0, 0}, {300, 0, 0}};
  weft_task *t;
  T_OK(weft_spawn(&t, group_waiter, c));
  T_OK(weft_sleep(5));
  weft_cancel(t);
  int r;
  T_OK(weft_join(t, &r));
  T_EQ(r, WEFT_ECANCELED);
  for (int i = 0; i < 3; i++)
    T_EQ(c[i].cleaned, 1);
  return 0;
}
static void test_cancel_group_wait(void) {
  T_EQ(t_run_virtual(m_cancel_wait, NULL), 0);
}

/* A deadline on the group wait: children cancelled, ETIMEDOUT. */
static int m_deadline(void *arg) {
  (void)arg;
  child_arg c[3] = {{100, 0, 0}, {1, 0, 0}, {300, 0, 0}};
  weft_timeout s;
  weft_timeout_enter(&s, 10);
  double t0 = weft_now();
  T_RC(group_waiter(c), WEFT_ETIMEDOUT);
  T_NEAR(weft_now() - t0, 10, 1e-6);
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  for (int i = 0; i < 3; i++)
    T_EQ(c[i].cleaned, 1);
  return 0;
}
static void test_deadline_group_wait(void) {
  T_EQ(t_run_virtual(m_deadline, NULL), 0);
}

/* A child cancelled on its own is not a group failure. */
static int m_child_cancel(void *arg) {
  (void)arg;
  weft_group *g;
  T_OK(weft_group_new(&g));
  child_arg c[2] = {{100, 0, 0}, {2, 0, 0}};
  weft_task *h;
  T_OK(weft_group_spawn(g, &h, child, &c[0]));
  T_OK(weft_group_spawn(g, NULL, child, &c[1]));
  T_OK(weft_sleep(1));
  weft_cancel(h);
  T_OK(weft_group_wait(g));
  T_EQ(c[1].cleaned, 1);
  T_EQ(weft_task_result(h), WEFT_ECANCELED);
  /* A borrowed handle cannot be joined. */
  weft_group_free(g);
  return 0;
}
static void test_child_cancel_not_failure(void) {
  T_EQ(t_run_virtual(m_child_cancel, NULL), 0);
}

/* weft_group_cancel, and freeing a group with running children. */
static int m_cancel_free(void *arg) {
  (void)arg;
  weft_group *g;
  T_OK(weft_group_new(&g));
  child_arg c[2] = {{100, 0, 0}, {100, 0, 0}};
  T_OK(weft_group_spawn(g, NULL, child, &c[0]));
  T_OK(weft_group_spawn(g, NULL, child, &c[1]));
  T_OK(weft_yield());
  weft_group_cancel(g);
  T_RC(weft_group_spawn(g, NULL, child, &c[0]), WEFT_ECANCELED);
  T_OK(weft_group_wait(g));
  T_EQ(c[0].cleaned + c[1].cleaned, 2);
  c[0].cleaned = c[1].cleaned = 0;
  T_OK(weft_group_spawn(g, NULL, child, &c[0]));
  T_OK(weft_group_spawn(g, NULL, child, &c[1]));
  T_OK(weft_yield());
  weft_group_free(g); /* children are cancelled and handed to the runtime */
  T_OK(weft_yield());
  T_EQ(c[0].cleaned + c[1].cleaned, 2);
  return 0;
}
static void test_cancel_and_free(void) {
  T_EQ(t_run_virtual(m_cancel_free, NULL), 0);
}

/* gather: results in order; 1 000 one-second tasks take one second. */
static int sleep_ret(void *arg) {
  int i = (int)(intptr_t)arg;
  int rc = weft_sleep(1);
  return rc ? rc : i;
}
static int m_gather(void *arg) {
  (void)arg;
  enum { N = 1000 };
  weft_call *calls = calloc(N, sizeof *calls);
  for (int i = 0; i < N; i++)
    calls[i] = (weft_call){sleep_ret, (void *)(intptr_t)i, -1};
  double t0 = weft_now();
  T_OK(weft_gather(calls, N));
  T_NEAR(weft_now() - t0, 1, 1e-6);
  for (int i = 0; i < N; i++)
    T_EQ(calls[i].result, i);
  /* A failing call: the rest are cancelled. */
  calls[500].fn = fail_now;
  T_RC(weft_gather(calls, N), WEFT_EIO);
  T_EQ(calls[500].result, WEFT_EIO);
  T_EQ(calls[0].result, WEFT_ECANCELED);
  T_OK(weft_gather(NULL, 0));
  free(calls);
  return 0;
}
static void test_gather(void) { T_EQ(t_run_virtual(m_gather, NULL), 0); }

static int m_gather_real(void *arg) {
  (void)arg;
  weft_call calls[100];
  for (int i = 0; i < 100; i++)
    calls[i] = (weft_call){sleep_ret, (void *)(intptr_t)i, -1};
  double t0 = weft_now();
  T_OK(weft_gather(calls, 100));
  double dt = weft_now() - t0;
  T_GE(dt, 0.99);
  T_LT(dt, 1.5);
  return 0;
}
static void test_gather_real_clock(void) {
  T_EQ(t_run(m_gather_real, NULL), 0);
}

static const t_case cases[] = {
    {"all_ok", test_all_ok},
    {"second_child_fails", test_second_child_fails},
    {"spawn_after_fail", test_spawn_after_fail},
    {"cancel_group_wait", test_cancel_group_wait},
    {"deadline_group_wait", test_deadline_group_wait},
    {"child_cancel_not_failure", test_child_cancel_not_failure},
    {"cancel_and_free", test_cancel_and_free},
    {"gather", test_gather},
    {"gather_real_clock", test_gather_real_clock},
    {NULL, NULL}};

T_MAIN("runtime-group", cases)
