/* net-tls: TLS against real peers on loopback — openssl s_server and
 * s_client both ways, and weft on both ends — with certificates the suite
 * makes with the openssl tool (test_tls_certs.sh): each verification
 * failure has its own code, ALPN and SNI choose as asked, STARTTLS (plain
 * and SMTP through s_client, and with the handshake pipelined behind the
 * command), records OpenSSL holds are read without new socket data, the
 * close_notify is awaitable with a timeout, handshakes honour deadlines and
 * cancellation, and no failed handshake leaves a socket open. */
#define _GNU_SOURCE
#include <math.h>
#include <openssl/ssl.h>
#include <weft/tls.h>

#include "stream_int.h" /* weft__tls_sessions */
#include "test_stream_util.h"

static char certdir[256];

static const char *cert(const char *name) {
  static char buf[8][512];
  static int i;
  char *b = buf[i++ % 8];
  snprintf(b, sizeof buf[0], "%s/%s", certdir, name);
  return b;
}

static weft_tls_ctx *client_ctx(const char *const *alpn) {
  weft_tls_opts o = {.size = sizeof o, .ca_file = cert("ca.pem"), .alpn = alpn};
  weft_tls_ctx *c = NULL;
  T_OK(weft_tls_client_ctx_new(&c, &o));
  return c;
}

static weft_tls_ctx *server_ctx(const char *name, const char *const *alpn) {
  char crt[64], key[64];
  snprintf(crt, sizeof crt, "%s.pem", name);
  snprintf(key, sizeof key, "%s.key", name);
  weft_tls_opts o = {.size = sizeof o,
                     .cert_file = cert(crt),
                     .key_file = cert(key),
                     .alpn = alpn};
  weft_tls_ctx *c = NULL;
  T_OK(weft_tls_server_ctx_new(&c, &o));
  return c;
}

/* ---- openssl s_server as the peer ---- */

typedef struct peer {
  t_proc p;
  weft_addr addr;
} peer;

/* Starts `openssl s_server -rev` (answers each line reversed) presenting
 * `name`.pem on 127.0.0.1, port 0, and reads back its port. */
static int s_server_start(peer *pe, const char *name, const char *alpn) {
  char crt[64], key[64];
  snprintf(crt, sizeof crt, "%s.pem", name);
  snprintf(key, sizeof key, "%s.key", name);
  char *argv[16];
  int k = 0;
  argv[k++] = "openssl";
  argv[k++] = "s_server";
  argv[k++] = "-accept";
  argv[k++] = "127.0.0.1:0";
  argv[k++] = "-cert";
  argv[k++] = (char *)cert(crt);
  argv[k++] = "-key";
  argv[k++] = (char *)cert(key);
  argv[k++] = "-rev";
  argv[k++] = "-naccept";
  argv[k++] = "1";
  if (alpn != NULL) {
    argv[k++] = "-alpn";
    argv[k++] = (char *)alpn;
  }
  argv[k] = NULL;
  int rc = t_spawn(&pe->p, argv, true);
  T_OK(rc);
  if (rc != 0)
    return rc;
  char out[512];
  rc = t_proc_expect(&pe->p, "ACCEPT ", out, sizeof out, 10);
  char *at = strstr(out, "ACCEPT ");
  char *colon = at ? strrchr(at, ':') : NULL;
  if (colon == NULL)
    fprintf(stderr, "  s_server said (%s): %s\n", weft_err_name(rc), out);
  T_TRUE(colon != NULL);
  if (rc != 0 || colon == NULL) {
    t_proc_kill(&pe->p);
    return rc ? rc : WEFT_EPROTO;
  }
  T_OK(weft_addr_ip(&pe->addr, "127.0.0.1", atoi(colon + 1)));
  return 0;
}

/* ---- weft as the client of s_server ---- */

static int m_client_s_server(void *arg) {
  (void)arg;
  peer pe;
  if (s_server_start(&pe, "valid", "h2,http/1.1") != 0)
    return -1;
  static const char *const alpn[] = {"http/1.1", NULL};
  weft_tls_ctx *ctx = client_ctx(alpn);
  weft_stream_opts o = {.size = sizeof o, .tls = ctx};
  weft_stream *s = NULL;
  /* By name: SNI "localhost", and the certificate must name it. */
  T_OK(weft_stream_connect(&s, "localhost", weft_addr_port(&pe.addr), &o));
  weft_tls_ctx_free(ctx); /* the stream keeps what it needs */
  char buf[64];
  T_OK(weft_stream_write(s, "hello\n", 6));
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 6);
  T_STREQ(buf, "olleh\n");
  T_STREQ(weft_stream_tls_alpn(s), "http/1.1");
  T_STREQ(weft_stream_tls_version(s), "TLSv1.3");
  T_TRUE(weft_stream_tls_cipher(s) != NULL);
  T_TRUE(weft_stream_tls_ssl(s) != NULL);
  T_FALSE(weft_stream_tls_resumed(s));
  weft_stream_info info;
  weft_stream_info_get(s, &info);
  T_TRUE(info.tls);
  T_OK(weft_stream_close(s));
  T_EQ(t_proc_wait(&pe.p, 5), 0);
  return 0;
}
static void test_client_s_server(void) { RUN(m_client_s_server); }

/* By address with no name: the certificate must carry the IP address. */
static int m_client_by_ip(void *arg) {
  (void)arg;
  peer pe;
  if (s_server_start(&pe, "valid", NULL) != 0)
    return -1;
  weft_tls_ctx *ctx = client_ctx(NULL);
  weft_stream_opts o = {.size = sizeof o, .tls = ctx};
  weft_stream *s = NULL;
  T_OK(weft_stream_connect_addr(&s, &pe.addr, &o));
  char buf[64];
  T_OK(weft_stream_write(s, "abc\n", 4));
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 4);
  T_STREQ(buf, "cba\n");
  T_TRUE(weft_stream_tls_alpn(s) == NULL);
  weft_stream_free(s);
  weft_tls_ctx_free(ctx);
  t_proc_kill(&pe.p);
  return 0;
}
static void test_client_by_ip(void) { RUN(m_client_by_ip); }

/* Each certificate problem, each with its own code; nothing leaks. */
static int verify_case(const char *name, const char *host, int want,
                       weft_tls_ctx *ctx) {
  peer pe;
  if (s_server_start(&pe, name, NULL) != 0)
    return -1;
  int fds = t_count_fds();
  weft_stream_opts o = {.size = sizeof o, .tls = ctx, .server_name = host};
  weft_stream *s = NULL;
  int rc = weft_stream_connect_addr(&s, &pe.addr, &o);
  if (rc != want)
    fprintf(stderr, "  %s: got %s (%s)\n", name, weft_err_name(rc),
            weft_strerror(rc));
  T_RC(rc, want);
  if (rc == 0) {
    T_OK(weft_stream_close(s));
  } else {
    T_TRUE(s == NULL);
    T_EQ(t_count_fds(), fds); /* the failed handshake closed its socket */
  }
  t_proc_kill(&pe.p);
  return 0;
}

