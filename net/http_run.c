/* weft — weft_http_run: a whole HTTP server program (aiohttp's
 * web.run_app): loops, listener, TLS, signals, graceful shutdown. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <weft/http.h>
#include <weft/signal.h>
#include <weft/task.h>
#include <weft/weft.h>

typedef struct run {
  weft_http_handler fn;
  void *arg;
  weft_http_run_opts o;
  weft_http_server_opts so;
  weft_tls_ctx *tls;
  atomic_int port; /* the port worker 0 bound, for the others; -1 unknown */
} run;

static int serve_main(void *arg) {
  run *r = arg;
  int worker = weft_worker_index(); /* -1 without workers */
  int port = r->o.port;
  if (worker > 0 && port == 0) {
    while ((port = atomic_load(&r->port)) < 0) {
      int rc = weft_sleep(0.001);
      if (rc != 0)
        return rc;
    }
    if (port == 0)
      return 0; /* worker 0 failed and said so */
  }
  const char *host = r->o.host ? r->o.host : "127.0.0.1";
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  weft_addr a;
  int rc = host[0] == '/' || host[0] == '@' ? weft_addr_unix(&a, host)
                                            : weft_addr_ip(&a, host, port);
  weft_http_server *srv = NULL;
  if (rc != 0) {
    fprintf(stderr, "weft_http_run: --host %s: want a numeric address\n", host);
  } else {
    weft_http_server_opts so = r->so;
    so.tls = r->tls;
    so.reuse_port = so.reuse_port || worker >= 0;
    rc = weft_http_serve(&srv, &a, r->fn, r->arg, &so);
    if (rc != 0)
      fprintf(stderr, "weft_http_run: listen: %s\n", weft_strerror(rc));
  }
  if (rc != 0) {
    if (worker <= 0)
      atomic_store(&r->port, 0);
    if (worker >= 0)
      (void)weft_workers_stop();
    return rc;
  }
  if (worker <= 0) {
    weft_addr real;
    char buf[WEFT_ADDR_STRLEN];
    (void)weft_http_server_addr(srv, &real);
    atomic_store(&r->port, weft_addr_port(&real));
    printf("listening on %s://%s\n", r->tls ? "https" : "http",
           weft_addr_format(&real, buf, sizeof buf));
    fflush(stdout);
  }
  /* Only one loop may catch signals: worker 0 does and tells the rest. */
  if (worker <= 0) {
    int sigs[] = {SIGINT, SIGTERM}, which = 0;
    rc = weft_signal_wait(sigs, 2, &which);
    if (worker == 0)
      (void)weft_workers_stop();
  } else {
    rc = weft_workers_wait_stop();
  }
  double grace = r->o.grace > 0 ? r->o.grace : 10;
  (void)weft_http_server_shutdown(srv, grace);
  weft_http_server_free(srv);
  return rc == WEFT_ECANCELED ? 0 : rc;
}

int weft_http_run(weft_http_handler handler, void *arg,
                  const weft_http_run_opts *opts) {
  run r = {.fn = handler, .arg = arg};
  if (handler == NULL)
    return WEFT_EINVAL;
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof r.o ? opts->size : sizeof r.o;
    memcpy(&r.o, opts, n);
  }
  if (r.o.server != NULL) {
    size_t n = r.o.server->size && r.o.server->size < sizeof r.so
                   ? r.o.server->size
                   : sizeof r.so;
    memcpy(&r.so, r.o.server, n);
  }
  r.so.size = sizeof r.so;
  atomic_init(&r.port, -1);
  if ((r.o.tls_cert == NULL) != (r.o.tls_key == NULL))
    return WEFT_EINVAL;
  int rc;
  if (r.o.tls_cert != NULL) {
    weft_tls_opts to = {.size = sizeof to,
                        .cert_file = r.o.tls_cert,
                        .key_file = r.o.tls_key,
                        .alpn = r.so.h2 >= 0 ? WEFT_HTTP_ALPN : NULL};
    rc = weft_tls_server_ctx_new(&r.tls, &to);
    if (rc != 0) {
      fprintf(stderr, "weft_http_run: TLS certificate: %s\n",
              weft_strerror(rc));
      return rc;
    }
  }
  if (r.o.workers > 1)
    rc = weft_run_workers(r.o.workers, serve_main, &r);
  else
    rc = weft_run(serve_main, &r);
  weft_tls_ctx_free(r.tls);
  return rc;
}
