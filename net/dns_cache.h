/* weft — the DNS resolver's table: one entry per (family, name), either an
 * answer kept for its TTL or a lookup in flight that later lookups of the
 * same name join. Internal to net/dns*.c. */
#ifndef WEFT_DNS_CACHE_H
#define WEFT_DNS_CACHE_H

#include "internal.h"

/* An address without port, as kept in the cache. */
typedef struct weft__dns_ip {
  uint8_t family; /* AF_INET or AF_INET6 */
  uint32_t scope; /* IPv6 scope id */
  uint8_t addr[16];
} weft__dns_ip;

typedef struct weft__dns_entry {
  struct weft__dns_entry *hnext; /* hash chain */
  weft__list lru;     /* settled: on the table's LRU list, newest first */
  weft__list waiters; /* pending: the lookups waiting for the answer */
  weft__list line;    /* pending, not yet sent: the resolver's line */
  struct weft_resolver *r;
  uint64_t expires; /* settled: loop clock (ns) when it goes stale */
  weft__dns_ip *ips;
  size_t nips;
  int status; /* settled: 0 or the WEFT_E* code kept (negative answer) */
  uint32_t hash;
  uint8_t family; /* AF_UNSPEC, AF_INET, AF_INET6 */
  bool pending;
  bool started; /* pending: handed to c-ares */
  char name[];  /* lower-cased */
} weft__dns_entry;

typedef struct weft__dns_table {
  weft__dns_entry **buckets;
  size_t nbuckets; /* a power of two */
  size_t count;    /* entries in the table, pending or settled */
  weft__list lru;  /* settled entries */
  size_t nsettled;
} weft__dns_table;

uint32_t weft__dns_hash(int family, const char *name, size_t len);

/* Returns 0 or WEFT_ENOMEM. */
int weft__dns_table_init(weft__dns_table *t);
/* Frees every entry still in the table (their waiters must be gone). */
void weft__dns_table_fini(weft__dns_table *t);

/* A new pending entry for `name` (already lower-cased, `len` bytes), not in
 * the table yet. NULL when out of memory. */
weft__dns_entry *weft__dns_entry_new(int family, const char *name, size_t len,
                                     uint32_t hash);
void weft__dns_entry_free(weft__dns_entry *e);

weft__dns_entry *weft__dns_table_find(weft__dns_table *t, int family,
                                      const char *name, size_t len,
                                      uint32_t hash);
/* Adds e to the table. Growing the buckets may fail; the table then just
 * keeps longer chains, so adding never fails. */
void weft__dns_table_add(weft__dns_table *t, weft__dns_entry *e);
/* Takes e out of the table (and off the LRU list when settled). */
void weft__dns_table_remove(weft__dns_table *t, weft__dns_entry *e);

/* Turns pending e into a kept answer: `ips` (owned by e from now) or the
 * negative `status`, good until `expires`. It becomes the newest entry. */
void weft__dns_table_keep(weft__dns_table *t, weft__dns_entry *e, int status,
                          weft__dns_ip *ips, size_t nips, uint64_t expires);
/* Marks a settled entry as just used. */
void weft__dns_table_touch(weft__dns_table *t, weft__dns_entry *e);
/* The least recently used settled entry, or NULL. */
weft__dns_entry *weft__dns_table_oldest(weft__dns_table *t);

#endif
