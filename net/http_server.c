/* weft — the HTTP server: connections taken from weft_serve's accept hook,
 * timeouts, graceful shutdown, counters, /metrics, the access log, and the
 * request/response API that calls into the protocol drivers
 * (http_int.h, docs/internals/http.md).
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <weft/debug.h>
#include <weft/task.h>

#include "http_int.h"

/* ---- defaults ---- */

static void fill_defaults(weft_http_server_opts *o) {
#define DEF(f, v)                                                              \
  if (o->f == 0)                                                               \
  o->f = (v)
  DEF(max_target, 8 * 1024);
  DEF(max_header_bytes, 32 * 1024);
  DEF(max_headers, 100);
  DEF(max_body, 1024 * 1024);
  DEF(header_timeout, 60);
  DEF(body_timeout, 60);
  DEF(send_timeout, 60);
  DEF(keepalive_timeout, 75);
  DEF(h2_max_streams, 100);
  DEF(h2_stream_window, 256 * 1024);
  DEF(h2_conn_window, 1024 * 1024);
  DEF(h2_max_glitches, 1000);
#undef DEF
}

/* ---- timeouts ---- */

static void tick_update(weft_http_server *s);

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_http_server *s = arg;
  uint64_t now = weft__clock_real_ns();
  /* weft_now_ns() is the loop's cached clock, which deadlines were set
   * with; compare with whichever is later. */
  uint64_t cached = weft_now_ns();
  if (cached > now)
    now = cached;
  for (int q = 0; q < TQ_COUNT; q++) {
    weft__list *n;
    while ((n = weft__list_front(&s->tq[q])) != NULL) {
      hconn *c = weft__container_of(n, hconn, tlink);
      if (c->deadline > now)
        break;
      weft__list_remove(n);
      if (c->kind == HC_H1)
        weft__h1_conn_timeout(c, q);
      else if (c->kind == HC_H2)
        weft__h2_conn_timeout(c);
      else
        weft__hconn_close(c);
    }
  }
}

static void tick_update(weft_http_server *s) {
  bool want = s->nconns > 0;
  if (want == s->ticking)
    return;
  if (want) {
    uint64_t t = s->tq_ns[TQ_IDLE] < s->tq_ns[TQ_HEAD] ? s->tq_ns[TQ_IDLE]
                                                       : s->tq_ns[TQ_HEAD];
    double period = (double)t / 8e9;
    if (period > 1)
      period = 1;
    if (period < 0.005)
      period = 0.005;
    long us = (long)(period * 1e6);
    struct timeval tv = {.tv_sec = us / 1000000, .tv_usec = us % 1000000};
    if (event_add(s->tick, &tv) == 0)
      s->ticking = true;
  } else {
    event_del(s->tick);
    s->ticking = false;
  }
}

/* ---- connections ---- */

static void really_free(weft_http_server *s) {
  if (s->tick != NULL)
    event_free(s->tick);
  if (s->flush_ev != NULL)
    event_free(s->flush_ev);
  while (s->free_reqs != NULL) {
    weft__list *n = s->free_reqs;
    s->free_reqs = n->next;
    weft_http_request *r = (weft_http_request *)n;
    weft__http_msg_fini(&r->req);
    weft__http_msg_fini(&r->res);
    weft__free(r);
  }
  weft__h1_cache_free(s);
  weft__h2_cache_free(s);
  weft_server_free(s->listener);
  weft__free(s->metrics_path);
  weft__obj_del(s->loop);
  weft__free(s);
}

static void conn_gone(weft_http_server *s) {
  s->nconns--;
  tick_update(s);
  if (s->nconns == 0) {
    weft__waiters_complete_all(&s->drained, 0);
    if (s->freed && s->busy == 0)
      really_free(s);
  }
}

void weft__hconn_free(hconn *c) {
  assert(c->kind == HC_DEAD);
  weft_http_server *s = c->srv;
  weft__h1_conn_free(c);
  weft__h2_conn_free(c);
  weft__list_remove(&c->link);
  weft__free(c);
  conn_gone(s);
}

