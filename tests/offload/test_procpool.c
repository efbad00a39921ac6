/* weft tests — process pools: payloads of 0 bytes and 64 MiB, struct calls,
 * functions that segfault, abort, exit or never return (each fails only its
 * own call, the pool keeps serving), cancellation of queued and running
 * calls, 10 000 calls with none lost, garbage and truncated messages in the
 * IPC channel, stderr prefixed with the worker's pid, workers replaced after
 * max calls, bounded queues, and shutdown with calls queued.
 *
 * The workers are this test program started again: main() calls
 * weft_proc_main() first, as every program using a process pool must. */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <weft/proc.h>
#include <weft/thread.h>

#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* ---- the worker functions ---- */

WEFT_PROC_FUNCTION(echo) { return weft_bytes_set(out, in, in_len); }

WEFT_PROC_FUNCTION(fails) {
  (void)in;
  (void)in_len;
  weft_bytes_set(out, "why", 3);
  return WEFT_ERANGE;
}

WEFT_PROC_FUNCTION(segv) {
  (void)in;
  (void)in_len;
  (void)out;
  volatile int *p = NULL;
  *p = 1;
  return 0;
}

WEFT_PROC_FUNCTION(do_abort) {
  (void)in;
  (void)in_len;
  (void)out;
  abort();
}

WEFT_PROC_FUNCTION(do_exit) {
  (void)in;
  (void)in_len;
  (void)out;
  exit(7);
}

WEFT_PROC_FUNCTION(hang) {
  (void)in;
  (void)in_len;
  (void)out;
  for (;;)
    pause();
  return 0;
}

WEFT_PROC_FUNCTION(busy_ms) {
  (void)out;
  int ms = 0;
  if (in_len == sizeof ms)
    memcpy(&ms, in, sizeof ms);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do
    clock_gettime(CLOCK_MONOTONIC, &t);
  while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 <
         ms);
  return 0;
}

WEFT_PROC_FUNCTION(mypid) {
  (void)in;
  (void)in_len;
  int pid = (int)getpid();
  return weft_bytes_set(out, &pid, sizeof pid);
}

WEFT_PROC_FUNCTION(say) {
  int pid = (int)getpid();
  fprintf(stderr, "%.*s\n", (int)in_len, (const char *)in);
  fprintf(stderr, "second line");
  fflush(stderr);
  return weft_bytes_set(out, &pid, sizeof pid);
}

/* Writes bytes that are no reply at all into the IPC channel. */
WEFT_PROC_FUNCTION(garbage) {
  (void)in;
  (void)in_len;
  (void)out;
  const char junk[] = "this is not a weft message at all........";
  if (write(3, junk, sizeof junk) < 0)
    return WEFT_EIO;
  return 0;
}

/* A reply header that promises 100 bytes, 10 of them, and death. */
WEFT_PROC_FUNCTION(truncated) {
  (void)in;
  (void)in_len;
  (void)out;
  struct {
    uint32_t magic;
    uint16_t kind, name_len;
    int32_t status;
    uint32_t seq;
    uint64_t len;
  } h = {0x31504657u, 3, 0, 0, 1, 100};
  /* The parent numbers calls per worker from 1; this is a fresh worker. */
  char body[10] = {0};
  if (write(3, &h, sizeof h) < 0 || write(3, body, sizeof body) < 0)
    return WEFT_EIO;
  _exit(0);
}

typedef struct sq_in {
  int64_t x;
} sq_in;
typedef struct sq_out {
  int64_t y;
  int32_t pid;
} sq_out;

WEFT_PROC_STRUCT_FUNCTION(square, sq_in, sq_out) {
  out->y = in->x * in->x;
  out->pid = (int32_t)getpid();
  return 0;
}

/* ---- helpers ---- */

static weft_procpool *pool_make(size_t workers, const weft_procpool_opts *o) {
  weft_procpool_opts d = {.size = sizeof d, .workers = workers};
  weft_procpool *p = NULL;
  T_OK(weft_procpool_new(&p, o ? o : &d));
  return p;
}

#define T_ERRMSG_HAS(needle)                                                   \
  do {                                                                         \
    if (strstr(weft_proc_errmsg(), (needle)) == NULL)                          \
      t__fail(__FILE__, __LINE__, "errmsg \"%s\" lacks \"%s\"",                \
              weft_proc_errmsg(), (needle));                                   \
  } while (0)

