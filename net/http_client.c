/* weft — the HTTP client: sessions, the connection pool, requests with
 * retries and redirects, responses (weft/http_client.h; the design is in
 * docs/internals/http.md, "The client").
 *
 * The pool hands each request a connection in one of three ways: a stream
 * slot on an HTTP/2 connection to the origin, an idle HTTP/1.1 connection
 * (most recently used first), or a new connection when the limits allow.
 * Otherwise the request waits in one FIFO list, and whoever frees something
 * hands it to the first waiter that can use it: a released connection to a
 * waiter of its origin, a freed slot to the first waiter whose origin is
 * under its own limit. Handing over rather than waking everyone means a
 * released connection can never be taken by a newcomer ahead of the
 * waiters, and the counts change in one place only (conn_new and
 * conn_destroy).
 *
 * While the first connection to an origin that may speak HTTP/2 (https, or
 * h2c when asked) is being opened, other requests to it wait instead of
 * opening their own: if ALPN picks h2 they all share that connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_client_int.h"

#define MAX_BODY_DEFAULT ((size_t)64 << 20)
/* Bytes of a redirect's body read and dropped to keep its connection. */
#define REDIRECT_DRAIN (64 * 1024)

static void session_unref(weft_http_session *s);
static void arm_idle(weft_http_session *s);
static void hand_slot(weft_http_session *s);
static bool host_may_h2(const hc_host *h);

/* ---- time ---- */

void weft__hc_time_enter(hc_scopes *sc, const hc_time *t, bool reading) {
  weft_timeout_enter_at(&sc->total, t->deadline);
  weft_timeout_enter(&sc->read, reading ? t->read : INFINITY);
}

int weft__hc_time_exit(hc_scopes *sc, int rc) {
  int r1 = weft_timeout_exit(&sc->read);
  int r2 = weft_timeout_exit(&sc->total);
  if (rc == 0 && (r1 != 0 || r2 != 0))
    rc = WEFT_ETIMEDOUT;
  return rc;
}

static double secs(double v, double def) {
  if (v == 0)
    return def;
  return v < 0 ? INFINITY : v;
}

/* ---- connections ---- */

void weft__hc_conn_ref(hc_conn *c) { c->refs++; }

static void conn_destroy(hc_conn *c) {
  weft__hc1_free(c);
  weft__hc2_free(c);
  weft__free(c);
}

void weft__hc_conn_unref(hc_conn *c) {
  if (--c->refs == 0 && c->state == CS_DEAD)
    conn_destroy(c);
}

/* A new connection of host h (a slot is taken now), CS_CONNECTING. */
static hc_conn *conn_new(hc_host *h) {
  weft_http_session *s = h->s;
  hc_conn *c = weft__calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->h = h;
  c->state = CS_CONNECTING;
  /* While it may turn out to speak HTTP/2, other requests to h wait for
   * it rather than open connections of their own. */
  c->probing = host_may_h2(h);
  if (c->probing)
    h->nprobing++;
  c->refs = 1; /* the pool's, dropped at close */
  weft__list_init(&c->hlink);
  weft__list_init(&c->ilink);
  weft__list_push_back(&s->conns, &c->alink);
  h->nconns++;
  s->nconns++;
  s->st.open = s->nconns;
  if (s->nconns > s->st.peak_open)
    s->st.peak_open = s->nconns;
  return c;
}

static void unidle(hc_conn *c) {
  weft_http_session *s = c->h->s;
  if (weft__list_linked(&c->ilink)) {
    weft__list_remove(&c->ilink);
    s->st.idle--;
  }
}

void weft__hc_conn_close(hc_conn *c) {
  if (c->state == CS_DEAD)
    return;
  hc_host *h = c->h;
  weft_http_session *s = h->s;
  bool was_h2 = c->state == CS_H2;
  if (c->state == CS_BUSY)
    s->st.busy--;
  if (c->probing) {
    c->probing = false;
    h->nprobing--;
  }
  c->state = CS_DEAD;
  unidle(c);
  if (weft__list_linked(&c->hlink))
    weft__list_remove(&c->hlink);
  weft__list_remove(&c->alink);
  if (was_h2) {
    s->st.h2_open--;
    weft__hc2_kill(c, WEFT_ECONNRESET);
  }
  weft_stream_free(c->st);
  c->st = NULL;
  h->nconns--;
  s->nconns--;
  s->st.open = s->nconns;
  if (was_h2)
    weft__hc_host_changed(h); /* its waiters look for another way */
  hand_slot(s);
  weft__hc_conn_unref(c);
}

/* ---- waiting in the pool ---- */

static bool host_may_h2(const hc_host *h) {
  const hc_opts *o = &h->s->o;
  return h->tls ? o->h2 >= 0 && !h->h1_known : o->h2 > 0;
}

/* True when a new connection to h fits the per-host limit (and no probe
 * holds its requests back). */
static bool host_may_open(const hc_host *h) {
  const hc_opts *o = &h->s->o;
  if (o->limit_per_host != 0 && h->nconns >= o->limit_per_host)
    return false;
  return !(host_may_h2(h) && h->nprobing > 0);
}

static void wait_done(hc_wait *w, int status, void *data) {
  weft__list_remove(&w->w.link);
  w->w.data = data;
  weft__waiter_complete(&w->w, status);
}

/* A slot is free (or was made free): the first waiter whose host may open
 * gets a new connection to connect. */
