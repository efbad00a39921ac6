/* runtime-debug: the stall detector, task dumps, SIGUSR1, counters. */
#include <signal.h>
#include <unistd.h>

#include "test.h"

static char *slurp(FILE *f) {
  static char buf[16384];
  rewind(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  return buf;
}

static int blocker(void *arg) {
  (void)arg;
  usleep(150 * 1000); /* the first trap: a blocking call in a task */
  return 0;
}
static int polite(void *arg) {
  (void)arg;
  for (int i = 0; i < 10; i++)
    T_OK(weft_sleep(0.001));
  return 0;
}
static int m_stall(void *arg) {
  weft_loop *loop = weft_loop_current();
  weft_debug_output(loop, arg);
  T_OK(weft_stall_detector(loop, 0.1));
  weft_task_opts o = {.size = sizeof o, .name = "blocker"};
  weft_task *b, *p;
  T_OK(weft_spawn(&p, polite, NULL));
  T_OK(weft_spawn_opts(&b, blocker, NULL, &o));
  T_OK(weft_join(b, NULL));
  T_OK(weft_join(p, NULL));
  weft_stats st;
  weft_loop_stats(loop, &st);
  T_EQ(st.stalls, 1); /* the polite task never held the loop */
  T_RC(weft_stall_detector(loop, -1), WEFT_EINVAL);
  return 0;
}
static void test_stall_detector(void) {
  FILE *f = tmpfile();
  T_EQ(t_run(m_stall, f), 0);
  char *out = slurp(f);
  fclose(f);
  if (strstr(out, "loop stall") == NULL || strstr(out, "'blocker'") == NULL ||
      strstr(out, "test_debug.c:") == NULL)
    t__fail(__FILE__, __LINE__, "stall report: %s", out);
  /* "ran 150.x ms" */
  char *ran = strstr(out, "ran ");
  T_TRUE(ran != NULL);
  if (ran) {
    double ms = strtod(ran + 4, NULL);
    T_GE(ms, 149);
    T_LT(ms, 2000);
  }
}

/* WEFT_STALL_MS turns the detector on for every loop. */
static void test_stall_env(void) {
  setenv("WEFT_STALL_MS", "100", 1);
  FILE *f = tmpfile();
  weft_loop *loop;
  T_OK(weft_loop_new(&loop, NULL));
  weft_debug_output(loop, f);
  int r;
  T_OK(weft_loop_run(loop, blocker, NULL, &r));
  weft_stats st;
  weft_loop_stats(loop, &st);
  T_EQ(st.stalls, 1);
  T_OK(weft_loop_free(loop));
  unsetenv("WEFT_STALL_MS");
  T_TRUE(strstr(slurp(f), "loop stall") != NULL);
  fclose(f);
}

/* WEFT_STALL=1 turns it on with the default threshold, 100 ms: a 150 ms
 * block is reported, a 50 ms one is not. */
static int short_block(void *arg) {
  (void)arg;
  usleep(50 * 1000);
  return 0;
}
static void test_stall_default(void) {
  setenv("WEFT_STALL", "1", 1);
  int (*fns[2])(void *) = {short_block, blocker};
  for (int i = 0; i < 2; i++) {
    FILE *f = tmpfile();
    weft_loop *loop;
    T_OK(weft_loop_new(&loop, NULL));
    weft_debug_output(loop, f);
    int r;
    T_OK(weft_loop_run(loop, fns[i], NULL, &r));
    weft_stats st;
    weft_loop_stats(loop, &st);
    T_EQ(st.stalls, i); /* none for 50 ms, one for 150 ms */
    T_OK(weft_loop_free(loop));
    if (i == 1)
      T_TRUE(strstr(slurp(f), "threshold 100.0 ms") != NULL);
    fclose(f);
  }
  unsetenv("WEFT_STALL");
}

static int sleepy(void *arg) {
  (void)arg;
  return weft_sleep(100);
}
static int future_waiter(void *arg) { return weft_future_await(arg, NULL); }
static int m_dump(void *arg) {
  FILE *f = arg;
  weft_task_opts o = {.size = sizeof o, .name = "sleepy-one"};
  weft_task *a, *b;
  weft_future *fut;
  T_OK(weft_future_new(&fut));
  T_OK(weft_spawn_opts(&a, sleepy, NULL, &o));
  T_OK(weft_spawn(&b, future_waiter, fut));
  T_OK(weft_yield());
  weft_dump_tasks(weft_loop_current(), f);
  char *out = slurp(f);
  if (strstr(out, "3 tasks alive") == NULL ||
      strstr(out, "'main' running") == NULL ||
      strstr(out, "'sleepy-one' waiting on sleep") == NULL ||
      strstr(out, "waiting on future") == NULL ||
      strstr(out, "test_debug.c:") == NULL)
    t__fail(__FILE__, __LINE__, "dump: %s", out);
  weft_cancel(a);
  T_OK(weft_future_resolve(fut, NULL));
  T_OK(weft_join(a, NULL));
  T_OK(weft_join(b, NULL));
  weft_future_free(fut);
  T_OK(weft_sleep(0.001));
  weft_stats st;
  weft_loop_stats(weft_loop_current(), &st);
  T_EQ(st.tasks_alive, 1);
  T_EQ(st.tasks_spawned, 3);
  T_GE(st.switches, 4);
  T_GE(st.loop_iterations, 1);
  T_EQ(st.objects_alive, 0);
  return 0;
}
static void test_dump(void) {
  FILE *f = tmpfile();
  T_EQ(t_run(m_dump, f), 0);
  fclose(f);
}

static int m_usr1(void *arg) {
  weft_loop *loop = weft_loop_current();
  weft_debug_output(loop, arg);
  T_OK(weft_dump_on_sigusr1(loop, true));
  kill(getpid(), SIGUSR1);
  T_OK(weft_sleep(0.02));
  T_OK(weft_dump_on_sigusr1(loop, false));
  return 0;
}
static void test_sigusr1_dump(void) {
  FILE *f = tmpfile();
  T_EQ(t_run(m_usr1, f), 0);
  char *out = slurp(f);
  if (strstr(out, "tasks alive") == NULL || strstr(out, "'main'") == NULL)
    t__fail(__FILE__, __LINE__, "dump: %s", out);
  fclose(f);
}

static const t_case cases[] = {
    {"stall_detector", test_stall_detector}, {"stall_env", test_stall_env},
    {"stall_default", test_stall_default},   {"dump", test_dump},
    {"sigusr1_dump", test_sigusr1_dump},     {NULL, NULL}};

T_MAIN("runtime-debug", cases)
