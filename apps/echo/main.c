/* weft-echo — asyncio's TCP echo server and client (the streams guide's
 * first example), in C on weft, with optional TLS.
 *
 *   weft-echo [--host H] [--port P] [--tls-cert F --tls-key F]
 *             [--max-conns N] [--idle S] [--workers N]
 *       serves: prints "listening on tcp://H:P" (tls:// with a certificate)
 *       as its first line, echoes every byte back, and on SIGINT/SIGTERM
 *       shuts down gracefully (handlers get 5 s to finish).
 *   weft-echo --client [--host H] --port P [--tls [--ca F | --insecure]]
 *             [--connections N] [--size B] [--seconds S]
 *       opens N connections that each send B bytes and wait for them to come
 *       back, over and over, and reports round trips per second.
 *   weft-echo --tour
 *       runs a server on a free port and clients against it in this process,
 *       with small settings, and prints the rows weft-tour tabulates.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/addr.h>
#include <weft/server.h>
#include <weft/stream.h>
#include <weft/tls.h>
#include <weft/weft.h>

#include "app.h"

static const char *prog = "weft-echo";

static struct {
  const char *host;
  int port;
  const char *cert, *key, *ca;
  bool client, tls, insecure, tour;
  int connections;
  int size;
  double seconds;
  int max_conns;
  double idle;
  int workers;
} opt = {
    .host = "127.0.0.1",
    .port = 0,
    .connections = 100,
    .size = 1024,
    .seconds = 5,
    .workers = 1,
};

static void fail(const char *what, int rc) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, weft_strerror(rc));
}

/* ---- the server ---- */

/* The whole protocol: whatever arrives goes back, until the peer ends. */
static int echo_handler(weft_stream *s, void *arg) {
  (void)arg;
  char buf[16384];
  for (;;) {
    ssize_t n = weft_stream_read(s, buf, sizeof buf);
    if (n == WEFT_EOF)
      return 0;
    if (n < 0)
      return (int)n;
    int rc = weft_stream_write(s, buf, (size_t)n);
    if (rc != 0)
      return rc;
  }
}

static int make_addr(weft_addr *a, const char *host, int port) {
  if (host[0] == '/' || host[0] == '@')
    return weft_addr_unix(a, host);
  /* Names need DNS; the echo server listens on numeric addresses and
   * "localhost". */
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  return weft_addr_ip(a, host, port);
}

static int server_tls(weft_tls_ctx **ctx) {
  *ctx = NULL;
  if (opt.cert == NULL)
    return 0;
  weft_tls_opts to = {
      .size = sizeof to, .cert_file = opt.cert, .key_file = opt.key};
  int rc = weft_tls_server_ctx_new(ctx, &to);
  if (rc != 0)
    fail("TLS certificate", rc);
  return rc;
}

static void print_listening(weft_server *srv, bool tls) {
  weft_addr a;
  char buf[WEFT_ADDR_STRLEN];
  (void)weft_server_addr(srv, &a);
  if (weft_addr_family(&a) == AF_UNIX)
    printf("listening on unix:%s\n", weft_addr_format(&a, buf, sizeof buf));
  else
    printf("listening on %s://%s\n", tls ? "tls" : "tcp",
           weft_addr_format(&a, buf, sizeof buf));
  fflush(stdout);
}

static void print_stats(weft_server *srv) {
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  fprintf(
      stderr,
      "%s: served %llu connections (peak %llu at once), %llu handler "
      "errors, %llu ended by the peer, %llu idle timeouts, %llu TLS "
      "failures, %llu cancelled at shutdown\n",
      prog, (unsigned long long)st.accepted, (unsigned long long)st.peak,
      (unsigned long long)st.handler_errors, (unsigned long long)st.peer_errors,
      (unsigned long long)st.idle_timeouts, (unsigned long long)st.tls_failures,
      (unsigned long long)st.cancelled);
}

/* With --workers, every worker serves the same port (SO_REUSEPORT). With
 * --port 0 the first worker picks it and the others then bind that one. */
static atomic_int shared_port = -1;