static void hand_slot(weft_http_session *s) {
  weft__list *n;
  while (s->nconns < s->o.limit) {
    hc_wait *found = NULL;
    weft__list_foreach(n, &s->waiters) {
      hc_wait *w = weft__container_of(n, hc_wait, w.link);
      if (host_may_open(w->h)) {
        found = w;
        break;
      }
    }
    if (found == NULL)
      return;
    hc_conn *c = conn_new(found->h);
    if (c == NULL) {
      wait_done(found, WEFT_ENOMEM, NULL);
      continue;
    }
    wait_done(found, 0, c);
  }
}

void weft__hc_host_changed(hc_host *h) {
  weft_http_session *s = h->s;
  weft__list *n = s->waiters.next;
  while (n != &s->waiters) {
    hc_wait *w = weft__container_of(n, hc_wait, w.link);
    n = n->next;
    if (w->h == h)
      wait_done(w, HC_RETRY, NULL);
  }
}

/* A waiter of another host blocked only by the total limit? */
static bool someone_needs_slot(weft_http_session *s, const hc_host *except) {
  weft__list *n;
  weft__list_foreach(n, &s->waiters) {
    hc_wait *w = weft__container_of(n, hc_wait, w.link);
    if (w->h != except && host_may_open(w->h))
      return true;
  }
  return false;
}

static void on_idle_readable(weft_stream *st, int ev, void *arg);

void weft__hc_conn_release(hc_conn *c) {
  hc_host *h = c->h;
  weft_http_session *s = h->s;
  if (c->state != CS_BUSY)
    return;
  c->reused = true;
  if (s->closed) {
    weft__hc_conn_close(c);
    return;
  }
  /* A waiter for this host takes it as it is. */
  weft__list *n;
  weft__list_foreach(n, &s->waiters) {
    hc_wait *w = weft__container_of(n, hc_wait, w.link);
    if (w->h == h) {
      wait_done(w, 0, c);
      return;
    }
  }
  /* Someone else needs the slot more than the pool needs an idle one. */
  if (someone_needs_slot(s, h)) {
    weft__hc_conn_close(c);
    return;
  }
  c->state = CS_IDLE;
  s->st.busy--;
  c->idle_since = weft_now();
  weft__list_push_front(&h->idle, &c->hlink);
  weft__list_push_back(&s->idle, &c->ilink);
  s->st.idle++;
  /* The server may close it meanwhile (or send what it should not). */
  if (weft_stream_notify(c->st, WEFT_STREAM_READABLE, on_idle_readable, c) !=
      0) {
    weft__hc_conn_close(c);
    return;
  }
  arm_idle(s);
}

static void on_idle_readable(weft_stream *st, int ev, void *arg) {
  (void)st;
  (void)ev;
  hc_conn *c = arg;
  if (c->state != CS_IDLE)
    return;
  c->h->s->st.closed_idle++;
  weft__hc_conn_close(c);
}

void weft__hc_h2_idle(hc_conn *c, bool idle) {
  weft_http_session *s = c->h->s;
  if (c->state != CS_H2)
    return;
  if (!idle) {
    unidle(c);
    return;
  }
  if (weft__list_linked(&c->ilink))
    return;
  c->idle_since = weft_now();
  weft__list_push_back(&s->idle, &c->ilink);
  s->st.idle++;
  arm_idle(s);
}

/* Takes an idle HTTP/1.1 connection of h that is still alive. */
static hc_conn *take_idle(hc_host *h) {
  weft_http_session *s = h->s;
  weft__list *n;
  while ((n = weft__list_front(&h->idle)) != NULL) {
    hc_conn *c = weft__container_of(n, hc_conn, hlink);
    weft__list_remove(&c->hlink);
    unidle(c);
    (void)weft_stream_notify(c->st, 0, NULL, NULL);
    /* Still open? The server may have closed it a moment ago. */
    char b;
    ssize_t k = weft_stream_try_read(c->st, &b, 1);
    if (k != WEFT_EAGAIN) {
      s->st.closed_idle++;
      c->state = CS_BUSY; /* so close accounts it once */
      s->st.busy++;
      weft__hc_conn_close(c);
      continue;
    }
    c->state = CS_BUSY;
    s->st.busy++;
    return c;
  }
  return NULL;
}

/* Closes the oldest idle connection of a host other than h, if any. */
static bool evict_idle(weft_http_session *s, const hc_host *h) {
  weft__list *n;
  weft__list_foreach(n, &s->idle) {
    hc_conn *c = weft__container_of(n, hc_conn, ilink);
    if (c->h == h)
      continue;
    if (c->state == CS_H2 && weft__hc2_streams(c) > 0)
      continue;
    s->st.closed_idle++;
    if (c->state == CS_IDLE) {
      c->state = CS_BUSY;
      s->st.busy++;
    }
    weft__hc_conn_close(c);
    return true;
  }
  return false;
}

/* ---- the idle timer ---- */

static void on_idle_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_http_session *s = arg;
  double now = weft_now();
  weft__list *n;
  while ((n = weft__list_front(&s->idle)) != NULL) {
    hc_conn *c = weft__container_of(n, hc_conn, ilink);
    if (c->idle_since + s->o.keepalive > now + 0.001)
      break;
    s->st.closed_idle++;
    if (c->state == CS_IDLE) {
      c->state = CS_BUSY;
      s->st.busy++;
    }
    weft__hc_conn_close(c);
  }
  arm_idle(s);
}

