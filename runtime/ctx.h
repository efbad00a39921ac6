/* weft — context switching between task stacks.
 *
 * Two backends chosen by CMake: a few lines of assembly for x86-64 and
 * aarch64 (save the callee-saved registers on the old stack, swap stack
 * pointers, restore), and a ucontext fallback for other targets. The assembly
 * backend does not save the FPU control words (mxcsr, x87 cw, fpcr): tasks
 * share the thread's floating-point environment, as in libco and libdill.
 */
#ifndef WEFT_CTX_H
#define WEFT_CTX_H

#include <stddef.h>

#if defined(WEFT_CTX_UCONTEXT)
#include <ucontext.h>
typedef struct weft__ctx {
  ucontext_t *uc; /* allocated when the context is made; the thread's own
                     context uses `own` */
  ucontext_t own;
} weft__ctx;
#else
typedef struct weft__ctx {
  void *sp; /* saved stack pointer; the registers sit on the stack */
} weft__ctx;
#endif

/* Prepares `c` to run entry(arg) on the stack [lo, hi) the first time it is
 * switched to. entry must never return. Returns 0 or -ENOMEM (ucontext). */
int weft__ctx_make(weft__ctx *c, char *lo, char *hi, void (*entry)(void *),
                   void *arg);
/* Frees what ctx_make allocated (ucontext only). */
#if defined(WEFT_CTX_UCONTEXT)
void weft__ctx_free(weft__ctx *c);
#else
static inline void weft__ctx_free(weft__ctx *c) { (void)c; }
#endif

/* Saves the running context into `from` and resumes `to`, handing it
 * `value`: what the call that suspended `to` returns. Returns, once
 * something resumes `from`, the value that something handed over. */
int weft__ctx_switch(weft__ctx *from, weft__ctx *to, int value);
/* Resumes `to` with `value` without saving anything: the running stack is
 * dead. */
void weft__ctx_jump(weft__ctx *to, int value) __attribute__((noreturn));

#if !defined(WEFT_CTX_UCONTEXT)
/* What ctx_make followed by ctx_switch (or ctx_jump) does, without writing a
 * first frame: saves the running context into `from` (or nothing), then
 * calls entry(arg) on the stack whose top is `hi`. entry never returns.
 * weft__ctx_jump_start may be called on the stack it boots on: the running
 * frames are simply abandoned. weft__ctx_switch_start returns, like
 * weft__ctx_switch, the value handed over when `from` is resumed. */
#define WEFT__CTX_HAVE_START 1
int weft__ctx_switch_start(weft__ctx *from, char *hi, void (*entry)(void *),
                           void *arg);
void weft__ctx_jump_start(char *hi, void (*entry)(void *), void *arg)
    __attribute__((noreturn));
#endif

#endif