static int serve_main(void *arg) {
  (void)arg;
  int worker = weft_worker_index(); /* -1 without --workers */
  int port = opt.port;
  if (worker > 0 && port == 0) {
    while ((port = atomic_load(&shared_port)) < 0) {
      int rc = weft_sleep(0.001);
      if (rc != 0)
        return rc;
    }
  }
  weft_addr a;
  int rc = make_addr(&a, opt.host, port);
  if (rc != 0) {
    fprintf(stderr,
            "%s: --host %s: want a numeric IPv4/IPv6 address or a "
            "Unix socket path\n",
            prog, opt.host);
    atomic_store(&shared_port, 0);
    return rc;
  }
  weft_tls_ctx *tls;
  if ((rc = server_tls(&tls)) != 0)
    return rc;
  weft_server_opts so = {.size = sizeof so,
                         .max_connections = (size_t)opt.max_conns,
                         .idle_timeout = opt.idle,
                         .reuse_port = worker >= 0,
                         .tls = tls};
  weft_server *srv;
  rc = weft_serve(&srv, &a, echo_handler, NULL, &so);
  if (rc != 0) {
    fail("listen", rc);
    weft_tls_ctx_free(tls);
    return rc;
  }
  if (worker <= 0) {
    weft_addr real;
    (void)weft_server_addr(srv, &real);
    atomic_store(&shared_port, weft_addr_port(&real));
    print_listening(srv, tls != NULL);
  }

  /* Graceful shutdown on SIGINT/SIGTERM. Only one loop may catch signals:
   * with workers, worker 0 does and tells the others. */
  if (worker <= 0) {
    int sigs[] = {SIGINT, SIGTERM}, which = 0;
    rc = weft_signal_wait(sigs, 2, &which);
    if (rc == 0)
      fprintf(stderr, "%s: %s: shutting down\n", prog, strsignal(which));
    if (worker == 0)
      (void)weft_workers_stop();
  } else {
    rc = weft_workers_wait_stop();
  }
  int cancelled = weft_server_shutdown(srv, 5.0);
  if (cancelled > 0)
    fprintf(stderr, "%s: %d handlers did not finish in 5 s: cancelled\n", prog,
            cancelled);
  print_stats(srv);
  weft_server_free(srv);
  weft_tls_ctx_free(tls);
  return rc == WEFT_ECANCELED ? 0 : rc;
}

/* ---- the client ---- */

typedef struct client {
  weft_addr addr;
  weft_tls_ctx *tls;
  int size;
  double until;
  uint64_t round_trips;
  int connected;
  int failed;
  int first_error;
} client;

static int client_conn(void *arg) {
  client *c = arg;
  weft_stream_opts so = {.size = sizeof so, .tls = c->tls};
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, &c->addr, &so);
  if (rc != 0) {
    c->failed++;
    if (c->first_error == 0)
      c->first_error = rc;
    return 0;
  }
  c->connected++;
  char *out = malloc((size_t)c->size), *in = malloc((size_t)c->size);
  if (out == NULL || in == NULL) {
    rc = WEFT_ENOMEM;
    goto done;
  }
  for (int i = 0; i < c->size; i++)
    out[i] = (char)('a' + i % 26);
  while (weft_now() < c->until) {
    if ((rc = weft_stream_write(s, out, (size_t)c->size)) != 0 ||
        (rc = weft_stream_read_exactly(s, in, (size_t)c->size)) != 0)
      break;
    if (memcmp(in, out, (size_t)c->size) != 0) {
      rc = WEFT_EBADMSG;
      break;
    }
    c->round_trips++;
  }
done:
  if (rc != 0) {
    c->failed++;
    if (c->first_error == 0)
      c->first_error = rc;
  }
  free(out);
  free(in);
  (void)weft_stream_close(s);
  return 0;
}

/* Runs `n` connections for `seconds`; fills *c. Returns 0 or an error. */
static int run_clients(client *c, int n, double seconds) {
  weft_call *calls = calloc((size_t)n, sizeof *calls);
  if (calls == NULL)
    return WEFT_ENOMEM;
  for (int i = 0; i < n; i++)
    calls[i] = (weft_call){client_conn, c, 0};
  c->until = weft_now() + seconds;
  int rc = weft_gather(calls, (size_t)n);
  free(calls);
  return rc;
}

