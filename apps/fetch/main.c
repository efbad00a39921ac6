/* weft-fetch — the asyncio guide's first scenario: fetch many URLs at once
 * (aiohttp.ClientSession + asyncio.gather + a semaphore), in C on weft
 * (docs/guide/http-client.md).
 *
 *   async def fetch(session, sem, url):
 *       async with sem:
 *           async with session.get(url) as resp:
 *               return resp.status, len(await resp.read())
 *   async with aiohttp.ClientSession() as session:
 *       sem = asyncio.Semaphore(10)
 *       results = await asyncio.gather(*(fetch(session, sem, u) for u in urls))
 *
 *   weft-fetch [--concurrency N] [--limit N] [--h2c] [--insecure]
 *              [--timeout S] [--quiet] [URL...]
 *       fetches every URL over one shared session, at most N at once (the
 *       semaphore), and prints each status and size, then the total time.
 *       With no URL it starts weft's own hello server on a free port in
 *       this process and fetches 100 URLs from it: no network needed.
 *   weft-fetch --tour
 *       the rows weft-tour tabulates: the guide's claims, measured against
 *       local servers that wait before answering.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <weft/http.h>
#include <weft/http_client.h>
#include <weft/weft.h>

#include "app.h"

static const char *prog = "weft-fetch";

static struct {
  int concurrency;
  size_t limit;
  bool h2c, insecure, quiet, tour;
  double timeout;
  char **urls;
  int nurls;
} opt = {.concurrency = 100, .limit = 100, .timeout = 30};

/* ---- the local server (weft's HTTP server API) ---- */

static int in_flight, peak_in_flight;

static int hello(weft_http_request *req, void *arg) {
  (void)arg;
  return weft_http_respond_text(req, 200, "Hello, World!");
}

/* /wait?ms=N: waits N ms, then answers (a slow backend). */
static int wait_then_answer(weft_http_request *req, void *arg) {
  (void)arg;
  const char *q = weft_http_query(req);
  double ms = strncmp(q, "ms=", 3) == 0 ? atof(q + 3) : 100;
  in_flight++;
  if (in_flight > peak_in_flight)
    peak_in_flight = in_flight;
  int rc = weft_sleep(ms / 1000);
  in_flight--;
  return rc != 0 ? rc : weft_http_respond_text(req, 200, "waited");
}

typedef struct local {
  weft_http_router *router;
  weft_http_server *srv;
  int port;
} local;

static int local_start(local *l) {
  int rc = weft_http_router_new(&l->router);
  if (rc == 0)
    rc = weft_http_route(l->router, "GET", "/", hello, NULL);
  if (rc == 0)
    rc = weft_http_route(l->router, "GET", "/wait", wait_then_answer, NULL);
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  if (rc == 0)
    rc =
        weft_http_serve(&l->srv, &a, weft_http_router_handler, l->router, NULL);
  if (rc != 0) {
    fprintf(stderr, "%s: local server: %s\n", prog, weft_strerror(rc));
    weft_http_router_free(l->router);
    return rc;
  }
  weft_addr real;
  (void)weft_http_server_addr(l->srv, &real);
  l->port = weft_addr_port(&real);
  return 0;
}

static void local_stop(local *l) {
  (void)weft_http_server_shutdown(l->srv, 1);
  weft_http_server_free(l->srv);
  weft_http_router_free(l->router);
}

/* ---- fetching ---- */

typedef struct job {
  weft_http_session *s;
  weft_sem *sem;
  const char *url;
  int status;  /* or an error */
  size_t size; /* body bytes */
  int version;
  double ms;
  bool print;
} job;

/* One URL, holding a permit of the semaphore (the guide's tip: a bound on
 * what is in flight, whatever the pool allows). */
static int fetch_one(void *arg) {
  job *j = arg;
  int rc = weft_sem_acquire(j->sem);
  if (rc != 0)
    return rc;
  double t0 = weft_now();
  weft_http_response *r;
  rc = weft_http_get(j->s, j->url, &r);
  if (rc == 0) {
    const void *body;
    rc = weft_http_response_body(r, &body, &j->size);
    j->version = weft_http_response_version(r);
    j->status = rc == 0 ? weft_http_response_status(r) : rc;
    weft_http_response_free(r);
  } else {
    j->status = rc;
  }
  j->ms = (weft_now() - t0) * 1000;
  weft_sem_release(j->sem);
  if (j->print) {
    if (j->status > 0)
      printf("%d  %8zu B  HTTP/%s  %7.1f ms  %s\n", j->status, j->size,
             j->version == 20 ? "2" : "1.1", j->ms, j->url);
    else
      printf("ERR  %s (%s)  %7.1f ms  %s\n", weft_strerror(j->status),
             weft_err_name(j->status), j->ms, j->url);
  }
  return 0;
}

