/* runtime-task: spawn, join, yield, sleep, cancel, wait_any, wait_for, names,
 * ownership of fire-and-forget tasks, and scale. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

static int ret_arg(void *arg) { return (int)(intptr_t)arg; }

static int yield_n(void *arg) {
  int n = (int)(intptr_t)arg;
  for (int i = 0; i < n; i++)
    if (weft_yield() != 0)
      return -1;
  return n;
}

/* ---- spawn and join ---- */

static int m_join_results(void *arg) {
  (void)arg;
  weft_task *t[10];
  for (int i = 0; i < 10; i++)
    T_OK(weft_spawn(&t[i], ret_arg, (void *)(intptr_t)(i * 3)));
  for (int i = 0; i < 10; i++) {
    int r = -1;
    T_OK(weft_join(t[i], &r));
    T_EQ(r, i * 3);
  }
  /* A task that already returned joins at once. */
  weft_task *d;
  T_OK(weft_spawn(&d, ret_arg, (void *)(intptr_t)5));
  T_OK(weft_yield());
  T_TRUE(weft_task_done(d));
  int r;
  T_OK(weft_join(d, &r));
  T_EQ(r, 5);
  return 0;
}
static void test_join_results(void) { T_EQ(t_run(m_join_results, NULL), 0); }

static int m_run_result(void *arg) {
  (void)arg;
  return 1234;
}
static void test_run_returns_main_result(void) {
  T_EQ(weft_run(m_run_result, NULL), 1234);
  T_TRUE(weft_loop_current() == NULL);
}

/* Tasks interleave at every yield, in FIFO order. */
static int order[64], order_n;
static int record(void *arg) {
  for (int i = 0; i < 3; i++) {
    order[order_n++] = (int)(intptr_t)arg * 10 + i;
    T_OK(weft_yield());
  }
  return 0;
}
static int m_interleave(void *arg) {
  (void)arg;
  order_n = 0;
  weft_task *a, *b;
  T_OK(weft_spawn(&a, record, (void *)1));
  T_OK(weft_spawn(&b, record, (void *)2));
  T_OK(weft_join(a, NULL));
  T_OK(weft_join(b, NULL));
  int want[] = {10, 20, 11, 21, 12, 22};
  T_EQ(order_n, 6);
  for (int i = 0; i < 6; i++)
    T_EQ(order[i], want[i]);
  return 0;
}
static void test_interleave(void) { T_EQ(t_run(m_interleave, NULL), 0); }

static int m_join_self(void *arg) {
  (void)arg;
  T_RC(weft_join(weft_current(), NULL), WEFT_EDEADLK);
  weft_task *t;
  T_OK(weft_spawn(&t, ret_arg, 0));
  weft_detach(t);
  return 0;
}
static void test_join_errors(void) { T_EQ(t_run(m_join_self, NULL), 0); }

/* ---- sleep, virtual clock ---- */

static int m_sleep_real(void *arg) {
  (void)arg;
  double t0 = weft_now();
  T_OK(weft_sleep(0.05));
  double dt = weft_now() - t0;
  T_GE(dt * 1000, 49);
  T_LT(dt * 1000, 1000);
  return 0;
}
static void test_sleep_real(void) { T_EQ(t_run(m_sleep_real, NULL), 0); }

static int sleeper(void *arg) {
  double s = *(double *)arg;
  return weft_sleep(s);
}
static int m_sleep_virtual(void *arg) {
  (void)arg;
  double t0 = weft_now();
  double s1 = 60, s2 = 3600;
  weft_task *a, *b;
  T_OK(weft_spawn(&a, sleeper, &s1));
  T_OK(weft_spawn(&b, sleeper, &s2));
  int ra = -1, rb = -1;
  T_OK(weft_join(a, &ra));
  T_NEAR(weft_now() - t0, 60, 1e-6);
  T_OK(weft_join(b, &rb));
  T_NEAR(weft_now() - t0, 3600, 1e-6);
  T_EQ(ra, 0);
  T_EQ(rb, 0);
  return 0;
}
static void test_sleep_virtual(void) {
  double t0 = (double)weft__clock_real_ns() / 1e9;
  T_EQ(t_run_virtual(m_sleep_virtual, NULL), 0);
  T_LT((double)weft__clock_real_ns() / 1e9 - t0, 1.0); /* an hour in no time */
}

