/* bench-handoff: the cost of handing the CPU from one task to another.
 *
 *   bench-handoff weft N      two tasks ping-pong with weft_yield(), N
 *                             yields each: every yield goes through the run
 *                             queue to the other task (and, once a turn of
 *                             the scheduler's budget, through an I/O poll)
 *   bench-handoff ucontext N  two contexts ping-pong with swapcontext(), N
 *                             swaps each (what a coroutine library built on
 *                             ucontext pays, signal mask syscall included)
 *
 * Prints ns_per_handoff=… (wall time divided by the 2N handoffs).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <weft/weft.h>

static long n_iter;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void report(uint64_t ns) {
  printf("ns_per_handoff=%.2f\n", (double)ns / (double)(2 * n_iter));
}

/* ---- weft ---- */

static int pinger(void *arg) {
  (void)arg;
  for (long i = 0; i < n_iter; i++)
    if (weft_yield() != 0)
      return -1;
  return 0;
}

static int weft_main(void *arg) {
  (void)arg;
  weft_task *a, *b;
  if (weft_spawn(&a, pinger, NULL) != 0 || weft_spawn(&b, pinger, NULL) != 0)
    return 1;
  /* Let both start (and take their stacks) before the clock starts. */
  if (weft_yield() != 0)
    return 1;
  uint64_t t0 = now_ns();
  int ra, rb;
  if (weft_join(a, &ra) != 0 || weft_join(b, &rb) != 0 || ra != 0 || rb != 0)
    return 1;
  report(now_ns() - t0);
  return 0;
}

/* ---- ucontext ---- */

static ucontext_t uc_main, uc_co;

static void co_body(void) {
  for (;;)
    swapcontext(&uc_co, &uc_main);
}

static int ucontext_bench(void) {
  size_t size = 64 * 1024;
  void *stack = malloc(size);
  if (stack == NULL || getcontext(&uc_co) != 0)
    return 1;
  uc_co.uc_stack.ss_sp = stack;
  uc_co.uc_stack.ss_size = size;
  uc_co.uc_link = NULL;
  makecontext(&uc_co, co_body, 0);
  swapcontext(&uc_main, &uc_co); /* first entry, not timed */
  uint64_t t0 = now_ns();
  for (long i = 0; i < n_iter; i++)
    swapcontext(&uc_main, &uc_co);
  report(now_ns() - t0);
  free(stack);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3 ||
      (strcmp(argv[1], "weft") != 0 && strcmp(argv[1], "ucontext") != 0)) {
    fprintf(stderr, "usage: %s weft|ucontext N\n", argv[0]);
    return 2;
  }
  n_iter = strtol(argv[2], NULL, 10);
  if (n_iter <= 0) {
    fprintf(stderr, "bench-handoff: N must be > 0\n");
    return 2;
  }
  if (strcmp(argv[1], "ucontext") == 0)
    return ucontext_bench();
  return weft_run(weft_main, NULL);
}
