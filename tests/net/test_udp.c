/* net-udp: datagrams with their peer's address on IPv4 and IPv6, connected
 * endpoints, datagrams larger than the buffer (reported, never cut
 * silently), waiting receivers in order, cancellation that loses nothing,
 * a free that wakes its waiters, and datagrams seen at once by a busy
 * loop. */
#include "test_stream_util.h" /* first (_GNU_SOURCE); busy_start */

#include <unistd.h>
#include <weft/udp.h>

static bool have_ipv6(void) {
  weft_addr a;
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd < 0)
    return false;
  (void)weft_addr_ip(&a, "::1", 0);
  bool ok = bind(fd, &a.u.sa, a.len) == 0;
  close(fd);
  return ok;
}

/* Binds an endpoint on `ip` port 0 and returns it with its address. */
static weft_udp *bound(const char *ip, weft_addr *addr) {
  weft_addr a;
  weft_udp *u = NULL;
  T_OK(weft_addr_ip(&a, ip, 0));
  T_OK(weft_udp_new(&u, &a, NULL, NULL));
  if (u != NULL && addr != NULL) {
    T_OK(weft_udp_local_addr(u, addr));
    T_GT(weft_addr_port(addr), 0);
  }
  return u;
}

static int ping_pong(const char *ip) {
  weft_addr sa, ca, from;
  weft_udp *srv = bound(ip, &sa);
  weft_udp *cli = bound(ip, &ca);
  char buf[64];
  T_OK(weft_udp_send_to(cli, "ping", 4, &sa));
  T_EQ(weft_udp_recv_from(srv, buf, sizeof buf, &from), 4);
  T_EQ(memcmp(buf, "ping", 4), 0);
  T_TRUE(weft_addr_equal(&from, &ca)); /* the peer, port and all */
  T_OK(weft_udp_send_to(srv, "pong!", 5, &from));
  T_EQ(weft_udp_recv_from(cli, buf, sizeof buf, &from), 5);
  T_EQ(memcmp(buf, "pong!", 5), 0);
  T_TRUE(weft_addr_equal(&from, &sa));
  T_RC(weft_udp_peer_addr(cli, &from), WEFT_ENOTCONN);
  weft_udp_free(srv);
  weft_udp_free(cli);
  return 0;
}

static int m_ipv4(void *arg) {
  (void)arg;
  return ping_pong("127.0.0.1");
}
static void test_ipv4(void) { RUN(m_ipv4); }

static int m_ipv6(void *arg) {
  (void)arg;
  return ping_pong("::1");
}
static void test_ipv6(void) {
  if (!have_ipv6()) {
    fprintf(stderr, "  (no IPv6 loopback here: skipped)\n");
    return;
  }
  RUN(m_ipv6);
}

/* A connected endpoint sends without an address and hears only its peer. */
static int m_connected(void *arg) {
  (void)arg;
  weft_addr sa, ca, other_a, peer;
  weft_udp *srv = bound("127.0.0.1", &sa);
  weft_udp *other = bound("127.0.0.1", &other_a);
  weft_udp *cli = NULL;
  T_OK(weft_udp_new(&cli, NULL, &sa, NULL));
  T_OK(weft_udp_peer_addr(cli, &peer));
  T_TRUE(weft_addr_equal(&peer, &sa));
  T_OK(weft_udp_local_addr(cli, &ca));
  char buf[16];
  T_OK(weft_udp_send(cli, "hi", 2));
  weft_addr from;
  T_EQ(weft_udp_recv_from(srv, buf, sizeof buf, &from), 2);
  T_TRUE(weft_addr_equal(&from, &ca));
  /* A stranger's datagram is filtered by the kernel; the peer's arrives. */
  T_OK(weft_udp_send_to(other, "no", 2, &ca));
  T_OK(weft_udp_send_to(srv, "yes", 3, &ca));
  T_EQ(weft_udp_recv(cli, buf, sizeof buf), 3);
  T_EQ(memcmp(buf, "yes", 3), 0);
  weft_udp_free(srv);
  weft_udp_free(other);
  weft_udp_free(cli);
  return 0;
}
static void test_connected(void) { RUN(m_connected); }

/* Nobody listens at the connected peer: its ICMP comes back as
 * WEFT_ECONNREFUSED on the next receive, and the endpoint stays usable. */
