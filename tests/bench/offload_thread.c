/* bench-offload-thread: thread-pool round trips, weft against libuv.
 *
 *   bench-offload-thread weft|libuv seq N       one job at a time: submit an
 *                                                empty job, get its result
 *                                                back on the loop, N times
 *   bench-offload-thread weft|libuv inflight N  64 jobs in flight, N in all
 *
 * Both sides use a pool of 4 threads (libuv's default, and weft's). Prints
 * one key=value line: p50_us and p99_us (seq), jobs_per_s, and cpu_us_per_job
 * (the process's CPU time, all threads, divided by the jobs: what spinning
 * costs), plus idle_cpu_ms: CPU the process used in the 500 ms that follow
 * the first 50 ms after the last job, which must be ~0 (bounded spinning).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <weft/thread.h>
#include <weft/weft.h>

#define INFLIGHT 64
#define WARMUP 2000

static long n_jobs;
static double *lat; /* µs, seq mode */
static long nlat;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(bool seq, double secs, double cpu, double idle_cpu) {
  if (seq) {
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_d);
    printf("p50_us=%.2f p99_us=%.2f ", lat[nlat / 2], lat[nlat * 99 / 100]);
  }
  printf("jobs_per_s=%.0f cpu_us_per_job=%.2f idle_cpu_ms=%.2f\n",
         (double)n_jobs / secs, cpu * 1e6 / (double)n_jobs, idle_cpu * 1e3);
}

/* ---- weft ---- */

static intptr_t empty_job(void *arg) { return (intptr_t)arg; }

static int w_seq(void *arg) {
  (void)arg;
  for (int i = 0; i < WARMUP; i++)
    if (weft_to_thread(empty_job, NULL, NULL) != 0)
      return 1;
  double c0 = cpu_s();
  uint64_t t0 = now_ns();
  for (long i = 0; i < n_jobs; i++) {
    uint64_t a = now_ns();
    intptr_t r = 0;
    if (weft_to_thread(empty_job, (void *)i, &r) != 0 || r != i)
      return 1;
    lat[nlat++] = (double)(now_ns() - a) / 1e3;
  }
  double secs = (double)(now_ns() - t0) / 1e9, cpu = cpu_s() - c0;
  if (weft_sleep(0.05) != 0)
    return 1;
  double i0 = cpu_s();
  if (weft_sleep(0.5) != 0)
    return 1;
  report(true, secs, cpu, cpu_s() - i0);
  return 0;
}

static long w_left;

static int w_worker(void *arg) {
  (void)arg;
  while (w_left > 0) {
    w_left--;
    if (weft_to_thread(empty_job, NULL, NULL) != 0)
      return 1;
  }
  return 0;
}

static int w_inflight(void *arg) {
  (void)arg;
  weft_call calls[INFLIGHT];
  for (int round = 0; round < 2; round++) {
    w_left = round == 0 ? WARMUP * 10 : n_jobs;
    for (int i = 0; i < INFLIGHT; i++)
      calls[i] = (weft_call){.fn = w_worker};
    double c0 = cpu_s();
    uint64_t t0 = now_ns();
    if (weft_gather(calls, INFLIGHT) != 0)
      return 1;
    if (round == 1) {
      double secs = (double)(now_ns() - t0) / 1e9, cpu = cpu_s() - c0;
      if (weft_sleep(0.05) != 0)
        return 1;
      double i0 = cpu_s();
      if (weft_sleep(0.5) != 0)
        return 1;
      report(false, secs, cpu, cpu_s() - i0);
    }
  }
  return 0;
}

/* ---- libuv ---- */

static uv_loop_t *uvl;
static long uv_started, uv_done, uv_target;
static uint64_t uv_t0;
typedef struct ureq {
  uv_work_t w;
  uint64_t t;
} ureq;

static void u_work(uv_work_t *w) { (void)w; }

static void u_after(uv_work_t *w, int status);

static void u_submit(ureq *r) {
  uv_started++;
  r->t = now_ns();
  uv_queue_work(uvl, &r->w, u_work, u_after);
}

static bool u_seq;

static void u_after(uv_work_t *w, int status) {
  (void)status;
  ureq *r = (ureq *)w;
  uv_done++;
  if (u_seq && uv_done > WARMUP)
    lat[nlat++] = (double)(now_ns() - r->t) / 1e3;
  if (uv_started < uv_target)
    u_submit(r);
}

static int run_libuv(bool seq) {
  uvl = uv_default_loop();
  u_seq = seq;
  int inflight = seq ? 1 : INFLIGHT;
  ureq *reqs = calloc((size_t)inflight, sizeof *reqs);
  /* Warm up the pool, then measure. */
  uv_target = WARMUP * (seq ? 1 : 10);
  for (int i = 0; i < inflight; i++)
    u_submit(&reqs[i]);
  uv_run(uvl, UV_RUN_DEFAULT);
  uv_started = uv_done = 0;
  if (seq)
    uv_done = WARMUP + 1; /* record every job from here */
  uv_target = n_jobs;
  double c0 = cpu_s();
  uv_t0 = now_ns();
  for (int i = 0; i < inflight; i++)
    u_submit(&reqs[i]);
  uv_run(uvl, UV_RUN_DEFAULT);
  double secs = (double)(now_ns() - uv_t0) / 1e9, cpu = cpu_s() - c0;
  usleep(50000);
  double i0 = cpu_s();
  usleep(500000);
  report(seq, secs, cpu, cpu_s() - i0);
  free(reqs);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[2], "seq") && strcmp(argv[2], "inflight"))) {
    fprintf(stderr, "usage: %s weft|libuv seq|inflight N\n", argv[0]);
    return 2;
  }
  n_jobs = atol(argv[3]);
  bool seq = strcmp(argv[2], "seq") == 0;
  lat = calloc((size_t)n_jobs + 1, sizeof *lat);
  if (strcmp(argv[1], "libuv") == 0)
    return run_libuv(seq);
  return weft_run(seq ? w_seq : w_inflight, NULL);
}
