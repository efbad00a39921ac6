/* weft — the HTTP client's helpers: URLs, base64, the cookie jar, and
 * gzip/deflate decoding with zlib (http_client_int.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_client_int.h"

/* ---- URLs ---- */

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s in place. */
static void pct_decode(char *s) {
  char *d = s;
  for (; *s != '\0'; s++) {
    int a, b;
    if (*s == '%' && (a = hexval(s[1])) >= 0 && (b = hexval(s[2])) >= 0) {
      *d++ = (char)(a * 16 + b);
      s += 2;
    } else {
      *d++ = *s;
    }
  }
  *d = '\0';
}

int weft__hc_url_parse(hc_url *u, const char *url) {
  memset(u, 0, sizeof *u);
  if (url == NULL)
    return WEFT_EINVAL;
  const char *p = strstr(url, "://");
  if (p == NULL)
    return WEFT_EINVAL;
  size_t sl = (size_t)(p - url);
  if (sl == 5 && weft__http_ieq(url, "https", 5))
    u->tls = true;
  else if (!(sl == 4 && weft__http_ieq(url, "http", 4)))
    return sl == 0 ? WEFT_EINVAL : WEFT_ENOTSUP;
  p += 3;
  /* authority: up to '/', '?' or '#' */
  size_t al = strcspn(p, "/?#");
  const char *auth = p, *rest = p + al;
  const char *at = NULL;
  for (const char *q = auth; q < rest; q++)
    if (*q == '@')
      at = q;
  size_t ul = at ? (size_t)(at - auth) : 0;
  const char *hp = at ? at + 1 : auth;
  size_t hpl = (size_t)(rest - hp);
  /* target: the rest up to '#' */
  size_t tl = strcspn(rest, "#");
  size_t need = ul + 1 + hpl + 1 + (tl ? tl : 1) + 1 + hpl + 1;
  char *buf = weft__malloc(need);
  if (buf == NULL)
    return WEFT_ENOMEM;
  u->buf = buf;
  char *w = buf;
  if (at != NULL) {
    memcpy(w, auth, ul);
    w[ul] = '\0';
    u->userinfo = w;
    pct_decode(w);
    w += ul + 1;
  }
  /* host and port */
  const char *he, *portp = NULL;
  const char *hs = hp;
  if (hpl > 0 && hp[0] == '[') {
    const char *rb = memchr(hp, ']', hpl);
    if (rb == NULL)
      goto bad;
    hs = hp + 1;
    he = rb;
    if (rb + 1 < rest) {
      if (rb[1] != ':')
        goto bad;
      portp = rb + 2;
    }
  } else {
    const char *colon = memchr(hp, ':', hpl);
    he = colon ? colon : rest;
    if (colon)
      portp = colon + 1;
  }
  if (he == hs)
    goto bad;
  memcpy(w, hs, (size_t)(he - hs));
  w[he - hs] = '\0';
  u->host = w;
  for (char *c = w; *c; c++) {
    unsigned char ch = (unsigned char)*c;
    if (ch <= ' ' || ch == '/' || ch == '\\' || ch == '@')
      goto bad;
    *c = (char)tolower(ch);
  }
  w += (he - hs) + 1;
  u->port = u->tls ? 443 : 80;
  if (portp != NULL && portp < rest) {
    long v = 0;
    for (const char *c = portp; c < rest; c++) {
      if (*c < '0' || *c > '9' || v > 65535)
        goto bad;
      v = v * 10 + (*c - '0');
    }
    if (v < 1 || v > 65535)
      goto bad;
    u->port = (int)v;
  }
  /* target */
  u->target = w;
  if (tl == 0 || rest[0] != '/')
    *w++ = '/';
  memcpy(w, rest, tl);
  w[tl] = '\0';
  for (char *c = u->target; *c; c++)
    if ((unsigned char)*c <= ' ')
      goto bad;
  w += tl + 1;
  /* authority as sent: the host (bracketed when IPv6), the port unless it
   * is the scheme's default */
  u->authority = w;
  bool v6 = strchr(u->host, ':') != NULL;
  int def = u->tls ? 443 : 80;
  size_t hl = strlen(u->host);
  if (v6)
    *w++ = '[';
  memcpy(w, u->host, hl);
  w += hl;
  if (v6)
    *w++ = ']';
  *w = '\0';
  if (u->port != def) {
    /* the original text had the port, so there is room for it */
    char d[8];
    int k = 0;
    for (int v = u->port; v > 0; v /= 10)
      d[k++] = (char)('0' + v % 10);
    *w++ = ':';
    while (k > 0)
      *w++ = d[--k];
    *w = '\0';
  }
  return 0;
bad:
  weft__free(buf);
  memset(u, 0, sizeof *u);
  return WEFT_EINVAL;
}

