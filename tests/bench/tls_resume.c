/* bench-tls-resume — what a resumed TLS handshake saves over a full one: CPU
 * time a connection on each side, with the client's session cache off and
 * on (weft_tls_opts.session_cache_size).
 *
 *   bench-tls-resume [N]        N connections a round (default 200)
 *
 * Two worker loops (weft_run_workers): a weft TLS server on 127.0.0.1, port
 * 0, in one; a client in the other. Each thread reads its own CPU time
 * (CLOCK_THREAD_CPUTIME_ID), so other work on the machine does not count.
 * The client makes N connections one after the other, each: connect and
 * handshake (verifying the server's certificate, a self-signed RSA-2048 one
 * made for the run and trusted as its own CA), "ping", "pong" (TLS 1.3
 * tickets come with it), close. A round has its cache off (every handshake
 * full) or on (all but a first, unmeasured one resumed); TLS 1.3 then
 * TLS 1.2. The settings are the tls-handshake benchmark's (bench_net.py):
 * TLS_AES_128_GCM_SHA256 (ECDHE-RSA-AES128-GCM-SHA256 in 1.2) over X25519.
 * Prints, for each version and side, the CPU a connection with full and
 * with resumed handshakes, and their ratio:
 *
 *   tls13-resume-client full=812.3us resumed=301.2us ratio=2.70
 */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/server.h>
#include <weft/stream.h>
#include <weft/tls.h>
#include <weft/weft.h>

enum { ROUNDS = 4 }; /* 1.3 full, 1.3 resumed, 1.2 full, 1.2 resumed */

static int n_conns = 200;
static char dir[64], cert_path[96], key_path[96];
static atomic_int port;
static atomic_bool failed;

