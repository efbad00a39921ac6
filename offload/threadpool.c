/* weft — thread pools (weft/thread.h).
 *
 * A pool is a FIFO of jobs under one mutex and a set of worker threads
 * started on demand. Any loop's tasks submit to it; a job remembers its
 * task's loop and wakes the task there with an embedded thread-safe call
 * (weft__loop_post), so finishing a job can never fail for lack of memory.
 *
 * Lock order: pool->mu, then a loop's tslock (inside weft__loop_post). The
 * tslock is a leaf; nothing is taken while it is held.
 *
 * Who owns a job. A job is shared by its task and its worker; each side lets
 * go exactly once, with one atomic read-modify-write on job->st:
 *   - the worker (or a shutdown failing the job) sets DONE when the result
 *     is there;
 *   - the task sets ABANDONED when it gives up on a job that is not DONE.
 * Whoever comes second frees the job: the task when it sees DONE (it reads
 * the result first), the worker when it sees ABANDONED (it calls `release`).
 * A sleeping task is woken by posting job->wake to its loop; the WAKE bit,
 * set in the same atomic step that decides to post, makes sure the wake is
 * posted at most once, and the task never frees a job whose wake is still
 * in flight (it waits for it, which is bounded: the post is already queued).
 *
 * Speed. Waking a sleeping thread costs tens of µs (about 49 µs on the
 * reference VM), far more than an empty job. So an idle worker spins for a
 * while before it sleeps (at most one spinner per pool, so spinners never
 * crowd out the loop's thread), and a submitting task first checks for its
 * result between turns of its loop (weft_yield) before it parks. Both spins
 * are bounded by time, so an idle pool and an idle loop use no CPU. While a
 * worker spins, submitting costs no system call; while the task spins,
 * finishing costs none either.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/thread.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() ((void)0)
#endif

/* job->st bits. */
enum {
  ST_DONE = 1,      /* result (or err) is set; the worker let go */
  ST_PARKED = 2,    /* the task sleeps and needs a posted wake */
  ST_ABANDONED = 4, /* the task gave up; the worker frees the job */
  ST_WAKE = 8,      /* a wake has been posted (at most one) */
  ST_CUT = 16,      /* shutdown abandoned the running job: fail the task */
};

/* job->where, under pool->mu. */
enum { W_NONE, W_QUEUE, W_WAITQ, W_RUNNING, W_OFF };

typedef struct job {
  weft__list link; /* queue, waitq or running list; under pool->mu */
  weft_threadpool *pool;
  weft_thread_fn fn;
  void *arg;
  void (*release)(void *arg);
  intptr_t result;
  int err; /* WEFT_ECLOSED when a shutdown refused it */
  int st;  /* atomic; ST_* */
  int where;
  weft_loop *loop;
  weft__waiter *w; /* the task's, valid while it may be posted */
  weft__tscall wake;
} job;

