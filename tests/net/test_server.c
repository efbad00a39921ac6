/* net-server: weft_serve against real clients on loopback.
 *
 * Echo over IPv4, IPv6 and a Unix socket; 1 000 connections served at
 * once; the connection limit reached (accepting pauses, nobody is dropped)
 * and recovered; idle connections closed, busy ones kept; graceful shutdown
 * with handlers mid-request, in time and past the deadline; a failing
 * handler that disturbs nobody; running out of file descriptors without
 * spinning; TLS; SO_REUSEPORT across weft_run_workers loops. Every server
 * binds port 0, every wait is bounded, and every test leaves its loop
 * clean (t_run).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/server.h>
#include <weft/stream.h>
#include <weft/tls.h>

#include "test.h"

#define RUN(fn, arg) T_EQ(t_run((fn), (arg)), 0)

static bool have_ipv6(void) {
  weft_addr a;
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  (void)weft_addr_ip(&a, "::1", 0);
  bool ok = bind(fd, &a.u.sa, a.len) == 0;
  close(fd);
  return ok;
}

/* ---- handlers ---- */

static int echo(weft_stream *s, void *arg) {
  (void)arg;
  char buf[4096];
  for (;;) {
    ssize_t n = weft_stream_read(s, buf, sizeof buf);
    if (n == WEFT_EOF)
      return 0;
    if (n < 0)
      return (int)n;
    int rc = weft_stream_write(s, buf, (size_t)n);
    if (rc != 0)
      return rc;
  }
}

/* What handlers report back to the test. */
typedef struct probe {
  int started, finished, cancelled, failed;
  double work; /* seconds a request takes (slow handler) */
  weft_server *srv;
  int self_shutdown_rc;
} probe;

/* Reads one request, "works" on it for p->work seconds, answers it. */
static int slow(weft_stream *s, void *arg) {
  probe *p = arg;
  char buf[64];
  ssize_t n = weft_stream_read(s, buf, sizeof buf);
  if (n < 0)
    return n == WEFT_EOF ? 0 : (int)n;
  p->started++;
  int rc = weft_sleep(p->work);
  if (rc == WEFT_ECANCELED) {
    p->cancelled++;
    return rc;
  }
  if (rc == 0)
    rc = weft_stream_write(s, buf, (size_t)n);
  if (rc == 0)
    p->finished++;
  return rc;
}

/* Fails for a request that starts with 'X', echoes the others. */
static int picky(weft_stream *s, void *arg) {
  probe *p = arg;
  char buf[64];
  ssize_t n = weft_stream_read(s, buf, sizeof buf);
  if (n < 0)
    return n == WEFT_EOF ? 0 : (int)n;
  if (buf[0] == 'X') {
    p->failed++;
    return WEFT_EIO; /* a handler bug, as far as the server knows */
  }
  return weft_stream_write(s, buf, (size_t)n) == 0 ? echo(s, NULL) : -1;
}

/* ---- clients ---- */

/* Connects, sends `msg`, expects it back, closes. */
static int echo_once(const weft_addr *a, const char *msg) {
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, a, NULL);
  if (rc != 0)
    return rc;
  size_t n = strlen(msg);
  char buf[256];
  if ((rc = weft_stream_write(s, msg, n)) == 0 &&
      (rc = weft_stream_read_exactly(s, buf, n)) == 0 &&
      memcmp(buf, msg, n) != 0)
    rc = WEFT_EBADMSG;
  weft_stream_free(s);
  return rc;
}

static weft_server *serve_on(const char *ip, weft_serve_fn fn, void *arg,
                             const weft_server_opts *o, weft_addr *addr) {
  weft_addr a;
  weft_server *srv = NULL;
  T_OK(weft_addr_ip(&a, ip, 0));
  T_OK(weft_serve(&srv, &a, fn, arg, o));
  if (srv != NULL && addr != NULL) {
    T_OK(weft_server_addr(srv, addr));
    T_GT(weft_addr_port(addr), 0); /* port 0 gave a real one */
  }
  return srv;
}

/* ---- echo over each family ---- */

static int m_echo(void *arg) {
  const char *ip = arg;
  weft_addr a;
  weft_server *srv = serve_on(ip, echo, NULL, NULL, &a);
  T_OK(echo_once(&a, "hello"));
  T_OK(echo_once(&a, "again"));
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  T_EQ(st.accepted, 2);
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  return 0;
}
static void test_echo_ipv4(void) { RUN(m_echo, "127.0.0.1"); }
static void test_echo_ipv6(void) {
  if (!have_ipv6()) {
    fprintf(stderr, "  (no IPv6 loopback here: skipped)\n");
    return;
  }
  RUN(m_echo, "::1");
}

