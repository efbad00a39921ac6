/* libevent's evhttp answering "Hello, World!" (13 bytes) on 127.0.0.1,
 * one thread: a peer of the HTTP benchmark (tests/bench/bench_http.py).
 * Prints "port=N" when listening; stops on SIGTERM. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void hello(struct evhttp_request *req, void *arg) {
  (void)arg;
  struct evbuffer *b = evhttp_request_get_output_buffer(req);
  evbuffer_add(b, "Hello, World!", 13);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain");
  evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_term(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  struct event_base *base = event_base_new();
  struct evhttp *http = evhttp_new(base);
  evhttp_set_gencb(http, hello, NULL);
  struct evhttp_bound_socket *s =
      evhttp_bind_socket_with_handle(http, "127.0.0.1", (unsigned short)port);
  if (s == NULL) {
    perror("bind");
    return 1;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &len);
  printf("port=%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);
  struct event *term = evsignal_new(base, SIGTERM, on_term, base);
  event_add(term, NULL);
  event_base_dispatch(base);
  event_free(term);
  evhttp_free(http);
  event_base_free(base);
  return 0;
}