/* Sleepers wake in order of their deadlines. */
static int wake_order[8], wake_n;
static int sleep_record(void *arg) {
  int ms = (int)(intptr_t)arg;
  T_OK(weft_sleep(ms / 1000.0));
  wake_order[wake_n++] = ms;
  return 0;
}
static int m_sleep_order(void *arg) {
  (void)arg;
  wake_n = 0;
  int ms[] = {50, 10, 40, 20, 30};
  weft_task *t[5];
  for (int i = 0; i < 5; i++)
    T_OK(weft_spawn(&t[i], sleep_record, (void *)(intptr_t)ms[i]));
  for (int i = 0; i < 5; i++)
    T_OK(weft_join(t[i], NULL));
  for (int i = 0; i < 5; i++)
    T_EQ(wake_order[i], (i + 1) * 10);
  return 0;
}
static void test_sleep_order(void) {
  T_EQ(t_run_virtual(m_sleep_order, NULL), 0);
}

/* ---- cancellation ---- */

static int sleep_long(void *arg) {
  (void)arg;
  int rc = weft_sleep(1000);
  /* Level-triggered: every later suspension fails the same way. */
  T_RC(weft_yield(), WEFT_ECANCELED);
  T_RC(weft_sleep(0.001), WEFT_ECANCELED);
  T_TRUE(weft_cancelled());
  return rc;
}
static int m_cancel_sleep(void *arg) {
  (void)arg;
  weft_task *t;
  T_OK(weft_spawn(&t, sleep_long, NULL));
  T_OK(weft_sleep(0.01));
  weft_cancel(t);
  int r = 0;
  T_OK(weft_join(t, &r));
  T_EQ(r, WEFT_ECANCELED);
  return 0;
}
static void test_cancel_sleep(void) {
  T_EQ(t_run_virtual(m_cancel_sleep, NULL), 0);
}

static int join_target(void *arg) {
  weft_task *target = arg;
  int r;
  int rc = weft_join(target, &r);
  return rc;
}
static int m_cancel_join(void *arg) {
  (void)arg;
  weft_task *target, *joiner;
  static double five = 5;
  T_OK(weft_spawn(&target, sleeper, &five));
  T_OK(weft_spawn(&joiner, join_target, target));
  T_OK(weft_sleep(1));
  weft_cancel(joiner);
  int r;
  T_OK(weft_join(joiner, &r));
  T_EQ(r, WEFT_ECANCELED);
  /* The cancelled join left the target running and its handle valid. */
  T_FALSE(weft_task_done(target));
  T_OK(weft_join(target, &r));
  T_EQ(r, 0);
  return 0;
}
static void test_cancel_join(void) {
  T_EQ(t_run_virtual(m_cancel_join, NULL), 0);
}

/* A task cancelled before it ever ran still runs (so it can free its arg),
 * and its first suspension fails. */
static int first_suspend(void *arg) {
  int *ran = arg;
  *ran = 1;
  return weft_yield();
}
static int m_cancel_before_start(void *arg) {
  (void)arg;
  int ran = 0;
  weft_task *t;
  T_OK(weft_spawn(&t, first_suspend, &ran));
  weft_cancel(t);
  int r;
  T_OK(weft_join(t, &r));
  T_EQ(ran, 1);
  T_EQ(r, WEFT_ECANCELED);
  return 0;
}
static void test_cancel_before_start(void) {
  T_EQ(t_run(m_cancel_before_start, NULL), 0);
}

/* A task that is ready (yielded) when cancelled sees it on return. */
static int spin_yield(void *arg) {
  (void)arg;
  int rc;
  while ((rc = weft_yield()) == 0) {
  }
  return rc;
}
static int m_cancel_ready(void *arg) {
  (void)arg;
  weft_task *t;
  T_OK(weft_spawn(&t, spin_yield, NULL));
  T_OK(weft_yield());
  T_OK(weft_yield());
  weft_cancel(t);
  int r;
  T_OK(weft_join(t, &r));
  T_EQ(r, WEFT_ECANCELED);
  return 0;
}
static void test_cancel_ready(void) { T_EQ(t_run(m_cancel_ready, NULL), 0); }

