/* bench-tasks: how much a task costs, in time and memory. The Python peer
 * (bench_tasks.py) does the same work with asyncio, with or without uvloop.
 *
 *   bench-tasks alive N   N tasks alive at once, each yields once, all
 *                         gathered (asyncio.gather)
 *   bench-tasks waves N   the same N tasks in waves of 1000 (stacks reused)
 *   bench-tasks spawn N   N tasks spawned, then each joined; they return
 *                         without suspending
 *   bench-tasks pages N   no tasks: brings in one fresh page in each of N
 *                         64 KiB slots, as N live stacks need. The floor
 *                         under `alive` on this machine, for the report.
 *
 * Prints one line of key=value pairs that tests/bench/run reads:
 *   ns_per_task  wall time of the work divided by N
 *   peak_kib     VmHWM at the end (the process's peak RSS)
 *   base_kib     VmRSS just before the work started
 *   live         tasks alive at the peak (N, or the wave size)
 *   bytes_per_live  (peak - base) / live
 * Only the work is timed: loop creation and process start are not, on
 * either side.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <weft/weft.h>

#define WAVE 1000

static long n_tasks;
static const char *mode;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A field of /proc/self/status in KiB ("VmHWM", "VmRSS"), or -1. */
static long status_kib(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  char line[256];
  size_t n = strlen(field);
  long v = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      v = strtol(line + n + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

/* The task body of `alive` and `waves`: await asyncio.sleep(0). */
static int yield_once(void *arg) {
  (void)arg;
  return weft_yield();
}

/* The task body of `spawn`: returns at once. */
static int ret_zero(void *arg) {
  (void)arg;
  return 0;
}

static int gather_n(weft_call *calls, long n) {
  for (long i = 0; i < n; i++)
    calls[i] = (weft_call){.fn = yield_once, .arg = NULL};
  return weft_gather(calls, (size_t)n);
}

/* Maps chunks of 64 KiB slots as the stack pool does (64 slots, then as
 * many as all before, up to 1 024) and brings in a fresh page at the top of
 * every slot: what the kernel must do for each live stack however the
 * runtime is written. The pages come in the cheapest way the kernel offers,
 * which is also the pool's: one process_madvise(MADV_POPULATE_WRITE) call
 * a chunk (Linux 6.14; about 100 ns a page less than a page fault each
 * here), else a write to each. The byte written to each page afterwards is
 * what a task's first switch does. Returns 0 or -1. */
static int touch_pages(long n) {
  const size_t slot = 64 * 1024, pg = 4096;
  static struct iovec iov[1024];
  for (long i = 0; i < n;) {
    size_t per = i < 64 ? 64 : i > 1024 ? 1024 : (size_t)i;
    char *m = mmap(NULL, slot * per, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
      return -1;
    (void)madvise(m, slot * per, MADV_NOHUGEPAGE);
#if defined(SYS_process_madvise)
    size_t k = n - i < (long)per ? (size_t)(n - i) : per;
    for (size_t j = 0; j < k; j++)
      iov[j] = (struct iovec){m + (j + 1) * slot - pg, pg};
    (void)syscall(SYS_process_madvise, -10000 /* PIDFD_SELF */, iov, k,
                  23 /* MADV_POPULATE_WRITE */, 0u);
#endif
    for (size_t j = 0; j < per && i < n; j++, i++)
      m[(j + 1) * slot - 64] = 1;
  }
  return 0;
}

static int bench_main(void *arg) {
  (void)arg;
  long n = n_tasks, live = n;
  int rc = 0;
  weft_call *calls = NULL;
  weft_task **tasks = NULL;
  /* The arrays the work needs are made inside the timed region, as the
   * Python side builds its lists there too. */
  long base = status_kib("VmRSS");
  uint64_t t0 = now_ns();
  if (strcmp(mode, "alive") == 0) {
    calls = malloc((size_t)n * sizeof *calls);
    rc = calls ? gather_n(calls, n) : WEFT_ENOMEM;
  } else if (strcmp(mode, "waves") == 0) {
    live = n < WAVE ? n : WAVE;
    calls = malloc((size_t)live * sizeof *calls);
    rc = calls ? 0 : WEFT_ENOMEM;
    for (long done = 0; done < n && rc == 0; done += live)
      rc = gather_n(calls, n - done < live ? n - done : live);
  } else if (strcmp(mode, "pages") == 0) {
    rc = touch_pages(n) == 0 ? 0 : WEFT_ENOMEM;
  } else {
    tasks = malloc((size_t)n * sizeof *tasks);
    rc = tasks ? 0 : WEFT_ENOMEM;
    long spawned = 0;
    for (; spawned < n && rc == 0; spawned++)
      rc = weft_spawn(&tasks[spawned], ret_zero, NULL);
    if (rc != 0)
      spawned--;
    for (long i = 0; i < spawned; i++) {
      int r = weft_join(tasks[i], NULL);
      if (rc == 0)
        rc = r;
    }
  }
  uint64_t t1 = now_ns();
  free(calls);
  free(tasks);
  if (rc != 0) {
    fprintf(stderr, "bench-tasks: %s: %s\n", mode, weft_strerror(rc));
    return 1;
  }
  long peak = status_kib("VmHWM");
  printf("ns_per_task=%.1f peak_kib=%ld base_kib=%ld live=%ld "
         "bytes_per_live=%.0f\n",
         (double)(t1 - t0) / (double)n, peak, base, live,
         (double)(peak - base) * 1024.0 / (double)live);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3 ||
      (strcmp(argv[1], "alive") != 0 && strcmp(argv[1], "waves") != 0 &&
       strcmp(argv[1], "spawn") != 0 && strcmp(argv[1], "pages") != 0)) {
    fprintf(stderr, "usage: %s alive|waves|spawn|pages N\n", argv[0]);
    return 2;
  }
  mode = argv[1];
  n_tasks = strtol(argv[2], NULL, 10);
  if (n_tasks <= 0) {
    fprintf(stderr, "bench-tasks: N must be > 0\n");
    return 2;
  }
  return weft_run(bench_main, NULL);
}
