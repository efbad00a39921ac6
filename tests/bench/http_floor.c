/* The floor of the HTTP/1.1 keep-alive benchmark (tests/bench/bench_http.py):
 * the least a server on this kernel must do per request, and nothing more.
 * One thread, one epoll set, edge-triggered; per ready socket it reads what
 * is there, counts the requests by their blank line (no parsing, no
 * checks), and answers them all with one send of the same fixed response
 * (as long as weft's, with a Date fixed at start). A peer runs beside it in
 * the same rotation, so its rate per CPU-second is the ceiling any server
 * could reach in that run: the kernel's share of a request (recv, send,
 * loopback delivery, epoll) that every server pays alike.
 *
 * Prints "port=N" when listening on 127.0.0.1; stops on SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384
#define MAX_BATCH 16 /* pipelined answers sent at once */

struct conn {
  int fd;
  size_t have; /* bytes of an unfinished request kept from the last read */
  char buf[BUF];
};

static char resp[256];
static size_t resp_len;
static volatile sig_atomic_t stop;

static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

static void drop(struct conn *c) {
  close(c->fd);
  free(c);
}

/* Reads until the socket is empty; answers every complete request. */
static void serve(struct conn *c, uint32_t ev) {
  static char out[sizeof resp * MAX_BATCH];
  for (;;) {
    size_t room = BUF - c->have;
    ssize_t n = recv(c->fd, c->buf + c->have, room, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      drop(c);
      return;
    }
    if (n < 0)
      return;
    size_t end = c->have + (size_t)n, start = 0, k = 0;
    const char *p;
    while ((p = memmem(c->buf + start, end - start, "\r\n\r\n", 4)) != NULL) {
      start = (size_t)(p - c->buf) + 4;
      if (++k == MAX_BATCH ||
          memmem(c->buf + start, end - start, "\r\n\r\n", 4) == NULL) {
        for (size_t i = 0; i < k; i++)
          memcpy(out + i * resp_len, resp, resp_len);
        if (send(c->fd, out, k * resp_len, MSG_NOSIGNAL) !=
            (ssize_t)(k * resp_len)) {
          drop(c); /* the load reads its answers: a full buffer is an error */
          return;
        }
        k = 0;
      }
    }
    c->have = end - start;
    memmove(c->buf, c->buf + start, c->have);
    if (c->have == BUF) {
      drop(c);
      return;
    }
    /* A short read emptied the socket, unless the peer closed too. */
    if ((size_t)n < room && !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
      return;
  }
}

int main(void) {
  char date[64];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&now));
  resp_len = (size_t)snprintf(resp, sizeof resp,
                              "HTTP/1.1 200 OK\r\nDate: %s\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Length: 13\r\n\r\nHello, World!",
                              date);
  signal(SIGTERM, on_term);
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) ||
      getsockname(lfd, (struct sockaddr *)&a, &len) != 0) {
    perror("listen");
    return 1;
  }
  printf("port=%d\n", ntohs(a.sin_port));
  fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c != NULL) {
        serve(c, evs[i].events);
        continue;
      }
      int fd;
      while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
             0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = malloc(sizeof *c);
        if (c == NULL) {
          close(fd);
          continue;
        }
        c->fd = fd;
        c->have = 0;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
          drop(c);
      }
    }
  }
  return 0;
}
