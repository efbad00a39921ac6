/* weft-resolve — a tiny DNS server on a thread of its own, for the tour (no
 * network needed), the DNS tests (tests/net/test_dns.c) and the DNS
 * benchmark (tests/bench/dns_bench.c). Header-only; plain POSIX, no weft.
 *
 * It listens on UDP and TCP at one address and answers from rules keyed by
 * the query name, so each test picks a behaviour by the name it asks for:
 *
 *   *.nx.test        NXDOMAIN            *.fail.test     SERVFAIL
 *   *.refused.test   REFUSED             *.notimp.test   NOTIMP
 *   *.silent.test    never answers       *.slow.test     answers after 300 ms
 *   *.bad.test       a reply whose record runs past its end (malformed)
 *   *.short.test     a 3-byte reply (not even a header; c-ares drops it)
 *   *.v4.test        A only (AAAA: no data)  *.v6.test  AAAA only
 *   *.many.test      40 A records: too big for UDP, sent truncated, so the
 *                    client retries over TCP
 *   *.multi.test     3 A and 3 AAAA records
 *   *.ttlN.test      answers with TTL N (any other name: TTL 60)
 *   anything else    A 10.x.y.z and AAAA fd00::x:y:z, both derived from a
 *                    hash of the name, so every name has its own addresses
 *   PTR of 10.a.b.c  host-10-a-b-c.test (after 300 ms for 10.99.b.c); other
 *                    PTR queries: NXDOMAIN
 *
 * Every query is counted, and the last names asked are kept, so tests can
 * tell whether a lookup reached the server (cache hits, /etc/hosts, numeric
 * addresses must not).
 */
#ifndef WEFT_RESOLVE_RESPONDER_H
#define WEFT_RESOLVE_RESPONDER_H

/* recvmmsg, accept4, pipe2: include this header first, or define
 * _GNU_SOURCE before any other. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DNSR_SEEN 256    /* names remembered */
#define DNSR_DELAYED 256 /* slow replies pending at once */
#define DNSR_TCP 8       /* TCP clients at once */
#define DNSR_BATCH 64    /* datagrams per recvmmsg */

typedef struct dnsr_delayed {
  double due;
  struct sockaddr_storage to;
  socklen_t tolen;
  uint16_t len;
  uint8_t buf[512];
} dnsr_delayed;

typedef struct dnsr {
  int udp, tcp, wake[2];
  int family, port;
  pthread_t thread;
  bool running;
  unsigned long queries; /* atomic */
  pthread_mutex_t lock;  /* guards seen */
  char seen[DNSR_SEEN][64];
  unsigned nseen;
  dnsr_delayed delayed[DNSR_DELAYED];
  int tcp_fds[DNSR_TCP];
  uint8_t in[DNSR_BATCH][512], out[DNSR_BATCH][1024]; /* server thread's */
} dnsr;

static inline double dnsr__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline bool dnsr__ends(const char *name, const char *suffix) {
  size_t n = strlen(name), s = strlen(suffix);
  if (n < s || strcmp(name + n - s, suffix) != 0)
    return false;
  return n == s || name[n - s - 1] == '.';
}

static inline uint32_t dnsr__hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 16777619u;
  }
  return h;
}

/* Appends a name in DNS wire form. Returns the new length or 0. */
static inline size_t dnsr__put_name(uint8_t *p, size_t at, size_t cap,
                                    const char *name) {
  while (*name) {
    const char *dot = strchr(name, '.');
    size_t l = dot ? (size_t)(dot - name) : strlen(name);
    if (l == 0 || l > 63 || at + 1 + l >= cap)
      return 0;
    p[at++] = (uint8_t)l;
    memcpy(p + at, name, l);
    at += l;
    name += l + (dot ? 1 : 0);
  }
  if (at >= cap)
    return 0;
  p[at++] = 0;
  return at;
}

/* Builds the reply to query q[0..qlen) in out. Returns its length, or 0 for
 * no reply; *delay is set for replies to send later. */
