/* stream-bench: what a weft stream costs per message, against libevent's
 * bufferevents doing the same work (DESIGN.md: "bufferevents are fine where
 * they are fast enough; on a hot path measure").
 *
 * Both sides of `pairs` TCP connections on 127.0.0.1 live in one thread:
 * each client sends `size` bytes, its server echoes them, the client waits
 * for all of them back, and again, for `seconds`. One line per run, ending
 * in the ratio weft / bufferevent:
 *
 *   stream-bench [pairs=1] [size=1024] [seconds=2] [tls]
 *
 * With "tls" both implementations run TLS 1.3 (weft's transport against
 * bufferevent_openssl) with a throwaway certificate made by the openssl
 * tool. Not a ctest: speed is measured, never asserted.
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <weft/stream.h>
#include <weft/tls.h>
#include <weft/weft.h>

static int pairs = 1;
static size_t size = 1024;
static double seconds = 2;
static bool tls;
static char dir[] = "/tmp/weft-sbench-XXXXXX";
static char crt[256], key[256];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected TCP pair over loopback (blocking setup, then non-blocking). */
static void tcp_pair(int *a, int *b) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 4) ||
      getsockname(l, (struct sockaddr *)&sa, &len))
    abort();
  *a = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(*a, (struct sockaddr *)&sa, sizeof sa))
    abort();
  *b = accept(l, NULL, NULL);
  close(l);
  int one = 1;
  setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  evutil_make_socket_nonblocking(*a);
  evutil_make_socket_nonblocking(*b);
}

/* ---- weft ---- */

static weft_tls_ctx *wcli, *wsrv;
static uint64_t w_trips;
static double w_end;

static int w_server(void *p) {
  weft_stream *s = p;
  char *buf = malloc(65536);
  if (wsrv && weft_stream_start_tls(s, wsrv, NULL) != 0)
    abort();
  for (;;) {
    ssize_t n = weft_stream_read(s, buf, 65536);
    if (n <= 0)
      break;
    if (weft_stream_write(s, buf, (size_t)n) != 0)
      break;
  }
  free(buf);
  weft_stream_free(s);
  return 0;
}

static int w_client(void *p) {
  weft_stream *s = p;
  char *buf = malloc(size);
  memset(buf, 'x', size);
  if (wcli && weft_stream_start_tls(s, wcli, "localhost") != 0)
    abort();
  while (weft_now() < w_end) {
    if (weft_stream_write(s, buf, size) != 0 ||
        weft_stream_read_exactly(s, buf, size) != 0)
      abort();
    w_trips++;
  }
  free(buf);
  weft_stream_free(s);
  return 0;
}

static int w_main(void *arg) {
  (void)arg;
  if (tls) {
    weft_tls_opts so = {.size = sizeof so, .cert_file = crt, .key_file = key};
    weft_tls_opts co = {.size = sizeof co, .ca_file = crt};
    if (weft_tls_server_ctx_new(&wsrv, &so) ||
        weft_tls_client_ctx_new(&wcli, &co))
      abort();
  }
  w_end = weft_now() + seconds;
  weft_task **ts = calloc((size_t)pairs * 2, sizeof *ts);
  for (int i = 0; i < pairs; i++) {
    int a, b;
    tcp_pair(&a, &b);
    weft_stream *sa, *sb;
    if (weft_stream_from_fd(&sa, a, NULL) || weft_stream_from_fd(&sb, b, NULL))
      abort();
    if (weft_spawn(&ts[2 * i], w_client, sa) ||
        weft_spawn(&ts[2 * i + 1], w_server, sb))
      abort();
  }
  for (int i = 0; i < 2 * pairs; i++)
    if (weft_join(ts[i], NULL))
      abort();
  free(ts);
  weft_tls_ctx_free(wsrv);
  weft_tls_ctx_free(wcli);
  return 0;
}

/* ---- bufferevents ---- */

