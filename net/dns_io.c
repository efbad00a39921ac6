/* weft — the socket calls c-ares makes, batched.
 *
 * c-ares sends each query with its own send() and reads each reply with its
 * own recvfrom(), plus one more that says EAGAIN: three system calls per
 * query. Given these functions (ares_set_socket_functions), a UDP send only
 * queues the datagram, and weft__dns_io_flush() sends the whole queue with
 * one sendmmsg() before the loop goes back to waiting; a receive takes the
 * next datagram of a batch read by one recvmmsg(). With a line of queries in
 * flight that is a few system calls per batch instead of per query.
 *
 * UDP loses nothing it would not lose anyway: a datagram the kernel refuses
 * at flush time (a full send buffer) is simply not sent, and c-ares
 * retransmits it after its timeout, as for one lost on the way. An error the
 * socket reports at flush time (ECONNREFUSED from an earlier ICMP port
 * unreachable) is kept and handed to c-ares by its next receive, which the
 * flush then provokes, so c-ares hears of it as it would have.
 *
 * TCP goes straight through. With socket functions set c-ares makes no
 * socket settings of its own, so non-blocking mode, close-on-exec,
 * TCP_NODELAY and the UDP receive buffer are set here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dns_int.h"

#define RX_BATCH 32
#define RX_SIZE 1232 /* the common EDNS size; plain DNS replies are <= 512 */
#define TX_BATCH 64
#define TX_SIZE 512 /* a query: header, name (<= 255), question, OPT */

struct weft__dns_udp {
  int fd;
  int err; /* an error to report on the next receive (errno) */
  /* Received, not yet taken: rx_msg[rx_next..rx_count). */
  unsigned rx_next, rx_count;
  struct mmsghdr rx_msg[RX_BATCH];
  struct iovec rx_iov[RX_BATCH];
  struct sockaddr_storage rx_from[RX_BATCH];
  unsigned char rx_buf[RX_BATCH][RX_SIZE];
  /* Queued to send. */
  unsigned tx_count;
  unsigned short tx_len[TX_BATCH];
  unsigned char tx_buf[TX_BATCH][TX_SIZE];
};

static weft__dns_udp *find_udp(weft_resolver *r, int fd, size_t *idx) {
  for (size_t i = 0; i < r->nudp; i++)
    if (r->udp[i]->fd == fd) {
      if (idx != NULL)
        *idx = i;
      return r->udp[i];
    }
  return NULL;
}

static ares_socket_t io_socket(int domain, int type, int protocol, void *arg) {
  weft_resolver *r = arg;
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0)
    return ARES_SOCKET_BAD;
  if (type != SOCK_DGRAM) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
  /* Replies to a full line of queries may arrive in one burst: they must
   * fit, or each one dropped costs a retransmission timeout. The kernel
   * caps the size at net.core.rmem_max. */
  int rcv = (int)r->rcvbuf;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  if (r->nudp == r->udp_cap) {
    size_t cap = r->udp_cap ? r->udp_cap * 2 : 4;
    weft__dns_udp **n = weft__realloc(r->udp, cap * sizeof *n);
    if (n == NULL)
      goto fail;
    r->udp = n;
    r->udp_cap = cap;
  }
  weft__dns_udp *u = weft__malloc(sizeof *u);
  if (u == NULL)
    goto fail;
  u->fd = fd;
  u->err = 0;
  u->rx_next = u->rx_count = 0;
  u->tx_count = 0;
  for (int i = 0; i < RX_BATCH; i++) {
    u->rx_iov[i].iov_base = u->rx_buf[i];
    u->rx_iov[i].iov_len = RX_SIZE;
  }
  r->udp[r->nudp++] = u;
  return fd;
fail:
  close(fd);
  errno = ENOMEM;
  return ARES_SOCKET_BAD;
}

static int io_close(ares_socket_t fd, void *arg) {
  weft_resolver *r = arg;
  size_t i;
  weft__dns_udp *u = find_udp(r, fd, &i);
  if (u != NULL) {
    r->udp[i] = r->udp[--r->nudp];
    weft__free(u);
  }
  return close(fd);
}

static int io_connect(ares_socket_t fd, const struct sockaddr *sa,
                      ares_socklen_t len, void *arg) {
  (void)arg;
  return connect(fd, sa, len);
}