static int echo_ok(weft_procpool *p, const char *s) {
  weft_bytes b = {0};
  int rc = weft_proc_call(p, "echo", s, strlen(s), &b);
  if (rc == 0 && (b.len != strlen(s) || memcmp(b.data, s, b.len) != 0))
    rc = WEFT_EPROTO;
  weft_bytes_free(&b);
  return rc;
}

static int call_pid(weft_procpool *p) {
  weft_bytes b = {0};
  int pid = -1;
  if (weft_proc_call(p, "mypid", NULL, 0, &b) == 0 && b.len == sizeof pid)
    memcpy(&pid, b.data, sizeof pid);
  weft_bytes_free(&b);
  return pid;
}

/* ---- payloads ---- */

static intptr_t nothing(void *arg) { return (intptr_t)arg; }

static int m_payloads(void *arg) {
  (void)arg;
  /* Threads already run in this process (the thread pool): starting
   * workers must still be safe. */
  T_OK(weft_to_thread(nothing, NULL, NULL));
  weft_procpool *p = pool_make(2, NULL);
  weft_bytes b = {0};
  T_OK(weft_proc_call(p, "echo", NULL, 0, &b)); /* 0 bytes each way */
  T_EQ(b.len, 0);
  weft_bytes_free(&b);
  T_OK(echo_ok(p, "hello"));
  size_t n = (size_t)64 << 20; /* 64 MiB each way */
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; i++)
    big[i] = (uint8_t)(i ^ (i >> 8) ^ (i >> 20));
  T_OK(weft_proc_call(p, "echo", big, n, &b));
  T_EQ(b.len, n);
  T_TRUE(b.len == n && memcmp(b.data, big, n) == 0);
  weft_bytes_free(&b);
  free(big);
  /* A function's own failure comes back with its reply. */
  T_RC(weft_proc_call(p, "fails", NULL, 0, &b), WEFT_ERANGE);
  T_TRUE(b.len == 3 && memcmp(b.data, "why", 3) == 0);
  weft_bytes_free(&b);
  T_RC(weft_proc_call(p, "no_such_function", NULL, 0, &b), WEFT_ENOENT);
  T_ERRMSG_HAS("no_such_function");
  T_RC(weft_proc_call(p, NULL, NULL, 0, &b), WEFT_EINVAL);
  /* Structs. */
  sq_in in = {.x = 12345};
  sq_out out;
  T_OK(weft_proc_call_struct(p, "square", &in, &out));
  T_EQ(out.y, 12345LL * 12345);
  T_NE(out.pid, getpid());
  T_RC(weft_proc_call_fixed(p, "square", &in, 3, &out, sizeof out),
       WEFT_EBADMSG); /* wrong request size, refused by the worker */
  T_RC(weft_proc_call_fixed(p, "echo", "ab", 2, &out, sizeof out),
       WEFT_EBADMSG); /* wrong reply size */
  weft_procpool_stats st;
  weft_procpool_stats_get(p, &st);
  T_EQ(st.crashed + st.bad_msgs + st.timeouts, 0);
  weft_procpool_free(p);
  return 0;
}
static void test_payloads(void) { T_EQ(t_run(m_payloads, NULL), 0); }

/* ---- crashes: each fails only its own call ---- */

static int m_crashes(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(2, NULL);
  T_OK(echo_ok(p, "before"));
  weft_bytes b = {0};
  T_RC(weft_proc_call(p, "segv", NULL, 0, &b), WEFT_ECRASHED);
  T_ERRMSG_HAS("segv");
#ifndef UNDER_ASAN /* ASan catches the fault itself and exits */
  T_ERRMSG_HAS("signal 11 (SIGSEGV)");
#endif
  T_TRUE(b.len == 0);
  T_OK(echo_ok(p, "after segv"));
  T_RC(weft_proc_call(p, "do_abort", NULL, 0, &b), WEFT_ECRASHED);
  T_ERRMSG_HAS("signal 6 (SIGABRT)");
  T_OK(echo_ok(p, "after abort"));
  T_RC(weft_proc_call(p, "do_exit", NULL, 0, &b), WEFT_ECRASHED);
  T_ERRMSG_HAS("exited with status 7");
  T_OK(echo_ok(p, "after exit"));
  weft_procpool_stats st;
  weft_procpool_stats_get(p, &st);
  T_EQ(st.crashed, 3);
  T_GE(st.spawned, 3);
  T_LE(st.workers, 2);
  weft_procpool_free(p);
  return 0;
}
static void test_crashes(void) { T_EQ(t_run(m_crashes, NULL), 0); }

