/* weft-resolve — resolves many names at once, each in its own task, and
 * prints every answer as it arrives and the total time (asyncio.gather over
 * loop.getaddrinfo, or aiodns).
 *
 *   weft-resolve example.com example.org        the system's resolver
 *   weft-resolve --server 127.0.0.1:5353 a b    a DNS server of your own
 *   weft-resolve --local --count 10000          a built-in server on
 *                                               127.0.0.1: no network needed
 *   weft-resolve --reverse 10.1.2.3             addresses back to names
 *
 * --tour runs the built-in server and checks what docs/guide/dns.md claims:
 * numeric addresses and /etc/hosts never reach DNS, a thousand lookups run
 * at once on one thread, the cache answers repeats, overlapping lookups of
 * one name share a query, every failure has its own error, and timeouts and
 * deadlines end a lookup on time.
 */
#define _GNU_SOURCE
#include "responder.h" /* first: it needs _GNU_SOURCE before any include */

#include <weft/dns.h>
#include <weft/weft.h>

#include "app.h"

#define MAX_ADDRS 16

typedef struct job {
  const char *name;
  weft_addr addrs[MAX_ADDRS];
  size_t n;
  int rc;
  double took;
} job;

static const char **names;
static size_t nnames;
static int family = AF_UNSPEC;
static double timeout_s, tries_n;
static size_t inflight;
static bool reverse, local, tour, quiet;
static long count;
static weft_addr server;
static bool have_server;
static dnsr *srv;

static void print_job(const job *j) {
  if (quiet)
    return;
  printf("%-32s ", j->name);
  if (j->rc != 0) {
    printf("%s (%s)", weft_strerror(j->rc), weft_err_name(j->rc));
  } else if (reverse) {
    printf("%s", (const char *)j->addrs);
  } else {
    for (size_t i = 0; i < j->n; i++) {
      char buf[WEFT_ADDR_STRLEN];
      weft_addr_format(&j->addrs[i], buf, sizeof buf);
      /* Show the address alone: port 0 means none was asked for. */
      size_t len = strlen(buf);
      if (len > 2 && strcmp(buf + len - 2, ":0") == 0)
        buf[len - 2] = '\0';
      if (buf[0] == '[' && strchr(buf, ']') != NULL) {
        memmove(buf, buf + 1, strlen(buf));
        *strchr(buf, ']') = '\0';
      }
      printf("%s%s", i ? " " : "", buf);
    }
  }
  printf("  (%.1f ms)\n", j->took * 1e3);
}

static int run_job(void *arg) {
  job *j = arg;
  double t0 = weft_now();
  weft_resolve_opts o = {.size = sizeof o, .family = family};
  if (reverse) {
    weft_addr a;
    j->rc = weft_addr_ip(&a, j->name, 0);
    if (j->rc == 0)
      j->rc = weft_resolve_reverse(&a, &o, (char *)j->addrs, sizeof j->addrs);
  } else {
    j->rc = weft_resolve(j->name, &o, j->addrs, MAX_ADDRS, &j->n);
  }
  j->took = weft_now() - t0;
  print_job(j);
  return 0; /* a failed lookup is an answer too: do not cancel the rest */
}

static int configure(double timeout, int tries, size_t max_inflight) {
  weft_resolver_opts o = {.size = sizeof o,
                          .timeout = timeout,
                          .tries = tries,
                          .max_inflight = max_inflight};
  if (have_server) {
    o.servers = &server;
    o.nservers = 1;
  }
  return weft_dns_configure(&o);
}

/* ---- the tour ---- */

static weft_resolver_opts tour_opts(void) {
  static const char *const none[] = {NULL};
  weft_resolver_opts o = {.size = sizeof o,
                          .servers = &server,
                          .nservers = 1,
                          .timeout = 0.1,
                          .tries = 2,
                          .domains = none,
                          .cache_size = 4096};
  return o;
}

static bool tour_numeric_hosts(weft_resolver *r) {
  weft_resolve_opts o = {.size = sizeof o, .resolver = r};
  weft_addr a[4];
  size_t n1 = 0, n2 = 0, n3 = 0;
  unsigned long q0 = dnsr_queries(srv);
  int rc1 = weft_resolve("127.0.0.1", &o, a, 4, &n1);
  int rc2 = weft_resolve("::1", &o, a, 4, &n2);
  o.family = AF_INET;
  int rc3 = weft_resolve("localhost", &o, a, 4, &n3);
  unsigned long q = dnsr_queries(srv) - q0;
  bool ok1 = rc1 == 0 && rc2 == 0 && n1 == 1 && n2 == 1 && q == 0;
  bool ok2 = rc3 == 0 && n3 >= 1 &&
             ntohl(a[0].u.in.sin_addr.s_addr) == INADDR_LOOPBACK && q == 0;
  printf("  numeric addresses: %s, %s; localhost: %s; DNS queries: %lu\n",
         weft_err_name(rc1), weft_err_name(rc2), weft_err_name(rc3), q);
  app_row("numeric addresses never reach DNS", ok1, "2 parsed, %lu queries", q);
  app_row("/etc/hosts answers first (localhost)", ok2, "127.0.0.1, %lu queries",
          q);
  return ok1 && ok2;
}