void weft__hconn_close(hconn *c) {
  if (c->kind == HC_DEAD)
    return;
  weft_http_server *s = c->srv;
  int kind = c->kind;
  c->kind = HC_DEAD;
  weft__hconn_timeout(c, -1);
  if (c->st != NULL) {
    weft_stream_free(c->st); /* tasks waiting on it wake: ECANCELED */
    c->st = NULL;
  }
  s->stats.active--;
  weft_server_conn_done(s->listener);
  if (kind == HC_H2)
    weft__h2_conn_cancel(c);
  else if (c->task != NULL)
    weft_cancel(c->task);
  weft__hconn_unref(c); /* the connection's own reference */
}

int weft__http_spawn(weft_http_server *s, weft_task_fn fn, void *arg,
                     weft_task **out) {
  /* The runtime's inline spawn: a task a request, no options to copy. */
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_task *t =
      weft__task_new(loop, fn, arg, s->o.stack_size, "weft_http_serve");
  if (t == NULL)
    return WEFT_ENOMEM;
  t->flags |= WEFT__T_DETACHED; /* valid until fn returns */
  weft__task_start(t);
  if (out != NULL)
    *out = t;
  return 0;
}

/* After the TLS handshake: h2 when the client chose it. */
static int tls_main(void *arg) {
  hconn *c = arg;
  weft_http_server *s = c->srv;
  weft_timeout scope;
  weft_timeout_enter(&scope, s->o.header_timeout);
  int rc = weft_stream_start_tls(c->st, s->o.tls, NULL);
  (void)weft_timeout_exit(&scope);
  c->task = NULL;
  if (c->kind == HC_DEAD) {
    weft__hconn_unref(c);
    return 0;
  }
  if (rc != 0) {
    s->stats.tls_failures++;
    weft__hconn_close(c);
    weft__hconn_unref(c);
    return 0;
  }
  const char *alpn = weft_stream_tls_alpn(c->st);
  if (alpn != NULL && strcmp(alpn, "h2") == 0 && s->o.h2 >= 0) {
    c->kind = HC_H2;
    if (weft__h2_conn_start(c, NULL, 0, NULL, NULL) != 0)
      weft__hconn_close(c);
  } else {
    c->kind = HC_H1;
    weft__h1_conn_start(c, NULL, 0);
  }
  weft__hconn_unref(c);
  return 0;
}

static int on_accept(weft_server *l, int fd, void *arg) {
  (void)l;
  weft_http_server *s = arg;
  hconn *c = weft__calloc(1, sizeof *c);
  if (c == NULL)
    return WEFT_ENOMEM;
  if (weft_stream_from_fd(&c->st, fd, NULL) != 0) {
    weft__free(c);
    return WEFT_ENOMEM;
  }
  c->srv = s;
  c->refs = 1;
  weft__list_init(&c->tlink);
  weft__list_push_back(&s->conns, &c->link);
  s->nconns++;
  s->stats.connections++;
  s->stats.active++;
  tick_update(s);
  if (s->o.tls != NULL) {
    c->kind = HC_TLS;
    c->tls = true;
    c->refs++;
    if (weft__http_spawn(s, tls_main, c, &c->task) != 0) {
      c->refs--;
      weft__hconn_close(c);
    }
    return 0;
  }
  c->kind = HC_H1;
  weft__h1_conn_start(c, NULL, 0);
  return 0;
}

/* ---- the server ---- */