static int client_tls(weft_tls_ctx **ctx) {
  *ctx = NULL;
  if (!opt.tls)
    return 0;
  weft_tls_opts to = {
      .size = sizeof to, .ca_file = opt.ca, .insecure = opt.insecure};
  int rc = weft_tls_client_ctx_new(ctx, &to);
  if (rc != 0)
    fail("TLS", rc);
  return rc;
}

static int client_main(void *arg) {
  (void)arg;
  client c = {.size = opt.size};
  int rc = make_addr(&c.addr, opt.host, opt.port);
  if (rc != 0) {
    fprintf(stderr, "%s: --host %s: want a numeric address\n", prog, opt.host);
    return rc;
  }
  if ((rc = client_tls(&c.tls)) != 0)
    return rc;
  double t0 = weft_now();
  rc = run_clients(&c, opt.connections, opt.seconds);
  double took = weft_now() - t0;
  weft_tls_ctx_free(c.tls);
  printf("%d connections (%d failed), %d-byte messages: %llu round trips in "
         "%.2f s = %.0f round trips/s\n",
         opt.connections, c.failed, opt.size, (unsigned long long)c.round_trips,
         took, (double)c.round_trips / took);
  if (c.first_error != 0)
    fail("first connection error", c.first_error);
  if (rc == 0 && c.failed > 0)
    rc = c.first_error;
  return rc;
}

/* ---- the tour ---- */

typedef struct gate {
  weft_event *go;
  int in_handler;
  int finished;
} gate;

/* A handler in the middle of a request when shutdown starts: it finishes
 * its reply within the grace period. */
static int slow_handler(weft_stream *s, void *arg) {
  gate *g = arg;
  char buf[64];
  ssize_t n = weft_stream_read(s, buf, sizeof buf);
  if (n <= 0)
    return n == WEFT_EOF ? 0 : (int)n;
  g->in_handler++;
  int rc = weft_sleep(0.1); /* "working on the request" */
  if (rc == 0)
    rc = weft_stream_write(s, buf, (size_t)n);
  if (rc == 0)
    g->finished++;
  return rc;
}

static int ask_once(void *arg) {
  weft_addr *a = arg;
  weft_stream *s;
  int rc = weft_stream_connect_addr(&s, a, NULL);
  if (rc != 0)
    return rc;
  char buf[8];
  if ((rc = weft_stream_write(s, "request", 7)) == 0)
    rc = weft_stream_read_exactly(s, buf, 7);
  (void)weft_stream_close(s);
  return rc;
}

static bool tour_echo(int conns, double secs) {
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  weft_server *srv;
  int rc = weft_serve(&srv, &a, echo_handler, NULL, NULL);
  if (rc != 0) {
    fail("listen", rc);
    return false;
  }
  client c = {.size = 1024};
  (void)weft_server_addr(srv, &c.addr);
  char where[WEFT_ADDR_STRLEN];
  weft_addr_format(&c.addr, where, sizeof where);
  printf("listening on tcp://%s\n", where);
  bool ok = app_row("an echo server listens on a free port (port 0)",
                    weft_addr_port(&c.addr) > 0, "tcp://%s", where);
  double t0 = weft_now();
  rc = run_clients(&c, conns, secs);
  double took = weft_now() - t0;
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  char claim[96];
  snprintf(claim, sizeof claim,
           "%d concurrent connections each get their bytes back", conns);
  ok &= app_row(claim,
                rc == 0 && c.connected == conns && c.failed == 0 &&
                    st.peak == (uint64_t)conns,
                "%d/%d connected, %d failed, %.0f round trips/s (1 KiB)",
                c.connected, conns, c.failed, (double)c.round_trips / took);
  (void)weft_server_shutdown(srv, 1);
  weft_server_free(srv);
  return ok;
}