static void arm_idle(weft_http_session *s) {
  weft__list *n = weft__list_front(&s->idle);
  if (n == NULL || !isfinite(s->o.keepalive)) {
    event_del(s->idle_ev);
    return;
  }
  hc_conn *c = weft__container_of(n, hc_conn, ilink);
  double left = c->idle_since + s->o.keepalive - weft_now();
  if (left < 0)
    left = 0;
  struct timeval tv = {(time_t)left,
                       (suseconds_t)((left - (double)(time_t)left) * 1e6)};
  event_add(s->idle_ev, &tv);
}

/* ---- getting a connection ---- */

static hc_host *host_get(weft_http_session *s, const hc_url *u) {
  weft__list *n;
  weft__list_foreach(n, &s->hosts) {
    hc_host *h = weft__container_of(n, hc_host, link);
    if (h->tls == u->tls && h->port == u->port && strcmp(h->host, u->host) == 0)
      return h;
  }
  hc_host *h = weft__calloc(1, sizeof *h);
  if (h == NULL)
    return NULL;
  h->host = weft__strdup(u->host);
  if (h->host == NULL) {
    weft__free(h);
    return NULL;
  }
  h->s = s;
  h->port = u->port;
  h->tls = u->tls;
  weft__list_init(&h->idle);
  weft__list_init(&h->h2conns);
  weft__list_push_back(&s->hosts, &h->link);
  return h;
}

/* Connects c (CS_CONNECTING, counted). On failure c is closed. */
static int conn_connect(hc_conn *c, const hc_time *t) {
  hc_host *h = c->h;
  weft_http_session *s = h->s;
  bool probing = c->probing;
  weft_stream_opts so = {.size = sizeof so};
  if (h->tls)
    so.tls = s->tls;
  hc_scopes sc;
  weft__hc_time_enter(&sc, t, false);
  weft_stream *st = NULL;
  int rc = weft_stream_connect(&st, h->host, h->port, &so);
  rc = weft__hc_time_exit(&sc, rc);
  if (probing) {
    c->probing = false;
    h->nprobing--;
  }
  if (rc == 0 && s->closed) {
    weft_stream_free(st); /* the session was freed meanwhile */
    rc = WEFT_ECANCELED;
  }
  if (rc != 0) {
    s->st.connect_failures++;
    weft__hc_conn_close(c);
    if (probing)
      weft__hc_host_changed(h);
    return rc;
  }
  c->st = st;
  s->st.connects++;
  const char *alpn = h->tls ? weft_stream_tls_alpn(st) : NULL;
  bool h2 = h->tls ? (alpn != NULL && strcmp(alpn, "h2") == 0) : s->o.h2 > 0;
  if (h2) {
    c->state = CS_H2;
    s->st.h2_open++;
    rc = weft__hc2_start(c);
    if (rc != 0) {
      weft__hc_conn_close(c);
      weft__hc_host_changed(h);
      return rc;
    }
    weft__list_push_back(&h->h2conns, &c->hlink);
    weft__hc_host_changed(h); /* the waiters share it */
    return 0;
  }
  if (h->tls)
    h->h1_known = true;
  c->state = CS_BUSY;
  s->st.busy++;
  if (probing)
    weft__hc_host_changed(h); /* not HTTP/2: the others open their own */
  return 0;
}

static hc_conn *usable_h2(hc_host *h) {
  weft__list *n;
  weft__list_foreach(n, &h->h2conns) {
    hc_conn *c = weft__container_of(n, hc_conn, hlink);
    if (weft__hc2_usable(c))
      return c;
  }
  return NULL;
}

/* Gets a connection for host h: a reference to an HTTP/2 connection
 * (CS_H2) or an HTTP/1.1 one the caller owns (CS_BUSY). */
static int acquire(weft_http_session *s, hc_host *h, const hc_time *t,
                   hc_conn **out) {
  for (;;) {
    if (s->closed)
      return WEFT_ECLOSED;
    hc_conn *c = usable_h2(h);
    if (c != NULL) {
      weft__hc_conn_ref(c);
      *out = c;
      return 0;
    }
    if ((c = take_idle(h)) != NULL) {
      s->st.reused++;
      weft__hc_conn_ref(c);
      *out = c;
      return 0;
    }
    bool may_open = host_may_open(h);
    if (may_open && s->nconns >= s->o.limit) {
      /* At the total limit with an idle connection of another host: make
       * room (the slot goes to the first waiter, maybe us), look again. */
      if (evict_idle(s, h))
        continue;
      may_open = false;
    }
    if (may_open) {
      c = conn_new(h);
      if (c == NULL)
        return WEFT_ENOMEM;
    } else {
      hc_wait w;
      weft__waiter_init(&w.w, weft_current());
      w.h = h;
      weft__list_push_back(&s->waiters, &w.w.link);
      s->st.waiting++;
      hc_scopes sc;
      weft__hc_time_enter(&sc, t, false);
      int rc = 0;
      while (rc == 0 && !w.w.done)
        rc = weft__park("http pool", s, 0);
      rc = weft__hc_time_exit(&sc, rc);
      s->st.waiting--;
      if (!w.w.done) {
        weft__list_remove(&w.w.link);
        return rc;
      }
      if (w.w.status == HC_RETRY)
        continue;
      if (w.w.status < 0)
        return w.w.status;
      c = w.w.data;
      if (c->state == CS_BUSY) {
        s->st.reused++;
        weft__hc_conn_ref(c);
        *out = c;
        return 0;
      }
    }
    /* A new connection (CS_CONNECTING) to open. */
    weft__hc_conn_ref(c);
    int rc = conn_connect(c, t);
    if (rc != 0) {
      weft__hc_conn_unref(c);
      return rc;
    }
    *out = c;
    return 0;
  }
}

