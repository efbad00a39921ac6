/* weft — DNS on c-ares, inside the loop.
 *
 * c-ares does the DNS work (resolv.conf, search domains, retries, TCP
 * fallback); weft gives it the loop. c-ares tells us which sockets it wants
 * watched (ARES_OPT_SOCK_STATE_CB) and each goes in the loop's own epoll
 * set (weft__io, as streams do), with a callback that calls
 * ares_process_fd(); one loop timer, re-armed from ares_timeout()
 * after every call into c-ares, drives its retransmissions and timeouts. No
 * threads, no polling. Three things c-ares 1.18 does per lookup weft does
 * once or cheaper, as they cost more than the DNS itself: its socket calls
 * are batched (dns_io.c), /etc/hosts is kept parsed (dns_hosts.c), and the
 * RFC 6724 sort reuses its probe sockets (dns_sort.c).
 *
 * A lookup is an entry in the resolver's table (dns_cache.c), keyed by family
 * and name. Tasks that look up the same name while it is in flight link a
 * waiter to the same entry, so they share one query. When c-ares answers,
 * the answer is copied into every waiter's output array (each waiter lives
 * in its task's frame and stays linked until completed or until it gives
 * up), and the entry either stays in the table as a cached answer or goes.
 *
 * Giving up (cancellation, a deadline) only unlinks the waiter: the query
 * runs on and fills the cache, and nothing will ever write into the frame
 * that waited. c-ares 1.18 cannot cancel one query, and does not need to.
 *
 * c-ares may call our callback from inside ares_getaddrinfo() (a bad name,
 * no memory) as well as from ares_process_fd() and ares_destroy(), so no
 * code touches an entry after handing it to c-ares.
 *
 * The line: at most max_inflight queries are handed to c-ares at once; the
 * rest wait in FIFO order. A burst of ten thousand lookups then never floods
 * the socket buffers (lost replies cost a whole retransmission timeout).
 */
#define _GNU_SOURCE
#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <weft/dns.h>

#include "dns_int.h"

#define DEFAULT_CACHE_SIZE 512
#define DEFAULT_MAX_TTL 3600.0
#define DEFAULT_NEGATIVE_TTL 10.0
#define DEFAULT_MAX_INFLIGHT 128
/* Replies of a full line of queries arriving in one burst must fit in the
 * socket's receive buffer, or some are dropped and cost a retransmission
 * timeout each. The kernel caps this at net.core.rmem_max. */
#define SOCKET_RCVBUF (1 << 20)
#define DEFAULT_TRIES 2 /* glibc's; c-ares's own default is 4 */
#define CARES_DEFAULT_TRIES 4
#define MAX_NAME 254 /* 253 characters, plus a trailing dot */

/* A forward lookup's waiter, in the waiting task's frame. */
typedef struct lookup {
  weft__waiter w;
  weft__dns_entry *e;
  weft_addr *out;
  size_t max, n;
  int port;
  bool interleave;
} lookup;

/* A reverse lookup, on the heap: c-ares holds it until its callback, which
 * may come after the task stopped waiting (then `w` is NULL). */
typedef struct reverse {
  weft_resolver *r;
  struct reverse_waiter *w;
  weft__dns_ip ip;
} reverse;

typedef struct reverse_waiter {
  weft__waiter w;
  reverse *req;
  char *host;
  size_t size;
} reverse_waiter;

static const char loop_slot_key = 0;

/* ---- c-ares status to weft codes ---- */

static int map_status(int s) {
  switch (s) {
  case ARES_SUCCESS:
    return 0;
  case ARES_ENOTFOUND:
  case ARES_ENONAME:
    return WEFT_ENOHOST;
  case ARES_ENODATA:
    return WEFT_ENOADDR;
  case ARES_ESERVFAIL:
    return WEFT_ESERVFAIL;
  case ARES_EREFUSED:
    return WEFT_EREFUSED;
  case ARES_ETIMEOUT:
    return WEFT_EDNSTIMEOUT;
  case ARES_EFORMERR:
    return WEFT_EFORMERR;
  case ARES_ENOTIMP:
    return WEFT_ENOTIMP;
  case ARES_EBADRESP:
    return WEFT_EBADRESP;
  case ARES_ECONNREFUSED:
    return WEFT_ECONNREFUSED;
  case ARES_EOF:
    return WEFT_ECONNRESET; /* a TCP server closed the connection */
  case ARES_EBADNAME:
    return WEFT_EBADNAME;
  case ARES_ENOMEM:
    return WEFT_ENOMEM;
  case ARES_EDESTRUCTION:
  case ARES_ECANCELLED:
    return WEFT_ECANCELED;
  case ARES_EFILE:
    return WEFT_EIO;
  case ARES_EBADFAMILY:
    return WEFT_EAFNOSUPPORT;
  default: /* EBADQUERY, EBADFLAGS, EBADHINTS, EBADSTR, ESERVICE */
    return WEFT_EINVAL;
  }
}