int weft_http_serve(weft_http_server **out, const weft_addr *addr,
                    weft_http_handler handler, void *arg,
                    const weft_http_server_opts *opts) {
  if (out == NULL)
    return WEFT_EINVAL;
  *out = NULL;
  if (addr == NULL || handler == NULL)
    return WEFT_EINVAL;
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_http_server_opts o = {0};
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  o.size = sizeof o;
  fill_defaults(&o);
  if (!(o.header_timeout > 0) || !(o.body_timeout > 0) ||
      !(o.send_timeout > 0) || !(o.keepalive_timeout > 0) ||
      o.max_target > o.max_header_bytes || o.h2_stream_window > 0x7fffffff ||
      o.h2_conn_window > 0x7fffffff)
    return WEFT_EINVAL;
  if (o.metrics_path != NULL && o.metrics_path[0] != '/')
    return WEFT_EINVAL;
  weft_http_server *s = weft__calloc(1, sizeof *s);
  if (s == NULL)
    return WEFT_ENOMEM;
  s->loop = loop;
  s->fn = handler;
  s->arg = arg;
  s->o = o;
  weft__list_init(&s->conns);
  weft__list_init(&s->drained);
  for (int q = 0; q < TQ_COUNT; q++)
    weft__list_init(&s->tq[q]);
  s->tq_ns[TQ_IDLE] = (uint64_t)(o.keepalive_timeout * 1e9);
  s->tq_ns[TQ_HEAD] = (uint64_t)(o.header_timeout * 1e9);
  /* nginx's lingering_timeout: how long a closing connection's input is
   * still read (and dropped) so the client sees the answer, not a reset. */
  s->tq_ns[TQ_LINGER] = 2000000000u;
  s->h1lim = (weft__h1_limits){o.max_target, o.max_header_bytes, o.max_headers};
  weft__h1_init(&s->h1proto, WEFT__HTTP_REQUEST, NULL, &s->h1lim);
  s->h2lim = (weft__h2_limits){o.h2_max_streams, o.h2_stream_window,
                               o.h2_conn_window, o.max_header_bytes,
                               o.max_headers,    o.h2_max_glitches};
  int rc = WEFT_ENOMEM;
  if (o.metrics_path != NULL &&
      (s->metrics_path = weft__strdup(o.metrics_path)) == NULL)
    goto fail;
  s->o.metrics_path = s->metrics_path;
  s->metrics_len = s->metrics_path != NULL ? strlen(s->metrics_path) : 0;
  s->tick = event_new(loop->base, -1, EV_PERSIST, on_tick, s);
  s->flush_ev = event_new(loop->base, -1, 0, weft__h2_flush_dirty, s);
  weft__list_init(&s->dirty);
  if (s->tick == NULL || s->flush_ev == NULL)
    goto fail;
  weft_server_opts so = {.size = sizeof so,
                         .backlog = o.backlog,
                         .max_connections = o.max_connections,
                         .reuse_port = o.reuse_port,
                         .v6only = o.v6only,
                         .accept = on_accept};
  rc = weft_serve(&s->listener, addr, NULL, s, &so);
  if (rc != 0)
    goto fail;
  weft__obj_add(loop);
  *out = s;
  return 0;
fail:
  if (s->tick != NULL)
    event_free(s->tick);
  if (s->flush_ev != NULL)
    event_free(s->flush_ev);
  weft__free(s->metrics_path);
  weft__free(s);
  return rc;
}

int weft_http_server_addr(const weft_http_server *s, weft_addr *out) {
  if (s == NULL || out == NULL)
    return WEFT_EINVAL;
  return weft_server_addr(s->listener, out);
}

void weft_http_server_stats_get(const weft_http_server *s,
                                weft_http_server_stats *out) {
  *out = s->stats;
  out->idle = 0;
  const weft__list *it;
  weft__list_foreach(it, &s->tq[TQ_IDLE]) out->idle++;
  /* Live HTTP/2 sessions count their resets; a closed one added its own. */
  weft__list_foreach(it, &s->conns) {
    const hconn *c = weft__container_of(it, hconn, link);
    if (c->kind == HC_H2)
      out->h2_resets_recv += weft__h2_conn_resets(c);
  }
}

/* Starts the graceful part: no new connections, idle ones closed, busy
 * ones told to finish. */
static void begin_shutdown(weft_http_server *s) {
  if (s->closing)
    return;
  s->closing = true;
  weft_server_close(s->listener);
  weft__list *n = s->conns.next;
  while (n != &s->conns) {
    hconn *c = weft__container_of(n, hconn, link);
    n = n->next;
    c->closing = true;
    if (c->kind == HC_H1)
      weft__h1_conn_shutdown(c);
    else if (c->kind == HC_H2)
      weft__h2_conn_shutdown(c);
  }
}

