/* weft-offload — the guide's "CPU-bound work needs multiprocessing", made
 * visible.
 *
 * It counts the primes in a large range three ways — right on the loop, on
 * the thread pool, on a process pool — while a heartbeat task asks to wake
 * every 10 ms. For each way it prints the wall time and the heartbeat's worst
 * lateness. On the loop the heartbeat stalls for the whole computation (and
 * the loop-stall detector says so); on a process pool it keeps ticking and
 * the work finishes about N times faster on N cores.
 *
 * C has no GIL, so here the thread pool spreads CPU-bound work over the cores
 * too; what the process pool adds is isolation: a crash or a runaway
 * computation takes down one worker, not the program, and a call can be
 * killed on timeout or cancellation, which a thread cannot.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft/offload.h>
#include <weft/weft.h>

#include "app.h"

static struct {
  long lo, hi; /* the range [lo, hi) */
  int chunks;  /* pieces the range is cut into for the pools */
  int workers; /* process pool size; 0: one per core */
  bool tour;
} cfg = {1000000000L, 1003000000L, 0, 0, false};

/* ---- the work: plain trial division, deliberately CPU-bound ---- */

static bool is_prime(long n) {
  if (n < 2)
    return false;
  if (n % 2 == 0)
    return n == 2;
  for (long d = 3; d * d <= n; d += 2)
    if (n % d == 0)
      return false;
  return true;
}

static long count_primes(long lo, long hi) {
  long c = 0;
  for (long n = lo; n < hi; n++)
    c += is_prime(n);
  return c;
}

typedef struct range {
  long lo, hi;
} range;
typedef struct count {
  long primes;
} count;

/* Registered by name: the process pool's workers run this. */
WEFT_PROC_STRUCT_FUNCTION(count_primes, range, count) {
  out->primes = count_primes(in->lo, in->hi);
  return 0;
}

/* ---- the heartbeat ---- */

static app_heartbeat hb;

/* ---- the three ways ---- */

typedef struct piece {
  range r;
  long primes;
  weft_procpool *pool; /* NULL: the thread pool */
} piece;

static intptr_t piece_on_thread(void *arg) {
  piece *p = arg;
  p->primes = count_primes(p->r.lo, p->r.hi);
  return 0;
}

static int piece_task(void *arg) {
  piece *p = arg;
  if (p->pool == NULL)
    return weft_to_thread(piece_on_thread, p, NULL);
  count c;
  int rc = weft_proc_call_struct(p->pool, "count_primes", &p->r, &c);
  if (rc != 0) {
    fprintf(stderr, "weft-offload: %s\n", weft_proc_errmsg());
    return rc;
  }
  p->primes = c.primes;
  return 0;
}

/* Counts the range in pieces, each on the pool (or threads), all at once. */
static int spread(weft_procpool *pool, long *primes) {
  int n = cfg.chunks;
  piece *ps = calloc((size_t)n, sizeof *ps);
  if (ps == NULL)
    return WEFT_ENOMEM;
  long step = (cfg.hi - cfg.lo + n - 1) / n;
  weft_call *calls = calloc((size_t)n, sizeof *calls);
  if (calls == NULL) {
    free(ps);
    return WEFT_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    long a = cfg.lo + step * i, b = a + step < cfg.hi ? a + step : cfg.hi;
    ps[i] = (piece){.r = {a, b}, .pool = pool};
    calls[i] = (weft_call){.fn = piece_task, .arg = &ps[i]};
  }
  int rc = weft_gather(calls, (size_t)n);
  *primes = 0;
  for (int i = 0; i < n; i++)
    *primes += ps[i].primes;
  free(calls);
  free(ps);
  return rc;
}

typedef struct result {
  const char *how;
  double secs, worst;
  long primes, ticks;
  uint64_t stalls;
} result;

static void report(const result *r) {
  printf("  %-13s %8.3f s   heartbeat worst %7.1f ms late, %4ld ticks   "
         "%ld primes%s\n",
         r->how, r->secs, r->worst * 1e3, r->ticks, r->primes,
         r->stalls ? "   (stall detector fired)" : "");
  fflush(stdout);
}

