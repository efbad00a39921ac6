/* weft-basics — the first sections of the asyncio guide, in C.
 *
 *   await in turn   two 1-second coroutines awaited one after the other: 2 s
 *   gather          the same two run concurrently: 1 s
 *   1 000 tasks     a thousand of them under gather: still about 1 s
 *   create_task     a task runs in the background while main goes on
 *   wait_for        a task that overruns its timeout is cancelled
 *
 * In C, "awaiting" a coroutine is calling a function that may suspend: it
 * runs on the calling task's stack, and other tasks run while it waits.
 */
#include <math.h>
#include <weft/weft.h>

#include "app.h"

static double secs = 1.0; /* how long each "coroutine" sleeps */
static int ntasks = 1000;
static bool tour, secs_given;

/* The guide's say_after(): a coroutine that waits, then says something. */
static int say_after(void *arg) {
  int rc = weft_sleep(secs);
  if (rc == 0 && arg != NULL && !tour)
    printf("    %s\n", (const char *)arg);
  return rc;
}

/* Within 20 % (plus scheduling noise) of what the guide predicts. */
static bool near(double got, double want) {
  return got >= want * 0.999 && got <= want * 1.2 + 0.02;
}

static bool report(const char *claim, double got, double want) {
  printf("  %-52s %.3f s (the guide: %g s)\n", claim, got, want);
  if (tour)
    return app_row(claim, near(got, want), "%.3f s", got);
  return near(got, want);
}

static bool await_in_turn(void) {
  double t0 = weft_now();
  if (say_after("hello") != 0 || say_after("world") != 0)
    return false;
  char claim[96];
  snprintf(claim, sizeof claim, "two %g s coroutines awaited in turn take %g s",
           secs, 2 * secs);
  return report(claim, weft_now() - t0, 2 * secs);
}

static bool gather_two(void) {
  weft_call calls[2] = {{say_after, "hello", 0}, {say_after, "world", 0}};
  double t0 = weft_now();
  if (weft_gather(calls, 2) != 0)
    return false;
  char claim[96];
  snprintf(claim, sizeof claim, "the same two under gather take %g s", secs);
  return report(claim, weft_now() - t0, secs);
}

static bool gather_many(void) {
  weft_call *calls = calloc((size_t)ntasks, sizeof *calls);
  if (calls == NULL)
    return false;
  for (int i = 0; i < ntasks; i++)
    calls[i] = (weft_call){say_after, NULL, 0};
  double t0 = weft_now();
  int rc = weft_gather(calls, (size_t)ntasks);
  double took = weft_now() - t0;
  free(calls);
  if (rc != 0) {
    fprintf(stderr, "weft-basics: gather: %s\n", weft_strerror(rc));
    return false;
  }
  char claim[96];
  snprintf(claim, sizeof claim, "%d coroutines under gather still take %g s",
           ntasks, secs);
  return report(claim, took, secs);
}

/* create_task: the task starts at the loop's next turn and runs while main
 * does other work; join collects its result later. */
static int background(void *arg) {
  int *ticks = arg;
  for (int i = 0; i < 4; i++) {
    int rc = weft_sleep(secs / 4);
    if (rc != 0)
      return rc;
    (*ticks)++;
  }
  return 42;
}

static bool create_task(void) {
  int ticks = 0;
  weft_task *t;
  double t0 = weft_now();
  if (weft_spawn(&t, background, &ticks) != 0)
    return false;
  double went_on = weft_now() - t0;
  /* Main keeps working (here: sleeping in small steps) while the task runs,
   * and sees its progress. */
  int seen_midway = -1;
  if (weft_sleep(secs / 2 + secs / 8) == 0)
    seen_midway = ticks;
  int result = 0;
  if (weft_join(t, &result) != 0)
    return false;
  double took = weft_now() - t0;
  bool ok =
      went_on < 0.001 && seen_midway == 2 && result == 42 && near(took, secs);
  printf("  %-52s main went on after %.6f s, saw %d of 4 ticks midway, "
         "joined result %d after %.3f s\n",
         "create_task runs a task while main goes on", went_on, seen_midway,
         result, took);
  if (tour)
    app_row("create_task runs a task while main goes on", ok,
            "main went on at once; saw %d/4 ticks midway; joined %d after "
            "%.2f s",
            seen_midway, result, took);
  return ok;
}

/* wait_for: the child overruns its timeout, is cancelled, and is awaited
 * before wait_for returns, so it has cleaned up by then. */
static int slow_op(void *arg) {
  bool *cleaned = arg;
  int rc = weft_sleep(secs * 10);
  *cleaned = true; /* runs on cancellation too: no unwinding in C */
  return rc;
}

static bool wait_for(void) {
  bool cleaned = false;
  int child = 0;
  double t0 = weft_now();
  int rc = weft_wait_for(slow_op, &cleaned, secs / 2, &child);
  double took = weft_now() - t0;
  bool ok = rc == WEFT_ETIMEDOUT && child == WEFT_ECANCELED && cleaned &&
            near(took, secs / 2);
  char claim[96];
  snprintf(claim, sizeof claim, "wait_for(%g s) cancels a %g s coroutine",
           secs / 2, secs * 10);
  printf("  %-52s %s after %.3f s; the child saw %s and cleaned up: %s\n",
         claim, weft_err_name(rc), took, weft_err_name(child),
         cleaned ? "yes" : "no");
  if (tour)
    app_row(claim, ok, "%s after %.3f s, child cancelled and cleaned up",
            weft_err_name(rc), took);
  return ok;
}

static int amain(void *arg) {
  (void)arg;
  bool ok = true;
  printf("weft-basics: the asyncio guide's first steps, in C\n");
  ok &= await_in_turn();
  ok &= gather_two();
  ok &= gather_many();
  ok &= create_task();
  ok &= wait_for();
  printf("%s\n", ok ? "all as the guide says" : "SOMETHING DIFFERED");
  return ok ? 0 : 1;
}

static void usage(const char *prog) {
  printf("usage: %s [--seconds S] [--tasks N] [--tour]\n"
         "  Runs the asyncio guide's first examples: await, gather, many "
         "tasks,\n"
         "  create_task and wait_for, and prints how long each took.\n"
         "  --seconds S  how long each coroutine sleeps (default 1)\n"
         "  --tasks N    tasks in the many-tasks example (default 1000)\n"
         "  --tour       short settings, rows for weft-tour\n",
         prog);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--seconds") == 0) {
      secs = app_num(argc, argv, &i, 0.01, 3600);
      secs_given = true;
    } else if (strcmp(argv[i], "--tasks") == 0) {
      ntasks = (int)app_num(argc, argv, &i, 1, 1e7);
    } else if (strcmp(argv[i], "--tour") == 0) {
      tour = true;
    } else {
      app_bad_arg(argv[0], argv[i]);
    }
  }
  if (tour && !secs_given)
    secs = 0.2; /* the tour runs every scenario: keep each one short */
  int rc = weft_run(amain, NULL);
  if (rc < 0) {
    fprintf(stderr, "weft-basics: %s\n", weft_strerror(rc));
    return 1;
  }
  return rc;
}
