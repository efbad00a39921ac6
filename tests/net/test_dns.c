/* weft tests — net-dns: resolving against a DNS server the test runs on
 * 127.0.0.1 (apps/resolve/responder.h, a thread answering by name rules:
 * *.nx.test is NXDOMAIN, *.silent.test never answers, and so on).
 *
 * Every resolver here is told that server explicitly, with no search
 * domains unless a test sets some, so no query ever leaves the machine.
 * Timeouts are a tenth of a second, so the failure paths are quick. Each
 * test ends with its loop clean (t_run checks), and the suite also runs
 * under ASan (build-dns-asan), which catches a late write into a frame that
 * gave up waiting.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <math.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/dns.h>
#include <weft/udp.h>

#include "../../apps/resolve/responder.h"
#include "dns_int.h"          /* weft__dns_sort, for the RFC 6724 rules */
#include "test_stream_util.h" /* busy_start: a loop kept busy by streams */

static dnsr *srv;
static weft_addr srv_addr;
static const char *const no_domains[] = {NULL};

static void srv_up(void) {
  int rc = dnsr_start(&srv, "127.0.0.1", 0);
  if (rc != 0) { /* nothing here can work without it */
    fprintf(stderr, "cannot start the DNS server: %s\n", strerror(-rc));
    exit(1);
  }
  T_OK(weft_addr_ip(&srv_addr, "127.0.0.1", srv->port));
}

static void srv_down(void) {
  dnsr_stop(srv);
  srv = NULL;
}

/* Settings of every test resolver: our server only, quick timeouts. */
static weft_resolver_opts base_opts(void) {
  weft_resolver_opts o = {.size = sizeof o,
                          .servers = &srv_addr,
                          .nservers = 1,
                          .timeout = 0.1,
                          .tries = 1,
                          .domains = no_domains};
  return o;
}

static weft_resolver *make_resolver(const weft_resolver_opts *o) {
  weft_resolver *r = NULL;
  T_OK(weft_resolver_new(&r, o));
  return r;
}

static int resolve_in(weft_resolver *r, const char *host, int family,
                      weft_addr *out, size_t max, size_t *n) {
  weft_resolve_opts o = {.size = sizeof o, .family = family, .resolver = r};
  return weft_resolve(host, &o, out, max, n);
}

/* The addresses the server gives `name` (its hash, see responder.h). */
static void want_v4(const char *name, unsigned i, struct in_addr *a) {
  uint32_t h = dnsr__hash(name);
  uint8_t b[4] = {10, (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)(h + i)};
  memcpy(a, b, 4);
}

static void want_v6(const char *name, unsigned i, struct in6_addr *a) {
  uint32_t h = dnsr__hash(name);
  memset(a, 0, sizeof *a);
  a->s6_addr[0] = 0xfd;
  a->s6_addr[10] = (uint8_t)(h >> 24);
  a->s6_addr[11] = (uint8_t)(h >> 16);
  a->s6_addr[12] = (uint8_t)(h >> 8);
  a->s6_addr[13] = (uint8_t)h;
  a->s6_addr[15] = (uint8_t)(1 + i);
}

static bool is_v4(const weft_addr *a, const char *name, unsigned i) {
  struct in_addr w;
  want_v4(name, i, &w);
  return weft_addr_family(a) == AF_INET &&
         memcmp(&a->u.in.sin_addr, &w, 4) == 0;
}

static bool is_v6(const weft_addr *a, const char *name, unsigned i) {
  struct in6_addr w;
  want_v6(name, i, &w);
  return weft_addr_family(a) == AF_INET6 &&
         memcmp(&a->u.in6.sin6_addr, &w, 16) == 0;
}

/* ---- numeric addresses and /etc/hosts ---- */

static int numeric_body(void *arg) {
  (void)arg;
  weft_resolver *r = make_resolver(&(weft_resolver_opts){
      .size = sizeof(weft_resolver_opts), .servers = &srv_addr, .nservers = 1});
  weft_addr a[4];
  size_t n;
  char buf[WEFT_ADDR_STRLEN];
  weft_resolve_opts o = {.size = sizeof o, .port = 8080, .resolver = r};
  T_OK(weft_resolve("127.0.0.1", &o, a, 4, &n));
  T_EQ(n, 1);
  T_STREQ(weft_addr_format(&a[0], buf, sizeof buf), "127.0.0.1:8080");
  T_OK(weft_resolve("::1", &o, a, 4, &n));
  T_STREQ(weft_addr_format(&a[0], buf, sizeof buf), "[::1]:8080");
  T_OK(weft_resolve("[::1]", &o, a, 4, &n));
  T_EQ(weft_addr_family(&a[0]), AF_INET6);
  /* A numeric address of the other family is no answer. */
  o.family = AF_INET6;
  T_RC(weft_resolve("127.0.0.1", &o, a, 4, &n), WEFT_ENOADDR);
  o.family = AF_UNSPEC;
  /* NUMERIC refuses names without looking them up. */
  o.flags = WEFT_RESOLVE_NUMERIC;
  T_RC(weft_resolve("www.example.test", &o, a, 4, &n), WEFT_EINVAL);
  T_OK(weft_resolve("10.0.0.1", &o, a, 4, &n));
  /* Bad arguments. */
  o.flags = 0;
  T_RC(weft_resolve("", &o, a, 4, &n), WEFT_EINVAL);
  T_RC(weft_resolve(NULL, &o, a, 4, &n), WEFT_EINVAL);
  T_RC(weft_resolve("x.test", &o, a, 0, &n), WEFT_EINVAL);
  o.port = 70000;
  T_RC(weft_resolve("x.test", &o, a, 4, &n), WEFT_EINVAL);
  o.port = 0;
  o.family = AF_UNIX;
  T_RC(weft_resolve("x.test", &o, a, 4, &n), WEFT_EINVAL);
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  o.family = AF_UNSPEC;
  T_RC(weft_resolve(longname, &o, a, 4, &n), WEFT_EBADNAME);
  /* A label longer than 63 bytes: c-ares's verdict. */
  memset(longname, 'a', 70);
  strcpy(longname + 70, ".test");
  T_RC(weft_resolve(longname, &o, a, 4, &n), WEFT_EBADNAME);
  T_EQ(dnsr_queries(srv), 0);
  weft_resolver_free(r);
  return 0;
}