static int run_main(void *arg) {
  (void)arg;
  weft_loop *loop = weft_loop_current();
  /* The stall report is part of what this program shows: print it with the
   * rest, on stdout. */
  weft_debug_output(loop, stdout);
  weft_procpool *pool;
  weft_procpool_opts po = {.size = sizeof po, .workers = (size_t)cfg.workers};
  int rc = weft_procpool_new(&pool, &po);
  if (rc != 0) {
    fprintf(stderr, "weft-offload: process pool: %s\n", weft_strerror(rc));
    return rc;
  }
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1)
    ncpu = 1;
  if (cfg.chunks == 0)
    cfg.chunks = (int)(cfg.workers ? cfg.workers : ncpu) * 4;
  int nw = cfg.workers ? cfg.workers : (int)ncpu;

  /* Warm up: start the workers and threads before anything is timed. */
  range tiny = {2, 10};
  count c;
  for (int i = 0; i < nw; i++)
    if ((rc = weft_proc_call_struct(pool, "count_primes", &tiny, &c)) != 0) {
      fprintf(stderr, "weft-offload: %s\n", weft_proc_errmsg());
      weft_procpool_free(pool);
      return rc;
    }

  weft_task *hbt;
  rc = weft_spawn(&hbt, app_heartbeat_task, &hb);
  if (rc != 0) {
    weft_procpool_free(pool);
    return rc;
  }
  (void)weft_sleep(0.05);

  printf("counting the primes in [%ld, %ld) with a heartbeat every 10 ms, "
         "%ld cores:\n",
         cfg.lo, cfg.hi, ncpu);
  result res[3] = {
      {.how = "on the loop"}, {.how = "thread pool"}, {.how = "process pool"}};
  for (int way = 0; way < 3 && rc == 0; way++) {
    weft_stats st0, st1;
    weft_loop_stats(loop, &st0);
    (void)weft_sleep(0.03); /* the heartbeat settles */
    hb.worst = 0;
    hb.ticks = 0;
    double t0 = weft_now();
    if (way == 0)
      res[way].primes = count_primes(cfg.lo, cfg.hi); /* holds the loop */
    else
      rc = spread(way == 1 ? NULL : pool, &res[way].primes);
    res[way].secs = weft_now() - t0;
    (void)weft_sleep(0.03); /* a late heartbeat reports its lateness */
    res[way].worst = hb.worst;
    res[way].ticks = hb.ticks;
    weft_loop_stats(loop, &st1);
    res[way].stalls = st1.stalls - st0.stalls;
    report(&res[way]);
  }
  weft_cancel(hbt);
  int jrc = weft_join(hbt, NULL); /* the heartbeat returns 0 */
  (void)jrc;
  int src = weft_procpool_shutdown(pool, WEFT_PROC_WAIT, 5);
  weft_procpool_free(pool);
  if (rc != 0)
    return rc;
  if (src != 0)
    return src;

  double speed_p = res[0].secs / res[2].secs;
  double speed_t = res[0].secs / res[1].secs;
  printf("process pool: %.2fx the loop's speed on %d workers; thread pool: "
         "%.2fx (C has no GIL)\n",
         speed_p, nw, speed_t);
  if (!cfg.tour)
    return 0;

  /* The claims, each beside what was measured. */
  bool ok = true;
  ok &= app_row("CPU-bound work on the loop stalls every other task",
                res[0].worst > 0.05 && res[0].stalls > 0,
                "heartbeat %.0f ms late; stall detector fired %llu times",
                res[0].worst * 1e3, (unsigned long long)res[0].stalls);
  ok &= app_row("a process pool keeps the loop responsive",
                res[2].worst < 0.05 && res[2].stalls == 0,
                "heartbeat at most %.1f ms late, %ld ticks during the work",
                res[2].worst * 1e3, res[2].ticks);
  /* "About N times": 2 cores give 1.9x when idle; leave room for a busy
   * machine (other programs take cores from the workers, not the loop).
   * These two are claims about speed: a busy machine shows them as slow
   * without failing the tour (apps/common/app.h). */
  double want = nw >= 2 ? 0.65 * (double)(nw < ncpu ? nw : ncpu) : 0.8;
  app_speed_row(
      "CPU-bound work on N processes finishes ~N times faster", speed_p >= want,
      "%.2fx on %d workers, %ld cores (want >= %.2f)", speed_p, nw, ncpu, want);
  ok &= app_row("in C, threads keep the loop responsive too (no GIL)",
                res[1].worst < 0.05, "heartbeat at most %.1f ms late",
                res[1].worst * 1e3);
  app_speed_row("in C, threads also spread CPU-bound work (no GIL)",
                speed_t >= want, "thread pool %.2fx (want >= %.2f)", speed_t,
                want);
  ok &=
      app_row("all three ways give the same answer",
              res[0].primes == res[1].primes && res[1].primes == res[2].primes,
              "%ld primes each", res[0].primes);
  return ok ? 0 : 1;
}

static void usage(const char *prog) {
  printf("usage: %s [--from N] [--to N] [--chunks N] [--workers N] [--tour]\n"
         "\n"
         "Counts the primes in [from, to) on the loop, on the thread pool and\n"
         "on a process pool, while a heartbeat task ticks every 10 ms, and\n"
         "prints each way's wall time and the heartbeat's worst lateness.\n"
         "\n"
         "  --from N      start of the range (default %ld)\n"
         "  --to N        end of the range (default %ld)\n"
         "  --chunks N    pieces for the pools (default 4 per worker)\n"
         "  --workers N   process pool size (default: one per core)\n"
         "  --tour        small settings; print the tour's claim rows\n",
         prog, cfg.lo, cfg.hi);
}

int main(int argc, char **argv) {
  weft_proc_main(); /* a process pool worker serves here and exits */
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--tour") == 0) {
      cfg.tour = true; /* small settings; flags after may change them */
      cfg.lo = 1000000000L;
      cfg.hi = 1000600000L;
    }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--from") == 0) {
      cfg.lo = (long)app_num(argc, argv, &i, 0, 4e18);
    } else if (strcmp(argv[i], "--to") == 0) {
      cfg.hi = (long)app_num(argc, argv, &i, 1, 4e18);
    } else if (strcmp(argv[i], "--chunks") == 0) {
      cfg.chunks = (int)app_num(argc, argv, &i, 1, 10000);
    } else if (strcmp(argv[i], "--workers") == 0) {
      cfg.workers = (int)app_num(argc, argv, &i, 1, 256);
    } else if (strcmp(argv[i], "--tour") == 0) {
      /* taken above */
    } else {
      app_bad_arg(argv[0], argv[i]);
    }
  }
  if (cfg.hi <= cfg.lo) {
    fprintf(stderr, "%s: --to must be above --from\n", argv[0]);
    return 2;
  }
  /* The stall detector names what held the loop (the guide's first trap). */
  weft_loop_opts lo = {.size = sizeof lo, .stall_threshold = 0.1};
  int rc = weft_run_opts(run_main, NULL, &lo);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], weft_strerror(rc));
    return 1;
  }
  return rc;
}
