/* weft tests — CUnit glue: assertion helpers that print both values on
 * failure (libuv test/task.h), a registration table per file, and a main
 * that runs the file's suite and exits non-zero on any failure.
 *
 * A test file looks like:
 *   static void test_x(void) { T_EQ(1 + 1, 2); }
 *   static const t_case cases[] = {{"x", test_x}, {NULL, NULL}};
 *   T_MAIN("runtime-task", cases)
 */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/weft.h>

typedef struct t_case {
  const char *name;
  void (*fn)(void);
} t_case;

static inline void t__fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static inline void t__fail(const char *file, int line, const char *fmt, ...) {
  static char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, buf);
  CU_assertImplementation(CU_FALSE, (unsigned)line, buf, file, "", CU_FALSE);
}

/* Numeric comparisons (integers or floating point: long double holds
 * every 64-bit integer exactly); both sides are printed on failure. */
#define T_CMP(a, op, b)                                                        \
  do {                                                                         \
    long double t_a_ = (long double)(a), t_b_ = (long double)(b);              \
    if (!(t_a_ op t_b_))                                                       \
      t__fail(__FILE__, __LINE__, "%s %s %s (%.17Lg vs %.17Lg)", #a, #op, #b,  \
              t_a_, t_b_);                                                     \
  } while (0)
#define T_EQ(a, b) T_CMP(a, ==, b)
#define T_NE(a, b) T_CMP(a, !=, b)
#define T_LT(a, b) T_CMP(a, <, b)
#define T_LE(a, b) T_CMP(a, <=, b)
#define T_GT(a, b) T_CMP(a, >, b)
#define T_GE(a, b) T_CMP(a, >=, b)
/* A weft call that must return `want`; names both codes on failure. */
#define T_RC(call, want)                                                       \
  do {                                                                         \
    int t_rc_ = (call), t_w_ = (want);                                         \
    if (t_rc_ != t_w_)                                                         \
      t__fail(__FILE__, __LINE__, "%s returned %s (%d), want %s (%d)", #call,  \
              weft_err_name(t_rc_), t_rc_, weft_err_name(t_w_), t_w_);         \
  } while (0)
#define T_OK(call) T_RC(call, 0)
#define T_TRUE(x)                                                              \
  do {                                                                         \
    if (!(x))                                                                  \
      t__fail(__FILE__, __LINE__, "%s is false", #x);                          \
  } while (0)
#define T_FALSE(x) T_TRUE(!(x))
#define T_STREQ(a, b)                                                          \
  do {                                                                         \
    const char *t_a_ = (a), *t_b_ = (b);                                       \
    if (t_a_ == NULL || t_b_ == NULL || strcmp(t_a_, t_b_) != 0)               \
      t__fail(__FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", #a, #b,       \
              t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                 \
  } while (0)
#define T_NEAR(a, b, eps)                                                      \
  do {                                                                         \
    double t_a_ = (a), t_b_ = (b);                                             \
    if (!(t_a_ - t_b_ <= (eps) && t_b_ - t_a_ <= (eps)))                       \
      t__fail(__FILE__, __LINE__, "%s ~ %s (%g vs %g, eps %g)", #a, #b, t_a_,  \
              t_b_, (double)(eps));                                            \
  } while (0)

/* Runs `fn(arg)` as the main task of a fresh loop (with `opts`), then checks
 * that the loop is left with no tasks or objects: every test ends clean
 * (libuv's MAKE_VALGRIND_HAPPY). Returns main's result. */
static inline int t_run_opts(weft_task_fn fn, void *arg,
                             const weft_loop_opts *opts) {
  weft_loop *loop = NULL;
  int rc = weft_loop_new(&loop, opts);
  if (rc != 0) {
    t__fail(__FILE__, __LINE__, "weft_loop_new: %s", weft_err_name(rc));
    return rc;
  }
  int result = -1;
  rc = weft_loop_run(loop, fn, arg, &result);
  if (rc != 0)
    t__fail(__FILE__, __LINE__, "weft_loop_run: %s", weft_err_name(rc));
  weft_stats st;
  weft_loop_stats(loop, &st);
  if (st.tasks_alive != 0 || st.objects_alive != 0)
    t__fail(__FILE__, __LINE__, "loop left %llu tasks and %llu objects alive",
            (unsigned long long)st.tasks_alive,
            (unsigned long long)st.objects_alive);
  rc = weft_loop_free(loop);
  if (rc != 0)
    t__fail(__FILE__, __LINE__, "weft_loop_free: %s", weft_err_name(rc));
  return result;
}
static inline int t_run(weft_task_fn fn, void *arg) {
  return t_run_opts(fn, arg, NULL);
}
/* Same on a virtual clock: timers fire as soon as nothing else can run. */
static inline int t_run_virtual(weft_task_fn fn, void *arg) {
  weft_loop_opts o = {.size = sizeof o, .virtual_clock = true};
  return t_run_opts(fn, arg, &o);
}

static inline int t_main(const char *suite, const t_case *cases) {
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  CU_pSuite s = CU_add_suite(suite, NULL, NULL);
  /* T_ONLY=name runs one case, for debugging. */
  const char *only = getenv("T_ONLY");
  for (const t_case *c = cases; c->name; c++)
    if (only == NULL || strcmp(only, c->name) == 0)
      CU_add_test(s, c->name, c->fn);
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed =
      CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  CU_cleanup_registry();
  return failed ? 1 : 0;
}

#define T_MAIN(suite, cases)                                                   \
  int main(void) { return t_main((suite), (cases)); }

#endif
