/* net-stream: TCP (IPv4, IPv6, by name) and Unix streams against real
 * sockets on loopback: every read call and what it leaves when it fails,
 * peers that reset or close mid-read, a writer that outpaces its reader
 * (the queue stays under the high-water mark, drain waits), cancellation
 * and deadlines in connect, read and write, Happy Eyeballs with an address
 * that never answers, frees under waiting tasks, a loop kept busy by streams
 * that still serves libevent's events, and no leaked sockets. */
#define _GNU_SOURCE
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <weft/server.h>

#include "test_stream_util.h"

/* ---- helpers ---- */

/* A connected TCP pair on `ip`: *c from weft_stream_connect_addr, *s
 * accepted. */
static void tcp_pair(const char *ip, weft_stream **c, weft_stream **s,
                     const weft_stream_opts *copts) {
  weft_addr a;
  int lfd = t_listen(ip, 16, &a);
  T_OK(weft_stream_connect_addr(c, &a, copts));
  T_OK(t_accept(lfd, s, NULL));
  close(lfd);
}

/* A connected Unix socket pair as two streams. */
/* A listener that never completes a handshake: its backlog (0) is full, so
 * the kernel drops further SYNs and a connect to it just waits. Stays
 * deterministic on loopback: the fillers are connects the listener never
 * accepts. */
typedef struct blackhole {
  int lfd;
  int fill[3];
  weft_addr addr;
} blackhole;

static void blackhole_open(blackhole *b, const char *ip) {
  b->lfd = t_listen(ip, 0, &b->addr);
  for (int i = 0; i < 3; i++) {
    b->fill[i] = socket(b->addr.u.sa.sa_family,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    (void)connect(b->fill[i], &b->addr.u.sa, b->addr.len);
  }
  T_OK(weft_sleep(0.05)); /* let the fillers take the queue */
}

static void blackhole_close(blackhole *b) {
  for (int i = 0; i < 3; i++)
    close(b->fill[i]);
  close(b->lfd);
}

static void sizes(weft_stream *s, int snd, int rcv) {
  int fd = weft_stream_fd(s);
  if (snd > 0)
    T_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd), 0);
  if (rcv > 0)
    T_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv), 0);
}

static void settle(void) {
  for (int i = 0; i < 4; i++)
    T_OK(weft_yield());
}

/* ---- basics ---- */

static int echo_once(weft_stream *c, weft_stream *s) {
  char buf[64];
  T_OK(weft_stream_write(c, "hello\n", 6));
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 6);
  T_STREQ(buf, "hello\n");
  T_OK(weft_stream_write(s, "world\n", 6));
  T_EQ(weft_stream_readline(c, buf, sizeof buf), 6);
  T_STREQ(buf, "world\n");
  return 0;
}

