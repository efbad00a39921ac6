/* weft — task stacks (see stack.h for the layout and docs/internals/stacks.md
 * for why). Also the SIGSEGV handler that turns a hit on a guard page into a
 * report naming the task that overflowed. */
#define _GNU_SOURCE
#include "stack.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; older headers lack it */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000) /* Linux 6.14: the calling thread's own pidfd */
#endif

size_t weft__page_size = 4096;

static void read_page_size(void) {
  long pg = sysconf(_SC_PAGESIZE);
  if (pg > 0)
    weft__page_size = (size_t)pg;
}

/* Slots per chunk: the first chunk has CHUNK_MIN (4 MiB of 64 KiB stacks),
 * so that a small program maps and guards little; each later one as many as
 * all before it, up to CHUNK_MAX (64 MiB), so that a program making many
 * tasks pays the mapping's, the guards' and the prefault's system calls
 * once per 1 024 stacks, not per 64 (about 75 ns a task here, a fifth of
 * what the guards themselves cost). CHUNK_MAX is also the most ranges one
 * process_madvise call takes (UIO_MAXIOV). */
#define CHUNK_MIN 64
#define CHUNK_MAX 1024

size_t weft__stack_round(size_t size) {
  size_t pg = weft__page_size;
  if (size < 16 * 1024)
    size = 16 * 1024;
  return (size + pg - 1) & ~(pg - 1);
}

void weft__stack_pool_init(weft__stack_pool *p, size_t size, size_t cache_max,
                           long mprotect_budget) {
  /* Loops made at once on several threads (weft_run_workers) all get here:
   * the page size is read once, not written by each. */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, read_page_size);
  memset(p, 0, sizeof *p);
  p->size = weft__stack_round(size);
  p->cache_max = cache_max;
  p->mprotect_budget = mprotect_budget;
  p->madv_guard = -1;
  p->batch_madvise = -1;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return true;
  size_t n = *cap ? *cap * 2 : 64;
  while (n < need)
    n *= 2;
  void *a = weft__realloc(*arr, n * elem);
  if (a == NULL)
    return false;
  *arr = a;
  *cap = n;
  return true;
}

static void *map_stack_memory(size_t len) {
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED)
    return NULL;
  /* A huge page would make every stack cost 2 MiB of RSS. */
  (void)madvise(m, len, MADV_NOHUGEPAGE);
  return m;
}

/* Puts a guard on the page at `pg`. Returns true when the page now faults. */
static bool guard_page(weft__stack_pool *p, char *pg) {
  if (p->madv_guard != 0) {
    if (madvise(pg, weft__page_size, MADV_GUARD_INSTALL) == 0) {
      p->madv_guard = 1;
      return true;
    }
    p->madv_guard = 0; /* EINVAL: kernel too old; decided once */
  }
  if (p->mprotect_budget > 0 && mprotect(pg, weft__page_size, PROT_NONE) == 0) {
    p->mprotect_budget--;
    return true;
  }
  return false;
}

/* Gives `advice` for one page at `offset` in each of the `n` slots of the
 * chunk at `m`, in one system call: process_madvise() on our own pidfd takes
 * a vector of ranges (Linux 6.14). One madvise() per slot costs a system call
 * per task, and system calls are dear in VMs. Returns true when every page
 * took it. */
static bool madvise_slots(weft__stack_pool *p, char *m, size_t n, size_t offset,
                          int advice) {
#if defined(SYS_process_madvise)
  struct iovec *iov = weft__malloc(n * sizeof *iov);
  if (iov == NULL)
    return false;
  for (size_t i = 0; i < n; i++)
    iov[i] = (struct iovec){m + i * p->size + offset, weft__page_size};
  long done = syscall(SYS_process_madvise, PIDFD_SELF, iov, n, advice, 0u);
  weft__free(iov);
  return done == (long)(n * weft__page_size);
#else
  (void)p;
  (void)m;
  (void)n;
  (void)offset;
  (void)advice;
  return false;
#endif
}

/* Guards every slot of a new chunk at once. Returns false when the slots
 * must be guarded one by one as they are carved. */
