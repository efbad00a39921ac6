/* weft tests — offload under failing allocations (nghttp2's failmalloc): the
 * Nth allocation fails, for every N until a scenario that uses a thread pool,
 * file I/O, a line reader and a process pool runs through. Each run must end
 * with 0 or a clean WEFT_ENOMEM, the loop clean, and every allocation made
 * during the run freed (weft_run frees the loop, so nothing of it may
 * be left). */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <weft/offload.h>

#include "test.h"

/* Counters are atomic: pool threads free what the loop allocated. */
static atomic_long live;      /* allocations not yet freed */
static atomic_long countdown; /* allocations left before failing; <0: never */
static atomic_long failures;  /* allocations refused */

static bool take(void) {
  long c = atomic_load(&countdown);
  while (c > 0 && !atomic_compare_exchange_weak(&countdown, &c, c - 1)) {
  }
  if (c == 0) {
    atomic_fetch_add(&failures, 1);
    return false;
  }
  return true;
}

static void *f_malloc(size_t n) {
  if (!take())
    return NULL;
  void *p = malloc(n);
  if (p)
    atomic_fetch_add(&live, 1);
  return p;
}
static void *f_realloc(void *p, size_t n) {
  if (p == NULL)
    return f_malloc(n);
  if (!take())
    return NULL;
  return realloc(p, n);
}
static void f_free(void *p) {
  if (p) {
    atomic_fetch_sub(&live, 1);
    free(p);
  }
}

static char path[256];

WEFT_PROC_FUNCTION(echo) { return weft_bytes_set(out, in, in_len); }

static intptr_t twice(void *arg) { return (intptr_t)arg * 2; }

/* Uses a bit of everything; stops at the first failure. */
static int scenario(void *arg) {
  (void)arg;
  weft_threadpool_opts to = {.size = sizeof to, .threads = 1};
  weft_threadpool *tp = NULL;
  int rc = weft_threadpool_new(&tp, &to);
  if (rc != 0)
    return rc;
  weft_thread_opts o = {.size = sizeof o, .pool = tp};
  intptr_t r = 0;
  rc = weft_to_thread_opts(twice, (void *)21, &r, &o);
  if (rc == 0 && r != 42)
    rc = WEFT_EPROTO;
  if (weft_threadpool_shutdown(tp, 5) != 0 && rc == 0)
    rc = WEFT_EPROTO;
  weft_threadpool_free(tp);
  if (rc != 0)
    return rc;

  if ((rc = weft_fs_write_file(path, "one\ntwo\n", 8, 0)) != 0)
    return rc;
  weft_bytes b = {0};
  if ((rc = weft_fs_read_file(path, &b, 0)) != 0)
    return rc;
  weft_bytes_free(&b);
  weft_file *f;
  if ((rc = weft_file_open(&f, path, O_RDONLY, 0)) != 0)
    return rc;
  weft_lines *lr = NULL;
  rc = weft_lines_new(&lr, f, 0);
  const char *line;
  size_t len;
  int n = 0;
  while (rc == 0 && (rc = weft_lines_next(lr, &line, &len)) == 0)
    n++;
  if (rc == WEFT_EOF)
    rc = n == 2 ? 0 : WEFT_EPROTO;
  weft_lines_free(lr);
  int crc = weft_file_close(f);
  if (rc != 0 || crc != 0)
    return rc ? rc : crc;

  weft_procpool_opts po = {.size = sizeof po, .workers = 1};
  weft_procpool *pp;
  if ((rc = weft_procpool_new(&pp, &po)) != 0)
    return rc;
  rc = weft_proc_call(pp, "echo", "hi", 2, &b);
  if (rc == 0 && (b.len != 2 || memcmp(b.data, "hi", 2) != 0))
    rc = WEFT_EPROTO;
  weft_bytes_free(&b);
  weft_procpool_free(pp);
  return rc;
}

static void test_failmalloc(void) {
  weft_allocator a = {f_malloc, f_realloc, f_free};
  T_OK(weft_set_allocator(&a));
  /* A first run makes the process-wide file pool, which stays. */
  atomic_store(&countdown, -1);
  T_OK(weft_run(scenario, NULL));
  long base = atomic_load(&live);
  int enomem = 0;
  for (long n = 0;; n++) {
    atomic_store(&countdown, n);
    atomic_store(&failures, 0);
    int rc = weft_run(scenario, NULL);
    atomic_store(&countdown, -1);
    if (rc != 0 && rc != WEFT_ENOMEM)
      t__fail(__FILE__, __LINE__, "allocation %ld failing: %s", n,
              weft_err_name(rc));
    /* Everything allocated during the run is freed by its end (a worker
     * thread may still be dropping its last reference: give it a moment). */
    for (int i = 0; i < 100 && atomic_load(&live) != base; i++)
      usleep(1000);
    if (atomic_load(&live) != base)
      t__fail(__FILE__, __LINE__, "allocation %ld failing: %ld blocks leaked",
              n, atomic_load(&live) - base);
    if (rc == WEFT_ENOMEM)
      enomem++;
    if (atomic_load(&failures) == 0) {
      T_OK(rc); /* nothing failed: the scenario ran through */
      break;
    }
    if (n > 2000) {
      t__fail(__FILE__, __LINE__, "no end in sight");
      break;
    }
  }
  T_GT(enomem, 10);
  T_OK(weft_set_allocator(NULL));
}

static const t_case cases[] = {
    {"failmalloc", test_failmalloc},
    {NULL, NULL},
};

int main(void) {
  weft_proc_main();
  snprintf(path, sizeof path, "%s/weft-alloc-%d",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  int rc = t_main("offload-alloc", cases);
  unlink(path);
  return rc;
}