/* Closes every connection now; returns how many handlers were cancelled. */
static int close_all(weft_http_server *s) {
  int cancelled = (int)s->stats.in_flight;
  weft__list *n = s->conns.next;
  while (n != &s->conns) {
    hconn *c = weft__container_of(n, hconn, link);
    c->refs++; /* keep it while its neighbours go */
    weft__hconn_close(c);
    n = n->next;
    weft__hconn_unref(c);
  }
  return cancelled;
}

static int wait_drained(weft_http_server *s, weft_task *t, int flags) {
  while (s->nconns > 0) {
    weft__waiter w;
    weft__waiter_init(&w, t);
    weft__list_push_back(&s->drained, &w.link);
    int rc;
    do
      rc = weft__park("http server shutdown", s, flags);
    while (rc == 0 && !w.done);
    if (!w.done) {
      weft__list_remove(&w.link);
      return rc;
    }
  }
  return 0;
}

int weft_http_server_shutdown(weft_http_server *s, double grace) {
  WEFT__NEED_TASK(t);
  if (s == NULL || isnan(grace))
    return WEFT_EINVAL;
  if (s->loop != t->loop)
    return WEFT_EWRONGLOOP;
  begin_shutdown(s);
  s->busy++;
  int caller_rc = 0;
  if (s->nconns > 0 && grace > 0) {
    weft_timeout scope;
    weft_timeout_enter(&scope, grace);
    int rc = wait_drained(s, t, 0);
    bool over = weft_timeout_exit(&scope) == WEFT_ETIMEDOUT;
    if (rc != 0 && !(rc == WEFT_ETIMEDOUT && over))
      caller_rc = rc;
  }
  int cancelled = 0;
  if (s->nconns > 0) {
    cancelled = close_all(s);
    (void)wait_drained(s, t, WEFT__PARK_NOCANCEL);
  }
  if (--s->busy == 0 && s->freed)
    really_free(s);
  return caller_rc != 0 ? caller_rc : cancelled;
}

void weft_http_server_free(weft_http_server *s) {
  if (s == NULL)
    return;
  s->closing = true;
  weft_server_close(s->listener);
  if (s->nconns > 0)
    (void)close_all(s);
  if (s->nconns == 0 && s->busy == 0) {
    really_free(s);
    return;
  }
  s->freed = true; /* the last connection (or shutdown) frees it */
}

/* ---- requests ---- */

weft_http_request *weft__req_new(void) {
  weft_http_request *r = weft__malloc(sizeof *r);
  if (r == NULL)
    return NULL;
  weft__http_msg_init_inline(&r->req, WEFT__HTTP_REQUEST, &r->inl_req.blk,
                             sizeof r->inl_req);
  weft__http_msg_init_inline(&r->res, WEFT__HTTP_RESPONSE, &r->inl_res.blk,
                             sizeof r->inl_res);
  r->body_buf = NULL;
  return r;
}

void weft__req_free(weft_http_request *r) {
  weft__http_msg_fini(&r->req);
  weft__http_msg_fini(&r->res);
  weft__free(r);
}

