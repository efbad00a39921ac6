/* runtime-alloc: the Nth allocation fails (nghttp2's failmalloc): every
 * call that allocates must return WEFT_ENOMEM cleanly, and nothing leaks. */
#include <stdlib.h>

#include "test.h"

static long live;      /* allocations not yet freed */
static long countdown; /* allocations left before failing; <0: never */
static long failures;  /* allocations refused */

static void *f_malloc(size_t n) {
  if (countdown == 0) {
    failures++;
    return NULL;
  }
  if (countdown > 0)
    countdown--;
  void *p = malloc(n);
  if (p)
    live++;
  return p;
}
static void *f_realloc(void *p, size_t n) {
  if (p == NULL)
    return f_malloc(n);
  if (countdown == 0) {
    failures++;
    return NULL;
  }
  if (countdown > 0)
    countdown--;
  return realloc(p, n);
}
static void f_free(void *p) {
  if (p) {
    live--;
    free(p);
  }
}

static int child(void *arg) {
  (void)arg;
  return weft_yield();
}

/* Uses a bit of everything, and gives up cleanly at the first ENOMEM. */
static int scenario(void *arg) {
  (void)arg;
  int rc;
  weft_task *t[8];
  int n = 0;
  weft_future *f = NULL;
  weft_group *g = NULL;
  for (; n < 8; n++)
    if ((rc = weft_spawn(&t[n], child, NULL)) != 0)
      goto out;
  if ((rc = weft_future_new(&f)) != 0)
    goto out;
  if ((rc = weft_group_new(&g)) != 0)
    goto out;
  for (int i = 0; i < 4; i++)
    if ((rc = weft_group_spawn(g, NULL, child, NULL)) != 0)
      break;
  {
    int wrc = weft_group_wait(g);
    if (rc == 0)
      rc = wrc;
  }
  if (rc == 0) {
    weft_call calls[3] = {{child, NULL, 0}, {child, NULL, 0}, {child, NULL, 0}};
    rc = weft_gather(calls, 3);
  }
  if (rc == 0) {
    weft_task *w;
    rc = weft_spawn(&w, child, NULL);
    if (rc == 0) {
      size_t idx;
      if (weft_wait_any(&w, 1, &idx) != 0 || weft_join(w, NULL) != 0)
        rc = WEFT_EIO; /* cannot happen: no allocation on these paths */
    }
  }
  if (rc == 0) {
    int r;
    rc = weft_wait_for(child, NULL, 10, &r);
  }
  if (rc == 0)
    rc = weft_task_set_name(weft_current(), "renamed");
out:
  for (int i = 0; i < n; i++) {
    int r;
    if (weft_join(t[i], &r) != 0)
      weft_detach(t[i]);
  }
  weft_group_free(g);
  weft_future_free(f);
  return rc;
}

static void test_every_allocation_fails_once(void) {
  weft_allocator a = {f_malloc, f_realloc, f_free};
  /* First count how many allocations a clean run makes. */
  T_OK(weft_set_allocator(&a));
  countdown = -1;
  live = 0;
  T_EQ(weft_run(scenario, NULL), 0);
  long baseline_live = live;
  T_EQ(baseline_live, 0);
  long ok_runs = 0, enomem_runs = 0;
  for (long k = 0; k < 400; k++) {
    countdown = k;
    failures = 0;
    live = 0;
    int rc = weft_run(scenario, NULL);
    if (failures == 0) {
      T_EQ(rc, 0);
      ok_runs++;
      break; /* past the last allocation of a run */
    }
    /* Some later allocations may fail too (countdown stays 0): every
     * failure must surface as ENOMEM or be absorbed, never a crash. */
    if (rc != 0 && rc != WEFT_ENOMEM)
      t__fail(__FILE__, __LINE__, "allocation %ld failed: run returned %s", k,
              weft_err_name(rc));
    if (rc == WEFT_ENOMEM)
      enomem_runs++;
    if (live != 0)
      t__fail(__FILE__, __LINE__, "allocation %ld failed: %ld blocks leaked", k,
              live);
  }
  T_EQ(ok_runs, 1);
  T_GT(enomem_runs, 5);
  T_OK(weft_set_allocator(NULL));
}

static void test_set_allocator_busy(void) {
  weft_loop *loop;
  T_OK(weft_loop_new(&loop, NULL));
  weft_allocator a = {f_malloc, f_realloc, f_free};
  T_RC(weft_set_allocator(&a), WEFT_EBUSY);
  T_OK(weft_loop_free(loop));
}

static const t_case cases[] = {
    {"every_allocation_fails_once", test_every_allocation_fails_once},
    {"set_allocator_busy", test_set_allocator_busy},
    {NULL, NULL}};

T_MAIN("runtime-alloc", cases)