/* Sends u's queue. Returns 0, or an errno the socket reported. */
static int flush_udp(weft__dns_udp *u) {
  struct mmsghdr msg[TX_BATCH];
  struct iovec iov[TX_BATCH];
  unsigned n = u->tx_count;
  u->tx_count = 0;
  for (unsigned i = 0; i < n; i++) {
    iov[i].iov_base = u->tx_buf[i];
    iov[i].iov_len = u->tx_len[i];
    memset(&msg[i], 0, sizeof msg[i]);
    msg[i].msg_hdr.msg_iov = &iov[i];
    msg[i].msg_hdr.msg_iovlen = 1;
  }
  unsigned sent = 0;
  while (sent < n) {
    int k = sendmmsg(u->fd, msg + sent, n - sent, MSG_DONTWAIT);
    if (k > 0) {
      sent += (unsigned)k;
    } else if (k < 0 && errno == EINTR) {
      continue;
    } else {
      /* EAGAIN: the rest wait for c-ares's retransmission. Anything else is
       * the socket's error for c-ares to hear. */
      return k < 0 && errno != EAGAIN && errno != EWOULDBLOCK ? errno : 0;
    }
  }
  return 0;
}

static ares_ssize_t io_sendv(ares_socket_t fd, const struct iovec *vec, int len,
                             void *arg) {
  weft_resolver *r = arg;
  weft__dns_udp *u = find_udp(r, fd, NULL);
  size_t total = 0;
  for (int i = 0; i < len; i++)
    total += vec[i].iov_len;
  if (u == NULL || total > TX_SIZE)
    return writev(fd, vec, len);
  if (u->tx_count == TX_BATCH) {
    int err = flush_udp(u);
    if (err != 0) {
      errno = err;
      return -1;
    }
  }
  unsigned char *p = u->tx_buf[u->tx_count];
  for (int i = 0; i < len; i++) {
    memcpy(p, vec[i].iov_base, vec[i].iov_len);
    p += vec[i].iov_len;
  }
  u->tx_len[u->tx_count++] = (unsigned short)total;
  return (ares_ssize_t)total;
}

static ares_ssize_t io_recvfrom(ares_socket_t fd, void *buf, size_t len,
                                int flags, struct sockaddr *from,
                                ares_socklen_t *fromlen, void *arg) {
  weft_resolver *r = arg;
  weft__dns_udp *u = find_udp(r, fd, NULL);
  if (u == NULL)
    return recvfrom(fd, buf, len, flags, from, fromlen);
  if (u->err != 0) {
    errno = u->err;
    u->err = 0;
    return -1;
  }
  if (u->rx_next == u->rx_count) {
    for (int i = 0; i < RX_BATCH; i++) {
      memset(&u->rx_msg[i].msg_hdr, 0, sizeof u->rx_msg[i].msg_hdr);
      u->rx_msg[i].msg_hdr.msg_iov = &u->rx_iov[i];
      u->rx_msg[i].msg_hdr.msg_iovlen = 1;
      u->rx_msg[i].msg_hdr.msg_name = &u->rx_from[i];
      u->rx_msg[i].msg_hdr.msg_namelen = sizeof u->rx_from[i];
    }
    int k;
    do
      k = recvmmsg(fd, u->rx_msg, RX_BATCH, MSG_DONTWAIT, NULL);
    while (k < 0 && errno == EINTR);
    if (k < 0)
      return -1; /* EAGAIN, or the socket's error: c-ares decides */
    u->rx_next = 0;
    u->rx_count = (unsigned)k;
    if (k == 0) {
      errno = EAGAIN;
      return -1;
    }
  }
  struct mmsghdr *m = &u->rx_msg[u->rx_next++];
  size_t n = m->msg_len < len ? m->msg_len : len;
  memcpy(buf, u->rx_buf[m - u->rx_msg], n);
  if (from != NULL && fromlen != NULL) {
    socklen_t fl = m->msg_hdr.msg_namelen;
    if (fl > *fromlen)
      fl = *fromlen;
    memcpy(from, &u->rx_from[m - u->rx_msg], fl);
    *fromlen = m->msg_hdr.msg_namelen;
  }
  return (ares_ssize_t)n;
}

const struct ares_socket_functions weft__dns_socket_functions = {
    io_socket, io_close, io_connect, io_recvfrom, io_sendv};

bool weft__dns_io_flush(weft_resolver *r) {
  bool ran = false;
  for (size_t i = 0; i < r->nudp; i++) {
    weft__dns_udp *u = r->udp[i];
    if (u->tx_count == 0)
      continue;
    int err = flush_udp(u);
    if (err != 0) {
      /* Keep the error for the receive, and make c-ares receive now: the
       * send took the error off the socket, so no event will. c-ares may
       * close the socket and end or resend queries (a fresh socket has no
       * pending error, so this does not repeat); the caller flushes again. */
      u->err = err;
      ares_process_fd(r->ch, u->fd, ARES_SOCKET_BAD);
      ran = true;
      break;
    }
  }
  return ran;
}

void weft__dns_io_fini(weft_resolver *r) {
  /* c-ares closed its sockets through io_close. */
  for (size_t i = 0; i < r->nudp; i++)
    weft__free(r->udp[i]);
  weft__free(r->udp);
  r->udp = NULL;
  r->nudp = r->udp_cap = 0;
}