/* ---- wait_any, wait_for ---- */

static int m_wait_any(void *arg) {
  (void)arg;
  double s[3] = {3, 1, 2};
  weft_task *t[3];
  for (int i = 0; i < 3; i++)
    T_OK(weft_spawn(&t[i], sleeper, &s[i]));
  size_t idx = 99;
  T_OK(weft_wait_any(t, 3, &idx));
  T_EQ(idx, 1);
  T_TRUE(weft_task_done(t[1]));
  T_FALSE(weft_task_done(t[0]));
  T_OK(weft_wait_any(t, 3, &idx)); /* t[1] is still done: at once */
  T_EQ(idx, 1);
  for (int i = 0; i < 3; i++)
    T_OK(weft_join(t[i], NULL));
  T_RC(weft_wait_any(t, 0, &idx), WEFT_EINVAL);
  /* Many tasks (waiters allocated, not on the stack). */
  weft_task *many[20];
  double far = 100, near = 5;
  for (int i = 0; i < 20; i++)
    T_OK(weft_spawn(&many[i], sleeper, i == 13 ? &near : &far));
  T_OK(weft_wait_any(many, 20, &idx));
  T_EQ(idx, 13);
  for (int i = 0; i < 20; i++) {
    weft_cancel(many[i]);
    T_OK(weft_join(many[i], NULL));
  }
  return 0;
}
static void test_wait_any(void) { T_EQ(t_run_virtual(m_wait_any, NULL), 0); }

static int wait_any_sleepers(void *arg) {
  weft_task **t = arg;
  size_t idx;
  return weft_wait_any(t, 2, &idx);
}
static int m_cancel_wait_any(void *arg) {
  (void)arg;
  weft_task *t[2], *w;
  static double ten = 10;
  T_OK(weft_spawn(&t[0], sleeper, &ten));
  T_OK(weft_spawn(&t[1], sleeper, &ten));
  T_OK(weft_spawn(&w, wait_any_sleepers, t));
  T_OK(weft_sleep(1));
  weft_cancel(w);
  int r;
  T_OK(weft_join(w, &r));
  T_EQ(r, WEFT_ECANCELED);
  T_OK(weft_join(t[0], NULL)); /* waiters were unlinked: joining works */
  T_OK(weft_join(t[1], NULL));
  return 0;
}
static void test_cancel_wait_any(void) {
  T_EQ(t_run_virtual(m_cancel_wait_any, NULL), 0);
}

static int slow_cleanup(void *arg) {
  int *cleaned = arg;
  int rc = weft_sleep(100);
  *cleaned = 1;
  return rc;
}
static int m_wait_for(void *arg) {
  (void)arg;
  int r = 0;
  double t0 = weft_now();
  T_OK(weft_wait_for(sleeper, &(double){1}, 5, &r));
  T_EQ(r, 0);
  T_NEAR(weft_now() - t0, 1, 1e-6);
  int cleaned = 0;
  t0 = weft_now();
  T_RC(weft_wait_for(slow_cleanup, &cleaned, 60, &r), WEFT_ETIMEDOUT);
  T_NEAR(weft_now() - t0, 60, 1e-6); /* a 60 s timeout, in simulated time */
  T_EQ(cleaned, 1);                  /* the child was cancelled and awaited */
  T_EQ(r, WEFT_ECANCELED);
  return 0;
}
static void test_wait_for(void) { T_EQ(t_run_virtual(m_wait_for, NULL), 0); }