void weft__req_log(weft_http_request *r) {
  weft_http_server *s = r->c->srv;
  char peer[WEFT_ADDR_STRLEN] = "-";
  weft_addr a;
  if (r->c->st != NULL && weft_stream_peer_addr(r->c->st, &a) == 0)
    weft_addr_format(&a, peer, sizeof peer);
  char when[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
  int v = r->req.version;
  fprintf(
      s->o.access_log, "%s - [%s] \"%s %s HTTP/%s\" %d %llu %.6f\n", peer, when,
      r->req.method ? r->req.method : "-", r->req.target ? r->req.target : "-",
      v == 20 ? "2" : (v == 10 ? "1.0" : "1.1"), r->res.status,
      (unsigned long long)r->bytes_out, (double)(weft_now_ns() - r->t0) / 1e9);
}

/* Does the server answer this request itself (metrics)? Inline: a server
 * without a metrics path pays one test. */
static inline bool is_metrics(const weft_http_server *s,
                              const weft_http_request *r) {
  return s->metrics_path != NULL && r->req.path_len == s->metrics_len &&
         r->req.path != NULL &&
         memcmp(r->req.path, s->metrics_path, s->metrics_len) == 0 &&
         (strcmp(r->req.method, "GET") == 0 || r->is_head);
}

static int serve_metrics(weft_http_request *r) {
  weft_http_server *s = r->c->srv;
  weft_http_server_stats st;
  weft_http_server_stats_get(s, &st);
  weft_stats ls;
  weft_loop_stats(s->loop, &ls);
  char buf[4096];
  int n = snprintf(
      buf, sizeof buf,
      "# HELP weft_http_connections_total Connections accepted.\n"
      "# TYPE weft_http_connections_total counter\n"
      "weft_http_connections_total %llu\n"
      "# TYPE weft_http_connections gauge\n"
      "weft_http_connections %llu\n"
      "weft_http_connections_idle %llu\n"
      "# TYPE weft_http_h2_connections_total counter\n"
      "weft_http_h2_connections_total %llu\n"
      "# TYPE weft_http_requests_total counter\n"
      "weft_http_requests_total %llu\n"
      "# TYPE weft_http_requests_in_flight gauge\n"
      "weft_http_requests_in_flight %llu\n"
      "# TYPE weft_http_responses_total counter\n"
      "weft_http_responses_total{class=\"1xx\"} %llu\n"
      "weft_http_responses_total{class=\"2xx\"} %llu\n"
      "weft_http_responses_total{class=\"3xx\"} %llu\n"
      "weft_http_responses_total{class=\"4xx\"} %llu\n"
      "weft_http_responses_total{class=\"5xx\"} %llu\n"
      "# TYPE weft_http_bad_requests_total counter\n"
      "weft_http_bad_requests_total %llu\n"
      "# TYPE weft_http_timeouts_total counter\n"
      "weft_http_timeouts_total %llu\n"
      "# TYPE weft_http_handler_errors_total counter\n"
      "weft_http_handler_errors_total %llu\n"
      "# TYPE weft_http_h2_resets_received_total counter\n"
      "weft_http_h2_resets_received_total %llu\n"
      "# TYPE weft_http_h2_goaway_calm_total counter\n"
      "weft_http_h2_goaway_calm_total %llu\n"
      "# TYPE weft_http_tls_failures_total counter\n"
      "weft_http_tls_failures_total %llu\n"
      "# TYPE weft_http_received_bytes_total counter\n"
      "weft_http_received_bytes_total %llu\n"
      "# TYPE weft_http_sent_bytes_total counter\n"
      "weft_http_sent_bytes_total %llu\n"
      "# HELP weft_tasks_alive Tasks spawned and not yet freed (this loop).\n"
      "# TYPE weft_tasks_alive gauge\n"
      "weft_tasks_alive %llu\n"
      "# TYPE weft_tasks_spawned_total counter\n"
      "weft_tasks_spawned_total %llu\n"
      "# TYPE weft_task_switches_total counter\n"
      "weft_task_switches_total %llu\n"
      "# TYPE weft_loop_iterations_total counter\n"
      "weft_loop_iterations_total %llu\n"
      "# TYPE weft_loop_stalls_total counter\n"
      "weft_loop_stalls_total %llu\n"
      "# TYPE weft_stacks_mapped gauge\n"
      "weft_stacks_mapped %llu\n"
      "# TYPE weft_stacks_cached gauge\n"
      "weft_stacks_cached %llu\n",
      (unsigned long long)st.connections, (unsigned long long)st.active,
      (unsigned long long)st.idle, (unsigned long long)st.h2_connections,
      (unsigned long long)st.requests, (unsigned long long)st.in_flight,
      (unsigned long long)st.responses[1], (unsigned long long)st.responses[2],
      (unsigned long long)st.responses[3], (unsigned long long)st.responses[4],
      (unsigned long long)st.responses[5], (unsigned long long)st.bad_requests,
      (unsigned long long)st.timeouts, (unsigned long long)st.handler_errors,
      (unsigned long long)st.h2_resets_recv,
      (unsigned long long)st.h2_goaways_calm,
      (unsigned long long)st.tls_failures, (unsigned long long)st.bytes_in,
      (unsigned long long)st.bytes_out, (unsigned long long)ls.tasks_alive,
      (unsigned long long)ls.tasks_spawned, (unsigned long long)ls.switches,
      (unsigned long long)ls.loop_iterations, (unsigned long long)ls.stalls,
      (unsigned long long)ls.stacks_mapped,
      (unsigned long long)ls.stacks_cached);
  return weft_http_respond(r, 200, "text/plain; version=0.0.4", buf, (size_t)n);
}

/* Failures that are the client's doing or the server's (shutdown). */
static bool quiet_error(int rc) {
  return rc == WEFT_ECANCELED || rc == WEFT_EPIPE || rc == WEFT_ECONNRESET ||
         rc == WEFT_EOF || rc == WEFT_ETIMEDOUT || rc == WEFT_ELIMIT ||
         rc == WEFT_EBADMSG || rc == WEFT_ECLOSED ||
         (rc <= -4200 && rc > -4300);
}

void weft__req_run(weft_http_request *r) {
  weft_http_server *s = r->c->srv;
  s->stats.requests++;
  s->stats.in_flight++;
  r->is_head = r->req.method[0] == 'H' && strcmp(r->req.method, "HEAD") == 0;
  int rc;
  if (is_metrics(s, r)) {
    rc = serve_metrics(r);
  } else {
    rc = s->fn(r, s->arg);
  }
  if (rc < 0 && !quiet_error(rc)) {
    s->stats.handler_errors++;
    fprintf(s->loop->dbg_out ? s->loop->dbg_out : stderr,
            "weft: HTTP handler for %s %s failed with %s (%s)\n", r->req.method,
            r->req.target, weft_err_name(rc), weft_strerror(rc));
  }
  if (r->c->kind != HC_DEAD && !weft__cancelled()) {
    if (r->rstate == RS_NONE) {
      int st = rc < 0 ? 500 : 204;
      if (r->body_err == WEFT_ELIMIT) {
        st = 413;
        s->stats.bad_requests++;
      } else if (r->body_err == WEFT_ETIMEDOUT)
        st = 408;
      else if (r->body_err == WEFT_EBADMSG)
        st = 400;
      if (st == 204)
        (void)weft_http_respond(r, 204, NULL, NULL, 0);
      else
        (void)weft_http_respond_text(r, st, weft_http_reason(st));
    } else if (r->rstate == RS_STARTED) {
      if (rc < 0 || r->out_left > 0)
        r->c->closing = true; /* cannot end it right: the driver aborts */
      else
        (void)weft_http_end(r);
    }
  }
  s->stats.in_flight--;
}

/* ---- the request API ---- */

const char *weft_http_method(const weft_http_request *r) {
  return r->req.method;
}
const char *weft_http_target(const weft_http_request *r) {
  return r->req.target;
}
const char *weft_http_path(const weft_http_request *r) { return r->req.path; }
const char *weft_http_query(const weft_http_request *r) { return r->req.query; }
const char *weft_http_authority(const weft_http_request *r) {
  return r->req.authority;
}
int weft_http_version(const weft_http_request *r) { return r->req.version; }

const char *weft_http_header(const weft_http_request *r, const char *name) {
  const weft_http_field *h =
      weft__http_hdrs_find(&r->req.hdrs, name, strlen(name));
  return h ? h->value : NULL;
}

size_t weft_http_header_count(const weft_http_request *r) {
  return r->req.hdrs.n;
}

const weft_http_field *weft_http_header_at(const weft_http_request *r,
                                           size_t i) {
  return i < r->req.hdrs.n ? &r->req.hdrs.v[i] : NULL;
}

const char *weft_http_trailer(const weft_http_request *r, const char *name) {
  const weft_http_field *h =
      weft__http_hdrs_find(&r->req.trailers, name, strlen(name));
  return h ? h->value : NULL;
}

const char *weft_http_param(const weft_http_request *r, const char *name) {
  for (unsigned i = 0; i < r->nparams; i++)
    if (strcmp(r->params[i].name, name) == 0)
      return r->params[i].value;
  return NULL;
}

int weft_http_peer_addr(const weft_http_request *r, weft_addr *out) {
  if (r->c->st == NULL)
    return WEFT_ENOTCONN;
  return weft_stream_peer_addr(r->c->st, out);
}

int64_t weft_http_content_length(const weft_http_request *r) {
  return r->req.content_length;
}

void weft_http_set_max_body(weft_http_request *r, size_t limit) {
  r->max_body = limit;
}

ssize_t weft_http_read(weft_http_request *r, void *buf, size_t len) {
  if (r->body_err != 0)
    return r->body_err;
  if (r->body_end || len == 0)
    return 0;
  if (r->body_read == 0 && r->req.content_length >= 0 &&
      (uint64_t)r->req.content_length > r->max_body) {
    /* Refused before a byte is read (and before a 100 Continue). */
    r->body_err = WEFT_ELIMIT;
    return WEFT_ELIMIT;
  }
  ssize_t n = r->ops->read(r, buf, len);
  if (n > 0) {
    r->body_read += (uint64_t)n;
    r->c->srv->stats.bytes_in += (uint64_t)n;
    if (r->body_read > r->max_body) {
      r->body_err = WEFT_ELIMIT;
      return WEFT_ELIMIT;
    }
  } else if (n == 0) {
    r->body_end = true;
  } else if (n != WEFT_ECANCELED && n != WEFT_ENOMEM) {
    r->body_err = (int)n;
  }
  return n;
}

int weft_http_read_body(weft_http_request *r, const void **data, size_t *len) {
  if (data == NULL || len == NULL)
    return WEFT_EINVAL;
  if (r->body_buf != NULL) {
    *data = r->body_buf;
    *len = (size_t)r->body_read;
    return 0;
  }
  size_t cap = r->req.content_length >= 0 &&
                       (uint64_t)r->req.content_length <= r->max_body
                   ? (size_t)r->req.content_length + 1
                   : 16384;
  size_t have = 0;
  char *buf = weft__malloc(cap);
  if (buf == NULL)
    return WEFT_ENOMEM;
  for (;;) {
    if (cap - have < 2) {
      size_t ncap = cap * 2;
      char *nb = weft__realloc(buf, ncap);
      if (nb == NULL) {
        weft__free(buf);
        return WEFT_ENOMEM;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t n = weft_http_read(r, buf + have, cap - have - 1);
    if (n < 0) {
      weft__free(buf);
      return (int)n;
    }
    if (n == 0)
      break;
    have += (size_t)n;
  }
  buf[have] = '\0';
  r->body_buf = buf;
  *data = buf;
  *len = have;
  return 0;
}

/* Names the server sets itself. */
static bool reserved(const char *n, size_t l) {
  static const char *const names[] = {"content-length", "transfer-encoding",
                                      "connection", "date", NULL};
  for (const char *const *p = names; *p != NULL; p++)
    if (strlen(*p) == l && weft__http_ieq(n, *p, l))
      return true;
  return false;
}

int weft_http_add_header(weft_http_request *r, const char *name,
                         const char *value) {
  if (r->rstate != RS_NONE)
    return WEFT_EALREADY;
  if (name == NULL || value == NULL)
    return WEFT_EINVAL;
  size_t nl = strlen(name), vl = strlen(value);
  if (!weft__http_token_ok(name, nl) || !weft__http_value_ok(value, vl) ||
      reserved(name, nl))
    return WEFT_EINVAL;
  return weft__http_hdrs_add(&r->res, &r->res.hdrs, name, nl, value, vl);
}

int weft_http_add_trailer(weft_http_request *r, const char *name,
                          const char *value) {
  if (name == NULL || value == NULL || r->rstate == RS_ENDED)
    return WEFT_EINVAL;
  size_t nl = strlen(name), vl = strlen(value);
  if (!weft__http_token_ok(name, nl) || !weft__http_value_ok(value, vl) ||
      reserved(name, nl))
    return WEFT_EINVAL;
  return weft__http_hdrs_add(&r->res, &r->res.trailers, name, nl, value, vl);
}

/* 1xx, 204 and 304 have no body; HEAD gets none either. */
static bool bodyless(int status) {
  return status < 200 || status == 204 || status == 304;
}

/* weft_http_respond_text's type, whose length is known. */
static const char text_plain[] = "text/plain; charset=utf-8";

/* The response's Content-Type: `lit` says ct is weft's own literal (no
 * check, no copy). */
static int set_ctype(weft_http_request *r, const char *ct, bool lit) {
  if (ct == NULL)
    return 0;
  size_t l = ct == text_plain ? sizeof text_plain - 1 : strlen(ct);
  if (!lit && !weft__http_value_ok(ct, l))
    return WEFT_EINVAL;
  /* HTTP/2 sends names in lower case: given so, they need no copy. */
  const char *name = r->req.version == 20 ? "content-type" : "Content-Type";
  if (lit)
    return weft__http_hdrs_add_static(&r->res.hdrs, name, 12, ct, l);
  return weft__http_hdrs_add_name(&r->res, &r->res.hdrs, name, 12, ct, l);
}

static int start(weft_http_request *r, int status, const char *content_type,
                 bool lit, int64_t content_length) {
  if (r->rstate != RS_NONE)
    return WEFT_EALREADY;
  if (status < 200 || status > 599 || content_length < -1)
    return WEFT_EINVAL;
  if (r->c->kind == HC_DEAD)
    return WEFT_EPIPE;
  int rc = set_ctype(r, content_type, lit);
  if (rc != 0)
    return rc;
  r->res.status = status;
  bool body = !bodyless(status);
  if (!body)
    content_length = 0;
  r->res.content_length = status == 204 || status == 304 ? -1 : content_length;
  r->out_left = body ? content_length : 0;
  r->rstate = RS_STARTED;
  return r->ops->start(r, body && !r->is_head && content_length != 0);
}

int weft_http_start(weft_http_request *r, int status, const char *content_type,
                    int64_t content_length) {
  return start(r, status, content_type, false, content_length);
}

int weft_http_write(weft_http_request *r, const void *data, size_t len) {
  if (r->rstate != RS_STARTED)
    return WEFT_EINVAL;
  if (r->out_left >= 0 && (uint64_t)len > (uint64_t)r->out_left)
    return WEFT_EINVAL;
  if (len == 0)
    return 0;
  if (r->out_left >= 0)
    r->out_left -= (int64_t)len;
  if (r->is_head || bodyless(r->res.status))
    return 0;
  return r->ops->write(r, data, len);
}

int weft_http_end(weft_http_request *r) {
  if (r->rstate != RS_STARTED)
    return r->rstate == RS_ENDED ? 0 : WEFT_EINVAL;
  if (r->out_left > 0) {
    r->c->closing = true;
    return WEFT_EINVAL;
  }
  r->rstate = RS_ENDED;
  return r->ops->end(r);
}

static int respond(weft_http_request *r, int status, const char *content_type,
                   bool lit, const void *body, size_t len) {
  if (body == NULL && len > 0)
    return WEFT_EINVAL;
  int rc = start(r, status, content_type, lit, (int64_t)len);
  r->in_respond = true;
  if (rc == 0 && len > 0)
    rc = weft_http_write(r, body, len);
  r->in_respond = false;
  if (rc == 0)
    rc = weft_http_end(r);
  return rc;
}

int weft_http_respond(weft_http_request *r, int status,
                      const char *content_type, const void *body, size_t len) {
  return respond(r, status, content_type, false, body, len);
}

int weft_http_respond_text(weft_http_request *r, int status, const char *text) {
  return respond(r, status, text_plain, true, text, text ? strlen(text) : 0);
}

int weft_http_send_file(weft_http_request *r, int status,
                        const char *content_type, const char *path) {
  if (path == NULL)
    return WEFT_EINVAL;
  if (r->rstate != RS_NONE)
    return WEFT_EALREADY;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return WEFT_EISDIR;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return WEFT_EINVAL;
  }
  int rc = weft_http_start(r, status, content_type, (int64_t)st.st_size);
  if (rc == 0) {
    r->out_left = 0;
    if (st.st_size > 0 && !r->is_head && !bodyless(status))
      rc = r->ops->sendfile(r, fd, 0, (size_t)st.st_size);
  }
  close(fd);
  if (rc == 0)
    rc = weft_http_end(r);
  return rc;
}

bool weft_http_responded(const weft_http_request *r) {
  return r->rstate != RS_NONE;
}