/* Calls running beside a crash are untouched. */
typedef struct many_arg {
  weft_procpool *p;
  int idx;
  int ok;
  atomic_int *done;
} many_arg;

static int echo_task(void *arg) {
  many_arg *a = arg;
  char s[32];
  snprintf(s, sizeof s, "call %d", a->idx);
  int rc = echo_ok(a->p, s);
  if (rc == 0)
    a->ok++;
  return rc;
}

static int crash_task(void *arg) {
  weft_bytes b = {0};
  int rc = weft_proc_call(arg, "segv", NULL, 0, &b);
  return rc == WEFT_ECRASHED ? 0 : WEFT_EPROTO;
}

static int m_crash_beside(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(2, NULL);
  weft_group *g;
  T_OK(weft_group_new(&g));
  many_arg a[40];
  for (int i = 0; i < 40; i++) {
    a[i] = (many_arg){.p = p, .idx = i};
    T_OK(weft_group_spawn(g, NULL, echo_task, &a[i]));
    if (i % 10 == 5)
      T_OK(weft_group_spawn(g, NULL, crash_task, p));
  }
  T_OK(weft_group_wait(g));
  weft_group_free(g);
  for (int i = 0; i < 40; i++)
    T_EQ(a[i].ok, 1);
  weft_procpool_stats st;
  weft_procpool_stats_get(p, &st);
  T_EQ(st.crashed, 4);
  T_EQ(st.completed, 40);
  weft_procpool_free(p);
  return 0;
}
static void test_crash_beside(void) { T_EQ(t_run(m_crash_beside, NULL), 0); }

/* ---- timeouts and cancellation ---- */

static int m_timeout(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(1, NULL);
  int pid0 = call_pid(p);
  weft_proc_opts o = {.size = sizeof o, .timeout = 0.2};
  weft_bytes b = {0};
  double t0 = weft_now();
  T_RC(weft_proc_call_opts(p, "hang", NULL, 0, &b, &o), WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 2.0);
  T_GE(weft_now() - t0, 0.19);
  T_ERRMSG_HAS("timed out");
  int pid1 = call_pid(p);
  T_GT(pid1, 0);
  T_NE(pid1, pid0); /* killed and replaced */
  /* The task's own deadline does the same. */
  weft_timeout scope;
  weft_timeout_enter(&scope, 0.1);
  T_RC(weft_proc_call(p, "hang", NULL, 0, &b), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&scope), WEFT_ETIMEDOUT);
  T_OK(echo_ok(p, "still serving"));
  T_NE(call_pid(p), pid1);
  /* The pool's default timeout. */
  weft_procpool_opts po = {
      .size = sizeof po, .workers = 1, .call_timeout = 0.1};
  weft_procpool *q = pool_make(0, &po);
  T_RC(weft_proc_call(q, "hang", NULL, 0, &b), WEFT_ETIMEDOUT);
  weft_proc_opts none = {.size = sizeof none, .timeout = -1};
  int ms = 150;
  T_OK(weft_proc_call_opts(q, "busy_ms", &ms, sizeof ms, &b, &none));
  T_TRUE(b.data == NULL && b.len == 0); /* an empty reply allocates nothing */
  weft_procpool_stats st;
  weft_procpool_stats_get(q, &st);
  T_EQ(st.timeouts, 1);
  weft_procpool_free(q);
  weft_procpool_free(p);
  return 0;
}
static void test_timeout(void) { T_EQ(t_run(m_timeout, NULL), 0); }

typedef struct call_arg {
  weft_procpool *p;
  const char *fn;
  int ms;
  int rc;
} call_arg;

static int caller(void *arg) {
  call_arg *a = arg;
  weft_bytes b = {0};
  a->rc = weft_proc_call(a->p, a->fn, &a->ms, sizeof a->ms, &b);
  weft_bytes_free(&b);
  return 0;
}

