/* weft — preparing a fresh context for the assembly backends. The stack is
 * laid out exactly as weft__ctx_switch leaves a suspended one, so the first
 * switch to it "returns" into weft__ctx_start, which calls entry(arg). */
#include "ctx.h"

#include <stdint.h>

#if !defined(WEFT_CTX_UCONTEXT)

void weft__ctx_start(void);

int weft__ctx_make(weft__ctx *c, char *lo, char *hi, void (*entry)(void *),
                   void *arg) {
  (void)lo;
  uintptr_t top = (uintptr_t)hi & ~(uintptr_t)15;
#if defined(__x86_64__)
  /* Six saved registers, then the return address. After the `ret`, rsp is
   * top - 16: 16-byte aligned before weft__ctx_start's call, as the ABI
   * wants. */
  void **sp = (void **)(top - 72);
  sp[0] = 0;                       /* r15 */
  sp[1] = 0;                       /* r14 */
  sp[2] = (void *)entry;           /* r13 */
  sp[3] = arg;                     /* r12 */
  sp[4] = 0;                       /* rbx */
  sp[5] = 0;                       /* rbp: ends frame-pointer walks */
  sp[6] = (void *)weft__ctx_start; /* return address */
  sp[7] = 0;
  c->sp = sp;
#elif defined(__aarch64__)
  /* The 160-byte frame of weft__ctx_switch: x19 = arg, x20 = entry,
   * x29 = 0, x30 = weft__ctx_start. sp ends up at top (16-aligned). */
  void **sp = (void **)(top - 160);
  for (int i = 0; i < 20; i++)
    sp[i] = 0;
  sp[0] = arg;
  sp[1] = (void *)entry;
  sp[11] = (void *)weft__ctx_start;
  c->sp = sp;
#else
#error                                                                         \
    "no assembly context backend for this target: configure with -DWEFT_CONTEXT=ucontext"
#endif
  return 0;
}

#endif
