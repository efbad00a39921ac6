/* weft — debug aids: the loop-stall detector, task dumps, SIGUSR1. */
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int weft__signal_catch(weft_loop *loop, int signum,
                       void (*cb)(evutil_socket_t, short, void *));

int weft_stall_detector(weft_loop *loop, double threshold) {
  if (loop == NULL || !(threshold >= 0))
    return WEFT_EINVAL;
  loop->stall_ns = (uint64_t)(threshold * 1e9);
  /* The running task (if any) is timed from now, not from the epoch. */
  loop->run_start = weft__clock_real_ns();
  return 0;
}

void weft_debug_output(weft_loop *loop, FILE *out) {
  loop->dbg_out = out ? out : stderr;
}

/* Called when a task ran `ran_ns` without suspending, past the threshold:
 * the loop could serve nothing else meanwhile (the guide's first trap, a
 * blocking call inside a coroutine). */
void weft__stall_check(weft_loop *loop, weft_task *t, uint64_t ran_ns) {
  loop->stats.stalls++;
  fprintf(loop->dbg_out,
          "weft: loop stall: task %llu '%s' (spawned at %s) ran %.1f ms "
          "without yielding (threshold %.1f ms); move blocking calls to "
          "weft_to_thread and CPU-bound work to a process pool\n",
          (unsigned long long)t->id, weft_task_name(t), t->site,
          (double)ran_ns / 1e6, (double)loop->stall_ns / 1e6);
  fflush(loop->dbg_out);
}

static const char *state_name(const weft_task *t) {
  switch (t->state) {
  case WEFT__READY:
    return (t->flags & WEFT__T_STARTED) ? "ready" : "new";
  case WEFT__RUNNING:
    return "running";
  case WEFT__WAITING:
    return "waiting";
  case WEFT__DONE:
    return "done";
  }
  return "?";
}

void weft_dump_tasks(weft_loop *loop, FILE *out) {
  if (loop == NULL)
    return;
  if (out == NULL)
    out = loop->dbg_out;
  fprintf(out, "weft: %llu tasks alive on loop %p\n",
          (unsigned long long)loop->stats.tasks_alive, (void *)loop);
  weft__list *it;
  weft__list_foreach(it, &loop->tasks) {
    weft_task *t = weft__container_of(it, weft_task, all_link);
    fprintf(out, "  task %llu '%s' %s%s", (unsigned long long)t->id,
            weft_task_name(t), state_name(t),
            (t->flags & WEFT__T_CANCELLED) ? " (cancelled)" : "");
    if (t->state == WEFT__WAITING && t->wait_what)
      fprintf(out, " on %s %p", t->wait_what, t->wait_on);
    if (t->heap_idx != 0)
      fprintf(out, ", timer in %.3f s",
              (double)(int64_t)(t->timer_due - loop->now) / 1e9);
    if (t->state == WEFT__DONE)
      fprintf(out, ", result %s", weft_err_name(t->result));
    fprintf(out, ", spawned at %s\n", t->site);
  }
  fflush(out);
}

static void on_usr1(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_loop *loop = arg;
  weft_dump_tasks(loop, loop->dbg_out);
}

int weft_dump_on_sigusr1(weft_loop *loop, bool on) {
  if (loop == NULL)
    return WEFT_EINVAL;
  if (!on) {
    if (loop->usr1_ev) {
      event_free(loop->usr1_ev);
      loop->usr1_ev = NULL;
    }
    return 0;
  }
  if (loop->usr1_ev)
    return 0;
  /* A separate event from weft_signal_wait's, so a task waiting on SIGUSR1
   * and the dump do not steal it from each other: both fire. */
  struct event *ev =
      event_new(loop->base, SIGUSR1, EV_SIGNAL | EV_PERSIST, on_usr1, loop);
  if (ev == NULL)
    return WEFT_ENOMEM;
  if (event_add(ev, NULL) != 0) {
    event_free(ev);
    return WEFT_EBUSY;
  }
  loop->usr1_ev = ev;
  return 0;
}

void weft__debug_init(weft_loop *loop) {
  const char *on = getenv("WEFT_STALL");
  if (on != NULL && *on && strcmp(on, "0") != 0)
    loop->stall_ns = (uint64_t)(WEFT_STALL_DEFAULT * 1e9);
  const char *ms = getenv("WEFT_STALL_MS");
  if (ms != NULL && *ms) {
    double v = strtod(ms, NULL);
    if (v > 0)
      loop->stall_ns = (uint64_t)(v * 1e6);
  }
  const char *u = getenv("WEFT_DEBUG_SIGUSR1");
  if (u != NULL && *u && strcmp(u, "0") != 0)
    (void)weft_dump_on_sigusr1(loop, true);
}

void weft__debug_fini(weft_loop *loop) {
  (void)weft_dump_on_sigusr1(loop, false);
}