static void test_numeric(void) {
  srv_up();
  T_OK(t_run(numeric_body, NULL));
  srv_down();
}

static int hosts_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[4];
  size_t n;
  /* /etc/hosts answers before DNS is asked. */
  T_OK(resolve_in(r, "localhost", AF_INET, a, 4, &n));
  T_EQ(n, 1);
  T_EQ(ntohl(a[0].u.in.sin_addr.s_addr), INADDR_LOOPBACK);
  T_OK(resolve_in(r, "LocalHost", AF_UNSPEC, a, 4, &n));
  T_GE(n, 1);
  T_EQ(dnsr_queries(srv), 0);
  /* /etc/hosts answers carry no TTL: not cached. */
  weft_dns_stats st;
  weft_dns_stats_get(r, &st);
  T_EQ(st.cache_entries, 0);
  weft_resolver_free(r);

  /* The loop's own resolver, made on first use from resolv.conf, and freed
   * with the loop. localhost never leaves the machine. */
  T_OK(weft_resolve("localhost", NULL, a, 4, &n));
  T_GE(n, 1);
  weft_dns_stats_get(NULL, &st);
  T_EQ(st.lookups, 1);
  return 0;
}

static void test_hosts(void) {
  srv_up();
  T_OK(t_run(hosts_body, NULL));
  srv_down();
}

/* ---- answers ---- */

static int answers_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[64];
  size_t n;
  weft_resolve_opts o = {.size = sizeof o, .port = 443, .resolver = r};

  T_OK(weft_resolve("www.example.test", &o, a, 64, &n));
  T_EQ(n, 2);
  T_NE(weft_addr_family(&a[0]), weft_addr_family(&a[1]));
  for (size_t i = 0; i < n; i++) {
    T_TRUE(is_v4(&a[i], "www.example.test", 0) ||
           is_v6(&a[i], "www.example.test", 0));
    T_EQ(weft_addr_port(&a[i]), 443);
  }
  o.family = AF_INET;
  T_OK(weft_resolve("v4only.example.test", &o, a, 64, &n));
  T_EQ(n, 1);
  T_TRUE(is_v4(&a[0], "v4only.example.test", 0));
  o.family = AF_INET6;
  T_OK(weft_resolve("WWW6.Example.Test", &o, a, 64, &n));
  T_EQ(n, 1);
  T_TRUE(is_v6(&a[0], "www6.example.test", 0));

  /* Names with addresses of one family only. */
  T_RC(weft_resolve("a.v4.test", &o, a, 64, &n), WEFT_ENOADDR);
  T_EQ(n, 0);
  o.family = AF_UNSPEC;
  T_OK(weft_resolve("a.v4.test", &o, a, 64, &n));
  T_EQ(n, 1);
  T_TRUE(is_v4(&a[0], "a.v4.test", 0));
  T_OK(weft_resolve("a.v6.test", &o, a, 64, &n));
  T_EQ(n, 1);
  T_TRUE(is_v6(&a[0], "a.v6.test", 0));

  /* Too big for UDP: the truncated answer makes c-ares ask over TCP. */
  T_OK(weft_resolve("big.many.test", &o, a, 64, &n));
  T_EQ(n, 40);
  /* Only `max` come back. */
  T_OK(weft_resolve("big.many.test", &o, a, 8, &n));
  T_EQ(n, 8);
  weft_resolver_free(r);
  return 0;
}

static void test_answers(void) {
  srv_up();
  T_OK(t_run(answers_body, NULL));
  srv_down();
}

/* RFC 6724 order from c-ares, then the families interleaved (RFC 8305). */
static int order_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[8], b[8];
  size_t n, m;
  weft_resolve_opts o = {.size = sizeof o, .resolver = r};
  T_OK(weft_resolve("x.multi.test", &o, a, 8, &n));
  T_EQ(n, 6);
  for (size_t i = 1; i < n; i++)
    T_NE(weft_addr_family(&a[i]), weft_addr_family(&a[i - 1]));
  o.flags = WEFT_RESOLVE_NO_INTERLEAVE;
  T_OK(weft_resolve("x.multi.test", &o, b, 8, &m));
  T_EQ(m, 6);
  /* Plain RFC 6724: one family's addresses, then the other's. */
  int changes = 0;
  for (size_t i = 1; i < m; i++)
    changes += weft_addr_family(&b[i]) != weft_addr_family(&b[i - 1]);
  T_EQ(changes, 1);
  /* The same addresses; the interleaved list starts with the preferred. */
  T_EQ(weft_addr_family(&a[0]), weft_addr_family(&b[0]));
  for (size_t i = 0; i < n; i++) {
    bool found = false;
    for (size_t j = 0; j < m; j++)
      found |= weft_addr_equal(&a[i], &b[j]);
    T_TRUE(found);
  }
  /* Three addresses asked for: both families still come. */
  o.flags = 0;
  T_OK(weft_resolve("x.multi.test", &o, a, 3, &n));
  T_EQ(n, 3);
  T_NE(weft_addr_family(&a[0]), weft_addr_family(&a[1]));
  weft_dns_stats st;
  weft_dns_stats_get(r, &st);
  T_EQ(st.queries, 1);
  weft_resolver_free(r);
  return 0;
}