static inline size_t dnsr__answer(dnsr *s, const uint8_t *q, size_t qlen,
                                  uint8_t *out, size_t cap, bool udp,
                                  double *delay) {
  *delay = 0;
  if (qlen < 12 || (q[2] & 0x80) || q[4] != 0 || q[5] != 1)
    return 0; /* not a query with one question */
  char name[256];
  size_t at = 12, nl = 0;
  while (at < qlen && q[at] != 0) {
    size_t l = q[at];
    if (l > 63 || at + 1 + l > qlen || nl + l + 1 >= sizeof name)
      return 0;
    if (nl)
      name[nl++] = '.';
    for (size_t i = 0; i < l; i++) {
      char c = (char)q[at + 1 + i];
      name[nl++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    at += 1 + l;
  }
  name[nl] = '\0';
  if (at + 5 > qlen)
    return 0;
  size_t qend = at + 5; /* the root label, type, class */
  int qtype = q[at + 1] << 8 | q[at + 2];

  __atomic_add_fetch(&s->queries, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&s->lock);
  snprintf(s->seen[s->nseen++ % DNSR_SEEN], sizeof s->seen[0], "%.63s", name);
  pthread_mutex_unlock(&s->lock);

  if (dnsr__ends(name, "silent.test"))
    return 0;
  if (dnsr__ends(name, "short.test")) {
    memcpy(out, q, 3);
    return 3;
  }
  if (dnsr__ends(name, "slow.test"))
    *delay = 0.3;

  int rcode = 0;
  if (dnsr__ends(name, "nx.test"))
    rcode = 3;
  else if (dnsr__ends(name, "fail.test"))
    rcode = 2;
  else if (dnsr__ends(name, "refused.test"))
    rcode = 5;
  else if (dnsr__ends(name, "notimp.test"))
    rcode = 4;

  uint32_t ttl = 60;
  const char *t = strstr(name, ".ttl");
  if (t != NULL && t[4] >= '0' && t[4] <= '9')
    ttl = (uint32_t)strtoul(t + 4, NULL, 10);

  if (qend > cap)
    return 0;
  memcpy(out, q, qend);
  out[2] = (uint8_t)(0x80 | (q[2] & 0x01)); /* QR, RD copied */
  out[3] = (uint8_t)(0x80 | rcode);         /* RA */
  memset(out + 6, 0, 6);                    /* an, ns, ar counts */
  size_t len = qend;
  unsigned an = 0;
  uint32_t h = dnsr__hash(name);

  /* Answer records, each starting with a pointer to the question name. */
#define DNSR_RR(type, rdlen)                                                   \
  do {                                                                         \
    out[len++] = 0xc0;                                                         \
    out[len++] = 12;                                                           \
    out[len++] = (uint8_t)((type) >> 8);                                       \
    out[len++] = (uint8_t)(type);                                              \
    out[len++] = 0;                                                            \
    out[len++] = 1;                                                            \
    out[len++] = (uint8_t)(ttl >> 24);                                         \
    out[len++] = (uint8_t)(ttl >> 16);                                         \
    out[len++] = (uint8_t)(ttl >> 8);                                          \
    out[len++] = (uint8_t)ttl;                                                 \
    out[len++] = (uint8_t)((rdlen) >> 8);                                      \
    out[len++] = (uint8_t)(rdlen);                                             \
  } while (0)

  if (rcode == 0 && dnsr__ends(name, "bad.test")) {
    if (len + 16 > cap)
      return 0;
    DNSR_RR(1, 200); /* claims 200 bytes of data, has 4 */
    memset(out + len, 1, 4);
    len += 4;
    an = 1;
  } else if (rcode == 0 && qtype == 12) { /* PTR */
    unsigned o[4];
    char host[64];
    int end = 0;
    if (sscanf(name, "%u.%u.%u.%u.in-addr.arpa%n", &o[0], &o[1], &o[2], &o[3],
               &end) == 4 &&
        end > 0 && name[end] == '\0' && o[3] == 10) {
      snprintf(host, sizeof host, "host-10-%u-%u-%u.test", o[2], o[1], o[0]);
      if (o[2] == 99)
        *delay = 0.3;
      uint8_t wire[80];
      size_t wl = dnsr__put_name(wire, 0, sizeof wire, host);
      if (wl == 0 || len + 12 + wl > cap)
        return 0;
      DNSR_RR(12, wl);
      memcpy(out + len, wire, wl);
      len += wl;
      an = 1;
    } else {
      out[3] = 0x80 | 3;
    }
  } else if (rcode == 0 && qtype == 1 && !dnsr__ends(name, "v6.test")) {
    unsigned count = dnsr__ends(name, "many.test")    ? 40
                     : dnsr__ends(name, "multi.test") ? 3
                                                      : 1;
    for (unsigned i = 0; i < count; i++) {
      if (len + 16 > cap)
        return 0;
      DNSR_RR(1, 4);
      out[len++] = 10;
      out[len++] = (uint8_t)(h >> 16);
      out[len++] = (uint8_t)(h >> 8);
      out[len++] = (uint8_t)(h + i);
      an++;
    }
  } else if (rcode == 0 && qtype == 28 && !dnsr__ends(name, "v4.test") &&
             !dnsr__ends(name, "many.test")) {
    unsigned count = dnsr__ends(name, "multi.test") ? 3 : 1;
    for (unsigned i = 0; i < count; i++) {
      if (len + 28 > cap)
        return 0;
      DNSR_RR(28, 16);
      memset(out + len, 0, 16);
      out[len] = 0xfd;
      out[len + 10] = (uint8_t)(h >> 24);
      out[len + 11] = (uint8_t)(h >> 16);
      out[len + 12] = (uint8_t)(h >> 8);
      out[len + 13] = (uint8_t)h;
      out[len + 15] = (uint8_t)(1 + i);
      len += 16;
      an++;
    }
  }
#undef DNSR_RR
  out[6] = (uint8_t)(an >> 8);
  out[7] = (uint8_t)an;
  if (udp && len > 512) {
    /* Too big for plain UDP: the question alone, with TC set. */
    out[2] |= 0x02;
    memset(out + 6, 0, 2);
    len = qend;
  }
  return len;
}

static inline void dnsr__udp(dnsr *s) {
  struct mmsghdr in[DNSR_BATCH], outm[DNSR_BATCH];
  struct iovec iov[DNSR_BATCH], oiov[DNSR_BATCH];
  uint8_t(*bufs)[512] = s->in, (*obufs)[1024] = s->out;
  struct sockaddr_storage from[DNSR_BATCH];
  for (int i = 0; i < DNSR_BATCH; i++) {
    iov[i] = (struct iovec){bufs[i], sizeof bufs[i]};
    in[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                    .msg_namelen = sizeof from[i],
                                    .msg_iov = &iov[i],
                                    .msg_iovlen = 1};
  }
  int n = recvmmsg(s->udp, in, DNSR_BATCH, MSG_DONTWAIT, NULL);
  if (n <= 0)
    return;
  int k = 0;
  for (int i = 0; i < n; i++) {
    double delay;
    size_t len = dnsr__answer(s, bufs[i], in[i].msg_len, obufs[k],
                              sizeof obufs[k], true, &delay);
    if (len == 0)
      continue;
    if (delay > 0) {
      for (int j = 0; j < DNSR_DELAYED; j++) {
        dnsr_delayed *d = &s->delayed[j];
        if (d->len == 0 && len <= sizeof d->buf) {
          d->due = dnsr__now() + delay;
          memcpy(&d->to, &from[i], in[i].msg_hdr.msg_namelen);
          d->tolen = in[i].msg_hdr.msg_namelen;
          memcpy(d->buf, obufs[k], len);
          d->len = (uint16_t)len;
          break;
        }
      }
      continue;
    }
    oiov[k] = (struct iovec){obufs[k], len};
    outm[k].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                      .msg_namelen = in[i].msg_hdr.msg_namelen,
                                      .msg_iov = &oiov[k],
                                      .msg_iovlen = 1};
    k++;
  }
  if (k > 0)
    sendmmsg(s->udp, outm, (unsigned)k, 0);
}

/* Reads one length-prefixed query from a TCP client (blocking briefly: the
 * client sends a whole query at once) and answers it. Returns false when the
 * connection is done. */
static inline bool dnsr__tcp_one(dnsr *s, int fd) {
  uint8_t lenb[2], q[512], out[2 + 2048];
  if (recv(fd, lenb, 2, MSG_WAITALL) != 2)
    return false;
  size_t ql = (size_t)(lenb[0] << 8 | lenb[1]);
  if (ql > sizeof q || recv(fd, q, ql, MSG_WAITALL) != (ssize_t)ql)
    return false;
  double delay;
  size_t len = dnsr__answer(s, q, ql, out + 2, sizeof out - 2, false, &delay);
  if (len == 0)
    return true;
  out[0] = (uint8_t)(len >> 8);
  out[1] = (uint8_t)len;
  return send(fd, out, len + 2, MSG_NOSIGNAL) == (ssize_t)(len + 2);
}

static inline void *dnsr__main(void *arg) {
  dnsr *s = arg;
  for (;;) {
    struct pollfd p[3 + DNSR_TCP];
    int np = 0;
    p[np++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    p[np++] = (struct pollfd){.fd = s->udp, .events = POLLIN};
    p[np++] = (struct pollfd){.fd = s->tcp, .events = POLLIN};
    for (int i = 0; i < DNSR_TCP; i++)
      if (s->tcp_fds[i] >= 0)
        p[np++] = (struct pollfd){.fd = s->tcp_fds[i], .events = POLLIN};
    double now = dnsr__now(), next = now + 1;
    for (int j = 0; j < DNSR_DELAYED; j++) {
      dnsr_delayed *d = &s->delayed[j];
      if (d->len == 0)
        continue;
      if (d->due <= now) {
        sendto(s->udp, d->buf, d->len, 0, (struct sockaddr *)&d->to, d->tolen);
        d->len = 0;
      } else if (d->due < next) {
        next = d->due;
      }
    }
    int ms = (int)((next - now) * 1000) + 1;
    if (poll(p, (nfds_t)np, ms) < 0 && errno != EINTR)
      break;
    if (p[0].revents)
      break;
    if (p[1].revents & POLLIN)
      dnsr__udp(s);
    if (p[2].revents & POLLIN) {
      int c = accept4(s->tcp, NULL, NULL, SOCK_CLOEXEC);
      for (int i = 0; c >= 0 && i < DNSR_TCP; i++)
        if (s->tcp_fds[i] < 0) {
          s->tcp_fds[i] = c;
          c = -1;
        }
      if (c >= 0)
        close(c);
    }
    for (int i = 3; i < np; i++)
      if (p[i].revents && !dnsr__tcp_one(s, p[i].fd))
        for (int j = 0; j < DNSR_TCP; j++)
          if (s->tcp_fds[j] == p[i].fd) {
            close(p[i].fd);
            s->tcp_fds[j] = -1;
          }
  }
  return NULL;
}

/* Starts a server on `ip` (numeric, v4 or v6) and `port` (0: any free one;
 * read it back with s->port). Returns 0 or -errno. */
static inline int dnsr_start(dnsr **out, const char *ip, int port) {
  dnsr *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->udp = s->tcp = s->wake[0] = s->wake[1] = -1;
  for (int i = 0; i < DNSR_TCP; i++)
    s->tcp_fds[i] = -1;
  pthread_mutex_init(&s->lock, NULL);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    sl = sizeof *a4;
  } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    sl = sizeof *a6;
  } else {
    free(s);
    return -EINVAL;
  }
  s->family = ss.ss_family;
  int rc = 0, one = 1;
  if (pipe2(s->wake, O_CLOEXEC) != 0) {
    rc = -errno;
    goto fail;
  }
  /* UDP picks the port, TCP takes the same one; should a TCP socket hold
   * that port already, try another (only when any port will do). */
  for (int attempt = 0;; attempt++) {
    s->udp = socket(s->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    s->tcp = socket(s->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->udp < 0 || s->tcp < 0) {
      rc = -errno;
      goto fail;
    }
    /* Room for a burst of queries: a full buffer drops them. */
    int rcv = 4 << 20;
    setsockopt(s->udp, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    setsockopt(s->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s->family == AF_INET)
      a4->sin_port = htons((uint16_t)port);
    else
      a6->sin6_port = htons((uint16_t)port);
    if (bind(s->udp, (struct sockaddr *)&ss, sl) != 0) {
      rc = -errno;
      goto fail;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(s->udp, (struct sockaddr *)&got, &gl);
    s->port =
        ntohs(s->family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                   : ((struct sockaddr_in6 *)&got)->sin6_port);
    if (s->family == AF_INET)
      a4->sin_port = htons((uint16_t)s->port);
    else
      a6->sin6_port = htons((uint16_t)s->port);
    if (bind(s->tcp, (struct sockaddr *)&ss, sl) == 0 &&
        listen(s->tcp, 16) == 0)
      break;
    rc = -errno;
    close(s->udp);
    close(s->tcp);
    s->udp = s->tcp = -1;
    if (port != 0 || rc != -EADDRINUSE || attempt == 50)
      goto fail;
  }
  rc = -pthread_create(&s->thread, NULL, dnsr__main, s);
  if (rc != 0)
    goto fail;
  s->running = true;
  *out = s;
  return 0;
fail:
  if (s->udp >= 0)
    close(s->udp);
  if (s->tcp >= 0)
    close(s->tcp);
  if (s->wake[0] >= 0) {
    close(s->wake[0]);
    close(s->wake[1]);
  }
  pthread_mutex_destroy(&s->lock);
  free(s);
  return rc;
}

/* Stops the server and frees it (NULL ok). */
static inline void dnsr_stop(dnsr *s) {
  if (s == NULL)
    return;
  if (s->running) {
    ssize_t w = write(s->wake[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL);
  }
  close(s->udp);
  close(s->tcp);
  close(s->wake[0]);
  close(s->wake[1]);
  for (int i = 0; i < DNSR_TCP; i++)
    if (s->tcp_fds[i] >= 0)
      close(s->tcp_fds[i]);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* Queries received so far. Any thread. */
static inline unsigned long dnsr_queries(dnsr *s) {
  return __atomic_load_n(&s->queries, __ATOMIC_RELAXED);
}

/* How many of the last DNSR_SEEN queries asked for `name`. Any thread. */
static inline int dnsr_seen(dnsr *s, const char *name) {
  int n = 0;
  pthread_mutex_lock(&s->lock);
  unsigned k = s->nseen < DNSR_SEEN ? s->nseen : DNSR_SEEN;
  for (unsigned i = 0; i < k; i++)
    n += strcmp(s->seen[i], name) == 0;
  pthread_mutex_unlock(&s->lock);
  return n;
}

#endif