typedef struct tour_job {
  weft_resolver *r;
  char name[48];
  int rc;
} tour_job;

static int tour_one(void *arg) {
  tour_job *j = arg;
  weft_resolve_opts o = {.size = sizeof o, .family = AF_INET, .resolver = j->r};
  weft_addr a[4];
  size_t n;
  j->rc = weft_resolve(j->name, &o, a, 4, &n);
  return 0;
}

static bool tour_many(weft_resolver *r, int many) {
  tour_job *jobs = calloc((size_t)many, sizeof *jobs);
  weft_call *calls = calloc((size_t)many, sizeof *calls);
  if (jobs == NULL || calls == NULL) {
    free(jobs);
    free(calls);
    return false;
  }
  for (int i = 0; i < many; i++) {
    jobs[i].r = r;
    snprintf(jobs[i].name, sizeof jobs[i].name, "host%d.tour.test", i);
    calls[i] = (weft_call){tour_one, &jobs[i], 0};
  }
  unsigned long q0 = dnsr_queries(srv);
  double t0 = weft_now();
  int rc = weft_gather(calls, (size_t)many);
  double took = weft_now() - t0;
  int good = 0;
  for (int i = 0; i < many; i++)
    good += jobs[i].rc == 0;
  unsigned long q = dnsr_queries(srv) - q0;
  printf("  %d lookups at once: %d answered in %.1f ms (%.0f/s), %lu queries\n",
         many, good, took * 1e3, many / took, q);
  char claim[80];
  snprintf(claim, sizeof claim, "%d names resolve at once on one thread", many);
  bool ok = rc == 0 && good == many;
  app_row(claim, ok, "%d/%d in %.1f ms (%.0f lookups/s)", good, many,
          took * 1e3, many / took);

  /* Again: the cache answers. */
  q0 = dnsr_queries(srv);
  t0 = weft_now();
  rc = weft_gather(calls, (size_t)many);
  took = weft_now() - t0;
  good = 0;
  for (int i = 0; i < many; i++)
    good += jobs[i].rc == 0;
  q = dnsr_queries(srv) - q0;
  bool ok2 = rc == 0 && good == many && q == 0;
  printf("  the same %d again: %.1f ms, %lu queries\n", many, took * 1e3, q);
  app_row("repeated lookups are answered from the cache (TTL honoured)", ok2,
          "%d in %.1f ms, %lu queries", many, took * 1e3, q);

  /* Overlapping lookups of one name. */
  for (int i = 0; i < 100 && i < many; i++)
    snprintf(jobs[i].name, sizeof jobs[i].name, "shared.tour.test");
  q0 = dnsr_queries(srv);
  rc = weft_gather(calls, (size_t)(many < 100 ? many : 100));
  q = dnsr_queries(srv) - q0;
  bool ok3 = rc == 0 && q == 1;
  printf("  100 overlapping lookups of one name: %lu query\n", q);
  app_row("overlapping lookups of one name share one query", ok3,
          "100 lookups, %lu query", q);
  free(jobs);
  free(calls);
  return ok && ok2 && ok3;
}

static bool tour_errors(weft_resolver *r) {
  static const struct {
    const char *name;
    int family;
    int want;
  } cases[] = {
      {"no.nx.test", AF_INET, WEFT_ENOHOST},
      {"ipv4only.v4.test", AF_INET6, WEFT_ENOADDR},
      {"broken.fail.test", AF_INET, WEFT_ESERVFAIL},
      {"closed.refused.test", AF_INET, WEFT_EREFUSED},
      {"garbled.bad.test", AF_INET, WEFT_EBADRESP},
  };
  bool ok = true;
  char measured[200] = "";
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    weft_resolve_opts o = {
        .size = sizeof o, .family = cases[i].family, .resolver = r};
    weft_addr a[4];
    size_t n;
    int rc = weft_resolve(cases[i].name, &o, a, 4, &n);
    printf("  %-22s %s: %s\n", cases[i].name, weft_err_name(rc),
           weft_strerror(rc));
    ok &= rc == cases[i].want;
    size_t len = strlen(measured);
    snprintf(measured + len, sizeof measured - len, "%s%s", i ? ", " : "",
             weft_err_name(rc) + 5);
  }
  app_row("each failure has its own error", ok, "%s", measured);
  return ok;
}