/* ---- 1 000 connections at once ---- */

enum { MANY = 1000 };

typedef struct many {
  weft_addr addr;
  int connected, done, errors, first_error;
  weft_event *all_in; /* set once every client is connected */
} many;

static int many_client(void *arg) {
  many *m = arg;
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, &m->addr, NULL);
  if (rc != 0)
    goto out;
  if (++m->connected == MANY)
    weft_event_set(m->all_in);
  /* Hold the connection until all are in, so the server really serves a
   * thousand at once; then a few round trips each. */
  rc = weft_event_wait(m->all_in);
  char msg[32], buf[32];
  for (int i = 0; rc == 0 && i < 3; i++) {
    int n = snprintf(msg, sizeof msg, "msg %d %p", i, (void *)s);
    if ((rc = weft_stream_write(s, msg, (size_t)n)) == 0 &&
        (rc = weft_stream_read_exactly(s, buf, (size_t)n)) == 0 &&
        memcmp(buf, msg, (size_t)n) != 0)
      rc = WEFT_EBADMSG;
  }
  weft_stream_free(s);
out:
  if (rc == 0)
    m->done++;
  else if (m->errors++ == 0)
    m->first_error = rc;
  return 0;
}

static int m_thousand(void *arg) {
  (void)arg;
  many m = {0};
  T_OK(weft_event_new(&m.all_in));
  weft_server *srv = serve_on("127.0.0.1", echo, NULL, NULL, &m.addr);
  weft_timeout scope;
  weft_timeout_enter(&scope, 30);
  weft_call *calls = calloc(MANY, sizeof *calls);
  for (int i = 0; i < MANY; i++)
    calls[i] = (weft_call){many_client, &m, 0};
  double t0 = weft_now();
  T_OK(weft_gather(calls, MANY));
  double took = weft_now() - t0;
  T_OK(weft_timeout_exit(&scope));
  free(calls);
  T_EQ(m.errors, 0);
  if (m.errors)
    fprintf(stderr, "  first error: %s\n", weft_err_name(m.first_error));
  T_EQ(m.done, MANY);
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  T_EQ(st.accepted, MANY);
  T_EQ(st.peak, MANY); /* all of them at once */
  T_EQ(st.dropped, 0);
  T_EQ(st.handler_errors, 0);
  fprintf(stderr, "  (%d connections, 3 round trips each, in %.2f s)\n", MANY,
          took);
  T_RC(weft_server_shutdown(srv, 5), 0);
  T_EQ(weft_server_connections(srv), 0);
  weft_server_free(srv);
  weft_event_free(m.all_in);
  return 0;
}
static void test_thousand(void) { RUN(m_thousand, NULL); }

/* ---- the connection limit ---- */

typedef struct held {
  weft_addr addr;
  weft_event *release;
  int answered, errors;
} held;

/* Connects (the kernel completes it from the backlog even while the server
 * does not accept), asks, waits for the answer, holds until released. */
static int held_client(void *arg) {
  held *h = arg;
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, &h->addr, NULL);
  if (rc == 0) {
    char buf[4];
    if ((rc = weft_stream_write(s, "ping", 4)) == 0 &&
        (rc = weft_stream_read_exactly(s, buf, 4)) == 0)
      h->answered++;
    if (rc == 0)
      rc = weft_event_wait(h->release);
    weft_stream_free(s);
  }
  if (rc != 0)
    h->errors++;
  return 0;
}

static int m_limit(void *arg) {
  (void)arg;
  enum { LIMIT = 5, CLIENTS = 12 };
  held h = {0};
  T_OK(weft_event_new(&h.release));
  weft_server_opts o = {.size = sizeof o, .max_connections = LIMIT};
  weft_server *srv = serve_on("127.0.0.1", echo, NULL, &o, &h.addr);
  weft_task *t[CLIENTS];
  for (int i = 0; i < CLIENTS; i++)
    T_OK(weft_spawn(&t[i], held_client, &h));
  T_OK(weft_sleep(0.2));
  /* At the limit: five served and holding, the rest wait in the backlog
   * (connected at the TCP level, not accepted), none refused. */
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  T_EQ(weft_server_connections(srv), LIMIT);
  T_EQ(st.accepted, LIMIT);
  T_EQ(h.answered, LIMIT);
  T_GE(st.limit_pauses, 1);
  T_EQ(h.errors, 0);
  /* Each connection that ends lets exactly one more in. */
  weft_event_set(h.release);
  weft_timeout scope;
  weft_timeout_enter(&scope, 10);
  for (int i = 0; i < CLIENTS; i++) {
    int r;
    T_OK(weft_join(t[i], &r));
  }
  T_OK(weft_timeout_exit(&scope));
  weft_server_stats_get(srv, &st);
  T_EQ(h.answered, CLIENTS);
  T_EQ(h.errors, 0);
  T_EQ(st.accepted, CLIENTS);
  T_EQ(st.peak, LIMIT);
  T_EQ(st.dropped, 0);
  /* Recovered: the server accepts again once below the limit. */
  T_OK(echo_once(&h.addr, "after"));
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  weft_event_free(h.release);
  return 0;
}
static void test_limit(void) { RUN(m_limit, NULL); }

