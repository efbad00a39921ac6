/* weft — the HTTP message model: arena, header lists, reason phrases, the
 * Date header (http_msg.h). */
#include <string.h>
#include <time.h>

#include "http_msg.h"

#define ARENA_BLOCK 1024

/* ---- arena ---- */

void weft__arena_init(weft__arena *a, weft__arena_blk *inline_blk) {
  a->head = inline_blk;
  a->first_inline = inline_blk;
  if (inline_blk != NULL) {
    inline_blk->next = NULL;
    inline_blk->used = 0;
  }
}

void weft__arena_reset_slow(weft__arena *a) {
  weft__arena_blk *b = a->head;
  while (b != NULL && b != a->first_inline) {
    weft__arena_blk *next = b->next;
    weft__free(b);
    b = next;
  }
  a->head = a->first_inline;
  if (a->head != NULL) {
    a->head->used = 0;
    a->head->next = NULL;
  }
}

/* A new block for n bytes (n already aligned; the head has no room). */
void *weft__arena_alloc_slow(weft__arena *a, size_t n) {
  size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
  weft__arena_blk *b = weft__malloc(sizeof *b + cap);
  if (b == NULL)
    return NULL;
  b->cap = cap;
  b->used = n;
  b->next = a->head;
  a->head = b;
  return weft__arena_data(b);
}