static int m_cancel(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(1, NULL);
  int pid0 = call_pid(p);
  /* Running: the worker is killed and replaced at once. */
  call_arg a = {.p = p, .fn = "hang"};
  weft_task *t;
  T_OK(weft_spawn(&t, caller, &a));
  T_OK(weft_sleep(0.05));
  weft_procpool_stats st;
  weft_procpool_stats_get(p, &st);
  T_EQ(st.running, 1);
  double t0 = weft_now();
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_LT(weft_now() - t0, 0.5);
  T_RC(a.rc, WEFT_ECANCELED);
  int pid1 = call_pid(p);
  T_NE(pid1, pid0);
  weft_procpool_free(p);
  /* Queued: removed; it never runs. */
  weft_procpool_opts o = {.size = sizeof o, .workers = 1, .pipeline = 1};
  p = pool_make(0, &o);
  pid1 = call_pid(p);
  call_arg busy = {.p = p, .fn = "busy_ms", .ms = 200};
  call_arg queued = {.p = p, .fn = "mypid"};
  weft_task *tb, *tq;
  T_OK(weft_spawn(&tb, caller, &busy));
  T_OK(weft_spawn(&tq, caller, &queued));
  T_OK(weft_sleep(0.05));
  weft_procpool_stats_get(p, &st);
  T_EQ(st.queued, 1);
  uint64_t completed = st.completed;
  weft_cancel(tq);
  T_OK(weft_join(tq, NULL));
  T_RC(queued.rc, WEFT_ECANCELED);
  T_OK(weft_join(tb, NULL));
  T_OK(busy.rc);
  weft_procpool_stats_get(p, &st);
  T_EQ(st.completed, completed + 1); /* only the busy call */
  T_EQ(call_pid(p), pid1);           /* a queued cancel kills nobody */
  weft_procpool_free(p);

  /* Waiting in the worker's pipeline behind a running call: the worker
   * skips it; nobody is killed. The second call is pipelined only if it
   * comes within 0.2 ms of the first (PIPE_MAX_CALL_NS); a loaded machine
   * may pause this process longer between the two, so try again then. */
  int tries = 0;
  for (;; tries++) {
    p = pool_make(1, NULL);
    pid1 = call_pid(p);
    busy = (call_arg){.p = p, .fn = "busy_ms", .ms = 200};
    queued = (call_arg){.p = p, .fn = "mypid"};
    T_OK(weft_spawn(&tb, caller, &busy));
    T_OK(weft_spawn(&tq, caller, &queued));
    T_OK(weft_sleep(0.05));
    weft_procpool_stats_get(p, &st);
    if (st.running == 2 || tries == 20)
      break;
    T_EQ(st.queued, 1); /* not pipelined: queued behind busy instead */
    weft_cancel(tq);
    T_OK(weft_join(tq, NULL));
    T_OK(weft_join(tb, NULL));
    weft_procpool_free(p);
  }
  T_LT(tries, 20);
  T_EQ(st.running, 2); /* handed to the worker, waiting behind busy */
  T_EQ(st.queued, 0);
  completed = st.completed;
  t0 = weft_now();
  weft_cancel(tq);
  T_OK(weft_join(tq, NULL));
  T_LT(weft_now() - t0, 0.1); /* did not wait for busy */
  T_RC(queued.rc, WEFT_ECANCELED);
  T_OK(weft_join(tb, NULL));
  T_OK(busy.rc);
  T_OK(weft_sleep(0.02)); /* the skipped call's reply comes and goes */
  weft_procpool_stats_get(p, &st);
  T_EQ(st.completed, completed + 1);
  T_EQ(st.running, 0);
  T_EQ(call_pid(p), pid1);
  weft_procpool_free(p);
  return 0;
}
static void test_cancel(void) { T_EQ(t_run(m_cancel, NULL), 0); }

/* A call handed to the worker behind one that times out is not lost: it
 * goes to the replacement worker. */
