/* bench-dns — 10 000 lookups of distinct names against a DNS server on
 * 127.0.0.1, weft against getaddrinfo() on libuv's thread pool (the way
 * libuv and Node.js resolve: uv_getaddrinfo), side by side in one run.
 *
 *   sudo build/tests/bench/bench-dns [-n N] [-r ROUNDS] [-4] [--no-pin]
 *
 * Both sides must ask the same server with the same settings, and glibc
 * takes its servers only from /etc/resolv.conf (port 53, no way to name
 * another). So the program moves itself into a private mount namespace
 * (unshare(CLONE_NEWNS)), binds a resolv.conf saying "nameserver 127.0.0.1"
 * over /etc/resolv.conf there, and serves DNS on 127.0.0.1:53 from a thread
 * (apps/resolve/responder.h). Nothing outside the process sees any of it.
 * Both clients then read that resolv.conf: weft through the loop's own
 * resolver, glibc as always; both read /etc/hosts first too.
 *
 * The clients run on core 0 (weft's loop; libuv's loop and its pool, four
 * threads by default, UV_THREADPOOL_SIZE to change), the server on core 1.
 * Each round resolves fresh names (no cache can help either side), the
 * sides alternate, and the medians are reported:
 *
 *   dns-10k weft=41000/s libuv=6100/s ratio=6.72
 *   dns-10k-cpu weft=15.0us libuv=80.0us ratio=5.33
 *
 * The second line is the clients' CPU time per lookup (the process's less
 * the server thread's), steadier than the rate when other work shares the
 * machine.
 * Needs root (the namespace, the mount, port 53); without it, it says so
 * and exits 0.
 */
#define _GNU_SOURCE
#include "responder.h" /* first: it needs _GNU_SOURCE before any include */

#include <netdb.h>
#include <sched.h>
#include <sys/mount.h>
#include <uv.h>
#include <weft/dns.h>
#include <weft/weft.h>

static int n_lookups = 10000;
static int rounds = 3;
static int family = AF_UNSPEC;
static bool pin = true;
static const char *only; /* "weft" or "libuv": run one side (profiling) */
static char (*names)[64];
static int ok_count;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time the clients used: the whole process's less the server thread's.
 * Steadier than the rate on a machine where other work comes and goes. */
static clockid_t server_clock;

static double client_cpu_s(void) {
  struct timespec p, t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &p);
  clock_gettime(server_clock, &t);
  return (double)(p.tv_sec - t.tv_sec) + (double)(p.tv_nsec - t.tv_nsec) / 1e9;
}

static void make_names(int round, const char *side) {
  for (int i = 0; i < n_lookups; i++)
    snprintf(names[i], sizeof names[i], "r%d-%s-%d.bench.test", round, side, i);
}

/* A private /etc/resolv.conf naming only 127.0.0.1. Returns 0 or -errno. */
static int private_resolv_conf(void) {
  if (geteuid() != 0)
    return -EPERM;
  if (unshare(CLONE_NEWNS) != 0)
    return -errno;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    return -errno;
  char path[] = "/tmp/weft-bench-resolv.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return -errno;
  static const char conf[] = "nameserver 127.0.0.1\n"
                             "options timeout:2 attempts:2\n";
  ssize_t w = write(fd, conf, sizeof conf - 1);
  close(fd);
  int rc = 0;
  if (w != (ssize_t)sizeof conf - 1 ||
      mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0)
    rc = -errno;
  unlink(path); /* the mount keeps the file */
  return rc;
}

static void pin_thread(pthread_t t, int cpu) {
  if (!pin)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(t, sizeof set, &set);
}

/* ---- weft ---- */

static int weft_one(void *arg) {
  weft_resolve_opts o = {.size = sizeof o, .family = family};
  weft_addr a[8];
  size_t n;
  if (weft_resolve(arg, &o, a, 8, &n) == 0)
    ok_count++;
  return 0;
}

static double weft_took, weft_cpu;

static int weft_main(void *arg) {
  (void)arg;
  /* Makes the loop's resolver (reads resolv.conf) before the clock runs. */
  weft_addr a[8];
  size_t n;
  weft_resolve_opts o = {.size = sizeof o, .family = family};
  if (weft_resolve("warm-up.bench.test", &o, a, 8, &n) != 0)
    return 1;
  weft_call *calls = calloc((size_t)n_lookups, sizeof *calls);
  if (calls == NULL)
    return 1;
  for (int i = 0; i < n_lookups; i++)
    calls[i] = (weft_call){weft_one, names[i], 0};
  double t0 = now_s(), c0 = client_cpu_s();
  int rc = weft_gather(calls, (size_t)n_lookups);
  weft_took = now_s() - t0;
  weft_cpu = client_cpu_s() - c0;
  free(calls);
  return rc;
}

static double run_weft(void) {
  ok_count = 0;
  if (weft_run(weft_main, NULL) != 0)
    return -1;
  return weft_took;
}

/* ---- libuv ---- */

static int uv_done;

