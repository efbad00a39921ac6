/* http-client-peers: the client against real servers started on loopback
 * in a temporary directory - nginx (HTTP/1.1, h2 over TLS, h2c) and h2o
 * (h2 over TLS, HTTP/1.1, h2c). nginx's $connection (a serial number per
 * connection) proves reuse and the pool's limits from the server's side.
 * A peer that is not installed is skipped. */
#include "test_http_client_util.h"

static hc_peer ngx;
static const char *certs;

typedef struct job {
  weft_http_session *s;
  char url[128];
  int ok, v2;
  /* nginx connection serials seen */
  long serials[64];
  int nserials;
} job;

static void seen(job *j, long serial) {
  for (int i = 0; i < j->nserials; i++)
    if (j->serials[i] == serial)
      return;
  if (j->nserials < 64)
    j->serials[j->nserials++] = serial;
}

static int job_get(void *arg) {
  job *j = arg;
  weft_http_response *r;
  if (weft_http_get(j->s, j->url, &r) != 0)
    return 0;
  const void *b;
  size_t n;
  if (weft_http_response_body(r, &b, &n) == 0 &&
      weft_http_response_status(r) == 200) {
    j->ok++;
    seen(j, atol(b));
  }
  if (weft_http_response_version(r) == 20)
    j->v2++;
  weft_http_response_free(r);
  return 0;
}

static void run_jobs(job *j, int n) {
  weft_group *g;
  T_OK(weft_group_new(&g));
  for (int i = 0; i < n; i++)
    T_OK(weft_group_spawn(g, NULL, job_get, j));
  T_OK(weft_group_wait(g));
  weft_group_free(g);
}

static int t_nginx_h1(void *arg) {
  (void)arg;
  if (!hc_nginx_start(&ngx, certs, "valid"))
    return 0;
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, NULL));
  /* Sequential: one connection, reused (one serial). */
  job j = {.s = s};
  snprintf(j.url, sizeof j.url, "http://127.0.0.1:%d/conn", ngx.port);
  for (int i = 0; i < 50; i++)
    (void)job_get(&j);
  T_EQ(j.ok, 50);
  T_EQ(j.nserials, 1);
  T_EQ(hc_stats(s).connects, 1);
  weft_http_session_free(s);
  /* Concurrent on a pool of 3: three connections, never more. */
  weft_http_session_opts o = {.size = sizeof o, .limit = 3};
  T_OK(weft_http_session_new(&s, &o));
  job k = {.s = s};
  snprintf(k.url, sizeof k.url, "http://127.0.0.1:%d/conn", ngx.port);
  run_jobs(&k, 300);
  T_EQ(k.ok, 300);
  T_LE(k.nserials, 3);
  T_LE(hc_stats(s).peak_open, 3);
  HC_QUIET(s);
  /* gzip, chunked by nginx: decoded. */
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big.txt", ngx.port);
  weft_http_response *r;
  T_OK(weft_http_get(s, url, &r));
  T_STREQ(weft_http_response_header(r, "content-encoding"), "gzip");
  T_STREQ(weft_http_response_header(r, "transfer-encoding"), "chunked");
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 65536);
  T_TRUE(memcmp(b, "weft http client weft", 21) == 0);
  weft_http_response_free(r);
  /* Redirects and a loop. */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redir", ngx.port);
  T_OK(weft_http_get(s, url, &r));
  T_EQ(weft_http_response_status(r), 200);
  T_EQ(weft_http_response_redirects(r), 1);
  weft_http_response_free(r);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/loop", ngx.port);
  T_RC(weft_http_get(s, url, &r), WEFT_EHTTP_REDIRECTS);
  /* nginx closes an idle connection (keepalive_timeout 300ms there). */
  weft_http_session_free(s);
  T_OK(weft_http_session_new(&s, NULL));
  char body[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/short", ngx.port);
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  T_EQ(hc_stats(s).idle, 1);
  T_OK(weft_sleep(0.8));
  T_EQ(hc_stats(s).open, 0);
  T_EQ(hc_get(s, url, body, sizeof body), 200);
  T_EQ(hc_stats(s).connects, 2);
  HC_QUIET(s);
  weft_http_session_free(s);
  hc_peer_stop(&ngx);
  return 0;
}

