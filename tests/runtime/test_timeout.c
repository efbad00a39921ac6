/* runtime-timeout: deadline scopes, nesting, and how they meet cancellation
 * (cpython #86296: an inner timeout must never swallow an outer cancellation
 * or an outer timeout). All on the virtual clock: exact and instant. */
#include <math.h>

#include "test.h"

static int m_basic(void *arg) {
  (void)arg;
  weft_timeout s;
  double t0 = weft_now();
  weft_timeout_enter(&s, 5);
  T_RC(weft_sleep(60), WEFT_ETIMEDOUT);
  T_NEAR(weft_now() - t0, 5, 1e-6);
  /* Level-triggered: still expired inside the scope. */
  T_RC(weft_yield(), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  /* Outside the scope everything works again. */
  T_OK(weft_sleep(1));
  /* A scope whose deadline is never reached reports nothing. */
  weft_timeout_enter(&s, 10);
  T_OK(weft_sleep(1));
  T_OK(weft_timeout_exit(&s));
  /* Deadline passes without any suspension failing: not fired. */
  weft_timeout_enter(&s, 0);
  T_OK(weft_timeout_exit(&s));
  /* Already expired: the first suspension fails at once. */
  weft_timeout_enter(&s, 0);
  T_RC(weft_yield(), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  /* No deadline at all. */
  weft_timeout_enter(&s, INFINITY);
  T_OK(weft_sleep(1e6));
  T_OK(weft_timeout_exit(&s));
  /* An absolute deadline. */
  weft_timeout_enter_at(&s, weft_now() + 2);
  t0 = weft_now();
  T_RC(weft_sleep(10), WEFT_ETIMEDOUT);
  T_NEAR(weft_now() - t0, 2, 1e-6);
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  return 0;
}
static void test_basic(void) { T_EQ(t_run_virtual(m_basic, NULL), 0); }

/* A deadline that passes while the task waits on the run queue (it has
 * yielded, no timer armed) shows in what weft_yield returns once the task
 * runs again: whoever resumes it hands it its checkpoint. */
static int yield_in_scope(void *arg) {
  int *rc = arg;
  weft_timeout s;
  weft_timeout_enter(&s, 1);
  rc[0] = weft_yield();
  rc[1] = weft_timeout_exit(&s);
  return 0;
}
static int m_deadline_while_ready(void *arg) {
  (void)arg;
  int rc[2] = {1, 1};
  weft_task *t;
  T_OK(weft_spawn(&t, yield_in_scope, rc));
  T_OK(weft_yield()); /* t enters its scope and yields back */
  T_OK(weft_clock_advance(weft_loop_current(), 2));
  T_OK(weft_join(t, NULL));
  T_RC(rc[0], WEFT_ETIMEDOUT);
  T_RC(rc[1], WEFT_ETIMEDOUT);
  return 0;
}
static void test_deadline_while_ready(void) {
  T_EQ(t_run_virtual(m_deadline_while_ready, NULL), 0);
}

/* Inner shorter than outer: the inner fires, the outer goes on. */
static int m_inner_first(void *arg) {
  (void)arg;
  weft_timeout outer, inner;
  double t0 = weft_now();
  weft_timeout_enter(&outer, 10);
  weft_timeout_enter(&inner, 1);
  T_RC(weft_sleep(100), WEFT_ETIMEDOUT);
  T_NEAR(weft_now() - t0, 1, 1e-6);
  T_RC(weft_timeout_exit(&inner), WEFT_ETIMEDOUT);
  T_OK(weft_sleep(2)); /* outer still has 7 s */
  T_RC(weft_sleep(100), WEFT_ETIMEDOUT);
  T_NEAR(weft_now() - t0, 10, 1e-6);
  T_RC(weft_timeout_exit(&outer), WEFT_ETIMEDOUT);
  return 0;
}
static void test_inner_first(void) {
  T_EQ(t_run_virtual(m_inner_first, NULL), 0);
}

/* Outer shorter than inner: the outer fires; the inner scope must not
 * claim it, and after the inner exits the outer is still expired. */
static int m_outer_first(void *arg) {
  (void)arg;
  weft_timeout outer, inner;
  weft_timeout_enter(&outer, 1);
  weft_timeout_enter(&inner, 10);
  T_RC(weft_sleep(100), WEFT_ETIMEDOUT);
  T_OK(weft_timeout_exit(&inner)); /* not the inner's timeout */
  T_RC(weft_yield(), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&outer), WEFT_ETIMEDOUT);
  return 0;
}
static void test_outer_first(void) {
  T_EQ(t_run_virtual(m_outer_first, NULL), 0);
}

/* Both expired at once (the loop was late): both fire; code that handles the
 * inner timeout and carries on still sees the outer one. */
static int m_both(void *arg) {
  (void)arg;
  weft_timeout outer, inner;
  weft_timeout_enter(&outer, 1);
  weft_timeout_enter(&inner, 1);
  T_RC(weft_sleep(5), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&inner), WEFT_ETIMEDOUT);
  T_RC(weft_sleep(5), WEFT_ETIMEDOUT); /* the outer is not swallowed */
  T_RC(weft_timeout_exit(&outer), WEFT_ETIMEDOUT);
  return 0;
}
static void test_both_expire(void) { T_EQ(t_run_virtual(m_both, NULL), 0); }