/* ---- c-ares in the loop ---- */

static void sock_cb(weft__io *io, uint32_t events);

static size_t find_sock(weft_resolver *r, int fd) {
  size_t i = 0;
  while (i < r->nsocks && r->socks[i]->io.fd != fd)
    i++;
  return i;
}

/* c-ares's word on which sockets to watch. Should memory run out here, the
 * socket would go unwatched: after_ares() then fails every lookup with
 * WEFT_ENOMEM and has c-ares close its sockets, so nothing hangs. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable,
                          int writable) {
  weft_resolver *r = data;
  uint32_t what = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
  size_t i = find_sock(r, fd);
  weft__dns_sock *s = i < r->nsocks ? r->socks[i] : NULL;
  if (what == 0) {
    if (s != NULL) {
      weft__io_del(&s->io); /* before c-ares closes it */
      weft__free(s);
      r->socks[i] = r->socks[--r->nsocks];
    }
    return;
  }
  if (s == NULL) {
    if (r->nsocks == r->socks_cap) {
      size_t cap = r->socks_cap ? r->socks_cap * 2 : 4;
      weft__dns_sock **n = weft__realloc(r->socks, cap * sizeof *n);
      if (n == NULL) {
        r->oom = true;
        return;
      }
      r->socks = n;
      r->socks_cap = cap;
    }
    if ((s = weft__calloc(1, sizeof *s)) == NULL) {
      r->oom = true;
      return;
    }
    s->io.cb = sock_cb;
    s->r = r;
    s->what = what;
    if (weft__io_add(r->loop, &s->io, fd, what) != 0) {
      weft__free(s);
      r->oom = true;
      return;
    }
    r->socks[r->nsocks++] = s;
  } else if (s->what != what) {
    s->what = what;
    if (weft__io_mod(&s->io, what) != 0)
      r->oom = true;
  }
}

static void pump(weft_resolver *r);
static void settle(weft_resolver *r, weft__dns_entry *e, int status,
                   weft__dns_ip *ips, size_t nips, uint64_t ttl_ns);

/* Memory ran out where a socket or the timer had to be watched: without
 * them nothing would ever end the lookups, so end them all now with
 * WEFT_ENOMEM, and have c-ares close its sockets (setting the servers again
 * does that) so the next lookup starts afresh. */
static void fail_all(weft_resolver *r) {
  r->oom = false;
  r->failing = true;
  ares_cancel(r->ch);
  weft__list *n;
  while ((n = weft__list_pop_front(&r->line)) != NULL)
    settle(r, weft__container_of(n, weft__dns_entry, line), WEFT_ENOMEM, NULL,
           0, 0);
  r->failing = false;
  struct ares_addr_port_node *servers = NULL;
  if (ares_get_servers_ports(r->ch, &servers) == ARES_SUCCESS)
    ares_set_servers_ports(r->ch, servers);
  ares_free_data(servers);
  evtimer_del(r->timer);
  r->timer_due = 0;
}

/* Arms the timer for c-ares's next timeout. ares_timeout() walks every
 * query in flight, too dear to call after each reply, so outside the timer's
 * own callback (`exact` false) the timer is only brought forward when needed:
 * a query sent now times out no sooner than now + the first try's timeout
 * (later tries wait longer), so a timer armed no later than that is early
 * enough. Firing early costs one exact look and a re-arm. */