static int m_verify_errors(void *arg) {
  (void)arg;
  weft_tls_ctx *ctx = client_ctx(NULL);
  verify_case("valid", "localhost", 0, ctx);
  verify_case("expired", "localhost", WEFT_ETLS_EXPIRED, ctx);
  verify_case("notyet", "localhost", WEFT_ETLS_NOT_YET_VALID, ctx);
  verify_case("wronghost", "localhost", WEFT_ETLS_HOSTNAME, ctx);
  verify_case("wronghost", NULL, WEFT_ETLS_HOSTNAME, ctx); /* IP check */
  verify_case("wronghost", "127.0.0.1", WEFT_ETLS_HOSTNAME, ctx);
  verify_case("valid", "[::1]", 0, ctx); /* an IP name, brackets and all */
  verify_case("unknownca", "localhost", WEFT_ETLS_UNKNOWN_CA, ctx);
  verify_case("selfsigned", "localhost", WEFT_ETLS_SELF_SIGNED, ctx);
  verify_case("valid", "other.test", WEFT_ETLS_HOSTNAME, ctx);
  weft_tls_ctx_free(ctx);
  /* The system store does not know the test CA. */
  weft_tls_ctx *sys = NULL;
  T_OK(weft_tls_client_ctx_new(&sys, NULL));
  verify_case("valid", "localhost", WEFT_ETLS_UNKNOWN_CA, sys);
  weft_tls_ctx_free(sys);
  /* insecure: anything goes (tests only). */
  weft_tls_opts io = {.size = sizeof io, .insecure = true};
  weft_tls_ctx *ins = NULL;
  T_OK(weft_tls_client_ctx_new(&ins, &io));
  verify_case("selfsigned", "wrong.example", 0, ins);
  weft_tls_ctx_free(ins);
  T_STREQ(weft_err_name(WEFT_ETLS_EXPIRED), "WEFT_ETLS_EXPIRED");
  T_STREQ(weft_strerror(WEFT_ETLS_SELF_SIGNED), "self-signed certificate");
  return 0;
}
static void test_verify_errors(void) { RUN(m_verify_errors); }

/* ---- weft as the server ---- */

typedef int (*serve_fn)(weft_stream *s, void *arg);

typedef struct srv {
  int lfd;
  weft_addr addr;
  weft_tls_ctx *ctx;
  serve_fn fn;
  void *arg;
  bool abort; /* end with weft_stream_abort, not weft_stream_free */
  int hs_rc;  /* what start_tls returned */
  int rc;     /* what fn returned */
  char sni[64];
  char alpn[32];
} srv;

static int serve_one(void *p) {
  srv *v = p;
  weft_stream *s = NULL;
  int rc = t_accept(v->lfd, &s, NULL);
  if (rc != 0)
    return rc;
  v->hs_rc = v->ctx ? weft_stream_start_tls(s, v->ctx, NULL) : 0;
  if (v->hs_rc == 0 && v->ctx) {
    const char *n = weft_stream_tls_server_name(s);
    snprintf(v->sni, sizeof v->sni, "%s", n ? n : "");
    n = weft_stream_tls_alpn(s);
    snprintf(v->alpn, sizeof v->alpn, "%s", n ? n : "");
  }
  v->rc = v->hs_rc == 0 && v->fn ? v->fn(s, v->arg) : 0;
  if (v->abort)
    weft_stream_abort(s);
  else
    weft_stream_free(s);
  return 0;
}

static void srv_start(srv *v, weft_tls_ctx *ctx, serve_fn fn, void *arg,
                      weft_task **t) {
  memset(v, 0, sizeof *v);
  v->lfd = t_listen("127.0.0.1", 16, &v->addr);
  v->ctx = ctx;
  v->fn = fn;
  v->arg = arg;
  T_OK(weft_spawn(t, serve_one, v));
}

static void srv_stop(srv *v, weft_task *t) {
  T_OK(weft_join(t, NULL));
  close(v->lfd);
}

/* Reads a line, answers "pong\n", and closes with a close_notify. */
static int serve_pong(weft_stream *s, void *arg) {
  (void)arg;
  char buf[64];
  ssize_t n = weft_stream_readline(s, buf, sizeof buf);
  if (n < 0)
    return (int)n;
  T_STREQ(buf, "ping\n");
  T_OK(weft_stream_write(s, "pong\n", 5));
  T_OK(weft_stream_shutdown(s));
  return 0;
}

static int s_client(t_proc *p, const srv *v, const char *name, const char *alpn,
                    const char *extra1, const char *extra2) {
  char hostport[64];
  snprintf(hostport, sizeof hostport, "127.0.0.1:%d", weft_addr_port(&v->addr));
  char *argv[24];
  int k = 0;
  argv[k++] = "openssl";
  argv[k++] = "s_client";
  argv[k++] = "-connect";
  argv[k++] = hostport;
  argv[k++] = "-servername";
  argv[k++] = (char *)name;
  argv[k++] = "-verify_hostname";
  argv[k++] = (char *)name;
  argv[k++] = "-CAfile";
  argv[k++] = (char *)cert("ca.pem");
  argv[k++] = "-verify_return_error";
  argv[k++] = "-quiet";
  if (alpn != NULL) {
    argv[k++] = "-alpn";
    argv[k++] = (char *)alpn;
  }
  if (extra1 != NULL)
    argv[k++] = (char *)extra1;
  if (extra2 != NULL)
    argv[k++] = (char *)extra2;
  argv[k] = NULL;
  return t_spawn(p, argv, true);
}

static int m_s_client(void *arg) {
  (void)arg;
  static const char *const alpn[] = {"h2", "http/1.1", NULL};
  weft_tls_ctx *ctx = server_ctx("valid", alpn);
  srv v;
  weft_task *t;
  srv_start(&v, ctx, serve_pong, NULL, &t);
  t_proc p;
  T_OK(s_client(&p, &v, "localhost", "http/1.1", NULL, NULL));
  T_EQ(write(p.in, "ping\n", 5), 5);
  char out[256];
  T_OK(t_proc_expect(&p, "pong\n", out, sizeof out, 10));
  T_EQ(t_proc_wait(&p, 10), 0);
  srv_stop(&v, t);
  T_OK(v.hs_rc);
  T_OK(v.rc);
  T_STREQ(v.sni, "localhost");
  T_STREQ(v.alpn, "http/1.1");
  weft_tls_ctx_free(ctx);
  return 0;
}
static void test_s_client(void) { RUN(m_s_client); }

/* s_client refuses an expired certificate; the server hears why. */
static int m_s_client_rejects(void *arg) {
  (void)arg;
  weft_tls_ctx *ctx = server_ctx("expired", NULL);
  srv v;
  weft_task *t;
  int fds = t_count_fds();
  srv_start(&v, ctx, serve_pong, NULL, &t);
  t_proc p;
  T_OK(s_client(&p, &v, "localhost", NULL, NULL, NULL));
  T_NE(t_proc_wait(&p, 10), 0);
  srv_stop(&v, t);
  T_RC(v.hs_rc, WEFT_ETLS_REJECTED);
  T_EQ(t_count_fds(), fds);
  weft_tls_ctx_free(ctx);
  return 0;
}
static void test_s_client_rejects(void) { RUN(m_s_client_rejects); }

