/* The HTTP client's side of tests/bench/bench_http_client.py.
 *
 *   bench-http-client get URL N CONC [h2c]
 *       N GETs of URL by CONC tasks sharing one session whose pool holds
 *       CONC connections (HTTP/2: one connection, CONC streams); each body
 *       is read whole. Prints one line:
 *         requests=N ok=K seconds=S cpu=C connects=M
 *       (seconds and cpu - user + system of this process - cover the
 *       requests only, not the start).
 *   bench-http-client serve-wait MS
 *       an HTTP server (weft's) on 127.0.0.1, a free port, answering every
 *       request after MS milliseconds; prints "port=P" and serves until
 *       killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <weft/http.h>
#include <weft/http_client.h>
#include <weft/weft.h>

static const char *url;
static long total, left, ok;
static int conc;
static bool h2c;

static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int worker(void *arg) {
  weft_http_session *s = arg;
  while (left > 0) {
    left--;
    weft_http_response *r;
    if (weft_http_get(s, url, &r) != 0)
      continue;
    const void *b;
    size_t n;
    if (weft_http_response_body(r, &b, &n) == 0 &&
        weft_http_response_status(r) == 200)
      ok++;
    weft_http_response_free(r);
  }
  return 0;
}

static int get_main(void *arg) {
  (void)arg;
  weft_http_session_opts o = {
      .size = sizeof o, .limit = (size_t)conc, .h2 = h2c ? 1 : 0};
  weft_http_session *s;
  int rc = weft_http_session_new(&s, &o);
  if (rc != 0)
    return rc;
  weft_group *g;
  if ((rc = weft_group_new(&g)) != 0)
    return rc;
  left = total;
  double c0 = cpu_now(), t0 = weft_now();
  for (int i = 0; i < conc; i++)
    if ((rc = weft_group_spawn(g, NULL, worker, s)) != 0)
      return rc;
  rc = weft_group_wait(g);
  double secs = weft_now() - t0, cpu = cpu_now() - c0;
  weft_http_session_stats st;
  weft_http_session_stats_get(s, &st);
  printf("requests=%ld ok=%ld seconds=%.6f cpu=%.6f connects=%llu\n", total, ok,
         secs, cpu, (unsigned long long)st.connects);
  weft_group_free(g);
  weft_http_session_free(s);
  return rc;
}

static double wait_ms;

static int wait_then_answer(weft_http_request *r, void *arg) {
  (void)arg;
  int rc = weft_sleep(wait_ms / 1000);
  return rc != 0 ? rc : weft_http_respond_text(r, 200, "Hello, World!");
}

static int serve_main(void *arg) {
  (void)arg;
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  weft_http_server *srv;
  int rc = weft_http_serve(&srv, &a, wait_then_answer, NULL, NULL);
  if (rc != 0)
    return rc;
  weft_addr real;
  (void)weft_http_server_addr(srv, &real);
  printf("port=%d\n", weft_addr_port(&real));
  fflush(stdout);
  for (;;)
    if ((rc = weft_sleep(3600)) != 0)
      break;
  weft_http_server_free(srv);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "get") == 0) {
    url = argv[2];
    total = atol(argv[3]);
    conc = atoi(argv[4]);
    h2c = argc > 5 && strcmp(argv[5], "h2c") == 0;
    int rc = weft_run(get_main, NULL);
    if (rc != 0)
      fprintf(stderr, "bench-http-client: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
  }
  if (argc == 3 && strcmp(argv[1], "serve-wait") == 0) {
    wait_ms = atof(argv[2]);
    return weft_run(serve_main, NULL) == 0 ? 0 : 1;
  }
  fprintf(stderr, "usage: bench-http-client get URL N CONC [h2c] | "
                  "serve-wait MS\n");
  return 2;
}