static void arm_timer(weft_resolver *r, bool exact) {
  if (r->inflight == 0) {
    if (r->timer_due != 0) {
      evtimer_del(r->timer);
      r->timer_due = 0;
    }
    return;
  }
  uint64_t now = weft__clock_real_ns(), due;
  if (exact) {
    struct timeval tv;
    if (ares_timeout(r->ch, NULL, &tv) == NULL) {
      evtimer_del(r->timer);
      r->timer_due = 0;
      return;
    }
    due =
        now + (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
  } else {
    due = now + r->timeout_ns;
    if (r->timer_due != 0 && r->timer_due <= due)
      return;
  }
  uint64_t d = due - now;
  struct timeval tv = {.tv_sec = (time_t)(d / 1000000000u),
                       .tv_usec = (suseconds_t)(d % 1000000000u / 1000u)};
  if (evtimer_add(r->timer, &tv) != 0) {
    r->timer_due = 0;
    fail_all(r);
    return;
  }
  r->timer_due = due;
}

/* After every call into c-ares: start what waits in line, send what c-ares
 * queued, and wake up for its next timeout. */
static void after_ares(weft_resolver *r, bool exact) {
  /* Flushing may end lookups (a socket error), which frees slots. */
  int rounds = 0;
  do
    pump(r);
  while (weft__dns_io_flush(r) && ++rounds < 64);
  if (r->oom)
    fail_all(r);
  else
    arm_timer(r, exact);
}

/* The socket is ready (level-triggered). An error or hang-up counts as
 * ready for what c-ares watches, whose read or write then finds it. c-ares
 * may close the socket in here (s is freed then): nothing of s is used
 * after the call. */
static void sock_cb(weft__io *io, uint32_t events) {
  weft__dns_sock *s = weft__container_of(io, weft__dns_sock, io);
  weft_resolver *r = s->r;
  int fd = io->fd;
  if (events & (EPOLLERR | EPOLLHUP))
    events |= s->what;
  ares_process_fd(r->ch, events & EPOLLIN ? fd : ARES_SOCKET_BAD,
                  events & EPOLLOUT ? fd : ARES_SOCKET_BAD);
  after_ares(r, false);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  weft_resolver *r = arg;
  /* No socket: c-ares only handles timeouts (retransmits, gives up). */
  r->timer_due = 0; /* fired */
  ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  after_ares(r, true);
}

/* ---- answers ---- */

static void fill_addr(weft_addr *a, const weft__dns_ip *ip, int port) {
  memset(a, 0, sizeof *a);
  if (ip->family == AF_INET) {
    a->u.in.sin_family = AF_INET;
    a->u.in.sin_port = htons((uint16_t)port);
    memcpy(&a->u.in.sin_addr, ip->addr, 4);
    a->len = sizeof a->u.in;
  } else {
    a->u.in6.sin6_family = AF_INET6;
    a->u.in6.sin6_port = htons((uint16_t)port);
    memcpy(&a->u.in6.sin6_addr, ip->addr, 16);
    a->u.in6.sin6_scope_id = ip->scope;
    a->len = sizeof a->u.in6;
  }
}

/* Copies up to `max` addresses. The cache keeps c-ares's RFC 6724 order;
 * interleaving (RFC 8305 section 4) takes the first address's family, then
 * alternates families for as long as both have addresses left, keeping the
 * order within each family. */
static size_t copy_out(const weft__dns_ip *ips, size_t n, weft_addr *out,
                       size_t max, int port, bool interleave) {
  size_t k = 0;
  if (!interleave || n == 0) {
    for (; k < n && k < max; k++)
      fill_addr(&out[k], &ips[k], port);
    return k;
  }
  uint8_t fam[2] = {ips[0].family,
                    ips[0].family == AF_INET ? AF_INET6 : AF_INET};
  size_t next[2] = {0, 0}; /* scan position in ips for each family */
  int turn = 0;
  while (k < max) {
    size_t i = next[turn];
    while (i < n && ips[i].family != fam[turn])
      i++;
    next[turn] = i + 1;
    if (i < n) {
      fill_addr(&out[k++], &ips[i], port);
    } else {
      /* This family is exhausted: the rest come from the other one. */
      next[turn] = n;
      if (next[1 - turn] >= n)
        break;
    }
    turn = 1 - turn;
  }
  return k;
}

/* Wakes every waiter of a finished lookup with its copy of the answer (or
 * the error), then keeps the entry as a cached answer or frees it. */
static void settle(weft_resolver *r, weft__dns_entry *e, int status,
                   weft__dns_ip *ips, size_t nips, uint64_t ttl_ns) {
  weft__list *n;
  while ((n = weft__list_pop_front(&e->waiters)) != NULL) {
    lookup *l = weft__container_of(n, lookup, w.link);
    if (status == 0)
      l->n = copy_out(ips, nips, l->out, l->max, l->port, l->interleave);
    weft__waiter_complete(&l->w, status);
  }
  bool negative = status == WEFT_ENOHOST || status == WEFT_ENOADDR;
  if (negative)
    ttl_ns = r->negative_ttl_ns;
  bool keep =
      !r->no_cache && !r->destroying && ttl_ns > 0 && (status == 0 || negative);
  if (!keep) {
    weft__dns_table_remove(&r->table, e);
    weft__dns_entry_free(e);
    weft__free(ips);
    return;
  }
  weft__dns_table_keep(&r->table, e, status, ips, nips, weft_now_ns() + ttl_ns);
  while (r->table.nsettled > r->cache_size) {
    weft__dns_entry *old = weft__dns_table_oldest(&r->table);
    weft__dns_table_remove(&r->table, old);
    weft__dns_entry_free(old);
    r->stats.evictions++;
  }
}

static void addrinfo_cb(void *arg, int status, int timeouts,
                        struct ares_addrinfo *ai) {
  (void)timeouts;
  weft__dns_entry *e = arg;
  weft_resolver *r = e->r;
  r->inflight--;
  int rc = r->failing ? WEFT_ENOMEM : map_status(status);
  weft__dns_ip *ips = NULL;
  size_t nips = 0;
  uint64_t ttl_ns = 0;
  if (rc == 0 && ai != NULL) {
    size_t count = 0;
    for (struct ares_addrinfo_node *nd = ai->nodes; nd; nd = nd->ai_next)
      count++;
    ips = count ? weft__calloc(count, sizeof *ips) : NULL;
    if (count && ips == NULL)
      rc = WEFT_ENOMEM;
    long ttl = LONG_MAX;
    for (struct ares_addrinfo_node *nd = ai->nodes; rc == 0 && nd;
         nd = nd->ai_next) {
      weft__dns_ip *ip = &ips[nips];
      if (nd->ai_family == AF_INET) {
        ip->family = AF_INET;
        memcpy(ip->addr, &((struct sockaddr_in *)nd->ai_addr)->sin_addr, 4);
      } else if (nd->ai_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)nd->ai_addr;
        ip->family = AF_INET6;
        memcpy(ip->addr, &s6->sin6_addr, 16);
        ip->scope = s6->sin6_scope_id;
      } else {
        continue;
      }
      nips++;
      if (nd->ai_ttl < ttl)
        ttl = nd->ai_ttl;
    }
    /* A CNAME's TTL bounds how long the chain to these addresses holds. */
    for (struct ares_addrinfo_cname *c = ai->cnames; c; c = c->next)
      if (c->ttl < ttl)
        ttl = c->ttl;
    if (rc == 0 && nips == 0)
      rc = WEFT_ENOADDR;
    if (rc == 0)
      weft__dns_sort(r, ips, nips);
    if (rc == 0 && ttl > 0) {
      double secs = (double)ttl;
      double cap = (double)r->max_ttl_ns / 1e9;
      ttl_ns = (uint64_t)((secs < cap ? secs : cap) * 1e9);
    }
  }
  if (ai != NULL)
    ares_freeaddrinfo(ai);
  if (rc != 0) {
    weft__free(ips);
    ips = NULL;
    nips = 0;
  }
  if ((rc == WEFT_ENOHOST || rc == WEFT_ENOADDR) && r->hosts_last &&
      !r->destroying &&
      weft__dns_hosts_lookup(r, e->name, e->family, &ips, &nips) == 0) {
    /* nsswitch.conf puts files after DNS: not cached, like all hosts
     * answers (they have no TTL, and the file may change). */
    weft__dns_sort(r, ips, nips);
    rc = 0;
    ttl_ns = 0;
  }
  settle(r, e, rc, ips, nips, ttl_ns);
}

