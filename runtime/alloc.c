/* weft — the allocator hook. One place decides how weft allocates, so a test
 * can make the Nth allocation fail and check for a clean WEFT_ENOMEM, and a
 * program can route weft and libevent through its own allocator. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static weft_allocator alloc = {malloc, realloc, free};

/* Loops alive in the process: the hook may not change under them. */
int weft__loops_alive;

int weft_set_allocator(const weft_allocator *a) {
  if (__atomic_load_n(&weft__loops_alive, __ATOMIC_ACQUIRE) > 0)
    return WEFT_EBUSY;
  if (a == NULL || a->malloc == NULL || a->realloc == NULL || a->free == NULL) {
    alloc = (weft_allocator){malloc, realloc, free};
    event_set_mem_functions(malloc, realloc, free);
    return 0;
  }
  alloc = *a;
  event_set_mem_functions(a->malloc, a->realloc, a->free);
  return 0;
}

void *weft__malloc(size_t n) { return alloc.malloc(n ? n : 1); }

void *weft__calloc(size_t n, size_t m) {
  if (m != 0 && n > SIZE_MAX / m)
    return NULL;
  size_t len = n * m;
  void *p = alloc.malloc(len ? len : 1);
  if (p != NULL)
    memset(p, 0, len);
  return p;
}

void *weft__realloc(void *p, size_t n) { return alloc.realloc(p, n ? n : 1); }

void weft__free(void *p) {
  if (p != NULL)
    alloc.free(p);
}

char *weft__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = weft__malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}
