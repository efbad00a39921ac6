/* runtime-stack: stack overflow is caught and names the task, with each
 * guard scheme (MADV_GUARD_INSTALL, mprotect, canary); stacks are pooled. Each
 * overflow runs in a child process, since it must end in abort(). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

static volatile int sink;

#pragma GCC diagnostic ignored "-Winfinite-recursion"
static int recurse_forever(int depth) {
  volatile char pad[256];
  pad[0] = (char)depth;
  sink += pad[0];
  return recurse_forever(depth + 1) + pad[1];
}

static int diver(void *arg) {
  (void)arg;
  return recurse_forever(0);
}

/* Recurses until the frame is within `slack` bytes of the stack's low end,
 * then calls fn there. */
static int descend(size_t slack, int (*fn)(void)) {
  volatile char pad[128];
  pad[0] = 1;
  char *fp = __builtin_frame_address(0);
  if ((size_t)(fp - weft_current()->stack.lo) < slack)
    return fn() + pad[0];
  return descend(slack, fn) + pad[1];
}

static int yield_at_bottom(void) {
  /* Below the stack's low end by a couple of KiB: still inside the slot's
   * reserved page in canary mode, so only the stack-pointer check sees it. */
  volatile char big[3000];
  big[0] = 0;
  int rc = weft_yield(); /* not a tail call: big stays on the stack */
  return rc + big[0];
}
static int yield_deep(void *arg) {
  (void)arg;
  return descend(1024, yield_at_bottom);
}

static int smash_below(void) {
  /* Writes 8 KiB below the frame: through the reserved page and into the
   * top of the stack below, where its canary lives. */
  volatile char big[8192];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)0xAA;
  return big[1];
}
static int smasher(void *arg) {
  (void)arg;
  return descend(1024, smash_below) > 0 ? 0 : 0;
}
static int victim(void *arg) {
  (void)arg;
  return weft_sleep(0.01);
}

static int m_overflow(void *arg) {
  const char *mode = arg;
  weft_task_opts o = {.size = sizeof o, .name = "deep-diver"};
  weft_task *t;
  if (strcmp(mode, "yield") == 0) {
    T_OK(weft_spawn_opts(&t, yield_deep, NULL, &o));
  } else if (strcmp(mode, "neighbour") == 0) {
    weft_task *v;
    weft_task_opts vo = {.size = sizeof vo, .name = "victim"};
    /* Stacks are carved upwards: the victim's slot lies below the
     * smasher's. */
    T_OK(weft_spawn_opts(&v, victim, NULL, &vo));
    T_OK(weft_yield());
    T_OK(weft_spawn_opts(&t, smasher, NULL, &o));
    int r;
    T_OK(weft_join(t, &r));
    T_OK(weft_join(v, &r));
    return 0;
  } else {
    T_OK(weft_spawn_opts(&t, diver, NULL, &o));
  }
  int r;
  T_OK(weft_join(t, &r));
  return 0;
}

/* Runs the overflow in a child with WEFT_STACK_GUARD=guard; returns what it
 * wrote on stderr and checks it died of SIGABRT. */
static void overflow_child(const char *guard, const char *mode,
                           const char *must_name, const char *must_say) {
  int p[2];
  T_EQ(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 2);
    close(p[0]);
    if (guard)
      setenv("WEFT_STACK_GUARD", guard, 1);
    weft_run(m_overflow, (void *)mode);
    _exit(0); /* not reached when the overflow is caught */
  }
  close(p[1]);
  char buf[4096] = {0};
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 &&
         (r = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)r;
  close(p[0]);
  int st;
  T_EQ(waitpid(pid, &st, 0), pid);
  T_TRUE(WIFSIGNALED(st));
  if (WIFSIGNALED(st))
    T_EQ(WTERMSIG(st), SIGABRT);
  if (strstr(buf, "stack overflow") == NULL || strstr(buf, must_name) == NULL ||
      strstr(buf, must_say) == NULL)
    t__fail(__FILE__, __LINE__, "child stderr: %s", buf);
}

static void test_overflow_default_guard(void) {
  overflow_child(NULL, "forever", "'deep-diver' (spawned at", "guard page");
}
static void test_overflow_mprotect_guard(void) {
  overflow_child("mprotect", "forever", "'deep-diver'", "guard page");
}
static void test_overflow_canary_sp_check(void) {
  overflow_child("canary", "yield", "'deep-diver'", "stack pointer");
}
/* Under AddressSanitizer these two are caught by ASan first (the writes
 * land in other frames' redzones), which is the better report there. */
static void test_overflow_canary_neighbour(void) {
#ifndef __SANITIZE_ADDRESS__
  overflow_child("canary", "neighbour", "'victim'", "canary");
#endif
}
static void test_overflow_canary_runaway(void) {
#ifndef __SANITIZE_ADDRESS__
  overflow_child("canary", "forever", "'deep-diver'", "below its stack");
#endif
}

/* The pool: guard schemes chosen, stacks reused LIFO, surplus trimmed. */
static int nop(void *arg) {
  (void)arg;
  return weft_yield();
}
static int m_pool(void *arg) {
  (void)arg;
  weft_loop *loop = weft_loop_current();
  enum { N = 3000 };
  weft_task *t[N];
  for (int i = 0; i < N; i++)
    T_OK(weft_spawn(&t[i], nop, NULL));
  for (int i = 0; i < N; i++)
    T_OK(weft_join(t[i], NULL));
  T_GE(loop->pool.mapped, N);
  T_GE(loop->pool.hot_len, N - 10);
  T_OK(weft_sleep(0.001)); /* idle: the loop trims to the cache size */
  T_LE(loop->pool.hot_len, 100);
  T_GE(loop->pool.cold_len, N - 110);
  /* Trimmed stacks are reused before new ones are carved. */
  uint64_t mapped = loop->pool.mapped;
  for (int i = 0; i < N; i++)
    T_OK(weft_spawn(&t[i], nop, NULL));
  for (int i = 0; i < N; i++)
    T_OK(weft_join(t[i], NULL));
  T_EQ(loop->pool.mapped, mapped);
  return 0;
}
static void test_pool_trim_reuse(void) {
  weft_loop_opts o = {.size = sizeof o, .stack_cache = 100};
  T_EQ(t_run_opts(m_pool, NULL, &o), 0);
}

static const t_case cases[] = {
    {"overflow_default_guard", test_overflow_default_guard},
    {"overflow_mprotect_guard", test_overflow_mprotect_guard},
    {"overflow_canary_sp_check", test_overflow_canary_sp_check},
    {"overflow_canary_neighbour", test_overflow_canary_neighbour},
    {"overflow_canary_runaway", test_overflow_canary_runaway},
    {"pool_trim_reuse", test_pool_trim_reuse},
    {NULL, NULL}};

T_MAIN("runtime-stack", cases)