/* ---- idle timeout ---- */

typedef struct idle_res {
  weft_addr addr;
  int rc;
  double took;
} idle_res;

/* Says one thing, then stays silent: the server closes on it. */
static int silent_client(void *arg) {
  idle_res *r = arg;
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, &r->addr, NULL);
  if (rc != 0)
    return rc;
  char buf[8];
  double t0 = weft_now();
  if ((rc = weft_stream_write(s, "hi", 2)) == 0 &&
      (rc = weft_stream_read_exactly(s, buf, 2)) == 0) {
    t0 = weft_now();
    ssize_t n = weft_stream_read(s, buf, sizeof buf);
    r->rc = n < 0 ? (int)n : 0;
    r->took = weft_now() - t0;
  }
  weft_stream_free(s);
  return rc;
}

/* Talks every 50 ms for 0.6 s: never idle for 0.2 s. */
static int chatty_client(void *arg) {
  idle_res *r = arg;
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, &r->addr, NULL);
  if (rc != 0)
    return rc;
  char buf[8];
  for (int i = 0; rc == 0 && i < 12; i++) {
    if ((rc = weft_stream_write(s, "hi", 2)) == 0 &&
        (rc = weft_stream_read_exactly(s, buf, 2)) == 0)
      rc = weft_sleep(0.05);
  }
  r->rc = rc;
  weft_stream_free(s);
  return 0;
}

static int m_idle(void *arg) {
  (void)arg;
  weft_server_opts o = {.size = sizeof o, .idle_timeout = 0.2};
  idle_res quiet = {0}, busy = {0};
  weft_server *srv = serve_on("127.0.0.1", echo, NULL, &o, &quiet.addr);
  busy.addr = quiet.addr;
  weft_task *tq, *tb;
  T_OK(weft_spawn(&tq, silent_client, &quiet));
  T_OK(weft_spawn(&tb, chatty_client, &busy));
  int r;
  T_OK(weft_join(tq, &r));
  T_EQ(r, 0);
  T_OK(weft_join(tb, &r));
  /* The silent one saw its connection end after 1 to 1.25 idle periods
   * (plus scheduling); the chatty one never noticed a thing. */
  T_TRUE(quiet.rc == WEFT_EOF || quiet.rc == WEFT_ECONNRESET);
  T_GE(quiet.took, 0.19);
  T_LE(quiet.took, 0.5);
  T_EQ(busy.rc, 0);
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  T_EQ(st.idle_timeouts, 1);
  T_EQ(st.handler_errors, 0);
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  return 0;
}
static void test_idle(void) { RUN(m_idle, NULL); }

/* ---- graceful shutdown ---- */

typedef struct asker {
  weft_addr addr;
  int rc;
} asker;

static int ask(void *arg) {
  asker *a = arg;
  a->rc = echo_once(&a->addr, "request");
  return 0;
}

/* Shuts down while `n` handlers are mid-request. */
static int shutdown_with(double work, double grace, probe *p, asker *as, int n,
                         int *cancelled, double *took) {
  weft_addr addr;
  p->work = work;
  weft_server *srv = serve_on("127.0.0.1", slow, p, NULL, &addr);
  weft_task *t[16];
  for (int i = 0; i < n; i++) {
    as[i].addr = addr;
    T_OK(weft_spawn(&t[i], ask, &as[i]));
  }
  for (int i = 0; i < 200 && p->started < n; i++)
    T_OK(weft_sleep(0.005));
  T_EQ(p->started, n);
  double t0 = weft_now();
  *cancelled = weft_server_shutdown(srv, grace);
  *took = weft_now() - t0;
  T_EQ(weft_server_connections(srv), 0); /* nobody outlives shutdown */
  T_TRUE(weft_server_closing(srv));
  /* Closed: new peers are refused. */
  T_RC(echo_once(&addr, "late"), WEFT_ECONNREFUSED);
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  T_EQ(st.cancelled, (uint64_t)(*cancelled > 0 ? *cancelled : 0));
  T_EQ(st.handler_errors, 0); /* cancelled by the server is no error */
  weft_server_free(srv);
  for (int i = 0; i < n; i++) {
    int r;
    T_OK(weft_join(t[i], &r));
  }
  return 0;
}