/* Hands entries waiting in line to c-ares while slots are free. c-ares may
 * answer inside ares_getaddrinfo() and free the entry there, so an entry is
 * never touched once handed on; the flag keeps a nested call (a lookup made
 * while pumping) from starting a second loop. */
static void pump(weft_resolver *r) {
  if (r->pumping || r->destroying)
    return;
  r->pumping = true;
  while (r->inflight < r->max_inflight && !weft__list_empty(&r->line)) {
    weft__dns_entry *e = weft__container_of(weft__list_pop_front(&r->line),
                                            weft__dns_entry, line);
    e->started = true;
    r->inflight++;
    r->stats.queries++;
    struct ares_addrinfo_hints h = {.ai_family = e->family,
                                    .ai_flags = ARES_AI_NOSORT};
    ares_getaddrinfo(r->ch, e->name, NULL, &h, addrinfo_cb, e);
  }
  r->pumping = false;
}

/* ---- making and freeing resolvers ---- */

static pthread_once_t cares_once = PTHREAD_ONCE_INIT;
static int cares_init_rc;

static void cares_init(void) {
  /* c-ares allocates through weft's allocator hook, so a custom allocator
   * and the failing-allocation tests cover it too. The hook functions read
   * the allocator on each call, so they stay right if it changes while no
   * loop (so no channel) exists. */
  cares_init_rc = ares_library_init_mem(ARES_LIB_INIT_ALL, weft__malloc,
                                        weft__free, weft__realloc);
}

static int opts_valid(const weft_resolver_opts *o) {
  if (!(o->timeout >= 0) || !(o->cache_max_ttl >= 0) ||
      !(o->negative_ttl >= 0) || o->tries < 0 || o->ndots < 0 ||
      o->ndots > 15 || (o->nservers > 0 && o->servers == NULL) ||
      o->timeout > 86400)
    return WEFT_EINVAL;
  for (size_t i = 0; i < o->nservers; i++) {
    int f = weft_addr_family(&o->servers[i]);
    if (f != AF_INET && f != AF_INET6)
      return WEFT_EINVAL;
  }
  return 0;
}

