/* runtime-ctx: the context-switch backends on their own, without the rest
 * of the runtime, so the same file checks the x86-64 assembly, the ucontext
 * fallback, and the aarch64 assembly (cross-compiled and run under qemu;
 * tests/CMakeLists.txt builds each variant the machine can run).
 *
 * What a switch must keep: every callee-saved register (integer and, on
 * aarch64, d8-d15), the stack alignment the ABI promises at a call, the
 * order of control between contexts, and the value handed to the context
 * resumed. Values live across each switch in
 * locals the compiler keeps in callee-saved registers; a backend that lost
 * one would change them. No CUnit here: the aarch64 build has no target
 * libraries beyond libc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctx.h"

static int failures;
#define CHECK_EQ(a, b)                                                         \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "FAIL %s:%d: %s == %s (%lld vs %lld)\n", __FILE__,       \
              __LINE__, #a, #b, a_, b_);                                       \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* Every backend allocates through these (ucontext only). */
void *weft__malloc(size_t n) { return malloc(n); }
void weft__free(void *p) { free(p); }

static weft__ctx main_ctx, a_ctx, b_ctx;
static int trace[64], ntrace;
static int handed; /* the value the last switch or jump handed over */

/* Switches, handing over a fresh value, and checks the one received when
 * resumed. */
static int hand(weft__ctx *self, weft__ctx *to) {
  int v = ++handed * 7;
  return weft__ctx_switch(self, to, v);
}
#define CHECK_HANDED(got) CHECK_EQ(got, handed * 7)

/* Ten integers and eight doubles made from `seed`, live across `call`, then
 * summed: wherever the compiler keeps them (callee-saved registers or the
 * stack), the switch in `call` must give them back. expect() is the sum. */
#define CHURN_AROUND(seed, call)                                               \
  long i0 = seed * 3 + 1, i1 = seed * 5 + 2, i2 = seed * 7 + 3,                \
       i3 = seed * 11 + 4, i4 = seed * 13 + 5, i5 = seed * 17 + 6,             \
       i6 = seed * 19 + 7, i7 = seed * 23 + 8, i8 = seed * 29 + 9,             \
       i9 = seed * 31 + 10;                                                    \
  double d0 = seed * 0.5, d1 = seed * 1.5, d2 = seed * 2.5, d3 = seed * 3.5,   \
         d4 = seed * 4.5, d5 = seed * 5.5, d6 = seed * 6.5, d7 = seed * 7.5;   \
  call;                                                                        \
  long sum = i0 + i1 * 2 + i2 * 3 + i3 * 4 + i4 * 5 + i5 * 6 + i6 * 7 +        \
             i7 * 8 + i8 * 9 + i9 * 10;                                        \
  double dsum =                                                                \
      d0 + d1 * 2 + d2 * 3 + d3 * 4 + d4 * 5 + d5 * 6 + d6 * 7 + d7 * 8;       \
  return sum + (long)dsum

static __attribute__((noinline)) long churn(weft__ctx *self, weft__ctx *to,
                                            long seed) {
  CHURN_AROUND(seed, CHECK_HANDED(hand(self, to)));
}

static long expect(long seed) {
  long sum = (seed * 3 + 1) + (seed * 5 + 2) * 2 + (seed * 7 + 3) * 3 +
             (seed * 11 + 4) * 4 + (seed * 13 + 5) * 5 + (seed * 17 + 6) * 6 +
             (seed * 19 + 7) * 7 + (seed * 23 + 8) * 8 + (seed * 29 + 9) * 9 +
             (seed * 31 + 10) * 10;
  double dsum = seed * 0.5 + seed * 1.5 * 2 + seed * 2.5 * 3 + seed * 3.5 * 4 +
                seed * 4.5 * 5 + seed * 5.5 * 6 + seed * 6.5 * 7 +
                seed * 7.5 * 8;
  return sum + (long)dsum;
}

/* A function whose frame needs 16-byte alignment: the compiler may use
 * aligned vector stores for it, which fault on a misaligned stack. */
static __attribute__((noinline)) int aligned_ok(void) {
  _Alignas(16) volatile char buf[32];
  buf[0] = 1;
  return ((uintptr_t)buf & 15) == 0 && buf[0] == 1;
}