/* ---- sessions ---- */

static void session_fini(weft_http_session *s) {
  weft__list *n;
  while ((n = weft__list_pop_front(&s->free_resps)) != NULL) {
    weft_http_response *r =
        weft__container_of(n, weft_http_response, cache_link);
    weft__hbuf_free(&r->body);
    weft__http_msg_fini(&r->msg);
    weft__http_msg_fini(&r->req);
    weft__free(r);
  }
  while ((n = weft__list_pop_front(&s->hosts)) != NULL) {
    hc_host *h = weft__container_of(n, hc_host, link);
    weft__free(h->host);
    weft__free(h);
  }
  if (s->idle_ev)
    event_free(s->idle_ev);
  if (s->flush_ev)
    event_free(s->flush_ev);
  if (s->own_tls)
    weft_tls_ctx_free(s->tls);
  weft__hc_cookies_free(s);
  weft__free(s->o.user_agent);
  weft__free(s);
}

static void session_unref(weft_http_session *s) {
  if (--s->refs == 0)
    session_fini(s);
}

int weft_http_session_new(weft_http_session **out,
                          const weft_http_session_opts *opts) {
  weft_loop *loop = weft_loop_current();
  if (out == NULL)
    return WEFT_EINVAL;
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_http_session_opts o = {0};
  if (opts != NULL) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof o)
      return WEFT_EINVAL;
    memcpy(&o, opts, opts->size);
  }
  weft_http_session *s = weft__calloc(1, sizeof *s);
  if (s == NULL)
    return WEFT_ENOMEM;
  s->loop = loop;
  s->refs = 1;
  weft__list_init(&s->hosts);
  weft__list_init(&s->conns);
  weft__list_init(&s->idle);
  weft__list_init(&s->waiters);
  weft__list_init(&s->dirty);
  weft__list_init(&s->free_resps);
  hc_opts *h = &s->o;
  h->limit = o.limit ? o.limit : 100;
  h->limit_per_host = o.limit_per_host;
  h->keepalive = secs(o.keepalive_timeout, 15);
  h->total = secs(o.total_timeout, 300);
  h->connect = secs(o.connect_timeout, INFINITY);
  h->read = secs(o.read_timeout, INFINITY);
  h->h2 = o.h2;
  h->max_redirects = o.max_redirects == 0 ? 10 : o.max_redirects;
  h->cookies = o.cookies;
  h->decompress = o.decompress >= 0;
  h->max_body = o.max_body ? o.max_body : MAX_BODY_DEFAULT;
  int rc = WEFT_ENOMEM;
  const char *ua = o.user_agent ? o.user_agent : "weft/" WEFT_VERSION_STRING;
  if (ua[0] != '\0' && (h->user_agent = weft__strdup(ua)) == NULL)
    goto fail;
  h->ua_len = strlen(ua);
  if (!weft__http_value_ok(ua, strlen(ua))) {
    rc = WEFT_EINVAL;
    goto fail;
  }
  struct event_base *base = weft_loop_base(loop);
  s->idle_ev = event_new(base, -1, 0, on_idle_timer, s);
  s->flush_ev = event_new(base, -1, 0, weft__hc2_flush, s);
  if (s->idle_ev == NULL || s->flush_ev == NULL)
    goto fail;
  if (o.tls != NULL) {
    s->tls = o.tls; /* borrowed: the caller keeps it alive */
  } else {
    s->own_tls = true;
    weft_tls_opts to = {.size = sizeof to};
    to.ca_file = o.ca_file;
    to.insecure = o.insecure;
    static const char *const alpn_h2[] = {"h2", "http/1.1", NULL};
    static const char *const alpn_h1[] = {"http/1.1", NULL};
    to.alpn = o.h2 < 0 ? alpn_h1 : alpn_h2;
    rc = weft_tls_client_ctx_new(&s->tls, &to);
    if (rc != 0)
      goto fail;
    if (o.insecure)
      fprintf(stderr, "weft http client: WARNING: TLS certificates are NOT "
                      "verified (insecure session): anyone on the path can "
                      "read and change this traffic\n");
  }
  *out = s;
  return 0;
fail:
  session_fini(s);
  return rc;
}

void weft_http_session_free(weft_http_session *s) {
  if (s == NULL || s->closed)
    return;
  s->closed = true;
  /* Waiters wake with WEFT_ECANCELED; idle connections close now, busy ones
   * when their request ends (release sees `closed`). */
  weft__list *n;
  while ((n = weft__list_front(&s->waiters)) != NULL) {
    hc_wait *w = weft__container_of(n, hc_wait, w.link);
    wait_done(w, WEFT_ECANCELED, NULL);
  }
  n = s->conns.next;
  while (n != &s->conns) {
    hc_conn *c = weft__container_of(n, hc_conn, alink);
    n = n->next;
    if (c->state == CS_IDLE) {
      c->state = CS_BUSY;
      s->st.busy++;
      weft__hc_conn_close(c);
    } else if (c->state == CS_H2) {
      weft__hc_conn_ref(c);
      weft__hc_conn_close(c); /* streams in use fail with ECONNRESET */
      n = s->conns.next;
      weft__hc_conn_unref(c);
    }
  }
  event_del(s->idle_ev);
  session_unref(s);
}