struct weft_threadpool {
  pthread_mutex_t mu;
  pthread_cond_t work_cv; /* sleeping workers */
  pthread_cond_t exit_cv; /* shutdown waiting for workers */
  weft__list queue;       /* admitted jobs, FIFO */
  weft__list waitq;       /* jobs waiting for room in the queue */
  weft__list running;     /* jobs a worker runs now */
  size_t queued;          /* atomic reads outside mu: len(queue) */
  size_t waiting;
  size_t nrunning;
  size_t queue_max;
  size_t threads_max;
  size_t threads; /* alive */
  size_t idle;    /* asleep on work_cv */
  size_t spinning;
  uint64_t spin_ns;
  int refs; /* atomic: the user's, plus one per live thread */
  bool closed;
  bool global;
  char name[16];
  /* Counters; atomic where updated outside mu. */
  uint64_t submitted, completed, cancelled, abandoned, refused, waited;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the pool object ---- */

static int opts_read(weft_threadpool_opts *o, const weft_threadpool_opts *in) {
  memset(o, 0, sizeof *o);
  if (in != NULL) {
    if (in->size == 0 || in->size > sizeof *o)
      return WEFT_EINVAL;
    memcpy(o, in, in->size);
  }
  return 0;
}

static int pool_make(weft_threadpool **out, const weft_threadpool_opts *in,
                     const char *env, const char *defname) {
  weft_threadpool_opts o;
  int rc = opts_read(&o, in);
  if (rc != 0)
    return rc;
  weft_threadpool *p = weft__calloc(1, sizeof *p);
  if (p == NULL)
    return WEFT_ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->exit_cv, &ca);
  pthread_condattr_destroy(&ca);
  weft__list_init(&p->queue);
  weft__list_init(&p->waitq);
  weft__list_init(&p->running);
  p->threads_max = o.threads;
  if (p->threads_max == 0 && env != NULL && getenv(env) != NULL) {
    long n = atol(getenv(env));
    if (n > 0 && n <= 1024)
      p->threads_max = (size_t)n;
  }
  if (p->threads_max == 0)
    p->threads_max = 4;
  p->queue_max = o.queue_max ? o.queue_max : 1024;
  double spin = o.spin_us == 0 ? 50 : o.spin_us;
  p->spin_ns = spin > 0 ? (uint64_t)(spin * 1000) : 0;
  snprintf(p->name, sizeof p->name, "%s", o.name ? o.name : defname);
  p->refs = 1;
  *out = p;
  return 0;
}

int weft_threadpool_new(weft_threadpool **out, const weft_threadpool_opts *o) {
  if (out == NULL)
    return WEFT_EINVAL;
  return pool_make(out, o, NULL, "weft-pool");
}

static void pool_unref(weft_threadpool *p) {
  if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  assert(p->threads == 0);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->exit_cv);
  weft__free(p);
}

/* ---- finishing a job ---- */

static void wake_cb(void *arg) {
  job *j = arg;
  weft__waiter *w = j->w;
  /* The task frees the job only after seeing w->done, and it cannot run
   * before this callback returns (same thread): j stays valid here. */
  w->done = true;
  weft__wake(w->task, 0);
}

static void post_wake(job *j) {
  j->wake.fn = wake_cb;
  j->wake.arg = j;
  j->wake.owned = false;
  /* A loop cannot be freed while one of its tasks waits, so this cannot
   * fail; if it ever did, the task would be stuck, so say so loudly. */
  int rc = weft__loop_post(j->loop, &j->wake);
  assert(rc == 0);
  (void)rc;
}

static void pool_unref(weft_threadpool *p);

static void job_free(job *j) {
  weft_threadpool *p = j->pool;
  weft__free(j);
  pool_unref(p);
}

/* Sets `bits` on j->st in one step, adding ST_WAKE when this step is the one
 * that must wake a parked task. Returns the old value. */