static int wait_for_long(void *arg) {
  int r;
  return weft_wait_for(slow_cleanup, arg, 1000, &r);
}
static int m_cancel_wait_for(void *arg) {
  (void)arg;
  int cleaned = 0;
  weft_task *t;
  T_OK(weft_spawn(&t, wait_for_long, &cleaned));
  T_OK(weft_sleep(2));
  weft_cancel(t);
  int r;
  T_OK(weft_join(t, &r));
  T_EQ(r, WEFT_ECANCELED);
  T_EQ(cleaned, 1);
  return 0;
}
static void test_cancel_wait_for(void) {
  T_EQ(t_run_virtual(m_cancel_wait_for, NULL), 0);
}

/* ---- ownership: nothing lost, failures reported ---- */

static int fire_count;
static int fire_and_forget(void *arg) {
  (void)arg;
  T_OK(weft_sleep(0.5));
  fire_count++;
  return 0;
}
static int m_detached_run(void *arg) {
  (void)arg;
  fire_count = 0;
  for (int i = 0; i < 100; i++)
    T_OK(weft_spawn(NULL, fire_and_forget, NULL));
  T_OK(weft_sleep(1));
  T_EQ(fire_count, 100); /* nothing held a reference, nothing was lost */
  return 0;
}
static void test_detached_tasks_run(void) {
  T_EQ(t_run_virtual(m_detached_run, NULL), 0);
}

static int fail_eio(void *arg) {
  (void)arg;
  return WEFT_EIO;
}
static int m_detached_fail(void *arg) {
  (void)arg;
  weft_debug_output(weft_loop_current(), (FILE *)arg);
  T_OK(weft_spawn(NULL, fail_eio, NULL));
  weft_task *unjoined;
  T_OK(weft_spawn_opts(&unjoined, fail_eio, NULL,
                       (&(weft_task_opts){.size = sizeof(weft_task_opts),
                                          .name = "never-joined"})));
  T_OK(weft_yield());
  return 0;
}
static void test_uncollected_failure_reported(void) {
  FILE *f = tmpfile();
  T_EQ(t_run(m_detached_fail, f), 0);
  rewind(f);
  char buf[2048] = {0};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  T_GT(n, 0);
  T_TRUE(strstr(buf, "WEFT_EIO") != NULL);
  T_TRUE(strstr(buf, "test_task.c") != NULL); /* the spawn site */
  T_TRUE(strstr(buf, "detached") != NULL);
  T_TRUE(strstr(buf, "'never-joined'") != NULL);
  T_TRUE(strstr(buf, "never joined") != NULL);
}

/* Tasks main leaves behind are cancelled and awaited when main returns. */
static int left_cleaned;
static int left_behind(void *arg) {
  (void)arg;
  int rc = weft_sleep(1e6);
  left_cleaned++;
  return rc;
}
static int m_leave_behind(void *arg) {
  (void)arg;
  left_cleaned = 0;
  for (int i = 0; i < 10; i++)
    T_OK(weft_spawn(NULL, left_behind, NULL));
  weft_task *h;
  T_OK(weft_spawn(&h, left_behind, NULL)); /* a handle never joined */
  T_OK(weft_yield());
  return 0;
}
static void test_main_returns_cancels_rest(void) {
  T_EQ(t_run(m_leave_behind, NULL), 0);
  T_EQ(left_cleaned, 11);
}

/* ---- names, current, ENOTASK ---- */

static int check_name(void *arg) {
  (void)arg;
  T_STREQ(weft_task_name(weft_current()), "worker-1");
  return 0;
}
static int m_names(void *arg) {
  (void)arg;
  T_STREQ(weft_task_name(weft_current()), "main");
  char name[16] = "worker-1";
  weft_task_opts o = {.size = sizeof o, .name = name};
  weft_task *t;
  T_OK(weft_spawn_opts(&t, check_name, NULL, &o));
  name[0] = 'X'; /* the name was copied */
  T_GT(weft_task_id(t), weft_task_id(weft_current()));
  T_OK(weft_join(t, NULL));
  weft_task *u;
  T_OK(weft_spawn(&u, ret_arg, 0));
  T_TRUE(strstr(weft_task_name(u), "test_task.c:") != NULL);
  T_OK(weft_task_set_name(u, "renamed"));
  T_STREQ(weft_task_name(u), "renamed");
  T_OK(weft_join(u, NULL));
  return 0;
}
static void test_names(void) { T_EQ(t_run(m_names, NULL), 0); }