static uint64_t b_trips;
static double b_end;
static struct event_base *base;
static int b_live;
static SSL_CTX *bcli, *bsrv;

static void b_event(struct bufferevent *bev, short what, void *arg) {
  (void)arg;
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
    bufferevent_free(bev);
    if (--b_live == 0)
      event_base_loopbreak(base);
  }
}

static void b_server_read(struct bufferevent *bev, void *arg) {
  (void)arg;
  bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void b_client_read(struct bufferevent *bev, void *arg) {
  char *buf = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  if (evbuffer_get_length(in) < size)
    return;
  evbuffer_drain(in, size);
  b_trips++;
  if (now() < b_end) {
    bufferevent_write(bev, buf, size);
  } else {
    bufferevent_free(bev); /* the server sees EOF */
    --b_live;
  }
}

static void b_run(void) {
  base = event_base_new();
  b_end = now() + seconds;
  char *buf = malloc(size);
  memset(buf, 'x', size);
  for (int i = 0; i < pairs; i++) {
    int a, b;
    tcp_pair(&a, &b);
    struct bufferevent *ca, *sb;
    if (tls) {
      ca = bufferevent_openssl_socket_new(base, a, SSL_new(bcli),
                                          BUFFEREVENT_SSL_CONNECTING,
                                          BEV_OPT_CLOSE_ON_FREE);
      sb = bufferevent_openssl_socket_new(base, b, SSL_new(bsrv),
                                          BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
    } else {
      ca = bufferevent_socket_new(base, a, BEV_OPT_CLOSE_ON_FREE);
      sb = bufferevent_socket_new(base, b, BEV_OPT_CLOSE_ON_FREE);
    }
    bufferevent_setcb(ca, b_client_read, NULL, b_event, buf);
    bufferevent_setcb(sb, b_server_read, NULL, b_event, NULL);
    bufferevent_enable(ca, EV_READ | EV_WRITE);
    bufferevent_enable(sb, EV_READ | EV_WRITE);
    b_live += 2;
    bufferevent_write(ca, buf, size);
  }
  event_base_dispatch(base);
  event_base_free(base);
  free(buf);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "pairs=", 6) == 0)
      pairs = atoi(argv[i] + 6);
    else if (strncmp(argv[i], "size=", 5) == 0)
      size = (size_t)atol(argv[i] + 5);
    else if (strncmp(argv[i], "seconds=", 8) == 0)
      seconds = atof(argv[i] + 8);
    else if (strcmp(argv[i], "tls") == 0)
      tls = true;
    else {
      fprintf(stderr, "usage: %s [pairs=N] [size=B] [seconds=S] [tls]\n",
              argv[0]);
      return 2;
    }
  }
  if (tls) {
    if (mkdtemp(dir) == NULL)
      return 1;
    snprintf(crt, sizeof crt, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -keyout %s -out %s -days 1 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost 2>/dev/null",
             key, crt);
    if (system(cmd) != 0)
      return 1;
    bcli = SSL_CTX_new(TLS_client_method());
    bsrv = SSL_CTX_new(TLS_server_method());
    SSL_CTX_load_verify_locations(bcli, crt, NULL);
    SSL_CTX_set_verify(bcli, SSL_VERIFY_PEER, NULL);
    SSL_CTX_use_certificate_chain_file(bsrv, crt);
    SSL_CTX_use_PrivateKey_file(bsrv, key, SSL_FILETYPE_PEM);
  }
  if (weft_run(w_main, NULL) != 0)
    return 1;
  b_run();
  double w = (double)w_trips / seconds, b = (double)b_trips / seconds;
  printf("stream-%s pairs=%d size=%zu weft=%.0f/s bufferevent=%.0f/s "
         "ratio=%.2f\n",
         tls ? "tls" : "tcp", pairs, size, w, b, w / b);
  if (tls) {
    unlink(crt);
    unlink(key);
    rmdir(dir);
  }
  return 0;
}