/* SNI: a second certificate for other.test, and a callback. */
static weft_tls_ctx *sni_cb_ctx;
static int sni_calls;

static weft_tls_ctx *pick(void *arg, const char *name) {
  (void)arg;
  sni_calls++;
  return name && strcmp(name, "cb.other.test") == 0 ? sni_cb_ctx : NULL;
}

static int m_sni(void *arg) {
  (void)arg;
  weft_tls_ctx *ctx = server_ctx("valid", NULL);
  T_OK(weft_tls_ctx_add_cert(ctx, cert("other.pem"), cert("other.key")));
  srv v;
  weft_task *t;
  t_proc p;
  char out[256];
  /* s_client asks for other.test and verifies that name. */
  srv_start(&v, ctx, serve_pong, NULL, &t);
  T_OK(s_client(&p, &v, "other.test", NULL, NULL, NULL));
  T_EQ(write(p.in, "ping\n", 5), 5);
  T_OK(t_proc_expect(&p, "pong\n", out, sizeof out, 10));
  T_EQ(t_proc_wait(&p, 10), 0);
  srv_stop(&v, t);
  T_OK(v.hs_rc);
  T_STREQ(v.sni, "other.test");

  /* weft clients: each name gets its certificate (else verification
   * would fail); a wildcard matches one label. */
  static const char *const names[] = {"localhost", "x.other.test",
                                      "other.test"};
  weft_tls_ctx *cc = client_ctx(NULL);
  for (int i = 0; i < 3; i++) {
    srv_start(&v, ctx, serve_pong, NULL, &t);
    weft_stream_opts o = {.size = sizeof o, .tls = cc, .server_name = names[i]};
    weft_stream *s = NULL;
    T_OK(weft_stream_connect_addr(&s, &v.addr, &o));
    T_OK(weft_stream_write(s, "ping\n", 5));
    char buf[16];
    T_EQ(weft_stream_readline(s, buf, sizeof buf), 5);
    weft_stream_free(s);
    srv_stop(&v, t);
    T_STREQ(v.sni, names[i]);
  }

  /* A callback that picks a context of its own. */
  sni_cb_ctx = server_ctx("other", NULL);
  weft_tls_ctx_set_sni(ctx, pick, NULL);
  srv_start(&v, ctx, serve_pong, NULL, &t);
  weft_stream_opts o = {
      .size = sizeof o, .tls = cc, .server_name = "cb.other.test"};
  weft_stream *s = NULL;
  T_OK(weft_stream_connect_addr(&s, &v.addr, &o));
  T_OK(weft_stream_write(s, "ping\n", 5));
  char buf[16];
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 5);
  weft_stream_free(s);
  srv_stop(&v, t);
  T_EQ(sni_calls, 1);
  weft_tls_ctx_free(sni_cb_ctx);
  weft_tls_ctx_free(cc);
  weft_tls_ctx_free(ctx);
  return 0;
}
static void test_sni(void) { RUN(m_sni); }

/* ---- weft on both ends ---- */

/* Connects a weft client with `cctx` to a weft server with `sctx` running
 * fn; returns the client's connect result (and the stream in *out). */
static int pair_connect(srv *v, weft_task **t, weft_tls_ctx *sctx,
                        weft_tls_ctx *cctx, serve_fn fn, void *arg,
                        weft_stream **out) {
  srv_start(v, sctx, fn, arg, t);
  weft_stream_opts o = {
      .size = sizeof o, .tls = cctx, .server_name = "localhost"};
  return weft_stream_connect_addr(out, &v->addr, &o);
}

static int m_alpn(void *arg) {
  (void)arg;
  static const char *const salpn[] = {"h2", "http/1.1", NULL};
  static const char *const c1[] = {"http/1.1", "h2", NULL};
  static const char *const c2[] = {"spdy/1", NULL};
  weft_tls_ctx *sctx = server_ctx("valid", salpn);
  weft_tls_ctx *cc1 = client_ctx(c1), *cc2 = client_ctx(c2);
  srv v;
  weft_task *t;
  weft_stream *s = NULL;
  /* The server's preference wins. */
  T_OK(pair_connect(&v, &t, sctx, cc1, serve_pong, NULL, &s));
  T_STREQ(weft_stream_tls_alpn(s), "h2");
  T_OK(weft_stream_write(s, "ping\n", 5));
  char buf[16];
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 5);
  weft_stream_free(s);
  srv_stop(&v, t);
  T_STREQ(v.alpn, "h2");
  /* Nothing in common: both sides fail with WEFT_ETLS_ALPN. */
  s = NULL;
  T_RC(pair_connect(&v, &t, sctx, cc2, serve_pong, NULL, &s), WEFT_ETLS_ALPN);
  T_TRUE(s == NULL);
  srv_stop(&v, t);
  T_RC(v.hs_rc, WEFT_ETLS_ALPN);
  /* An insecure client records the self-signed certificate but goes on:
   * the failure is still the ALPN one. */
  weft_tls_ctx *ss = server_ctx("selfsigned", salpn), *ins = NULL;
  weft_tls_opts io = {.size = sizeof io, .insecure = true, .alpn = c2};
  T_OK(weft_tls_client_ctx_new(&ins, &io));
  T_RC(pair_connect(&v, &t, ss, ins, serve_pong, NULL, &s), WEFT_ETLS_ALPN);
  srv_stop(&v, t);
  weft_tls_ctx_free(ss);
  weft_tls_ctx_free(ins);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cc1);
  weft_tls_ctx_free(cc2);
  return 0;
}
static void test_alpn(void) { RUN(m_alpn); }

static int m_client_cert(void *arg) {
  (void)arg;
  weft_tls_opts so = {.size = sizeof so,
                      .cert_file = cert("valid.pem"),
                      .key_file = cert("valid.key"),
                      .ca_file = cert("ca.pem"),
                      .verify_peer = true};
  weft_tls_ctx *sctx = NULL;
  T_OK(weft_tls_server_ctx_new(&sctx, &so));
  weft_tls_opts co = {.size = sizeof co,
                      .ca_file = cert("ca.pem"),
                      .cert_file = cert("client.pem"),
                      .key_file = cert("client.key")};
  weft_tls_ctx *with = NULL, *without = client_ctx(NULL);
  T_OK(weft_tls_client_ctx_new(&with, &co));
  srv v;
  weft_task *t;
  weft_stream *s = NULL;
  T_OK(pair_connect(&v, &t, sctx, with, serve_pong, NULL, &s));
  T_OK(weft_stream_write(s, "ping\n", 5));
  char buf[16];
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 5);
  weft_stream_free(s);
  srv_stop(&v, t);
  T_OK(v.hs_rc);
  /* No certificate: the server fails with WEFT_ETLS_NO_CERT; under TLS 1.3
   * the client learns at its first read. */
  s = NULL;
  int rc = pair_connect(&v, &t, sctx, without, serve_pong, NULL, &s);
  if (rc == 0) {
    rc = (int)weft_stream_read(s, buf, sizeof buf);
    weft_stream_free(s);
  }
  T_RC(rc, WEFT_ETLS_REJECTED);
  srv_stop(&v, t);
  T_RC(v.hs_rc, WEFT_ETLS_NO_CERT);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(with);
  weft_tls_ctx_free(without);
  return 0;
}
static void test_client_cert(void) { RUN(m_client_cert); }