static int m_tcp4(void *arg) {
  (void)arg;
  weft_stream *c = NULL, *s = NULL;
  tcp_pair("127.0.0.1", &c, &s, NULL);
  echo_once(c, s);
  weft_addr cp, cl, sp, sl;
  T_OK(weft_stream_peer_addr(c, &cp));
  T_OK(weft_stream_local_addr(c, &cl));
  T_OK(weft_stream_peer_addr(s, &sp));
  T_OK(weft_stream_local_addr(s, &sl));
  T_TRUE(weft_addr_equal(&cp, &sl));
  T_TRUE(weft_addr_equal(&cl, &sp));
  int on = 0;
  socklen_t len = sizeof on;
  T_EQ(getsockopt(weft_stream_fd(c), IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
  T_TRUE(on); /* on by default, as in asyncio */
  weft_stream_info info;
  weft_stream_info_get(c, &info);
  T_EQ(info.bytes_written, 6);
  T_EQ(info.bytes_read, 6);
  T_FALSE(info.tls);
  T_OK(weft_stream_close(c));
  T_OK(weft_stream_close(s));
  return 0;
}
static void test_tcp4(void) { RUN(m_tcp4); }

static int m_tcp6_by_text(void *arg) {
  (void)arg;
  weft_addr a;
  int lfd = t_listen("::1", 16, &a);
  weft_stream *c = NULL, *s = NULL;
  T_OK(weft_stream_connect(&c, "::1", weft_addr_port(&a), NULL));
  T_OK(t_accept(lfd, &s, NULL));
  echo_once(c, s);
  weft_addr p;
  T_OK(weft_stream_peer_addr(c, &p));
  T_EQ(weft_addr_family(&p), AF_INET6);
  weft_stream_free(c);
  weft_stream_free(s);
  close(lfd);
  return 0;
}
static void test_tcp6_by_text(void) { RUN(m_tcp6_by_text); }

/* "localhost" resolves (through /etc/hosts) to ::1 and 127.0.0.1; only the
 * IPv4 one listens, so the IPv6 attempt is refused and the next starts at
 * once. */
static int m_by_name(void *arg) {
  (void)arg;
  weft_addr a;
  int lfd = t_listen("127.0.0.1", 16, &a);
  weft_stream *c = NULL, *s = NULL;
  double t0 = weft_now();
  int rc = weft_stream_connect(&c, "localhost", weft_addr_port(&a), NULL);
  if (rc == WEFT_ENOSYS) { /* built without DNS */
    close(lfd);
    return 0;
  }
  T_OK(rc);
  T_LT(weft_now() - t0, 0.2); /* a refusal does not wait for the stagger */
  T_OK(t_accept(lfd, &s, NULL));
  echo_once(c, s);
  weft_stream_free(c);
  weft_stream_free(s);
  close(lfd);
  T_RC(weft_stream_connect(&c, "127.0.0.1", 70000, NULL), WEFT_EINVAL);
  return 0;
}
static void test_by_name(void) { RUN(m_by_name); }

static int m_unix(void *arg) {
  (void)arg;
  char dir[256], path[300];
  T_OK(t_tmpdir(dir, sizeof dir, "unix"));
  snprintf(path, sizeof path, "%s/sock", dir);
  weft_addr a;
  T_OK(weft_addr_unix(&a, path));
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  T_EQ(bind(lfd, &a.u.sa, a.len), 0);
  T_EQ(listen(lfd, 4), 0);
  weft_stream *c = NULL, *s = NULL;
  T_OK(weft_stream_connect_unix(&c, path, NULL));
  T_OK(t_accept(lfd, &s, NULL));
  echo_once(c, s);
  T_RC(weft_stream_set_nodelay(c, true), WEFT_ENOTSUP);
  T_RC(weft_stream_set_keepalive(c, true, 10), WEFT_ENOTSUP);
  weft_stream_free(c);
  weft_stream_free(s);
  close(lfd);
  /* Nobody listening: refused, nothing left open. */
  T_RC(weft_stream_connect_unix(&c, path, NULL), WEFT_ECONNREFUSED);
  t_rmtree(dir);
  T_RC(weft_stream_connect_unix(&c, path, NULL), WEFT_ENOENT);
  return 0;
}
static void test_unix(void) { RUN(m_unix); }

static int m_refused(void *arg) {
  (void)arg;
  weft_addr a;
  int lfd = t_listen("127.0.0.1", 1, &a);
  close(lfd); /* the port is now closed */
  weft_stream *c = NULL;
  int fds = t_count_fds();
  T_RC(weft_stream_connect_addr(&c, &a, NULL), WEFT_ECONNREFUSED);
  T_TRUE(c == NULL);
  T_EQ(t_count_fds(), fds);
  return 0;
}
static void test_refused(void) { RUN(m_refused); }

/* ---- reading ---- */

static int m_read_calls(void *arg) {
  (void)arg;
  weft_stream *a = NULL, *b = NULL;
  unix_pair(&a, &b);
  char buf[64];
  T_OK(weft_stream_write(b, "line1\nline2\r\nabc", 16));
  T_OK(weft_stream_shutdown(b));
  T_EQ(weft_stream_readline(a, buf, sizeof buf), 6);
  T_STREQ(buf, "line1\n");
  T_EQ(weft_stream_read_until(a, "\r\n", 2, buf, sizeof buf), 7);
  T_EQ(memcmp(buf, "line2\r\n", 7), 0);
  /* A line longer than the limit: WEFT_ELIMIT, nothing consumed. */
  T_RC((int)weft_stream_readline(a, buf, 3), WEFT_ELIMIT);
  T_RC((int)weft_stream_read_until(a, "x", 1, buf, 2), WEFT_ELIMIT);
  T_EQ(weft_stream_buffered(a), 3);
  /* The end comes before n bytes: WEFT_EOF, and the bytes stay. */
  T_RC(weft_stream_read_exactly(a, buf, 10), WEFT_EOF);
  T_EQ(weft_stream_buffered(a), 3);
  T_RC((int)weft_stream_read_until(a, "x", 1, buf, sizeof buf), WEFT_EOF);
  const void *view;
  size_t len;
  T_OK(weft_stream_peek(a, 2, &view, &len));
  T_EQ(len, 3);
  T_EQ(memcmp(view, "abc", 3), 0);
  T_OK(weft_stream_consume(a, 1));
  T_RC(weft_stream_consume(a, 5), WEFT_EINVAL);
  /* The last line has no newline: readline still returns it. */
  T_EQ(weft_stream_readline(a, buf, sizeof buf), 2);
  T_STREQ(buf, "bc");
  T_RC((int)weft_stream_readline(a, buf, sizeof buf), WEFT_EOF);
  T_RC((int)weft_stream_read(a, buf, sizeof buf), WEFT_EOF);
  T_RC(weft_stream_peek(a, 1, &view, &len), WEFT_EOF);
  T_EQ(len, 0);
  T_EQ(weft_stream_read(a, buf, 0), 0);
  weft_stream_info info;
  weft_stream_info_get(a, &info);
  T_EQ(info.bytes_read, 16);
  T_TRUE(info.eof);
  weft_stream_free(a);
  weft_stream_free(b);
  return 0;
}
static void test_read_calls(void) { RUN(m_read_calls); }

static int m_read_to_eof(void *arg) {
  (void)arg;
  weft_stream *a = NULL, *b = NULL;
  unix_pair(&a, &b);
  static char big[200000], got[200001];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 7);
  T_OK(weft_stream_write(b, big, sizeof big));
  T_OK(weft_stream_shutdown(b));
  /* Too small a buffer: WEFT_ELIMIT and nothing consumed. */
  T_RC((int)weft_stream_read_to_eof(a, got, 1000), WEFT_ELIMIT);
  T_EQ(weft_stream_read_to_eof(a, got, sizeof got), (ssize_t)sizeof big);
  T_EQ(memcmp(got, big, sizeof big), 0);
  T_EQ(weft_stream_read_to_eof(a, got, sizeof got), 0);
  weft_stream_free(a);
  weft_stream_free(b);
  return 0;
}
static void test_read_to_eof(void) { RUN(m_read_to_eof); }

typedef struct slow_writer {
  weft_stream *s;
  const char *const *parts;
} slow_writer;

static int slow_write(void *p) {
  slow_writer *w = p;
  for (const char *const *x = w->parts; *x; x++) {
    T_OK(weft_sleep(0.01));
    T_OK(weft_stream_write(w->s, *x, strlen(*x)));
  }
  return 0;
}

/* A delimiter split across two arrivals is still found. */
static int m_split_delim(void *arg) {
  (void)arg;
  weft_stream *a = NULL, *b = NULL;
  unix_pair(&a, &b);
  static const char *const parts[] = {"ab\r", "\ncd", "\r", "\n", NULL};
  slow_writer w = {b, parts};
  weft_task *t;
  T_OK(weft_spawn(&t, slow_write, &w));
  char buf[16];
  T_EQ(weft_stream_read_until(a, "\r\n", 2, buf, sizeof buf), 4);
  T_EQ(memcmp(buf, "ab\r\n", 4), 0);
  T_EQ(weft_stream_read_until(a, "\r\n", 2, buf, sizeof buf), 4);
  T_EQ(memcmp(buf, "cd\r\n", 4), 0);
  T_OK(weft_join(t, NULL));
  weft_stream_free(a);
  weft_stream_free(b);
  return 0;
}
static void test_split_delim(void) { RUN(m_split_delim); }

/* ---- peers that go away ---- */

static int m_reset_mid_read(void *arg) {
  (void)arg;
  weft_stream *c = NULL, *s = NULL;
  tcp_pair("127.0.0.1", &c, &s, NULL);
  T_OK(weft_stream_write(s, "abc", 3));
  T_OK(weft_stream_flush(s));
  weft_stream_abort(s); /* SO_LINGER 0: a TCP RST */
  T_OK(weft_sleep(0.05));
  char buf[16];
  /* The bytes that arrived stay readable; the reset comes after them. */
  T_RC(weft_stream_read_exactly(c, buf, 10), WEFT_ECONNRESET);
  T_EQ(weft_stream_buffered(c), 3);
  T_EQ(weft_stream_read(c, buf, sizeof buf), 3);
  T_EQ(memcmp(buf, "abc", 3), 0);
  T_RC((int)weft_stream_read(c, buf, sizeof buf), WEFT_ECONNRESET);
  T_RC((int)weft_stream_read(c, buf, sizeof buf), WEFT_ECONNRESET);
  int rc = weft_stream_write(c, "x", 1);
  T_TRUE(rc == WEFT_EPIPE || rc == WEFT_ECONNRESET);
  weft_stream_free(c);
  return 0;
}
static void test_reset_mid_read(void) { RUN(m_reset_mid_read); }

/* The reset arrives while the reader waits. */
static int reset_later(void *p) {
  T_OK(weft_sleep(0.05));
  weft_stream_abort(p);
  return 0;
}

static int m_reset_while_waiting(void *arg) {
  (void)arg;
  weft_stream *c = NULL, *s = NULL;
  tcp_pair("127.0.0.1", &c, &s, NULL);
  T_OK(weft_stream_write(s, "ab", 2));
  weft_task *t;
  T_OK(weft_spawn(&t, reset_later, s));
  char buf[16];
  weft_timeout scope;
  weft_timeout_enter(&scope, 5);
  T_RC(weft_stream_read_exactly(c, buf, 4), WEFT_ECONNRESET);
  T_OK(weft_timeout_exit(&scope));
  T_EQ(weft_stream_buffered(c), 2);
  T_OK(weft_join(t, NULL));
  weft_stream_free(c);
  return 0;
}
static void test_reset_while_waiting(void) { RUN(m_reset_while_waiting); }

static int m_close_mid_read(void *arg) {
  (void)arg;
  weft_stream *c = NULL, *s = NULL;
  tcp_pair("127.0.0.1", &c, &s, NULL);
  T_OK(weft_stream_write(s, "abc", 3));
  T_OK(weft_stream_close(s));
  char buf[16];
  T_RC(weft_stream_read_exactly(c, buf, 10), WEFT_EOF);
  T_EQ(weft_stream_buffered(c), 3);
  T_EQ(weft_stream_read(c, buf, sizeof buf), 3);
  T_RC((int)weft_stream_read(c, buf, sizeof buf), WEFT_EOF);
  weft_stream_free(c);
  return 0;
}
static void test_close_mid_read(void) { RUN(m_close_mid_read); }

/* Half-close: our FIN, their answer still arrives; writing after it fails. */
static int m_shutdown(void *arg) {
  (void)arg;
  weft_stream *c = NULL, *s = NULL;
  tcp_pair("127.0.0.1", &c, &s, NULL);
  char buf[16];
  T_OK(weft_stream_write(c, "ping", 4));
  T_OK(weft_stream_shutdown(c));
  T_OK(weft_stream_shutdown(c)); /* twice: nothing more */
  T_RC(weft_stream_write(c, "x", 1), WEFT_EPIPE);
  T_EQ(weft_stream_read_to_eof(s, buf, sizeof buf), 4);
  T_OK(weft_stream_write(s, "pong", 4));
  T_OK(weft_stream_close(s));
  T_EQ(weft_stream_read_to_eof(c, buf, sizeof buf), 4);
  T_EQ(memcmp(buf, "pong", 4), 0);
  weft_stream_info info;
  weft_stream_info_get(c, &info);
  T_TRUE(info.shut);
  T_OK(weft_stream_close(c));
  return 0;
}
static void test_shutdown(void) { RUN(m_shutdown); }

/* ---- backpressure ---- */

#define BP_TOTAL (4u << 20)
#define BP_CHUNK 8192u

typedef struct bp {
  weft_stream *w, *r;
  size_t high;
  size_t got;
  bool bad;
  int blocked; /* writes that had to wait */
} bp;

static unsigned char pattern(size_t i) { return (unsigned char)(i * 31 + 7); }

static int bp_writer(void *p) {
  bp *b = p;
  static unsigned char chunk[BP_CHUNK];
  for (size_t off = 0; off < BP_TOTAL; off += BP_CHUNK) {
    for (size_t i = 0; i < BP_CHUNK; i++)
      chunk[i] = pattern(off + i);
    double t0 = weft_now();
    T_OK(weft_stream_write(b->w, chunk, BP_CHUNK));
    if (weft_now() - t0 > 0.0005)
      b->blocked++;
    /* Memory stays bounded: never more than the high-water mark queued. */
    T_LE(weft_stream_write_buffered(b->w), b->high);
  }
  T_OK(weft_stream_shutdown(b->w));
  return 0;
}

static int bp_reader(void *p) {
  bp *b = p;
  static unsigned char buf[65536];
  for (;;) {
    ssize_t n = weft_stream_read(b->r, buf, sizeof buf);
    if (n == WEFT_EOF)
      break;
    T_GT(n, 0);
    if (n <= 0)
      return (int)n;
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != pattern(b->got + (size_t)i))
        b->bad = true;
    b->got += (size_t)n;
    T_OK(weft_sleep(0.001)); /* a slow consumer */
  }
  return 0;
}