/* CPU seconds of each round: [round][0] client, [round][1] server. */
static double cpu[ROUNDS][2];
static int resumed[ROUNDS];

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A self-signed RSA-2048 certificate for localhost, in dir. */
static int make_cert(void) {
  snprintf(dir, sizeof dir, "/tmp/weft-tls-resume-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
  snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
  EVP_PKEY *k = EVP_RSA_gen(2048);
  X509 *x = X509_new();
  if (k == NULL || x == NULL)
    return -1;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  X509_EXTENSION *san =
      X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(x, k, EVP_sha256());
  FILE *c = fopen(cert_path, "w"), *f = fopen(key_path, "w");
  int ok = c != NULL && f != NULL && PEM_write_X509(c, x) == 1 &&
           PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
  if (c != NULL)
    fclose(c);
  if (f != NULL)
    fclose(f);
  X509_free(x);
  EVP_PKEY_free(k);
  return ok ? 0 : -1;
}

/* ---- the server (worker 0) ---- */

static int served;

/* The server's CPU is read when a round's first measured connection
 * starts (after the one before it) and when its last one ends. */
static void server_mark(void) {
  int r = served / (n_conns + 1), i = served % (n_conns + 1);
  if (r < ROUNDS && i == 1)
    cpu[r][1] = -thread_cpu();
  if (i == 0 && served > 0)
    cpu[r - 1][1] += thread_cpu();
}

static int serve_conn(weft_stream *s, void *arg) {
  (void)arg;
  char buf[64];
  ssize_t n = weft_stream_readline(s, buf, sizeof buf);
  int rc = n < 0 ? (int)n : weft_stream_write(s, "pong\n", 5);
  served++;
  server_mark();
  return rc == WEFT_EOF ? 0 : rc;
}

static int server_main(void) {
  weft_tls_opts to = {.size = sizeof to,
                      .cert_file = cert_path,
                      .key_file = key_path,
                      .ciphers = "ECDHE-RSA-AES128-GCM-SHA256",
                      .ciphersuites = "TLS_AES_128_GCM_SHA256"};
  weft_tls_ctx *tls = NULL;
  int rc = weft_tls_server_ctx_new(&tls, &to);
  if (rc != 0)
    return rc;
  SSL_CTX_set1_groups_list(weft_tls_ctx_ssl_ctx(tls), "X25519");
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  weft_server_opts so = {.size = sizeof so, .tls = tls};
  weft_server *srv = NULL;
  rc = weft_serve(&srv, &a, serve_conn, NULL, &so);
  if (rc == 0) {
    weft_addr real;
    (void)weft_server_addr(srv, &real);
    atomic_store(&port, weft_addr_port(&real));
    while (served < ROUNDS * (n_conns + 1) && !atomic_load(&failed))
      (void)weft_sleep(0.01);
    (void)weft_server_shutdown(srv, 1);
    weft_server_free(srv);
  }
  weft_tls_ctx_free(tls);
  return rc;
}

/* ---- the client (worker 1) ---- */

/* One connection; returns 1 when it resumed, 0 when not, or an error. */
static int one(weft_tls_ctx *ctx, const weft_addr *a) {
  weft_stream_opts o = {
      .size = sizeof o, .tls = ctx, .server_name = "localhost"};
  weft_stream *s = NULL;
  int rc = weft_stream_connect_addr(&s, a, &o);
  if (rc != 0)
    return rc;
  char buf[16];
  rc = weft_stream_write(s, "ping\n", 5);
  ssize_t n = rc == 0 ? weft_stream_readline(s, buf, sizeof buf) : rc;
  bool again = weft_stream_tls_resumed(s);
  int crc = weft_stream_close(s);
  if (n < 0)
    return (int)n;
  return crc != 0 ? crc : again;
}

static int client_main(void) {
  while (atomic_load(&port) == 0)
    (void)weft_sleep(0.001);
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", atomic_load(&port));
  for (int r = 0; r < ROUNDS; r++) {
    weft_tls_opts to = {.size = sizeof to,
                        .ca_file = cert_path,
                        .max_version = r < 2 ? 0 : WEFT_TLS_1_2,
                        .session_cache_size = r % 2 ? 0 : -1};
    weft_tls_ctx *ctx = NULL;
    int rc = weft_tls_client_ctx_new(&ctx, &to);
    if (rc != 0)
      return rc;
    SSL_CTX_set1_groups_list(weft_tls_ctx_ssl_ctx(ctx), "X25519");
    rc = one(ctx, &a); /* warm-up; with the cache, the session to resume */
    double t0 = thread_cpu();
    for (int i = 0; i < n_conns && rc >= 0; i++) {
      rc = one(ctx, &a);
      if (rc > 0)
        resumed[r]++;
    }
    cpu[r][0] = thread_cpu() - t0;
    weft_tls_ctx_free(ctx);
    if (rc < 0) {
      fprintf(stderr, "bench-tls-resume: %s\n", weft_strerror(rc));
      return rc;
    }
  }
  return 0;
}

static int worker(void *arg) {
  (void)arg;
  int rc = weft_worker_index() == 0 ? server_main() : client_main();
  if (rc < 0)
    atomic_store(&failed, true);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || atoi(argv[1]) <= 0)) {
    fprintf(stderr, "usage: bench-tls-resume [N]\n");
    return 2;
  }
  if (argc > 1)
    n_conns = atoi(argv[1]);
  if (make_cert() != 0) {
    fprintf(stderr, "bench-tls-resume: could not make a certificate\n");
    return 1;
  }
  int rc = weft_run_workers(2, worker, NULL);
  unlink(cert_path);
  unlink(key_path);
  rmdir(dir);
  if (rc != 0) {
    fprintf(stderr, "bench-tls-resume: %s\n", weft_strerror(rc));
    return 1;
  }
  static const char *const side[] = {"client", "server"};
  for (int v = 0; v < 2; v++) {
    if (resumed[2 * v] != 0 || resumed[2 * v + 1] != n_conns)
      fprintf(stderr,
              "tls1%d: resumed %d of %d without the cache, %d of %d "
              "with it\n",
              3 - v, resumed[2 * v], n_conns, resumed[2 * v + 1], n_conns);
    for (int k = 0; k < 2; k++) {
      double full = cpu[2 * v][k] / n_conns * 1e6;
      double res = cpu[2 * v + 1][k] / n_conns * 1e6;
      printf("tls1%d-resume-%s full=%.1fus resumed=%.1fus ratio=%.2f\n", 3 - v,
             side[k], full, res, full / res);
    }
  }
  return 0;
}
