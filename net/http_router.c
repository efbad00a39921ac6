/* weft — the HTTP router: method + path patterns with {parameters}, 404,
 * 405 with Allow, a fallback (weft/http.h).
 *
 * Routes are kept in a list and every request is matched against all of
 * them, segment by segment, without allocating; among the routes that
 * match, the one with literal segments where the others have parameters
 * wins (compared left to right), then the earliest. A pattern of literal
 * segments alone matches exactly the paths equal to its text, so it is
 * tested by length and bytes, and ranks above any other route that matches
 * the same path. A few dozen routes cost well under a microsecond; a
 * server with thousands would want a trie.
 */
#include <string.h>

#include "http_int.h"

enum { SEG_REST, SEG_PARAM, SEG_LIT }; /* in order of preference */

typedef struct seg {
  const char *s; /* literal text, or the parameter's name (NUL-ended) */
  size_t len;
  uint8_t kind;
} seg;

typedef struct route {
  char *method;  /* "*": any */
  char *text;    /* the pattern as given */
  char *pattern; /* a copy cut into segments */
  seg *segs;
  size_t nsegs;
  size_t nparams;   /* segments that are not literal */
  size_t tlen;      /* strlen(text) */
  const char *mlit; /* method, or the same name as a literal */
  bool any;         /* method "*" */
  bool get;         /* method "GET": serves HEAD too */
  weft_http_handler fn;
  void *arg;
} route;

struct weft_http_router {
  route *v;
  size_t n, cap;
  weft_http_handler fallback;
  void *farg;
};

int weft_http_router_new(weft_http_router **out) {
  if (out == NULL)
    return WEFT_EINVAL;
  *out = weft__calloc(1, sizeof **out);
  return *out ? 0 : WEFT_ENOMEM;
}

static void route_free(route *rt) {
  weft__free(rt->method);
  weft__free(rt->text);
  weft__free(rt->pattern);
  weft__free(rt->segs);
}

void weft_http_router_free(weft_http_router *r) {
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n; i++)
    route_free(&r->v[i]);
  weft__free(r->v);
  weft__free(r);
}

/* Splits the pattern (a copy we own, cut in place) into segments. */
static int parse_pattern(route *rt) {
  char *p = rt->pattern;
  if (p[0] != '/')
    return WEFT_EINVAL;
  size_t n = 0;
  for (char *q = p; *q; q++)
    n += *q == '/';
  rt->segs = weft__calloc(n ? n : 1, sizeof *rt->segs);
  if (rt->segs == NULL)
    return WEFT_ENOMEM;
  char *s = p + 1;
  for (;;) {
    char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    seg *g = &rt->segs[rt->nsegs++];
    if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
      g->s = s + 1;
      g->len = len - 2;
      g->kind = SEG_PARAM;
      rt->nparams++;
      if (g->len > 3 && memcmp(s + len - 4, "...", 3) == 0) {
        if (e != NULL)
          return WEFT_EINVAL; /* {rest...} only last */
        g->kind = SEG_REST;
        g->len -= 3;
      }
      if (g->len == 0 || memchr(g->s, '{', g->len) || memchr(g->s, '}', g->len))
        return WEFT_EINVAL;
      s[len - (g->kind == SEG_REST ? 4 : 1)] = '\0'; /* name ends here */
    } else {
      if (memchr(s, '{', len) || memchr(s, '}', len))
        return WEFT_EINVAL;
      g->s = s;
      g->len = len;
      g->kind = SEG_LIT;
    }
    if (e == NULL)
      break;
    *e = '\0';
    s = e + 1;
  }
  return 0;
}

/* A common method's name as a string literal. The parsers give a request's
 * common method as a literal too (http1.c, http2.c), and the linker keeps
 * one copy of equal literals in the library (mergeable string sections),
 * so a route's method mostly matches by its pointer; the bytes are
 * compared when it does not. */
static const char *method_lit(const char *m) {
  static const char *const lits[] = {"GET",    "HEAD",  "POST",   "PUT",
                                     "DELETE", "PATCH", "OPTIONS"};
  for (size_t i = 0; i < sizeof lits / sizeof *lits; i++)
    if (strcmp(m, lits[i]) == 0)
      return lits[i];
  return m;
}

int weft_http_route(weft_http_router *r, const char *method,
                    const char *pattern, weft_http_handler fn, void *arg) {
  if (r == NULL || method == NULL || pattern == NULL || fn == NULL ||
      pattern[0] != '/')
    return WEFT_EINVAL;
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->v[i].method, method) == 0 &&
        strcmp(r->v[i].text, pattern) == 0)
      return WEFT_EEXIST;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    route *v = weft__realloc(r->v, cap * sizeof *v);
    if (v == NULL)
      return WEFT_ENOMEM;
    r->v = v;
    r->cap = cap;
  }
  route rt = {0};
  rt.method = weft__strdup(method);
  rt.pattern = weft__strdup(pattern);
  rt.text = weft__strdup(pattern);
  int rc = WEFT_ENOMEM;
  if (rt.method != NULL && rt.pattern != NULL && rt.text != NULL)
    rc = parse_pattern(&rt);
  if (rc != 0) {
    route_free(&rt);
    return rc;
  }
  rt.tlen = strlen(rt.text);
  rt.any = strcmp(method, "*") == 0;
  rt.mlit = method_lit(rt.method);
  rt.get = strcmp(method, "GET") == 0;
  rt.fn = fn;
  rt.arg = arg;
  r->v[r->n++] = rt;
  return 0;
}