static int m_versions(void *arg) {
  (void)arg;
  weft_tls_opts so = {.size = sizeof so,
                      .cert_file = cert("valid.pem"),
                      .key_file = cert("valid.key"),
                      .min_version = WEFT_TLS_1_3};
  weft_tls_ctx *s13 = NULL;
  T_OK(weft_tls_server_ctx_new(&s13, &so));
  weft_tls_opts co = {.size = sizeof co,
                      .ca_file = cert("ca.pem"),
                      .max_version = WEFT_TLS_1_2,
                      .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"};
  weft_tls_ctx *c12 = NULL;
  T_OK(weft_tls_client_ctx_new(&c12, &co));
  srv v;
  weft_task *t;
  weft_stream *s = NULL;
  T_RC(pair_connect(&v, &t, s13, c12, serve_pong, NULL, &s), WEFT_ETLS_VERSION);
  srv_stop(&v, t);
  T_RC(v.hs_rc, WEFT_ETLS_VERSION);
  /* TLS 1.2 with the cipher asked for. */
  weft_tls_ctx *s12 = server_ctx("valid", NULL);
  T_OK(pair_connect(&v, &t, s12, c12, serve_pong, NULL, &s));
  T_STREQ(weft_stream_tls_version(s), "TLSv1.2");
  T_STREQ(weft_stream_tls_cipher(s), "ECDHE-ECDSA-AES128-GCM-SHA256");
  T_OK(weft_stream_write(s, "ping\n", 5));
  char buf[16];
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 5);
  T_OK(weft_stream_close(s));
  srv_stop(&v, t);
  weft_tls_ctx_free(s13);
  weft_tls_ctx_free(s12);
  weft_tls_ctx_free(c12);
  return 0;
}
static void test_versions(void) { RUN(m_versions); }

/* Records OpenSSL already holds are read without waiting for the socket
 * (libevent #854): three records arrive together, three one-byte reads
 * follow, and nothing else is ever sent until they are done. */
static int serve_three(weft_stream *s, void *arg) {
  (void)arg;
  T_OK(weft_stream_write(s, "a", 1));
  T_OK(weft_stream_write(s, "b", 1));
  T_OK(weft_stream_write(s, "c", 1));
  char buf[4];
  T_OK(weft_stream_read_exactly(s, buf, 2));
  T_EQ(memcmp(buf, "ok", 2), 0);
  return 0;
}

static int m_pending_records(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL), *cctx = client_ctx(NULL);
  srv v;
  weft_task *t;
  weft_stream *s = NULL;
  T_OK(pair_connect(&v, &t, sctx, cctx, serve_three, NULL, &s));
  T_OK(weft_sleep(0.05)); /* all three records are in by now */
  for (const char *x = "abc"; *x; x++) {
    char c = 0;
    weft_timeout scope;
    weft_timeout_enter(&scope, 2);
    T_EQ(weft_stream_read(s, &c, 1), 1);
    T_OK(weft_timeout_exit(&scope));
    T_EQ(c, *x);
  }
  T_OK(weft_stream_write(s, "ok", 2));
  T_OK(weft_stream_flush(s));
  srv_stop(&v, t);
  T_OK(v.rc);
  weft_stream_free(s);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return 0;
}
static void test_pending_records(void) { RUN(m_pending_records); }

/* Megabytes both ways at once, through the write queue's water marks. */
#define BIG (3u << 20)

static unsigned char pat(size_t i) { return (unsigned char)(i * 13 + 5); }

static int serve_echo(weft_stream *s, void *arg) {
  (void)arg;
  static unsigned char buf[65536];
  for (;;) {
    ssize_t n = weft_stream_read(s, buf, sizeof buf);
    if (n == WEFT_EOF)
      break;
    if (n < 0)
      return (int)n;
    int rc = weft_stream_write(s, buf, (size_t)n);
    if (rc != 0)
      return rc;
  }
  return weft_stream_shutdown(s);
}

static int big_writer(void *p) {
  weft_stream *s = p;
  static unsigned char chunk[10000];
  for (size_t off = 0; off < BIG; off += sizeof chunk) {
    size_t n = BIG - off < sizeof chunk ? BIG - off : sizeof chunk;
    for (size_t i = 0; i < n; i++)
      chunk[i] = pat(off + i);
    int rc = weft_stream_write(s, chunk, n);
    if (rc != 0)
      return rc;
    T_LE(weft_stream_write_buffered(s), 65536);
  }
  return weft_stream_shutdown(s);
}

static int m_big_transfer(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL), *cctx = client_ctx(NULL);
  srv v;
  weft_task *t, *w;
  weft_stream *s = NULL;
  T_OK(pair_connect(&v, &t, sctx, cctx, serve_echo, NULL, &s));
  T_OK(weft_spawn(&w, big_writer, s));
  static unsigned char buf[50000];
  size_t got = 0;
  bool bad = false;
  for (;;) {
    ssize_t n = weft_stream_read(s, buf, sizeof buf);
    if (n == WEFT_EOF)
      break;
    T_GT(n, 0);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; i++)
      bad |= buf[i] != pat(got + (size_t)i);
    got += (size_t)n;
  }
  T_EQ(got, BIG);
  T_FALSE(bad);
  int rc = -1;
  T_OK(weft_join(w, &rc));
  T_EQ(rc, 0);
  srv_stop(&v, t);
  T_OK(v.rc);
  weft_stream_free(s);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return 0;
}
static void test_big_transfer(void) { RUN(m_big_transfer); }

/* ---- STARTTLS ---- */

/* Plain "STARTTLS\n" / "OK\n", then TLS both ways. When `pipelined`, the
 * client starts its handshake right behind the command, so the server's
 * line read takes the ClientHello into its buffer too. */
typedef struct starttls {
  weft_tls_ctx *ctx;
  bool pipelined;
} starttls;

static int serve_starttls(weft_stream *s, void *arg) {
  starttls *st = arg;
  char buf[64];
  if (st->pipelined)
    T_OK(weft_sleep(0.05)); /* command and ClientHello arrive together */
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 9);
  T_STREQ(buf, "STARTTLS\n");
  if (st->pipelined)
    T_GT(weft_stream_buffered(s), 0); /* the ClientHello, read already */
  else
    T_OK(weft_stream_write(s, "OK\n", 3));
  int rc = weft_stream_start_tls(s, st->ctx, NULL);
  T_OK(rc);
  if (rc != 0)
    return rc;
  T_RC(weft_stream_start_tls(s, st->ctx, NULL), WEFT_EALREADY);
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 7);
  T_STREQ(buf, "secret\n");
  T_OK(weft_stream_write(s, "granted\n", 8));
  return weft_stream_shutdown(s);
}

