/* weft — eager start (asyncio's eager_task_factory, Python 3.12).
 *
 * A protocol driver learns in a libevent callback that a request is
 * complete, and spawns its handler's task. Queued, the task runs later in
 * the turn, after the callbacks of every other ready connection: with
 * thousands of requests arriving in one turn, each request's memory has
 * left the cache by the time its handler runs. Run at once, the handler
 * finds the request where the parser just wrote it.
 *
 * The task runs ahead of the tasks already queued, which keep their turn:
 * they are set aside, the run queue holds only the new task, and one
 * scheduler pass runs it (and whatever it wakes) until it returns or parks;
 * then the set-aside tasks go back in front of anything it woke.
 */
#include "eager.h"

bool weft__task_run_now(weft_task *t) {
  weft_loop *loop = t->loop;
  if (loop != weft__tls_loop || loop->current != NULL || !loop->running ||
      t->state != WEFT__READY || (t->flags & WEFT__T_STARTED))
    return false;
  weft__list queued;
  weft__list_init(&queued);
  weft__list_remove(&t->link);
  weft__list_splice(&queued, &loop->runq);
  weft__list_push_back(&loop->runq, &t->link);
  unsigned budget = loop->budget;
  weft__run_ready(loop);
  loop->budget = budget;
  weft__list_splice(&queued, &loop->runq);
  weft__list_splice(&loop->runq, &queued);
  return true;
}