static bool tour_limit(void) {
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  weft_server_opts so = {.size = sizeof so, .max_connections = 10};
  weft_server *srv;
  if (weft_serve(&srv, &a, echo_handler, NULL, &so) != 0)
    return false;
  client c = {.size = 64};
  (void)weft_server_addr(srv, &c.addr);
  int rc = run_clients(&c, 50, 0.3);
  weft_server_stats st;
  weft_server_stats_get(srv, &st);
  bool ok = app_row(
      "at max_connections (10) accepting pauses; all 50 peers are served",
      rc == 0 && c.failed == 0 && st.accepted == 50 && st.peak <= 10 &&
          st.dropped == 0 && st.limit_pauses > 0,
      "%llu accepted, peak %llu, %llu pauses, %llu dropped",
      (unsigned long long)st.accepted, (unsigned long long)st.peak,
      (unsigned long long)st.limit_pauses, (unsigned long long)st.dropped);
  (void)weft_server_shutdown(srv, 1);
  weft_server_free(srv);
  return ok;
}

static bool tour_shutdown(void) {
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  gate g = {0};
  weft_server *srv;
  if (weft_serve(&srv, &a, slow_handler, &g, NULL) != 0)
    return false;
  weft_addr real;
  (void)weft_server_addr(srv, &real);
  enum { N = 20 };
  weft_task *t[N];
  for (int i = 0; i < N; i++)
    if (weft_spawn(&t[i], ask_once, &real) != 0)
      return false;
  while (g.in_handler < N && weft_sleep(0.005) == 0) {
  }
  double t0 = weft_now();
  int cancelled = weft_server_shutdown(srv, 2.0);
  double took = weft_now() - t0;
  int answered = 0;
  for (int i = 0; i < N; i++) {
    int r = -1;
    if (weft_join(t[i], &r) == 0 && r == 0)
      answered++;
  }
  weft_server_free(srv);
  return app_row("graceful shutdown lets handlers mid-request finish",
                 cancelled == 0 && answered == N && g.finished == N,
                 "%d/%d answered, %d cancelled, shutdown took %.2f s", answered,
                 N, cancelled, took);
}

/* TLS: a certificate made now with the openssl command, when there is one. */
static bool tour_tls(const char *dir) {
  char cert[256], key[256], cmd[1024];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           "-nodes -days 1 -subj /CN=localhost "
           "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
           ">/dev/null 2>&1",
           key, cert);
  if (system(cmd) != 0) {
    printf("(no openssl command: the TLS row is skipped)\n");
    return true;
  }
  weft_tls_opts so = {.size = sizeof so, .cert_file = cert, .key_file = key};
  weft_tls_opts co = {.size = sizeof co, .ca_file = cert};
  weft_tls_ctx *sctx = NULL, *cctx = NULL;
  int rc = weft_tls_server_ctx_new(&sctx, &so);
  if (rc == 0)
    rc = weft_tls_client_ctx_new(&cctx, &co);
  weft_server *srv = NULL;
  weft_addr a;
  (void)weft_addr_ip(&a, "127.0.0.1", 0);
  weft_server_opts sv = {.size = sizeof sv, .tls = sctx};
  if (rc == 0)
    rc = weft_serve(&srv, &a, echo_handler, NULL, &sv);
  client c = {.size = 1024, .tls = cctx};
  double took = 0;
  if (rc == 0) {
    (void)weft_server_addr(srv, &c.addr);
    double t0 = weft_now();
    rc = run_clients(&c, 20, 0.3);
    took = weft_now() - t0;
  }
  bool ok = app_row("TLS echo with the certificate given as files",
                    rc == 0 && c.connected == 20 && c.failed == 0,
                    "%d/20 connected (verified), %.0f round trips/s%s%s",
                    c.connected, took > 0 ? (double)c.round_trips / took : 0,
                    rc ? ", " : "", rc ? weft_strerror(rc) : "");
  if (srv != NULL) {
    (void)weft_server_shutdown(srv, 1);
    weft_server_free(srv);
  }
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return ok;
}

static int tour_main(void *arg) {
  (void)arg;
  bool ok = true;
  ok &= tour_echo(opt.connections, opt.seconds);
  ok &= tour_limit();
  ok &= tour_shutdown();
  char dir[] = "/tmp/weft-echo-XXXXXX";
  if (mkdtemp(dir) != NULL) {
    ok &= tour_tls(dir);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
  }
  return ok ? 0 : 1;
}

/* ---- main ---- */