void weft_http_session_stats_get(const weft_http_session *s,
                                 weft_http_session_stats *out) {
  *out = s->st;
  out->streams = 0;
  weft__list *n;
  weft__list_foreach(n, &s->conns) {
    hc_conn *c = weft__container_of(n, hc_conn, alink);
    if (c->state == CS_H2)
      out->streams += weft__hc2_streams(c);
  }
}

/* ---- requests ---- */

static bool is_method(const char *m, const char *x) {
  return strcmp(m, x) == 0;
}

static bool idempotent(const char *m) {
  return is_method(m, "GET") || is_method(m, "HEAD") || is_method(m, "PUT") ||
         is_method(m, "DELETE") || is_method(m, "OPTIONS") ||
         is_method(m, "TRACE");
}

static bool reserved_field(const char *n, size_t l) {
  static const char *const bad[] = {"host", "content-length",
                                    "transfer-encoding", "connection", NULL};
  for (const char *const *b = bad; *b; b++)
    if (strlen(*b) == l && weft__http_ieq(n, *b, l))
      return true;
  return false;
}

static bool has_field(const weft_http_req_opts *o, const char *name) {
  size_t l = strlen(name);
  for (size_t i = 0; o != NULL && i < o->nheaders; i++) {
    const weft_http_field *f = &o->headers[i];
    size_t nl = f->name_len ? f->name_len : strlen(f->name);
    if (nl == l && weft__http_ieq(f->name, name, l))
      return true;
  }
  return false;
}

/* Responses are kept for the next requests (LIFO), with their arenas,
 * header arrays and body buffer: a small request then allocates nothing. */
#define RESP_CACHE 256
#define BODY_KEEP (64 * 1024)

static weft_http_response *response_new(weft_http_session *s) {
  weft_http_response *r;
  weft__list *n = weft__list_pop_front(&s->free_resps);
  if (n != NULL) {
    s->nfree_resps--;
    r = weft__container_of(n, weft_http_response, cache_link);
    weft__http_msg_reset(&r->msg);
    weft__http_msg_reset(&r->req);
    r->body.len = 0;
  } else {
    r = weft__calloc(1, sizeof *r);
    if (r == NULL)
      return NULL;
    weft__http_msg_init_inline(&r->msg, WEFT__HTTP_RESPONSE, &r->inl_res.blk,
                               sizeof r->inl_res);
    weft__http_msg_init_inline(&r->req, WEFT__HTTP_REQUEST, &r->inl_req.blk,
                               sizeof r->inl_req);
  }
  r->s = s;
  s->refs++;
  return r;
}

/* Lets go of the connection: back to the pool when the body ended and the
 * connection may go on, else closed (HTTP/1.1) or the stream reset. */
static void response_detach(weft_http_response *r, bool clean) {
  hc_conn *c = r->c;
  if (c == NULL)
    return;
  r->c = NULL;
  if (c->state == CS_H2 || r->h2s != NULL) {
    weft__hc2_stream_done(r);
  } else if (c->state == CS_BUSY) {
    if (clean && r->raw_end && r->msg.keep_alive && c->rpos == c->rlen)
      weft__hc_conn_release(c);
    else
      weft__hc_conn_close(c);
  }
  weft__hc_conn_unref(c);
}

void weft_http_response_free(weft_http_response *r) {
  if (r == NULL)
    return;
  response_detach(r, r->err == 0);
  weft__hc_decode_free(r);
  weft__free(r->url);
  weft_http_session *s = r->s;
  if (!s->closed && s->nfree_resps < RESP_CACHE) {
    /* Kept: everything but the memory goes back to zero. */
    weft__http_msg msg = r->msg, req = r->req;
    weft__hbuf body = r->body;
    if (body.cap > BODY_KEEP)
      weft__hbuf_free(&body);
    size_t off = offsetof(weft_http_response, cache_link);
    memset(r, 0, off);
    r->msg = msg;
    r->req = req;
    r->body = body;
    weft__list_push_front(&s->free_resps, &r->cache_link);
    s->nfree_resps++;
  } else {
    weft__hbuf_free(&r->body);
    weft__http_msg_fini(&r->msg);
    weft__http_msg_fini(&r->req);
    weft__free(r);
  }
  session_unref(s);
}

/* Raw (not decoded) body bytes. */
static ssize_t raw_read(weft_http_response *r, void *buf, size_t len) {
  if (r->raw_end)
    return 0;
  if (r->c == NULL)
    return r->err ? r->err : 0;
  ssize_t n = r->h2s != NULL ? weft__hc2_read(r, buf, len)
                             : weft__hc1_read(r, buf, len);
  if (n == 0)
    r->raw_end = true;
  return n;
}