static int m_refused(void *arg) {
  (void)arg;
  weft_addr gone;
  weft_udp *tmp = bound("127.0.0.1", &gone);
  weft_udp_free(tmp);
  weft_udp *cli = NULL;
  T_OK(weft_udp_new(&cli, NULL, &gone, NULL));
  T_OK(weft_udp_send(cli, "x", 1));
  char buf[4];
  weft_timeout s;
  weft_timeout_enter(&s, 5);
  T_RC(weft_udp_recv(cli, buf, sizeof buf), WEFT_ECONNREFUSED);
  (void)weft_timeout_exit(&s);
  weft_udp_free(cli);
  return 0;
}
static void test_refused(void) { RUN(m_refused); }

/* Longer than the buffer: WEFT_EMSGSIZE with the first bytes, and the next
 * datagram arrives whole. A datagram exactly as long as the buffer is not a
 * cut; an empty datagram is a datagram. */
static int m_truncated(void *arg) {
  (void)arg;
  weft_addr sa, from;
  weft_udp *srv = bound("127.0.0.1", &sa);
  weft_udp *cli = bound("127.0.0.1", NULL);
  char big[1000], buf[10];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  T_OK(weft_udp_send_to(cli, big, sizeof big, &sa));
  T_OK(weft_udp_send_to(cli, big, 10, &sa));
  T_OK(weft_udp_send_to(cli, "", 0, &sa));
  T_OK(weft_udp_send_to(cli, "after", 5, &sa));
  memset(&from, 0, sizeof from);
  T_RC(weft_udp_recv_from(srv, buf, sizeof buf, &from), WEFT_EMSGSIZE);
  T_EQ(memcmp(buf, big, 10), 0);
  T_EQ(weft_addr_family(&from), AF_INET); /* the sender is still known */
  T_EQ(weft_udp_recv_from(srv, buf, sizeof buf, NULL), 10);
  T_EQ(weft_udp_recv_from(srv, buf, sizeof buf, NULL), 0);
  T_EQ(weft_udp_recv_from(srv, buf, sizeof buf, NULL), 5);
  T_EQ(memcmp(buf, "after", 5), 0);
  /* Too large for any datagram. */
  static char huge[70000];
  T_RC(weft_udp_send_to(cli, huge, sizeof huge, &sa), WEFT_EMSGSIZE);
  weft_udp_free(srv);
  weft_udp_free(cli);
  return 0;
}
static void test_truncated(void) { RUN(m_truncated); }

/* ---- waiting ---- */

typedef struct rx {
  weft_udp *u;
  int order[8], *n;
  int idx;
  char got[16];
  int rc;
} rx;

static int receiver(void *p) {
  rx *r = p;
  r->rc = weft_udp_recv(r->u, r->got, sizeof r->got - 1);
  if (r->rc >= 0) {
    r->got[r->rc] = '\0';
    r->order[(*r->n)++] = r->idx;
  }
  return r->rc < 0 ? r->rc : 0;
}

/* Three tasks wait; three datagrams come in one burst; each task gets one,
 * in the order they began waiting (the first edge wakes the first, who
 * hands on to the next). */
static int m_waiters_in_order(void *arg) {
  (void)arg;
  weft_addr sa;
  weft_udp *srv = bound("127.0.0.1", &sa);
  weft_udp *cli = bound("127.0.0.1", NULL);
  int n = 0;
  rx r[3];
  weft_task *t[3];
  for (int i = 0; i < 3; i++) {
    r[i] = (rx){.u = srv, .n = &n, .idx = i};
    T_OK(weft_spawn(&t[i], receiver, &r[i]));
  }
  T_OK(weft_sleep(0.01)); /* all three wait now */
  T_OK(weft_udp_send_to(cli, "d0", 2, &sa));
  T_OK(weft_udp_send_to(cli, "d1", 2, &sa));
  T_OK(weft_udp_send_to(cli, "d2", 2, &sa));
  for (int i = 0; i < 3; i++) {
    int res;
    T_OK(weft_join(t[i], &res));
    T_EQ(res, 0);
    T_EQ(r[i].rc, 2);
    char want[3] = {'d', (char)('0' + i), 0};
    T_STREQ(r[i].got, want);
  }
  weft_udp_free(srv);
  weft_udp_free(cli);
  return 0;
}
static void test_waiters_in_order(void) { RUN(m_waiters_in_order); }