/* Makes the channel. Without a `tries` of the caller's, the channel is made
 * a second time when c-ares fell back to its own default of 4 tries (75 s
 * of doubling timeouts for a dead server): resolv.conf said nothing, and
 * glibc's 2 is what a getaddrinfo user expects. */
static int make_channel(weft_resolver *r, const weft_resolver_opts *o) {
  struct ares_options ao;
  memset(&ao, 0, sizeof ao);
  int mask = ARES_OPT_SOCK_STATE_CB;
  ao.sock_state_cb = sock_state_cb;
  ao.sock_state_cb_data = r;
  if (o->timeout > 0) {
    double ms = ceil(o->timeout * 1000);
    ao.timeout = ms < 1 ? 1 : (int)ms;
    mask |= ARES_OPT_TIMEOUTMS;
  }
  if (o->tries > 0) {
    ao.tries = o->tries;
    mask |= ARES_OPT_TRIES;
  }
  if (o->ndots > 0) {
    ao.ndots = o->ndots;
    mask |= ARES_OPT_NDOTS;
  }
  if (o->domains != NULL) {
    int nd = 0;
    while (o->domains[nd] != NULL)
      nd++;
    ao.domains = (char **)o->domains;
    ao.ndomains = nd;
    mask |= ARES_OPT_DOMAINS;
  }
  if (o->resolv_conf != NULL) {
    ao.resolvconf_path = (char *)o->resolv_conf;
    mask |= ARES_OPT_RESOLVCONF;
  }
  if (o->use_tcp) {
    ao.flags |= ARES_FLAG_USEVC;
    mask |= ARES_OPT_FLAGS;
  }
  if (o->rotate)
    mask |= ARES_OPT_ROTATE;

  int s = ares_init_options(&r->ch, &ao, mask);
  if (s != ARES_SUCCESS)
    return map_status(s);

  /* What resolv.conf and nsswitch.conf gave decides three settings, so
   * look, and make the channel again with them. */
  struct ares_options saved;
  int smask;
  memset(&saved, 0, sizeof saved);
  if (ares_save_options(r->ch, &saved, &smask) != ARES_SUCCESS) {
    ares_destroy_options(&saved); /* what it copied before it failed */
    ares_destroy(r->ch);
    return WEFT_ENOMEM;
  }
  int tries = saved.tries;
  /* ARES_OPT_TIMEOUTMS: milliseconds for the first try. */
  r->timeout_ns = (uint64_t)(o->timeout > 0      ? ceil(o->timeout * 1000)
                             : saved.timeout > 0 ? saved.timeout
                                                 : 5000) *
                  1000000u;
  /* c-ares read the order of files and DNS from nsswitch.conf (host.conf,
   * svc.conf): "fb" means /etc/hosts first. weft reads the file itself,
   * so c-ares only ever asks DNS. */
  const char *lookups = saved.lookups ? saved.lookups : "fb";
  const char *f = strchr(lookups, 'f'), *b = strchr(lookups, 'b');
  r->use_dns = b != NULL;
  r->hosts_first = f != NULL && (b == NULL || f < b);
  r->hosts_last = f != NULL && b != NULL && b < f;
  ares_destroy_options(&saved);
  size_t nservers = o->nservers;
  if (nservers == 0) {
    struct ares_addr_port_node *list = NULL;
    if (ares_get_servers_ports(r->ch, &list) == ARES_SUCCESS)
      for (struct ares_addr_port_node *p = list; p; p = p->next)
        nservers++;
    ares_free_data(list);
  }
  ao.lookups = (char *)"b";
  mask |= ARES_OPT_LOOKUPS;
  if (o->tries <= 0 && tries == CARES_DEFAULT_TRIES) {
    ao.tries = DEFAULT_TRIES;
    mask |= ARES_OPT_TRIES;
  }
  /* c-ares 1.18 answers a SERVFAIL, REFUSED or NOTIMP by trying the next
   * server, and when none is left reports ARES_ECONNREFUSED instead of what
   * the servers said. With a single server there is no next one to try, so
   * let the reply through and report its real code. */
  if (nservers == 1) {
    ao.flags |= ARES_FLAG_NOCHECKRESP;
    mask |= ARES_OPT_FLAGS;
  }
  ares_destroy(r->ch);
  s = ares_init_options(&r->ch, &ao, mask);
  if (s != ARES_SUCCESS)
    return map_status(s);
  ares_set_socket_functions(r->ch, &weft__dns_socket_functions, r);
  if (o->nservers > 0) {
    struct ares_addr_port_node *nodes =
        weft__calloc(o->nservers, sizeof *nodes);
    if (nodes == NULL) {
      ares_destroy(r->ch);
      return WEFT_ENOMEM;
    }
    for (size_t i = 0; i < o->nservers; i++) {
      const weft_addr *a = &o->servers[i];
      struct ares_addr_port_node *nd = &nodes[i];
      nd->next = i + 1 < o->nservers ? &nodes[i + 1] : NULL;
      nd->family = a->u.sa.sa_family;
      if (nd->family == AF_INET)
        memcpy(&nd->addr.addr4, &a->u.in.sin_addr, 4);
      else
        memcpy(&nd->addr.addr6, &a->u.in6.sin6_addr, 16);
      nd->udp_port = nd->tcp_port = weft_addr_port(a);
    }
    s = ares_set_servers_ports(r->ch, nodes);
    weft__free(nodes);
    if (s != ARES_SUCCESS) {
      ares_destroy(r->ch);
      return map_status(s);
    }
  }
  return 0;
}