ssize_t weft_http_response_read(weft_http_response *r, void *buf, size_t len) {
  if (r == NULL || (buf == NULL && len > 0))
    return WEFT_EINVAL;
  if (r->err != 0)
    return r->err;
  if (r->end)
    return 0;
  if (len == 0)
    return 0;
  ssize_t n = weft__hc_decode_read(r, buf, len, raw_read);
  if (n < 0) {
    r->err = (int)n;
    response_detach(r, false);
    return n;
  }
  if (n == 0) {
    r->end = true;
    /* A compressed stream may end before the body's last framing: read
     * it, so the connection can go back. */
    if (!r->raw_end) {
      char tmp[256];
      ssize_t k;
      while ((k = raw_read(r, tmp, sizeof tmp)) > 0)
        ;
      if (k < 0) {
        response_detach(r, false);
        return 0;
      }
    }
    response_detach(r, true);
  }
  return n;
}

int weft_http_response_body(weft_http_response *r, const void **data,
                            size_t *len) {
  if (r == NULL || data == NULL || len == NULL)
    return WEFT_EINVAL;
  /* A small body of a known length gets a buffer of its size. */
  size_t chunk = 16384;
  if (r->z == NULL && r->msg.content_length >= 0 &&
      r->msg.content_length < (int64_t)chunk)
    chunk = (size_t)r->msg.content_length + 1;
  while (!r->body_done) {
    if (weft__hbuf_reserve(&r->body, chunk + 1) != 0)
      return WEFT_ENOMEM;
    size_t room = r->body.cap - r->body.len - 1;
    ssize_t n = weft_http_response_read(r, r->body.data + r->body.len, room);
    if (n < 0)
      return (int)n;
    if (n == 0) {
      r->body_done = true;
      break;
    }
    r->body.len += (size_t)n;
    if (r->body.len > r->max_body) {
      r->err = WEFT_ELIMIT;
      response_detach(r, false);
      return WEFT_ELIMIT;
    }
  }
  if (r->body.data == NULL && weft__hbuf_reserve(&r->body, 1) != 0)
    return WEFT_ENOMEM;
  r->body.data[r->body.len] = '\0';
  *data = r->body.data;
  *len = r->body.len;
  return 0;
}

int weft_http_response_status(const weft_http_response *r) {
  return r->msg.status;
}
int weft_http_response_version(const weft_http_response *r) {
  return r->msg.version;
}
const char *weft_http_response_url(const weft_http_response *r) {
  return r->url;
}
int weft_http_response_redirects(const weft_http_response *r) {
  return r->redirects;
}
const char *weft_http_response_header(const weft_http_response *r,
                                      const char *name) {
  const weft_http_field *f =
      weft__http_hdrs_find(&r->msg.hdrs, name, strlen(name));
  return f ? f->value : NULL;
}
size_t weft_http_response_header_count(const weft_http_response *r) {
  return r->msg.hdrs.n;
}
const weft_http_field *weft_http_response_header_at(const weft_http_response *r,
                                                    size_t i) {
  return i < r->msg.hdrs.n ? &r->msg.hdrs.v[i] : NULL;
}
const char *weft_http_response_trailer(const weft_http_response *r,
                                       const char *name) {
  if (!r->raw_end)
    return NULL;
  const weft_http_field *f =
      weft__http_hdrs_find(&r->msg.trailers, name, strlen(name));
  return f ? f->value : NULL;
}
int64_t weft_http_response_content_length(const weft_http_response *r) {
  return r->msg.content_length;
}

/* Fills the request head for u. */
static int build_head(weft_http_session *s, weft__http_msg *m,
                      const char *method, const hc_url *u,
                      const weft_http_req_opts *o, const hc_req *q, bool h2) {
  weft__http_msg_reset(m);
  m->method = method;
  m->target = u->target;
  m->authority = u->authority;
  m->scheme = u->tls ? "https" : "http";
  m->content_length = q->length >= 0 ? q->length : -1;
  int rc = 0;
  if (!h2)
    rc = weft__http_hdrs_add_static(&m->hdrs, "Host", 4, u->authority,
                                    strlen(u->authority));
  if (rc == 0 && s->o.user_agent && !has_field(o, "user-agent"))
    rc = weft__http_hdrs_add_static(&m->hdrs, "User-Agent", 10, s->o.user_agent,
                                    s->o.ua_len);
  if (rc == 0 && s->o.decompress && !has_field(o, "accept-encoding"))
    rc = weft__http_hdrs_add_static(&m->hdrs, "Accept-Encoding", 15,
                                    "gzip, deflate", 13);
  if (rc == 0 && !has_field(o, "accept"))
    rc = weft__http_hdrs_add_static(&m->hdrs, "Accept", 6, "*/*", 3);
  for (size_t i = 0; rc == 0 && o != NULL && i < o->nheaders; i++) {
    const weft_http_field *f = &o->headers[i];
    size_t nl = f->name_len ? f->name_len : strlen(f->name);
    size_t vl = f->value_len ? f->value_len : strlen(f->value);
    if (q->cross_origin && nl == 13 &&
        weft__http_ieq(f->name, "authorization", 13))
      continue; /* credentials stay with the origin they were given for */
    rc = weft__http_hdrs_add_static(&m->hdrs, f->name, nl, f->value, vl);
  }
  if (rc == 0 && o != NULL && o->content_type != NULL && q->length != -2)
    rc = weft__http_hdrs_add_static(&m->hdrs, "Content-Type", 12,
                                    o->content_type, strlen(o->content_type));
  const char *user = o ? o->user : NULL, *pass = o ? o->password : NULL;
  char *ui = NULL;
  if (rc == 0 && user == NULL && u->userinfo != NULL && !q->cross_origin)
    ui = u->userinfo;
  if (rc == 0 && (user != NULL || ui != NULL) &&
      !has_field(o, "authorization")) {
    /* "user:pass" whatever their length (a fixed buffer would cut them
     * and send credentials that are not the caller's). */
    size_t ul = strlen(ui ? ui : user), pl = ui || !pass ? 0 : strlen(pass);
    size_t cl = ul + (ui ? 0 : 1 + pl);
    char *cred = weft__malloc(cl + 1 + 6 + 4 * (cl / 3 + 1) + 1);
    if (cred == NULL)
      return WEFT_ENOMEM;
    memcpy(cred, ui ? ui : user, ul);
    if (ui == NULL) {
      cred[ul] = ':';
      memcpy(cred + ul + 1, pass ? pass : "", pl);
    }
    char *enc = cred + cl + 1;
    memcpy(enc, "Basic ", 6);
    weft__hc_base64(cred, cl, enc + 6);
    rc =
        weft__http_hdrs_add(m, &m->hdrs, "Authorization", 13, enc, strlen(enc));
    weft__free(cred);
  }
  if (rc == 0 && s->o.cookies) {
    weft__hbuf b = {0};
    rc = weft__hc_cookies_put(s, u, &b);
    if (rc == 0 && b.len > 0)
      rc = weft__http_hdrs_add(m, &m->hdrs, "Cookie", 6, b.data, b.len);
    weft__hbuf_free(&b);
  }
  return rc;
}