/* A cancelled or timed-out receive takes nothing: the datagram that
 * arrives afterwards is there for the next receive. */
static int m_cancel_loses_nothing(void *arg) {
  (void)arg;
  weft_addr sa;
  weft_udp *srv = bound("127.0.0.1", &sa);
  weft_udp *cli = bound("127.0.0.1", NULL);
  int n = 0;
  rx r = {.u = srv, .n = &n};
  weft_task *t;
  T_OK(weft_spawn(&t, receiver, &r));
  T_OK(weft_sleep(0.01));
  weft_cancel(t);
  int res;
  T_OK(weft_join(t, &res));
  T_EQ(res, WEFT_ECANCELED);
  char buf[8];
  weft_timeout s;
  weft_timeout_enter(&s, 0.02);
  T_RC(weft_udp_recv(srv, buf, sizeof buf), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&s), WEFT_ETIMEDOUT);
  T_OK(weft_udp_send_to(cli, "kept", 4, &sa));
  T_EQ(weft_udp_recv(srv, buf, sizeof buf), 4);
  weft_udp_free(srv);
  weft_udp_free(cli);
  return 0;
}
static void test_cancel_loses_nothing(void) { RUN(m_cancel_loses_nothing); }

/* Two receivers drain a burst of many datagrams: none is lost and no task
 * is left waiting while datagrams are queued (the hand-on after a receive). */
typedef struct drain {
  weft_udp *u;
  int *left;
  int got;
} drain;

static int drainer(void *p) {
  drain *d = p;
  char buf[32];
  while (*d->left > 0) {
    int rc = weft_udp_recv(d->u, buf, sizeof buf);
    if (rc < 0)
      return rc;
    d->got++;
    if (--*d->left == 0)
      break;
  }
  return 0;
}

static int m_burst(void *arg) {
  (void)arg;
  enum { BURST = 200 };
  weft_addr sa;
  weft_udp_opts o = {.size = sizeof o, .recv_buffer = 1 << 20};
  weft_addr a;
  T_OK(weft_addr_ip(&a, "127.0.0.1", 0));
  weft_udp *srv = NULL;
  T_OK(weft_udp_new(&srv, &a, NULL, &o));
  T_OK(weft_udp_local_addr(srv, &sa));
  weft_udp *cli = bound("127.0.0.1", NULL);
  int left = BURST;
  drain d[2] = {{srv, &left, 0}, {srv, &left, 0}};
  weft_task *t[2];
  T_OK(weft_spawn(&t[0], drainer, &d[0]));
  T_OK(weft_spawn(&t[1], drainer, &d[1]));
  T_OK(weft_sleep(0.005));
  for (int i = 0; i < BURST; i++)
    T_OK(weft_udp_send_to(cli, "burst", 5, &sa));
  weft_timeout s;
  weft_timeout_enter(&s, 5);
  int res;
  T_OK(weft_join(t[0], &res));
  T_EQ(res, 0);
  /* One of them may still wait for a datagram that will not come. */
  weft_cancel(t[1]);
  T_OK(weft_join(t[1], &res));
  T_OK(weft_timeout_exit(&s));
  T_EQ(d[0].got + d[1].got, BURST);
  T_EQ(left, 0);
  weft_udp_free(srv);
  weft_udp_free(cli);
  return 0;
}
static void test_burst(void) { RUN(m_burst); }

/* Freeing an endpoint wakes its waiters with WEFT_ECANCELED. */
static int m_free_wakes(void *arg) {
  (void)arg;
  weft_udp *srv = bound("127.0.0.1", NULL);
  int n = 0;
  rx r = {.u = srv, .n = &n};
  weft_task *t;
  T_OK(weft_spawn(&t, receiver, &r));
  T_OK(weft_sleep(0.01));
  weft_udp_free(srv);
  int res;
  T_OK(weft_join(t, &res));
  T_EQ(res, WEFT_ECANCELED);
  return 0;
}
static void test_free_wakes(void) { RUN(m_free_wakes); }