static int starttls_case(bool pipelined) {
  weft_tls_ctx *sctx = server_ctx("valid", NULL), *cctx = client_ctx(NULL);
  starttls st = {sctx, pipelined};
  srv v;
  weft_task *t;
  srv_start(&v, NULL, serve_starttls, &st, &t);
  weft_stream *s = NULL;
  T_OK(weft_stream_connect_addr(&s, &v.addr, NULL));
  T_OK(weft_stream_write(s, "STARTTLS\n", 9));
  char buf[64];
  if (!pipelined) {
    T_EQ(weft_stream_readline(s, buf, sizeof buf), 3);
    T_STREQ(buf, "OK\n");
  }
  T_OK(weft_stream_start_tls(s, cctx, "localhost"));
  T_OK(weft_stream_write(s, "secret\n", 7));
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 8);
  T_STREQ(buf, "granted\n");
  T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_EOF);
  weft_stream_free(s);
  srv_stop(&v, t);
  T_OK(v.rc);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return 0;
}

static int m_starttls(void *arg) {
  (void)arg;
  return starttls_case(false);
}
static void test_starttls(void) { RUN(m_starttls); }

static int m_starttls_pipelined(void *arg) {
  (void)arg;
  return starttls_case(true);
}
static void test_starttls_pipelined(void) { RUN(m_starttls_pipelined); }

/* A real STARTTLS peer: s_client -starttls smtp talks to a tiny SMTP
 * server that upgrades its stream. */
static int serve_smtp(weft_stream *s, void *arg) {
  weft_tls_ctx *ctx = arg;
  char line[256];
  T_OK(weft_stream_write(s, "220 weft ESMTP\r\n", 16));
  ssize_t n = weft_stream_readline(s, line, sizeof line);
  T_GT(n, 0);
  T_TRUE(strncmp(line, "EHLO", 4) == 0);
  const char *caps = "250-weft\r\n250 STARTTLS\r\n";
  T_OK(weft_stream_write(s, caps, strlen(caps)));
  n = weft_stream_readline(s, line, sizeof line);
  T_STREQ(line, "STARTTLS\r\n");
  T_OK(weft_stream_write(s, "220 go ahead\r\n", 14));
  int rc = weft_stream_start_tls(s, ctx, NULL);
  T_OK(rc);
  if (rc != 0)
    return rc;
  n = weft_stream_readline(s, line, sizeof line);
  T_STREQ(line, "hello\n");
  T_OK(weft_stream_write(s, "bye\r\n", 5));
  return weft_stream_shutdown(s);
}

static int m_starttls_smtp(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL);
  srv v;
  weft_task *t;
  srv_start(&v, NULL, serve_smtp, sctx, &t);
  t_proc p;
  T_OK(s_client(&p, &v, "localhost", NULL, "-starttls", "smtp"));
  T_EQ(write(p.in, "hello\n", 6), 6);
  char out[256];
  T_OK(t_proc_expect(&p, "bye", out, sizeof out, 10));
  T_EQ(t_proc_wait(&p, 10), 0);
  srv_stop(&v, t);
  T_OK(v.rc);
  weft_tls_ctx_free(sctx);
  return 0;
}
static void test_starttls_smtp(void) { RUN(m_starttls_smtp); }

/* ---- the close_notify ---- */

typedef struct closing {
  int mode; /* 0 answer close_notify, 1 ignore it, 2 truncate, 3 late data */
} closing;

static int serve_close(weft_stream *s, void *arg) {
  closing *c = arg;
  char buf[16];
  switch (c->mode) {
  case 0:
    T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_EOF);
    return weft_stream_shutdown(s);
  case 1:
    T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_EOF);
    (void)weft_sleep(0.5); /* never answers */
    return 0;
  case 2:
    /* A FIN with no close_notify: a truncation. */
    shutdown(weft_stream_fd(s), SHUT_WR);
    (void)weft_stream_read(s, buf, sizeof buf);
    return 0;
  default:
    T_OK(weft_stream_write(s, "late", 4));
    T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_EOF);
    return weft_stream_shutdown(s);
  }
}

static int m_close_notify(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL), *cctx = client_ctx(NULL);
  srv v;
  weft_task *t;
  weft_stream *s = NULL;
  closing c = {0};
  char buf[16];
  /* The peer answers: 0. */
  T_OK(pair_connect(&v, &t, sctx, cctx, serve_close, &c, &s));
  T_OK(weft_stream_tls_shutdown(s, 2));
  weft_stream_free(s);
  srv_stop(&v, t);
  T_OK(v.rc);
  /* The peer never answers: the timeout. */
  c.mode = 1;
  T_OK(pair_connect(&v, &t, sctx, cctx, serve_close, &c, &s));
  double t0 = weft_now();
  T_RC(weft_stream_tls_shutdown(s, 0.1), WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 0.4);
  weft_stream_free(s);
  srv_stop(&v, t);
  /* The peer closes without one. */
  c.mode = 2;
  T_OK(pair_connect(&v, &t, sctx, cctx, serve_close, &c, &s));
  T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_ETLS_TRUNCATED);
  T_RC(weft_stream_tls_shutdown(s, 1), WEFT_ETLS_TRUNCATED);
  weft_stream_free(s);
  srv_stop(&v, t);
  /* Data before the peer's close_notify stays readable. */
  c.mode = 3;
  T_OK(pair_connect(&v, &t, sctx, cctx, serve_close, &c, &s));
  T_OK(weft_sleep(0.02));
  T_OK(weft_stream_tls_shutdown(s, 2));
  T_EQ(weft_stream_read(s, buf, sizeof buf), 4);
  T_EQ(memcmp(buf, "late", 4), 0);
  T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_EOF);
  T_RC(weft_stream_write(s, "x", 1), WEFT_EPIPE);
  weft_stream_free(s);
  srv_stop(&v, t);
  T_OK(v.rc);
  /* Not TLS. */
  weft_stream *a, *b;
  int sv[2];
  T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  T_OK(weft_stream_from_fd(&a, sv[0], NULL));
  T_OK(weft_stream_from_fd(&b, sv[1], NULL));
  T_RC(weft_stream_tls_shutdown(a, 1), WEFT_EINVAL);
  weft_stream_free(a);
  weft_stream_free(b);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return 0;
}
static void test_close_notify(void) { RUN(m_close_notify); }

/* A peer that resets mid-stream: the record that came first is readable,
 * then WEFT_ECONNRESET. */
static int serve_reset(weft_stream *s, void *arg) {
  T_OK(weft_stream_write(s, "abc", 3));
  T_OK(weft_stream_flush(s));
  *(bool *)arg = true; /* serve_one aborts the stream: a TCP reset */
  return 0;
}

