/* weft — many cores: one loop per thread (weft_run_workers).
 *
 * Each worker is a thread with a loop of its own, running the user's main as
 * the loop's first task. The workers share nothing but the small record
 * below, reached only under its mutex: who is still running (to cancel them
 * when one fails) and the stop futures behind weft_workers_wait_stop().
 *
 * Lock order: workers.mu, then a loop's tslock (weft_loop_call_threadsafe and
 * weft_future_resolve take it inside). Nothing is taken while tslock is
 * held, so there is no cycle.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "internal.h"

typedef struct worker {
  struct workers *ws;
  int index;
  pthread_t thread;
  bool started;    /* the thread exists and must be joined */
  weft_loop *loop; /* while its main task runs; under ws->mu */
  weft_task *task; /* the main task, while it runs; under ws->mu */
  weft_future *stop;
  int result;
} worker;

typedef struct workers {
  pthread_mutex_t mu;
  int n;
  weft_task_fn main;
  void *arg;
  const weft_loop_opts *opts;
  int first_error; /* the first failure, in time */
  bool stopping;
  worker *w;
} workers;

static __thread worker *tls_worker;

/* Runs on the worker's own loop thread, outside any task. The task pointer
 * is cleared by this same thread before the main task returns, so it is
 * either still running here or already NULL. */
static void cancel_cb(void *arg) {
  worker *w = arg;
  pthread_mutex_lock(&w->ws->mu);
  weft_task *t = w->task;
  pthread_mutex_unlock(&w->ws->mu);
  if (t != NULL)
    weft_cancel(t);
}

/* With ws->mu held: cancels the main task of every worker but `except`. A
 * worker whose main has not started yet sees first_error when it starts. */
static void cancel_others(workers *ws, const worker *except) {
  for (int i = 0; i < ws->n; i++) {
    worker *w = &ws->w[i];
    if (w != except && w->task != NULL)
      (void)weft_loop_call_threadsafe(w->loop, cancel_cb, w);
  }
}

static void record_failure(workers *ws, const worker *w, int rc) {
  pthread_mutex_lock(&ws->mu);
  if (ws->first_error == 0) {
    ws->first_error = rc;
    cancel_others(ws, w);
  }
  pthread_mutex_unlock(&ws->mu);
}

/* The first task of a worker's loop: publishes itself for cancellation and
 * stop requests, then runs the user's main. */
static int worker_main(void *arg) {
  worker *w = arg;
  workers *ws = w->ws;
  weft_future *stop;
  int rc = weft_future_new(&stop);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&ws->mu);
  w->loop = weft_loop_current();
  w->task = weft_current();
  w->stop = stop;
  bool failed = ws->first_error != 0;
  if (ws->stopping)
    (void)weft_future_resolve(stop, NULL);
  pthread_mutex_unlock(&ws->mu);
  if (failed)
    weft_cancel(weft_current()); /* another worker failed before we began */

  rc = ws->main(ws->arg);

  pthread_mutex_lock(&ws->mu);
  w->task = NULL;
  w->loop = NULL;
  w->stop = NULL;
  pthread_mutex_unlock(&ws->mu);
  weft_future_free(stop);
  return rc;
}

static void *worker_thread(void *arg) {
  worker *w = arg;
  tls_worker = w;
  weft_loop *loop;
  int rc = weft_loop_new(&loop, w->ws->opts);
  if (rc == 0) {
    int result = 0;
    rc = weft_loop_run(loop, worker_main, w, &result);
    if (rc == 0)
      rc = result;
    if (weft_loop_free(loop) != 0) {
      /* The same leak report weft_run gives; the memory stays lost. */
      fprintf(stderr,
              "weft: worker %d's loop ended with objects never "
              "freed; they leak\n",
              w->index);
      loop->stats.objects_alive = 0;
      (void)weft_loop_free(loop);
    }
  }
  w->result = rc;
  if (rc < 0 && rc != WEFT_ECANCELED)
    record_failure(w->ws, w, rc);
  tls_worker = NULL;
  return NULL;
}

int weft_run_workers_opts(int n, weft_task_fn main, void *arg,
                          const weft_loop_opts *opts) {
  if (main == NULL)
    return WEFT_EINVAL;
  if (n <= 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    n = cpus > 0 ? (int)cpus : 1;
  }
  workers ws = {.n = n, .main = main, .arg = arg, .opts = opts};
  ws.w = weft__calloc((size_t)n, sizeof *ws.w);
  if (ws.w == NULL)
    return WEFT_ENOMEM;
  pthread_mutex_init(&ws.mu, NULL);
  int start_err = 0;
  for (int i = 0; i < n; i++) {
    worker *w = &ws.w[i];
    w->ws = &ws;
    w->index = i;
    int e = pthread_create(&w->thread, NULL, worker_thread, w);
    if (e != 0) {
      start_err = -e;
      record_failure(&ws, NULL, start_err);
      break;
    }
    w->started = true;
  }
  for (int i = 0; i < n; i++)
    if (ws.w[i].started)
      pthread_join(ws.w[i].thread, NULL);
  int rc = ws.first_error;
  pthread_mutex_destroy(&ws.mu);
  weft__free(ws.w);
  return rc;
}

int weft_run_workers(int n, weft_task_fn main, void *arg) {
  return weft_run_workers_opts(n, main, arg, NULL);
}

int weft_worker_index(void) { return tls_worker ? tls_worker->index : -1; }

int weft_worker_count(void) { return tls_worker ? tls_worker->ws->n : 0; }

int weft_workers_stop(void) {
  worker *me = tls_worker;
  if (me == NULL)
    return WEFT_EINVAL;
  workers *ws = me->ws;
  pthread_mutex_lock(&ws->mu);
  if (!ws->stopping) {
    ws->stopping = true;
    /* A worker whose main has not started yet resolves its own future when
     * it starts; one that has returned no longer listens. */
    for (int i = 0; i < ws->n; i++)
      if (ws->w[i].stop != NULL)
        (void)weft_future_resolve(ws->w[i].stop, NULL);
  }
  pthread_mutex_unlock(&ws->mu);
  return 0;
}

bool weft_workers_stopping(void) {
  worker *me = tls_worker;
  if (me == NULL)
    return false;
  pthread_mutex_lock(&me->ws->mu);
  bool s = me->ws->stopping;
  pthread_mutex_unlock(&me->ws->mu);
  return s;
}

int weft_workers_wait_stop(void) {
  WEFT__NEED_TASK(t);
  worker *me = tls_worker;
  /* The future lives as long as the worker's main runs, on its loop. */
  if (me == NULL || me->stop == NULL || t->loop != weft__tls_loop)
    return WEFT_EINVAL;
  return weft_future_await(me->stop, NULL);
}
