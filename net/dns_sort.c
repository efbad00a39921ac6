/* weft — RFC 6724 destination address selection: the order in which to try
 * the addresses of a name.
 *
 * The rules need, for each destination, the source address the kernel
 * would use to reach it; as glibc and c-ares do, it is learnt by connecting
 * a UDP socket (no packet is sent) and reading the socket's own address.
 * Unlike them, the resolver keeps one such socket per family and reconnects
 * it, two system calls a destination instead of four; and an answer with a
 * single address is not sorted at all.
 *
 * Implemented: rules 1 (avoid unusable destinations), 2 (matching scope),
 * 5 (matching label), 6 (higher precedence), 7 (native transport), 8
 * (smaller scope), 9 (longest matching prefix, IPv6 only, as c-ares and most
 * stub resolvers do, since applying it to IPv4 defeats DNS round robin) and
 * 10 (otherwise keep the order). Rules 3 and 4 need interface flags nobody
 * exposes cheaply, and are skipped as by c-ares. The policy table is RFC
 * 6724's default.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns_int.h"

typedef struct dest {
  uint8_t dst[16]; /* IPv4 as ::ffff:a.b.c.d */
  uint8_t src[16];
  bool usable;
  int dst_scope, src_scope, dst_label, src_label, dst_prec;
  bool v6;
  size_t order;
  weft__dns_ip ip;
} dest;

static void as_v6(const weft__dns_ip *ip, uint8_t out[16]) {
  if (ip->family == AF_INET6) {
    memcpy(out, ip->addr, 16);
  } else {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, ip->addr, 4);
  }
}

static bool prefix(const uint8_t a[16], const uint8_t *p, int bits) {
  int bytes = bits / 8, rest = bits % 8;
  if (memcmp(a, p, (size_t)bytes) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a[bytes] & mask) == (p[bytes] & mask);
}

/* RFC 6724 section 2.1's default policy table, longest prefix first. */
static void policy(const uint8_t a[16], int *prec, int *label) {
  static const uint8_t loop[16] = {[15] = 1};
  static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff};
  static const uint8_t zero[16] = {0};
  static const uint8_t teredo[16] = {0x20, 0x01};
  static const uint8_t six2four[16] = {0x20, 0x02};
  static const uint8_t sixbone[16] = {0x3f, 0xfe};
  static const uint8_t sitelocal[16] = {0xfe, 0xc0};
  static const uint8_t ula[16] = {0xfc};
  static const struct {
    const uint8_t *p;
    int bits, prec, label;
  } table[] = {
      {loop, 128, 50, 0},     {mapped, 96, 35, 4},   {zero, 96, 1, 3},
      {teredo, 32, 5, 5},     {six2four, 16, 30, 2}, {sixbone, 16, 1, 12},
      {sitelocal, 10, 1, 11}, {ula, 7, 3, 13},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (prefix(a, table[i].p, table[i].bits)) {
      *prec = table[i].prec;
      *label = table[i].label;
      return;
    }
  *prec = 40; /* ::/0 */
  *label = 1;
}

/* Scope values of RFC 4291 / RFC 6724 section 3.2 (IPv4 mapped in). */
static int scope(const uint8_t a[16]) {
  static const uint8_t loop[16] = {[15] = 1};
  static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff};
  if (a[0] == 0xff)
    return a[1] & 0x0f; /* multicast */
  if (memcmp(a, loop, 16) == 0)
    return 2;
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
    return 2; /* fe80::/10 */
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
    return 5; /* fec0::/10 */
  if (prefix(a, mapped, 96)) {
    if (a[12] == 127 || (a[12] == 169 && a[13] == 254))
      return 2;
    return 14;
  }
  return 14;
}