static int backpressure(bool tcp) {
  weft_stream_opts o = {
      .size = sizeof o, .write_high = 32768, .write_low = 8192};
  bp b = {.high = 32768};
  if (tcp) {
    /* Loopback's MSS is 64 KiB: smaller socket buffers than that make TCP
     * wait on its own timers (silly window avoidance), not on us. */
    tcp_pair("127.0.0.1", &b.w, &b.r, &o);
    sizes(b.w, 131072, 0);
    sizes(b.r, 0, 131072);
  } else {
    int sv[2];
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    T_OK(weft_stream_from_fd(&b.w, sv[0], &o));
    T_OK(weft_stream_from_fd(&b.r, sv[1], NULL));
    sizes(b.w, 16384, 0);
  }
  weft_task *tw, *tr;
  T_OK(weft_spawn(&tw, bp_writer, &b));
  T_OK(weft_spawn(&tr, bp_reader, &b));
  T_OK(weft_join(tw, NULL));
  T_OK(weft_join(tr, NULL));
  T_EQ(b.got, BP_TOTAL);
  T_FALSE(b.bad);
  T_GT(b.blocked, 0); /* the writer did wait for the reader */
  weft_stream_info info;
  weft_stream_info_get(b.w, &info);
  T_LE(info.write_peak, 32768);
  T_GT(info.write_peak, 8192);
  T_EQ(info.bytes_written, BP_TOTAL);
  weft_stream_free(b.w);
  weft_stream_free(b.r);
  return 0;
}

