/* weft — the DNS resolver's table: a chained hash table of entries keyed by
 * (family, lower-cased name), and an LRU list of the settled ones.
 *
 * Pending entries (lookups in flight) live in the same table as kept answers
 * so that a lookup finds either with one probe; only settled entries are on
 * the LRU list and count against the cache bound, so eviction never drops a
 * lookup somebody waits on. The bucket array doubles when the table holds
 * more entries than buckets, and never shrinks (its size follows the peak of
 * lookups in flight plus the cache bound). */
#include <string.h>

#include "dns_cache.h"

#define BUCKETS_MIN 64

uint32_t weft__dns_hash(int family, const char *name, size_t len) {
  /* FNV-1a: names are short, and the table only needs a fair spread. */
  uint32_t h = 2166136261u ^ (uint32_t)family;
  for (size_t i = 0; i < len; i++) {
    h ^= (uint8_t)name[i];
    h *= 16777619u;
  }
  return h;
}

int weft__dns_table_init(weft__dns_table *t) {
  memset(t, 0, sizeof *t);
  weft__list_init(&t->lru);
  t->buckets = weft__calloc(BUCKETS_MIN, sizeof *t->buckets);
  if (t->buckets == NULL)
    return WEFT_ENOMEM;
  t->nbuckets = BUCKETS_MIN;
  return 0;
}

void weft__dns_table_fini(weft__dns_table *t) {
  for (size_t i = 0; i < t->nbuckets; i++) {
    weft__dns_entry *e = t->buckets[i];
    while (e != NULL) {
      weft__dns_entry *next = e->hnext;
      weft__dns_entry_free(e);
      e = next;
    }
  }
  weft__free(t->buckets);
  memset(t, 0, sizeof *t);
}

weft__dns_entry *weft__dns_entry_new(int family, const char *name, size_t len,
                                     uint32_t hash) {
  weft__dns_entry *e = weft__calloc(1, sizeof *e + len + 1);
  if (e == NULL)
    return NULL;
  weft__list_init(&e->lru);
  weft__list_init(&e->waiters);
  weft__list_init(&e->line);
  memcpy(e->name, name, len);
  e->name[len] = '\0';
  e->family = (uint8_t)family;
  e->hash = hash;
  e->pending = true;
  return e;
}

void weft__dns_entry_free(weft__dns_entry *e) {
  weft__free(e->ips);
  weft__free(e);
}

weft__dns_entry *weft__dns_table_find(weft__dns_table *t, int family,
                                      const char *name, size_t len,
                                      uint32_t hash) {
  for (weft__dns_entry *e = t->buckets[hash & (t->nbuckets - 1)]; e != NULL;
       e = e->hnext)
    if (e->hash == hash && e->family == family &&
        strncmp(e->name, name, len) == 0 && e->name[len] == '\0')
      return e;
  return NULL;
}

static void grow(weft__dns_table *t) {
  size_t n = t->nbuckets * 2;
  weft__dns_entry **b = weft__calloc(n, sizeof *b);
  if (b == NULL)
    return; /* longer chains, still correct */
  for (size_t i = 0; i < t->nbuckets; i++) {
    weft__dns_entry *e = t->buckets[i];
    while (e != NULL) {
      weft__dns_entry *next = e->hnext;
      size_t k = e->hash & (n - 1);
      e->hnext = b[k];
      b[k] = e;
      e = next;
    }
  }
  weft__free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
}

void weft__dns_table_add(weft__dns_table *t, weft__dns_entry *e) {
  if (t->count >= t->nbuckets)
    grow(t);
  size_t k = e->hash & (t->nbuckets - 1);
  e->hnext = t->buckets[k];
  t->buckets[k] = e;
  t->count++;
}

void weft__dns_table_remove(weft__dns_table *t, weft__dns_entry *e) {
  weft__dns_entry **p = &t->buckets[e->hash & (t->nbuckets - 1)];
  while (*p != e)
    p = &(*p)->hnext;
  *p = e->hnext;
  e->hnext = NULL;
  t->count--;
  if (!e->pending) {
    weft__list_remove(&e->lru);
    t->nsettled--;
  }
}

void weft__dns_table_keep(weft__dns_table *t, weft__dns_entry *e, int status,
                          weft__dns_ip *ips, size_t nips, uint64_t expires) {
  e->pending = false;
  e->started = false;
  e->status = status;
  e->ips = ips;
  e->nips = nips;
  e->expires = expires;
  weft__list_push_front(&t->lru, &e->lru);
  t->nsettled++;
}

void weft__dns_table_touch(weft__dns_table *t, weft__dns_entry *e) {
  weft__list_remove(&e->lru);
  weft__list_push_front(&t->lru, &e->lru);
}

weft__dns_entry *weft__dns_table_oldest(weft__dns_table *t) {
  if (weft__list_empty(&t->lru))
    return NULL;
  return weft__container_of(t->lru.prev, weft__dns_entry, lru);
}