static bool tour_timeouts(weft_resolver *r) {
  weft_resolve_opts o = {.size = sizeof o, .family = AF_INET, .resolver = r};
  weft_addr a[4];
  size_t n;
  double t0 = weft_now();
  int rc = weft_resolve("mute.silent.test", &o, a, 4, &n);
  double took = weft_now() - t0;
  /* Two tries: 0.1 s, then 0.2 s. */
  bool ok = rc == WEFT_EDNSTIMEOUT && took >= 0.29 && took < 1.0;
  printf("  a server that never answers: %s after %.3f s\n", weft_err_name(rc),
         took);
  app_row("a silent server times out after timeout x tries (0.1 s + 0.2 s)", ok,
          "%s after %.2f s", weft_err_name(rc), took);

  weft_timeout scope;
  t0 = weft_now();
  weft_timeout_enter(&scope, 0.05);
  rc = weft_resolve("late.slow.test", &o, a, 4, &n);
  (void)weft_timeout_exit(&scope);
  took = weft_now() - t0;
  bool ok2 = rc == WEFT_ETIMEDOUT && took < 0.2;
  printf("  a 50 ms deadline around a 300 ms answer: %s after %.3f s\n",
         weft_err_name(rc), took);
  app_row("a deadline ends a lookup mid-query", ok2, "%s after %.3f s",
          weft_err_name(rc), took);
  return ok && ok2;
}

static bool tour_reverse(weft_resolver *r) {
  weft_resolve_opts o = {.size = sizeof o, .resolver = r};
  weft_addr a;
  char host[WEFT_DNS_NAMELEN] = "";
  int rc = weft_addr_ip(&a, "10.1.2.3", 0);
  if (rc == 0)
    rc = weft_resolve_reverse(&a, &o, host, sizeof host);
  bool ok = rc == 0 && strcmp(host, "host-10-1-2-3.test") == 0;
  printf("  10.1.2.3 is %s (%s)\n", host, weft_err_name(rc));
  app_row("reverse lookups name an address", ok, "10.1.2.3 -> %s",
          rc == 0 ? host : weft_err_name(rc));
  return ok;
}

static int tour_main(void *arg) {
  (void)arg;
  printf("weft-resolve: DNS on c-ares in the loop, against a server on %s\n",
         "127.0.0.1");
  weft_resolver_opts ro = tour_opts();
  weft_resolver *r;
  int rc = weft_resolver_new(&r, &ro);
  if (rc != 0) {
    fprintf(stderr, "weft-resolve: %s\n", weft_strerror(rc));
    return 1;
  }
  bool ok = true;
  ok &= tour_numeric_hosts(r);
  ok &= tour_many(r, count > 0 ? (int)count : 1000);
  ok &= tour_errors(r);
  ok &= tour_timeouts(r);
  ok &= tour_reverse(r);
  weft_resolver_free(r);
  printf("%s\n", ok ? "all as the guide says" : "SOMETHING DIFFERED");
  return ok ? 0 : 1;
}

/* ---- the program ---- */

static int amain(void *arg) {
  (void)arg;
  if (have_server || timeout_s > 0 || tries_n > 0 || inflight > 0) {
    int rc = configure(timeout_s, (int)tries_n, inflight);
    if (rc != 0) {
      fprintf(stderr, "weft-resolve: %s\n", weft_strerror(rc));
      return 1;
    }
  }
  job *jobs = calloc(nnames, sizeof *jobs);
  weft_call *calls = calloc(nnames, sizeof *calls);
  if (jobs == NULL || calls == NULL) {
    fprintf(stderr, "weft-resolve: out of memory\n");
    free(jobs);
    free(calls);
    return 1;
  }
  for (size_t i = 0; i < nnames; i++) {
    jobs[i].name = names[i];
    calls[i] = (weft_call){run_job, &jobs[i], 0};
  }
  double t0 = weft_now();
  int rc = weft_gather(calls, nnames);
  double took = weft_now() - t0;
  size_t failed = 0;
  for (size_t i = 0; i < nnames; i++)
    failed += jobs[i].rc != 0;
  printf("%zu names in %.1f ms (%.0f lookups/s), %zu failed\n", nnames,
         took * 1e3, nnames / (took > 0 ? took : 1e-9), failed);
  free(jobs);
  free(calls);
  if (rc != 0) {
    fprintf(stderr, "weft-resolve: %s\n", weft_strerror(rc));
    return 1;
  }
  return failed ? 1 : 0;
}