static void test_order(void) {
  srv_up();
  T_OK(t_run(order_body, NULL));
  srv_down();
}

static int search_body(void *arg) {
  (void)arg;
  static const char *const domains[] = {"corp.test", NULL};
  weft_resolver_opts ro = base_opts();
  ro.domains = domains;
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[4];
  size_t n;
  T_OK(resolve_in(r, "printer", AF_INET, a, 4, &n));
  T_EQ(n, 1);
  T_TRUE(is_v4(&a[0], "printer.corp.test", 0));
  T_EQ(dnsr_seen(srv, "printer.corp.test"), 1);
  /* With as many dots as ndots (1), the name is tried as it is first. */
  T_OK(resolve_in(r, "scanner.test", AF_INET, a, 4, &n));
  T_TRUE(is_v4(&a[0], "scanner.test", 0));
  T_EQ(dnsr_seen(srv, "scanner.test.corp.test"), 0);
  /* A trailing dot: absolute, no search. */
  T_RC(resolve_in(r, "fax.nx.test.", AF_INET, a, 4, &n), WEFT_ENOHOST);
  T_EQ(dnsr_seen(srv, "fax.nx.test.corp.test"), 0);
  weft_resolver_free(r);
  return 0;
}

static void test_search(void) {
  srv_up();
  T_OK(t_run(search_body, NULL));
  srv_down();
}

/* ---- errors ---- */

static int errors_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[4];
  size_t n = 99;
  T_RC(resolve_in(r, "a.nx.test", AF_UNSPEC, a, 4, &n), WEFT_ENOHOST);
  T_EQ(n, 0);
  T_RC(resolve_in(r, "a.fail.test", AF_INET, a, 4, &n), WEFT_ESERVFAIL);
  T_RC(resolve_in(r, "a.refused.test", AF_INET, a, 4, &n), WEFT_EREFUSED);
  T_RC(resolve_in(r, "a.notimp.test", AF_INET, a, 4, &n), WEFT_ENOTIMP);
  /* Malformed: a record that runs past the end of the reply. */
  T_RC(resolve_in(r, "a.bad.test", AF_INET, a, 4, &n), WEFT_EBADRESP);
  /* A reply too short to be one is dropped: the query times out. */
  double t0 = weft_now();
  T_RC(resolve_in(r, "a.short.test", AF_INET, a, 4, &n), WEFT_EDNSTIMEOUT);
  T_RC(resolve_in(r, "a.silent.test", AF_INET, a, 4, &n), WEFT_EDNSTIMEOUT);
  double took = weft_now() - t0;
  T_GE(took, 0.2);
  T_LT(took, 2.0);
  /* The messages are distinct and clear. */
  T_STREQ(weft_strerror(WEFT_ENOHOST), "no such host name (NXDOMAIN)");
  T_STREQ(weft_err_name(WEFT_EDNSTIMEOUT), "WEFT_EDNSTIMEOUT");
  /* The server still answers the next one. */
  T_OK(resolve_in(r, "after.errors.test", AF_INET, a, 4, &n));
  weft_resolver_free(r);
  return 0;
}

static void test_errors(void) {
  srv_up();
  T_OK(t_run(errors_body, NULL));
  srv_down();
}

/* A server that never answers (a socket nobody reads), and one whose port is
 * closed. */
static int dead_servers_body(void *arg) {
  int *ports = arg;
  weft_addr dead;
  T_OK(weft_addr_ip(&dead, "127.0.0.1", ports[0]));
  weft_resolver_opts ro = base_opts();
  ro.servers = &dead;
  ro.tries = 2;
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[4];
  size_t n;
  double t0 = weft_now();
  T_RC(resolve_in(r, "anything.test", AF_INET, a, 4, &n), WEFT_EDNSTIMEOUT);
  double took = weft_now() - t0;
  /* Two tries: 0.1 s, then twice that. */
  T_GE(took, 0.29);
  T_LT(took, 2.0);
  weft_resolver_free(r);

  T_OK(weft_addr_ip(&dead, "127.0.0.1", ports[1]));
  r = make_resolver(&ro);
  T_RC(resolve_in(r, "anything.test", AF_INET, a, 4, &n), WEFT_ECONNREFUSED);
  weft_resolver_free(r);
  return 0;
}

static int udp_port(int fd) {
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
    return -1;
  return ntohs(sa.sin_port);
}

static void test_dead_servers(void) {
  int mute = socket(AF_INET, SOCK_DGRAM, 0);
  int closed = socket(AF_INET, SOCK_DGRAM, 0);
  int ports[2] = {udp_port(mute), udp_port(closed)};
  close(closed);
  T_GT(ports[0], 0);
  T_GT(ports[1], 0);
  T_OK(t_run(dead_servers_body, ports));
  close(mute);
}

/* ---- the cache ---- */

