/* runtime-signal: tasks wait for signals; nothing is lost, nothing dies. */
#include <signal.h>
#include <unistd.h>

#include "test.h"

static int wait_term(void *arg) {
  int *which = arg;
  int sigs[] = {SIGINT, SIGTERM};
  return weft_signal_wait(sigs, 2, which);
}

static int m_wait(void *arg) {
  (void)arg;
  int which = 0;
  weft_task *t;
  T_OK(weft_spawn(&t, wait_term, &which));
  T_OK(weft_sleep(0.01));
  T_FALSE(weft_task_done(t));
  kill(getpid(), SIGTERM); /* would kill the process if not caught */
  int r;
  T_OK(weft_join(t, &r));
  T_EQ(r, 0);
  T_EQ(which, SIGTERM);
  return 0;
}
static void test_wait_sigterm(void) { T_EQ(t_run(m_wait, NULL), 0); }

/* A signal that arrives while nobody waits is kept for the next wait. */
static int m_pending(void *arg) {
  (void)arg;
  int sigs[] = {SIGUSR2};
  int which = 0;
  /* First wait registers the signal; cancel it right away via a deadline. */
  weft_timeout s;
  weft_timeout_enter(&s, 0.01);
  T_RC(weft_signal_wait(sigs, 1, &which), WEFT_ETIMEDOUT);
  (void)weft_timeout_exit(&s);
  kill(getpid(), SIGUSR2);
  T_OK(weft_sleep(0.01)); /* delivered to the loop while nobody waits */
  T_OK(weft_signal_wait(sigs, 1, &which));
  T_EQ(which, SIGUSR2);
  return 0;
}
static void test_pending_kept(void) { T_EQ(t_run(m_pending, NULL), 0); }

static int m_cancel(void *arg) {
  (void)arg;
  int which;
  weft_task *t;
  T_OK(weft_spawn(&t, wait_term, &which));
  T_OK(weft_sleep(0.01));
  weft_cancel(t);
  int r;
  T_OK(weft_join(t, &r));
  T_EQ(r, WEFT_ECANCELED);
  int bad[] = {SIGKILL};
  T_RC(weft_signal_wait(bad, 1, NULL), WEFT_EINVAL);
  T_RC(weft_signal_wait(bad, 0, NULL), WEFT_EINVAL);
  return 0;
}
static void test_cancel_signal_wait(void) { T_EQ(t_run(m_cancel, NULL), 0); }

/* Two waiters, two signals: each gets one, FIFO. */
static int wait_usr2(void *arg) {
  int sigs[] = {SIGUSR2};
  return weft_signal_wait(sigs, 1, arg);
}
static int m_two(void *arg) {
  (void)arg;
  int w1 = 0, w2 = 0;
  weft_task *a, *b;
  T_OK(weft_spawn(&a, wait_usr2, &w1));
  T_OK(weft_spawn(&b, wait_usr2, &w2));
  T_OK(weft_sleep(0.01));
  kill(getpid(), SIGUSR2);
  T_OK(weft_join(a, NULL));
  T_FALSE(weft_task_done(b));
  kill(getpid(), SIGUSR2);
  T_OK(weft_join(b, NULL));
  T_EQ(w1, SIGUSR2);
  T_EQ(w2, SIGUSR2);
  return 0;
}
static void test_two_waiters(void) { T_EQ(t_run(m_two, NULL), 0); }

static const t_case cases[] = {{"wait_sigterm", test_wait_sigterm},
                               {"pending_kept", test_pending_kept},
                               {"cancel_signal_wait", test_cancel_signal_wait},
                               {"two_waiters", test_two_waiters},
                               {NULL, NULL}};

T_MAIN("runtime-signal", cases)