/* Three levels, middle one fires. */
static int m_three(void *arg) {
  (void)arg;
  weft_timeout a, b, c;
  weft_timeout_enter(&a, 30);
  weft_timeout_enter(&b, 2);
  weft_timeout_enter(&c, 20);
  T_RC(weft_sleep(100), WEFT_ETIMEDOUT);
  T_OK(weft_timeout_exit(&c));
  T_RC(weft_yield(), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&b), WEFT_ETIMEDOUT);
  T_OK(weft_sleep(1));
  T_OK(weft_timeout_exit(&a));
  return 0;
}
static void test_three_levels(void) { T_EQ(t_run_virtual(m_three, NULL), 0); }

/* A cancellation arriving inside an inner deadline scope is not turned
 * into a timeout, and survives the scope. */
static int cancel_inside_scope(void *arg) {
  int *saw = arg;
  weft_timeout s;
  weft_timeout_enter(&s, 100);
  int rc = weft_sleep(1000);
  saw[0] = rc;
  saw[1] = weft_timeout_exit(&s);
  saw[2] = weft_sleep(1);
  return rc;
}
static int m_cancel_in_scope(void *arg) {
  (void)arg;
  int saw[3] = {1, 1, 1};
  weft_task *t;
  T_OK(weft_spawn(&t, cancel_inside_scope, saw));
  T_OK(weft_sleep(1));
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_EQ(saw[0], WEFT_ECANCELED);
  T_EQ(saw[1], 0);
  T_EQ(saw[2], WEFT_ECANCELED);
  return 0;
}
static void test_cancel_not_swallowed(void) {
  T_EQ(t_run_virtual(m_cancel_in_scope, NULL), 0);
}

/* Cancellation and an expired deadline at the same time: cancellation wins. */
static int both_cancel_and_deadline(void *arg) {
  int *saw = arg;
  weft_timeout s;
  weft_timeout_enter(&s, 1);
  saw[0] = weft_sleep(10);
  saw[1] = weft_timeout_exit(&s);
  return 0;
}
static int m_cancel_wins(void *arg) {
  (void)arg;
  int saw[2] = {1, 1};
  weft_task *t;
  T_OK(weft_spawn(&t, both_cancel_and_deadline, saw));
  T_OK(weft_yield()); /* t is now sleeping with a 1 s deadline */
  weft_cancel(t);
  T_OK(weft_sleep(5));
  T_OK(weft_join(t, NULL));
  T_EQ(saw[0], WEFT_ECANCELED);
  T_EQ(saw[1], 0);
  return 0;
}
static void test_cancel_wins(void) {
  T_EQ(t_run_virtual(m_cancel_wins, NULL), 0);
}

/* weft_wait_for inside a shorter outer scope: the outer timeout is
 * reported as a timeout, and the child is still cleaned up. */
static int sleep_arg(void *arg) { return weft_sleep(*(double *)arg); }
static int m_wait_for_nested(void *arg) {
  (void)arg;
  weft_timeout outer;
  double t0 = weft_now(), d = 100;
  int r;
  weft_timeout_enter(&outer, 1);
  T_RC(weft_wait_for(sleep_arg, &d, 50, &r), WEFT_ETIMEDOUT);
  T_EQ(r, WEFT_ECANCELED);
  T_NEAR(weft_now() - t0, 1, 1e-6);
  T_RC(weft_timeout_exit(&outer), WEFT_ETIMEDOUT);
  return 0;
}
static void test_wait_for_nested(void) {
  T_EQ(t_run_virtual(m_wait_for_nested, NULL), 0);
}

/* Deadlines apply to every kind of wait: join here. */
static int m_join_deadline(void *arg) {
  (void)arg;
  double d = 10;
  weft_task *t;
  T_OK(weft_spawn(&t, sleep_arg, &d));
  weft_timeout s;
  weft_timeout_enter(&s, 1);
  T_RC(weft_join(t, NULL), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  int r;
  T_OK(weft_join(t, &r)); /* the handle is still valid */
  T_EQ(r, 0);
  return 0;
}
static void test_join_deadline(void) {
  T_EQ(t_run_virtual(m_join_deadline, NULL), 0);
}

/* A real-clock deadline fires near its time. */
static int m_real(void *arg) {
  (void)arg;
  weft_timeout s;
  double t0 = weft_now();
  weft_timeout_enter(&s, 0.03);
  T_RC(weft_sleep(5), WEFT_ETIMEDOUT);
  double dt = weft_now() - t0;
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  T_GE(dt * 1000, 29);
  T_LT(dt * 1000, 1000);
  return 0;
}
static void test_real_clock(void) { T_EQ(t_run(m_real, NULL), 0); }

static void test_outside_task(void) {
  weft_timeout s;
  weft_timeout_enter(&s, 1);
  T_RC(weft_timeout_exit(&s), WEFT_ENOTASK);
}

static const t_case cases[] = {
    {"basic", test_basic},
    {"deadline_while_ready", test_deadline_while_ready},
    {"inner_first", test_inner_first},
    {"outer_first_not_swallowed", test_outer_first},
    {"both_expire", test_both_expire},
    {"three_levels", test_three_levels},
    {"cancel_not_swallowed", test_cancel_not_swallowed},
    {"cancel_wins", test_cancel_wins},
    {"wait_for_nested", test_wait_for_nested},
    {"join_deadline", test_join_deadline},
    {"real_clock", test_real_clock},
    {"outside_task", test_outside_task},
    {NULL, NULL}};

T_MAIN("runtime-timeout", cases)
