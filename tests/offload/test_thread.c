/* weft tests — thread pools: to_thread results and errors, many jobs from
 * many tasks, cancellation before and after a job starts (and what each
 * leaves behind), deadlines, bounded queues, separate pools per kind of
 * work, shutdown that abandons busy workers, several loops at once, and an
 * idle pool that burns no CPU. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <weft/fs.h>
#include <weft/thread.h>

#include "test.h"

/* A gate a job can wait at (on its worker thread) until the test opens it. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
  atomic_int arrived; /* jobs that reached the gate */
  atomic_int ran;     /* jobs whose function ran to the end */
  atomic_int released;
} gate;

static void gate_init(gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->open = false;
  atomic_store(&g->arrived, 0);
  atomic_store(&g->ran, 0);
  atomic_store(&g->released, 0);
}

static void gate_open(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void gate_fini(gate *g) {
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

static intptr_t gated_job(void *arg) {
  gate *g = arg;
  atomic_fetch_add(&g->arrived, 1);
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  atomic_fetch_add(&g->ran, 1);
  return 7;
}

static void gate_release(void *arg) {
  gate *g = arg;
  atomic_fetch_add(&g->released, 1);
}

/* Polls (from a task) until cond holds or about 5 s pass. */
#define WAIT_UNTIL(cond)                                                       \
  do {                                                                         \
    for (int i_ = 0; i_ < 5000 && !(cond); i_++)                               \
      T_OK(weft_sleep(0.001));                                                 \
    T_TRUE(cond);                                                              \
  } while (0)

static intptr_t add_one(void *arg) { return (intptr_t)arg + 1; }
static intptr_t fails(void *arg) {
  (void)arg;
  return WEFT_EIO;
}

/* ---- results and errors ---- */

static int m_result(void *arg) {
  (void)arg;
  intptr_t r = 0;
  T_OK(weft_to_thread(add_one, (void *)41, &r));
  T_EQ(r, 42);
  /* The function's own failure is its result, not the call's. */
  T_OK(weft_to_thread(fails, NULL, &r));
  T_EQ(r, WEFT_EIO);
  T_OK(weft_to_thread(add_one, NULL, NULL));
  T_RC(weft_to_thread(NULL, NULL, &r), WEFT_EINVAL);
  weft_thread_opts bad = {.size = 1000};
  T_RC(weft_to_thread_opts(add_one, NULL, &r, &bad), WEFT_EINVAL);
  return 0;
}
static void test_result(void) { T_EQ(t_run(m_result, NULL), 0); }

static void test_notask(void) {
#ifndef WEFT_DEBUG /* a debug build stops on an assertion instead */
  intptr_t r;
  T_RC(weft_to_thread(add_one, NULL, &r), WEFT_ENOTASK);
#endif
}

/* ---- 10 000 jobs from 100 tasks ---- */

static atomic_long job_sum;

static intptr_t tally(void *arg) {
  atomic_fetch_add(&job_sum, (long)(intptr_t)arg);
  return (intptr_t)arg * 2;
}

static int many_task(void *arg) {
  intptr_t base = (intptr_t)arg;
  for (intptr_t i = 0; i < 100; i++) {
    intptr_t r = 0;
    int rc = weft_to_thread(tally, (void *)(base + i), &r);
    if (rc != 0)
      return rc;
    if (r != (base + i) * 2)
      return WEFT_EPROTO;
  }
  return 0;
}

static int m_many(void *arg) {
  (void)arg;
  weft_threadpool_stats before, after;
  weft_threadpool_stats_get(weft_threadpool_default(WEFT_POOL_BLOCKING),
                            &before);
  atomic_store(&job_sum, 0);
  weft_group *g;
  T_OK(weft_group_new(&g));
  for (intptr_t t = 0; t < 100; t++)
    T_OK(weft_group_spawn(g, NULL, many_task, (void *)(t * 100)));
  T_OK(weft_group_wait(g));
  weft_group_free(g);
  /* Every job ran exactly once: sum of 0..9999. */
  T_EQ(atomic_load(&job_sum), 9999L * 10000 / 2);
  weft_threadpool_stats_get(weft_threadpool_default(WEFT_POOL_BLOCKING),
                            &after);
  T_EQ(after.completed - before.completed, 10000);
  T_EQ(after.submitted - before.submitted, 10000);
  T_LE(after.threads, after.threads_max);
  return 0;
}
static void test_many(void) { T_EQ(t_run(m_many, NULL), 0); }

/* ---- the loop keeps running while a job blocks ---- */

static intptr_t sleepy(void *arg) {
  (void)arg;
  usleep(100 * 1000);
  return 1;
}

static int ticker(void *arg) {
  int *ticks = arg;
  for (;;) {
    int rc = weft_sleep(0.005);
    if (rc != 0)
      return 0;
    (*ticks)++;
  }
}

static int m_concurrent(void *arg) {
  (void)arg;
  int ticks = 0;
  weft_task *t;
  T_OK(weft_spawn(&t, ticker, &ticks));
  intptr_t r = 0;
  T_OK(weft_to_thread(sleepy, NULL, &r));
  T_EQ(r, 1);
  /* 100 ms of blocking on a worker; the ticker ran meanwhile. */
  T_GE(ticks, 5);
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  return 0;
}
static void test_concurrent(void) { T_EQ(t_run(m_concurrent, NULL), 0); }

/* ---- cancellation ---- */

typedef struct submit_arg {
  weft_threadpool *pool;
  gate *g;
  int rc;
  intptr_t result;
  bool returned;
  double timeout; /* > 0: inside a deadline scope */
} submit_arg;

static int submitter(void *p) {
  submit_arg *a = p;
  weft_thread_opts o = {
      .size = sizeof o, .pool = a->pool, .release = gate_release};
  weft_timeout scope;
  if (a->timeout > 0)
    weft_timeout_enter(&scope, a->timeout);
  a->rc = weft_to_thread_opts(gated_job, a->g, &a->result, &o);
  if (a->timeout > 0)
    (void)weft_timeout_exit(&scope);
  a->returned = true;
  return 0;
}

static weft_threadpool *small_pool(size_t threads, size_t queue_max) {
  weft_threadpool_opts o = {.size = sizeof o,
                            .threads = threads,
                            .queue_max = queue_max,
                            .name = "test-pool"};
  weft_threadpool *p = NULL;
  T_OK(weft_threadpool_new(&p, &o));
  return p;
}

/* Cancelling a task whose job has not started removes the job: it never
 * runs, and `release` runs at once on the loop's thread. */
static int m_cancel_queued(void *arg) {
  (void)arg;
  weft_threadpool *p = small_pool(1, 16);
  gate busy, queued;
  gate_init(&busy);
  gate_init(&queued);
  submit_arg a = {.pool = p, .g = &busy}, b = {.pool = p, .g = &queued};
  weft_task *ta, *tb;
  T_OK(weft_spawn(&ta, submitter, &a));
  WAIT_UNTIL(atomic_load(&busy.arrived) == 1); /* the only worker is busy */
  T_OK(weft_spawn(&tb, submitter, &b));
  T_OK(weft_sleep(0.01));
  weft_threadpool_stats st;
  weft_threadpool_stats_get(p, &st);
  T_EQ(st.queued, 1);
  weft_cancel(tb);
  T_OK(weft_join(tb, NULL));
  T_RC(b.rc, WEFT_ECANCELED);
  T_EQ(atomic_load(&queued.released), 1); /* pool gave arg back at once */
  weft_threadpool_stats_get(p, &st);
  T_EQ(st.queued, 0);
  T_EQ(st.cancelled, 1);
  gate_open(&busy);
  T_OK(weft_join(ta, NULL));
  T_OK(a.rc);
  T_EQ(a.result, 7);
  T_EQ(atomic_load(&busy.released), 0);  /* success: the caller owns arg */
  T_EQ(atomic_load(&queued.arrived), 0); /* the cancelled job never ran */
  T_OK(weft_threadpool_shutdown(p, 5));
  T_EQ(atomic_load(&queued.arrived), 0);
  weft_threadpool_free(p);
  gate_fini(&busy);
  gate_fini(&queued);
  return 0;
}
static void test_cancel_queued(void) { T_EQ(t_run(m_cancel_queued, NULL), 0); }

/* Cancelling a task whose job runs returns at once; the job runs to its end
 * and its result is dropped; `release` runs once the function returned. */
static int m_cancel_running(void *arg) {
  (void)arg;
  weft_threadpool *p = small_pool(1, 16);
  gate g;
  gate_init(&g);
  submit_arg a = {.pool = p, .g = &g};
  weft_task *t;
  T_OK(weft_spawn(&t, submitter, &a));
  WAIT_UNTIL(atomic_load(&g.arrived) == 1);
  double t0 = weft_now();
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_LT(weft_now() - t0, 0.5); /* never waited for the busy worker */
  T_RC(a.rc, WEFT_ECANCELED);
  T_EQ(a.result, 0); /* nothing delivered */
  T_EQ(atomic_load(&g.ran), 0);
  T_EQ(atomic_load(&g.released), 0); /* fn still uses arg */
  gate_open(&g);
  WAIT_UNTIL(atomic_load(&g.released) == 1);
  T_EQ(atomic_load(&g.ran), 1);
  weft_threadpool_stats st;
  weft_threadpool_stats_get(p, &st);
  T_EQ(st.abandoned, 1);
  T_EQ(st.completed, 1);
  T_OK(weft_threadpool_shutdown(p, 5));
  weft_threadpool_free(p);
  gate_fini(&g);
  return 0;
}
static void test_cancel_running(void) {
  T_EQ(t_run(m_cancel_running, NULL), 0);
}

/* A task cancelled before it calls never submits. */
static int m_cancel_first(void *arg) {
  (void)arg;
  gate g;
  gate_init(&g);
  gate_open(&g);
  weft_cancel(weft_current());
  weft_thread_opts o = {.size = sizeof o, .release = gate_release};
  intptr_t r = 0;
  T_RC(weft_to_thread_opts(gated_job, &g, &r, &o), WEFT_ECANCELED);
  T_EQ(atomic_load(&g.arrived), 0);
  T_EQ(atomic_load(&g.released), 1);
  gate_fini(&g);
  return 0;
}
static void test_cancel_first(void) { T_EQ(t_run(m_cancel_first, NULL), 0); }

/* A deadline applies to the wait. */
static int m_deadline(void *arg) {
  (void)arg;
  weft_threadpool *p = small_pool(1, 16);
  gate g;
  gate_init(&g);
  submit_arg a = {.pool = p, .g = &g, .timeout = 0.05};
  weft_task *t;
  double t0 = weft_now();
  T_OK(weft_spawn(&t, submitter, &a));
  T_OK(weft_join(t, NULL));
  T_RC(a.rc, WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 1.0);
  gate_open(&g);
  WAIT_UNTIL(atomic_load(&g.released) == 1);
  T_OK(weft_threadpool_shutdown(p, 5));
  weft_threadpool_free(p);
  gate_fini(&g);
  return 0;
}
static void test_deadline(void) { T_EQ(t_run(m_deadline, NULL), 0); }

/* ---- bounded queue: submitters wait for room ---- */

static int m_bounded(void *arg) {
  (void)arg;
  weft_threadpool *p = small_pool(1, 2);
  gate g;
  gate_init(&g);
  submit_arg a[10];
  weft_task *t[10];
  for (int i = 0; i < 10; i++) {
    a[i] = (submit_arg){.pool = p, .g = &g};
    T_OK(weft_spawn(&t[i], submitter, &a[i]));
  }
  WAIT_UNTIL(atomic_load(&g.arrived) == 1);
  T_OK(weft_sleep(0.01));
  weft_threadpool_stats st;
  weft_threadpool_stats_get(p, &st);
  T_EQ(st.running, 1);
  T_EQ(st.queued, 2); /* never more than the bound */
  T_EQ(st.waiting, 7);
  /* 7 wait now; the job that runs may have waited too, if all ten were
   * submitted before the worker took the first one. */
  T_GE(st.waited, 7);
  T_LE(st.waited, 8);
  /* A waiting submitter that is cancelled leaves the line. */
  weft_cancel(t[9]);
  T_OK(weft_join(t[9], NULL));
  T_RC(a[9].rc, WEFT_ECANCELED);
  gate_open(&g);
  for (int i = 0; i < 9; i++) {
    T_OK(weft_join(t[i], NULL));
    T_OK(a[i].rc);
    T_EQ(a[i].result, 7);
  }
  T_EQ(atomic_load(&g.ran), 9);
  weft_threadpool_stats_get(p, &st);
  T_EQ(st.completed, 9);
  T_EQ(st.cancelled, 1);
  T_EQ(st.queued + st.waiting + st.running, 0);
  T_OK(weft_threadpool_shutdown(p, 5));
  weft_threadpool_free(p);
  gate_fini(&g);
  return 0;
}
static void test_bounded(void) { T_EQ(t_run(m_bounded, NULL), 0); }

/* ---- a flood of one kind of work does not starve another ---- */

static int m_separate(void *arg) {
  (void)arg;
  weft_threadpool *blocking = weft_threadpool_default(WEFT_POOL_BLOCKING);
  weft_threadpool_stats st;
  weft_threadpool_stats_get(blocking, &st);
  size_t n = st.threads_max + 20; /* every worker stuck, and a queue */
  gate g;
  gate_init(&g);
  submit_arg *a = calloc(n, sizeof *a);
  weft_task **t = calloc(n, sizeof *t);
  for (size_t i = 0; i < n; i++) {
    a[i] = (submit_arg){.pool = NULL, .g = &g};
    T_OK(weft_spawn(&t[i], submitter, &a[i]));
  }
  WAIT_UNTIL(atomic_load(&g.arrived) == (int)st.threads_max);
  /* The file pool still serves. */
  struct stat sb;
  double t0 = weft_now();
  T_OK(weft_fs_stat("/", &sb));
  T_LT(weft_now() - t0, 1.0);
  weft_threadpool_stats fs;
  weft_threadpool_stats_get(weft_threadpool_default(WEFT_POOL_FS), &fs);
  T_GE(fs.completed, 1);
  weft_threadpool_stats_get(blocking, &st);
  T_EQ(st.queued, 20);
  gate_open(&g);
  for (size_t i = 0; i < n; i++) {
    T_OK(weft_join(t[i], NULL));
    T_OK(a[i].rc);
  }
  free(a);
  free(t);
  gate_fini(&g);
  return 0;
}
static void test_separate(void) { T_EQ(t_run(m_separate, NULL), 0); }

/* ---- shutdown ---- */

static int m_shutdown(void *arg) {
  (void)arg;
  weft_threadpool *p = small_pool(1, 16);
  gate busy, queued;
  gate_init(&busy);
  gate_init(&queued);
  submit_arg a = {.pool = p, .g = &busy}, b = {.pool = p, .g = &queued};
  weft_task *ta, *tb;
  T_OK(weft_spawn(&ta, submitter, &a));
  WAIT_UNTIL(atomic_load(&busy.arrived) == 1);
  T_OK(weft_spawn(&tb, submitter, &b));
  T_OK(weft_sleep(0.01));
  /* The running job never finishes in time: it is abandoned. */
  double t0 = weft_now();
  T_RC(weft_threadpool_shutdown(p, 0.05), WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 1.0);
  T_OK(weft_join(ta, NULL));
  T_OK(weft_join(tb, NULL));
  T_RC(a.rc, WEFT_ECLOSED); /* its caller was let go */
  T_RC(b.rc, WEFT_ECLOSED); /* queued: refused, never ran */
  T_EQ(atomic_load(&queued.arrived), 0);
  T_EQ(atomic_load(&queued.released), 1);
  weft_threadpool_stats st;
  weft_threadpool_stats_get(p, &st);
  T_EQ(st.refused, 1);
  T_EQ(st.abandoned, 1);
  /* New work is refused. */
  intptr_t r;
  weft_thread_opts o = {.size = sizeof o, .pool = p};
  T_RC(weft_to_thread_opts(add_one, NULL, &r, &o), WEFT_ECLOSED);
  /* Free lets go; the abandoned worker frees the pool when its job ends. */
  weft_threadpool_free(p);
  T_EQ(atomic_load(&busy.released), 0);
  gate_open(&busy);
  WAIT_UNTIL(atomic_load(&busy.released) == 1);
  T_EQ(atomic_load(&busy.ran), 1);
  T_OK(weft_sleep(0.05)); /* let the worker thread exit before the gate goes */
  gate_fini(&busy);
  gate_fini(&queued);
  return 0;
}
static void test_shutdown(void) { T_EQ(t_run(m_shutdown, NULL), 0); }

/* Shutdown from outside any loop blocks the thread, with its deadline. */
static void test_shutdown_blocking(void) {
  weft_threadpool *p = small_pool(2, 16);
  T_OK(weft_threadpool_shutdown(p, 1));
  T_OK(weft_threadpool_shutdown(p, 1)); /* again: nothing more */
  weft_threadpool_free(p);
}

/* ---- several loops at once ---- */

static int loop_main(void *arg) {
  (void)arg;
  weft_group *g;
  int rc = weft_group_new(&g);
  if (rc != 0)
    return rc;
  for (intptr_t t = 0; t < 10; t++)
    if ((rc = weft_group_spawn(g, NULL, many_task, (void *)(t * 100))) != 0)
      break;
  int wrc = weft_group_wait(g);
  weft_group_free(g);
  return rc ? rc : wrc;
}

static void *loop_thread(void *arg) {
  int *res = arg;
  *res = weft_run(loop_main, NULL);
  return NULL;
}

static void test_loops(void) {
  pthread_t th[4];
  int res[4];
  for (int i = 0; i < 4; i++)
    T_EQ(pthread_create(&th[i], NULL, loop_thread, &res[i]), 0);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    T_OK(res[i]);
  }
}

/* The same through weft_run_workers: one loop per thread, one shared pool. */
static void test_run_workers(void) {
  T_OK(weft_run_workers(3, loop_main, NULL));
}

/* ---- an idle pool uses no CPU ---- */

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int m_idle(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++)
    T_OK(weft_to_thread(add_one, NULL, NULL));
  T_OK(weft_sleep(0.01)); /* spins end (50 µs) */
  double c0 = cpu_seconds();
  T_OK(weft_sleep(0.3));
  double used = cpu_seconds() - c0;
  /* Spinning is bounded: 300 ms idle cost next to nothing. */
  T_LT(used, 0.03);
  return 0;
}
static void test_idle(void) { T_EQ(t_run(m_idle, NULL), 0); }