static int resolver_make(weft_resolver **out, const weft_resolver_opts *opts,
                         bool loop_owned) {
  *out = NULL;
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_resolver_opts o;
  memset(&o, 0, sizeof o);
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  int rc = opts_valid(&o);
  if (rc != 0)
    return rc;
  pthread_once(&cares_once, cares_init);
  if (cares_init_rc != ARES_SUCCESS)
    return map_status(cares_init_rc);

  weft_resolver *r = weft__calloc(1, sizeof *r);
  if (r == NULL)
    return WEFT_ENOMEM;
  r->loop = loop;
  r->loop_owned = loop_owned;
  r->probe_fd[0] = r->probe_fd[1] = -1;
  r->rcvbuf = SOCKET_RCVBUF;
  weft__list_init(&r->line);
  r->max_inflight = o.max_inflight ? o.max_inflight : DEFAULT_MAX_INFLIGHT;
  r->cache_size = o.cache_size ? o.cache_size : DEFAULT_CACHE_SIZE;
  r->no_cache = o.no_cache;
  r->max_ttl_ns =
      (uint64_t)((o.cache_max_ttl > 0 ? o.cache_max_ttl : DEFAULT_MAX_TTL) *
                 1e9);
  r->negative_ttl_ns =
      (uint64_t)((o.negative_ttl > 0 ? o.negative_ttl : DEFAULT_NEGATIVE_TTL) *
                 1e9);
  r->timer = evtimer_new(loop->base, timer_cb, r);
  if (r->timer == NULL) {
    weft__free(r);
    return WEFT_ENOMEM;
  }
  rc = weft__dns_table_init(&r->table);
  if (rc == 0) {
    rc = make_channel(r, &o);
    if (rc != 0)
      weft__dns_table_fini(&r->table);
  }
  if (rc != 0) {
    weft__dns_io_fini(r);
    event_free(r->timer);
    weft__free(r->socks);
    weft__free(r);
    return rc;
  }
  if (!loop_owned)
    weft__obj_add(loop);
  *out = r;
  return 0;
}

static void resolver_destroy(weft_resolver *r) {
  r->destroying = true;
  /* Lookups still in line were never handed to c-ares. */
  weft__list *n;
  while ((n = weft__list_pop_front(&r->line)) != NULL) {
    weft__dns_entry *e = weft__container_of(n, weft__dns_entry, line);
    settle(r, e, WEFT_ECANCELED, NULL, 0, 0);
  }
  /* The rest end in their callbacks with ARES_EDESTRUCTION, and c-ares
   * closes its sockets (sock_state_cb frees their events). */
  ares_destroy(r->ch);
  weft__dns_io_fini(r);
  weft__dns_hosts_free(r);
  weft__dns_sort_fini(r);
  for (size_t i = 0; i < r->nsocks; i++) {
    weft__io_del(&r->socks[i]->io);
    weft__free(r->socks[i]);
  }
  weft__free(r->socks);
  event_free(r->timer);
  weft__dns_table_fini(&r->table);
  if (!r->loop_owned)
    weft__obj_del(r->loop);
  weft__free(r);
}

int weft_resolver_new(weft_resolver **out, const weft_resolver_opts *opts) {
  if (out == NULL)
    return WEFT_EINVAL;
  return resolver_make(out, opts, false);
}

void weft_resolver_free(weft_resolver *r) {
  if (r == NULL)
    return;
  if (r->loop_owned) /* the loop's own: it frees it */
    return;
  resolver_destroy(r);
}

static void slot_fini(weft__loop_slot *s) {
  resolver_destroy(weft__container_of(s, weft_resolver, slot));
}

static weft_resolver *loop_resolver(weft_loop *loop) {
  weft__loop_slot *s = weft__loop_slot_get(loop, &loop_slot_key);
  return s ? weft__container_of(s, weft_resolver, slot) : NULL;
}

static void install(weft_loop *loop, weft_resolver *r) {
  r->slot.key = &loop_slot_key;
  r->slot.fini = slot_fini;
  weft__loop_slot_add(loop, &r->slot);
}