static int t_nginx_h2(void *arg) {
  (void)arg;
  if (!hc_nginx_start(&ngx, certs, "valid"))
    return 0;
  char ca[128];
  snprintf(ca, sizeof ca, "%s/ca.pem", certs);
  /* h2 over TLS: 1 000 requests at once on one connection (nginx allows
   * 128 streams: the rest wait for slots). */
  weft_http_session_opts o = {.size = sizeof o, .ca_file = ca};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  job j = {.s = s};
  snprintf(j.url, sizeof j.url, "https://localhost:%d/conn", ngx.tls_port);
  run_jobs(&j, 1000);
  T_EQ(j.ok, 1000);
  T_EQ(j.v2, 1000);
  T_EQ(j.nserials, 1);
  T_EQ(hc_stats(s).connects, 1);
  /* gzip over h2. */
  char url[128];
  snprintf(url, sizeof url, "https://localhost:%d/big.txt", ngx.tls_port);
  weft_http_response *r;
  T_OK(weft_http_get(s, url, &r));
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 65536);
  weft_http_response_free(r);
  HC_QUIET(s);
  weft_http_session_free(s);
  /* h2c with prior knowledge. */
  o.h2 = 1;
  T_OK(weft_http_session_new(&s, &o));
  job k = {.s = s};
  snprintf(k.url, sizeof k.url, "http://127.0.0.1:%d/conn", ngx.h2c_port);
  run_jobs(&k, 1000);
  T_EQ(k.ok, 1000);
  T_EQ(k.v2, 1000);
  T_EQ(k.nserials, 1);
  HC_QUIET(s);
  weft_http_session_free(s);
  hc_peer_stop(&ngx);
  /* An expired certificate. */
  if (!hc_nginx_start(&ngx, certs, "expired"))
    return 0;
  o.h2 = 0;
  T_OK(weft_http_session_new(&s, &o));
  snprintf(url, sizeof url, "https://localhost:%d/conn", ngx.tls_port);
  T_RC(weft_http_get(s, url, &r), WEFT_ETLS_EXPIRED);
  T_EQ(hc_stats(s).open, 0);
  weft_http_session_free(s);
  hc_peer_stop(&ngx);
  return 0;
}

static int t_h2o(void *arg) {
  (void)arg;
  hc_peer p;
  if (!hc_h2o_start(&p, certs))
    return 0;
  char ca[128], url[128];
  snprintf(ca, sizeof ca, "%s/ca.pem", certs);
  weft_http_session_opts o = {.size = sizeof o, .ca_file = ca};
  weft_http_session *s;
  T_OK(weft_http_session_new(&s, &o));
  job j = {.s = s};
  snprintf(j.url, sizeof j.url, "https://localhost:%d/index.txt", p.tls_port);
  run_jobs(&j, 1000);
  T_EQ(j.ok, 1000);
  T_EQ(j.v2, 1000);
  T_EQ(hc_stats(s).connects, 1);
  snprintf(url, sizeof url, "https://localhost:%d/big.txt", p.tls_port);
  weft_http_response *r;
  T_OK(weft_http_get(s, url, &r));
  const void *b;
  size_t n;
  T_OK(weft_http_response_body(r, &b, &n));
  T_EQ(n, 65536);
  weft_http_response_free(r);
  HC_QUIET(s);
  weft_http_session_free(s);
  /* HTTP/1.1 on the cleartext port, reused. */
  T_OK(weft_http_session_new(&s, NULL));
  char body[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/index.txt", p.port);
  for (int i = 0; i < 20; i++)
    T_EQ(hc_get(s, url, body, sizeof body), 200);
  T_STREQ(body, "hello from h2o\n");
  T_EQ(hc_stats(s).connects, 1);
  weft_http_session_free(s);
  /* h2c with prior knowledge on the same port. */
  o.h2 = 1;
  T_OK(weft_http_session_new(&s, &o));
  job k = {.s = s};
  snprintf(k.url, sizeof k.url, "http://127.0.0.1:%d/index.txt", p.port);
  run_jobs(&k, 500);
  T_EQ(k.ok, 500);
  T_EQ(k.v2, 500);
  T_EQ(hc_stats(s).connects, 1);
  HC_QUIET(s);
  weft_http_session_free(s);
  hc_peer_stop(&p);
  return 0;
}

static void need_certs(void) {
  certs = th_certs();
  T_TRUE(certs != NULL);
}

#define CASE(name, fn)                                                         \
  static void name(void) {                                                     \
    need_certs();                                                              \
    if (certs != NULL)                                                         \
      RUN(fn, NULL);                                                           \
  }
CASE(test_nginx_h1, t_nginx_h1)
CASE(test_nginx_h2, t_nginx_h2)
CASE(test_h2o, t_h2o)

static void test_cleanup(void) { th_certs_cleanup(); }

static const t_case cases[] = {
    {"nginx_h1", test_nginx_h1},
    {"nginx_h2", test_nginx_h2},
    {"h2o", test_h2o},
    {"cleanup", test_cleanup},
    {NULL, NULL},
};

T_MAIN("http-client-peers", cases)