static void usage(void) {
  printf(
      "usage: %s [server options]      serve (the default)\n"
      "       %s --client [options]    measure round trips per second\n"
      "       %s --tour                a server and clients, small settings\n"
      "\n"
      "  --host H         address to listen on / connect to (default "
      "127.0.0.1;\n"
      "                   a path: a Unix socket)\n"
      "  --port P         port (default 0 when serving: a free one, printed)\n"
      "server:\n"
      "  --tls-cert F     serve TLS with this PEM certificate chain ...\n"
      "  --tls-key F      ... and this private key\n"
      "  --max-conns N    serve at most N connections at once (default: no "
      "limit)\n"
      "  --idle S         close connections idle for S seconds (default: "
      "never)\n"
      "  --workers N      N loops on N threads sharing the port "
      "(SO_REUSEPORT)\n"
      "client:\n"
      "  --client         be the client\n"
      "  --tls            connect with TLS (verify with the system CAs ...)\n"
      "  --ca F           ... or with this CA certificate\n"
      "  --insecure       ... or not at all (tests only)\n"
      "  --connections N  connections at once (default 100)\n"
      "  --size B         bytes per message (default 1024)\n"
      "  --seconds S      how long to run (default 5)\n"
      "\n"
      "Serving prints \"listening on tcp://HOST:PORT\" (tls:// with a "
      "certificate)\n"
      "first and stops gracefully on SIGINT or SIGTERM.\n",
      prog, prog, prog);
}

static const char *str_arg(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value (try --help)\n", prog, argv[*i]);
    exit(2);
  }
  return argv[++*i];
}

int main(int argc, char **argv) {
  bool port_given = false, conns_given = false, secs_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage();
      return 0;
    } else if (strcmp(a, "--host") == 0) {
      opt.host = str_arg(argc, argv, &i);
    } else if (strcmp(a, "--port") == 0) {
      opt.port = (int)app_num(argc, argv, &i, 0, 65535);
      port_given = true;
    } else if (strcmp(a, "--tls-cert") == 0) {
      opt.cert = str_arg(argc, argv, &i);
    } else if (strcmp(a, "--tls-key") == 0) {
      opt.key = str_arg(argc, argv, &i);
    } else if (strcmp(a, "--ca") == 0) {
      opt.ca = str_arg(argc, argv, &i);
      opt.tls = true;
    } else if (strcmp(a, "--tls") == 0) {
      opt.tls = true;
    } else if (strcmp(a, "--insecure") == 0) {
      opt.insecure = opt.tls = true;
    } else if (strcmp(a, "--max-conns") == 0) {
      opt.max_conns = (int)app_num(argc, argv, &i, 0, 1e7);
    } else if (strcmp(a, "--idle") == 0) {
      opt.idle = app_num(argc, argv, &i, 0, 1e6);
    } else if (strcmp(a, "--workers") == 0) {
      opt.workers = (int)app_num(argc, argv, &i, 0, 1024);
    } else if (strcmp(a, "--client") == 0) {
      opt.client = true;
    } else if (strcmp(a, "--connections") == 0) {
      opt.connections = (int)app_num(argc, argv, &i, 1, 1e6);
      conns_given = true;
    } else if (strcmp(a, "--size") == 0) {
      opt.size = (int)app_num(argc, argv, &i, 1, 64 << 20);
    } else if (strcmp(a, "--seconds") == 0) {
      opt.seconds = app_num(argc, argv, &i, 0.01, 1e6);
      secs_given = true;
    } else if (strcmp(a, "--tour") == 0) {
      opt.tour = true;
    } else {
      app_bad_arg(prog, a);
    }
  }
  if ((opt.cert == NULL) != (opt.key == NULL)) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", prog);
    return 2;
  }
  if (opt.client && !port_given) {
    fprintf(stderr, "%s: --client needs --port\n", prog);
    return 2;
  }

  int rc;
  if (opt.tour) {
    if (!conns_given)
      opt.connections = 200;
    if (!secs_given)
      opt.seconds = 0.5;
    rc = weft_run(tour_main, NULL);
  } else if (opt.client) {
    rc = weft_run(client_main, NULL);
  } else if (opt.workers != 1) {
    rc = weft_run_workers(opt.workers, serve_main, NULL);
  } else {
    rc = weft_run(serve_main, NULL);
  }
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", prog, weft_strerror(rc));
    return 1;
  }
  return rc;
}
