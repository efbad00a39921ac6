/* weft — DNS: host names to addresses and addresses back to names
 * (asyncio's loop.getaddrinfo / getnameinfo, aiodns), on c-ares inside the
 * loop: no threads, no polling.
 *
 * Most programs call weft_resolve() and nothing else: the loop makes its
 * resolver on first use, configured from /etc/resolv.conf (servers, search
 * domains, ndots, timeout, attempts) and answering from /etc/hosts first.
 * Numeric addresses ("127.0.0.1", "::1") never reach DNS. Answers are kept
 * in a small cache that honours their TTLs (docs/guide/dns.md).
 *
 * A program that wants other servers, timeouts or cache settings either
 * reconfigures the loop's resolver (weft_dns_configure) or makes resolvers
 * of its own (weft_resolver_new) and names one in each lookup's options.
 *
 * Every resolver belongs to the loop of the thread that made it; lookups run
 * in tasks of that loop. Lookups of the same name and family that overlap in
 * time share one query.
 */
#ifndef WEFT_DNS_H
#define WEFT_DNS_H

#include <weft/addr.h>
#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_resolver weft_resolver;

/* Longest host name weft_resolve_reverse() returns, with its NUL. */
#define WEFT_DNS_NAMELEN 256

/* Resolver settings. Zero fields take the default; NULL options mean all
 * defaults. `size` must be sizeof(weft_resolver_opts) so the struct can
 * grow. */
typedef struct weft_resolver_opts {
  size_t size;
  /* DNS servers, tried in order (port 0 means 53). Default: the
   * nameservers of resolv.conf. */
  const weft_addr *servers;
  size_t nservers;
  /* Seconds to wait for the first try of a query at each server; each
   * further round over the servers waits twice as long as the one before
   * (c-ares). Default: resolv.conf's "options timeout:", else 5. */
  double timeout;
  /* Rounds over the servers before a lookup fails with WEFT_EDNSTIMEOUT.
   * Default: resolv.conf's "options attempts:", else 2 (glibc's). */
  int tries;
  /* Search domains, a NULL-terminated list (an empty list, {NULL}, means
   * none). Default (NULL): resolv.conf's "search" / "domain". */
  const char *const *domains;
  /* A name with fewer dots than this is tried with the search domains
   * first (1..15). Default: resolv.conf's "options ndots:", else 1. */
  int ndots;
  /* Reads this file instead of /etc/resolv.conf. */
  const char *resolv_conf;
  /* Queries over TCP only (default: UDP, TCP when an answer is truncated). */
  bool use_tcp;
  /* Spread queries over the servers instead of trying them in order. */
  bool rotate;

  /* The cache: entries at most (default 512); the least recently used goes
   * first when full. */
  size_t cache_size;
  /* No cache at all (lookups of one name that overlap in time still share
   * one query). */
  bool no_cache;
  /* Answers are kept for their TTL, at most this many seconds (default
   * 3600). An answer with TTL 0, like one from /etc/hosts, is not kept. */
  double cache_max_ttl;
  /* How long "no such host" and "no address of this family" answers are
   * kept, in seconds (default 10; c-ares does not pass on the zone's SOA
   * minimum). Server failures, refusals and timeouts are never kept. */
  double negative_ttl;

  /* Queries sent at once; more lookups wait in line, in order, for a slot.
   * Keeps a burst from overflowing the socket buffers and the server.
   * Default 128. */
  size_t max_inflight;
} weft_resolver_opts;

/* Makes a resolver on the calling thread's loop. Reads resolv.conf (and
 * nsswitch.conf for the order of /etc/hosts and DNS) now, unless `opts`
 * sets everything it would give. Never suspends; callable outside tasks on
 * the loop's thread. Returns 0, WEFT_ENOMEM, WEFT_EINVAL (a bad option: a
 * server that is not IPv4/IPv6, negative times, ndots outside 1..15),
 * WEFT_EIO (resolv.conf unreadable), WEFT_ENOLOOP. */
WEFT_EXTERN WEFT_NODISCARD int
weft_resolver_new(weft_resolver **out, const weft_resolver_opts *opts);

/* Frees a resolver made by weft_resolver_new (NULL ok). Lookups still waiting
 * on it wake with WEFT_ECANCELED; queries in flight are abandoned and their
 * sockets closed. Loop thread; never suspends. */
WEFT_EXTERN void weft_resolver_free(weft_resolver *r);

/* Replaces the loop's own resolver (the one lookups use when their options
 * name none) with one made from `opts` (NULL: defaults, rereading
 * resolv.conf). Lookups waiting on the old one wake with WEFT_ECANCELED.
 * The loop frees its resolver when the loop is freed. Never suspends;
 * callable outside tasks on the loop's thread. Returns as
 * weft_resolver_new(). */
WEFT_EXTERN WEFT_NODISCARD int
weft_dns_configure(const weft_resolver_opts *opts);

/* Flags of weft_resolve_opts. */
enum {
  /* Only numeric addresses: a name fails with WEFT_EINVAL, no lookup is
   * made (getaddrinfo's AI_NUMERICHOST). */
  WEFT_RESOLVE_NUMERIC = 1 << 0,
  /* Do not answer from the cache (the answer still refreshes it). */
  WEFT_RESOLVE_NO_CACHE = 1 << 1,
  /* Keep plain RFC 6724 order: do not interleave the families. */
  WEFT_RESOLVE_NO_INTERLEAVE = 1 << 2,
};

