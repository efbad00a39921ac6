/* weft-hello — the guide's "Hello, World!" HTTP server, as short as the
 * aiohttp version (docs/guide/http-server.md):
 *
 *   from aiohttp import web
 *   async def hello(request):
 *       return web.Response(text="Hello, World!")
 *   app = web.Application()
 *   app.add_routes([web.get('/', hello)])
 *   web.run_app(app)
 *
 * Flags (--host, --port, --tls-cert, --tls-key, --workers, --help, --tour)
 * are read by hello.h, which also holds the tour.
 */
#include <weft/http.h>

#include "hello.h"

static int hello(weft_http_request *req, void *arg) {
  (void)arg;
  return weft_http_respond_text(req, 200, "Hello, World!");
}

int main(int argc, char **argv) {
  weft_http_router *app;
  if (weft_http_router_new(&app) != 0 ||
      weft_http_route(app, "GET", "/", hello, NULL) != 0)
    return 1;
  weft_http_run_opts opts = hello_flags(argc, argv, app);
  int rc = weft_http_run(weft_http_router_handler, app, &opts);
  weft_http_router_free(app);
  return rc == 0 ? 0 : 1;
}