void weft__hc_url_free(hc_url *u) {
  weft__free(u->buf);
  memset(u, 0, sizeof *u);
}

char *weft__hc_url_join(const char *base, const char *ref) {
  size_t bl = strlen(base), rl = strlen(ref);
  /* absolute: has a scheme */
  size_t sch =
      strspn(ref, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789+-.");
  char *out = weft__malloc(bl + rl + 8);
  if (out == NULL)
    return NULL;
  if (sch > 0 && ref[sch] == ':') {
    memcpy(out, ref, rl + 1);
    return out;
  }
  const char *bs = strstr(base, "://");
  size_t scheme_end = bs ? (size_t)(bs - base) + 3 : 0;
  if (ref[0] == '/' && ref[1] == '/') { /* scheme-relative */
    memcpy(out, base, scheme_end - 2);
    memcpy(out + scheme_end - 2, ref, rl + 1);
    return out;
  }
  size_t auth_end = scheme_end + strcspn(base + scheme_end, "/?#");
  memcpy(out, base, auth_end);
  char *w = out + auth_end;
  if (ref[0] == '/') {
    memcpy(w, ref, rl + 1);
    return out;
  }
  /* path of the base up to and including its last '/' */
  size_t pe = auth_end + strcspn(base + auth_end, "?#");
  if (ref[0] == '?' || ref[0] == '\0') {
    memcpy(w, base + auth_end, pe - auth_end);
    w += pe - auth_end;
    if (w == out + auth_end)
      *w++ = '/';
    memcpy(w, ref, rl + 1);
    return out;
  }
  size_t last = pe;
  while (last > auth_end && base[last - 1] != '/')
    last--;
  if (last == auth_end) {
    *w++ = '/';
  } else {
    memcpy(w, base + auth_end, last - auth_end);
    w += last - auth_end;
  }
  memcpy(w, ref, rl + 1);
  /* resolve "./" and "../" segments of the path */
  char *path = out + auth_end;
  char *q = path + strcspn(path, "?#");
  char saved = *q;
  *q = '\0';
  char *src = path, *dst = path;
  while (*src) {
    if (strncmp(src, "/./", 3) == 0) {
      src += 2;
    } else if (strcmp(src, "/.") == 0) {
      src[1] = '\0';
    } else if (strncmp(src, "/../", 4) == 0 || strcmp(src, "/..") == 0) {
      while (dst > path && *--dst != '/')
        ;
      src += 3;
      if (*src == '\0')
        *dst++ = '/';
    } else {
      do
        *dst++ = *src++;
      while (*src && *src != '/');
    }
  }
  *dst = '\0';
  if (dst == path) {
    *dst++ = '/';
    *dst = '\0';
  }
  if (saved != '\0') {
    *q = saved;
    memmove(dst, q, strlen(q) + 1);
  }
  return out;
}

/* ---- base64 ---- */

void weft__hc_base64(const void *in, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = in;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    *out++ = t[p[i] >> 2];
    *out++ = t[(p[i] & 3) << 4 | p[i + 1] >> 4];
    *out++ = t[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
    *out++ = t[p[i + 2] & 63];
  }
  if (i < n) {
    *out++ = t[p[i] >> 2];
    if (i + 1 < n) {
      *out++ = t[(p[i] & 3) << 4 | p[i + 1] >> 4];
      *out++ = t[(p[i + 1] & 15) << 2];
    } else {
      *out++ = t[(p[i] & 3) << 4];
      *out++ = '=';
    }
    *out++ = '=';
  }
  *out = '\0';
}

/* ---- cookies (RFC 6265, the parts a session needs) ---- */

struct hc_cookie {
  hc_cookie *next;
  char *name, *value, *domain, *path;
  bool host_only, secure;
  double expires; /* weft_now() clock; INFINITY: the session's life */
};

static void cookie_free(hc_cookie *c) {
  weft__free(c->name);
  weft__free(c->value);
  weft__free(c->domain);
  weft__free(c->path);
  weft__free(c);
}

void weft__hc_cookies_free(weft_http_session *s) {
  while (s->cookies != NULL) {
    hc_cookie *c = s->cookies;
    s->cookies = c->next;
    cookie_free(c);
  }
}

static char *dupn(const char *p, size_t n) {
  char *d = weft__malloc(n + 1);
  if (d != NULL) {
    memcpy(d, p, n);
    d[n] = '\0';
  }
  return d;
}

static const char *trim(const char *p, const char *e, size_t *len) {
  while (p < e && (*p == ' ' || *p == '\t'))
    p++;
  while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  *len = (size_t)(e - p);
  return p;
}

/* Does `host` domain-match `dom` (RFC 6265 5.1.3)? */
static bool domain_match(const char *host, const char *dom) {
  size_t hl = strlen(host), dl = strlen(dom);
  if (hl == dl)
    return strcasecmp(host, dom) == 0;
  return hl > dl && host[hl - dl - 1] == '.' &&
         strcasecmp(host + hl - dl, dom) == 0 && strchr(host, ':') == NULL;
}

static bool path_match(const char *rpath, size_t rl, const char *cpath) {
  size_t cl = strlen(cpath);
  if (rl < cl || strncmp(rpath, cpath, cl) != 0)
    return false;
  return rl == cl || cpath[cl - 1] == '/' || rpath[cl] == '/';
}

/* Expires=<HTTP date>: "Sun, 06 Nov 1994 08:49:37 GMT" (other forms: the
 * cookie lives for the session). */
static bool parse_date(const char *v, size_t n, time_t *out) {
  char buf[64];
  if (n >= sizeof buf)
    return false;
  memcpy(buf, v, n);
  buf[n] = '\0';
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *e = strptime(buf, "%a, %d %b %Y %H:%M:%S", &tm);
  if (e == NULL)
    e = strptime(buf, "%a, %d-%b-%Y %H:%M:%S", &tm);
  if (e == NULL)
    return false;
  *out = timegm(&tm);
  return true;
}

static void take_one(weft_http_session *s, const hc_url *u, const char *v,
                     size_t vl) {
  const char *e = v + vl;
  const char *semi = memchr(v, ';', vl);
  const char *pe = semi ? semi : e;
  const char *eq = memchr(v, '=', (size_t)(pe - v));
  if (eq == NULL)
    return;
  size_t nl, val_l;
  const char *name = trim(v, eq, &nl);
  const char *val = trim(eq + 1, pe, &val_l);
  if (nl == 0)
    return;
  hc_cookie *c = weft__calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->expires = INFINITY;
  c->host_only = true;
  c->name = dupn(name, nl);
  c->value = dupn(val, val_l);
  bool bad = false;
  double max_age = NAN;
  for (const char *a = semi; a != NULL && a < e;) {
    a++;
    const char *ae = memchr(a, ';', (size_t)(e - a));
    if (ae == NULL)
      ae = e;
    const char *aeq = memchr(a, '=', (size_t)(ae - a));
    size_t kl, avl = 0;
    const char *k = trim(a, aeq ? aeq : ae, &kl);
    const char *av = aeq ? trim(aeq + 1, ae, &avl) : "";
    if (kl == 6 && strncasecmp(k, "domain", 6) == 0 && avl > 0) {
      if (*av == '.')
        av++, avl--;
      weft__free(c->domain);
      c->domain = dupn(av, avl);
      c->host_only = false;
    } else if (kl == 4 && strncasecmp(k, "path", 4) == 0 && avl > 0 &&
               *av == '/') {
      weft__free(c->path);
      c->path = dupn(av, avl);
    } else if (kl == 6 && strncasecmp(k, "secure", 6) == 0) {
      c->secure = true;
    } else if (kl == 7 && strncasecmp(k, "max-age", 7) == 0 && avl > 0) {
      char tmp[32];
      size_t l = avl < sizeof tmp - 1 ? avl : sizeof tmp - 1;
      memcpy(tmp, av, l);
      tmp[l] = '\0';
      max_age = atof(tmp);
    } else if (kl == 7 && strncasecmp(k, "expires", 7) == 0) {
      time_t t;
      if (parse_date(av, avl, &t))
        c->expires = weft_now() + difftime(t, time(NULL));
    }
    a = ae;
  }
  if (!isnan(max_age))
    c->expires = weft_now() + max_age;
  if (c->domain == NULL)
    c->domain = weft__strdup(u->host);
  else if (!domain_match(u->host, c->domain))
    bad = true; /* a server may not set cookies for other domains */
  if (c->path == NULL) {
    /* default-path: the request path up to its last '/' */
    const char *t = u->target;
    size_t pl = strcspn(t, "?");
    const char *last = t + pl;
    while (last > t && last[-1] != '/')
      last--;
    size_t dl = (size_t)(last - t);
    c->path = dl > 1 ? dupn(t, dl - 1) : weft__strdup("/");
  }
  if (bad || c->name == NULL || c->value == NULL || c->domain == NULL ||
      c->path == NULL) {
    cookie_free(c);
    return;
  }
  /* replaces one of the same name, domain and path */
  for (hc_cookie **pp = &s->cookies; *pp != NULL; pp = &(*pp)->next) {
    hc_cookie *o = *pp;
    if (strcmp(o->name, c->name) == 0 &&
        strcasecmp(o->domain, c->domain) == 0 &&
        strcmp(o->path, c->path) == 0) {
      *pp = o->next;
      cookie_free(o);
      break;
    }
  }
  if (c->expires <= weft_now()) {
    cookie_free(c); /* an expiry in the past deletes */
    return;
  }
  c->next = s->cookies;
  s->cookies = c;
}

void weft__hc_cookies_take(weft_http_session *s, const hc_url *u,
                           const weft__http_msg *m) {
  for (uint32_t i = 0; i < m->hdrs.n; i++) {
    const weft_http_field *f = &m->hdrs.v[i];
    if (f->name_len == 10 && weft__http_ieq(f->name, "set-cookie", 10))
      take_one(s, u, f->value, f->value_len);
  }
}

int weft__hc_cookies_put(weft_http_session *s, const hc_url *u, weft__hbuf *b) {
  double now = weft_now();
  size_t rl = strcspn(u->target, "?");
  for (hc_cookie **pp = &s->cookies; *pp != NULL;) {
    hc_cookie *c = *pp;
    if (c->expires <= now) {
      *pp = c->next;
      cookie_free(c);
      continue;
    }
    pp = &c->next;
    bool dm = c->host_only ? strcasecmp(c->domain, u->host) == 0
                           : domain_match(u->host, c->domain);
    if (!dm || (c->secure && !u->tls) || !path_match(u->target, rl, c->path))
      continue;
    if (b->len > 0 && weft__hbuf_add(b, "; ", 2) != 0)
      return WEFT_ENOMEM;
    if (weft__hbuf_add(b, c->name, strlen(c->name)) != 0 ||
        weft__hbuf_add(b, "=", 1) != 0 ||
        weft__hbuf_add(b, c->value, strlen(c->value)) != 0)
      return WEFT_ENOMEM;
  }
  return 0;
}

/* ---- decoding ---- */

#define ZBUF (16 * 1024)

static voidpf z_alloc(voidpf op, uInt n, uInt k) {
  (void)op;
  return weft__calloc(n, k);
}
static void z_free(voidpf op, voidpf p) {
  (void)op;
  weft__free(p);
}

int weft__hc_decode_start(weft_http_response *r) {
  const weft_http_field *f =
      weft__http_hdrs_find(&r->msg.hdrs, "content-encoding", 16);
  if (f == NULL || f->value_len == 0 ||
      (f->value_len == 8 && weft__http_ieq(f->value, "identity", 8)))
    return 0;
  int wbits;
  if ((f->value_len == 4 && weft__http_ieq(f->value, "gzip", 4)) ||
      (f->value_len == 6 && weft__http_ieq(f->value, "x-gzip", 6)))
    wbits = 16 + MAX_WBITS;
  else if (f->value_len == 7 && weft__http_ieq(f->value, "deflate", 7))
    wbits = MAX_WBITS; /* zlib-wrapped, as RFC 9110 says; raw tried too */
  else
    return WEFT_ENOTSUP;
  r->z = weft__calloc(1, sizeof *r->z);
  r->zbuf = weft__malloc(ZBUF);
  if (r->z == NULL || r->zbuf == NULL)
    return WEFT_ENOMEM;
  r->z->zalloc = z_alloc;
  r->z->zfree = z_free;
  if (inflateInit2(r->z, wbits) != Z_OK) {
    weft__free(r->z);
    r->z = NULL;
    return WEFT_ENOMEM;
  }
  r->z_raw_tried = wbits != MAX_WBITS;
  return 0;
}

void weft__hc_decode_free(weft_http_response *r) {
  if (r->z != NULL) {
    inflateEnd(r->z);
    weft__free(r->z);
    r->z = NULL;
  }
  weft__free(r->zbuf);
  r->zbuf = NULL;
}

ssize_t weft__hc_decode_read(weft_http_response *r, void *buf, size_t len,
                             ssize_t (*raw)(weft_http_response *, void *,
                                            size_t)) {
  if (r->z == NULL)
    return raw(r, buf, len);
  if (r->z_end)
    return 0;
  for (;;) {
    if (r->zpos == r->zlen && !r->raw_end) {
      ssize_t n = raw(r, r->zbuf, ZBUF);
      if (n < 0)
        return n;
      r->zpos = 0;
      r->zlen = (size_t)n;
    }
    if (r->zpos == r->zlen && r->raw_end) {
      /* The body ended before the compressed stream did. */
      return WEFT_EBADMSG;
    }
    r->z->next_in = (Bytef *)r->zbuf + r->zpos;
    r->z->avail_in = (uInt)(r->zlen - r->zpos);
    r->z->next_out = buf;
    r->z->avail_out = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
    int zr = inflate(r->z, Z_NO_FLUSH);
    size_t used = (r->zlen - r->zpos) - r->z->avail_in;
    size_t made = (size_t)((char *)r->z->next_out - (char *)buf);
    if (zr == Z_DATA_ERROR && !r->z_raw_tried && r->z->total_out == 0) {
      /* "deflate" sent raw (no zlib header), as some servers do. */
      r->z_raw_tried = true;
      inflateEnd(r->z);
      memset(r->z, 0, sizeof *r->z);
      r->z->zalloc = z_alloc;
      r->z->zfree = z_free;
      if (inflateInit2(r->z, -MAX_WBITS) != Z_OK)
        return WEFT_ENOMEM;
      continue;
    }
    r->zpos += used;
    if (zr == Z_STREAM_END) {
      /* Bytes after the stream (a second gzip member) are dropped. */
      r->z_end = true;
      if (made > 0)
        return (ssize_t)made;
      return 0;
    }
    if (zr != Z_OK && zr != Z_BUF_ERROR)
      return zr == Z_MEM_ERROR ? WEFT_ENOMEM : WEFT_EBADMSG;
    if (made > 0)
      return (ssize_t)made;
  }
}