static int m_shutdown_in_time(void *arg) {
  (void)arg;
  enum { N = 8 };
  probe p = {0};
  asker as[N];
  int cancelled;
  double took;
  shutdown_with(0.1, 5, &p, as, N, &cancelled, &took);
  T_EQ(cancelled, 0);
  T_EQ(p.finished, N);
  T_LT(took, 1); /* returned when the last handler did, not at 5 s */
  for (int i = 0; i < N; i++)
    T_RC(as[i].rc, 0); /* every request mid-flight was answered */
  return 0;
}
static void test_shutdown_in_time(void) { RUN(m_shutdown_in_time, NULL); }

static int m_shutdown_deadline(void *arg) {
  (void)arg;
  enum { N = 8 };
  probe p = {0};
  asker as[N];
  int cancelled;
  double took;
  shutdown_with(30, 0.2, &p, as, N, &cancelled, &took);
  T_EQ(cancelled, N);
  T_EQ(p.cancelled, N);
  T_EQ(p.finished, 0);
  T_GE(took, 0.19);
  T_LT(took, 2);
  for (int i = 0; i < N; i++) /* the peers see the end, not a hang */
    T_TRUE(as[i].rc == WEFT_EOF || as[i].rc == WEFT_ECONNRESET);
  return 0;
}
static void test_shutdown_deadline(void) { RUN(m_shutdown_deadline, NULL); }

/* The task calling shutdown is cancelled during the grace period: the
 * handlers are cancelled and awaited all the same. */
static int shutdown_task(void *arg) {
  weft_server *srv = arg;
  return weft_server_shutdown(srv, 30);
}

static int m_shutdown_cancelled(void *arg) {
  (void)arg;
  probe p = {.work = 30};
  weft_addr addr;
  weft_server *srv = serve_on("127.0.0.1", slow, &p, NULL, &addr);
  asker a = {.addr = addr};
  weft_task *c, *sd;
  T_OK(weft_spawn(&c, ask, &a));
  for (int i = 0; i < 200 && p.started < 1; i++)
    T_OK(weft_sleep(0.005));
  T_OK(weft_spawn(&sd, shutdown_task, srv));
  T_OK(weft_sleep(0.05));
  weft_cancel(sd);
  int r;
  T_OK(weft_join(sd, &r));
  T_EQ(r, WEFT_ECANCELED);
  T_EQ(weft_server_connections(srv), 0);
  T_EQ(p.cancelled, 1);
  T_OK(weft_join(c, &r));
  weft_server_free(srv);
  return 0;
}
static void test_shutdown_cancelled(void) { RUN(m_shutdown_cancelled, NULL); }

/* A handler asking its own server to shut down would wait for itself. */
static int self_shutdown(weft_stream *s, void *arg) {
  (void)s;
  probe *p = arg;
  p->self_shutdown_rc = weft_server_shutdown(p->srv, 1);
  return 0;
}

static int m_shutdown_from_handler(void *arg) {
  (void)arg;
  probe p = {0};
  weft_addr addr;
  p.srv = serve_on("127.0.0.1", self_shutdown, &p, NULL, &addr);
  weft_stream *s;
  T_OK(weft_stream_connect_addr(&s, &addr, NULL));
  char b;
  T_TRUE(weft_stream_read(s, &b, 1) == WEFT_EOF);
  weft_stream_free(s);
  T_RC(p.self_shutdown_rc, WEFT_EDEADLK);
  T_RC(weft_server_shutdown(p.srv, 1), 0);
  weft_server_free(p.srv);
  return 0;
}
static void test_shutdown_from_handler(void) {
  RUN(m_shutdown_from_handler, NULL);
}

/* Freeing a server with handlers running cancels them; the memory goes
 * with the last one (t_run checks nothing is left). */