static void on_addrinfo(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  (void)req;
  if (status == 0)
    ok_count++;
  uv_freeaddrinfo(res);
  uv_done++;
}

static double uv_cpu;

static double run_libuv(void) {
  uv_loop_t *loop = uv_default_loop();
  struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM};
  uv_getaddrinfo_t *reqs = calloc((size_t)n_lookups + 1, sizeof *reqs);
  if (reqs == NULL)
    return -1;
  /* Starts the pool's threads before the clock runs. */
  uv_done = 0;
  ok_count = 0;
  uv_getaddrinfo(loop, &reqs[n_lookups], on_addrinfo, "warm-up.bench.test",
                 NULL, &hints);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_done = 0;
  ok_count = 0;
  double t0 = now_s(), c0 = client_cpu_s();
  for (int i = 0; i < n_lookups; i++)
    if (uv_getaddrinfo(loop, &reqs[i], on_addrinfo, names[i], NULL, &hints))
      uv_done++;
  uv_run(loop, UV_RUN_DEFAULT);
  double took = now_s() - t0;
  uv_cpu = client_cpu_s() - c0;
  free(reqs);
  return took;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
      n_lookups = atoi(argv[++i]);
    else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (strcmp(argv[i], "-4") == 0)
      family = AF_INET;
    else if (strcmp(argv[i], "--no-pin") == 0)
      pin = false;
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
      only = argv[++i];
    else {
      fprintf(stderr,
              "usage: %s [-n N] [-r ROUNDS] [-4] [--no-pin] [--only SIDE]\n",
              argv[0]);
      return 2;
    }
  }
  if (n_lookups < 1 || rounds < 1 || rounds > 99)
    return 2;
  int rc = private_resolv_conf();
  if (rc != 0) {
    printf("dns: skipped: a private /etc/resolv.conf needs root and mount "
           "namespaces (%s)\n",
           strerror(-rc));
    return 0;
  }
  dnsr *srv = NULL;
  rc = dnsr_start(&srv, "127.0.0.1", 53);
  if (rc != 0) {
    printf("dns: skipped: cannot serve DNS on 127.0.0.1:53 (%s)\n",
           strerror(-rc));
    return 0;
  }
  bool two = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
  pin = pin && two;
  pin_thread(srv->thread, 1);
  if (pthread_getcpuclockid(srv->thread, &server_clock) != 0)
    return 1;
  pin_thread(pthread_self(), 0);
  names = calloc((size_t)n_lookups, sizeof *names);
  if (names == NULL)
    return 1;
  const char *pool = getenv("UV_THREADPOOL_SIZE");
  printf("dns: %d lookups of distinct names (%s) per round, %d rounds; server "
         "on 127.0.0.1:53 via a private /etc/resolv.conf; %s; libuv pool of "
         "%s threads\n",
         n_lookups, family == AF_INET ? "A" : "A+AAAA", rounds,
         pin ? "clients on core 0, server on core 1" : "not pinned",
         pool ? pool : "4");

  double w[100], u[100], wc[100], uc[100];
  bool all_ok = true;
  for (int r = 0; r < rounds; r++) {
    double tw = 1, tu = 1;
    int okw = n_lookups, oku = n_lookups;
    if (only == NULL || strcmp(only, "weft") == 0) {
      make_names(r, "w");
      tw = run_weft();
      okw = ok_count;
    }
    if (only == NULL || strcmp(only, "libuv") == 0) {
      make_names(r, "u");
      tu = run_libuv();
      oku = ok_count;
    }
    w[r] = n_lookups / tw;
    u[r] = n_lookups / tu;
    wc[r] = weft_cpu / n_lookups * 1e6;
    uc[r] = uv_cpu / n_lookups * 1e6;
    printf("round %d: weft %.3f s (%.0f/s, %.1f us CPU each, %d ok), libuv "
           "%.3f s (%.0f/s, %.1f us CPU each, %d ok)\n",
           r + 1, tw, w[r], wc[r], okw, tu, u[r], uc[r], oku);
    fflush(stdout);
    all_ok &= okw == n_lookups && oku == n_lookups && tw > 0 && tu > 0;
  }
  double mw = median(w, rounds), mu = median(u, rounds);
  double mwc = median(wc, rounds), muc = median(uc, rounds);
  char label[32];
  if (n_lookups % 1000 == 0)
    snprintf(label, sizeof label, "%dk", n_lookups / 1000);
  else
    snprintf(label, sizeof label, "%d", n_lookups);
  const char *fam = family == AF_INET ? "-v4" : "";
  printf("dns-%s%s weft=%.0f/s libuv=%.0f/s ratio=%.2f\n", label, fam, mw, mu,
         mw / mu);
  printf("dns-%s%s-cpu weft=%.1fus libuv=%.1fus ratio=%.2f\n", label, fam, mwc,
         muc, muc / mwc);
  uv_loop_close(uv_default_loop());
  dnsr_stop(srv);
  free(names);
  if (!all_ok) {
    fprintf(stderr, "bench-dns: some lookups failed\n");
    return 1;
  }
  return 0;
}
