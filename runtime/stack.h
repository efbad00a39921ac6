/* weft — task stacks: carved from large mappings, guarded, pooled.
 *
 * Each stack is a slot of `size` bytes: its lowest page is a guard, its top
 * 16 bytes a canary, the rest is usable. Slots are carved out of chunks of
 * many slots (one mapping each), so a million live stacks do not need a
 * million VMAs (vm.max_map_count defaults to 65530). The guard page is made
 * with MADV_GUARD_INSTALL where the kernel has it (Linux 6.13+: no VMA
 * split), else with mprotect while a per-loop budget lasts (each such guard
 * costs two VMAs), else the slot relies on its canary and stack-pointer
 * checks. docs/internals/stacks.md has the reasoning.
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  WEFT__STACK_NONE = 0,
  WEFT__STACK_GUARDED, /* pool slot with a hardware guard page */
  WEFT__STACK_CANARY,  /* pool slot checked by canary only */
  WEFT__STACK_OWN      /* its own mapping (non-default size) */
};

typedef struct weft__stack {
  char *lo; /* lowest usable byte, just above the guard page */
  char *hi; /* one past the usable top (the canary sits at hi) */
  uint8_t kind;
  bool guarded; /* a hardware guard page lies below lo */
} weft__stack;

typedef struct weft__chunk {
  char *base;
  size_t len;
} weft__chunk;

typedef struct weft__stack_pool {
  size_t size;      /* slot size, a page multiple */
  size_t cache_max; /* hot stacks kept mapped */
  long mprotect_budget;
  int madv_guard;    /* -1 unknown, 0 no, 1 MADV_GUARD_INSTALL works */
  int batch_madvise; /* -1 unknown, 0 no, 1 process_madvise on self works */
  weft__stack *hot;
  size_t hot_len, hot_cap;
  weft__stack *cold; /* pages given back; reusable without a new mapping */
  size_t cold_len, cold_cap;
  weft__chunk *chunks;
  size_t chunks_len, chunks_cap;
  char *carve; /* next slot to carve in the newest chunk */
  char *carve_end;
  bool carve_guarded;    /* the newest chunk's slots get hardware guards */
  bool carve_preguarded; /* ... and have them already (batch_guard) */
  uint64_t mapped;       /* slots carved so far */
} weft__stack_pool;

extern size_t weft__page_size;

void weft__stack_pool_init(weft__stack_pool *p, size_t size, size_t cache_max,
                           long mprotect_budget);
void weft__stack_pool_fini(weft__stack_pool *p);
/* Takes a stack of `size` bytes (0: the pool's size). Returns 0 or -ENOMEM. */
int weft__stack_get(weft__stack_pool *p, size_t size, weft__stack *out);
/* Gives a stack back. Returns false when its canary was overwritten. */
bool weft__stack_put(weft__stack_pool *p, const weft__stack *s);

/* The scheduler's fast paths: a stack of the pool's size from the hot list,
 * and one given back to it, without a call. They fall back to the functions
 * above; a stack given back this way is not checked (the scheduler checked
 * its canary when its task returned). weft__stack_put_hot returns false,
 * doing nothing, when the stack needs more than a store (its own mapping to
 * unmap, or a full hot list to grow): the caller then gives it back with
 * weft__stack_put, off the stack if it stands on it. */
static inline int weft__stack_take(weft__stack_pool *p, size_t size,
                                   weft__stack *out) {
  if (size == 0 && p->hot_len > 0) {
    *out = p->hot[--p->hot_len];
    return 0;
  }
  return weft__stack_get(p, size, out);
}
static inline bool weft__stack_put_hot(weft__stack_pool *p,
                                       const weft__stack *s) {
  if (s->kind == WEFT__STACK_OWN || p->hot_len == p->hot_cap)
    return false;
  p->hot[p->hot_len++] = *s;
  return true;
}
/* Returns hot stacks beyond cache_max to the kernel (called when idle). */
void weft__stack_trim(weft__stack_pool *p);
size_t weft__stack_round(size_t size);

#define WEFT__CANARY_SIZE 16
static inline uint64_t weft__canary_value(const char *hi) {
  return 0x5afe57ac0ffee5edULL ^ (uint64_t)(uintptr_t)hi;
}
static inline bool weft__stack_canary_ok(const weft__stack *s) {
  const uint64_t *c = (const uint64_t *)s->hi;
  uint64_t v = weft__canary_value(s->hi);
  return c[0] == v && c[1] == ~v;
}
static inline void weft__stack_canary_set(const weft__stack *s) {
  uint64_t *c = (uint64_t *)s->hi;
  uint64_t v = weft__canary_value(s->hi);
  c[0] = v;
  c[1] = ~v;
}

#endif