static int m_backpressure(void *arg) {
  (void)arg;
  return backpressure(false);
}
static void test_backpressure(void) { RUN(m_backpressure); }

static int m_backpressure_tcp(void *arg) {
  (void)arg;
  return backpressure(true);
}
static void test_backpressure_tcp(void) { RUN(m_backpressure_tcp); }

/* drain waits for the low-water mark, flush for an empty queue. */
static int drain_reader(void *p) {
  weft_stream *r = p;
  static char buf[4096];
  T_OK(weft_sleep(0.05));
  for (;;) {
    ssize_t n = weft_stream_read(r, buf, sizeof buf);
    if (n <= 0)
      break;
    T_OK(weft_sleep(0.001));
  }
  return 0;
}

static int m_drain(void *arg) {
  (void)arg;
  weft_stream_opts o = {
      .size = sizeof o, .write_high = 1 << 20, .write_low = 4096};
  weft_stream *w = NULL, *r = NULL;
  int sv[2];
  T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  T_OK(weft_stream_from_fd(&w, sv[0], &o));
  T_OK(weft_stream_from_fd(&r, sv[1], NULL));
  sizes(w, 4096, 0);
  static char data[256 * 1024];
  T_OK(weft_stream_write(w, data, sizeof data)); /* fits under high: no wait */
  T_GT(weft_stream_write_buffered(w), 4096);
  weft_task *t;
  T_OK(weft_spawn(&t, drain_reader, r));
  T_OK(weft_stream_drain(w));
  T_LE(weft_stream_write_buffered(w), 4096);
  T_OK(weft_stream_flush(w));
  T_EQ(weft_stream_write_buffered(w), 0);
  T_OK(weft_stream_shutdown(w));
  T_OK(weft_join(t, NULL));
  weft_stream_free(w);
  weft_stream_free(r);
  return 0;
}
static void test_drain(void) { RUN(m_drain); }

/* ---- cancellation and deadlines ---- */

typedef struct op {
  weft_stream *s;
  const void *data;
  size_t len;
  int rc;
  ssize_t n;
  char buf[64];
} op;

static int do_read(void *p) {
  op *o = p;
  o->n = weft_stream_read(o->s, o->buf, sizeof o->buf);
  return 0;
}

static int m_cancel_read(void *arg) {
  (void)arg;
  weft_stream *a = NULL, *b = NULL;
  tcp_pair("127.0.0.1", &a, &b, NULL);
  op o = {.s = a};
  weft_task *t;
  T_OK(weft_spawn(&t, do_read, &o));
  T_OK(weft_sleep(0.02));
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_RC((int)o.n, WEFT_ECANCELED);
  /* Nothing was consumed; the next read gets everything. */
  T_OK(weft_stream_write(b, "xyz", 3));
  char buf[8];
  T_EQ(weft_stream_read(a, buf, sizeof buf), 3);
  /* A deadline: WEFT_ETIMEDOUT, and the partial bytes stay buffered. */
  T_OK(weft_stream_write(b, "ab", 2));
  weft_timeout scope;
  weft_timeout_enter(&scope, 0.05);
  T_RC(weft_stream_read_exactly(a, buf, 4), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&scope), WEFT_ETIMEDOUT);
  T_EQ(weft_stream_buffered(a), 2);
  weft_timeout_enter(&scope, 0.05);
  T_RC((int)weft_stream_readline(a, buf, sizeof buf), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&scope), WEFT_ETIMEDOUT);
  T_OK(weft_stream_write(b, "cd", 2));
  T_OK(weft_stream_read_exactly(a, buf, 4));
  T_EQ(memcmp(buf, "abcd", 4), 0);
  weft_stream_free(a);
  weft_stream_free(b);
  return 0;
}
static void test_cancel_read(void) { RUN(m_cancel_read); }

static int do_write(void *p) {
  op *o = p;
  o->rc = weft_stream_write(o->s, o->data, o->len);
  return 0;
}

static int shutdown_in_task(void *p) { return weft_stream_shutdown(p); }

/* A cancelled write queued an exact prefix, which is then delivered: the
 * reader gets precisely what bytes_written counts. */