/* Options of one lookup. Zero fields take the default; NULL options mean
 * all defaults. `size` must be sizeof(weft_resolve_opts). */
typedef struct weft_resolve_opts {
  size_t size;
  /* AF_UNSPEC (0, the default): IPv6 and IPv4 addresses; AF_INET or
   * AF_INET6: that family only. */
  int family;
  /* Port stored in every address (0..65535). */
  int port;
  /* WEFT_RESOLVE_* flags. */
  unsigned flags;
  /* The resolver to use. Default: the loop's own, made on first use. */
  weft_resolver *resolver;
} weft_resolve_opts;

/*
 * Resolves `host` (a name, or a numeric IPv4/IPv6 address) to addresses
 * (asyncio getaddrinfo). Stores up to `max` of them in out[0..max) and their
 * count in *n, in the order to try them: sorted by RFC 6724 (usable
 * destinations, matching scope, IPv6 before IPv4 when both work, ...), then
 * interleaved by family as RFC 8305 (Happy Eyeballs) asks: first address of
 * the preferred family, then one of the other, and so on. So with the
 * defaults one call gives what a Happy Eyeballs connect needs. Each address
 * carries opts->port.
 *
 * Numeric addresses are parsed without DNS and without suspending. Names
 * are looked up in /etc/hosts and then DNS (the order nsswitch.conf gives),
 * trying the search domains as resolv.conf says; answers are cached for
 * their TTL. May suspend; honours cancellation and deadlines. A lookup that
 * gives up (cancelled, timed out) leaves nothing behind that could touch
 * `out` later: the query goes on alone and only fills the cache.
 *
 * Returns 0 (*n >= 1), or:
 *   WEFT_ENOHOST     no such host name (NXDOMAIN, not in /etc/hosts)
 *   WEFT_ENOADDR     the name exists but has no address of that family
 *   WEFT_ESERVFAIL   the server failed (SERVFAIL)
 *   WEFT_EREFUSED    the server refused the query (REFUSED)
 *   WEFT_EDNSTIMEOUT no server answered within its timeout and tries
 *   WEFT_ECONNREFUSED the server's port is closed (ICMP unreachable)
 *   WEFT_EBADRESP    the reply was malformed
 *   WEFT_EFORMERR, WEFT_ENOTIMP  the server rejected the query
 *   WEFT_EBADNAME    `host` is not a valid name (e.g. too long)
 *   WEFT_EINVAL      NULL/empty host, out NULL, max 0, bad family or port,
 *                    a name with WEFT_RESOLVE_NUMERIC
 *   WEFT_ECANCELED, WEFT_ETIMEDOUT  the caller was cancelled or its
 *                    deadline passed; WEFT_ECANCELED also when the resolver
 *                    is freed or replaced meanwhile
 *   WEFT_ENOMEM, WEFT_EIO (resolv.conf unreadable when the loop's resolver
 *                    is made), WEFT_EWRONGLOOP, WEFT_ENOTASK
 */
WEFT_EXTERN WEFT_NODISCARD int weft_resolve(const char *host,
                                            const weft_resolve_opts *opts,
                                            weft_addr *out, size_t max,
                                            size_t *n);

/*
 * The name of an IPv4/IPv6 address (asyncio getnameinfo with NI_NAMEREQD):
 * /etc/hosts first, then a PTR query. Stores it with its NUL in
 * host[0..size) (WEFT_DNS_NAMELEN is always enough). Of `opts` only
 * `resolver` matters. Reverse answers are not cached. May suspend; honours
 * cancellation and deadlines as weft_resolve() does. Returns 0, WEFT_ENOHOST
 * (no name for it), WEFT_ERANGE (`size` too small), WEFT_EINVAL (not an
 * IPv4/IPv6 address), and the DNS and task errors of weft_resolve().
 */
WEFT_EXTERN WEFT_NODISCARD int
weft_resolve_reverse(const weft_addr *addr, const weft_resolve_opts *opts,
                     char *host, size_t size);

/* A resolver's counters (weft_dns_stats). */
typedef struct weft_dns_stats {
  uint64_t lookups;       /* weft_resolve calls that reached the resolver */
  uint64_t cache_hits;    /* answered from the cache, positive or negative */
  uint64_t coalesced;     /* joined a query already in flight */
  uint64_t queries;       /* lookups handed to c-ares (forward and reverse) */
  uint64_t evictions;     /* cache entries dropped to stay within the bound */
  uint64_t inflight;      /* queries c-ares works on now */
  uint64_t queued;        /* lookups waiting for a free query slot */
  uint64_t cache_entries; /* answers kept now */
} weft_dns_stats;

/* Fills *out with r's counters; r NULL means the loop's own resolver (all
 * zero when the loop has not made one). Never suspends. */
WEFT_EXTERN void weft_dns_stats_get(weft_resolver *r, weft_dns_stats *out);

/* Drops every cached answer of r (NULL: the loop's own). Never suspends. */
WEFT_EXTERN void weft_dns_cache_clear(weft_resolver *r);

#ifdef __cplusplus
}
#endif

#endif
