/* runtime-workers: one loop per thread. Every worker runs main on its own
 * thread and loop; the first failure cancels the others and is returned;
 * a stop request reaches every worker, also one that asks late. */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

#define N 4

typedef struct shared {
  atomic_int ran;
  atomic_int index_seen[N];
  pthread_t threads[N];
  weft_loop *loops[N];
  atomic_int cancelled;
} shared;

static int m_each(void *arg) {
  shared *s = arg;
  int i = weft_worker_index();
  if (i < 0 || i >= N || weft_worker_count() != N)
    return WEFT_EINVAL;
  atomic_fetch_add(&s->index_seen[i], 1);
  s->threads[i] = pthread_self();
  s->loops[i] = weft_loop_current();
  /* Every worker is a real loop: tasks run and sleep on it. */
  int rc = weft_sleep(0.01);
  if (rc != 0)
    return rc;
  atomic_fetch_add(&s->ran, 1);
  return 7; /* a count >= 0 is success */
}

static void test_each_runs(void) {
  shared s = {0};
  T_EQ(weft_worker_index(), -1);
  T_EQ(weft_worker_count(), 0);
  T_OK(weft_run_workers(N, m_each, &s));
  T_EQ(atomic_load(&s.ran), N);
  for (int i = 0; i < N; i++) {
    T_EQ(atomic_load(&s.index_seen[i]), 1);
    for (int j = 0; j < i; j++) {
      T_FALSE(pthread_equal(s.threads[i], s.threads[j]));
      T_TRUE(s.loops[i] != s.loops[j]);
    }
  }
  T_TRUE(weft_loop_current() == NULL);
}

/* Worker 2 fails; the others sleep "forever" and must be cancelled. */
static int m_fail(void *arg) {
  shared *s = arg;
  if (weft_worker_index() == 2) {
    (void)weft_sleep(0.02);
    return WEFT_EIO;
  }
  int rc = weft_sleep(60);
  if (rc == WEFT_ECANCELED)
    atomic_fetch_add(&s->cancelled, 1);
  return rc;
}

static void test_first_failure_cancels(void) {
  shared s = {0};
  double t0 = weft_now();
  T_RC(weft_run_workers(N, m_fail, &s), WEFT_EIO);
  T_LT(weft_now() - t0, 5);
  T_EQ(atomic_load(&s.cancelled), N - 1);
}

/* A failing main that returns before the others even start still cancels
 * them: with n larger than the CPUs, some begin after the failure. */
static int m_fail_at_once(void *arg) {
  shared *s = arg;
  if (weft_worker_index() == 0)
    return WEFT_EPROTO;
  int rc = weft_sleep(60);
  if (rc == WEFT_ECANCELED)
    atomic_fetch_add(&s->cancelled, 1);
  return rc;
}

static void test_failure_before_start(void) {
  shared s = {0};
  double t0 = weft_now();
  T_RC(weft_run_workers(8, m_fail_at_once, &s), WEFT_EPROTO);
  T_LT(weft_now() - t0, 5);
  T_EQ(atomic_load(&s.cancelled), 7);
}

/* Worker 0 asks everyone to stop; each waits for that and returns 0. One
 * worker asks for the wait only after the stop: it still returns at once. */
static int m_stop(void *arg) {
  shared *s = arg;
  int i = weft_worker_index();
  if (i == 0) {
    (void)weft_sleep(0.02);
    /* CUnit is not thread-safe: workers report through their result. */
    if (weft_workers_stopping() || weft_workers_stop() != 0 ||
        weft_workers_stop() != 0) /* twice: nothing more */
      return WEFT_EINVAL;
  }
  if (i == 1)
    (void)weft_sleep(0.1); /* arrives after the stop */
  int rc = weft_workers_wait_stop();
  if (rc == 0 && weft_workers_stopping())
    atomic_fetch_add(&s->ran, 1);
  return rc;
}

static void test_stop(void) {
  shared s = {0};
  double t0 = weft_now();
  T_OK(weft_run_workers(N, m_stop, &s));
  T_LT(weft_now() - t0, 5);
  T_EQ(atomic_load(&s.ran), N);
}

/* Outside workers the stop calls refuse clearly. */
static int m_not_worker(void *arg) {
  (void)arg;
  T_RC(weft_workers_stop(), WEFT_EINVAL);
  T_FALSE(weft_workers_stopping());
  T_RC(weft_workers_wait_stop(), WEFT_EINVAL);
  return 0;
}

static void test_not_a_worker(void) {
  T_EQ(t_run(m_not_worker, NULL), 0);
  T_RC(weft_run_workers(2, NULL, NULL), WEFT_EINVAL);
}

/* n <= 0 means one worker per CPU. */
static int m_count(void *arg) {
  shared *s = arg;
  atomic_fetch_add(&s->ran, 1);
  return 0;
}

static void test_one_per_cpu(void) {
  shared s = {0};
  T_OK(weft_run_workers(0, m_count, &s));
  T_GE(atomic_load(&s.ran), 1);
}

static const t_case cases[] = {
    {"each_runs", test_each_runs},
    {"first_failure_cancels", test_first_failure_cancels},
    {"failure_before_start", test_failure_before_start},
    {"stop", test_stop},
    {"not_a_worker", test_not_a_worker},
    {"one_per_cpu", test_one_per_cpu},
    {NULL, NULL}};
T_MAIN("runtime-workers", cases)