int weft_dns_configure(const weft_resolver_opts *opts) {
  weft_loop *loop = weft__loop();
  if (loop == NULL)
    return WEFT_ENOLOOP;
  weft_resolver *r;
  int rc = resolver_make(&r, opts, true);
  if (rc != 0)
    return rc;
  weft_resolver *old = loop_resolver(loop);
  if (old != NULL) {
    weft__loop_slot_remove(&old->slot);
    resolver_destroy(old);
  }
  install(loop, r);
  return 0;
}

/* The resolver a lookup uses: the one it names, or the loop's own (made
 * now if need be). */
static int pick(const weft_resolve_opts *o, weft_task *t, weft_resolver **r) {
  if (o->resolver != NULL) {
    if (o->resolver->loop != t->loop)
      return WEFT_EWRONGLOOP;
    *r = o->resolver;
    return 0;
  }
  *r = loop_resolver(t->loop);
  if (*r != NULL)
    return 0;
  int rc = resolver_make(r, NULL, true);
  if (rc == 0)
    install(t->loop, *r);
  return rc;
}

/* ---- lookups ---- */

static void copy_opts(weft_resolve_opts *o, const weft_resolve_opts *opts) {
  memset(o, 0, sizeof *o);
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof *o ? opts->size : sizeof *o;
    memcpy(o, opts, n);
  }
}

/* Drops a lookup that waited in line when its last waiter gives up: nobody
 * wants the answer, and no query was sent. */
static void abandon(weft_resolver *r, weft__dns_entry *e) {
  if (!e->pending || e->started || !weft__list_empty(&e->waiters))
    return;
  weft__list_remove(&e->line);
  weft__dns_table_remove(&r->table, e);
  weft__dns_entry_free(e);
}