static int m_timeout_behind(void *arg) {
  (void)arg;
  weft_procpool_opts o = {.size = sizeof o, .workers = 1, .call_timeout = 0.2};
  weft_procpool *r = pool_make(0, &o);
  call_arg h = {.p = r, .fn = "hang"}, e = {.p = r, .fn = "mypid"};
  weft_task *th, *te;
  T_OK(weft_spawn(&th, caller, &h));
  T_OK(weft_spawn(&te, caller, &e));
  T_OK(weft_join(th, NULL));
  T_OK(weft_join(te, NULL));
  T_RC(h.rc, WEFT_ETIMEDOUT);
  T_OK(e.rc);
  weft_procpool_stats st;
  weft_procpool_stats_get(r, &st);
  T_EQ(st.timeouts, 1);
  T_EQ(st.spawned, 2);
  weft_procpool_free(r);
  return 0;
}
static void test_timeout_behind(void) {
  T_EQ(t_run(m_timeout_behind, NULL), 0);
}

/* ---- 10 000 calls, none lost ---- */

static int many_task(void *arg) {
  many_arg *a = arg;
  for (int i = 0; i < 100; i++) {
    int v = a->idx * 100 + i;
    weft_bytes b = {0};
    int rc = weft_proc_call(a->p, "echo", &v, sizeof v, &b);
    if (rc != 0)
      return rc;
    int got;
    memcpy(&got, b.data, sizeof got);
    weft_bytes_free(&b);
    if (got != v)
      return WEFT_EPROTO;
    a->ok++;
    atomic_fetch_add(a->done, 1);
  }
  return 0;
}

static int m_many(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(2, NULL);
  atomic_int done = 0;
  many_arg a[100];
  weft_group *g;
  T_OK(weft_group_new(&g));
  for (int i = 0; i < 100; i++) {
    a[i] = (many_arg){.p = p, .idx = i, .done = &done};
    T_OK(weft_group_spawn(g, NULL, many_task, &a[i]));
  }
  T_OK(weft_group_wait(g));
  weft_group_free(g);
  T_EQ(atomic_load(&done), 10000);
  weft_procpool_stats st;
  weft_procpool_stats_get(p, &st);
  T_EQ(st.calls, 10000);
  T_EQ(st.completed, 10000);
  T_EQ(st.crashed + st.bad_msgs + st.cancelled, 0);
  weft_procpool_free(p);
  return 0;
}
static void test_many(void) { T_EQ(t_run(m_many, NULL), 0); }

/* ---- bad messages ---- */

static int m_garbage(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(1, NULL);
  T_OK(echo_ok(p, "first"));
  weft_bytes b = {0};
  T_RC(weft_proc_call(p, "garbage", NULL, 0, &b), WEFT_EBADMSG);
  T_ERRMSG_HAS("malformed");
  T_OK(echo_ok(p, "after garbage"));
  weft_procpool_stats st;
  weft_procpool_stats_get(p, &st);
  T_EQ(st.bad_msgs, 1);
  /* `truncated` forges the header of call 1, so give it a fresh worker. */
  weft_procpool *t = pool_make(1, NULL);
  T_RC(weft_proc_call(t, "truncated", NULL, 0, &b), WEFT_EBADMSG);
  T_ERRMSG_HAS("truncated");
  T_OK(echo_ok(t, "after truncation"));
  weft_procpool_stats_get(t, &st);
  T_EQ(st.bad_msgs, 1);
  weft_procpool_free(t);
  /* A reply bigger than max_msg. */
  weft_procpool_opts o = {.size = sizeof o, .workers = 1, .max_msg = 1000};
  weft_procpool *q = pool_make(0, &o);
  char big[1000] = {0};
  T_OK(weft_proc_call(q, "echo", big, sizeof big, &b));
  weft_bytes_free(&b);
  char bigger[1001] = {0};
  T_RC(weft_proc_call(q, "echo", bigger, sizeof bigger, &b), WEFT_EMSGSIZE);
  weft_procpool_free(q);
  weft_procpool_free(p);
  return 0;
}
static void test_garbage(void) { T_EQ(t_run(m_garbage, NULL), 0); }

/* ---- worker stderr, prefixed with its pid ---- */

static int m_stderr(void *arg) {
  const char *path = arg;
  weft_procpool *p = pool_make(1, NULL);
  weft_bytes b = {0};
  const char *msg = "hello from a worker";
  T_OK(weft_proc_call(p, "say", msg, strlen(msg), &b));
  int pid = 0;
  memcpy(&pid, b.data, sizeof pid);
  weft_bytes_free(&b);
  char want1[96], want2[96];
  snprintf(want1, sizeof want1, "[worker %d] %s\n", pid, msg);
  snprintf(want2, sizeof want2, "[worker %d] second line\n", pid);
  /* The pipe is read by the loop: give it a moment. The unfinished second
   * line comes out when the worker exits (at free). */
  char buf[4096] = {0};
  for (int i = 0; i < 200 && strstr(buf, want1) == NULL; i++) {
    T_OK(weft_sleep(0.005));
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
  }
  T_TRUE(strstr(buf, want1) != NULL);
  weft_procpool_free(p);
  FILE *f = fopen(path, "r");
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  T_TRUE(strstr(buf, want2) != NULL);
  return 0;
}

