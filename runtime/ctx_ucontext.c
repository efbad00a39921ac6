/* weft — the portable context backend: ucontext. Slower than the assembly
 * (swapcontext saves the signal mask with a system call each switch) but
 * correct on any POSIX target that has it. */
#define _GNU_SOURCE
#include "ctx.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

static void trampoline(unsigned hi, unsigned lo, unsigned ehi, unsigned elo) {
  /* makecontext passes ints; rebuild the two pointers from halves. */
  void *arg = (void *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
  void (*entry)(void *) =
      (void (*)(void *))(((uintptr_t)ehi << 32) | (uintptr_t)elo);
  entry(arg);
  abort();
}

int weft__ctx_make(weft__ctx *c, char *lo, char *hi, void (*entry)(void *),
                   void *arg) {
  c->uc = weft__malloc(sizeof *c->uc);
  if (c->uc == NULL)
    return -ENOMEM;
  getcontext(c->uc);
  c->uc->uc_stack.ss_sp = lo;
  c->uc->uc_stack.ss_size = (size_t)(hi - lo);
  c->uc->uc_link = NULL;
  uintptr_t a = (uintptr_t)arg, e = (uintptr_t)entry;
  makecontext(c->uc, (void (*)(void))trampoline, 4, (unsigned)(a >> 32),
              (unsigned)a, (unsigned)(e >> 32), (unsigned)e);
  return 0;
}

void weft__ctx_free(weft__ctx *c) {
  if (c->uc != &c->own)
    weft__free(c->uc);
  c->uc = NULL;
}

/* The value handed to the context being resumed; read by it as soon as its
 * swapcontext returns, before anything else can switch. */
static __thread int handed;

int weft__ctx_switch(weft__ctx *from, weft__ctx *to, int value) {
  if (from->uc == NULL)
    from->uc = &from->own; /* the thread's own context, made on first use */
  handed = value;
  swapcontext(from->uc, to->uc);
  return handed;
}

void weft__ctx_jump(weft__ctx *to, int value) {
  handed = value;
  setcontext(to->uc);
  abort();
}