int weft_resolve(const char *host, const weft_resolve_opts *opts,
                 weft_addr *out, size_t max, size_t *n) {
  if (n != NULL)
    *n = 0;
  WEFT__NEED_TASK(t);
  weft_resolve_opts o;
  copy_opts(&o, opts);
  if (host == NULL || host[0] == '\0' || out == NULL || max == 0 || n == NULL ||
      o.port < 0 || o.port > 65535 ||
      (o.family != AF_UNSPEC && o.family != AF_INET && o.family != AF_INET6))
    return WEFT_EINVAL;

  /* Numeric addresses never reach the resolver. */
  weft_addr a;
  if (weft_addr_ip(&a, host, o.port) == 0) {
    if (o.family != AF_UNSPEC && weft_addr_family(&a) != o.family)
      return WEFT_ENOADDR;
    out[0] = a;
    *n = 1;
    return 0;
  }
  if (o.flags & WEFT_RESOLVE_NUMERIC)
    return WEFT_EINVAL;

  size_t len = strlen(host);
  if (len > MAX_NAME)
    return WEFT_EBADNAME;
  char name[MAX_NAME + 1];
  for (size_t i = 0; i < len; i++) {
    char c = host[i];
    name[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
  }
  name[len] = '\0';

  weft_resolver *r;
  int rc = pick(&o, t, &r);
  if (rc != 0)
    return rc;
  r->stats.lookups++;
  bool interleave = !(o.flags & WEFT_RESOLVE_NO_INTERLEAVE);

  if (r->hosts_first || !r->use_dns) {
    weft__dns_ip *ips;
    size_t nips;
    rc = weft__dns_hosts_lookup(r, name, o.family, &ips, &nips);
    if (rc == 0) {
      weft__dns_sort(r, ips, nips);
      *n = copy_out(ips, nips, out, max, o.port, interleave);
      weft__free(ips);
      return 0;
    }
    if (rc != WEFT_ENOHOST || !r->use_dns)
      return rc;
  }

  uint32_t hash = weft__dns_hash(o.family, name, len);
  weft__dns_entry *e =
      weft__dns_table_find(&r->table, o.family, name, len, hash);
  if (e != NULL && !e->pending) {
    if (e->expires > weft_now_ns() && !(o.flags & WEFT_RESOLVE_NO_CACHE)) {
      r->stats.cache_hits++;
      weft__dns_table_touch(&r->table, e);
      if (e->status == 0)
        *n = copy_out(e->ips, e->nips, out, max, o.port, interleave);
      return e->status;
    }
    weft__dns_table_remove(&r->table, e); /* stale, or not wanted */
    weft__dns_entry_free(e);
    e = NULL;
  }
  if (e != NULL) {
    r->stats.coalesced++;
  } else {
    e = weft__dns_entry_new(o.family, name, len, hash);
    if (e == NULL)
      return WEFT_ENOMEM;
    e->r = r;
    weft__dns_table_add(&r->table, e);
    weft__list_push_back(&r->line, &e->line);
  }

  lookup l;
  weft__waiter_init(&l.w, t);
  l.e = e;
  l.out = out;
  l.max = max;
  l.n = 0;
  l.port = o.port;
  l.interleave = interleave;
  weft__list_push_back(&e->waiters, &l.w.link);
  /* May answer at once (/etc/hosts): then l.w.done is already set, and e
   * may be gone. */
  after_ares(r, false);
  rc = 0;
  while (rc == 0 && !l.w.done)
    rc = weft__park("dns lookup", r, 0);
  if (l.w.done) {
    /* An answer that arrived is returned even when a cancellation raced in
     * after it: the next suspension reports that. */
    *n = l.n;
    return l.w.status;
  }
  /* Gave up: e is still pending (settling would have completed us). */
  weft__list_remove(&l.w.link);
  abandon(r, e);
  return rc;
}

/* ---- reverse lookups ---- */

static void nameinfo_cb(void *arg, int status, int timeouts, char *node,
                        char *service) {
  (void)timeouts;
  (void)service;
  reverse *req = arg;
  weft_resolver *r = req->r;
  r->inflight--;
  reverse_waiter *w = req->w;
  if (w != NULL) {
    int rc = r->failing ? WEFT_ENOMEM : map_status(status);
    if (rc == 0 && node == NULL)
      rc = WEFT_ENOHOST;
    if (rc == WEFT_ENOHOST && r->hosts_last && !r->destroying)
      rc = weft__dns_hosts_reverse(r, &req->ip, w->host, w->size);
    else if (rc == 0) {
      size_t len = strlen(node);
      if (len + 1 > w->size)
        rc = WEFT_ERANGE;
      else
        memcpy(w->host, node, len + 1);
    }
    weft__waiter_complete(&w->w, rc);
  }
  weft__free(req);
}

int weft_resolve_reverse(const weft_addr *addr, const weft_resolve_opts *opts,
                         char *host, size_t size) {
  WEFT__NEED_TASK(t);
  weft_resolve_opts o;
  copy_opts(&o, opts);
  int fam = addr ? weft_addr_family(addr) : AF_UNSPEC;
  if ((fam != AF_INET && fam != AF_INET6) || host == NULL || size == 0)
    return WEFT_EINVAL;
  host[0] = '\0';
  weft_resolver *r;
  int rc = pick(&o, t, &r);
  if (rc != 0)
    return rc;
  weft__dns_ip ip;
  memset(&ip, 0, sizeof ip);
  ip.family = (uint8_t)fam;
  if (fam == AF_INET)
    memcpy(ip.addr, &addr->u.in.sin_addr, 4);
  else
    memcpy(ip.addr, &addr->u.in6.sin6_addr, 16);
  if (r->hosts_first || !r->use_dns) {
    rc = weft__dns_hosts_reverse(r, &ip, host, size);
    if (rc != WEFT_ENOHOST || !r->use_dns)
      return rc;
  }
  reverse *req = weft__malloc(sizeof *req);
  if (req == NULL)
    return WEFT_ENOMEM;
  reverse_waiter w;
  weft__waiter_init(&w.w, t);
  w.req = req;
  w.host = host;
  w.size = size;
  req->r = r;
  req->w = &w;
  req->ip = ip;
  r->inflight++;
  r->stats.queries++;
  /* The port is irrelevant: only the host part is looked up. */
  ares_getnameinfo(r->ch, &addr->u.sa, addr->len,
                   ARES_NI_LOOKUPHOST | ARES_NI_NAMEREQD, nameinfo_cb, req);
  after_ares(r, false);
  rc = 0;
  while (rc == 0 && !w.w.done)
    rc = weft__park("dns reverse lookup", r, 0);
  if (w.w.done)
    return w.w.status;
  /* Gave up: the request (still c-ares's) forgets this frame. */
  req->w = NULL;
  host[0] = '\0';
  return rc;
}

/* ---- counters and the cache ---- */

void weft_dns_stats_get(weft_resolver *r, weft_dns_stats *out) {
  memset(out, 0, sizeof *out);
  if (r == NULL && weft__loop() != NULL)
    r = loop_resolver(weft__loop());
  if (r == NULL)
    return;
  *out = r->stats;
  out->inflight = r->inflight;
  size_t queued = 0;
  weft__list *it;
  weft__list_foreach(it, &r->line) queued++;
  out->queued = queued;
  out->cache_entries = r->table.nsettled;
}

void weft_dns_cache_clear(weft_resolver *r) {
  if (r == NULL && weft__loop() != NULL)
    r = loop_resolver(weft__loop());
  if (r == NULL)
    return;
  weft__dns_entry *e;
  while ((e = weft__dns_table_oldest(&r->table)) != NULL) {
    weft__dns_table_remove(&r->table, e);
    weft__dns_entry_free(e);
  }
}