static bool guard_chunk(weft__stack_pool *p, char *m, size_t n) {
  if (p->madv_guard == 0 || p->batch_madvise == 0)
    return false;
  if (madvise_slots(p, m, n, 0, MADV_GUARD_INSTALL)) {
    p->madv_guard = p->batch_madvise = 1;
    return true;
  }
  /* An older kernel (no PIDFD_SELF, or process_madvise limited to other
   * advice): slot by slot from now on. A guard placed by a partial success
   * is harmless to place again. */
  p->batch_madvise = 0;
  return false;
}

static int new_chunk(weft__stack_pool *p) {
  if (!grow((void **)&p->chunks, &p->chunks_cap, p->chunks_len + 1,
            sizeof *p->chunks))
    return -ENOMEM;
  size_t n = p->mapped < CHUNK_MIN   ? CHUNK_MIN
             : p->mapped > CHUNK_MAX ? CHUNK_MAX
                                     : (size_t)p->mapped;
  size_t len = p->size * n;
  char *m = map_stack_memory(len);
  if (m == NULL)
    return -ENOMEM;
  p->chunks[p->chunks_len++] = (weft__chunk){m, len};
  p->carve = m;
  p->carve_end = m + len;
  /* A chunk's slots are all guarded by hardware or all by canary: mixed
   * chunks would give away the VMA budget slot by slot for nothing. */
  p->carve_guarded = p->madv_guard != 0 || p->mprotect_budget > 0;
  p->carve_preguarded = guard_chunk(p, m, n);
  /* A program that has used a whole chunk of stacks is making many tasks:
   * fault in the top page of every slot (the only page most tasks touch)
   * in one call, instead of one page fault per task. That saves about 15 %
   * of a task's time when a million are started at once. The first chunk is
   * left alone, so that a small program keeps a page per task it runs. A
   * failure costs nothing but the page faults it would have saved. */
  if (p->chunks_len > 1 && p->batch_madvise == 1)
    (void)madvise_slots(p, m, n, p->size - weft__page_size,
                        MADV_POPULATE_WRITE);
  return 0;
}

static void init_slot(weft__stack *s, char *base, size_t size, uint8_t kind,
                      bool guarded) {
  s->lo = base + weft__page_size;
  s->hi = base + size - WEFT__CANARY_SIZE;
  s->kind = kind;
  s->guarded = guarded;
  weft__stack_canary_set(s);
}

static int get_own(weft__stack_pool *p, size_t size, weft__stack *out) {
  size = weft__stack_round(size);
  char *m = map_stack_memory(size);
  if (m == NULL)
    return -ENOMEM;
  bool g = guard_page(p, m);
  init_slot(out, m, size, WEFT__STACK_OWN, g);
  return 0;
}

int weft__stack_get(weft__stack_pool *p, size_t size, weft__stack *out) {
  if (size != 0 && weft__stack_round(size) != p->size)
    return get_own(p, size, out);
  if (p->hot_len > 0) {
    *out = p->hot[--p->hot_len];
    return 0;
  }
  if (p->cold_len > 0) {
    *out = p->cold[--p->cold_len];
    weft__stack_canary_set(out); /* the page was given back: zero now */
    return 0;
  }
  if (p->carve == p->carve_end) {
    int rc = new_chunk(p);
    if (rc != 0)
      return rc;
  }
  char *base = p->carve;
  p->carve += p->size;
  bool g = p->carve_preguarded || (p->carve_guarded && guard_page(p, base));
  init_slot(out, base, p->size, g ? WEFT__STACK_GUARDED : WEFT__STACK_CANARY,
            g);
  p->mapped++;
  return 0;
}

bool weft__stack_put(weft__stack_pool *p, const weft__stack *s) {
  bool ok = weft__stack_canary_ok(s);
  if (s->kind == WEFT__STACK_OWN) {
    size_t len =
        (size_t)(s->hi + WEFT__CANARY_SIZE - (s->lo - weft__page_size));
    munmap(s->lo - weft__page_size, len);
    return ok;
  }
  if (!grow((void **)&p->hot, &p->hot_cap, p->hot_len + 1, sizeof *p->hot)) {
    /* Cannot even remember it: give the memory back and leak the slot's
     * address range, which is only address space. */
    (void)madvise(s->lo, (size_t)(s->hi - s->lo), MADV_DONTNEED);
    return ok;
  }
  p->hot[p->hot_len++] = *s;
  return ok;
}