static int m_cancel_write(void *arg) {
  (void)arg;
  weft_stream_opts so = {.size = sizeof so, .write_high = 65536};
  weft_stream *w = NULL, *r = NULL;
  tcp_pair("127.0.0.1", &w, &r, &so);
  sizes(w, 131072, 0);
  sizes(r, 0, 131072);
  static char big[4 << 20];
  op o = {.s = w, .data = big, .len = sizeof big};
  weft_task *t;
  T_OK(weft_spawn(&t, do_write, &o));
  T_OK(weft_sleep(0.05));
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_RC(o.rc, WEFT_ECANCELED);
  weft_stream_info info;
  weft_stream_info_get(w, &info);
  T_GT(info.bytes_written, 0);
  T_LT(info.bytes_written, sizeof big);
  uint64_t accepted = info.bytes_written;

  /* The queue is at the high-water mark: a small write waits before it
   * queues anything, so cancelling it leaves nothing behind. */
  T_GE(weft_stream_write_buffered(w), 65536);
  op small = {.s = w, .data = "0123456789", .len = 10};
  T_OK(weft_spawn(&t, do_write, &small));
  settle();
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_RC(small.rc, WEFT_ECANCELED);
  weft_stream_info_get(w, &info);
  T_EQ(info.bytes_written, accepted);

  /* The queue goes out, then the FIN, while we read. */
  T_OK(weft_spawn(&t, shutdown_in_task, w));
  size_t got = 0;
  for (;;) {
    ssize_t n = weft_stream_read(r, big, sizeof big);
    if (n == WEFT_EOF)
      break;
    T_GT(n, 0);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  T_EQ(got, accepted);
  int rc = -1;
  T_OK(weft_join(t, &rc));
  T_EQ(rc, 0);
  weft_stream_free(w);
  weft_stream_free(r);
  return 0;
}
static void test_cancel_write(void) { RUN(m_cancel_write); }

static int m_write_deadline(void *arg) {
  (void)arg;
  weft_stream *w = NULL, *r = NULL;
  tcp_pair("127.0.0.1", &w, &r, NULL);
  sizes(w, 131072, 0);
  sizes(r, 0, 131072);
  static char big[1 << 20];
  weft_timeout scope;
  weft_timeout_enter(&scope, 0.05);
  T_RC(weft_stream_write(w, big, sizeof big), WEFT_ETIMEDOUT);
  T_RC(weft_stream_drain(w), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&scope), WEFT_ETIMEDOUT);
  weft_stream_free(w);
  weft_stream_free(r);
  return 0;
}
static void test_write_deadline(void) { RUN(m_write_deadline); }

static int m_connect_deadline(void *arg) {
  (void)arg;
  blackhole b;
  blackhole_open(&b, "127.0.0.1");
  int fds = t_count_fds();
  weft_stream *c = NULL;
  weft_timeout scope;
  double t0 = weft_now();
  weft_timeout_enter(&scope, 0.2);
  T_RC(weft_stream_connect_addr(&c, &b.addr, NULL), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&scope), WEFT_ETIMEDOUT);
  T_GE(weft_now() - t0, 0.19);
  T_LT(weft_now() - t0, 1.0);
  T_TRUE(c == NULL);
  T_EQ(t_count_fds(), fds); /* the attempt's socket is closed */
  blackhole_close(&b);
  return 0;
}
static void test_connect_deadline(void) { RUN(m_connect_deadline); }

typedef struct conn_op {
  const weft_addr *addrs;
  size_t n;
  weft_stream *s;
  int rc;
} conn_op;

static int do_connect(void *p) {
  conn_op *o = p;
  o->rc = weft_stream_connect_addrs(&o->s, o->addrs, o->n, NULL);
  return 0;
}

static int m_connect_cancel(void *arg) {
  (void)arg;
  blackhole b;
  blackhole_open(&b, "127.0.0.1");
  int fds = t_count_fds();
  conn_op o = {.addrs = &b.addr, .n = 1};
  weft_task *t;
  T_OK(weft_spawn(&t, do_connect, &o));
  T_OK(weft_sleep(0.05));
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_RC(o.rc, WEFT_ECANCELED);
  T_EQ(t_count_fds(), fds);
  blackhole_close(&b);
  return 0;
}
static void test_connect_cancel(void) { RUN(m_connect_cancel); }

/* ---- Happy Eyeballs ---- */

static int m_happy_eyeballs(void *arg) {
  (void)arg;
  blackhole b6;
  blackhole_open(&b6, "::1");
  weft_addr good;
  int lfd = t_listen("127.0.0.1", 16, &good);
  int fds = t_count_fds();
  /* IPv6 first, as a resolver orders them: it never answers, so IPv4
   * starts 250 ms later and wins. */
  weft_addr list[2] = {b6.addr, good};
  weft_stream *c = NULL, *s = NULL;
  double t0 = weft_now();
  T_OK(weft_stream_connect_addrs(&c, list, 2, NULL));
  double took = weft_now() - t0;
  T_GE(took, 0.24);
  T_LT(took, 1.0);
  weft_addr p;
  T_OK(weft_stream_peer_addr(c, &p));
  T_TRUE(weft_addr_equal(&p, &good));
  T_EQ(t_count_fds(), fds + 1); /* only the winner is open */
  T_OK(t_accept(lfd, &s, NULL));
  echo_once(c, s);
  weft_stream_free(c);
  weft_stream_free(s);
  close(lfd);
  blackhole_close(&b6);
  return 0;
}
static void test_happy_eyeballs(void) { RUN(m_happy_eyeballs); }

/* Families alternate (v6, v4, v6) whatever the input order, a failure
 * starts the next attempt at once, and the stagger is configurable. */