static int m_free_running(void *arg) {
  (void)arg;
  probe p = {.work = 30};
  weft_addr addr;
  weft_server *srv = serve_on("127.0.0.1", slow, &p, NULL, &addr);
  asker a[3];
  weft_task *t[3];
  for (int i = 0; i < 3; i++) {
    a[i].addr = addr;
    T_OK(weft_spawn(&t[i], ask, &a[i]));
  }
  for (int i = 0; i < 200 && p.started < 3; i++)
    T_OK(weft_sleep(0.005));
  weft_server_free(srv);
  for (int i = 0; i < 3; i++) {
    int r;
    T_OK(weft_join(t[i], &r));
    T_TRUE(a[i].rc == WEFT_EOF || a[i].rc == WEFT_ECONNRESET);
  }
  T_OK(weft_sleep(0.01));
  T_EQ(p.cancelled, 3);
  return 0;
}
static void test_free_running(void) { RUN(m_free_running, NULL); }

/* Freed by one task while another waits in its shutdown: the waiting task
 * still returns (the memory goes after it). */
static int m_free_during_shutdown(void *arg) {
  (void)arg;
  probe p = {.work = 30};
  weft_addr addr;
  weft_server *srv = serve_on("127.0.0.1", slow, &p, NULL, &addr);
  asker a = {.addr = addr};
  weft_task *c, *sd;
  T_OK(weft_spawn(&c, ask, &a));
  for (int i = 0; i < 200 && p.started < 1; i++)
    T_OK(weft_sleep(0.005));
  T_OK(weft_spawn(&sd, shutdown_task, srv));
  T_OK(weft_sleep(0.05));
  weft_server_free(srv); /* cancels the handler; sd wakes when it is gone */
  int r = -1;
  T_OK(weft_join(sd, &r));
  T_EQ(r, 0); /* nothing left for it to cancel */
  T_OK(weft_join(c, &r));
  T_EQ(p.cancelled, 1);
  return 0;
}
static void test_free_during_shutdown(void) {
  RUN(m_free_during_shutdown, NULL);
}

/* ---- a failing handler disturbs nobody ---- */

typedef struct mixed {
  weft_addr addr;
  const char *msg;
  int rc;
} mixed;

static int mixed_client(void *arg) {
  mixed *m = arg;
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, &m->addr, NULL);
  if (rc != 0) {
    m->rc = rc;
    return 0;
  }
  char buf[16];
  size_t n = strlen(m->msg);
  /* Two round trips, so the good ones overlap the failures. */
  for (int i = 0; rc == 0 && i < 2; i++)
    if ((rc = weft_stream_write(s, m->msg, n)) == 0)
      rc = weft_stream_read_exactly(s, buf, n);
  m->rc = rc;
  weft_stream_free(s);
  return 0;
}

static int m_failing_handler(void *arg) {
  (void)arg;
  enum { N = 20 };
  probe p = {0};
  weft_addr addr;
  weft_server *srv = serve_on("127.0.0.1", picky, &p, NULL, &addr);
  mixed m[N];
  weft_call calls[N];
  for (int i = 0; i < N; i++) {
    m[i] = (mixed){addr, i % 4 == 0 ? "X-fail" : "fine", 1};
    calls[i] = (weft_call){mixed_client, &m[i], 0};
  }
  weft_timeout scope;
  weft_timeout_enter(&scope, 10);
  T_OK(weft_gather(calls, N));
  T_OK(weft_timeout_exit(&scope));
  for (int i = 0; i < N; i++) {
    if (i % 4 == 0)
      T_TRUE(m[i].rc == WEFT_EOF || m[i].rc == WEFT_ECONNRESET);
    else
      T_RC(m[i].rc, 0);
  }
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  T_EQ(p.failed, N / 4);
  T_EQ(st.handler_errors, N / 4);
  T_EQ(st.accepted, N);
  T_OK(echo_once(&addr, "still serving"));
  /* A peer that resets is the peer's doing: counted apart, not reported. */
  weft_stream *r;
  char b[4];
  T_OK(weft_stream_connect_addr(&r, &addr, NULL));
  T_OK(weft_stream_write(r, "fine", 4));
  T_OK(weft_stream_read_exactly(r, b, 4));
  weft_stream_abort(r);
  for (int i = 0; i < 200 && weft_server_connections(srv) > 0; i++)
    T_OK(weft_sleep(0.005));
  weft_server_stats_get(srv, &st);
  T_EQ(st.peer_errors, 1);
  T_EQ(st.handler_errors, N / 4);
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  return 0;
}
static void test_failing_handler(void) { RUN(m_failing_handler, NULL); }

/* ---- Unix sockets ---- */