typedef struct run {
  int ok, failed;
  double seconds;
  weft_http_session_stats st;
} run;

/* Fetches urls[0..n) over one session, `concurrency` at once. */
static int fetch_all(const char *const *urls, int n, int concurrency,
                     const weft_http_session_opts *so, bool print, run *out) {
  weft_http_session *s;
  int rc = weft_http_session_new(&s, so);
  if (rc != 0) {
    fprintf(stderr, "%s: session: %s\n", prog, weft_strerror(rc));
    return rc;
  }
  weft_sem *sem;
  weft_group *g;
  job *jobs = calloc((size_t)n, sizeof *jobs);
  if (jobs == NULL || weft_sem_new(&sem, (size_t)concurrency) != 0 ||
      weft_group_new(&g) != 0) {
    fprintf(stderr, "%s: out of memory\n", prog);
    exit(1);
  }
  double t0 = weft_now();
  for (int i = 0; i < n; i++) {
    jobs[i] = (job){.s = s, .sem = sem, .url = urls[i], .print = print};
    if ((rc = weft_group_spawn(g, NULL, fetch_one, &jobs[i])) != 0)
      break;
  }
  int wrc = weft_group_wait(g);
  out->seconds = weft_now() - t0;
  out->ok = out->failed = 0;
  for (int i = 0; i < n; i++) {
    if (jobs[i].status >= 200 && jobs[i].status < 400)
      out->ok++;
    else
      out->failed++;
  }
  weft_http_session_stats_get(s, &out->st);
  weft_group_free(g);
  weft_sem_free(sem);
  free(jobs);
  weft_http_session_free(s);
  return rc != 0 ? rc : wrc;
}

static char **make_urls(int port, const char *path, int n) {
  char **u = calloc((size_t)n + 1, sizeof *u);
  for (int i = 0; u != NULL && i < n; i++) {
    u[i] = malloc(128);
    if (u[i] == NULL)
      exit(1);
    snprintf(u[i], 128, "http://127.0.0.1:%d%s", port, path);
  }
  if (u == NULL)
    exit(1);
  return u;
}

static void free_urls(char **u, int n) {
  for (int i = 0; i < n; i++)
    free(u[i]);
  free(u);
}

static int main_task(void *arg) {
  (void)arg;
  weft_http_session_opts so = {.size = sizeof so,
                               .limit = opt.limit,
                               .total_timeout = opt.timeout,
                               .insecure = opt.insecure,
                               .h2 = opt.h2c ? 1 : 0};
  local l = {0};
  char **urls = opt.urls;
  int n = opt.nurls;
  if (n == 0) {
    int rc = local_start(&l);
    if (rc != 0)
      return rc;
    printf("no URL given: fetching 100 from weft's own server, "
           "http://127.0.0.1:%d/\n",
           l.port);
    n = 100;
    urls = make_urls(l.port, "/", n);
  }
  run r;
  int rc = fetch_all((const char *const *)urls, n, opt.concurrency, &so,
                     !opt.quiet, &r);
  if (rc == 0)
    printf("%d URLs: %d ok, %d failed, in %.1f ms (%d at once, %zu "
           "connections opened, %zu reused)\n",
           n, r.ok, r.failed, r.seconds * 1000, opt.concurrency,
           (size_t)r.st.connects, (size_t)r.st.reused);
  if (opt.nurls == 0) {
    free_urls(urls, n);
    local_stop(&l);
  }
  return rc != 0 ? rc : r.failed == 0 ? 0 : 1;
}

/* ---- the tour ---- */

