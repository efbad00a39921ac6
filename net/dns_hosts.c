/* weft — /etc/hosts, parsed once and kept while the file is unchanged.
 *
 * c-ares 1.18 opens and parses /etc/hosts for every lookup (five system
 * calls before any DNS). Here the file is parsed into a sorted array of
 * (name, address) pairs, and looked at again (one stat) at most once a
 * second: an edit shows within a second, as with c-ares 1.22's own cache.
 *
 * The matching follows c-ares and glibc: a name matches a line's canonical
 * name or any alias, case-insensitively; all matching addresses of the asked
 * family come back, in file order; a name found only with addresses of the
 * other family is not found here, and DNS is asked.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dns_int.h"

#define HOSTS_PATH "/etc/hosts"
#define RECHECK_NS 1000000000u

typedef struct host_entry {
  char *name; /* lower-cased; points into names */
  weft__dns_ip ip;
  unsigned line; /* file order, to keep it among equal names */
} host_entry;

struct weft__dns_hosts {
  uint64_t checked; /* loop clock of the last stat */
  bool loaded;
  struct timespec mtime;
  off_t size;
  ino_t ino;
  host_entry *e;
  size_t n;
  char *names; /* every name, NUL-separated */
};

static int by_name(const void *a, const void *b) {
  const host_entry *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c != 0)
    return c;
  return x->line < y->line ? -1 : x->line > y->line;
}

static void clear(weft__dns_hosts *h) {
  weft__free(h->e);
  weft__free(h->names);
  h->e = NULL;
  h->names = NULL;
  h->n = 0;
}

/* Parses the file into h. A file that cannot be read means no entries. */
static int parse(weft__dns_hosts *h) {
  clear(h);
  FILE *f = fopen(HOSTS_PATH, "re");
  if (f == NULL)
    return 0;
  size_t cap = 0, ncap = 0, nlen = 0, n = 0;
  host_entry *e = NULL;
  char *names = NULL;
  char line[1024];
  unsigned lineno = 0;
  int rc = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash != NULL)
      *hash = '\0';
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r\n", &save);
    if (tok == NULL)
      continue;
    weft__dns_ip ip;
    memset(&ip, 0, sizeof ip);
    weft_addr a;
    if (weft_addr_ip(&a, tok, 0) != 0)
      continue;
    if (a.u.sa.sa_family == AF_INET) {
      ip.family = AF_INET;
      memcpy(ip.addr, &a.u.in.sin_addr, 4);
    } else {
      ip.family = AF_INET6;
      memcpy(ip.addr, &a.u.in6.sin6_addr, 16);
      ip.scope = a.u.in6.sin6_scope_id;
    }
    while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
      size_t len = strlen(tok);
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        host_entry *ne = weft__realloc(e, cap * sizeof *e);
        if (ne == NULL) {
          rc = WEFT_ENOMEM;
          goto out;
        }
        e = ne;
      }
      if (nlen + len + 1 > ncap) {
        ncap = (nlen + len + 1) * 2;
        char *nn = weft__realloc(names, ncap);
        if (nn == NULL) {
          rc = WEFT_ENOMEM;
          goto out;
        }
        names = nn;
      }
      for (size_t i = 0; i <= len; i++) {
        char c = tok[i];
        names[nlen + i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
      }
      /* Offsets for now: names may still move. */
      e[n].name = (char *)(uintptr_t)nlen;
      e[n].ip = ip;
      e[n].line = lineno;
      n++;
      nlen += len + 1;
    }
  }
out:
  fclose(f);
  if (rc != 0) {
    weft__free(e);
    weft__free(names);
    return rc;
  }
  for (size_t i = 0; i < n; i++)
    e[i].name = names + (uintptr_t)e[i].name;
  qsort(e, n, sizeof *e, by_name);
  h->e = e;
  h->n = n;
  h->names = names;
  return 0;
}

/* Rereads the file if it changed since it was read (looked at once a
 * second at most). */
static int refresh(weft_resolver *r) {
  if (r->hosts == NULL) {
    r->hosts = weft__calloc(1, sizeof *r->hosts);
    if (r->hosts == NULL)
      return WEFT_ENOMEM;
  }
  weft__dns_hosts *h = r->hosts;
  uint64_t now = weft_now_ns();
  if (h->loaded && now - h->checked < RECHECK_NS)
    return 0;
  h->checked = now;
  struct stat st;
  if (stat(HOSTS_PATH, &st) != 0)
    memset(&st, 0, sizeof st);
  if (h->loaded && st.st_ino == h->ino && st.st_size == h->size &&
      st.st_mtim.tv_sec == h->mtime.tv_sec &&
      st.st_mtim.tv_nsec == h->mtime.tv_nsec)
    return 0;
  int rc = parse(h);
  if (rc != 0) {
    h->loaded = false; /* try again next time */
    return rc;
  }
  h->loaded = true;
  h->ino = st.st_ino;
  h->size = st.st_size;
  h->mtime = st.st_mtim;
  return 0;
}

int weft__dns_hosts_lookup(weft_resolver *r, const char *name, int family,
                           weft__dns_ip **ips, size_t *n) {
  *ips = NULL;
  *n = 0;
  int rc = refresh(r);
  if (rc != 0)
    return rc;
  weft__dns_hosts *h = r->hosts;
  /* The first entry for the name, by binary search. */
  size_t lo = 0, hi = h->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(h->e[mid].name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  size_t count = 0;
  for (size_t i = lo; i < h->n && strcmp(h->e[i].name, name) == 0; i++)
    count += family == AF_UNSPEC || h->e[i].ip.family == family;
  if (count == 0)
    return WEFT_ENOHOST;
  weft__dns_ip *out = weft__malloc(count * sizeof *out);
  if (out == NULL)
    return WEFT_ENOMEM;
  size_t k = 0;
  for (size_t i = lo; i < h->n && strcmp(h->e[i].name, name) == 0; i++) {
    if (family != AF_UNSPEC && h->e[i].ip.family != family)
      continue;
    /* The same address on two lines (or twice on one) counts once. */
    bool dup = false;
    for (size_t j = 0; j < k && !dup; j++)
      dup = out[j].family == h->e[i].ip.family &&
            memcmp(out[j].addr, h->e[i].ip.addr, 16) == 0;
    if (!dup)
      out[k++] = h->e[i].ip;
  }
  *ips = out;
  *n = k;
  return 0;
}

int weft__dns_hosts_reverse(weft_resolver *r, const weft__dns_ip *ip,
                            char *host, size_t size) {
  int rc = refresh(r);
  if (rc != 0)
    return rc;
  weft__dns_hosts *h = r->hosts;
  /* The entries are sorted by name: take the one from the earliest line,
   * which holds the canonical name. */
  const host_entry *best = NULL;
  for (size_t i = 0; i < h->n; i++) {
    const host_entry *e = &h->e[i];
    if (e->ip.family == ip->family &&
        memcmp(e->ip.addr, ip->addr, ip->family == AF_INET ? 4 : 16) == 0 &&
        (best == NULL || e->line < best->line ||
         (e->line == best->line && e->name < best->name)))
      best = e;
  }
  if (best == NULL)
    return WEFT_ENOHOST;
  size_t len = strlen(best->name);
  if (len + 1 > size)
    return WEFT_ERANGE;
  memcpy(host, best->name, len + 1);
  return 0;
}

void weft__dns_hosts_free(weft_resolver *r) {
  if (r->hosts == NULL)
    return;
  clear(r->hosts);
  weft__free(r->hosts);
  r->hosts = NULL;
}
