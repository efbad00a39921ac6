/* bench-offload-proc: process-pool calls, the weft side (the peer is
 * tests/bench/offload_proc.py, Python's ProcessPoolExecutor doing the same).
 *
 *   bench-offload-proc seq N        N calls one at a time, 8-byte payload
 *   bench-offload-proc inflight N   N calls, 64 in flight, 8-byte payload
 *   bench-offload-proc mib N        N calls, 4 in flight, 1 MiB each way
 *   bench-offload-proc cpu N        count the primes below N on the loop,
 *                                   then on the pool in 16 pieces
 *
 * The pool has 2 workers (this machine's cores). Prints one key=value line:
 * calls_per_s and us_per_call (and p50_us for seq), or for cpu: loop_s,
 * pool_s and speedup.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft/offload.h>
#include <weft/weft.h>

#define WORKERS 2

static long n;
static const char *mode;

WEFT_PROC_FUNCTION(echo) { return weft_bytes_set(out, in, in_len); }

static long count_primes(long lo, long hi) {
  long c = 0;
  for (long x = lo < 2 ? 2 : lo; x < hi; x++) {
    bool p = x == 2 || x % 2;
    for (long d = 3; p && d * d <= x; d += 2)
      p = x % d != 0;
    c += p;
  }
  return c;
}

typedef struct range {
  long lo, hi;
} range;
typedef struct count {
  long c;
} count;

WEFT_PROC_STRUCT_FUNCTION(primes, range, count) {
  out->c = count_primes(in->lo, in->hi);
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static weft_procpool *pool;
static long left;
static size_t payload;
static uint8_t *buf;

static int one(void) {
  weft_bytes out = {0};
  int rc = weft_proc_call(pool, "echo", buf, payload, &out);
  if (rc == 0 && out.len != payload)
    rc = WEFT_EPROTO;
  weft_bytes_free(&out);
  return rc;
}

static int caller(void *arg) {
  (void)arg;
  while (left > 0) {
    left--;
    int rc = one();
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int run_calls(int inflight, long count) {
  weft_call calls[64];
  left = count;
  for (int i = 0; i < inflight; i++)
    calls[i] = (weft_call){.fn = caller};
  return weft_gather(calls, (size_t)inflight);
}

typedef struct piece {
  range r;
  long c;
} piece;

static int piece_task(void *arg) {
  piece *p = arg;
  count c;
  int rc = weft_proc_call_struct(pool, "primes", &p->r, &c);
  p->c = c.c;
  return rc;
}

static int bench(void *arg) {
  (void)arg;
  weft_procpool_opts o = {.size = sizeof o, .workers = WORKERS};
  int rc = weft_procpool_new(&pool, &o);
  if (rc != 0)
    return rc;
  payload = strcmp(mode, "mib") == 0 ? (size_t)1 << 20 : 8;
  buf = calloc(1, payload);
  /* Warm up: both workers started and busy once. */
  if ((rc = run_calls(WORKERS * 2, 2000)) != 0)
    goto out;
  if (strcmp(mode, "seq") == 0) {
    double *lat = calloc((size_t)n, sizeof *lat);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n && rc == 0; i++) {
      uint64_t a = now_ns();
      rc = one();
      lat[i] = (double)(now_ns() - a) / 1e3;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    printf("calls_per_s=%.0f us_per_call=%.2f p50_us=%.2f\n", (double)n / secs,
           secs * 1e6 / (double)n, lat[n / 2]);
    free(lat);
  } else if (strcmp(mode, "inflight") == 0 || strcmp(mode, "mib") == 0) {
    int inflight = strcmp(mode, "mib") == 0 ? 4 : 64;
    uint64_t t0 = now_ns();
    rc = run_calls(inflight, n);
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("calls_per_s=%.0f us_per_call=%.2f\n", (double)n / secs,
           secs * 1e6 / (double)n);
  } else {
    uint64_t t0 = now_ns();
    long want = count_primes(0, n);
    double loop_s = (double)(now_ns() - t0) / 1e9;
    piece ps[16];
    weft_call calls[16];
    for (int i = 0; i < 16; i++) {
      ps[i] = (piece){.r = {n / 16 * i, i == 15 ? n : n / 16 * (i + 1)}};
      calls[i] = (weft_call){.fn = piece_task, .arg = &ps[i]};
    }
    t0 = now_ns();
    rc = weft_gather(calls, 16);
    double pool_s = (double)(now_ns() - t0) / 1e9;
    long got = 0;
    for (int i = 0; i < 16; i++)
      got += ps[i].c;
    if (rc == 0 && got != want)
      rc = WEFT_EPROTO;
    printf("loop_s=%.3f pool_s=%.3f speedup=%.2f\n", loop_s, pool_s,
           loop_s / pool_s);
  }
out:
  free(buf);
  weft_procpool_free(pool);
  return rc;
}

int main(int argc, char **argv) {
  weft_proc_main();
  if (argc != 3) {
    fprintf(stderr, "usage: %s seq|inflight|mib|cpu N\n", argv[0]);
    return 2;
  }
  mode = argv[1];
  n = atol(argv[2]);
  int rc = weft_run(bench, NULL);
  if (rc != 0)
    fprintf(stderr, "%s: %s: %s\n", argv[0], weft_strerror(rc),
            weft_proc_errmsg());
  return rc != 0;
}