static void entry_a(void *arg) {
  CHECK_EQ((long)(intptr_t)arg, 7);
  CHECK_EQ(aligned_ok(), 1);
  for (long i = 0; i < 1000; i++) {
    trace[ntrace++ & 63] = 'a';
    CHECK_EQ(churn(&a_ctx, &b_ctx, 100 + i), expect(100 + i));
  }
  weft__ctx_jump(&main_ctx, ++handed * 7);
}

static void entry_b(void *arg) {
  (void)arg;
  CHECK_EQ(aligned_ok(), 1);
  for (long i = 0; i < 1000; i++) {
    trace[ntrace++ & 63] = 'b';
    CHECK_EQ(churn(&b_ctx, i == 999 ? &main_ctx : &a_ctx, 200 + i),
             expect(200 + i));
  }
  weft__ctx_jump(&main_ctx, ++handed * 7);
}

#if defined(WEFT__CTX_HAVE_START)
/* churn around a switch that boots a new context. */
static __attribute__((noinline)) long churn_start(weft__ctx *self, char *hi,
                                                  void (*entry)(void *),
                                                  void *arg, long seed) {
  CHURN_AROUND(seed,
               CHECK_HANDED(weft__ctx_switch_start(self, hi, entry, arg)));
}

static weft__ctx c_ctx;
static char *sc_hi;

static void entry_d(void *arg) {
  CHECK_EQ((long)(intptr_t)arg, 11);
  CHECK_EQ(aligned_ok(), 1);
  trace[ntrace++ & 63] = 'd';
  weft__ctx_jump(&main_ctx, ++handed * 7);
}

static void entry_c(void *arg) {
  CHECK_EQ((long)(intptr_t)arg, 9);
  CHECK_EQ(aligned_ok(), 1);
  trace[ntrace++ & 63] = 'c';
  CHECK_EQ(churn(&c_ctx, &main_ctx, 400), expect(400));
  /* Hand this very stack to a new context, as a finished task does. */
  weft__ctx_jump_start(sc_hi, entry_d, (void *)11);
}
#endif

int main(void) {
  size_t size = 64 * 1024;
  char *sa = malloc(size), *sb = malloc(size);
  if (sa == NULL || sb == NULL)
    return 2;
  CHECK_EQ(weft__ctx_make(&a_ctx, sa, sa + size, entry_a, (void *)7), 0);
  CHECK_EQ(weft__ctx_make(&b_ctx, sb, sb + size, entry_b, NULL), 0);
  /* main -> a -> b -> a -> ... -> b -> main: main's own values must
   * survive the 2 000 switches in between. */
  CHECK_EQ(churn(&main_ctx, &a_ctx, 1), expect(1));
  CHECK_EQ(ntrace, 2000);
  CHECK_EQ(trace[0], 'a');
  CHECK_EQ(trace[1], 'b');
  /* b is suspended in its last churn: resume it so it runs to its end and
   * jumps back here. a stays suspended, as a cancelled-and-dropped context
   * may. */
  CHECK_HANDED(hand(&main_ctx, &b_ctx));
  CHECK_EQ(ntrace, 2000);
  weft__ctx_free(&a_ctx);
  weft__ctx_free(&b_ctx);
  free(sa);
  free(sb);
#if defined(WEFT__CTX_HAVE_START)
  /* main boots c on a fresh stack (main's values kept), c switches back,
   * main resumes c, and c boots d on its own stack, which returns to main.
   * An odd top checks that the boot aligns it. */
  char *sc = malloc(size);
  if (sc == NULL)
    return 2;
  sc_hi = sc + size - 24;
  ntrace = 0;
  CHECK_EQ(churn_start(&main_ctx, sc_hi + 3, entry_c, (void *)9, 3), expect(3));
  CHECK_EQ(ntrace, 1);
  CHECK_HANDED(hand(&main_ctx, &c_ctx));
  CHECK_EQ(ntrace, 2);
  CHECK_EQ(trace[0], 'c');
  CHECK_EQ(trace[1], 'd');
  free(sc);
#endif
  if (failures == 0)
    printf("runtime-ctx: 2 000 switches, registers and alignment kept\n");
  return failures ? 1 : 0;
}