/* The source address for ip, through the family's probe socket. */
static bool probe(weft_resolver *r, const weft__dns_ip *ip, uint8_t src[16]) {
  int k = ip->family == AF_INET6;
  if (r->probe_fd[k] < 0) {
    r->probe_fd[k] =
        socket(k ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    if (r->probe_fd[k] < 0)
      return false; /* no such family here: unusable */
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (k) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(9);
    memcpy(&s6->sin6_addr, ip->addr, 16);
    s6->sin6_scope_id = ip->scope;
    len = sizeof *s6;
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(9);
    memcpy(&s4->sin_addr, ip->addr, 4);
    len = sizeof *s4;
  }
  if (connect(r->probe_fd[k], (struct sockaddr *)&ss, len) != 0)
    return false;
  len = sizeof ss;
  if (getsockname(r->probe_fd[k], (struct sockaddr *)&ss, &len) != 0)
    return false;
  weft__dns_ip s;
  memset(&s, 0, sizeof s);
  s.family = (uint8_t)ss.ss_family;
  if (k)
    memcpy(s.addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
  else
    memcpy(s.addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
  as_v6(&s, src);
  return true;
}

static int common_prefix(const uint8_t a[16], const uint8_t b[16]) {
  int n = 0;
  for (int i = 0; i < 16; i++) {
    uint8_t x = a[i] ^ b[i];
    if (x == 0) {
      n += 8;
      continue;
    }
    while (!(x & 0x80)) {
      n++;
      x = (uint8_t)(x << 1);
    }
    break;
  }
  return n;
}

static int compare(const void *pa, const void *pb) {
  const dest *a = pa, *b = pb;
  /* Rule 1: avoid unusable destinations. */
  if (a->usable != b->usable)
    return a->usable ? -1 : 1;
  if (a->usable) {
    /* Rule 2: prefer matching scope. */
    bool ma = a->dst_scope == a->src_scope, mb = b->dst_scope == b->src_scope;
    if (ma != mb)
      return ma ? -1 : 1;
    /* Rule 5: prefer matching label. */
    ma = a->dst_label == a->src_label;
    mb = b->dst_label == b->src_label;
    if (ma != mb)
      return ma ? -1 : 1;
  }
  /* Rule 6: prefer higher precedence. */
  if (a->dst_prec != b->dst_prec)
    return a->dst_prec > b->dst_prec ? -1 : 1;
  /* Rule 7: prefer native transport (not reached through 6to4/Teredo). */
  if (a->usable && b->usable) {
    bool ta = a->src_label == 2 || a->src_label == 5;
    bool tb = b->src_label == 2 || b->src_label == 5;
    if (ta != tb)
      return ta ? 1 : -1;
  }
  /* Rule 8: prefer smaller scope. */
  if (a->dst_scope != b->dst_scope)
    return a->dst_scope < b->dst_scope ? -1 : 1;
  /* Rule 9: longest matching prefix (IPv6; up to a /64 subnet). */
  if (a->usable && b->usable && a->v6 && b->v6) {
    int la = common_prefix(a->dst, a->src), lb = common_prefix(b->dst, b->src);
    la = la > 64 ? 64 : la;
    lb = lb > 64 ? 64 : lb;
    if (la != lb)
      return la > lb ? -1 : 1;
  }
  /* Rule 10: leave the order unchanged. */
  return a->order < b->order ? -1 : a->order > b->order;
}

void weft__dns_sort(weft_resolver *r, weft__dns_ip *ips, size_t n) {
  if (n < 2)
    return;
  dest small[8];
  dest *d = n <= 8 ? small : weft__malloc(n * sizeof *d);
  if (d == NULL)
    return; /* out of memory: keep the order the answer came in */
  for (size_t i = 0; i < n; i++) {
    dest *x = &d[i];
    x->ip = ips[i];
    x->order = i;
    x->v6 = ips[i].family == AF_INET6;
    as_v6(&ips[i], x->dst);
    x->dst_scope = scope(x->dst);
    policy(x->dst, &x->dst_prec, &x->dst_label);
    x->usable = probe(r, &ips[i], x->src);
    if (x->usable) {
      int prec;
      x->src_scope = scope(x->src);
      policy(x->src, &prec, &x->src_label);
    } else {
      x->src_scope = x->src_label = -1;
    }
  }
  qsort(d, n, sizeof *d, compare);
  for (size_t i = 0; i < n; i++)
    ips[i] = d[i].ip;
  if (d != small)
    weft__free(d);
}

void weft__dns_sort_fini(weft_resolver *r) {
  for (int k = 0; k < 2; k++)
    if (r->probe_fd[k] >= 0) {
      close(r->probe_fd[k]);
      r->probe_fd[k] = -1;
    }
}