void weft_http_router_fallback(weft_http_router *r, weft_http_handler fn,
                               void *arg) {
  r->fallback = fn;
  r->farg = arg;
}

/* Matches path against rt; fills kinds[] (for ranking) and, with `req`,
 * the parameters. */
static bool match(const route *rt, const char *path, uint8_t *kinds,
                  weft_http_request *req) {
  if (path[0] != '/')
    return false;
  const char *s = path + 1;
  for (size_t i = 0; i < rt->nsegs; i++) {
    const seg *g = &rt->segs[i];
    if (s == NULL)
      return false; /* the path ended first */
    /* Segments are short: a loop beats strchr and strlen calls. */
    const char *q = s;
    while (*q != '\0' && *q != '/')
      q++;
    const char *e = *q == '/' ? q : NULL;
    size_t len = g->kind == SEG_REST ? strlen(s) : (size_t)(q - s);
    if (g->kind == SEG_LIT) {
      if (len != g->len || (len > 0 && memcmp(s, g->s, len) != 0))
        return false;
    } else if (g->kind == SEG_PARAM && len == 0) {
      return false; /* a parameter is never empty */
    }
    if (kinds != NULL)
      kinds[i] = g->kind;
    if (req != NULL && g->kind != SEG_LIT && req->nparams < REQ_PARAMS) {
      char *v = weft__arena_strndup(&req->req.arena, s, len);
      if (v != NULL) {
        req->params[req->nparams].name = g->s;
        req->params[req->nparams].value = v;
        req->nparams++;
      }
    }
    if (g->kind == SEG_REST)
      return true;
    s = e ? e + 1 : NULL;
  }
  return s == NULL;
}

/* strcmp(a, b) == 0 for the short strings methods are, without a call. */
static inline bool same(const char *a, const char *b) {
  for (; *a == *b; a++, b++)
    if (*a == '\0')
      return true;
  return false;
}

static bool method_ok(const route *rt, const char *m) {
  return rt->any || m == rt->mlit || same(rt->method, m) ||
         (rt->get && same(m, "HEAD"));
}

/* Does rt match the path? kinds[] gets the segment kinds of a route with
 * parameters (for ranking); an all-literal route matches its text alone. */
static inline bool matches(const route *rt, const weft_http_request *req,
                           uint8_t *kinds) {
  if (rt->nparams == 0)
    return req->req.path_len == rt->tlen &&
           memcmp(req->req.path, rt->text, rt->tlen) == 0;
  return rt->nsegs <= 64 && match(rt, req->req.path, kinds, NULL);
}

/* Above 0 when a (segment kinds ka) beats b (kb), below 0 when b beats a,
 * 0 for a tie. Both match the same path, so two all-literal routes have
 * the same segments, and an all-literal route beats one with parameters
 * (its first parameter faces a literal). */
static int rank(const route *a, const uint8_t *ka, const route *b,
                const uint8_t *kb) {
  if (a->nparams == 0 || b->nparams == 0)
    return (a->nparams == 0) - (b->nparams == 0);
  size_t n = a->nsegs < b->nsegs ? a->nsegs : b->nsegs;
  for (size_t i = 0; i < n; i++)
    if (ka[i] != kb[i])
      return ka[i] > kb[i] ? 1 : -1;
  return (a->nsegs > b->nsegs) - (a->nsegs < b->nsegs);
}

int weft_http_router_handler(weft_http_request *req, void *router) {
  weft_http_router *r = router;
  const char *path = req->req.path;
  const char *m = req->req.method;
  const route *best = NULL;
  /* The best route's segment kinds and the candidate's: swapped, not
   * copied, when the candidate wins. */
  uint8_t kinds[2][64];
  uint8_t *bk = kinds[0], *k = kinds[1];
  bool path_known = false;
  for (size_t i = 0; i < r->n; i++) {
    const route *rt = &r->v[i];
    if (!matches(rt, req, k))
      continue;
    path_known = true;
    if (!method_ok(rt, m))
      continue;
    /* An exact HEAD route beats GET's. */
    int c = best == NULL ? 1 : rank(rt, k, best, bk);
    if (c > 0 || (c == 0 && !same(best->method, m) && same(rt->method, m))) {
      best = rt;
      uint8_t *t = bk;
      bk = k;
      k = t;
    }
  }
  if (best != NULL) {
    if (best->nparams > 0)
      (void)match(best, path, NULL, req); /* again, to keep the values */
    return best->fn(req, best->arg);
  }
  if (path_known) {
    /* 405 with the methods that would have matched. */
    char allow[256] = "";
    size_t len = 0;
    bool get = false;
    for (size_t i = 0; i < r->n; i++) {
      const route *rt = &r->v[i];
      if (!matches(rt, req, k))
        continue;
      if (strstr(allow, rt->method) != NULL && len > 0)
        continue;
      size_t ml = strlen(rt->method);
      if (len + ml + 3 >= sizeof allow)
        break;
      if (len > 0) {
        memcpy(allow + len, ", ", 2);
        len += 2;
      }
      memcpy(allow + len, rt->method, ml + 1);
      len += ml;
      get |= strcmp(rt->method, "GET") == 0;
    }
    if (get && strstr(allow, "HEAD") == NULL && len + 6 < sizeof allow)
      memcpy(allow + len, ", HEAD", 7);
    int rc = weft_http_add_header(req, "Allow", allow);
    if (rc != 0)
      return rc;
    return weft_http_respond_text(req, 405, "Method Not Allowed\n");
  }
  if (r->fallback != NULL)
    return r->fallback(req, r->farg);
  return weft_http_respond_text(req, 404, "Not Found\n");
}