static int settle(job *j, int bits) {
  int old = __atomic_load_n(&j->st, __ATOMIC_ACQUIRE);
  for (;;) {
    int nv = old | bits;
    if ((old & ST_PARKED) && !(old & (ST_WAKE | ST_ABANDONED)))
      nv |= ST_WAKE;
    if (__atomic_compare_exchange_n(&j->st, &old, nv, true, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
      return old;
  }
}

/* The worker's side: the result is in; let go of the job. */
static void job_done(job *j) {
  void (*release)(void *) = j->release;
  void *arg = j->arg;
  int old = settle(j, ST_DONE);
  if (old & ST_ABANDONED) {
    /* The task is gone; we are the last owner. */
    if (release != NULL)
      release(arg);
    job_free(j);
  } else if ((old & ST_PARKED) && !(old & ST_WAKE)) {
    post_wake(j);
  }
}

/* ---- workers ---- */

static void *worker_main(void *arg);

/* Starts one more worker. Called under p->mu. */
static int spawn_worker(weft_threadpool *p) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* Workers take no signals: they belong to the loops' threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t th;
  __atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
  p->threads++;
  int err = pthread_create(&th, &attr, worker_main, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    p->threads--;
    __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
    return -err;
  }
  return 0;
}

/* Moves the oldest submitter waiting for room into the queue. Under mu. */
static void admit_waiting(weft_threadpool *p) {
  weft__list *n = weft__list_pop_front(&p->waitq);
  if (n == NULL)
    return;
  job *j = weft__container_of(n, job, link);
  p->waiting--;
  j->where = W_QUEUE;
  weft__list_push_back(&p->queue, &j->link);
  __atomic_store_n(&p->queued, p->queued + 1, __ATOMIC_RELEASE);
}

/* Spins (mu released) until the queue has work or spin_ns passes. Returns
 * with mu held. */
static void spin_for_work(weft_threadpool *p) {
  p->spinning++;
  pthread_mutex_unlock(&p->mu);
  uint64_t until = now_ns() + p->spin_ns;
  for (unsigned i = 1;; i++) {
    if (__atomic_load_n(&p->queued, __ATOMIC_ACQUIRE) != 0 ||
        __atomic_load_n(&p->closed, __ATOMIC_ACQUIRE))
      break;
    cpu_relax();
    if ((i & 127) == 0)
      sched_yield(); /* a loop's thread may need this core */
    if ((i & 63) == 0 && now_ns() >= until)
      break;
  }
  pthread_mutex_lock(&p->mu);
  p->spinning--;
}

static void *worker_main(void *arg) {
  weft_threadpool *p = arg;
  pthread_setname_np(pthread_self(), p->name);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (weft__list_empty(&p->queue) && !p->closed && p->spin_ns > 0 &&
        p->spinning == 0)
      spin_for_work(p);
    while (weft__list_empty(&p->queue) && !p->closed) {
      p->idle++;
      pthread_cond_wait(&p->work_cv, &p->mu);
      p->idle--;
    }
    if (weft__list_empty(&p->queue))
      break; /* closed and drained */
    job *j = weft__container_of(weft__list_pop_front(&p->queue), job, link);
    __atomic_store_n(&p->queued, p->queued - 1, __ATOMIC_RELEASE);
    admit_waiting(p);
    j->where = W_RUNNING;
    weft__list_push_back(&p->running, &j->link);
    p->nrunning++;
    /* More work than hands: wake a sleeper, or start a worker, unless
     * someone already spins. */
    if (!weft__list_empty(&p->queue) && p->spinning == 0) {
      if (p->idle > 0)
        pthread_cond_signal(&p->work_cv);
      else if (p->threads < p->threads_max)
        (void)spawn_worker(p); /* no thread: the ones there carry on */
    }
    pthread_mutex_unlock(&p->mu);

    j->result = j->fn(j->arg);

    pthread_mutex_lock(&p->mu);
    weft__list_remove(&j->link);
    j->where = W_OFF;
    p->nrunning--;
    p->completed++;
    pthread_mutex_unlock(&p->mu);
    /* Off the running list, a shutdown no longer sees it. Shutdown may have
     * failed the task already (ST_CUT); either way we are done with it.
     * `release` is user code: never call it under mu. */
    job_done(j);
    pthread_mutex_lock(&p->mu);
  }
  p->threads--;
  pthread_cond_broadcast(&p->exit_cv);
  pthread_mutex_unlock(&p->mu);
  pool_unref(p);
  return NULL;
}

/* ---- submitting and waiting ---- */