static int m_happy_eyeballs_order(void *arg) {
  (void)arg;
  blackhole b6, b4;
  blackhole_open(&b6, "::1");
  blackhole_open(&b4, "127.0.0.1");
  weft_addr good6, refused6;
  int lfd = t_listen("::1", 16, &good6);
  int rfd = t_listen("::1", 1, &refused6);
  close(rfd);
  weft_stream_opts o = {.size = sizeof o, .attempt_delay = 0.1};
  weft_stream *c = NULL, *s = NULL;
  /* Tried as b6, b4, good6: two staggers, then good6 wins. */
  weft_addr list[3] = {b6.addr, good6, b4.addr};
  double t0 = weft_now();
  T_OK(weft_stream_connect_addrs(&c, list, 3, &o));
  double took = weft_now() - t0;
  T_GE(took, 0.19);
  T_LT(took, 0.6);
  weft_addr p;
  T_OK(weft_stream_peer_addr(c, &p));
  T_TRUE(weft_addr_equal(&p, &good6));
  T_OK(t_accept(lfd, &s, NULL));
  weft_stream_free(c);
  weft_stream_free(s);
  /* Refused at once: the next address does not wait for the stagger. */
  weft_addr list2[2] = {refused6, good6};
  t0 = weft_now();
  T_OK(weft_stream_connect_addrs(&c, list2, 2, NULL));
  T_LT(weft_now() - t0, 0.2);
  T_OK(t_accept(lfd, &s, NULL));
  weft_stream_free(c);
  weft_stream_free(s);
  /* All fail: the first address's error. */
  weft_addr list3[2] = {refused6, refused6};
  T_RC(weft_stream_connect_addrs(&c, list3, 2, NULL), WEFT_ECONNREFUSED);
  T_RC(weft_stream_connect_addrs(&c, list3, 0, NULL), WEFT_EINVAL);
  close(lfd);
  blackhole_close(&b6);
  blackhole_close(&b4);
  return 0;
}
static void test_happy_eyeballs_order(void) { RUN(m_happy_eyeballs_order); }

/* ---- lifetime ---- */

static int m_free_wakes(void *arg) {
  (void)arg;
  weft_stream *a = NULL, *b = NULL;
  unix_pair(&a, &b);
  op o = {.s = a};
  weft_task *t;
  T_OK(weft_spawn(&t, do_read, &o));
  settle();
  char buf[4];
  T_RC((int)weft_stream_read(a, buf, sizeof buf), WEFT_EBUSY);
  weft_stream_free(a); /* under the waiting reader */
  T_OK(weft_join(t, NULL));
  T_RC((int)o.n, WEFT_ECANCELED);
  /* The peer sees the end. */
  T_RC((int)weft_stream_read(b, buf, sizeof buf), WEFT_EOF);
  weft_stream_free(b);
  return 0;
}
static void test_free_wakes(void) { RUN(m_free_wakes); }

static int close_in_task(void *p) { return weft_stream_close(p); }

/* close waits for the queue to go out, then frees; a closer that is
 * cancelled resets the connection instead. */
static int m_close(void *arg) {
  (void)arg;
  weft_stream *w = NULL, *r = NULL;
  weft_stream_opts big = {.size = sizeof big, .write_high = 4 << 20};
  tcp_pair("127.0.0.1", &w, &r, &big);
  sizes(w, 131072, 0);
  sizes(r, 0, 131072);
  static char data[2000000];
  memset(data, 'x', sizeof data);
  T_OK(weft_stream_write(w, data, 2000000)); /* under the high mark */
  T_GT(weft_stream_write_buffered(w), 0);
  weft_task *t;
  T_OK(weft_spawn(&t, close_in_task, w));
  static char got[2000001];
  T_EQ(weft_stream_read_to_eof(r, got, sizeof got), 2000000);
  int rc = -1;
  T_OK(weft_join(t, &rc));
  T_EQ(rc, 0);
  weft_stream_free(r);

  /* A peer that does not read: the close timeout resets the connection. */
  weft_stream_opts o = {
      .size = sizeof o, .write_high = 4 << 20, .close_timeout = 0.1};
  tcp_pair("127.0.0.1", &w, &r, &o);
  sizes(w, 131072, 0);
  sizes(r, 0, 131072);
  T_OK(weft_stream_write(w, data, 2000000));
  double t0 = weft_now();
  T_RC(weft_stream_close(w), WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 1.0);
  ssize_t n;
  while ((n = weft_stream_read(r, got, sizeof got)) > 0) {
  }
  T_RC((int)n, WEFT_ECONNRESET);
  weft_stream_free(r);

  /* A cancelled closer: the stream is freed all the same. */
  tcp_pair("127.0.0.1", &w, &r, &big);
  sizes(w, 131072, 0);
  sizes(r, 0, 131072);
  T_OK(weft_stream_write(w, data, 2000000));
  T_OK(weft_spawn(&t, close_in_task, w));
  weft_cancel(t);
  T_OK(weft_join(t, &rc));
  T_RC(rc, WEFT_ECANCELED);
  weft_stream_free(r);
  return 0;
}
static void test_close(void) { RUN(m_close); }

static int m_from_fd(void *arg) {
  (void)arg;
  weft_stream *s = NULL;
  int p[2];
  T_EQ(pipe(p), 0);
  T_RC(weft_stream_from_fd(&s, p[0], NULL), WEFT_EBADF);
  close(p[0]);
  close(p[1]);
  T_RC(weft_stream_from_fd(&s, -1, NULL), WEFT_EBADF);
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  T_RC(weft_stream_from_fd(&s, u, NULL), WEFT_EINVAL);
  close(u);
  T_TRUE(s == NULL);
  return 0;
}
static void test_from_fd(void) { RUN(m_from_fd); }

