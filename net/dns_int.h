/* weft — what the DNS files share: the resolver struct and the internal
 * entry points of its parts. Internal to net/dns*.c.
 *
 *   dns.c        the resolver, lookups, c-ares in the loop
 *   dns_cache.c  the table of answers and lookups in flight
 *   dns_io.c     c-ares's socket calls, UDP batched (recvmmsg/sendmmsg)
 *   dns_hosts.c  /etc/hosts, parsed once and kept while unchanged
 *   dns_sort.c   RFC 6724 destination address order
 */
#ifndef WEFT_DNS_INT_H
#define WEFT_DNS_INT_H

#include <ares.h>
#include <weft/dns.h>

#include "dns_cache.h"

/* A socket c-ares asked us to watch, in the loop's own epoll set. */
typedef struct weft__dns_sock {
  weft__io io;   /* io.fd: the socket */
  uint32_t what; /* EPOLLIN, EPOLLOUT */
  struct weft_resolver *r;
} weft__dns_sock;

typedef struct weft__dns_udp weft__dns_udp;     /* dns_io.c */
typedef struct weft__dns_hosts weft__dns_hosts; /* dns_hosts.c */

struct weft_resolver {
  weft__loop_slot slot; /* when it is the loop's own */
  weft_loop *loop;
  ares_channel ch;
  struct event *timer;
  uint64_t timer_due;     /* when the timer fires (clock ns); 0: not armed */
  uint64_t timeout_ns;    /* the first try's timeout */
  weft__dns_sock **socks; /* each its own block: the set points at it */
  size_t nsocks, socks_cap;

  weft__dns_table table;
  weft__list line; /* entries waiting for a query slot */
  size_t inflight, max_inflight;
  bool pumping;    /* pump() is on the stack */
  bool destroying; /* ares_destroy() is running */
  bool oom;        /* a socket could not be watched (fail_all) */
  bool failing;    /* fail_all() cancels: report WEFT_ENOMEM */
  bool loop_owned;

  size_t cache_size;
  bool no_cache;
  uint64_t max_ttl_ns, negative_ttl_ns;
  weft_dns_stats stats;

  /* dns_io.c: c-ares's UDP sockets, with their batches. */
  weft__dns_udp **udp;
  size_t nudp, udp_cap;
  size_t rcvbuf;

  /* dns_hosts.c: /etc/hosts, and where nsswitch.conf puts it. */
  weft__dns_hosts *hosts;
  bool hosts_first; /* files before DNS */
  bool hosts_last;  /* files after DNS */
  bool use_dns;

  /* dns_sort.c: one UDP socket per family, connected to a destination to
   * learn the source address the kernel would use (-1: not yet made). */
  int probe_fd[2];
};

/* ---- dns_io.c ---- */

/* The socket calls c-ares makes, for ares_set_socket_functions(); their
 * user data is the resolver. */
extern const struct ares_socket_functions weft__dns_socket_functions;
/* Sends the datagrams c-ares queued since the last flush. Returns true when
 * it had to call back into c-ares (to report a socket error): then lookups
 * may have ended and more datagrams been queued, and the caller goes again. */
bool weft__dns_io_flush(weft_resolver *r);
/* Frees what is left once the channel is gone. */
void weft__dns_io_fini(weft_resolver *r);

/* ---- dns_hosts.c ---- */

/* Looks `name` (lower-cased) up in /etc/hosts, rereading the file when it
 * changed (checked at most once a second). On a hit stores a new array in
 * *ips (the caller frees it) and returns 0; WEFT_ENOHOST when the file has
 * no address of `family` for the name; WEFT_ENOMEM. */
int weft__dns_hosts_lookup(weft_resolver *r, const char *name, int family,
                           weft__dns_ip **ips, size_t *n);
/* The first name /etc/hosts gives `ip`, copied into host[0..size): 0,
 * WEFT_ENOHOST, WEFT_ERANGE. */
int weft__dns_hosts_reverse(weft_resolver *r, const weft__dns_ip *ip,
                            char *host, size_t size);
void weft__dns_hosts_free(weft_resolver *r);

/* ---- dns_sort.c ---- */

/* Sorts ips[0..n) into RFC 6724 destination order. */
void weft__dns_sort(weft_resolver *r, weft__dns_ip *ips, size_t n);
void weft__dns_sort_fini(weft_resolver *r);

#endif