static int m_reset(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL), *cctx = client_ctx(NULL);
  srv v;
  weft_task *t;
  weft_stream *s = NULL;
  T_OK(pair_connect(&v, &t, sctx, cctx, serve_reset, &v.abort, &s));
  srv_stop(&v, t);
  T_OK(weft_sleep(0.05));
  char buf[16];
  T_RC(weft_stream_read_exactly(s, buf, 10), WEFT_ECONNRESET);
  T_EQ(weft_stream_buffered(s), 3);
  T_EQ(weft_stream_read(s, buf, sizeof buf), 3);
  T_EQ(memcmp(buf, "abc", 3), 0);
  T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_ECONNRESET);
  weft_stream_free(s);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return 0;
}
static void test_reset(void) { RUN(m_reset); }

/* ---- deadlines and cancellation in the handshake ---- */

/* A TCP server that accepts and never speaks. */
static int silent(weft_stream *s, void *arg) {
  (void)arg;
  char buf[4096];
  while (weft_stream_read(s, buf, sizeof buf) > 0) {
  }
  return 0;
}

typedef struct conn {
  weft_addr addr;
  weft_tls_ctx *ctx;
  int rc;
} conn;

static int do_connect(void *p) {
  conn *c = p;
  weft_stream_opts o = {
      .size = sizeof o, .tls = c->ctx, .server_name = "localhost"};
  weft_stream *s = NULL;
  c->rc = weft_stream_connect_addr(&s, &c->addr, &o);
  weft_stream_free(s);
  return 0;
}

static int m_handshake_deadline(void *arg) {
  (void)arg;
  weft_tls_ctx *cctx = client_ctx(NULL);
  srv v;
  weft_task *t;
  int fds = t_count_fds();
  /* A deadline scope around the connect. */
  srv_start(&v, NULL, silent, NULL, &t);
  weft_stream_opts o = {
      .size = sizeof o, .tls = cctx, .server_name = "localhost"};
  weft_stream *s = NULL;
  weft_timeout scope;
  weft_timeout_enter(&scope, 0.1);
  T_RC(weft_stream_connect_addr(&s, &v.addr, &o), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&scope), WEFT_ETIMEDOUT);
  T_TRUE(s == NULL);
  srv_stop(&v, t);
  /* The context's own handshake timeout. */
  weft_tls_opts co = {
      .size = sizeof co, .ca_file = cert("ca.pem"), .handshake_timeout = 0.1};
  weft_tls_ctx *quick = NULL;
  T_OK(weft_tls_client_ctx_new(&quick, &co));
  srv_start(&v, NULL, silent, NULL, &t);
  o.tls = quick;
  double t0 = weft_now();
  T_RC(weft_stream_connect_addr(&s, &v.addr, &o), WEFT_ETIMEDOUT);
  T_LT(weft_now() - t0, 0.5);
  srv_stop(&v, t);
  /* Cancelled mid-handshake. */
  srv_start(&v, NULL, silent, NULL, &t);
  conn c = {.addr = v.addr, .ctx = cctx};
  weft_task *ct;
  T_OK(weft_spawn(&ct, do_connect, &c));
  T_OK(weft_sleep(0.05));
  weft_cancel(ct);
  T_OK(weft_join(ct, NULL));
  T_RC(c.rc, WEFT_ECANCELED);
  srv_stop(&v, t);
  /* A server whose client never says hello. */
  weft_tls_opts so = {.size = sizeof so,
                      .cert_file = cert("valid.pem"),
                      .key_file = cert("valid.key"),
                      .handshake_timeout = 0.1};
  weft_tls_ctx *sq = NULL;
  T_OK(weft_tls_server_ctx_new(&sq, &so));
  srv_start(&v, sq, NULL, NULL, &t);
  T_OK(weft_stream_connect_addr(&s, &v.addr, NULL)); /* plain, silent */
  srv_stop(&v, t);
  T_RC(v.hs_rc, WEFT_ETIMEDOUT);
  weft_stream_free(s);
  T_EQ(t_count_fds(), fds);
  weft_tls_ctx_free(sq);
  weft_tls_ctx_free(quick);
  weft_tls_ctx_free(cctx);
  return 0;
}
static void test_handshake_deadline(void) { RUN(m_handshake_deadline); }

/* A failed start_tls leaves the stream unusable with its error. */
static int m_failed_start_tls(void *arg) {
  (void)arg;
  peer pe;
  if (s_server_start(&pe, "expired", NULL) != 0)
    return -1;
  weft_tls_ctx *cctx = client_ctx(NULL);
  weft_stream *s = NULL;
  T_OK(weft_stream_connect_addr(&s, &pe.addr, NULL));
  T_RC(weft_stream_start_tls(s, cctx, "localhost"), WEFT_ETLS_EXPIRED);
  char buf[4];
  T_RC((int)weft_stream_read(s, buf, sizeof buf), WEFT_ETLS_EXPIRED);
  T_RC(weft_stream_write(s, "x", 1), WEFT_ETLS_EXPIRED);
  T_RC(weft_stream_start_tls(s, cctx, "localhost"), WEFT_EALREADY);
  weft_stream_free(s);
  weft_tls_ctx_free(cctx);
  t_proc_kill(&pe.p);
  return 0;
}
static void test_failed_start_tls(void) { RUN(m_failed_start_tls); }

/* ---- session resumption (the client's cache) ---- */

/* A weft TLS server on its own listener that serves `n` connections one
 * after the other (serve_pong each), noting whether each resumed. */
typedef struct rsrv {
  int lfd;
  weft_addr addr;
  weft_tls_ctx *ctx;
  int n;
  bool resumed[8];
  weft_task *t;
} rsrv;

static int rsrv_run(void *p) {
  rsrv *v = p;
  for (int i = 0; i < v->n; i++) {
    weft_stream *s = NULL;
    int rc = t_accept(v->lfd, &s, NULL);
    if (rc != 0)
      return rc;
    rc = weft_stream_start_tls(s, v->ctx, NULL);
    T_OK(rc);
    if (rc == 0) {
      v->resumed[i] = weft_stream_tls_resumed(s);
      T_OK(serve_pong(s, NULL));
    }
    weft_stream_free(s);
  }
  return 0;
}

static void rsrv_start(rsrv *v, weft_tls_ctx *ctx, int n) {
  memset(v, 0, sizeof *v);
  T_TRUE(n <= (int)(sizeof v->resumed / sizeof v->resumed[0]));
  v->lfd = t_listen("127.0.0.1", 16, &v->addr);
  v->ctx = ctx;
  v->n = n;
  T_OK(weft_spawn(&v->t, rsrv_run, v));
}

static void rsrv_stop(rsrv *v) {
  T_OK(weft_join(v->t, NULL));
  close(v->lfd);
}

/* One connection to v as `name`: ping, pong (TLS 1.3 tickets arrive with
 * it), close (with a close_notify when `clean`, else just freed). Returns
 * whether the client resumed, or -1. */
static int ping_ex(weft_tls_ctx *cctx, rsrv *v, const char *name,
                   const char *version, bool clean) {
  weft_stream_opts o = {.size = sizeof o, .tls = cctx, .server_name = name};
  weft_stream *s = NULL;
  int rc = weft_stream_connect_addr(&s, &v->addr, &o);
  T_OK(rc);
  if (rc != 0)
    return -1;
  if (version != NULL)
    T_STREQ(weft_stream_tls_version(s), version);
  char buf[16];
  T_OK(weft_stream_write(s, "ping\n", 5));
  T_EQ(weft_stream_readline(s, buf, sizeof buf), 5);
  int resumed = weft_stream_tls_resumed(s);
  if (clean)
    T_OK(weft_stream_close(s));
  else
    weft_stream_free(s);
  return resumed;
}