static int m_unix(void *arg) {
  (void)arg;
  char dir[] = "/tmp/weft-srv-XXXXXX";
  T_TRUE(mkdtemp(dir) != NULL);
  char path[64];
  snprintf(path, sizeof path, "%s/echo.sock", dir);
  weft_addr a, got;
  T_OK(weft_addr_unix(&a, path));
  /* A socket file left behind by a dead server is replaced. */
  int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  T_EQ(bind(stale, &a.u.sa, a.len), 0);
  close(stale);
  weft_server_opts o = {.size = sizeof o, .unix_mode = 0600};
  weft_server *srv = NULL;
  T_OK(weft_serve(&srv, &a, echo, NULL, &o));
  T_OK(weft_server_addr(srv, &got));
  T_TRUE(weft_addr_equal(&a, &got));
  struct stat st;
  T_EQ(stat(path, &st), 0);
  T_EQ(st.st_mode & 0777, 0600);
  /* One a live server listens on is not. */
  weft_server *second = NULL;
  T_RC(weft_serve(&second, &a, echo, NULL, NULL), WEFT_EADDRINUSE);
  weft_stream *s;
  T_OK(weft_stream_connect_unix(&s, path, NULL));
  char buf[8];
  T_OK(weft_stream_write(s, "unix", 4));
  T_OK(weft_stream_read_exactly(s, buf, 4));
  T_EQ(memcmp(buf, "unix", 4), 0);
  weft_stream_free(s);
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  T_TRUE(access(path, F_OK) != 0); /* removed with the server */
  rmdir(dir);
  /* An abstract socket has no file at all. */
  char abs_name[64];
  snprintf(abs_name, sizeof abs_name, "@weft-test-echo-%d", (int)getpid());
  T_OK(weft_addr_unix(&a, abs_name));
  T_OK(weft_serve(&srv, &a, echo, NULL, NULL));
  T_OK(weft_stream_connect_addr(&s, &a, NULL));
  T_OK(weft_stream_write(s, "abs", 3));
  T_OK(weft_stream_read_exactly(s, buf, 3));
  weft_stream_free(s);
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  return 0;
}
static void test_unix(void) { RUN(m_unix, NULL); }

/* ---- out of file descriptors ---- */

static int count_loop_turns(void) {
  weft_stats st;
  weft_loop_stats(weft_loop_current(), &st);
  return (int)st.loop_iterations;
}

/* Lowers RLIMIT_NOFILE so that exactly `spare` more descriptors can be
 * made; the holes below are filled with dups listed in fill[]. */
static int squeeze_fds(int spare, int *fill, int cap, struct rlimit *old) {
  getrlimit(RLIMIT_NOFILE, old);
  int maxfd = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    if (fd > maxfd)
      maxfd = fd;
  }
  closedir(d);
  struct rlimit lim = {(rlim_t)maxfd + 1, old->rlim_max};
  setrlimit(RLIMIT_NOFILE, &lim);
  int n = 0;
  int fd;
  while (n < cap && (fd = dup(0)) >= 0)
    fill[n++] = fd;
  lim.rlim_cur += (rlim_t)spare;
  setrlimit(RLIMIT_NOFILE, &lim);
  return n;
}