static int submit(weft_threadpool *p, job *j) {
  pthread_mutex_lock(&p->mu);
  if (p->closed) {
    pthread_mutex_unlock(&p->mu);
    return WEFT_ECLOSED;
  }
  p->submitted++;
  if (p->queued < p->queue_max) {
    j->where = W_QUEUE;
    weft__list_push_back(&p->queue, &j->link);
    __atomic_store_n(&p->queued, p->queued + 1, __ATOMIC_RELEASE);
  } else {
    j->where = W_WAITQ;
    weft__list_push_back(&p->waitq, &j->link);
    p->waiting++;
    p->waited++;
  }
  if (p->spinning == 0) {
    if (p->idle > 0) {
      pthread_cond_signal(&p->work_cv);
    } else if (p->threads < p->threads_max) {
      int rc = spawn_worker(p);
      if (rc != 0 && p->threads == 0) {
        /* No worker at all: the job would never run. */
        weft__list_remove(&j->link);
        if (j->where == W_QUEUE)
          __atomic_store_n(&p->queued, p->queued - 1, __ATOMIC_RELEASE);
        else
          p->waiting--;
        j->where = W_NONE;
        p->submitted--;
        pthread_mutex_unlock(&p->mu);
        return rc == -EAGAIN ? WEFT_EAGAIN : WEFT_ENOMEM;
      }
    }
  }
  pthread_mutex_unlock(&p->mu);
  return 0;
}

/* The task lets go of j: returns true when the job is finished (the caller
 * takes the result and frees it), false when it is now the worker's to free.
 * A wake still in flight points at j and the task's waiter, so it must land
 * before either may go; waiting for it is bounded (it is already posted). */
