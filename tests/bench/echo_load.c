/* echo-load — the load generator of the TCP echo benchmark (bench_net.py).
 *
 *   echo-load HOST PORT CONNECTIONS SIZE SECONDS [WARMUP]
 *
 * Opens CONNECTIONS TCP connections to an echo server; each sends SIZE
 * bytes, waits until all SIZE come back, and sends again (one message in
 * flight per connection: round trips, not pipelining). After WARMUP seconds
 * (default 1) it counts completed round trips for SECONDS and prints
 *
 *   rt_per_s=N round_trips=N seconds=S errors=N
 *
 * Plain epoll on one thread with no library in the way, so that it costs
 * as little as possible per round trip: it is the same load for every
 * server it is pointed at.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
  int fd;
  size_t got; /* bytes of the current reply received */
} conn;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE SECONDS [WARMUP]\n",
            argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]), nconn = atoi(argv[3]);
  size_t size = (size_t)atol(argv[4]);
  double secs = atof(argv[5]), warm = argc > 6 ? atof(argv[6]) : 1.0;
  struct sockaddr_storage ss;
  socklen_t slen;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    slen = sizeof *in4;
  } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    slen = sizeof *in6;
  } else {
    fprintf(stderr, "%s: numeric host wanted\n", argv[0]);
    return 2;
  }
  char *msg = malloc(size), *buf = malloc(size > 65536 ? size : 65536);
  conn *c = calloc((size_t)nconn, sizeof *c);
  if (msg == NULL || buf == NULL || c == NULL)
    die("malloc");
  for (size_t i = 0; i < size; i++)
    msg[i] = (char)('a' + i % 26);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    die("epoll_create1");
  /* Connect blocking (the server accepts from its backlog), then switch to
   * non-blocking for the run. */
  for (int i = 0; i < nconn; i++) {
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      die("socket");
    if (connect(fd, (struct sockaddr *)&ss, slen) != 0)
      die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
      die("epoll_ctl");
  }
  /* Everyone sends its first message. A message of up to the socket's
   * buffer goes in one write. */
  for (int i = 0; i < nconn; i++)
    if (write(c[i].fd, msg, size) != (ssize_t)size)
      die("write");

  uint64_t rts = 0, counted = 0, errors = 0;
  double t0 = now(), start = t0 + warm, end = start + secs;
  bool counting = false;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, 100);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int k = 0; k < n; k++) {
      conn *cc = evs[k].data.ptr;
      ssize_t r = read(cc->fd, buf, size - cc->got);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN)
          continue;
        errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, cc->fd, NULL);
        continue;
      }
      cc->got += (size_t)r;
      if (cc->got < size)
        continue;
      cc->got = 0;
      rts++;
      if (write(cc->fd, msg, size) != (ssize_t)size) {
        errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, cc->fd, NULL);
      }
    }
    double t = now();
    if (!counting && t >= start) {
      counting = true;
      counted = rts;
      start = t;
      end = t + secs;
    } else if (counting && t >= end) {
      counted = rts - counted;
      printf("rt_per_s=%.0f round_trips=%llu seconds=%.3f errors=%llu\n",
             (double)counted / (t - start), (unsigned long long)counted,
             t - start, (unsigned long long)errors);
      break;
    }
  }
  for (int i = 0; i < nconn; i++)
    close(c[i].fd);
  free(c);
  free(msg);
  free(buf);
  return errors ? 1 : 0;
}