static void usage(const char *prog) {
  printf(
      "usage: %s [options] NAME...   (NAME '-' reads names from stdin)\n"
      "  Resolves every NAME at once, each in its own task, printing each\n"
      "  answer as it arrives and the total time.\n"
      "  -4, -6           IPv4 / IPv6 addresses only (default: both)\n"
      "  --reverse        the NAMEs are addresses: look up their names\n"
      "  --server IP[:P]  ask this DNS server (default: resolv.conf's)\n"
      "  --timeout S      seconds for a server's first try (default 5)\n"
      "  --tries N        rounds over the servers (default 2)\n"
      "  --inflight N     queries sent at once (default 256)\n"
      "  --local          run a built-in DNS server on 127.0.0.1 and ask it\n"
      "                   (names ending .nx.test fail, others get 10.x.y.z)\n"
      "  --count N        with --local: resolve N made-up names\n"
      "  -q               print only the total\n"
      "  --tour           check the guide's claims against the built-in "
      "server\n",
      prog);
}

static void add_name(const char *name) {
  const char **n = realloc(names, (nnames + 1) * sizeof *names);
  if (n == NULL) {
    perror("weft-resolve");
    exit(1);
  }
  names = n;
  names[nnames++] = name;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else if (strcmp(a, "-4") == 0) {
      family = AF_INET;
    } else if (strcmp(a, "-6") == 0) {
      family = AF_INET6;
    } else if (strcmp(a, "--reverse") == 0) {
      reverse = true;
    } else if (strcmp(a, "--server") == 0 && i + 1 < argc) {
      const char *s = argv[++i];
      char host[64];
      int port = 53;
      const char *colon = strrchr(s, ':');
      /* "1.2.3.4:53", "[::1]:53", "::1" */
      if (colon != NULL && (s[0] == '[' || strchr(s, ':') == colon)) {
        snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
        port = atoi(colon + 1);
      } else {
        snprintf(host, sizeof host, "%s", s);
      }
      if (weft_addr_ip(&server, host, port) != 0) {
        fprintf(stderr, "%s: --server %s: not a numeric address\n", argv[0], s);
        return 2;
      }
      have_server = true;
    } else if (strcmp(a, "--timeout") == 0) {
      timeout_s = app_num(argc, argv, &i, 0.001, 3600);
    } else if (strcmp(a, "--tries") == 0) {
      tries_n = app_num(argc, argv, &i, 1, 100);
    } else if (strcmp(a, "--inflight") == 0) {
      inflight = (size_t)app_num(argc, argv, &i, 1, 1e6);
    } else if (strcmp(a, "--count") == 0) {
      count = (long)app_num(argc, argv, &i, 1, 1e7);
    } else if (strcmp(a, "--local") == 0) {
      local = true;
    } else if (strcmp(a, "-q") == 0) {
      quiet = true;
    } else if (strcmp(a, "--tour") == 0) {
      tour = true;
    } else if (strcmp(a, "-") == 0) {
      char line[300];
      while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, " \t\r\n")] = '\0';
        if (line[0] != '\0' && line[0] != '#')
          add_name(strdup(line));
      }
    } else if (a[0] == '-') {
      app_bad_arg(argv[0], a);
    } else {
      add_name(a);
    }
  }
  if (tour || local) {
    int rc = dnsr_start(&srv, "127.0.0.1", 0);
    if (rc != 0) {
      fprintf(stderr, "%s: cannot start the built-in DNS server: %s\n", argv[0],
              strerror(-rc));
      return 1;
    }
    (void)weft_addr_ip(&server, "127.0.0.1", srv->port);
    have_server = true;
    if (!tour)
      printf("built-in DNS server on 127.0.0.1:%d\n", srv->port);
  }
  int rc;
  if (tour) {
    rc = weft_run(tour_main, NULL);
  } else {
    for (long k = 0; k < count; k++) {
      char *name;
      if (asprintf(&name, "h%ld.count.test", k) < 0) {
        perror("weft-resolve");
        return 1;
      }
      add_name(name);
    }
    if (nnames == 0) {
      usage(argv[0]);
      return 2;
    }
    rc = weft_run(amain, NULL);
  }
  dnsr_stop(srv);
  if (rc < 0) {
    fprintf(stderr, "weft-resolve: %s\n", weft_strerror(rc));
    return 1;
  }
  return rc;
}