static void test_outside_task(void) {
#ifdef WEFT_DEBUG
  /* A debug build stops on an assertion that names the function: check it
   * in a child process. */
  int pipefd[2];
  T_OK(pipe(pipefd));
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    (void)weft_yield();
    _exit(0);
  }
  close(pipefd[1]);
  char buf[512] = {0};
  ssize_t n, got = 0;
  while ((n = read(pipefd[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
    got += n;
  close(pipefd[0]);
  int status;
  T_EQ(waitpid(pid, &status, 0), pid);
  T_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  T_TRUE(strstr(buf, "weft_yield() called outside a task") != NULL);
#else
  T_TRUE(weft_current() == NULL);
  T_RC(weft_yield(), WEFT_ENOTASK);
  T_RC(weft_sleep(1), WEFT_ENOTASK);
  T_RC(weft_join(NULL, NULL), WEFT_ENOTASK);
  T_RC(weft_spawn(NULL, ret_arg, 0), WEFT_ENOLOOP);
  weft_loop *loop;
  T_OK(weft_loop_new(&loop, NULL));
  /* A loop exists but no task runs: still not allowed to suspend. */
  T_RC(weft_yield(), WEFT_ENOTASK);
  T_RC(weft_loop_new(&loop, NULL), WEFT_EBUSY);
  T_OK(weft_loop_free(weft_loop_current()));
#endif
}

/* ---- scale ---- */

typedef struct {
  int alive, peak, done;
} scale_state;
static int scale_task(void *arg) {
  scale_state *s = arg;
  s->alive++;
  if (s->alive > s->peak)
    s->peak = s->alive;
  int rc = weft_yield();
  s->alive--;
  s->done++;
  return rc;
}
/* ThreadSanitizer gives each task a fiber and dies past 8 128 of them. */
#ifdef WEFT__TSAN
enum { N_ALIVE = 5000 };
#else
enum { N_ALIVE = 100000 };
#endif
static int m_100k(void *arg) {
  scale_state *s = arg;
  enum { N = N_ALIVE };
  weft_task **t = malloc(N * sizeof *t);
  for (int i = 0; i < N; i++)
    T_OK(weft_spawn(&t[i], scale_task, s));
  for (int i = 0; i < N; i++)
    T_OK(weft_join(t[i], NULL));
  free(t);
  weft_stats st;
  weft_loop_stats(weft_loop_current(), &st);
  T_EQ(st.tasks_alive, 1); /* main */
  T_GE(st.stacks_mapped, N);
  return 0;
}
static void test_100k_alive(void) {
  scale_state s = {0};
  T_EQ(t_run(m_100k, &s), 0);
  T_EQ(s.peak, N_ALIVE); /* all alive at once, each on its own stack */
  T_EQ(s.done, N_ALIVE);
}

/* Sequential short tasks reuse one pooled stack. */
static int m_reuse(void *arg) {
  (void)arg;
  for (int i = 0; i < 10000; i++) {
    weft_task *t;
    T_OK(weft_spawn(&t, yield_n, (void *)1));
    T_OK(weft_join(t, NULL));
  }
  weft_stats st;
  weft_loop_stats(weft_loop_current(), &st);
  T_LE(st.stacks_mapped, 3);
  return 0;
}
static void test_stack_reuse(void) { T_EQ(t_run(m_reuse, NULL), 0); }

/* Per-task and per-loop stack sizes. */
static int deep(void *arg) {
  size_t n = (size_t)arg;
  volatile char buf[n];
  for (size_t i = 0; i < n; i += 512)
    buf[i] = (char)i;
  T_OK(weft_yield());
  return buf[n - 512 - (n % 512 ? 0 : 0)] == 0 ? 0 : 1;
}
static int m_stack_sizes(void *arg) {
  (void)arg;
  weft_task_opts o = {.size = sizeof o, .stack_size = 1024 * 1024};
  weft_task *t;
  T_OK(weft_spawn_opts(&t, deep, (void *)(size_t)(900 * 1024), &o));
  T_OK(weft_join(t, NULL));
  return 0;
}
static void test_stack_sizes(void) {
  T_EQ(t_run(m_stack_sizes, NULL), 0);
  weft_loop_opts lo = {.size = sizeof lo, .stack_size = 512 * 1024};
  T_EQ(t_run_opts(m_stack_sizes, NULL, &lo), 0);
}

/* Tasks on stacks of their own (unmapped when they return, once off them)
 * mixed with pool stacks, all yielding, so that a task with its own stack
 * returns while the next one resumes straight from its yield: every own
 * mapping still goes. Measured by the process's address space (VmSize, KiB)
 * over many rounds. */
static long vm_size_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  char line[256];
  long v = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmSize:", 7) == 0)
      v = strtol(line + 7, NULL, 10);
  fclose(f);
  return v;
}
static int m_own_stacks_mixed(void *arg) {
  (void)arg;
  weft_task_opts o = {.size = sizeof o, .stack_size = 256 * 1024};
  long after_first = 0;
  for (int round = 0; round < 20; round++) {
    weft_task *t[64];
    for (int i = 0; i < 64; i++)
      T_OK(weft_spawn_opts(&t[i], yield_n, (void *)(intptr_t)(i % 3 + 1),
                           i % 2 ? &o : NULL));
    for (int i = 0; i < 64; i++)
      T_OK(weft_join(t[i], NULL));
    if (round == 0)
      after_first = vm_size_kib();
  }
  T_TRUE(after_first > 0);
  /* 32 leaked stacks a round would be 8 MiB a round, 152 MiB in all; the
   * sanitizers' own shadow grows a few MiB. */
  T_LE(vm_size_kib(), after_first + 16 * 1024);
  return 0;
}
static void test_own_stacks_mixed(void) {
  T_EQ(t_run(m_own_stacks_mixed, NULL), 0);
}

/* ---- thread-safe calls ---- */

typedef struct {
  weft_loop *loop;
  int *counter;
} ts_arg;
static void bump(void *arg) { (*(int *)arg)++; }
static void *ts_thread(void *arg) {
  ts_arg *a = arg;
  for (int i = 0; i < 1000; i++)
    T_OK(weft_loop_call_threadsafe(a->loop, bump, a->counter));
  return NULL;
}
static int m_threadsafe(void *arg) {
  (void)arg;
  int counter = 0;
  ts_arg a = {weft_loop_current(), &counter};
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, ts_thread, &a);
  while (counter < 4000)
    T_OK(weft_sleep(0.001));
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  T_EQ(counter, 4000);
  return 0;
}
static void test_call_threadsafe(void) { T_EQ(t_run(m_threadsafe, NULL), 0); }

static const t_case cases[] = {
    {"join_results", test_join_results},
    {"run_returns_main_result", test_run_returns_main_result},
    {"interleave_fifo", test_interleave},
    {"join_errors", test_join_errors},
    {"sleep_real", test_sleep_real},
    {"sleep_virtual_clock", test_sleep_virtual},
    {"sleep_order", test_sleep_order},
    {"cancel_sleep", test_cancel_sleep},
    {"cancel_join", test_cancel_join},
    {"cancel_before_start", test_cancel_before_start},
    {"cancel_ready", test_cancel_ready},
    {"wait_any", test_wait_any},
    {"cancel_wait_any", test_cancel_wait_any},
    {"wait_for", test_wait_for},
    {"cancel_wait_for", test_cancel_wait_for},
    {"detached_tasks_run", test_detached_tasks_run},
    {"uncollected_failure_reported", test_uncollected_failure_reported},
    {"main_returns_cancels_rest", test_main_returns_cancels_rest},
    {"names", test_names},
    {"outside_task", test_outside_task},
    {"100k_alive", test_100k_alive},
    {"stack_reuse", test_stack_reuse},
    {"stack_sizes", test_stack_sizes},
    {"own_stacks_mixed", test_own_stacks_mixed},
    {"call_threadsafe", test_call_threadsafe},
    {NULL, NULL}};

T_MAIN("runtime-task", cases)