static int cache_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[4];
  size_t n;
  weft_dns_stats st;
  unsigned long q0 = dnsr_queries(srv);
  T_OK(resolve_in(r, "cached.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_queries(srv), q0 + 1);
  T_OK(resolve_in(r, "CACHED.test", AF_INET, a, 4, &n));
  T_TRUE(is_v4(&a[0], "cached.test", 0));
  T_EQ(dnsr_queries(srv), q0 + 1);
  /* Another family is another entry. */
  T_OK(resolve_in(r, "cached.test", AF_INET6, a, 4, &n));
  T_EQ(dnsr_queries(srv), q0 + 2);
  /* NO_CACHE asks again (and refreshes the entry). */
  weft_resolve_opts o = {.size = sizeof o,
                         .family = AF_INET,
                         .flags = WEFT_RESOLVE_NO_CACHE,
                         .resolver = r};
  T_OK(weft_resolve("cached.test", &o, a, 4, &n));
  T_EQ(dnsr_queries(srv), q0 + 3);

  /* No such host: kept (negative caching). */
  T_RC(resolve_in(r, "gone.nx.test", AF_INET, a, 4, &n), WEFT_ENOHOST);
  T_RC(resolve_in(r, "gone.nx.test", AF_INET, a, 4, &n), WEFT_ENOHOST);
  T_EQ(dnsr_seen(srv, "gone.nx.test"), 1);
  T_RC(resolve_in(r, "x.v4.test", AF_INET6, a, 4, &n), WEFT_ENOADDR);
  T_RC(resolve_in(r, "x.v4.test", AF_INET6, a, 4, &n), WEFT_ENOADDR);
  T_EQ(dnsr_seen(srv, "x.v4.test"), 1);
  /* Server failures are not kept. */
  T_RC(resolve_in(r, "x.fail.test", AF_INET, a, 4, &n), WEFT_ESERVFAIL);
  int seen = dnsr_seen(srv, "x.fail.test");
  T_RC(resolve_in(r, "x.fail.test", AF_INET, a, 4, &n), WEFT_ESERVFAIL);
  T_EQ(dnsr_seen(srv, "x.fail.test"), 2 * seen);

  weft_dns_stats_get(r, &st);
  T_EQ(st.cache_hits, 3);
  T_EQ(st.cache_entries, 4);
  weft_dns_cache_clear(r);
  weft_dns_stats_get(r, &st);
  T_EQ(st.cache_entries, 0);
  T_OK(resolve_in(r, "cached.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "cached.test"), 4);
  weft_resolver_free(r);
  return 0;
}

static void test_cache(void) {
  srv_up();
  T_OK(t_run(cache_body, NULL));
  srv_down();
}

/* TTLs on the virtual clock: sleeping jumps time, lookups still go to the
 * real server (they set no deadline, so the clock waits for them). */
static int ttl_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  ro.cache_max_ttl = 30;
  ro.negative_ttl = 5;
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[4];
  size_t n;
  T_OK(resolve_in(r, "a.ttl2.test", AF_INET, a, 4, &n));
  T_OK(weft_sleep(1.5));
  T_OK(resolve_in(r, "a.ttl2.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "a.ttl2.test"), 1);
  T_OK(weft_sleep(1.0)); /* 2.5 s after the answer: stale */
  T_OK(resolve_in(r, "a.ttl2.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "a.ttl2.test"), 2);

  /* TTL 0: never kept. */
  T_OK(resolve_in(r, "b.ttl0.test", AF_INET, a, 4, &n));
  T_OK(resolve_in(r, "b.ttl0.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "b.ttl0.test"), 2);

  /* A TTL above the cap is cut to it. */
  T_OK(resolve_in(r, "c.ttl3600.test", AF_INET, a, 4, &n));
  T_OK(weft_sleep(29));
  T_OK(resolve_in(r, "c.ttl3600.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "c.ttl3600.test"), 1);
  T_OK(weft_sleep(2));
  T_OK(resolve_in(r, "c.ttl3600.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "c.ttl3600.test"), 2);

  /* Negative answers live negative_ttl. */
  T_RC(resolve_in(r, "d.nx.test", AF_INET, a, 4, &n), WEFT_ENOHOST);
  T_OK(weft_sleep(4));
  T_RC(resolve_in(r, "d.nx.test", AF_INET, a, 4, &n), WEFT_ENOHOST);
  T_EQ(dnsr_seen(srv, "d.nx.test"), 1);
  T_OK(weft_sleep(2));
  T_RC(resolve_in(r, "d.nx.test", AF_INET, a, 4, &n), WEFT_ENOHOST);
  T_EQ(dnsr_seen(srv, "d.nx.test"), 2);
  weft_resolver_free(r);
  return 0;
}

static void test_ttl(void) {
  srv_up();
  T_OK(t_run_virtual(ttl_body, NULL));
  srv_down();
}

static int bound_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  ro.cache_size = 4;
  weft_resolver *r = make_resolver(&ro);
  weft_addr a[4];
  size_t n;
  char name[32];
  for (int i = 0; i < 10; i++) {
    snprintf(name, sizeof name, "n%d.bound.test", i);
    T_OK(resolve_in(r, name, AF_INET, a, 4, &n));
  }
  weft_dns_stats st;
  weft_dns_stats_get(r, &st);
  T_EQ(st.cache_entries, 4);
  T_EQ(st.evictions, 6);
  /* The newest stayed; the oldest went. */
  T_OK(resolve_in(r, "n9.bound.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "n9.bound.test"), 1);
  T_OK(resolve_in(r, "n0.bound.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "n0.bound.test"), 2);
  weft_resolver_free(r);

  /* no_cache: nothing kept at all. */
  ro.no_cache = true;
  r = make_resolver(&ro);
  T_OK(resolve_in(r, "nc.bound.test", AF_INET, a, 4, &n));
  T_OK(resolve_in(r, "nc.bound.test", AF_INET, a, 4, &n));
  T_EQ(dnsr_seen(srv, "nc.bound.test"), 2);
  weft_dns_stats_get(r, &st);
  T_EQ(st.cache_entries, 0);
  weft_resolver_free(r);
  return 0;
}

static void test_bound(void) {
  srv_up();
  T_OK(t_run(bound_body, NULL));
  srv_down();
}

/* ---- reverse lookups ---- */

static int reverse_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r = make_resolver(&ro);
  weft_resolve_opts o = {.size = sizeof o, .resolver = r};
  weft_addr a;
  char host[WEFT_DNS_NAMELEN];
  T_OK(weft_addr_ip(&a, "127.0.0.1", 80));
  T_OK(weft_resolve_reverse(&a, &o, host, sizeof host));
  T_STREQ(host, "localhost"); /* /etc/hosts */
  T_OK(weft_addr_ip(&a, "10.1.2.3", 0));
  T_OK(weft_resolve_reverse(&a, &o, host, sizeof host));
  T_STREQ(host, "host-10-1-2-3.test");
  T_EQ(dnsr_seen(srv, "3.2.1.10.in-addr.arpa"), 1);
  T_OK(weft_addr_ip(&a, "192.0.2.1", 0));
  T_RC(weft_resolve_reverse(&a, &o, host, sizeof host), WEFT_ENOHOST);
  T_OK(weft_addr_ip(&a, "10.1.2.3", 0));
  T_RC(weft_resolve_reverse(&a, &o, host, 4), WEFT_ERANGE);
  weft_addr u;
  T_OK(weft_addr_unix(&u, "/tmp/x"));
  T_RC(weft_resolve_reverse(&u, &o, host, sizeof host), WEFT_EINVAL);
  weft_resolver_free(r);
  return 0;
}

static void test_reverse(void) {
  srv_up();
  T_OK(t_run(reverse_body, NULL));
  srv_down();
}

/* ---- giving up: cancellation and deadlines ---- */

typedef struct job {
  weft_resolver *r;
  const char *name;
  int family;
  weft_addr *out; /* the caller's: must stay untouched after giving up */
  size_t n;
  int rc;
  double deadline; /* > 0: resolve inside a deadline scope */
  int scope_rc;
  bool reverse;
  char *host;
} job;

static int job_run(void *p) {
  job *j = p;
  weft_timeout scope;
  if (j->deadline > 0)
    weft_timeout_enter(&scope, j->deadline);
  if (j->reverse) {
    weft_resolve_opts o = {.size = sizeof o, .resolver = j->r};
    j->rc = weft_resolve_reverse(j->out, &o, j->host, WEFT_DNS_NAMELEN);
  } else {
    j->rc = resolve_in(j->r, j->name, j->family, j->out, 4, &j->n);
  }
  if (j->deadline > 0)
    j->scope_rc = weft_timeout_exit(&scope);
  return 0;
}

static bool untouched(const weft_addr *a, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const uint8_t *b = (const uint8_t *)&a[i];
    for (size_t k = 0; k < sizeof *a; k++)
      if (b[k] != 0xa5)
        return false;
  }
  return true;
}

static int cancel_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  ro.timeout = 1; /* the slow server answers in 0.3 s: no retry */
  weft_resolver *r = make_resolver(&ro);
  weft_addr out[4];
  memset(out, 0xa5, sizeof out);
  job j = {.r = r, .name = "c.slow.test", .family = AF_INET, .out = out};
  weft_task *t;
  T_OK(weft_spawn(&t, job_run, &j));
  T_OK(weft_sleep(0.05));
  weft_dns_stats st;
  weft_dns_stats_get(r, &st);
  T_EQ(st.inflight, 1);
  weft_cancel(t);
  int res;
  T_OK(weft_join(t, &res));
  T_RC(j.rc, WEFT_ECANCELED);
  /* The answer arrives later, fills the cache, and writes nowhere else. */
  T_OK(weft_sleep(0.4));
  T_TRUE(untouched(out, 4));
  weft_dns_stats_get(r, &st);
  T_EQ(st.inflight, 0);
  T_EQ(st.cache_entries, 1);
  weft_addr a[4];
  size_t n;
  T_OK(resolve_in(r, "c.slow.test", AF_INET, a, 4, &n));
  T_TRUE(is_v4(&a[0], "c.slow.test", 0));
  T_EQ(dnsr_seen(srv, "c.slow.test"), 1);
  T_OK(resolve_in(r, "after.cancel.test", AF_INET, a, 4, &n));

  /* The same with a reverse lookup (10.99.x.x answers slowly). */
  memset(out, 0xa5, sizeof out);
  char host[WEFT_DNS_NAMELEN];
  memset(host, 0x5a, sizeof host);
  T_OK(weft_addr_ip(&out[0], "10.99.9.9", 0));
  job k = {.r = r, .out = out, .reverse = true, .host = host};
  T_OK(weft_spawn(&t, job_run, &k));
  T_OK(weft_sleep(0.02));
  weft_cancel(t);
  T_OK(weft_join(t, &res));
  T_RC(k.rc, WEFT_ECANCELED);
  T_OK(weft_sleep(0.05));
  weft_resolver_free(r);
  return 0;
}

static void test_cancel(void) {
  srv_up();
  T_OK(t_run(cancel_body, NULL));
  srv_down();
}

static int deadline_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  ro.timeout = 1;
  weft_resolver *r = make_resolver(&ro);
  weft_addr out[4];
  memset(out, 0xa5, sizeof out);
  job j = {.r = r,
           .name = "d.slow.test",
           .family = AF_INET,
           .out = out,
           .deadline = 0.05};
  double t0 = weft_now();
  T_OK(job_run(&j));
  T_RC(j.rc, WEFT_ETIMEDOUT);
  T_RC(j.scope_rc, WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 0.25);
  T_OK(weft_sleep(0.4));
  T_TRUE(untouched(out, 4));
  /* A deadline that leaves enough time. */
  j.deadline = 2;
  j.name = "e.slow.test";
  T_OK(job_run(&j));
  T_OK(j.rc);
  T_EQ(j.scope_rc, 0);
  T_TRUE(is_v4(&out[0], "e.slow.test", 0));
  weft_resolver_free(r);
  return 0;
}

static void test_deadline(void) {
  srv_up();
  T_OK(t_run(deadline_body, NULL));
  srv_down();
}

/* A lookup waiting in line for a query slot gives up: no query is sent. */
static int line_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  ro.timeout = 1;
  ro.max_inflight = 1;
  weft_resolver *r = make_resolver(&ro);
  weft_addr o1[4], o2[4], o3[4];
  memset(o2, 0xa5, sizeof o2);
  job j1 = {.r = r, .name = "l1.slow.test", .family = AF_INET, .out = o1};
  job j2 = {.r = r, .name = "l2.slow.test", .family = AF_INET, .out = o2};
  job j3 = {.r = r, .name = "l3.slow.test", .family = AF_INET, .out = o3};
  weft_task *t1, *t2, *t3;
  T_OK(weft_spawn(&t1, job_run, &j1));
  T_OK(weft_spawn(&t2, job_run, &j2));
  T_OK(weft_spawn(&t3, job_run, &j3));
  T_OK(weft_sleep(0.05));
  weft_dns_stats st;
  weft_dns_stats_get(r, &st);
  T_EQ(st.inflight, 1);
  T_EQ(st.queued, 2);
  weft_cancel(t2);
  int res;
  T_OK(weft_join(t2, &res));
  T_RC(j2.rc, WEFT_ECANCELED);
  weft_dns_stats_get(r, &st);
  T_EQ(st.queued, 1);
  T_OK(weft_join(t1, &res));
  T_OK(weft_join(t3, &res));
  T_OK(j1.rc);
  T_OK(j3.rc);
  T_EQ(dnsr_seen(srv, "l2.slow.test"), 0);
  T_TRUE(untouched(o2, 4));
  weft_resolver_free(r);
  return 0;
}

static void test_line(void) {
  srv_up();
  T_OK(t_run(line_body, NULL));
  srv_down();
}

/* Freeing a resolver wakes its waiters with WEFT_ECANCELED. */
static int free_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  ro.timeout = 1;
  ro.max_inflight = 2;
  weft_resolver *r = make_resolver(&ro);
  weft_addr out[4][4];
  job j[4];
  weft_task *t[4];
  for (int i = 0; i < 4; i++) {
    j[i] = (job){.r = r, .family = AF_INET, .out = out[i]};
    j[i].name = i % 2 ? "f1.slow.test" : "f2.silent.test";
    T_OK(weft_spawn(&t[i], job_run, &j[i]));
  }
  /* Two are in flight, and the coalesced ones wait with them; a fifth
   * waits in line. */
  weft_addr o5[4];
  job j5 = {.r = r, .name = "f5.slow.test", .family = AF_INET, .out = o5};
  weft_task *t5;
  T_OK(weft_spawn(&t5, job_run, &j5));
  T_OK(weft_sleep(0.02));
  weft_dns_stats st;
  weft_dns_stats_get(r, &st);
  T_EQ(st.inflight, 2);
  T_EQ(st.coalesced, 2);
  T_EQ(st.queued, 1);
  weft_resolver_free(r);
  int res;
  for (int i = 0; i < 4; i++) {
    T_OK(weft_join(t[i], &res));
    T_RC(j[i].rc, WEFT_ECANCELED);
  }
  T_OK(weft_join(t5, &res));
  T_RC(j5.rc, WEFT_ECANCELED);
  return 0;
}

static void test_free(void) {
  srv_up();
  T_OK(t_run(free_body, NULL));
  srv_down();
}

/* ---- many at once ---- */

#define MANY 2000

typedef struct many_arg {
  weft_resolver *r;
  int i;
  bool ok;
} many_arg;

static int many_one(void *p) {
  many_arg *m = p;
  char name[40];
  snprintf(name, sizeof name, "h%d.load.test", m->i);
  weft_addr a[4];
  size_t n;
  int rc = resolve_in(m->r, name, AF_INET, a, 4, &n);
  m->ok = rc == 0 && n == 1 && is_v4(&a[0], name, 0);
  return rc;
}

static int many_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  ro.timeout = 2;
  ro.tries = 2;
  ro.max_inflight = 64;
  weft_resolver *r = make_resolver(&ro);
  static many_arg m[MANY];
  static weft_call calls[MANY];
  for (int i = 0; i < MANY; i++) {
    m[i] = (many_arg){.r = r, .i = i};
    calls[i] = (weft_call){many_one, &m[i], 0};
  }
  double t0 = weft_now();
  T_OK(weft_gather(calls, MANY));
  double took = weft_now() - t0;
  int good = 0;
  for (int i = 0; i < MANY; i++)
    good += m[i].ok;
  T_EQ(good, MANY);
  weft_dns_stats st;
  weft_dns_stats_get(r, &st);
  T_EQ(st.queries, MANY);
  T_EQ(st.inflight, 0);
  printf("\n    %d lookups in %.3f s\n", MANY, took);

  /* Lookups of one name that overlap share one query. */
  static many_arg same[50];
  for (int i = 0; i < 50; i++) {
    same[i] = (many_arg){.r = r, .i = 100000};
    calls[i] = (weft_call){many_one, &same[i], 0};
  }
  T_OK(weft_gather(calls, 50));
  for (int i = 0; i < 50; i++)
    T_TRUE(same[i].ok);
  T_EQ(dnsr_seen(srv, "h100000.load.test"), 1);
  weft_dns_stats_get(r, &st);
  T_EQ(st.coalesced, 49);
  weft_resolver_free(r);
  return 0;
}

static void test_many(void) {
  srv_up();
  T_OK(t_run(many_body, NULL));
  srv_down();
}

/* c-ares's sockets sit in the loop's own epoll set with the streams: a
 * loop they keep busy takes an answer in within a few turns, not when
 * libevent's turn comes (up to a millisecond of turns later). The server
 * here answers inside the loop (a task on a weft UDP endpoint, with the
 * responder's rules), so the turns counted are the loop's alone: the
 * query out, the server's turn, the answer in. Ten lookups of new names,
 * each started at a different point of that millisecond. */
typedef struct inloop_dns {
  weft_udp *u;
  dnsr *rules; /* the responder's state, for dnsr__answer */
} inloop_dns;

static int inloop_serve(void *arg) {
  inloop_dns *d = arg;
  uint8_t q[512], out[1024];
  for (;;) {
    weft_addr from;
    int n = weft_udp_recv_from(d->u, q, sizeof q, &from);
    if (n < 0)
      return n == WEFT_ECANCELED ? 0 : n;
    double delay;
    size_t len =
        dnsr__answer(d->rules, q, (size_t)n, out, sizeof out, true, &delay);
    if (len > 0)
      T_OK(weft_udp_send_to(d->u, out, len, &from));
  }
}

static int busy_loop_body(void *arg) {
  (void)arg;
  busy b;
  busy_start(&b);
  inloop_dns d = {.rules = calloc(1, sizeof(dnsr))};
  T_TRUE(d.rules != NULL);
  pthread_mutex_init(&d.rules->lock, NULL);
  weft_addr sa;
  T_OK(weft_addr_ip(&sa, "127.0.0.1", 0));
  T_OK(weft_udp_new(&d.u, &sa, NULL, NULL));
  T_OK(weft_udp_local_addr(d.u, &sa));
  weft_task *server;
  T_OK(weft_spawn(&server, inloop_serve, &d));
  weft_resolver_opts o = base_opts();
  o.servers = &sa;
  weft_resolver *r = make_resolver(&o);
  uint64_t worst = 0;
  for (int k = 0; k < 10; k++) {
    T_OK(weft_sleep(0.0003 * k));
    char name[32];
    snprintf(name, sizeof name, "busy%d.v4.test", k);
    weft_addr a[2];
    size_t n = 0;
    uint64_t t0 = loop_turn();
    T_OK(resolve_in(r, name, AF_INET, a, 2, &n));
    uint64_t t = loop_turn() - t0;
    worst = t > worst ? t : worst;
    T_EQ(n, 1);
    T_TRUE(is_v4(&a[0], name, 0));
  }
  T_LE(worst, 6);
  weft_resolver_free(r);
  weft_cancel(server);
  int rc = -1;
  T_OK(weft_join(server, &rc));
  T_EQ(rc, 0);
  weft_udp_free(d.u);
  pthread_mutex_destroy(&d.rules->lock);
  free(d.rules);
  busy_stop(&b);
  return 0;
}

static void test_busy_loop(void) { T_OK(t_run(busy_loop_body, NULL)); }

/* ---- the loop's own resolver ---- */

static int configure_body(void *arg) {
  (void)arg;
  weft_addr a[4];
  size_t n;
  weft_resolver_opts ro = base_opts();
  T_OK(weft_dns_configure(&ro));
  T_OK(weft_resolve("loop.example.test", NULL, a, 4, &n));
  T_EQ(n, 2);
  T_EQ(dnsr_seen(srv, "loop.example.test"), 2); /* A and AAAA */
  weft_dns_stats st;
  weft_dns_stats_get(NULL, &st);
  T_EQ(st.lookups, 1);
  /* Reconfiguring wakes the old resolver's waiters with ECANCELED. */
  job j = {.name = "cfg.slow.test", .family = AF_INET, .out = a};
  weft_task *t;
  T_OK(weft_spawn(&t, job_run, &j));
  T_OK(weft_sleep(0.02));
  ro.timeout = 0.5;
  T_OK(weft_dns_configure(&ro));
  int res;
  T_OK(weft_join(t, &res));
  T_RC(j.rc, WEFT_ECANCELED);
  weft_dns_stats_get(NULL, &st);
  T_EQ(st.lookups, 0); /* a new resolver */
  /* Freeing the loop's own resolver is not the caller's business. */
  ro.servers = NULL;
  ro.nservers = 3;
  T_RC(weft_dns_configure(&ro), WEFT_EINVAL);
  ro = base_opts();
  ro.ndots = 16;
  T_RC(weft_dns_configure(&ro), WEFT_EINVAL);
  ro = base_opts();
  ro.timeout = -1;
  T_RC(weft_dns_configure(&ro), WEFT_EINVAL);
  T_OK(weft_resolve("loop2.example.test", NULL, a, 4, &n));
  /* The loop frees it: t_run checks nothing is left. */
  return 0;
}

static void test_configure(void) {
  srv_up();
  T_OK(t_run(configure_body, NULL));
  srv_down();
}

/* Outside a task, or without a loop. */
static void test_no_task(void) {
  weft_resolver *r;
  T_RC(weft_resolver_new(&r, NULL), WEFT_ENOLOOP);
  T_RC(weft_dns_configure(NULL), WEFT_ENOLOOP);
  weft_dns_stats st;
  weft_dns_stats_get(NULL, &st);
  T_EQ(st.lookups, 0);
}

/* ---- failing allocations ---- */

static long live, countdown, failures;

static void *f_malloc(size_t n) {
  if (countdown == 0) {
    failures++;
    return NULL;
  }
  if (countdown > 0)
    countdown--;
  void *p = malloc(n);
  if (p)
    live++;
  return p;
}
static void *f_realloc(void *p, size_t n) {
  if (p == NULL)
    return f_malloc(n);
  if (countdown == 0) {
    failures++;
    return NULL;
  }
  if (countdown > 0)
    countdown--;
  return realloc(p, n);
}
static void f_free(void *p) {
  if (p) {
    live--;
    free(p);
  }
}

/* Makes a resolver, looks up, hits the cache, looks up in reverse, and
 * stops at the first failure. */
static int alloc_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r;
  int rc = weft_resolver_new(&r, &ro);
  if (rc != 0)
    return rc;
  weft_addr a[4];
  size_t n;
  rc = resolve_in(r, "alloc.example.test", AF_UNSPEC, a, 4, &n);
  if (rc == 0)
    rc = resolve_in(r, "alloc.example.test", AF_UNSPEC, a, 4, &n);
  if (rc == 0)
    rc = resolve_in(r, "alloc.nx.test", AF_INET, a, 4, &n) == WEFT_ENOHOST
             ? 0
             : WEFT_ENOMEM;
  if (rc == 0) {
    char host[WEFT_DNS_NAMELEN];
    weft_resolve_opts o = {.size = sizeof o, .resolver = r};
    T_OK(weft_addr_ip(&a[0], "10.1.2.3", 0));
    rc = weft_resolve_reverse(&a[0], &o, host, sizeof host);
  }
  weft_resolver_free(r);
  return rc;
}

static void test_alloc(void) {
  srv_up();
  weft_allocator al = {f_malloc, f_realloc, f_free};
  T_OK(weft_set_allocator(&al));
  countdown = -1;
  live = 0;
  T_OK(weft_run(alloc_body, NULL));
  T_EQ(live, 0);
  long enomem = 0, other = 0, k;
  /* T_ALLOC_FROM=k starts there, for debugging one failure. */
  long from = getenv("T_ALLOC_FROM") ? atol(getenv("T_ALLOC_FROM")) : 0;
  for (k = from; k < 5000; k++) {
    countdown = k;
    failures = 0;
    live = 0;
    int rc = weft_run(alloc_body, NULL);
    if (failures == 0) {
      T_OK(rc);
      break;
    }
    /* Where c-ares itself runs out it may lose a reply (a timeout) or
     * report the name as not found; any error is fine, leaking, crashing or
     * hanging is not. */
    enomem += rc == WEFT_ENOMEM;
    other += rc != 0 && rc != WEFT_ENOMEM;
    if (live != 0)
      t__fail(__FILE__, __LINE__, "allocation %ld failed: %ld blocks leaked", k,
              live);
  }
  printf("\n    %ld allocations, %ld runs ended in ENOMEM, %ld in another "
         "error\n",
         k, enomem, other);
  T_LT(k, 5000);
  T_GT(enomem, 10);
  T_OK(weft_set_allocator(NULL));
  srv_down();
}

/* RFC 6724 on addresses whose order does not depend on this machine's
 * routes: loopback works in both families, and a link-local IPv6 address
 * without a scope cannot be reached. */
static int sort_body(void *arg) {
  (void)arg;
  weft_resolver_opts ro = base_opts();
  weft_resolver *r = make_resolver(&ro);
  static const char *const in[] = {"fe80::1", "127.0.0.1", "::1", "127.0.0.2"};
  static const char *const want[] = {"::1", "127.0.0.1", "127.0.0.2",
                                     "fe80::1"};
  weft__dns_ip ips[4];
  for (int i = 0; i < 4; i++) {
    weft_addr a;
    T_OK(weft_addr_ip(&a, in[i], 0));
    memset(&ips[i], 0, sizeof ips[i]);
    ips[i].family = (uint8_t)a.u.sa.sa_family;
    if (ips[i].family == AF_INET)
      memcpy(ips[i].addr, &a.u.in.sin_addr, 4);
    else
      memcpy(ips[i].addr, &a.u.in6.sin6_addr, 16);
  }
  /* Rule 1 puts the unreachable one last, rule 6 (precedence 50 over 35)
   * ::1 before IPv4, rule 10 keeps 127.0.0.1 before 127.0.0.2. */
  weft__dns_sort(r, ips, 4);
  for (int i = 0; i < 4; i++) {
    char buf[64];
    inet_ntop(ips[i].family, ips[i].addr, buf, sizeof buf);
    T_STREQ(buf, want[i]);
  }
  weft_resolver_free(r);
  return 0;
}

static void test_sort(void) {
  srv_up();
  T_OK(t_run(sort_body, NULL));
  srv_down();
}

static const t_case cases[] = {
    {"numeric", test_numeric},     {"hosts", test_hosts},
    {"answers", test_answers},     {"order", test_order},
    {"sort", test_sort},           {"search", test_search},
    {"errors", test_errors},       {"dead_servers", test_dead_servers},
    {"cache", test_cache},         {"ttl", test_ttl},
    {"bound", test_bound},         {"reverse", test_reverse},
    {"cancel", test_cancel},       {"deadline", test_deadline},
    {"line", test_line},           {"free", test_free},
    {"many", test_many},           {"busy_loop", test_busy_loop},
    {"configure", test_configure}, {"no_task", test_no_task},
    {"alloc", test_alloc},         {NULL, NULL},
};

T_MAIN("net-dns", cases)
