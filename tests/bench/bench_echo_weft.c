/* bench-echo-weft — the weft side of the network benchmarks (bench_net.py).
 *
 *   bench-echo-weft HOST PORT                  TCP echo server
 *   bench-echo-weft HOST PORT CERT KEY         TLS server: handshake, then
 *                                              echo (the handshake
 *                                              benchmark's clients close
 *                                              right after it)
 *
 * Port 0 picks a free port. Prints "port=N" once listening, then serves
 * until SIGTERM or SIGINT, when it shuts down gracefully. The handler is the
 * one of apps/echo: read what is there, write it back.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft/server.h>
#include <weft/stream.h>
#include <weft/tls.h>
#include <weft/weft.h>

#include <openssl/ssl.h>

static char **args;
static int nargs;

static int echo(weft_stream *s, void *arg) {
  (void)arg;
  char buf[16384];
  for (;;) {
    ssize_t n = weft_stream_read(s, buf, sizeof buf);
    if (n < 0)
      return n == WEFT_EOF ? 0 : (int)n;
    int rc = weft_stream_write(s, buf, (size_t)n);
    if (rc != 0)
      return rc;
  }
}

static int amain(void *arg) {
  (void)arg;
  weft_addr a;
  int rc = weft_addr_ip(&a, args[1], atoi(args[2]));
  if (rc != 0)
    return rc;
  weft_tls_ctx *tls = NULL;
  if (nargs == 5) {
    /* The handshake benchmark's settings, as given to nginx: TLS 1.3 with
     * one cipher, X25519, no session cache and no tickets (every handshake
     * is a full one). */
    weft_tls_opts to = {.size = sizeof to,
                        .cert_file = args[3],
                        .key_file = args[4],
                        .min_version = WEFT_TLS_1_3,
                        .ciphersuites = "TLS_AES_128_GCM_SHA256"};
    if ((rc = weft_tls_server_ctx_new(&tls, &to)) != 0)
      return rc;
    SSL_CTX *ctx = weft_tls_ctx_ssl_ctx(tls);
    SSL_CTX_set1_groups_list(ctx, "X25519");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  weft_server_opts so = {.size = sizeof so, .tls = tls};
  weft_server *srv;
  if ((rc = weft_serve(&srv, &a, echo, NULL, &so)) != 0)
    return rc;
  weft_addr real;
  (void)weft_server_addr(srv, &real);
  printf("port=%d\n", weft_addr_port(&real));
  fflush(stdout);
  int sigs[] = {SIGTERM, SIGINT};
  rc = weft_signal_wait(sigs, 2, NULL);
  (void)weft_server_shutdown(srv, 1);
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  fprintf(stderr, "accepted=%llu tls_failures=%llu handler_errors=%llu\n",
          (unsigned long long)st.accepted, (unsigned long long)st.tls_failures,
          (unsigned long long)st.handler_errors);
  weft_server_free(srv);
  weft_tls_ctx_free(tls);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 5) {
    fprintf(stderr, "usage: %s HOST PORT [CERT KEY]\n", argv[0]);
    return 2;
  }
  args = argv;
  nargs = argc;
  signal(SIGPIPE, SIG_IGN);
  int rc = weft_run(amain, NULL);
  if (rc < 0) {
    fprintf(stderr, "bench-echo-weft: %s\n", weft_strerror(rc));
    return 1;
  }
  return 0;
}