static int m_emfile(void *arg) {
  (void)arg;
  weft_addr addr;
  weft_server *srv = serve_on("127.0.0.1", echo, NULL, NULL, &addr);
  /* Four peers connect with plain blocking sockets (the backlog completes
   * them); the server may then make only two more descriptors. */
  enum { PEERS = 4 };
  int peer[PEERS];
  for (int i = 0; i < PEERS; i++) {
    peer[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T_EQ(connect(peer[i], &addr.u.sa, addr.len), 0);
  }
  int fill[4096];
  struct rlimit old;
  int nfill = squeeze_fds(2, fill, 4096, &old);
  int turns0 = count_loop_turns();
  T_OK(weft_sleep(0.3));
  int turns = count_loop_turns() - turns0;
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  /* Two served, the other two wait in the backlog, and the loop slept: a
   * spinning accept would have turned it thousands of times. */
  T_EQ(st.accepted, 2);
  T_GE(st.fd_backoffs, 1);
  T_LT(turns, 100);
  T_EQ(st.dropped, 0);
  fprintf(stderr,
          "  (%d loop turns in 0.3 s out of descriptors, %llu "
          "back-offs)\n",
          turns, (unsigned long long)st.fd_backoffs);
  /* Descriptors come back: the other two are served within a back-off. */
  for (int i = 0; i < nfill; i++)
    close(fill[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  for (int i = 0; i < 300 && st.accepted < PEERS; i++) {
    T_OK(weft_sleep(0.01));
    weft_server_stats_get(srv, &st);
  }
  T_EQ(st.accepted, PEERS);
  for (int i = 0; i < PEERS; i++) {
    char b[4];
    T_EQ(write(peer[i], "abc", 3), 3);
    /* The echo comes from a task on this loop: let it run. */
    for (int k = 0; k < 100; k++) {
      T_OK(weft_sleep(0.002));
      if (recv(peer[i], b, sizeof b, MSG_DONTWAIT) == 3)
        break;
      T_TRUE(k < 99);
    }
    close(peer[i]);
  }
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  return 0;
}
static void test_emfile(void) { RUN(m_emfile, NULL); }

/* ---- TLS ---- */

static char tls_dir[64], tls_cert[128], tls_key[128];

static bool make_cert(void) {
  if (tls_dir[0])
    return true;
  snprintf(tls_dir, sizeof tls_dir, "/tmp/weft-srv-tls-XXXXXX");
  if (mkdtemp(tls_dir) == NULL)
    return false;
  snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", tls_dir);
  snprintf(tls_key, sizeof tls_key, "%s/key.pem", tls_dir);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           "-nodes -days 1 -subj /CN=localhost "
           "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
           ">/dev/null 2>&1",
           tls_key, tls_cert);
  return system(cmd) == 0;
}

static int m_tls(void *arg) {
  (void)arg;
  weft_tls_opts so = {
      .size = sizeof so, .cert_file = tls_cert, .key_file = tls_key};
  weft_tls_opts co = {.size = sizeof co, .ca_file = tls_cert};
  weft_tls_ctx *sctx = NULL, *cctx = NULL;
  T_OK(weft_tls_server_ctx_new(&sctx, &so));
  T_OK(weft_tls_client_ctx_new(&cctx, &co));
  weft_server_opts o = {.size = sizeof o, .tls = sctx};
  weft_addr addr;
  weft_server *srv = serve_on("127.0.0.1", echo, NULL, &o, &addr);
  /* A verified TLS client gets its echo. */
  weft_stream_opts sopt = {.size = sizeof sopt, .tls = cctx};
  weft_stream *s;
  T_OK(weft_stream_connect_addr(&s, &addr, &sopt));
  char buf[16];
  T_OK(weft_stream_write(s, "secret", 6));
  T_OK(weft_stream_read_exactly(s, buf, 6));
  T_EQ(memcmp(buf, "secret", 6), 0);
  T_TRUE(weft_stream_tls_version(s) != NULL);
  /* A plaintext client fails its handshake; the TLS one goes on. */
  weft_stream *plain;
  T_OK(weft_stream_connect_addr(&plain, &addr, NULL));
  T_OK(weft_stream_write(plain, "GET / HTTP/1.0\r\n\r\n", 18));
  ssize_t n;
  do
    n = weft_stream_read(plain, buf, sizeof buf);
  while (n > 0);
  T_TRUE(n == WEFT_EOF || n == WEFT_ECONNRESET);
  weft_stream_free(plain);
  T_OK(weft_stream_write(s, "still", 5));
  T_OK(weft_stream_read_exactly(s, buf, 5));
  T_OK(weft_stream_close(s));
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  T_EQ(st.tls_failures, 1);
  T_EQ(st.handler_errors, 0);
  T_RC(weft_server_shutdown(srv, 1), 0);
  weft_server_free(srv);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return 0;
}
static void test_tls(void) {
  if (!make_cert()) {
    T_TRUE(!"openssl req failed: cannot make a test certificate");
    return;
  }
  RUN(m_tls, NULL);
}

/* ---- SO_REUSEPORT across worker loops ---- */

enum { WORKERS = 4, RP_CONNS = 200 };

typedef struct rp {
  atomic_int port;
  atomic_int listening;
  atomic_int accepted[WORKERS];
  atomic_int served; /* answered client round trips */
} rp;

static int rp_echo(weft_stream *s, void *arg) {
  rp *r = arg;
  atomic_fetch_add(&r->accepted[weft_worker_index()], 1);
  return echo(s, NULL);
}

static int rp_client(void *arg) {
  rp *r = arg;
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", atomic_load(&r->port));
  int rc = echo_once(&a, "spread");
  if (rc == 0)
    atomic_fetch_add(&r->served, 1);
  return 0;
}

/* Every worker serves the port worker 0 picked; worker 0 also runs the
 * clients, then stops everyone. CUnit is not thread-safe, so workers report
 * through `rp` and their results; the test checks afterwards. */
static int rp_main(void *arg) {
  rp *r = arg;
  int me = weft_worker_index();
  while (me > 0 && atomic_load(&r->port) == 0)
    if (weft_sleep(0.001) != 0)
      return WEFT_ECANCELED;
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", me == 0 ? 0 : atomic_load(&r->port));
  weft_server_opts o = {.size = sizeof o, .reuse_port = true};
  weft_server *srv;
  int rc = weft_serve(&srv, &a, rp_echo, r, &o);
  if (rc != 0) {
    atomic_store(&r->port, -1);
    return rc;
  }
  if (me == 0) {
    weft_addr real;
    (void)weft_server_addr(srv, &real);
    atomic_store(&r->port, weft_addr_port(&real));
  }
  atomic_fetch_add(&r->listening, 1);
  if (me == 0) {
    while (atomic_load(&r->listening) < WORKERS && rc == 0)
      rc = weft_sleep(0.001);
    weft_call calls[RP_CONNS];
    for (int i = 0; i < RP_CONNS; i++)
      calls[i] = (weft_call){rp_client, r, 0};
    if (rc == 0)
      rc = weft_gather(calls, RP_CONNS);
    (void)weft_workers_stop();
  } else {
    rc = weft_workers_wait_stop();
  }
  int sd = weft_server_shutdown(srv, 5);
  weft_server_free(srv);
  return rc != 0 ? rc : sd;
}

static void test_reuseport_workers(void) {
  rp r = {0};
  double t0 = weft_now();
  T_OK(weft_run_workers(WORKERS, rp_main, &r));
  T_LT(weft_now() - t0, 20);
  T_EQ(atomic_load(&r.served), RP_CONNS);
  int total = 0, busy = 0;
  for (int i = 0; i < WORKERS; i++) {
    int n = atomic_load(&r.accepted[i]);
    total += n;
    busy += n > 0;
  }
  fprintf(stderr, "  (accepted per worker: %d %d %d %d)\n",
          atomic_load(&r.accepted[0]), atomic_load(&r.accepted[1]),
          atomic_load(&r.accepted[2]), atomic_load(&r.accepted[3]));
  T_EQ(total, RP_CONNS);
  T_GE(busy, 2); /* the kernel spread them over several loops */
}

/* ---- bad arguments, closed servers ---- */

static int m_bad(void *arg) {
  (void)arg;
  weft_server *srv = NULL;
  weft_addr a, taken;
  T_OK(weft_addr_ip(&a, "127.0.0.1", 0));
  T_RC(weft_serve(&srv, &a, NULL, NULL, NULL), WEFT_EINVAL);
  T_RC(weft_serve(&srv, NULL, echo, NULL, NULL), WEFT_EINVAL);
  weft_server_opts o = {.size = sizeof o, .idle_timeout = -1};
  T_RC(weft_serve(&srv, &a, echo, NULL, &o), WEFT_EINVAL);
  weft_server *first = serve_on("127.0.0.1", echo, NULL, NULL, &taken);
  T_RC(weft_serve(&srv, &taken, echo, NULL, NULL), WEFT_EADDRINUSE);
  T_TRUE(srv == NULL);
  T_FALSE(weft_server_closing(first));
  weft_server_close(first);
  weft_server_close(first); /* twice: nothing more */
  T_TRUE(weft_server_closing(first));
  T_RC(echo_once(&taken, "x"), WEFT_ECONNREFUSED);
  T_RC(weft_server_shutdown(first, NAN), WEFT_EINVAL);
  T_RC(weft_server_shutdown(first, 0), 0);
  weft_server_free(first);
  weft_server_free(NULL);
  return 0;
}
static void test_bad(void) {
  RUN(m_bad, NULL);
  weft_server *srv;
  weft_addr a;
  T_OK(weft_addr_ip(&a, "127.0.0.1", 0));
  T_RC(weft_serve(&srv, &a, echo, NULL, NULL), WEFT_ENOLOOP);
}

static const t_case cases[] = {
    {"echo_ipv4", test_echo_ipv4},
    {"echo_ipv6", test_echo_ipv6},
    {"thousand", test_thousand},
    {"limit", test_limit},
    {"idle", test_idle},
    {"shutdown_in_time", test_shutdown_in_time},
    {"shutdown_deadline", test_shutdown_deadline},
    {"shutdown_cancelled", test_shutdown_cancelled},
    {"shutdown_from_handler", test_shutdown_from_handler},
    {"free_running", test_free_running},
    {"free_during_shutdown", test_free_during_shutdown},
    {"failing_handler", test_failing_handler},
    {"unix", test_unix},
    {"emfile", test_emfile},
    {"tls", test_tls},
    {"reuseport_workers", test_reuseport_workers},
    {"bad", test_bad},
    {NULL, NULL}};

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  int rc = t_main("net-server", cases);
  if (tls_dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
    (void)system(cmd);
  }
  return rc;
}