/* Reads and drops a small body so the connection stays. */
static void drain_small(weft_http_response *r) {
  char buf[4096];
  size_t left = REDIRECT_DRAIN;
  for (;;) {
    ssize_t n = raw_read(r, buf, sizeof buf);
    if (n <= 0 || (size_t)n > left)
      break;
    left -= (size_t)n;
  }
  response_detach(r, true);
}

static bool retryable(int rc) {
  return rc == WEFT_EOF || rc == WEFT_ECONNRESET || rc == WEFT_EPIPE ||
         rc == WEFT_EHTTP_NO_RESPONSE;
}

/* One attempt: a connection, the exchange, the head. */
static int attempt(weft_http_session *s, hc_host *h, const hc_url *u,
                   const weft_http_req_opts *o, hc_req *q, const hc_time *tc,
                   weft_http_response *r) {
  int tries = 0;
  for (;;) {
    hc_conn *c = NULL;
    int rc = acquire(s, h, tc, &c);
    if (rc != 0)
      return rc;
    bool h2 = c->state == CS_H2;
    bool reused = c->reused;
    rc = build_head(s, q->msg, q->method, u, o, q, h2);
    if (rc != 0) {
      if (!h2)
        weft__hc_conn_release(c);
      weft__hc_conn_unref(c);
      return rc;
    }
    s->st.requests++;
    if (q->body_fd >= 0)
      (void)lseek(q->body_fd, 0, SEEK_SET);
    r->got_any = false;
    r->c = c;
    if (h2) {
      s->st.h2_streams++;
      rc = weft__hc2_exchange(c, q, r);
      if (rc == HC_RETRY) {
        r->c = NULL;
        weft__hc_conn_unref(c);
        if (++tries > 3)
          return WEFT_ECONNRESET;
        continue;
      }
      if (rc != 0) {
        r->c = NULL;
        weft__hc_conn_unref(c);
      }
      return rc;
    }
    c->reused = true;
    rc = weft__hc1_exchange(c, q, r);
    if (rc == 0)
      return 0;
    r->c = NULL;
    weft__hc_conn_close(c);
    weft__hc_conn_unref(c);
    weft__http_msg_reset(&r->msg);
    /* A pooled connection the server had closed: once more on a new one,
     * when sending again is safe. */
    if (reused && !r->got_any && retryable(rc) && q->idempotent &&
        q->body_fn == NULL && tries++ == 0 && !weft_cancelled()) {
      s->st.retries++;
      continue;
    }
    if (rc == WEFT_EOF)
      rc = WEFT_EHTTP_NO_RESPONSE;
    return rc;
  }
}

int weft_http_get(weft_http_session *s, const char *url,
                  weft_http_response **out) {
  return weft_http_fetch(s, "GET", url, NULL, out);
}

