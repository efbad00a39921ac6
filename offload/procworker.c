/* weft — the worker side of process pools: the registry of functions and
 * the loop a worker process runs (weft_proc_main).
 *
 * A worker is the program itself started again with WEFT_PROC_WORKER in its
 * environment and its end of a socket on fd 3. It is single-threaded and
 * simple on purpose: blocking reads of one request at a time, the function,
 * one reply. Anything it does not understand makes it exit (the parent then
 * fails the call and starts another worker).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <weft/error.h>
#include <weft/proc.h>

#include "internal.h"
#include "procmsg.h"

/* ---- the registry ----
 * Process-wide, filled at load time (constructors) or before
 * weft_proc_main(); read-only afterwards, so lookups need no lock. */
static weft_proc_def *registry;

void weft_proc_register_def(weft_proc_def *d) {
  d->next = registry;
  registry = d;
}

weft_proc_fn weft__proc_lookup(const char *name, size_t len) {
  for (weft_proc_def *d = registry; d != NULL; d = d->next)
    if (strlen(d->name) == len && memcmp(d->name, name, len) == 0)
      return d->fn;
  return NULL;
}

int weft_proc_register(const char *name, weft_proc_fn fn) {
  if (name == NULL || fn == NULL || name[0] == '\0' ||
      strlen(name) > WEFT__PROC_NAME_MAX)
    return WEFT_EINVAL;
  if (weft__proc_lookup(name, strlen(name)) != NULL)
    return WEFT_EEXIST;
  /* Lives as long as the process: registrations are never removed. */
  weft_proc_def *d = malloc(sizeof *d);
  char *n = strdup(name);
  if (d == NULL || n == NULL) {
    free(d);
    free(n);
    return WEFT_ENOMEM;
  }
  d->name = n;
  d->fn = fn;
  weft_proc_register_def(d);
  return 0;
}

/* ---- the worker ---- */

static bool in_worker;

bool weft_proc_is_worker(void) { return in_worker; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *why) {
  fprintf(stderr, "weft worker: %s; exiting\n", why);
  _exit(3);
}

/* What the worker has read from the parent and not used yet. One recv
 * usually brings a whole small request (header, name, payload). */
typedef struct rbuf {
  int fd;
  uint8_t buf[65536];
  size_t pos, len;
} rbuf;

/* Reads exactly n bytes into dst. When `spin_ns` is set and nothing is
 * buffered, it first polls without blocking for that long: a busy pool's
 * next request usually comes within microseconds, and waking from sleep
 * costs tens. (Polling the socket measured faster here than spinning on a
 * doorbell in shared memory: a tight `pause` loop in a VM may get its vCPU
 * descheduled.) Returns false at a clean end of file before any byte. */
static bool read_full(rbuf *r, void *dst, size_t n, uint64_t spin_ns) {
  size_t got = 0;
  uint64_t until = spin_ns && r->pos == r->len ? now_ns() + spin_ns : 0;
  unsigned polls = 0;
  while (got < n) {
    if (r->pos < r->len) {
      size_t k = r->len - r->pos < n - got ? r->len - r->pos : n - got;
      memcpy((char *)dst + got, r->buf + r->pos, k);
      r->pos += k;
      got += k;
      continue;
    }
    int flags = until ? MSG_DONTWAIT : 0;
    ssize_t k;
    if (n - got >= sizeof r->buf) /* big payloads go straight in */
      k = recv(r->fd, (char *)dst + got, n - got, flags);
    else
      k = recv(r->fd, r->buf, sizeof r->buf, flags);
    if (k > 0) {
      if (n - got >= sizeof r->buf) {
        got += (size_t)k;
      } else {
        r->pos = 0;
        r->len = (size_t)k;
      }
      continue;
    }
    if (k == 0) {
      if (got == 0)
        return false;
      die("the parent's request was truncated");
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (until && now_ns() >= until)
        until = 0; /* spun long enough: block */
      else if ((++polls & 3) == 0)
        sched_yield(); /* the parent may be waiting for this core */
      continue;
    }
    die("reading from the parent failed");
  }
  return true;
}

