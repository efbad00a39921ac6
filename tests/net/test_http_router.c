/* http-router: patterns with {parameters} and a {rest...}, literal segments
 * winning over parameters, earlier routes over later ones, GET answering
 * HEAD, any-method routes, 404 and 405 with Allow, the fallback, and bad
 * patterns refused; through a real server, over HTTP/1.1.
 */
#include "test_http_util.h"

static int h_name(weft_http_request *r, void *arg) {
  char out[256];
  const char *id = weft_http_param(r, "id");
  const char *rest = weft_http_param(r, "rest");
  snprintf(out, sizeof out, "%s%s%s%s%s", (const char *)arg, id ? " id=" : "",
           id ? id : "", rest ? " rest=" : "", rest ? rest : "");
  return weft_http_respond_text(r, 200, out);
}

static int h_fallback(weft_http_request *r, void *arg) {
  (void)arg;
  return weft_http_respond_text(r, 418, "fallback");
}

/* One request; returns the response (head and body). */
static const char *ask(int port, const char *method, const char *path) {
  static char resp[4096];
  char req[512];
  snprintf(req, sizeof req,
           "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method,
           path);
  if (th_raw(port, req, strlen(req), resp, sizeof resp, 5) <= 0)
    return "";
  return resp;
}

static const char *body(const char *resp) {
  const char *b = strstr(resp, "\r\n\r\n");
  return b ? b + 4 : "";
}

static int m_router(void *arg) {
  (void)arg;
  weft_http_router *r;
  T_OK(weft_http_router_new(&r));
  T_OK(weft_http_route(r, "GET", "/users/{id}", h_name, "user"));
  T_OK(weft_http_route(r, "GET", "/users/me", h_name, "me"));
  T_OK(weft_http_route(r, "PUT", "/users/{id}", h_name, "put"));
  T_OK(weft_http_route(r, "GET", "/users/{id}/posts/{post}", h_name, "post"));
  T_OK(weft_http_route(r, "GET", "/static/{rest...}", h_name, "static"));
  T_OK(weft_http_route(r, "*", "/any", h_name, "any"));
  T_OK(weft_http_route(r, "HEAD", "/h", h_name, "head"));
  T_OK(weft_http_route(r, "GET", "/h", h_name, "get"));
  T_OK(weft_http_route(r, "GET", "/", h_name, "root"));
  /* Refused patterns. */
  T_RC(weft_http_route(r, "GET", "/users/{id}", h_name, "again"), WEFT_EEXIST);
  T_RC(weft_http_route(r, "GET", "no-slash", h_name, ""), WEFT_EINVAL);
  T_RC(weft_http_route(r, "GET", "/a/{}", h_name, ""), WEFT_EINVAL);
  T_RC(weft_http_route(r, "GET", "/a/{x", h_name, ""), WEFT_EINVAL);
  T_RC(weft_http_route(r, "GET", "/a/{r...}/b", h_name, ""), WEFT_EINVAL);

  weft_addr ad;
  (void)weft_addr_ip(&ad, "127.0.0.1", 0);
  weft_http_server *srv;
  T_OK(weft_http_serve(&srv, &ad, weft_http_router_handler, r, NULL));
  weft_addr real;
  T_OK(weft_http_server_addr(srv, &real));
  int port = weft_addr_port(&real);

  T_STREQ(body(ask(port, "GET", "/users/42")), "user id=42");
  T_STREQ(body(ask(port, "GET", "/users/me")), "me"); /* literal wins */
  T_STREQ(body(ask(port, "PUT", "/users/7")), "put id=7");
  T_STREQ(body(ask(port, "GET", "/users/7/posts/3?x=y")), "post id=7");
  T_STREQ(body(ask(port, "GET", "/static/css/site.css")),
          "static rest=css/site.css");
  T_STREQ(body(ask(port, "DELETE", "/any")), "any");
  T_STREQ(body(ask(port, "GET", "/")), "root");
  /* HEAD: the exact route wins over GET's; elsewhere GET answers it. */
  T_TRUE(strstr(ask(port, "HEAD", "/users/1"), "HTTP/1.1 200 ") != NULL);
  T_TRUE(strstr(ask(port, "GET", "/h"), "\r\n\r\nget") != NULL);
  /* 404, and 405 with every method that would match. */
  T_TRUE(strstr(ask(port, "GET", "/users"), "HTTP/1.1 404 ") != NULL);
  T_TRUE(strstr(ask(port, "GET", "/users/"), "HTTP/1.1 404 ") != NULL);
  T_TRUE(strstr(ask(port, "GET", "/users/1/x"), "HTTP/1.1 404 ") != NULL);
  const char *res = ask(port, "POST", "/users/1");
  T_TRUE(strstr(res, "HTTP/1.1 405 ") == res);
  T_TRUE(strstr(res, "\r\nAllow: GET, PUT, HEAD\r\n") != NULL);
  /* The fallback takes what matches no path. */
  weft_http_router_fallback(r, h_fallback, NULL);
  res = ask(port, "GET", "/nothing/here");
  T_TRUE(strstr(res, "HTTP/1.1 418 ") == res);
  T_TRUE(strstr(ask(port, "POST", "/users/1"), "HTTP/1.1 405 ") != NULL);
  T_EQ(weft_http_server_shutdown(srv, 1), 0);
  weft_http_server_free(srv);
  weft_http_router_free(r);
  return 0;
}
static void test_router(void) { RUN(m_router, NULL); }

static const t_case cases[] = {
    {"router", test_router},
    {NULL, NULL},
};

T_MAIN("http-router", cases)
