/* echo-libuv — the libuv peer of the TCP echo benchmark (bench_net.py).
 *
 *   echo-libuv HOST PORT      (port 0: a free one)
 *
 * Prints "port=N" once listening, then echoes every connection until
 * killed. A strong libuv server, not the tutorial one: each connection
 * reads into its own 64 KiB buffer and answers with uv_try_write, falling
 * back to a queued uv_write (of a copy, with reading paused until it is
 * done) only when the socket does not take everything at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF 65536

typedef struct conn {
  uv_tcp_t tcp;
  uv_write_t req;
  char buf[BUF];
  char *pending;
} conn;

static void on_close(uv_handle_t *h) { free(h->data); }

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)suggested;
  conn *c = h->data;
  *b = uv_buf_init(c->buf, BUF);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void write_cb(uv_write_t *req, int status) {
  conn *c = req->data;
  free(c->pending);
  c->pending = NULL;
  if (status < 0) {
    uv_close((uv_handle_t *)&c->tcp, on_close);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *c = s->data;
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (n == 0)
    return;
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  int w = uv_try_write(s, &out, 1);
  if (w == n)
    return;
  if (w < 0 && w != UV_EAGAIN) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  size_t done = w > 0 ? (size_t)w : 0;
  c->pending = malloc((size_t)n - done);
  memcpy(c->pending, b->base + done, (size_t)n - done);
  out = uv_buf_init(c->pending, (unsigned)((size_t)n - done));
  c->req.data = c;
  uv_read_stop(s);
  uv_write(&c->req, s, &out, 1, write_cb);
}

static void on_conn(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  conn *c = calloc(1, sizeof *c);
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_close);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_storage addr;
  if (uv_ip4_addr(argv[1], atoi(argv[2]), (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(argv[1], atoi(argv[2]), (struct sockaddr_in6 *)&addr) != 0) {
    fprintf(stderr, "bad address\n");
    return 2;
  }
  uv_tcp_init(loop, &server);
  int rc = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&server, 4096, on_conn);
  if (rc != 0) {
    fprintf(stderr, "listen: %s\n", uv_strerror(rc));
    return 1;
  }
  struct sockaddr_storage got;
  int len = sizeof got;
  uv_tcp_getsockname(&server, (struct sockaddr *)&got, &len);
  printf("port=%d\n", ntohs(((struct sockaddr_in *)&got)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
