/* weft apps — what every demo program shares: the tour's row format and a
 * few helpers for parsing numeric flags. Header-only, so each app stays one
 * file plus this.
 *
 * The tour (apps/tour) runs each scenario app with --tour and reads, from its
 * stdout, lines of exactly four tab-separated fields:
 *
 *   TOUR <tab> the guide's claim <tab> what weft measured <tab> ok|FAIL|slow
 *
 * "slow" is for claims about speed (N processes finish N times faster): a
 * busy machine can make them fall short without anything being wrong, so
 * they are shown but never fail the tour or the app. Speed is proven by the
 * benchmarks (docs/benchmarks.md), not by the tour. Everything else an app
 * prints is for people and the tour ignores it.
 */
#ifndef WEFT_APP_H
#define WEFT_APP_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/weft.h>

static inline void app__vrow(const char *claim, const char *verdict,
                             const char *measured, va_list ap) {
  char buf[256];
  vsnprintf(buf, sizeof buf, measured, ap);
  printf("TOUR\t%s\t%s\t%s\n", claim, buf, verdict);
  fflush(stdout);
}

/* Prints one tour row; `measured` is a printf format. Returns `ok`, so an
 * app can fold the rows into its exit status. */
static inline bool app_row(const char *claim, bool ok, const char *measured,
                           ...) __attribute__((format(printf, 3, 4)));
static inline bool app_row(const char *claim, bool ok, const char *measured,
                           ...) {
  va_list ap;
  va_start(ap, measured);
  app__vrow(claim, ok ? "ok" : "FAIL", measured, ap);
  va_end(ap);
  return ok;
}

/* The same for a claim about speed: prints "slow" instead of FAIL, and
 * returns true either way, so that a busy machine never fails an app. */
static inline bool app_speed_row(const char *claim, bool ok,
                                 const char *measured, ...)
    __attribute__((format(printf, 3, 4)));
static inline bool app_speed_row(const char *claim, bool ok,
                                 const char *measured, ...) {
  va_list ap;
  va_start(ap, measured);
  app__vrow(claim, ok ? "ok" : "slow", measured, ap);
  va_end(ap);
  return true;
}

/* Parses argv[*i + 1] as a number for flag argv[*i] and advances *i; exits
 * with a usage error when it is missing or not a number in [lo, hi]. */
static inline double app_num(int argc, char **argv, int *i, double lo,
                             double hi) {
  const char *flag = argv[*i];
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value (try --help)\n", argv[0], flag);
    exit(2);
  }
  const char *s = argv[++*i];
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    fprintf(stderr, "%s: %s %s: want a number from %g to %g\n", argv[0], flag,
            s, lo, hi);
    exit(2);
  }
  return v;
}

/* Exits with a usage error for an unknown argument. */
static inline void app_bad_arg(const char *prog, const char *arg) {
  fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", prog, arg);
  exit(2);
}

/* How a busy loop looks from inside: a task that asks to wake every 10 ms
 * and records how late it woke (the worst since reset) and how often. Spawn
 * app_heartbeat_task with an app_heartbeat; cancel it to stop it. */
typedef struct app_heartbeat {
  double worst; /* seconds late, the worst wake-up since reset */
  long ticks;
} app_heartbeat;

static inline int app_heartbeat_task(void *arg) {
  app_heartbeat *hb = arg;
  for (;;) {
    double due = weft_now() + 0.010;
    if (weft_sleep(0.010) != 0)
      return 0;
    double late = weft_now() - due;
    if (late > hb->worst)
      hb->worst = late;
    hb->ticks++;
  }
}

#endif
