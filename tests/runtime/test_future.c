/* runtime-future: settle once, await, cancel the await, settle from threads. */
#include <pthread.h>
#include <unistd.h>

#include "test.h"

static int m_basic(void *arg) {
  (void)arg;
  weft_future *f;
  T_OK(weft_future_new(&f));
  T_FALSE(weft_future_done(f));
  T_OK(weft_future_resolve(f, (void *)0x42));
  T_RC(weft_future_resolve(f, (void *)1), WEFT_EALREADY);
  T_RC(weft_future_fail(f, WEFT_EIO), WEFT_EALREADY);
  T_TRUE(weft_future_done(f));
  void *v = NULL;
  T_OK(weft_future_await(f, &v));
  T_TRUE(v == (void *)0x42);
  T_OK(weft_future_await(f, &v)); /* again: same value */
  weft_future_free(f);

  T_OK(weft_future_new(&f));
  T_RC(weft_future_fail(f, 5), WEFT_EINVAL);
  T_OK(weft_future_fail(f, WEFT_ECONNRESET));
  T_RC(weft_future_await(f, &v), WEFT_ECONNRESET);
  weft_future_free(f);
  return 0;
}
static void test_basic(void) { T_EQ(t_run(m_basic, NULL), 0); }

static int awaiter(void *arg) {
  void *v;
  int rc = weft_future_await(arg, &v);
  return rc == 0 ? (int)(intptr_t)v : rc;
}
static int m_many_awaiters(void *arg) {
  (void)arg;
  weft_future *f;
  T_OK(weft_future_new(&f));
  weft_task *t[5];
  for (int i = 0; i < 5; i++)
    T_OK(weft_spawn(&t[i], awaiter, f));
  T_OK(weft_sleep(0.01));
  for (int i = 0; i < 5; i++)
    T_FALSE(weft_task_done(t[i]));
  T_OK(weft_future_resolve(f, (void *)7));
  for (int i = 0; i < 5; i++) {
    int r;
    T_OK(weft_join(t[i], &r));
    T_EQ(r, 7);
  }
  weft_future_free(f);
  return 0;
}
static void test_many_awaiters(void) { T_EQ(t_run(m_many_awaiters, NULL), 0); }

static int m_cancel_await(void *arg) {
  (void)arg;
  weft_future *f;
  T_OK(weft_future_new(&f));
  weft_task *t;
  T_OK(weft_spawn(&t, awaiter, f));
  T_OK(weft_sleep(1));
  weft_cancel(t);
  int r;
  T_OK(weft_join(t, &r));
  T_EQ(r, WEFT_ECANCELED);
  T_FALSE(weft_future_done(f)); /* untouched */
  /* A deadline on the await. */
  weft_timeout s;
  weft_timeout_enter(&s, 3);
  T_RC(weft_future_await(f, NULL), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  T_OK(weft_future_resolve(f, NULL));
  weft_future_free(f);
  return 0;
}
static void test_cancel_await(void) {
  T_EQ(t_run_virtual(m_cancel_await, NULL), 0);
}

/* 8 threads settle 8 futures each, all at once, while tasks await them. */
enum { THREADS = 8, PER = 500 };
typedef struct {
  weft_future **f;
  int first;
} th_arg;
static void *resolver(void *arg) {
  th_arg *a = arg;
  for (int i = 0; i < PER; i++) {
    weft_future *f = a->f[a->first + i];
    T_OK(weft_future_resolve(f, (void *)(intptr_t)(a->first + i + 1)));
    weft_future_free(f); /* the thread's reference */
  }
  return NULL;
}
static int m_threads(void *arg) {
  (void)arg;
  int n = THREADS * PER;
  weft_future **f = calloc((size_t)n, sizeof *f);
  weft_task **t = calloc((size_t)n, sizeof *t);
  for (int i = 0; i < n; i++) {
    T_OK(weft_future_new(&f[i]));
    weft_future_ref(f[i]); /* for the thread */
    T_OK(weft_spawn(&t[i], awaiter, f[i]));
  }
  T_OK(weft_yield()); /* everyone is waiting before the threads start */
  pthread_t th[THREADS];
  th_arg a[THREADS];
  for (int i = 0; i < THREADS; i++) {
    a[i] = (th_arg){f, i * PER};
    pthread_create(&th[i], NULL, resolver, &a[i]);
  }
  long sum = 0;
  for (int i = 0; i < n; i++) {
    int r;
    T_OK(weft_join(t[i], &r));
    T_EQ(r, i + 1);
    sum += r;
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(th[i], NULL);
  T_EQ(sum, (long)n * (n + 1) / 2);
  for (int i = 0; i < n; i++)
    weft_future_free(f[i]);
  free(f);
  free(t);
  return 0;
}
static void test_resolve_from_8_threads(void) {
  T_EQ(t_run(m_threads, NULL), 0);
}

/* The awaiting task gives up (times out) and drops its reference; the
 * thread still holds one and resolves later: no use after free. */
static void *late_resolver(void *arg) {
  usleep(20000);
  T_OK(weft_future_resolve(arg, NULL));
  weft_future_free(arg);
  return NULL;
}
static int m_abandon(void *arg) {
  (void)arg;
  weft_future *f;
  T_OK(weft_future_new(&f));
  weft_future_ref(f);
  pthread_t th;
  pthread_create(&th, NULL, late_resolver, f);
  weft_timeout s;
  weft_timeout_enter(&s, 0.001);
  T_RC(weft_future_await(f, NULL), WEFT_ETIMEDOUT);
  (void)weft_timeout_exit(&s);
  weft_future_free(f);
  /* Keep the loop alive until the thread's wake-up has come and gone. */
  T_OK(weft_sleep(0.05));
  pthread_join(th, NULL);
  return 0;
}
static void test_abandoned_future(void) { T_EQ(t_run(m_abandon, NULL), 0); }

static void test_outside(void) {
  weft_future *f;
  T_RC(weft_future_new(&f), WEFT_ENOLOOP);
}

static const t_case cases[] = {
    {"basic", test_basic},
    {"many_awaiters", test_many_awaiters},
    {"cancel_await", test_cancel_await},
    {"resolve_from_8_threads", test_resolve_from_8_threads},
    {"abandoned_future", test_abandoned_future},
    {"outside", test_outside},
    {NULL, NULL}};

T_MAIN("runtime-future", cases)