static bool let_go(job *j, weft__waiter *w) {
  int old = __atomic_load_n(&j->st, __ATOMIC_ACQUIRE);
  for (;;) {
    if ((old & ST_WAKE) && !w->done) {
      while (!w->done)
        (void)weft__park("thread job wake", j, WEFT__PARK_NOCANCEL);
      old = __atomic_load_n(&j->st, __ATOMIC_ACQUIRE);
      continue;
    }
    if (old & ST_DONE)
      return true;
    if (__atomic_compare_exchange_n(&j->st, &old, old | ST_ABANDONED, true,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      return false;
  }
}

/* The task gives up on j (cancelled, deadline). Returns true when the job
 * turned out to be finished anyway (the caller takes the result), false when
 * it is gone: removed before it started, or left to its worker. */
static bool give_up(weft_threadpool *p, job *j, weft__waiter *w) {
  pthread_mutex_lock(&p->mu);
  if (j->where == W_QUEUE || j->where == W_WAITQ) {
    /* Not started: it never will. No wake can be in flight for it. */
    weft__list_remove(&j->link);
    if (j->where == W_QUEUE) {
      __atomic_store_n(&p->queued, p->queued - 1, __ATOMIC_RELEASE);
      admit_waiting(p);
    } else {
      p->waiting--;
    }
    j->where = W_NONE;
    p->cancelled++;
    pthread_mutex_unlock(&p->mu);
    if (j->release != NULL)
      j->release(j->arg);
    job_free(j);
    return false;
  }
  pthread_mutex_unlock(&p->mu);
  if (let_go(j, w))
    return true;
  __atomic_add_fetch(&p->abandoned, 1, __ATOMIC_RELAXED);
  return false;
}

int weft_to_thread_opts(weft_thread_fn fn, void *arg, intptr_t *result,
                        const weft_thread_opts *opts) {
  WEFT__NEED_TASK(t);
  weft_thread_opts o = {0};
  if (opts != NULL) {
    if (opts->size == 0 || opts->size > sizeof o)
      return WEFT_EINVAL;
    memcpy(&o, opts, opts->size);
  }
  if (fn == NULL)
    return WEFT_EINVAL;
  weft_threadpool *p = o.pool ? o.pool : weft_threadpool_default(0);
  if (p == NULL)
    return WEFT_ENOMEM;
  /* A task already cancelled never submits (a checkpoint, as every wait). */
  int rc = weft__checkpoint(t);
  if (rc != 0) {
    if (o.release != NULL)
      o.release(arg);
    return rc;
  }
  job *j = weft__malloc(sizeof *j);
  if (j == NULL)
    return WEFT_ENOMEM;
  memset(j, 0, sizeof *j);
  weft__list_init(&j->link);
  j->pool = p;
  j->fn = fn;
  j->arg = arg;
  j->release = o.release;
  j->loop = t->loop;
  weft__waiter w;
  weft__waiter_init(&w, t);
  j->w = &w;
  __atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL); /* dropped by job_free */
  rc = submit(p, j);
  if (rc != 0) {
    job_free(j);
    if (rc == WEFT_ECLOSED && o.release != NULL)
      o.release(arg);
    return rc;
  }

  /* Spin: check for the result between turns of the loop. Other tasks run
   * meanwhile (weft_yield), and cancellation and deadlines apply. */
  if (p->spin_ns > 0) {
    uint64_t until = now_ns() + p->spin_ns;
    while (!(__atomic_load_n(&j->st, __ATOMIC_ACQUIRE) & (ST_DONE | ST_CUT))) {
      rc = weft_yield();
      if (rc != 0)
        goto cancelled;
      if (now_ns() >= until)
        break;
    }
  }
  /* Park, announcing it (ST_PARKED) unless the job is already over: only a
   * parked task gets a posted wake. */
  int old = __atomic_load_n(&j->st, __ATOMIC_ACQUIRE);
  while (!(old & (ST_DONE | ST_CUT))) {
    if (__atomic_compare_exchange_n(&j->st, &old, old | ST_PARKED, true,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      do
        rc = weft__park("thread job", j, 0);
      while (rc == 0 && !w.done);
      if (rc != 0 && !w.done)
        goto cancelled;
      break;
    }
  }
  if (!let_go(j, &w))
    return WEFT_ECLOSED; /* shutdown cut it loose; the worker releases */
  goto finished;

cancelled:
  if (!give_up(p, j, &w))
    return rc;
  /* The job finished as we gave up: it counts as done. */

finished:
  rc = j->err;
  if (rc == 0 && result != NULL)
    *result = j->result;
  if (rc != 0 && o.release != NULL)
    o.release(arg);
  job_free(j);
  return rc;
}

int weft_to_thread(weft_thread_fn fn, void *arg, intptr_t *result) {
  return weft_to_thread_opts(fn, arg, result, NULL);
}

/* ---- shutdown ---- */

/* Fails a job that never started with WEFT_ECLOSED. Under mu. */
static void refuse(weft_threadpool *p, job *j) {
  j->where = W_OFF;
  j->err = WEFT_ECLOSED;
  p->refused++;
  job_done(j); /* frees it (and releases) when its task already gave up */
}

static void close_pool(weft_threadpool *p) {
  pthread_mutex_lock(&p->mu);
  if (!p->closed) {
    __atomic_store_n(&p->closed, true, __ATOMIC_RELEASE);
    weft__list *n;
    while ((n = weft__list_pop_front(&p->queue)) != NULL)
      refuse(p, weft__container_of(n, job, link));
    __atomic_store_n(&p->queued, 0, __ATOMIC_RELEASE);
    while ((n = weft__list_pop_front(&p->waitq)) != NULL)
      refuse(p, weft__container_of(n, job, link));
    p->waiting = 0;
    pthread_cond_broadcast(&p->work_cv);
  }
  pthread_mutex_unlock(&p->mu);
}

/* Fails the callers of jobs still running (their workers are abandoned).
 * Under mu. */
static void cut_running(weft_threadpool *p) {
  weft__list *it;
  weft__list_foreach(it, &p->running) {
    job *j = weft__container_of(it, job, link);
    int old = settle(j, ST_CUT);
    if (!(old & (ST_CUT | ST_ABANDONED | ST_DONE))) {
      __atomic_add_fetch(&p->abandoned, 1, __ATOMIC_RELAXED);
      if ((old & ST_PARKED) && !(old & ST_WAKE))
        post_wake(j);
    }
  }
}

int weft_threadpool_shutdown(weft_threadpool *p, double timeout) {
  if (p == NULL)
    return WEFT_EINVAL;
  close_pool(p);
  uint64_t until = now_ns();
  if (timeout > 0)
    until += timeout >= 1e9 ? (uint64_t)1e18 : (uint64_t)(timeout * 1e9);
  weft_task *t = weft__loop() ? weft__loop()->current : NULL;
  int rc = 0;
  pthread_mutex_lock(&p->mu);
  while (p->threads > 0) {
    uint64_t now = now_ns();
    if (now >= until) {
      rc = WEFT_ETIMEDOUT;
      break;
    }
    if (t != NULL) {
      /* On a loop: poll, so the loop's other tasks (and the wakes of this
       * pool's jobs) keep going. */
      pthread_mutex_unlock(&p->mu);
      uint64_t step = until - now < 1000000 ? until - now : 1000000;
      int src = weft_sleep((double)step / 1e9);
      pthread_mutex_lock(&p->mu);
      if (src != 0) {
        rc = src;
        break;
      }
    } else {
      struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                            .tv_nsec = (long)(until % 1000000000u)};
      pthread_cond_timedwait(&p->exit_cv, &p->mu, &ts);
    }
  }
  if (p->threads > 0)
    cut_running(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void weft_threadpool_free(weft_threadpool *p) {
  if (p == NULL || p->global)
    return;
  (void)weft_threadpool_shutdown(p, 0);
  pool_unref(p);
}

void weft_threadpool_stats_get(weft_threadpool *p, weft_threadpool_stats *s) {
  memset(s, 0, sizeof *s);
  pthread_mutex_lock(&p->mu);
  s->submitted = p->submitted;
  s->completed = p->completed;
  s->cancelled = p->cancelled;
  s->abandoned = __atomic_load_n(&p->abandoned, __ATOMIC_RELAXED);
  s->refused = p->refused;
  s->waited = p->waited;
  s->queued = p->queued;
  s->waiting = p->waiting;
  s->running = p->nrunning;
  s->threads = p->threads;
  s->queue_max = p->queue_max;
  s->threads_max = p->threads_max;
  pthread_mutex_unlock(&p->mu);
}

/* ---- the process-wide pools ---- */

/* The only process-wide state of offload/: the two pools, each made once
 * (under glock) and never freed, as libuv's default pool. */
static pthread_mutex_t glock = PTHREAD_MUTEX_INITIALIZER;
static weft_threadpool *gpool[2];
static weft_threadpool_opts gopts[2];
static bool gopts_set[2];

weft_threadpool *weft_threadpool_default(int kind) {
  if (kind != WEFT_POOL_BLOCKING && kind != WEFT_POOL_FS)
    return NULL;
  weft_threadpool *p = __atomic_load_n(&gpool[kind], __ATOMIC_ACQUIRE);
  if (p != NULL)
    return p;
  pthread_mutex_lock(&glock);
  p = gpool[kind];
  if (p == NULL) {
    static const char *const env[2] = {"WEFT_THREADPOOL_SIZE",
                                       "WEFT_FSPOOL_SIZE"};
    static const char *const names[2] = {"weft-blocking", "weft-fs"};
    if (pool_make(&p, gopts_set[kind] ? &gopts[kind] : NULL, env[kind],
                  names[kind]) == 0) {
      p->global = true;
      __atomic_store_n(&gpool[kind], p, __ATOMIC_RELEASE);
    } else {
      p = NULL;
    }
  }
  pthread_mutex_unlock(&glock);
  return p;
}

int weft_threadpool_default_config(int kind, const weft_threadpool_opts *o) {
  if (kind != WEFT_POOL_BLOCKING && kind != WEFT_POOL_FS)
    return WEFT_EINVAL;
  weft_threadpool_opts tmp;
  int rc = opts_read(&tmp, o);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&glock);
  if (gpool[kind] != NULL) {
    pthread_mutex_unlock(&glock);
    return WEFT_EBUSY;
  }
  gopts[kind] = tmp;
  gopts[kind].size = sizeof tmp;
  gopts[kind].name = NULL; /* not copied: the default name is used */
  gopts_set[kind] = o != NULL;
  pthread_mutex_unlock(&glock);
  return 0;
}