static void write_full(int fd, struct iovec *iov, int cnt) {
  while (cnt > 0) {
    ssize_t w = writev(fd, iov, cnt);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      _exit(0); /* the parent went away */
    }
    size_t left = (size_t)w;
    while (cnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
}

static void serve(int fd, weft__proc_shm *shm, uint64_t spin_ns,
                  uint64_t max_msg) {
  /* seq 1 in the hello: this worker reads cancel marks, so calls may be
   * queued in it behind the running one. */
  weft__proc_hdr h = {.magic = WEFT__PROC_MAGIC,
                      .kind = WEFT__MSG_HELLO,
                      .status = (int32_t)getpid(),
                      .seq = shm != NULL};
  struct iovec iov[2] = {{&h, sizeof h}};
  write_full(fd, iov, 1);

  static rbuf r;
  r.fd = fd;
  char name[WEFT__PROC_NAME_MAX + 1];
  uint8_t *in = NULL;
  size_t in_cap = 0;
  for (;;) {
    if (!read_full(&r, &h, sizeof h, spin_ns))
      break; /* the parent let us go */
    if (h.magic != WEFT__PROC_MAGIC || h.kind != WEFT__MSG_CALL ||
        h.name_len == 0 || h.name_len > WEFT__PROC_NAME_MAX || h.len > max_msg)
      die("malformed request from the parent");
    if (!read_full(&r, name, h.name_len, 0))
      die("the parent's request was truncated");
    name[h.name_len] = '\0';
    if (h.len > in_cap) {
      free(in);
      in_cap = (size_t)h.len;
      in = malloc(in_cap);
      if (in == NULL)
        die("out of memory for a request");
    }
    if (h.len && !read_full(&r, in, (size_t)h.len, 0))
      die("the parent's request was truncated");

    weft_bytes out = {0};
    weft_proc_fn fn = weft__proc_lookup(name, h.name_len);
    int status;
    if (shm != NULL &&
        __atomic_load_n(&shm->cancel[h.seq % 64], __ATOMIC_ACQUIRE) == h.seq)
      status = WEFT_ECANCELED; /* its caller gave up before we got here */
    else
      status = fn ? fn(in, (size_t)h.len, &out) : WEFT_ENOENT;
    weft__proc_hdr rh = {.magic = WEFT__PROC_MAGIC,
                         .kind = WEFT__MSG_REPLY,
                         .status = status,
                         .seq = h.seq,
                         .len = out.len};
    iov[0] = (struct iovec){&rh, sizeof rh};
    iov[1] = (struct iovec){out.data, out.len};
    /* Ring before a big reply (the parent must start reading for it to go
     * through), after a small one (it is all there when the parent looks). */
    bool big = out.len > 65536;
    if (shm != NULL && big)
      __atomic_add_fetch(&shm->rep, 1, __ATOMIC_RELEASE);
    write_full(fd, iov, out.len ? 2 : 1);
    if (shm != NULL && !big)
      __atomic_add_fetch(&shm->rep, 1, __ATOMIC_RELEASE);
    weft_bytes_free(&out);
    if (in_cap > ((size_t)1 << 20)) {
      /* Do not sit on a huge buffer between calls. */
      free(in);
      in = NULL;
      in_cap = 0;
    }
  }
  free(in);
}

void weft_proc_main(void) {
  const char *env = getenv(WEFT__PROC_ENV);
  if (env == NULL)
    return;
  long ppid = 0;
  double spin_us = 0;
  unsigned long long max_msg = 0;
  if (sscanf(env, "%ld:%lf:%llu", &ppid, &spin_us, &max_msg) != 3)
    die("bad " WEFT__PROC_ENV);
  /* Our own pools (if a function makes one) must start real workers. */
  unsetenv(WEFT__PROC_ENV);
  in_worker = true;
  /* Die with the parent, and never outlive it by a race. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != (pid_t)ppid)
    _exit(0);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_NAME, "weft-worker");
  weft__proc_shm *shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
                             MAP_SHARED, WEFT__PROC_SHM_FD, 0);
  if (shm == MAP_FAILED)
    shm = NULL; /* no doorbells: spin on the socket */
  serve(WEFT__PROC_FD, shm, spin_us > 0 ? (uint64_t)(spin_us * 1000) : 0,
        max_msg);
  fflush(stdout);
  fflush(stderr);
  _exit(0);
}
