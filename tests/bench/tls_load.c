/* tls-load — the load generator of the TLS handshake benchmark
 * (bench_net.py).
 *
 *   tls-load HOST PORT CONCURRENCY SECONDS [WARMUP]
 *
 * Keeps CONCURRENCY full TLS handshakes in flight against the server: each
 * connects, runs a fresh handshake (no session resumption: a new session,
 * no tickets, no cache), sends its close_notify, closes, and starts over.
 * After WARMUP seconds (default 1) it counts the handshakes completed in
 * SECONDS and prints
 *
 *   hs_per_s=N handshakes=N seconds=S errors=N
 *
 * TLS 1.3 with TLS_AES_128_GCM_SHA256 over X25519; the server's certificate
 * is not verified (verifying costs the client, not the server under test).
 * One thread, non-blocking sockets on epoll.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct slot {
  int fd;
  SSL *ssl;
  bool connecting;
} slot;

static struct sockaddr_in addr;
static SSL_CTX *ctx;
static int ep;
static uint64_t done_count, errors;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void start(slot *s) {
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0)
    die("socket");
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0 &&
      errno != EINPROGRESS)
    die("connect");
  s->ssl = SSL_new(ctx);
  SSL_set_fd(s->ssl, s->fd);
  SSL_set_connect_state(s->ssl);
  s->connecting = true;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
    die("epoll_ctl");
}

static void finish(slot *s, bool ok) {
  if (ok) {
    done_count++;
    (void)SSL_shutdown(s->ssl); /* our close_notify; no wait for theirs */
  } else {
    errors++;
  }
  SSL_free(s->ssl);
  close(s->fd); /* also leaves the epoll set */
  start(s);
}

static void step(slot *s) {
  if (s->connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      finish(s, false);
      return;
    }
    s->connecting = false;
  }
  int rc = SSL_do_handshake(s->ssl);
  if (rc == 1) {
    finish(s, true);
    return;
  }
  int e = SSL_get_error(s->ssl, rc);
  uint32_t want;
  if (e == SSL_ERROR_WANT_READ)
    want = EPOLLIN;
  else if (e == SSL_ERROR_WANT_WRITE)
    want = EPOLLOUT;
  else {
    ERR_clear_error();
    finish(s, false);
    return;
  }
  struct epoll_event ev = {.events = want, .data.ptr = s};
  epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s HOST PORT CONCURRENCY SECONDS [WARMUP]\n",
            argv[0]);
    return 2;
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "%s: numeric IPv4 host wanted\n", argv[0]);
    return 2;
  }
  int conc = atoi(argv[3]);
  double secs = atof(argv[4]), warm = argc > 5 ? atof(argv[5]) : 1.0;

  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
  SSL_CTX_set1_groups_list(ctx, "X25519");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  signal(SIGPIPE, SIG_IGN);

  ep = epoll_create1(EPOLL_CLOEXEC);
  slot *slots = calloc((size_t)conc, sizeof *slots);
  for (int i = 0; i < conc; i++)
    start(&slots[i]);
  double start_t = now() + warm, end_t = 0;
  uint64_t base = 0;
  bool counting = false;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, 100);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int k = 0; k < n; k++)
      step(evs[k].data.ptr);
    double t = now();
    if (!counting && t >= start_t) {
      counting = true;
      base = done_count;
      start_t = t;
      end_t = t + secs;
    } else if (counting && t >= end_t) {
      uint64_t c = done_count - base;
      printf("hs_per_s=%.0f handshakes=%llu seconds=%.3f errors=%llu\n",
             (double)c / (t - start_t), (unsigned long long)c, t - start_t,
             (unsigned long long)errors);
      break;
    }
  }
  return 0;
}