int weft_http_fetch(weft_http_session *s, const char *method, const char *url,
                    const weft_http_req_opts *opts, weft_http_response **out) {
  WEFT__NEED_TASK(self);
  (void)self;
  if (s == NULL || out == NULL || url == NULL)
    return WEFT_EINVAL;
  if (s->closed)
    return WEFT_ECLOSED;
  if (method == NULL)
    method = "GET";
  if (!weft__http_token_ok(method, strlen(method)))
    return WEFT_EINVAL;
  weft_http_req_opts o = {0};
  if (opts != NULL) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof o)
      return WEFT_EINVAL;
    memcpy(&o, opts, opts->size);
  }
  int nbody = (o.body != NULL || o.body_len > 0) + (o.body_fn != NULL) +
              (o.body_file != NULL);
  if (nbody > 1)
    return WEFT_EINVAL;
  for (size_t i = 0; i < o.nheaders; i++) {
    const weft_http_field *f = &o.headers[i];
    if (f->name == NULL || f->value == NULL)
      return WEFT_EINVAL;
    size_t nl = f->name_len ? f->name_len : strlen(f->name);
    size_t vl = f->value_len ? f->value_len : strlen(f->value);
    if (!weft__http_token_ok(f->name, nl) ||
        !weft__http_value_ok(f->value, vl) || reserved_field(f->name, nl))
      return WEFT_EINVAL;
  }
  if (o.content_type != NULL &&
      !weft__http_value_ok(o.content_type, strlen(o.content_type)))
    return WEFT_EINVAL;

  hc_time t;
  double total = secs(o.total_timeout, s->o.total);
  t.deadline = isfinite(total) ? weft_now() + total : INFINITY;
  t.read = secs(o.read_timeout, s->o.read);
  hc_time tc = t;
  double ct = secs(o.connect_timeout, s->o.connect);
  if (isfinite(ct) && weft_now() + ct < tc.deadline)
    tc.deadline = weft_now() + ct;
  int max_redir = o.max_redirects == 0 ? s->o.max_redirects : o.max_redirects;

  hc_req q = {.method = method, .body_fd = -1, .length = -2};
  if (o.body != NULL || o.body_len > 0) {
    q.body = o.body;
    q.body_len = o.body_len;
    q.length = (int64_t)o.body_len;
  } else if (o.body_fn != NULL) {
    q.body_fn = o.body_fn;
    q.body_arg = o.body_arg;
    q.length = o.body_fn_len >= 0 ? o.body_fn_len : -1;
  } else if (o.body_file != NULL) {
    q.body_fd = open(o.body_file, O_RDONLY | O_CLOEXEC);
    if (q.body_fd < 0)
      return -errno;
    struct stat sb;
    if (fstat(q.body_fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      close(q.body_fd);
      return WEFT_EINVAL;
    }
    q.length = sb.st_size;
  } else if (is_method(method, "POST") || is_method(method, "PUT") ||
             is_method(method, "PATCH")) {
    q.length = 0; /* Content-Length: 0, as servers expect */
  }

  s->refs++;
  char *cur = weft__strdup(url);
  const char *m = method;
  int redirects = 0;
  int rc = cur ? 0 : WEFT_ENOMEM;
  weft_http_response *r = NULL;
  hc_url u = {0};
  hc_url first = {0}; /* the first origin: credentials stay with it */
  bool have_first = false;
  while (rc == 0) {
    rc = weft__hc_url_parse(&u, cur);
    if (rc != 0)
      break;
    if (!have_first) {
      first.tls = u.tls;
      first.port = u.port;
      first.host = weft__strdup(u.host);
      if (first.host == NULL) {
        rc = WEFT_ENOMEM;
        break;
      }
      have_first = true;
    } else if (u.tls != first.tls || u.port != first.port ||
               strcmp(u.host, first.host) != 0) {
      o.user = o.password = NULL;
      q.cross_origin = true;
    }
    hc_host *h = host_get(s, &u);
    if (h == NULL) {
      rc = WEFT_ENOMEM;
      break;
    }
    r = response_new(s);
    if (r == NULL) {
      rc = WEFT_ENOMEM;
      break;
    }
    q.msg = &r->req;
    r->t = t;
    r->max_body = o.max_body ? o.max_body : s->o.max_body;
    r->is_head = is_method(m, "HEAD");
    q.method = m;
    q.idempotent = idempotent(m);
    q.is_head = r->is_head;
    rc = attempt(s, h, &u, &o, &q, &tc, r);
    if (rc != 0)
      break;
    if (s->o.cookies)
      weft__hc_cookies_take(s, &u, &r->msg);
    int st = r->msg.status;
    const char *loc = weft_http_response_header(r, "location");
    bool redirect =
        (st == 301 || st == 302 || st == 303 || st == 307 || st == 308) &&
        loc != NULL && max_redir >= 0;
    if (redirect && (st == 307 || st == 308) && q.body_fn != NULL)
      redirect = false; /* the body cannot be sent again */
    if (!redirect) {
      r->url = cur;
      cur = NULL;
      r->redirects = redirects;
      rc = s->o.decompress ? weft__hc_decode_start(r) : 0;
      if (rc == WEFT_ENOTSUP)
        rc = 0; /* an unknown coding: the body as sent */
      break;
    }
    if (++redirects > max_redir) {
      rc = WEFT_EHTTP_REDIRECTS;
      break;
    }
    char *next = weft__hc_url_join(cur, loc);
    drain_small(r);
    weft_http_response_free(r);
    r = NULL;
    weft__hc_url_free(&u);
    if (next == NULL) {
      rc = WEFT_ENOMEM;
      break;
    }
    weft__free(cur);
    cur = next;
    if ((st == 303 && !is_method(m, "HEAD")) ||
        ((st == 301 || st == 302) && is_method(m, "POST"))) {
      m = "GET";
      q.body = NULL;
      q.body_len = 0;
      q.body_fn = NULL;
      if (q.body_fd >= 0) {
        close(q.body_fd);
        q.body_fd = -1;
      }
      q.length = -2;
      o.content_type = NULL;
    }
  }
  weft__hc_url_free(&u);
  weft__free(first.host);
  weft__free(cur);
  if (q.body_fd >= 0)
    close(q.body_fd);
  if (rc != 0) {
    if (r != NULL)
      weft_http_response_free(r);
    session_unref(s);
    return rc;
  }
  session_unref(s);
  *out = r;
  return 0;
}