static void test_stderr(void) {
  char path[] = "/tmp/weft-stderr-XXXXXX";
  int fd = mkstemp(path);
  T_GE(fd, 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  int rc = t_run(m_stderr, path);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  unlink(path);
  T_EQ(rc, 0);
}

/* ---- max calls per worker ---- */

static int m_max_calls(void *arg) {
  (void)arg;
  weft_procpool_opts o = {
      .size = sizeof o, .workers = 1, .max_calls_per_worker = 3};
  weft_procpool *p = pool_make(0, &o);
  int pids[9];
  for (int i = 0; i < 9; i++)
    pids[i] = call_pid(p);
  for (int i = 0; i < 9; i++) {
    T_GT(pids[i], 0);
    if (i % 3 != 0)
      T_EQ(pids[i], pids[i - 1]);
    else if (i > 0)
      T_NE(pids[i], pids[i - 1]);
  }
  weft_procpool_stats st;
  weft_procpool_stats_get(p, &st);
  T_EQ(st.retired, 3);
  T_EQ(st.spawned, 3);
  weft_procpool_free(p);
  return 0;
}
static void test_max_calls(void) { T_EQ(t_run(m_max_calls, NULL), 0); }

/* ---- bounded queue ---- */

static int m_bounded(void *arg) {
  (void)arg;
  weft_procpool_opts o = {.size = sizeof o, .workers = 1, .queue_max = 2};
  weft_procpool *p = pool_make(0, &o);
  call_arg a[6];
  weft_task *t[6];
  for (int i = 0; i < 6; i++) {
    a[i] = (call_arg){.p = p, .fn = "busy_ms", .ms = 30};
    T_OK(weft_spawn(&t[i], caller, &a[i]));
  }
  size_t most = 0;
  for (int k = 0; k < 100; k++) {
    weft_procpool_stats st;
    weft_procpool_stats_get(p, &st);
    if (st.queued > most)
      most = st.queued;
    T_OK(weft_sleep(0.003));
  }
  T_EQ(most, 2);
  for (int i = 0; i < 6; i++) {
    T_OK(weft_join(t[i], NULL));
    T_OK(a[i].rc);
  }
  weft_procpool_free(p);
  return 0;
}
static void test_bounded(void) { T_EQ(t_run(m_bounded, NULL), 0); }

/* ---- shutdown ---- */

static int m_shutdown_wait(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(1, NULL);
  call_arg a[5];
  weft_task *t[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (call_arg){.p = p, .fn = "busy_ms", .ms = 20};
    T_OK(weft_spawn(&t[i], caller, &a[i]));
  }
  T_OK(weft_sleep(0.01));
  T_OK(weft_procpool_shutdown(p, WEFT_PROC_WAIT, 0));
  for (int i = 0; i < 5; i++) {
    T_OK(weft_join(t[i], NULL));
    T_OK(a[i].rc); /* every queued call ran */
  }
  weft_bytes b = {0};
  T_RC(weft_proc_call(p, "echo", NULL, 0, &b), WEFT_ECLOSED);
  weft_procpool_free(p);
  return 0;
}
static void test_shutdown_wait(void) { T_EQ(t_run(m_shutdown_wait, NULL), 0); }

static int m_shutdown_cancel(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(1, NULL);
  call_arg a[5];
  weft_task *t[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (call_arg){.p = p, .fn = "busy_ms", .ms = 100};
    T_OK(weft_spawn(&t[i], caller, &a[i]));
  }
  for (int k = 0; k < 2000; k++) {
    weft_procpool_stats st;
    weft_procpool_stats_get(p, &st);
    if (st.running >= 1 && st.queued + st.running == 5)
      break;
    T_OK(weft_sleep(0.001));
  }
  /* One call runs; one may wait in the worker's pipeline, the rest in the
   * queue: all but the running one are cancelled. */
  T_OK(weft_procpool_shutdown(p, WEFT_PROC_CANCEL, 0));
  int ok = 0, cancelled = 0;
  for (int i = 0; i < 5; i++) {
    T_OK(weft_join(t[i], NULL));
    if (a[i].rc == 0)
      ok++;
    else if (a[i].rc == WEFT_ECANCELED)
      cancelled++;
  }
  T_EQ(ok, 1); /* the running one finished */
  T_EQ(cancelled, 4);
  weft_procpool_free(p);
  return 0;
}
static void test_shutdown_cancel(void) {
  T_EQ(t_run(m_shutdown_cancel, NULL), 0);
}

static int m_shutdown_timeout(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(1, NULL);
  call_arg a = {.p = p, .fn = "hang"}, q = {.p = p, .fn = "mypid"};
  weft_task *ta, *tq;
  T_OK(weft_spawn(&ta, caller, &a));
  T_OK(weft_spawn(&tq, caller, &q));
  T_OK(weft_sleep(0.05));
  double t0 = weft_now();
  T_RC(weft_procpool_shutdown(p, WEFT_PROC_WAIT, 0.2), WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 2.0);
  T_OK(weft_join(ta, NULL));
  T_OK(weft_join(tq, NULL));
  T_RC(a.rc, WEFT_ECLOSED);
  T_RC(q.rc, WEFT_ECLOSED);
  weft_procpool_free(p);
  return 0;
}
static void test_shutdown_timeout(void) {
  T_EQ(t_run(m_shutdown_timeout, NULL), 0);
}

/* Freeing a pool with calls in flight wakes their tasks. */
static int m_free_busy(void *arg) {
  (void)arg;
  weft_procpool *p = pool_make(1, NULL);
  call_arg a = {.p = p, .fn = "hang"}, q = {.p = p, .fn = "mypid"};
  weft_task *ta, *tq;
  T_OK(weft_spawn(&ta, caller, &a));
  T_OK(weft_spawn(&tq, caller, &q));
  T_OK(weft_sleep(0.05));
  weft_procpool_free(p);
  T_OK(weft_join(ta, NULL));
  T_OK(weft_join(tq, NULL));
  T_RC(a.rc, WEFT_ECANCELED);
  T_RC(q.rc, WEFT_ECANCELED);
  return 0;
}
static void test_free_busy(void) { T_EQ(t_run(m_free_busy, NULL), 0); }

/* A process started as a worker that runs its own main instead of
 * weft_proc_main() refuses to start workers of its own (no fork bomb). */
static int m_guard(void *arg) {
  (void)arg;
  setenv("WEFT_PROC_WORKER", "1:0:0", 1);
  weft_procpool *p = NULL;
  T_RC(weft_procpool_new(&p, NULL), WEFT_EINVAL);
  T_ERRMSG_HAS("weft_proc_main");
  unsetenv("WEFT_PROC_WORKER");
  weft_procpool_opts bad = {.size = 9999};
  T_RC(weft_procpool_new(&p, &bad), WEFT_EINVAL);
  T_RC(weft_proc_register("echo", (weft_proc_fn)1), WEFT_EEXIST);
  T_RC(weft_proc_register("", (weft_proc_fn)1), WEFT_EINVAL);
  T_FALSE(weft_proc_is_worker());
  return 0;
}
static void test_guard(void) { T_EQ(t_run(m_guard, NULL), 0); }

static const t_case cases[] = {
    {"payloads", test_payloads},
    {"crashes", test_crashes},
    {"crash_beside", test_crash_beside},
    {"timeout", test_timeout},
    {"cancel", test_cancel},
    {"timeout_behind", test_timeout_behind},
    {"many", test_many},
    {"garbage", test_garbage},
    {"stderr", test_stderr},
    {"max_calls", test_max_calls},
    {"bounded", test_bounded},
    {"shutdown_wait", test_shutdown_wait},
    {"shutdown_cancel", test_shutdown_cancel},
    {"shutdown_timeout", test_shutdown_timeout},
    {"free_busy", test_free_busy},
    {"guard", test_guard},
    {NULL, NULL},
};

int main(void) {
  weft_proc_main(); /* a worker serves here and never returns */
  return t_main("offload-procpool", cases);
}