static int ping(weft_tls_ctx *cctx, rsrv *v, const char *name,
                const char *version) {
  return ping_ex(cctx, v, name, version, true);
}

static weft_tls_ctx *resume_client(int min, int max, int cache) {
  weft_tls_opts o = {.size = sizeof o,
                     .ca_file = cert("ca.pem"),
                     .min_version = min,
                     .max_version = max,
                     .session_cache_size = cache};
  weft_tls_ctx *c = NULL;
  T_OK(weft_tls_client_ctx_new(&c, &o));
  return c;
}

/* TLS 1.3: the first connection is a full handshake and brings two tickets
 * (OpenSSL's default); each later one resumes on a ticket, which leaves the
 * cache, and brings one more. Once the server sends no more, the two left
 * resume two connections and the next is a full handshake again. */
static int m_resume_tls13(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL);
  weft_tls_ctx *cctx = resume_client(WEFT_TLS_1_3, 0, 0);
  rsrv v;
  rsrv_start(&v, sctx, 5);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.3"), 0);
  T_EQ(weft__tls_sessions(cctx), 2);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.3"), 1);
  T_EQ(weft__tls_sessions(cctx), 2); /* one used, one new */
  SSL_CTX_set_num_tickets(weft_tls_ctx_ssl_ctx(sctx), 0);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.3"), 1);
  T_EQ(weft__tls_sessions(cctx), 1);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.3"), 1);
  T_EQ(weft__tls_sessions(cctx), 0);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.3"), 0);
  rsrv_stop(&v);
  /* The server saw the same. */
  T_FALSE(v.resumed[0]);
  T_TRUE(v.resumed[1] && v.resumed[2] && v.resumed[3]);
  T_FALSE(v.resumed[4]);
  weft_tls_ctx_free(cctx);
  weft_tls_ctx_free(sctx);
  return 0;
}
static void test_resume_tls13(void) { RUN(m_resume_tls13); }

/* TLS 1.2: one session, reused by every later connection. */
static int m_resume_tls12(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL);
  weft_tls_ctx *cctx = resume_client(0, WEFT_TLS_1_2, 0);
  rsrv v;
  rsrv_start(&v, sctx, 3);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.2"), 0);
  T_EQ(weft__tls_sessions(cctx), 1);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.2"), 1);
  T_EQ(ping(cctx, &v, "localhost", "TLSv1.2"), 1);
  T_EQ(weft__tls_sessions(cctx), 1);
  rsrv_stop(&v);
  T_FALSE(v.resumed[0]);
  T_TRUE(v.resumed[1] && v.resumed[2]);
  weft_tls_ctx_free(cctx);
  weft_tls_ctx_free(sctx);
  return 0;
}
static void test_resume_tls12(void) { RUN(m_resume_tls12); }

/* A connection freed without a close_notify (as the HTTP client's pool
 * frees one) does not spoil the session it brought for the next one. One
 * ticket a connection. */
static int m_resume_unclean(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL);
  weft_tls_ctx *c13 = resume_client(0, 0, 0);
  weft_tls_ctx *c12 = resume_client(0, WEFT_TLS_1_2, 0);
  SSL_CTX_set_num_tickets(weft_tls_ctx_ssl_ctx(sctx), 1);
  rsrv v;
  rsrv_start(&v, sctx, 6);
  T_EQ(ping_ex(c13, &v, "localhost", "TLSv1.3", false), 0);
  T_EQ(ping_ex(c13, &v, "localhost", "TLSv1.3", false), 1);
  T_EQ(ping_ex(c13, &v, "localhost", "TLSv1.3", false), 1);
  T_EQ(ping_ex(c12, &v, "localhost", "TLSv1.2", false), 0);
  T_EQ(ping_ex(c12, &v, "localhost", "TLSv1.2", false), 1);
  T_EQ(ping_ex(c12, &v, "localhost", "TLSv1.2", false), 1);
  rsrv_stop(&v);
  weft_tls_ctx_free(c13);
  weft_tls_ctx_free(c12);
  weft_tls_ctx_free(sctx);
  return 0;
}
static void test_resume_unclean(void) { RUN(m_resume_unclean); }

/* A session is offered only to the name and port it came from. Both
 * listeners share one server context, which would accept the other's
 * tickets (its ticket keys are the same, and OpenSSL does not tie a TLS 1.3
 * ticket to the SNI): only the client's key keeps them apart. */
static int m_resume_keys(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL);
  weft_tls_ctx *cctx = resume_client(0, 0, 0);
  rsrv a, b;
  rsrv_start(&a, sctx, 4);
  rsrv_start(&b, sctx, 2);
  T_EQ(ping(cctx, &a, "localhost", "TLSv1.3"), 0);
  T_EQ(ping(cctx, &b, "localhost", NULL), 0); /* another port */
  T_EQ(ping(cctx, &a, "127.0.0.1", NULL), 0); /* another name */
  T_EQ(ping(cctx, &a, NULL, NULL), 0);        /* no name: by address */
  T_EQ(ping(cctx, &a, "localhost", NULL), 1); /* the first key's turn */
  T_EQ(ping(cctx, &b, "localhost", NULL), 1);
  rsrv_stop(&a);
  rsrv_stop(&b);
  T_TRUE(a.resumed[3] && b.resumed[1]);
  weft_tls_ctx_free(cctx);
  weft_tls_ctx_free(sctx);
  return 0;
}
static void test_resume_keys(void) { RUN(m_resume_keys); }

/* session_cache_size < 0: no resumption, nothing kept. */
static int m_resume_off(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL);
  weft_tls_ctx *c13 = resume_client(0, 0, -1);
  weft_tls_ctx *c12 = resume_client(0, WEFT_TLS_1_2, -1);
  rsrv v;
  rsrv_start(&v, sctx, 4);
  T_EQ(ping(c13, &v, "localhost", "TLSv1.3"), 0);
  T_EQ(ping(c13, &v, "localhost", "TLSv1.3"), 0);
  T_EQ(ping(c12, &v, "localhost", "TLSv1.2"), 0);
  T_EQ(ping(c12, &v, "localhost", "TLSv1.2"), 0);
  T_EQ(weft__tls_sessions(c13), 0);
  T_EQ(weft__tls_sessions(c12), 0);
  rsrv_stop(&v);
  for (int i = 0; i < 4; i++)
    T_FALSE(v.resumed[i]);
  weft_tls_ctx_free(c13);
  weft_tls_ctx_free(c12);
  weft_tls_ctx_free(sctx);
  return 0;
}
static void test_resume_off(void) { RUN(m_resume_off); }

/* The bounds: WEFT_TLS_SESSIONS_PER_PEER tickets a server however many it
 * sends, and session_cache_size in all, the least recently used going. */