static int by_address(const void *a, const void *b) {
  const weft__stack *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void weft__stack_trim(weft__stack_pool *p) {
  if (p->hot_len <= p->cache_max)
    return;
  size_t n = p->hot_len - p->cache_max;
  if (!grow((void **)&p->cold, &p->cold_cap, p->cold_len + n, sizeof *p->cold))
    return;
  /* The bottom of the LIFO holds the stacks unused the longest. Sort them
   * by address so that neighbouring slots go back in one madvise call. */
  weft__stack *old = p->hot;
  qsort(old, n, sizeof *old, by_address);
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && old[j].lo == old[j - 1].lo + p->size)
      j++;
    char *from = old[i].lo;
    char *to = old[j - 1].hi + WEFT__CANARY_SIZE;
    (void)madvise(from, (size_t)(to - from), MADV_DONTNEED);
    i = j;
  }
  memcpy(p->cold + p->cold_len, old, n * sizeof *old);
  p->cold_len += n;
  memmove(p->hot, p->hot + n, (p->hot_len - n) * sizeof *p->hot);
  p->hot_len -= n;
}

void weft__stack_pool_fini(weft__stack_pool *p) {
  for (size_t i = 0; i < p->chunks_len; i++)
    munmap(p->chunks[i].base, p->chunks[i].len);
  weft__free(p->chunks);
  weft__free(p->hot);
  weft__free(p->cold);
  memset(p, 0, sizeof *p);
}

/* ---- overflow reports ---- */

static void write_all(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

void weft__stack_overflow(weft_task *t, const char *how) {
  char buf[512];
  snprintf(buf, sizeof buf,
           "weft: stack overflow in task %llu '%s' (spawned at %s): %s; "
           "its stack is %zu bytes (weft_task_opts.stack_size or "
           "weft_loop_opts.stack_size sets it)\n",
           (unsigned long long)t->id, weft_task_name(t), t->site, how,
           (size_t)(t->stack.hi - t->stack.lo) + weft__page_size +
               WEFT__CANARY_SIZE);
  write_all(buf);
  abort();
}

/* The SIGSEGV handler runs on an alternate stack (the overflowed one has no
 * room). If the fault hit the guard page of the running task's stack, it
 * names the task and aborts; any other fault goes to the handler that was
 * there before, or to the default action. */
static struct sigaction old_segv;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

static void segv_handler(int sig, siginfo_t *si, void *uc) {
  weft_loop *loop = weft__tls_loop;
  weft_task *t = loop ? loop->current : NULL;
  if (t != NULL && t->stack.kind != WEFT__STACK_NONE) {
    char *a = si->si_addr;
    if (t->stack.guarded && a >= t->stack.lo - weft__page_size &&
        a < t->stack.lo)
      weft__stack_overflow(t, "it ran into the guard page below its stack");
    /* No guard: a runaway recursion runs through the stacks below until it
     * reaches unmapped memory. A fault below the running task's stack is
     * still best explained by that. */
    if (!t->stack.guarded && a < t->stack.lo &&
        a >= t->stack.lo - 64 * 1024 * 1024)
      weft__stack_overflow(t, "it ran below its stack (no guard page: "
                              "other stacks may be damaged)");
  }
  if (old_segv.sa_flags & SA_SIGINFO) {
    if (old_segv.sa_sigaction) {
      old_segv.sa_sigaction(sig, si, uc);
      return;
    }
  } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
    old_segv.sa_handler(sig);
    return;
  }
  /* Let the fault happen again with the default action (a core dump). */
  signal(sig, SIG_DFL);
}

static void install_segv(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
}

/* Gives the thread an alternate signal stack if it has none; returns the
 * memory to free at loop end, or NULL. */
void *weft__sigaltstack_install(void) {
  pthread_once(&segv_once, install_segv);
  stack_t cur;
  if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
    return NULL;
  size_t len = 64 * 1024;
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (m == MAP_FAILED)
    return NULL;
  stack_t ss = {.ss_sp = m, .ss_size = len, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(m, len);
    return NULL;
  }
  return m;
}

void weft__sigaltstack_remove(void *m) {
  if (m == NULL)
    return;
  stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
  sigaltstack(&ss, NULL);
  munmap(m, 64 * 1024);
}