static int m_bad_args(void *arg) {
  (void)arg;
  weft_udp *u = NULL;
  weft_addr a4, a6;
  T_RC(weft_udp_new(&u, NULL, NULL, NULL), WEFT_EINVAL);
  T_OK(weft_addr_ip(&a4, "127.0.0.1", 0));
  T_OK(weft_addr_ip(&a6, "::1", 9));
  T_RC(weft_udp_new(&u, &a4, &a6, NULL), WEFT_EINVAL);
  weft_addr taken;
  weft_udp *first = bound("127.0.0.1", &taken);
  T_RC(weft_udp_new(&u, &taken, NULL, NULL), WEFT_EADDRINUSE);
  T_RC(weft_udp_send(first, "x", 1), WEFT_EINVAL); /* not connected */
  weft_udp_free(first);
  weft_udp_free(NULL);
  return 0;
}
static void test_bad_args(void) {
  RUN(m_bad_args);
  T_RC(weft_udp_new(NULL, NULL, NULL, NULL), WEFT_EINVAL);
  weft_udp *u;
  weft_addr a;
  T_OK(weft_addr_ip(&a, "127.0.0.1", 0));
  T_RC(weft_udp_new(&u, &a, NULL, NULL), WEFT_ENOLOOP);
}

/* SO_REUSEPORT: two endpoints share one port. */
static int m_reuse_port(void *arg) {
  (void)arg;
  weft_udp_opts o = {.size = sizeof o, .reuse_port = true};
  weft_addr a, b;
  T_OK(weft_addr_ip(&a, "127.0.0.1", 0));
  weft_udp *u1 = NULL, *u2 = NULL;
  T_OK(weft_udp_new(&u1, &a, NULL, &o));
  T_OK(weft_udp_local_addr(u1, &b));
  T_OK(weft_udp_new(&u2, &b, NULL, &o));
  weft_udp_free(u1);
  weft_udp_free(u2);
  return 0;
}
static void test_reuse_port(void) { RUN(m_reuse_port); }

/* The socket sits in the loop's own epoll set with the streams: a loop they
 * keep busy wakes a waiting receiver within a few turns of the datagram's
 * arrival, not when libevent's turn comes (up to a millisecond of turns
 * later). Ten datagrams, each sent at a different point of that
 * millisecond by a plain socket. */
typedef struct turn_rx {
  weft_udp *u;
  uint64_t turn; /* when the receive returned */
} turn_rx;

static int m_recv_turn(void *arg) {
  turn_rx *x = arg;
  char b;
  int n = weft_udp_recv(x->u, &b, 1);
  x->turn = loop_turn();
  return n == 1 ? 0 : n;
}

static int m_busy_loop(void *arg) {
  (void)arg;
  busy b;
  busy_start(&b);
  weft_addr a;
  turn_rx x = {.u = bound("127.0.0.1", &a)};
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  T_GE(fd, 0);
  uint64_t worst = 0;
  for (int k = 0; k < 10; k++) {
    weft_task *t;
    x.turn = 0;
    T_OK(weft_spawn(&t, m_recv_turn, &x));
    T_OK(weft_sleep(0.0003 * k)); /* the receiver waits by now */
    uint64_t t0 = loop_turn();
    T_EQ(sendto(fd, "x", 1, 0, &a.u.sa, a.len), 1);
    int r = -1;
    T_OK(weft_join(t, &r));
    T_EQ(r, 0);
    worst = x.turn - t0 > worst ? x.turn - t0 : worst;
  }
  T_LE(worst, 3);
  close(fd);
  weft_udp_free(x.u);
  busy_stop(&b);
  return 0;
}
static void test_busy_loop(void) { RUN(m_busy_loop); }

static const t_case cases[] = {
    {"ipv4", test_ipv4},
    {"ipv6", test_ipv6},
    {"connected", test_connected},
    {"refused", test_refused},
    {"truncated", test_truncated},
    {"waiters_in_order", test_waiters_in_order},
    {"cancel_loses_nothing", test_cancel_loses_nothing},
    {"burst", test_burst},
    {"free_wakes", test_free_wakes},
    {"bad_args", test_bad_args},
    {"reuse_port", test_reuse_port},
    {"busy_loop", test_busy_loop},
    {NULL, NULL}};
T_MAIN("net-udp", cases)