static int m_options(void *arg) {
  (void)arg;
  weft_stream_opts o = {.size = sizeof o, .nodelay = -1, .keepalive = 30};
  weft_stream *c = NULL, *s = NULL;
  tcp_pair("127.0.0.1", &c, &s, &o);
  int v = 1;
  socklen_t len = sizeof v;
  T_EQ(getsockopt(weft_stream_fd(c), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
  T_EQ(v, 0);
  T_EQ(getsockopt(weft_stream_fd(c), SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
  T_EQ(v, 1);
  T_EQ(getsockopt(weft_stream_fd(c), IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
  T_EQ(v, 30);
  T_OK(weft_stream_set_nodelay(c, true));
  T_EQ(getsockopt(weft_stream_fd(c), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
  T_EQ(v, 1);
  T_RC(weft_stream_set_keepalive(c, true, 0.5), WEFT_EINVAL);
  T_OK(weft_stream_set_keepalive(c, false, 0));
  T_EQ(getsockopt(weft_stream_fd(c), SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
  T_EQ(v, 0);
  weft_stream_free(c);
  weft_stream_free(s);
  return 0;
}
static void test_options(void) { RUN(m_options); }

/* Many small writes and reads through one pair: the ping-pong path. */
static int m_pingpong(void *arg) {
  (void)arg;
  weft_stream *c = NULL, *s = NULL;
  tcp_pair("127.0.0.1", &c, &s, NULL);
  char buf[32];
  for (int i = 0; i < 2000; i++) {
    int n = snprintf(buf, sizeof buf, "msg %d\n", i);
    T_OK(weft_stream_write(c, buf, (size_t)n));
    char line[32];
    T_EQ(weft_stream_readline(s, line, sizeof line), n);
    T_OK(weft_stream_write(s, line, (size_t)n));
    T_EQ(weft_stream_read_exactly(c, line, (size_t)n), 0);
    T_EQ(memcmp(line, buf, (size_t)n), 0);
  }
  weft_stream_free(c);
  weft_stream_free(s);
  return 0;
}
static void test_pingpong(void) { RUN(m_pingpong); }

/* ---- a busy loop still serves libevent ---- */

static void set_flag(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  *(bool *)arg = true;
}
static void set_flag_call(void *arg) { *(bool *)arg = true; }

/* Streams that keep the loop's own epoll set busy must not starve what
 * waits in libevent's: an fd event, a timer, a thread-safe call. */
static int m_busy_loop_libevent(void *arg) {
  (void)arg;
  busy b;
  busy_start(&b);

  struct event_base *base = weft_loop_base(weft_loop_current());
  bool piped = false, timed = false, called = false;
  int pfd[2];
  T_EQ(pipe(pfd), 0);
  struct event *pev = event_new(base, pfd[0], EV_READ, set_flag, &piped);
  struct event *tev = evtimer_new(base, set_flag, &timed);
  struct timeval five_ms = {0, 5000};
  T_TRUE(pev != NULL && tev != NULL);
  T_EQ(event_add(pev, NULL), 0);
  T_EQ(event_add(tev, &five_ms), 0);
  T_EQ(write(pfd[1], "x", 1), 1);
  T_OK(weft_loop_call_threadsafe(weft_loop_current(), set_flag_call, &called));
  double t0 = weft_now();
  while (!(piped && timed && called) && weft_now() - t0 < 5)
    T_OK(weft_sleep(0.001));
  T_TRUE(piped);
  T_TRUE(timed);
  T_TRUE(called);
  T_LE(weft_now() - t0, 1.0);

  busy_stop(&b);
  event_free(pev);
  event_free(tev);
  close(pfd[0]);
  close(pfd[1]);
  return 0;
}
static void test_busy_loop_libevent(void) { RUN(m_busy_loop_libevent); }

/* The listener sits in the loop's own set with the streams: a loop they keep
 * busy accepts a new peer within a turn or two, not when libevent's turn
 * comes (up to a millisecond of turns later). Ten peers in a row, each
 * connected at a random point of that millisecond. */
static int note_turn(weft_stream *s, void *arg) {
  (void)s;
  *(uint64_t *)arg = loop_turn();
  return 0;
}

static int m_busy_loop_accepts(void *arg) {
  (void)arg;
  busy b;
  busy_start(&b);

  uint64_t served = 0;
  weft_server *srv;
  weft_addr a;
  T_OK(weft_addr_ip(&a, "127.0.0.1", 0));
  T_OK(weft_serve(&srv, &a, note_turn, &served, NULL));
  T_OK(weft_server_addr(srv, &a));
  uint64_t worst = 0;
  for (int k = 0; k < 10; k++) {
    T_OK(weft_sleep(0.0003 * k)); /* somewhere in libevent's millisecond */
    weft_stats before;
    weft_loop_stats(weft_loop_current(), &before);
    served = 0;
    /* A blocking connect: on loopback the handshake is done when it
     * returns, and the peer waits in the backlog. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T_TRUE(fd >= 0);
    T_EQ(connect(fd, (const struct sockaddr *)&a.u.sa, a.len), 0);
    double t0 = weft_now();
    while (served == 0 && weft_now() - t0 < 5)
      T_OK(weft_yield());
    T_TRUE(served != 0);
    if (served - before.loop_iterations > worst)
      worst = served - before.loop_iterations;
    close(fd);
  }
  T_LE(worst, 3);

  weft_server_free(srv);
  busy_stop(&b);
  return 0;
}
static void test_busy_loop_accepts(void) { RUN(m_busy_loop_accepts); }

/* A connect under way waits in the loop's own set too: under a busy loop
 * it returns within a few turns of the handshake (which loopback does at
 * once), not when libevent's turn comes. Ten connects in a row, each
 * started at a different point of libevent's millisecond. */
static int m_busy_loop_connects(void *arg) {
  (void)arg;
  busy b;
  busy_start(&b);
  weft_addr a;
  int lfd = t_listen("127.0.0.1", 16, &a);
  uint64_t worst = 0;
  for (int k = 0; k < 10; k++) {
    T_OK(weft_sleep(0.0003 * k));
    uint64_t t0 = loop_turn();
    weft_stream *c = NULL;
    T_OK(weft_stream_connect_addr(&c, &a, NULL));
    uint64_t d = loop_turn() - t0;
    worst = d > worst ? d : worst;
    weft_stream_free(c);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    T_GE(fd, 0);
    close(fd);
  }
  T_LE(worst, 3);
  close(lfd);
  busy_stop(&b);
  return 0;
}
static void test_busy_loop_connects(void) { RUN(m_busy_loop_connects); }

/* ---- failing allocations ---- */

static long live, countdown, failures;

static void *f_malloc(size_t n) {
  if (countdown == 0) {
    failures++;
    return NULL;
  }
  if (countdown > 0)
    countdown--;
  void *p = malloc(n);
  if (p)
    live++;
  return p;
}
static void *f_realloc(void *p, size_t n) {
  if (p == NULL)
    return f_malloc(n);
  if (countdown == 0) {
    failures++;
    return NULL;
  }
  if (countdown > 0)
    countdown--;
  return realloc(p, n);
}
static void f_free(void *p) {
  if (p) {
    live--;
    free(p);
  }
}

typedef struct fa {
  weft_stream *s;
  int rc;
} fa;

static int fa_reader(void *p) {
  fa *f = p;
  static char buf[100000];
  char line[64];
  f->rc = (int)weft_stream_readline(f->s, line, sizeof line);
  if (f->rc >= 0)
    f->rc = weft_stream_read_exactly(f->s, buf, sizeof buf);
  const void *v;
  size_t len;
  if (f->rc == 0)
    f->rc = weft_stream_peek(f->s, 0, &v, &len);
  return 0;
}

/* Connect, accept, a line and 100 KB through a 16 KiB queue, close. */
static int fa_scenario(void *arg) {
  (void)arg;
  weft_addr a;
  int lfd = t_listen("127.0.0.1", 4, &a);
  weft_stream_opts o = {.size = sizeof o, .write_high = 16384};
  weft_stream *c = NULL;
  fa r = {0};
  weft_task *t = NULL;
  int rc = weft_stream_connect_addr(&c, &a, &o);
  if (rc == 0)
    rc = t_accept(lfd, &r.s, NULL);
  if (rc == 0)
    rc = weft_spawn(&t, fa_reader, &r);
  static char data[100000];
  if (rc == 0)
    rc = weft_stream_write(c, "line\n", 5);
  if (rc == 0)
    rc = weft_stream_write(c, data, sizeof data);
  if (rc == 0)
    rc = weft_stream_flush(c);
  int crc = weft_stream_close(c); /* may fail too: ENOMEM or not at all */
  if (rc == 0)
    rc = crc;
  if (t != NULL)
    T_OK(weft_join(t, NULL));
  weft_stream_free(r.s);
  close(lfd);
  /* The reader sees the end when the writer gave up: ENOMEM rules. */
  if (rc == 0 && r.rc != 0)
    rc = r.rc;
  return rc;
}

/* t_run, except that a loop that cannot be made for lack of memory is a
 * clean WEFT_ENOMEM too. */
static int fa_run(void) {
  weft_loop *loop = NULL;
  int rc = weft_loop_new(&loop, NULL);
  if (rc != 0)
    return rc;
  int result = 0;
  rc = weft_loop_run(loop, fa_scenario, NULL, &result);
  weft_stats st;
  weft_loop_stats(loop, &st);
  if (st.tasks_alive != 0 || st.objects_alive != 0)
    t__fail(__FILE__, __LINE__, "loop left %llu tasks and %llu objects",
            (unsigned long long)st.tasks_alive,
            (unsigned long long)st.objects_alive);
  T_OK(weft_loop_free(loop));
  return rc != 0 ? rc : result;
}

static void test_failing_allocations(void) {
  weft_allocator al = {f_malloc, f_realloc, f_free};
  T_OK(weft_set_allocator(&al));
  countdown = -1;
  live = 0;
  T_EQ(fa_run(), 0);
  T_EQ(live, 0);
  long enomem = 0;
  for (long k = 0; k < 2000; k++) {
    countdown = k;
    failures = 0;
    live = 0;
    int rc = fa_run();
    if (failures == 0) {
      T_EQ(rc, 0);
      break; /* past the last allocation of a run */
    }
    if (rc != 0 && rc != WEFT_ENOMEM)
      t__fail(__FILE__, __LINE__, "allocation %ld failed: run returned %s", k,
              weft_err_name(rc));
    enomem += rc == WEFT_ENOMEM;
    if (live != 0)
      t__fail(__FILE__, __LINE__, "allocation %ld failed: %ld blocks leaked", k,
              live);
  }
  T_GT(enomem, 5);
  T_OK(weft_set_allocator(NULL));
}

static const t_case cases[] = {
    {"tcp4", test_tcp4},
    {"tcp6_by_text", test_tcp6_by_text},
    {"by_name", test_by_name},
    {"unix", test_unix},
    {"refused", test_refused},
    {"read_calls", test_read_calls},
    {"read_to_eof", test_read_to_eof},
    {"split_delim", test_split_delim},
    {"reset_mid_read", test_reset_mid_read},
    {"reset_while_waiting", test_reset_while_waiting},
    {"close_mid_read", test_close_mid_read},
    {"shutdown", test_shutdown},
    {"backpressure", test_backpressure},
    {"backpressure_tcp", test_backpressure_tcp},
    {"drain", test_drain},
    {"cancel_read", test_cancel_read},
    {"cancel_write", test_cancel_write},
    {"write_deadline", test_write_deadline},
    {"connect_deadline", test_connect_deadline},
    {"connect_cancel", test_connect_cancel},
    {"happy_eyeballs", test_happy_eyeballs},
    {"happy_eyeballs_order", test_happy_eyeballs_order},
    {"free_wakes", test_free_wakes},
    {"close", test_close},
    {"from_fd", test_from_fd},
    {"options", test_options},
    {"pingpong", test_pingpong},
    {"busy_loop_libevent", test_busy_loop_libevent},
    {"busy_loop_accepts", test_busy_loop_accepts},
    {"busy_loop_connects", test_busy_loop_connects},
    {"failing_allocations", test_failing_allocations},
    {NULL, NULL},
};

T_MAIN("net-stream", cases)