static int m_resume_bound(void *arg) {
  (void)arg;
  weft_tls_ctx *sctx = server_ctx("valid", NULL);
  weft_tls_ctx *cctx = resume_client(0, 0, 0);
  SSL_CTX_set_num_tickets(weft_tls_ctx_ssl_ctx(sctx), 7);
  rsrv v;
  rsrv_start(&v, sctx, 1);
  T_EQ(ping(cctx, &v, "localhost", NULL), 0);
  rsrv_stop(&v);
  T_EQ(weft__tls_sessions(cctx), WEFT_TLS_SESSIONS_PER_PEER);
  weft_tls_ctx_free(cctx);
  /* Three in all, two tickets a server: four servers. */
  SSL_CTX_set_num_tickets(weft_tls_ctx_ssl_ctx(sctx), 2);
  cctx = resume_client(0, 0, 3);
  rsrv r[4];
  rsrv_start(&r[0], sctx, 2);
  for (int i = 1; i < 4; i++)
    rsrv_start(&r[i], sctx, 1);
  size_t want[4] = {2, 3, 3, 3};
  for (int i = 0; i < 4; i++) {
    T_EQ(ping(cctx, &r[i], "localhost", NULL), 0);
    T_EQ(weft__tls_sessions(cctx), want[i]);
  }
  /* The first server's tickets went first. */
  T_EQ(ping(cctx, &r[0], "localhost", NULL), 0);
  for (int i = 0; i < 4; i++)
    rsrv_stop(&r[i]);
  weft_tls_ctx_free(cctx);
  weft_tls_ctx_free(sctx);
  return 0;
}
static void test_resume_bound(void) { RUN(m_resume_bound); }

/* One client context and one server context shared by two worker loops
 * (weft_run_workers), each connecting eight times to a server of its own
 * while the other does the same: each keeps to its own server's sessions.
 * Only a smoke test of the cache's lock: with the lock taken out, TSan
 * sees no race here (OpenSSL's own locks order the two threads). */
typedef struct rthreads {
  weft_tls_ctx *sctx, *cctx;
  int resumed[2];
} rthreads;

static int rthreads_main(void *arg) {
  rthreads *r = arg;
  int w = weft_worker_index();
  rsrv v;
  rsrv_start(&v, r->sctx, 8);
  for (int i = 0; i < 8; i++)
    if (ping(r->cctx, &v, "localhost", NULL) == 1)
      r->resumed[w]++;
  rsrv_stop(&v);
  return 0;
}

static void test_resume_threads(void) {
  rthreads r = {.sctx = server_ctx("valid", NULL),
                .cctx = resume_client(0, 0, 0)};
  T_OK(weft_run_workers(2, rthreads_main, &r));
  T_EQ(r.resumed[0], 7);
  T_EQ(r.resumed[1], 7);
  weft_tls_ctx_free(r.cctx);
  weft_tls_ctx_free(r.sctx);
}

/* ---- contexts ---- */

static void test_ctx_errors(void) {
  weft_tls_ctx *c = NULL;
  weft_tls_opts o = {.size = sizeof o};
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_EINVAL); /* no certificate */
  o.cert_file = cert("nonexistent.pem");
  o.key_file = cert("valid.key");
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_ENOENT);
  o.cert_file = cert("ca.cnf"); /* not a certificate */
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_ETLS_BADCERT);
  o.cert_file = cert("valid.pem");
  o.key_file = cert("other.key"); /* not its key */
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_ETLS_BADCERT);
  o.key_file = cert("valid.key");
  o.min_version = 0x0301; /* TLS 1.0: refused */
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_EINVAL);
  o.min_version = WEFT_TLS_1_3;
  o.max_version = WEFT_TLS_1_2;
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_EINVAL);
  o.min_version = o.max_version = 0;
  o.ciphers = "NO-SUCH-CIPHER";
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_EINVAL);
  o.ciphers = NULL;
  static const char *const empty[] = {"", NULL};
  o.alpn = empty;
  T_RC(weft_tls_server_ctx_new(&c, &o), WEFT_EINVAL);
  o.alpn = NULL;
  T_OK(weft_tls_server_ctx_new(&c, &o));
  T_TRUE(weft_tls_ctx_ssl_ctx(c) != NULL);
  T_RC(weft_tls_ctx_add_cert(c, cert("other.pem"), cert("valid.key")),
       WEFT_ETLS_BADCERT);
  T_RC(weft_tls_ctx_add_cert(c, cert("missing.pem"), cert("other.key")),
       WEFT_ENOENT);
  weft_tls_ctx_free(c);
  weft_tls_opts co = {.size = sizeof co, .ca_file = cert("nope.pem")};
  T_RC(weft_tls_client_ctx_new(&c, &co), WEFT_ENOENT);
  co.ca_file = NULL;
  co.cert_file = cert("client.pem"); /* a certificate without its key */
  T_RC(weft_tls_client_ctx_new(&c, &co), WEFT_EINVAL);
  co.cert_file = NULL;
  T_OK(weft_tls_client_ctx_new(&c, &co));
  T_RC(weft_tls_ctx_add_cert(c, cert("other.pem"), cert("other.key")),
       WEFT_EINVAL);
  weft_tls_ctx_free(c);
  weft_tls_ctx_free(NULL);
}

static const t_case cases[] = {
    {"client_s_server", test_client_s_server},
    {"client_by_ip", test_client_by_ip},
    {"verify_errors", test_verify_errors},
    {"s_client", test_s_client},
    {"s_client_rejects", test_s_client_rejects},
    {"sni", test_sni},
    {"alpn", test_alpn},
    {"client_cert", test_client_cert},
    {"versions", test_versions},
    {"pending_records", test_pending_records},
    {"big_transfer", test_big_transfer},
    {"starttls", test_starttls},
    {"starttls_pipelined", test_starttls_pipelined},
    {"starttls_smtp", test_starttls_smtp},
    {"close_notify", test_close_notify},
    {"reset", test_reset},
    {"handshake_deadline", test_handshake_deadline},
    {"failed_start_tls", test_failed_start_tls},
    {"ctx_errors", test_ctx_errors},
    {"resume_tls13", test_resume_tls13},
    {"resume_tls12", test_resume_tls12},
    {"resume_unclean", test_resume_unclean},
    {"resume_keys", test_resume_keys},
    {"resume_off", test_resume_off},
    {"resume_bound", test_resume_bound},
    {"resume_threads", test_resume_threads},
    {NULL, NULL},
};

int main(void) {
  /* The openssl peers must not die of a write to a closed pipe either. */
  signal(SIGPIPE, SIG_IGN);
  if (t_tmpdir(certdir, sizeof certdir, "tls") != 0)
    return 2;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "sh '%s' '%s'", TLS_CERTS_SH, certdir);
  if (system(cmd) != 0) {
    fprintf(stderr, "net-tls: could not make certificates\n");
    t_rmtree(certdir);
    return 2;
  }
  int rc = t_main("net-tls", cases);
  t_rmtree(certdir);
  return rc;
}