static int tour_task(void *arg) {
  (void)arg;
  local l;
  if (local_start(&l) != 0)
    return 1;
  bool ok = true;
  weft_http_session_opts so = {.size = sizeof so};
  run r;

  /* The first scenario: 100 URLs at once, one session. */
  char **u = make_urls(l.port, "/", 100);
  int rc = fetch_all((const char *const *)u, 100, 100, &so, false, &r);
  free_urls(u, 100);
  ok &= app_row("fetch 100 URLs concurrently over one session (its pool)",
                rc == 0 && r.ok == 100,
                "%d/100 answered in %.1f ms, %zu connections", r.ok,
                r.seconds * 1000, (size_t)r.st.connects);

  /* "100 requests in about 1 second": each answer takes 1 s. */
  u = make_urls(l.port, "/wait?ms=1000", 100);
  peak_in_flight = 0;
  rc = fetch_all((const char *const *)u, 100, 100, &so, false, &r);
  free_urls(u, 100);
  /* All answered is a fact; the time is a claim about speed, which a busy
   * machine may miss without anything being wrong. */
  static const char slow_claim[] =
      "100 requests to a server that takes 1 s each: about 1 s, not 100 s";
  if (rc == 0 && r.ok == 100)
    ok &= app_speed_row(slow_claim, r.seconds < 1.5,
                        "100/100 in %.2f s (%d served at once)", r.seconds,
                        peak_in_flight);
  else
    ok &= app_row(slow_claim, false, "%d/100 answered (%s)", r.ok,
                  weft_strerror(rc));

  /* The semaphore tip: at most 10 in flight. */
  u = make_urls(l.port, "/wait?ms=50", 100);
  peak_in_flight = 0;
  rc = fetch_all((const char *const *)u, 100, 10, &so, false, &r);
  free_urls(u, 100);
  ok &= app_row("a semaphore bounds requests in flight (10 of 100)",
                rc == 0 && r.ok == 100 && peak_in_flight <= 10,
                "at most %d at once, %d/100 in %.2f s (10 waves of 50 ms)",
                peak_in_flight, r.ok, r.seconds);

  /* The connector's limit: a pool of 5, keep-alive reuse. */
  weft_http_session_opts po = {.size = sizeof po, .limit = 5};
  u = make_urls(l.port, "/", 200);
  rc = fetch_all((const char *const *)u, 200, 200, &po, false, &r);
  free_urls(u, 200);
  weft_http_server_stats ss;
  weft_http_server_stats_get(l.srv, &ss);
  ok &= app_row("a pool (TCPConnector(limit=5)) reuses its connections",
                rc == 0 && r.ok == 200 && r.st.peak_open <= 5,
                "200 requests over %zu connections (%zu reused)",
                (size_t)r.st.connects, (size_t)r.st.reused);

  /* HTTP/2: many requests, one connection. */
  weft_http_session_opts h2 = {.size = sizeof h2, .h2 = 1};
  u = make_urls(l.port, "/", 500);
  rc = fetch_all((const char *const *)u, 500, 500, &h2, false, &r);
  free_urls(u, 500);
  ok &= app_row("HTTP/2 carries many requests on one connection (h2c)",
                rc == 0 && r.ok == 500 && r.st.connects == 1,
                "500/500 as streams of %zu connection(s), %.1f ms",
                (size_t)r.st.connects, r.seconds * 1000);

  /* Errors say what went wrong. */
  weft_http_session *s;
  weft_http_response *resp;
  char url[64];
  local_stop(&l);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", l.port);
  if (weft_http_session_new(&s, NULL) == 0) {
    rc = weft_http_get(s, url, &resp);
    ok &= app_row("a refused connection is a clear error",
                  rc == WEFT_ECONNREFUSED, "%s (%s)", weft_strerror(rc),
                  weft_err_name(rc));
    weft_http_session_free(s);
  }
  return ok ? 0 : 1;
}

static void usage(void) {
  printf("usage: %s [--concurrency N] [--limit N] [--h2c] [--insecure]\n"
         "                  [--timeout S] [--quiet] [URL...]\n"
         "       %s --tour\n"
         "  Fetches the URLs concurrently over one session and prints each\n"
         "  status, size and time, then the total. With no URL, fetches 100\n"
         "  from weft's own hello server started on a free port.\n"
         "  --concurrency N  requests in flight at most (a semaphore; 100)\n"
         "  --limit N        connections in the pool at most (100)\n"
         "  --h2c            HTTP/2 on http:// URLs (prior knowledge)\n"
         "  --insecure       do not verify TLS certificates (tests only)\n"
         "  --timeout S      seconds for each whole request (30)\n"
         "  --quiet          only the summary line\n"
         "  --tour           the guide's claims, measured (weft-tour)\n",
         prog, prog);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage();
      return 0;
    } else if (strcmp(a, "--tour") == 0) {
      opt.tour = true;
    } else if (strcmp(a, "--concurrency") == 0) {
      opt.concurrency = (int)app_num(argc, argv, &i, 1, 100000);
    } else if (strcmp(a, "--limit") == 0) {
      opt.limit = (size_t)app_num(argc, argv, &i, 1, 100000);
    } else if (strcmp(a, "--timeout") == 0) {
      opt.timeout = app_num(argc, argv, &i, 0.001, 86400);
    } else if (strcmp(a, "--h2c") == 0) {
      opt.h2c = true;
    } else if (strcmp(a, "--insecure") == 0) {
      opt.insecure = true;
    } else if (strcmp(a, "--quiet") == 0) {
      opt.quiet = true;
    } else if (strncmp(a, "http://", 7) == 0 ||
               strncmp(a, "https://", 8) == 0) {
      if (opt.urls == NULL)
        opt.urls = &argv[i];
      argv[opt.nurls++ + (int)(opt.urls - argv)] = argv[i];
    } else {
      app_bad_arg(prog, a);
    }
  }
  int rc = weft_run(opt.tour ? tour_task : main_task, NULL);
  if (rc < 0)
    fprintf(stderr, "%s: %s\n", prog, weft_strerror(rc));
  return rc == 0 ? 0 : 1;
}