char *weft__arena_strndup(weft__arena *a, const char *s, size_t n) {
  char *d = weft__arena_alloc(a, n + 1);
  if (d != NULL) {
    if (n > 0)
      memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* ---- messages ---- */

void weft__http_msg_init(weft__http_msg *m, int kind,
                         weft__arena_blk *inline_blk) {
  weft__http_msg_fields(m, kind);
  m->hdrs = (weft__http_hdrs){NULL, 0, 0};
  m->trailers = (weft__http_hdrs){NULL, 0, 0};
  weft__arena_init(&m->arena, inline_blk);
}

void weft__http_msg_init_inline(weft__http_msg *m, int kind,
                                weft__arena_blk *blk, size_t size) {
  blk->cap = size - sizeof *blk;
  weft__http_msg_init(m, kind, blk);
}

void weft__http_msg_reset(weft__http_msg *m) {
  weft__arena_reset(&m->arena);
  weft__http_msg_clear(m);
}

void weft__http_msg_fini(weft__http_msg *m) {
  weft__arena_reset(&m->arena);
  weft__free(m->hdrs.v);
  weft__free(m->trailers.v);
  m->hdrs = (weft__http_hdrs){0};
  m->trailers = (weft__http_hdrs){0};
}

/* memcpy for the short strings of a head (names, most values): up to 32
 * bytes by two overlapping pairs of 8-byte moves, without a call. */
static inline void copy_short(char *d, const char *s, size_t n) {
  uint64_t a, b, c, e;
  if (n >= 16 && n <= 32) {
    memcpy(&a, s, 8);
    memcpy(&b, s + 8, 8);
    memcpy(&c, s + n - 16, 8);
    memcpy(&e, s + n - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + 8, &b, 8);
    memcpy(d + n - 16, &c, 8);
    memcpy(d + n - 8, &e, 8);
  } else if (n >= 8 && n < 16) {
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t x, y;
    memcpy(&x, s, 4);
    memcpy(&y, s + n - 4, 4);
    memcpy(d, &x, 4);
    memcpy(d + n - 4, &y, 4);
  } else if (n > 0) {
    memcpy(d, s, n);
  }
}

int weft__http_hdrs_add(weft__http_msg *m, weft__http_hdrs *h, const char *name,
                        size_t nlen, const char *value, size_t vlen) {
  /* Name and value in one piece of the arena. */
  char *n = weft__arena_alloc(&m->arena, nlen + vlen + 2);
  if (n == NULL)
    return WEFT_ENOMEM;
  char *val = n + nlen + 1;
  copy_short(n, name, nlen);
  n[nlen] = '\0';
  copy_short(val, value, vlen);
  val[vlen] = '\0';
  return weft__http_hdrs_add_static(h, n, nlen, val, vlen);
}

int weft__http_hdrs_add_name(weft__http_msg *m, weft__http_hdrs *h,
                             const char *name, size_t nlen, const char *value,
                             size_t vlen) {
  char *val = weft__arena_strndup(&m->arena, value, vlen);
  if (val == NULL)
    return WEFT_ENOMEM;
  return weft__http_hdrs_add_static(h, name, nlen, val, vlen);
}

int weft__http_hdrs_add_grow(weft__http_hdrs *h, const char *name, size_t nlen,
                             const char *value, size_t vlen) {
  uint32_t cap = h->cap ? h->cap * 2 : 8;
  weft_http_field *v = weft__realloc(h->v, cap * sizeof *v);
  if (v == NULL)
    return WEFT_ENOMEM;
  h->v = v;
  h->cap = cap;
  h->v[h->n++] = (weft_http_field){name, value, nlen, vlen};
  return 0;
}

const weft_http_field *weft__http_hdrs_find(const weft__http_hdrs *h,
                                            const char *name, size_t nlen) {
  for (uint32_t i = 0; i < h->n; i++)
    if (h->v[i].name_len == nlen && weft__http_ieq(h->v[i].name, name, nlen))
      return &h->v[i];
  return NULL;
}

int weft__http_msg_set_target(weft__http_msg *m, const char *t, size_t n) {
  const char *q = memchr(t, '?', n);
  size_t pl = q != NULL ? (size_t)(q - t) : n;
  /* The target and, when there is a query, its path: one allocation. */
  char *target = weft__arena_alloc(&m->arena, q != NULL ? n + pl + 2 : n + 1);
  if (target == NULL)
    return WEFT_ENOMEM;
  if (n > 0)
    memcpy(target, t, n);
  target[n] = '\0';
  m->target = target;
  if (q == NULL) {
    m->path = target;
    m->path_len = n;
    m->query = "";
    return 0;
  }
  char *path = target + n + 1;
  memcpy(path, t, pl);
  path[pl] = '\0';
  m->path = path;
  m->path_len = pl;
  m->query = target + pl + 1;
  return 0;
}

/* The byte classes (http_msg.h), one table for both parsers' checks. */
#define ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define DIGIT(c) ((c) >= '0' && (c) <= '9')
#define TSYM(c)                                                                \
  ((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' ||       \
   (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||      \
   (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define ASYM(c)                                                                \
  ((c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' || (c) == '!' ||       \
   (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||      \
   (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=' ||       \
   (c) == ':' || (c) == '@' || (c) == '[' || (c) == ']' || (c) == '%')
#define VAL(c) ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))
#define CL(c)                                                                  \
  (((ALPHA(c) && !((c) >= 'A' && (c) <= 'Z')) || DIGIT(c) || TSYM(c)           \
        ? WEFT__C_NAME                                                         \
        : 0) |                                                                 \
   (ALPHA(c) || DIGIT(c) || TSYM(c) ? WEFT__C_TCHAR : 0) |                     \
   (VAL(c) ? WEFT__C_VALUE : 0) |                                              \
   (VAL(c) && (c) != ' ' && (c) != '\t' ? WEFT__C_PATH : 0) |                  \
   (ALPHA(c) || DIGIT(c) || ASYM(c) ? WEFT__C_AUTH : 0) |                      \
   (ALPHA(c) || DIGIT(c) || (c) == '+' || (c) == '-' || (c) == '.'             \
        ? WEFT__C_SCHEME                                                       \
        : 0) |                                                                 \
   (ALPHA(c) ? WEFT__C_ALPHA : 0) | (DIGIT(c) ? WEFT__C_DIGIT : 0))
#define CL4(c) CL(c), CL(c + 1), CL(c + 2), CL(c + 3)
#define CL16(c) CL4(c), CL4(c + 4), CL4(c + 8), CL4(c + 12)
#define CL64(c) CL16(c), CL16(c + 16), CL16(c + 32), CL16(c + 48)
const uint8_t weft__http_cls[256] = {CL64(0), CL64(64), CL64(128), CL64(192)};
#undef CL64
#undef CL16
#undef CL4
#undef CL
#undef VAL
#undef ASYM
#undef TSYM
#undef DIGIT
#undef ALPHA

bool weft__http_token_ok(const char *s, size_t n) {
  if (n == 0)
    return false;
  /* Four bytes a step with one branch: names are mostly good. */
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    if (!(weft__http_cls[u[i]] & weft__http_cls[u[i + 1]] &
          weft__http_cls[u[i + 2]] & weft__http_cls[u[i + 3]] & WEFT__C_TCHAR))
      return false;
  for (; i < n; i++)
    if (!(weft__http_cls[u[i]] & WEFT__C_TCHAR))
      return false;
  return true;
}

bool weft__http_value_ok(const char *s, size_t n) {
  /* memchr is vectorised: three passes beat one loop of three tests. */
  return memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL &&
         memchr(s, '\0', n) == NULL;
}

/* ---- byte buffers ---- */

int weft__hbuf_grow(weft__hbuf *b, size_t n) {
  size_t cap = b->cap ? b->cap : 512;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2)
      return WEFT_ENOMEM;
    cap *= 2;
  }
  char *d = weft__realloc(b->data, cap);
  if (d == NULL)
    return WEFT_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

void weft__hbuf_free(weft__hbuf *b) {
  weft__free(b->data);
  *b = (weft__hbuf){0};
}

/* ---- Date ---- */

static __thread time_t date_at WEFT__TLS_IE = -1;
/* 64 bytes, more than the line: weft__h1_head copies 40 at once. */
static __thread char date_buf[64] WEFT__TLS_IE;
static __thread size_t date_len WEFT__TLS_IE;

size_t weft__http_date(const char **out) {
  time_t now = time(NULL);
  if (now != date_at) {
    struct tm tm;
    gmtime_r(&now, &tm);
    date_len = strftime(date_buf, sizeof date_buf,
                        "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    date_at = now;
  }
  *out = date_buf;
  return date_len;
}

/* ---- reason phrases ---- */

const char *weft_http_reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 103:
    return "Early Hints";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 203:
    return "Non-Authoritative Information";
  case 204:
    return "No Content";
  case 205:
    return "Reset Content";
  case 206:
    return "Partial Content";
  case 300:
    return "Multiple Choices";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 402:
    return "Payment Required";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 407:
    return "Proxy Authentication Required";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Range Not Satisfiable";
  case 417:
    return "Expectation Failed";
  case 421:
    return "Misdirected Request";
  case 422:
    return "Unprocessable Content";
  case 425:
    return "Too Early";
  case 426:
    return "Upgrade Required";
  case 428:
    return "Precondition Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 451:
    return "Unavailable For Legal Reasons";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "";
  }
}

size_t weft__http_fmt_dec(char *buf, uint64_t v) {
  static const char pairs[201] = "00010203040506070809"
                                 "10111213141516171819"
                                 "20212223242526272829"
                                 "30313233343536373839"
                                 "40414243444546474849"
                                 "50515253545556575859"
                                 "60616263646566676869"
                                 "70717273747576777879"
                                 "80818283848586878889"
                                 "90919293949596979899";
  /* Count the digits by comparison, then write them from the last, two a
   * division. */
  size_t n = 1;
  for (uint64_t p = 10; n < 20 && v >= p; p *= 10)
    n++;
  char *q = buf + n;
  while (v >= 100) {
    unsigned d = (unsigned)(v % 100) * 2;
    v /= 100;
    *--q = pairs[d + 1];
    *--q = pairs[d];
  }
  if (v >= 10) {
    *--q = pairs[v * 2 + 1];
    *--q = pairs[v * 2];
  } else {
    *--q = (char)('0' + v);
  }
  return n;
}
