/* weft — the HTTP message model shared by both protocols and both roles
 * (docs/internals/http.md).
 *
 * A weft__http_msg is one request head or one response head: method and
 * target, or status; the header fields; what the framing said about the
 * body; trailers. The HTTP/1 codec (http1.h) fills one from bytes and
 * serialises one to bytes; the HTTP/2 session (http2.h) does the same from
 * and to nghttp2's header lists. The server fills request messages and
 * sends response messages; a client does the opposite with the same code.
 *
 * Strings live in the message's arena: blocks that never move, so every
 * pointer handed out stays valid until the message is reset or freed.
 */
#ifndef WEFT_HTTP_MSG_H
#define WEFT_HTTP_MSG_H

#include <string.h>
#include <weft/http.h>

#include "internal.h"

/* A block's header; its cap bytes follow it (weft__arena_data). No flexible
 * array member, so that a block with its bytes can be embedded anywhere in
 * an owner (WEFT__ARENA_INLINE). */
typedef struct weft__arena_blk {
  struct weft__arena_blk *next;
  size_t used, cap;
} weft__arena_blk;

static inline char *weft__arena_data(weft__arena_blk *b) {
  return (char *)(b + 1);
}

/* An arena block with n bytes of its own, to embed in an owner as the
 * first block of a message's arena (weft__http_msg_init_inline). */
#define WEFT__ARENA_INLINE(n)                                                  \
  union {                                                                      \
    weft__arena_blk blk;                                                       \
    char bytes[sizeof(weft__arena_blk) + (n)];                                 \
  }

/* Bump allocator over a chain of blocks; the first block may be
 * embedded in the owner (inline_cap bytes after the arena). */
typedef struct weft__arena {
  weft__arena_blk *head; /* the block being filled */
  weft__arena_blk *first_inline;
} weft__arena;

/* Initialises an arena whose first block is `inline_blk` (NULL: none); the
 * inline block's cap must be set by the caller. */
void weft__arena_init(weft__arena *a, weft__arena_blk *inline_blk);
/* weft__arena_reset past the inline block. */
void weft__arena_reset_slow(weft__arena *a);
/* Frees every block but the inline one, which is emptied. Inline for the
 * common arena that never left its inline block (whose next is NULL). */
static inline void weft__arena_reset(weft__arena *a) {
  if (a->head != NULL && a->head == a->first_inline)
    a->head->used = 0;
  else
    weft__arena_reset_slow(a);
}
/* n bytes (aligned to 8), or NULL. Inline while the block has room. */
void *weft__arena_alloc_slow(weft__arena *a, size_t n);
static inline void *weft__arena_alloc(weft__arena *a, size_t n) {
  n = (n + 7) & ~(size_t)7;
  weft__arena_blk *b = a->head;
  if (b == NULL || b->cap - b->used < n)
    return weft__arena_alloc_slow(a, n);
  void *p = weft__arena_data(b) + b->used;
  b->used += n;
  return p;
}
/* A NUL-terminated copy of s[0..n), or NULL. */
char *weft__arena_strndup(weft__arena *a, const char *s, size_t n);

enum { WEFT__HTTP_REQUEST = 1, WEFT__HTTP_RESPONSE = 2 };

typedef struct weft__http_hdrs {
  weft_http_field *v;
  uint32_t n, cap;
} weft__http_hdrs;

typedef struct weft__http_msg {
  uint8_t kind;    /* WEFT__HTTP_REQUEST / _RESPONSE */
  uint8_t version; /* 10, 11, 20 */
  /* Request. */
  const char *method; /* "GET" */
  const char *target; /* as sent */
  const char *path;   /* target up to '?' */
  size_t path_len;    /* strlen(path) */
  const char *query;  /* after '?', or "" */
  const char *authority;
  const char *scheme; /* HTTP/2 :scheme, or NULL */
  /* Response. */
  int status;
  /* Framing, as the head says (filled by the codecs). */
  int64_t content_length; /* -1: none */
  bool chunked;           /* HTTP/1.1 Transfer-Encoding: chunked */
  bool keep_alive;        /* HTTP/1.x: the connection may go on */
  bool expect_continue;   /* Expect: 100-continue */
  bool upgrade;           /* HTTP/1.1 Upgrade (h2c handled by the server) */
  bool head;              /* a response to HEAD: no body whatever it says */
  weft__http_hdrs hdrs;
  weft__http_hdrs trailers;
  weft__arena arena;
} weft__http_msg;

void weft__http_msg_init(weft__http_msg *m, int kind,
                         weft__arena_blk *inline_blk);
/* weft__http_msg_init with an embedded first block of `size` bytes in all
 * (a WEFT__ARENA_INLINE: &x.blk, sizeof x), whose cap it sets. */
void weft__http_msg_init_inline(weft__http_msg *m, int kind,
                                weft__arena_blk *blk, size_t size);
/* Empties it for the next message (keeps the inline block and the header
 * arrays' memory). */
void weft__http_msg_reset(weft__http_msg *m);
/* Every field but the header lists and the arena, one by one: a memset of
 * the whole is a `rep stos`, slow to start, on every request. */