static void test_default_config(void) {
  weft_threadpool_opts o = {.size = sizeof o, .threads = 2};
  /* Already made by earlier cases (or now): too late to configure. */
  (void)weft_threadpool_default(WEFT_POOL_BLOCKING);
  T_RC(weft_threadpool_default_config(WEFT_POOL_BLOCKING, &o), WEFT_EBUSY);
  T_RC(weft_threadpool_default_config(7, &o), WEFT_EINVAL);
  T_TRUE(weft_threadpool_default(7) == NULL);
  weft_threadpool *p = NULL;
  weft_threadpool_opts bad = {.size = 4096};
  T_RC(weft_threadpool_new(&p, &bad), WEFT_EINVAL);
}

static const t_case cases[] = {
    {"result", test_result},
    {"notask", test_notask},
    {"many", test_many},
    {"concurrent", test_concurrent},
    {"cancel_queued", test_cancel_queued},
    {"cancel_running", test_cancel_running},
    {"cancel_first", test_cancel_first},
    {"deadline", test_deadline},
    {"bounded", test_bounded},
    {"separate", test_separate},
    {"shutdown", test_shutdown},
    {"shutdown_blocking", test_shutdown_blocking},
    {"loops", test_loops},
    {"run_workers", test_run_workers},
    {"idle", test_idle},
    {"default_config", test_default_config},
    {NULL, NULL},
};

T_MAIN("offload-thread", cases)