static inline void weft__http_msg_fields(weft__http_msg *m, int kind) {
  m->kind = (uint8_t)kind;
  m->version = 11;
  m->method = m->target = m->path = m->scheme = NULL;
  m->path_len = 0;
  m->query = "";
  m->authority = "";
  m->status = 0;
  m->content_length = -1;
  m->chunked = m->keep_alive = m->expect_continue = m->upgrade = m->head =
      false;
}
/* weft__http_msg_reset for a message whose arena is empty already: the
 * fields alone. Inline: a cached request clears two on every request. */
static inline void weft__http_msg_clear(weft__http_msg *m) {
  weft__http_msg_fields(m, m->kind);
  m->hdrs.n = 0;
  m->trailers.n = 0;
}
void weft__http_msg_fini(weft__http_msg *m);

/* Byte classes of HTTP's grammars, a bit each, in one table for the
 * HTTP/1.1 and HTTP/2 checks (http_msg.c). */
enum {
  WEFT__C_NAME = 1,  /* lower-case tchar (RFC 9110 5.6.2) */
  WEFT__C_TCHAR = 2, /* tchar */
  WEFT__C_VALUE = 4, /* field-vchar, SP, HTAB (RFC 9110 5.5) */
  WEFT__C_PATH = 8,  /* WEFT__C_VALUE but SP and HTAB */
  WEFT__C_AUTH = 16, /* RFC 3986 authority: unreserved, sub-delims, : @ [ ] % */
  WEFT__C_SCHEME = 32, /* ALPHA DIGIT + - . */
  WEFT__C_ALPHA = 64,
  WEFT__C_DIGIT = 128
};
extern const uint8_t weft__http_cls[256];

/* Appends a field (copied into the arena). Returns 0 or WEFT_ENOMEM. */
int weft__http_hdrs_add(weft__http_msg *m, weft__http_hdrs *h, const char *name,
                        size_t nlen, const char *value, size_t vlen);
/* The same with a name that outlives the message (a string literal): only
 * the value is copied. */
int weft__http_hdrs_add_name(weft__http_msg *m, weft__http_hdrs *h,
                             const char *name, size_t nlen, const char *value,
                             size_t vlen);
/* The same with both strings outliving the message (literals, or strings
 * the caller keeps until then): nothing is copied. Inline while the array
 * has room. */
int weft__http_hdrs_add_grow(weft__http_hdrs *h, const char *name, size_t nlen,
                             const char *value, size_t vlen);
static inline int weft__http_hdrs_add_static(weft__http_hdrs *h,
                                             const char *name, size_t nlen,
                                             const char *value, size_t vlen) {
  if (h->n == h->cap)
    return weft__http_hdrs_add_grow(h, name, nlen, value, vlen);
  h->v[h->n++] = (weft_http_field){name, value, nlen, vlen};
  return 0;
}
/* The first field named `name` (any case), or NULL. */
const weft_http_field *weft__http_hdrs_find(const weft__http_hdrs *h,
                                            const char *name, size_t nlen);
/* Splits the target into path and query (arena copies). */
int weft__http_msg_set_target(weft__http_msg *m, const char *t, size_t n);

/* Case-insensitive ASCII comparison of n bytes. */
static inline bool weft__http_ieq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x - 'A' < 26u)
      x |= 0x20;
    if (y - 'A' < 26u)
      y |= 0x20;
    if (x != y)
      return false;
  }
  return true;
}

/* True when s[0..n) may be sent as a header name / value. */
bool weft__http_token_ok(const char *s, size_t n);
bool weft__http_value_ok(const char *s, size_t n);

/* A growable byte buffer for serialising (heads, chunk framing). */
typedef struct weft__hbuf {
  char *data;
  size_t len, cap;
} weft__hbuf;

/* weft__hbuf_reserve's growing part. */
int weft__hbuf_grow(weft__hbuf *b, size_t n);
/* Makes room for n more bytes. Returns 0 or WEFT_ENOMEM. Inline: the room
 * is mostly there. */
static inline int weft__hbuf_reserve(weft__hbuf *b, size_t n) {
  return b->cap - b->len >= n ? 0 : weft__hbuf_grow(b, n);
}
void weft__hbuf_free(weft__hbuf *b);
/* Appends without checking room (after weft__hbuf_reserve). */
static inline void weft__hbuf_put(weft__hbuf *b, const void *p, size_t n) {
  memcpy(b->data + b->len, p, n);
  b->len += n;
}
/* Appends n bytes. Returns 0 or WEFT_ENOMEM. */
static inline int weft__hbuf_add(weft__hbuf *b, const void *p, size_t n) {
  int rc = weft__hbuf_reserve(b, n);
  if (rc == 0)
    weft__hbuf_put(b, p, n);
  return rc;
}

/* "Date: Tue, 15 Nov 1994 08:12:31 GMT\r\n" for now, cached per second per
 * thread. Returns its length (37); *out points into the cache. */
size_t weft__http_date(const char **out);

/* Writes v in decimal at buf (at most 20 bytes, no NUL); returns the
 * length. For Content-Length, in both codecs. */
size_t weft__http_fmt_dec(char *buf, uint64_t v);

#endif
