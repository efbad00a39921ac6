/* weft — the HTTP/2 session over nghttp2 (http2.h). */
#include <stdint.h>
#include <string.h>

#include "http2.h"

#define UD_SLOTS 128 /* a power of two */

struct weft__h2 {
  nghttp2_session *s;
  weft__h2_events ev;
  void *owner;
  weft__h2_limits lim;
  bool server;
  bool calm; /* ended with ENHANCE_YOUR_CALM */
  /* The header block being received (blocks never interleave). */
  int64_t hb_room; /* header list bytes left (RFC 9113 6.5.2 size) */
  int64_t hb_left; /* fields left */
  bool hb_too_big;
  bool hb_trailers;
  uint16_t hb_seen; /* RQ_*: what a request head has shown so far */
  weft__http_msg *hb_msg;
  int32_t hb_sid; /* its stream, and that stream's pointer */
  void *hb_ud;
  /* Glitch budget: tokens, refilled by max_glitches / 10 a second. */
  double tokens;
  uint64_t tokens_at;
  uint64_t resets_recv;
  /* Stream pointers by stream id, direct-mapped (ud_get). */
  struct ud_slot {
    int32_t sid; /* 0: free */
    void *ud;
  } uds[UD_SLOTS];
};

/* ---- stream pointers ----
 *
 * nghttp2 keeps a pointer per stream, but reaching it is a call and a hash
 * lookup, made for every new stream (set) and again as it closes (get). The
 * pointers weft sets are kept here instead, in a table indexed by stream id
 * (ids of one side go up by two, so the streams open at once take distinct
 * slots unless some live long): a stream whose slot is taken, and a client's
 * (set by nghttp2_submit_request), keep theirs in nghttp2. A slot is freed
 * as its stream closes (nghttp2 reports every close of a stream it opened;
 * deleting the session drops the table with it).
 */
static inline struct ud_slot *ud_slot(weft__h2 *h, int32_t sid) {
  return &h->uds[((uint32_t)sid >> 1) & (UD_SLOTS - 1)];
}

static inline void *ud_get(weft__h2 *h, int32_t sid) {
  struct ud_slot *u = ud_slot(h, sid);
  if (u->sid == sid)
    return u->ud;
  return nghttp2_session_get_stream_user_data(h->s, sid);
}

/* The stream's pointer, its slot freed: for the stream's close. */
static void *ud_take(weft__h2 *h, int32_t sid) {
  struct ud_slot *u = ud_slot(h, sid);
  if (u->sid != sid)
    return nghttp2_session_get_stream_user_data(h->s, sid);
  u->sid = 0;
  return u->ud;
}

static void ud_set(weft__h2 *h, int32_t sid, void *ud) {
  struct ud_slot *u = ud_slot(h, sid);
  if (u->sid == 0 || u->sid == sid) {
    u->sid = sid;
    u->ud = ud;
    return;
  }
  nghttp2_session_set_stream_user_data(h->s, sid, ud);
}

/* ---- allocator: weft's hook, with a cache per loop ----
 *
 * nghttp2 allocates a few objects of fixed sizes for every stream (the
 * stream, two outbound items, the copy of a response's header list) and
 * frees them a moment later, once the frames are out. With a hundred streams
 * in one read, glibc's per-thread cache (7 blocks a size) overflows and most
 * of them went through malloc's slow path: a tenth of the server's time at
 * h2load -m100. So blocks up to 512 bytes are kept, in classes of 64 bytes
 * (at most MC_KEEP of each), and handed out again without malloc. The cache
 * belongs to the loop the session is made on (a loop slot, given back to
 * weft's hook when the loop is freed), and reaches the hooks as nghttp2's
 * mem_user_data: a session is used on its loop's thread only. A session made
 * outside a loop, or any under ASan (so that a use after free is still
 * caught), keeps nothing.
 */
#ifdef WEFT__ASAN
#define MC_ON 0
#else
#define MC_ON 1
#endif
#define MC_HDR 16 /* keeps malloc's alignment */
#define MC_STEP 64
#define MC_CLASSES 8 /* blocks of up to 512 bytes */
#define MC_KEEP 256  /* blocks kept of each class */
#define MC_BIG MC_CLASSES

typedef struct mc_hdr {
  size_t cls;  /* 0...MC_CLASSES-1, or MC_BIG */
  size_t size; /* of a MC_BIG block */
} mc_hdr;

_Static_assert(sizeof(mc_hdr) == MC_HDR, "header size");

typedef struct mc_free {
  struct mc_free *next;
} mc_free;

typedef struct mem_cache {
  weft__loop_slot slot;
  mc_free *free[MC_CLASSES];
  /* Blocks kept of each class; MC_BIG's stays at MC_KEEP, so that a free
   * needs no test of the class before the count. */
  unsigned n[MC_CLASSES + 1];
} mem_cache;

static const char mc_key = 0;

/* The cache of a session that keeps nothing (no loop, ASan, no memory):
 * its lists empty, its counts full, so the hooks never write to it and
 * need no test for it. */
static const mem_cache mc_none = {
    .n = {[0 ... MC_CLASSES] = MC_KEEP},
};

static void mc_fini(weft__loop_slot *slot) {
  mem_cache *mc = weft__container_of(slot, mem_cache, slot);
  for (int c = 0; c < MC_CLASSES; c++) {
    while (mc->free[c] != NULL) {
      mc_free *f = mc->free[c];
      mc->free[c] = f->next;
      weft__free((char *)f - MC_HDR);
    }
  }
  weft__free(mc);
}

/* The cache of the calling thread's loop, made on first use; mc_none when
 * there is none (no loop, ASan, no memory: blocks then go straight back). */
static mem_cache *mc_get(void) {
  weft_loop *loop = weft__loop();
  if (!MC_ON || loop == NULL)
    return (mem_cache *)&mc_none;
  weft__loop_slot *s = weft__loop_slot_get(loop, &mc_key);
  if (s != NULL)
    return weft__container_of(s, mem_cache, slot);
  mem_cache *mc = weft__calloc(1, sizeof *mc);
  if (mc == NULL)
    return (mem_cache *)&mc_none;
  mc->n[MC_BIG] = MC_KEEP;
  mc->slot.key = &mc_key;
  mc->slot.fini = mc_fini;
  weft__loop_slot_add(loop, &mc->slot);
  return mc;
}

/* A new block: of class c (< MC_CLASSES), or a big one of n bytes. Out of
 * the hooks' way: the cache serves most. */
static __attribute__((noinline)) void *mc_new(size_t c, size_t n) {
  size_t size = c < MC_CLASSES ? (c + 1) * MC_STEP : n;
  mc_hdr *h = weft__malloc(MC_HDR + size);
  if (h == NULL)
    return NULL;
  h->cls = c < MC_CLASSES ? c : MC_BIG;
  h->size = size;
  return (char *)h + MC_HDR;
}

static void *m_malloc(size_t n, void *ud) {
  mem_cache *mc = ud;
  /* n - 1 wraps for 0: a block of its own, as a big one. */
  size_t c = (n - 1) / MC_STEP;
  mc_free *f;
  if (c < MC_CLASSES && (f = mc->free[c]) != NULL) {
    mc->free[c] = f->next;
    mc->n[c]--;
    return f;
  }
  return mc_new(c, n);
}

static void m_free(void *p, void *ud) {
  mem_cache *mc = ud;
  if (p == NULL)
    return;
  mc_hdr *h = (mc_hdr *)((char *)p - MC_HDR);
  size_t c = h->cls;
  if (mc->n[c] < MC_KEEP) {
    mc_free *f = p;
    f->next = mc->free[c];
    mc->free[c] = f;
    mc->n[c]++;
    return;
  }
  weft__free(h);
}

static void *m_calloc(size_t n, size_t k, void *ud) {
  if (k != 0 && n > SIZE_MAX / k)
    return NULL;
  void *p = m_malloc(n * k, ud);
  if (p != NULL)
    memset(p, 0, n * k);
  return p;
}

static void *m_realloc(void *p, size_t n, void *ud) {
  if (p == NULL)
    return m_malloc(n, ud);
  mc_hdr *h = (mc_hdr *)((char *)p - MC_HDR);
  if (h->cls == MC_BIG) {
    if (n == 0)
      n = 1;
    mc_hdr *nh = weft__realloc(h, MC_HDR + n);
    if (nh == NULL)
      return NULL;
    nh->size = n;
    return (char *)nh + MC_HDR;
  }
  size_t have = (h->cls + 1) * MC_STEP;
  if (n <= have && n > 0)
    return p;
  void *q = m_malloc(n, ud);
  if (q == NULL)
    return NULL;
  memcpy(q, p, have < n ? have : n);
  m_free(p, ud);
  return q;
}

/* ---- glitches ---- */

bool weft__h2_glitch(weft__h2 *h) {
  if (h->calm)
    return true;
  uint64_t now = weft_now_ns();
  double rate = h->lim.max_glitches / 10.0;
  h->tokens += (double)(now - h->tokens_at) / 1e9 * rate;
  if (h->tokens > h->lim.max_glitches)
    h->tokens = h->lim.max_glitches;
  h->tokens_at = now;
  h->tokens -= 1;
  if (h->tokens >= 0)
    return false;
  h->calm = true;
  nghttp2_session_terminate_session(h->s, NGHTTP2_ENHANCE_YOUR_CALM);
  return true;
}

/* ---- receiving ---- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
                            void *user) {
  weft__h2 *h = user;
  if (f->hd.type != NGHTTP2_HEADERS)
    return 0;
  h->hb_room = (int64_t)h->lim.max_header_bytes;
  h->hb_left = (int64_t)h->lim.max_headers + 8;
  h->hb_too_big = false;
  h->hb_msg = NULL;
  h->hb_sid = 0;
  h->hb_seen = 0;
  /* A request opens its stream: nothing is set on it yet. */
  void *ud = f->headers.cat == NGHTTP2_HCAT_REQUEST
                 ? NULL
                 : ud_get(h, f->hd.stream_id);
  h->hb_trailers = f->headers.cat == NGHTTP2_HCAT_HEADERS;
  weft__http_msg *msg = NULL;
  void *nud = h->ev.begin(h->owner, f->hd.stream_id, ud, &msg);
  if (nud == NULL) {
    if (ud == NULL)
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                NGHTTP2_REFUSED_STREAM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (ud == NULL)
    ud_set(h, f->hd.stream_id, nud);
  h->hb_msg = msg;
  h->hb_sid = f->hd.stream_id;
  h->hb_ud = nud;
  return 0;
}

/* ---- a request's checks ----
 *
 * A server's session has nghttp2's HTTP checks off (they cost a tenth of
 * the server's time a request: a second pass over every field) and makes
 * them here, in the pass that stores the fields, as nghttp2 1.52 makes
 * them (RFC 9113 8.2 and 8.3): a field name is lower-case token
 * characters; a value has no NUL, CR, LF or other control byte but HTAB,
 * and no white space at either end; pseudo-header fields are the four of a
 * request, once each, not empty, before every other field, never in
 * trailers; connection-specific fields are refused, TE may only say
 * "trailers"; Content-Length is one decimal number, and the body's length
 * must match it (checked by the owner: weft__h2_body_check). A request
 * needs :method, :scheme, :path, and :authority or Host; an http(s) :path
 * starts with '/' (or is "*" for OPTIONS). CONNECT is refused (weft has no
 * tunnels). A broken request head resets its stream with PROTOCOL_ERROR and
 * counts as a glitch; a regular field with a bad name (but no upper case)
 * or value is dropped, as nghttp2 drops it.
 */
enum {
  RQ_METHOD = 1 << 0,
  RQ_PATH = 1 << 1,
  RQ_SCHEME = 1 << 2,
  RQ_AUTHORITY = 1 << 3,
  RQ_HOST = 1 << 4,
  RQ_REGULAR = 1 << 5, /* a regular field came: no pseudo-header after it */
  RQ_LENGTH = 1 << 6,
  RQ_OPTIONS = 1 << 7,
  RQ_PATH_SLASH = 1 << 8,
  RQ_PATH_STAR = 1 << 9,
  RQ_HTTP = 1 << 10, /* :scheme is http or https */
};

/* What a field is, for on_header. */
enum {
  F_BAD = -1, /* the request is broken */
  F_FIELD,    /* a regular field to keep */
  F_DROP,     /* a regular field to drop */
  F_METHOD,
  F_PATH,
  F_SCHEME,
  F_AUTHORITY,
  F_STATUS,
  F_PSEUDO, /* another pseudo-header field (a client's: ignored) */
  F_LENGTH, /* content-length */
  F_HOST,
  F_EXPECT,
  /* The commonest pseudo-header values, checked and stored without a copy
   * or a second compare: */
  F_GET,  /* :method GET */
  F_ROOT, /* :path / */
  F_HTTP, /* :scheme http */
  F_HTTPS /* :scheme https */
};

/* The classes of the four bytes at p, and-ed. */
#define CLS4(p)                                                                \
  ((unsigned)(weft__http_cls[(p)[0]] & weft__http_cls[(p)[1]] &                \
              weft__http_cls[(p)[2]] & weft__http_cls[(p)[3]]))

/* True when every byte of p[0..n) is of class c: the classes of four
 * bytes at a time are and-ed, no branch a byte, and the last four bytes
 * are read again (overlapping, which an and does not mind) instead of a
 * byte at a time. Inline: its callers pass a constant class. */
static inline __attribute__((always_inline)) bool all(const uint8_t *p,
                                                      size_t n, uint8_t c) {
  unsigned acc = c;
  if (n >= 4) {
    for (size_t i = 0; i + 4 < n; i += 4)
      acc &= CLS4(p + i);
    acc &= CLS4(p + n - 4);
  } else {
    switch (n) {
    case 3:
      acc &= weft__http_cls[p[2]];
      /* fall through */
    case 2:
      acc &= weft__http_cls[p[1]];
      /* fall through */
    case 1:
      acc &= weft__http_cls[p[0]];
    }
  }
  return acc == c;
}

/* True when the eight bytes at p may hold a byte below 0x20 or a DEL
 * (bit tricks that never miss one; HTAB is flagged too). */
static inline bool ctl8(const uint8_t *p) {
  const uint64_t ones = 0x0101010101010101u, highs = ones * 0x80;
  uint64_t x, y;
  memcpy(&x, p, 8);
  y = x ^ (ones * 0x7f);
  return ((((x - ones * 0x20) & ~x) | ((y - ones) & ~y)) & highs) != 0;
}

/* A field value as RFC 9113 8.2.1 wants it. */
static bool value_ok(const uint8_t *v, size_t n) {
  if (n == 0)
    return true;
  /* No white space at either end: both are of WEFT__C_PATH, which is
   * WEFT__C_VALUE but SP and HTAB (a control byte there is refused a little
   * early). */
  if (!(weft__http_cls[v[0]] & weft__http_cls[v[n - 1]] & WEFT__C_PATH))
    return false;
  if (n < 8)
    return all(v, n, WEFT__C_VALUE);
  /* Eight bytes at a time, the last eight overlapping: only a word that
   * may hold a control byte goes to the table, which allows HTAB. */
  for (size_t i = 0; i + 8 < n; i += 8)
    if (ctl8(v + i) && !all(v + i, 8, WEFT__C_VALUE))
      return false;
  return !ctl8(v + n - 8) || all(v + n - 8, 8, WEFT__C_VALUE);
}

/* Marks a once-only field seen; false when it came before or is empty. */
static bool once(weft__h2 *h, uint16_t flag, size_t vl) {
  if ((h->hb_seen & flag) || vl == 0)
    return false;
  h->hb_seen |= flag;
  return true;
}

/* Compares with a string literal: the length first, so most names fail
 * without a call. */
#define is(n, nl, lit)                                                         \
  ((nl) == sizeof(lit) - 1 && memcmp((n), (lit), sizeof(lit) - 1) == 0)

/* Checks one field of a request head (or trailers) on a server, and says
 * what it is (F_*). */
static int check_field(weft__h2 *h, const uint8_t *n, size_t nl,
                       const uint8_t *v, size_t vl) {
  if (nl > 0 && n[0] == ':') {
    if (h->hb_trailers || (h->hb_seen & RQ_REGULAR))
      return F_BAD;
    /* By length first: one compare for most. */
    switch (nl) {
    case 5:
      if (is(n, nl, ":path")) {
        if (!once(h, RQ_PATH, vl))
          return F_BAD;
        if (vl == 1 && v[0] == '/') {
          h->hb_seen |= RQ_PATH_SLASH;
          return F_ROOT;
        }
        if (!all(v, vl, WEFT__C_PATH))
          return F_BAD;
        if (v[0] == '/')
          h->hb_seen |= RQ_PATH_SLASH;
        else if (vl == 1 && v[0] == '*')
          h->hb_seen |= RQ_PATH_STAR;
        return F_PATH;
      }
      break;
    case 7:
      if (is(n, nl, ":method")) {
        if (!once(h, RQ_METHOD, vl))
          return F_BAD;
        /* By bytes: gcc makes a call of a three-byte memcmp here. */
        if (vl == 3 && v[0] == 'G' && v[1] == 'E' && v[2] == 'T')
          return F_GET;
        if (!all(v, vl, WEFT__C_TCHAR) || is(v, vl, "CONNECT"))
          return F_BAD;
        if (is(v, vl, "OPTIONS"))
          h->hb_seen |= RQ_OPTIONS;
        return F_METHOD;
      }
      if (is(n, nl, ":scheme")) {
        if (!once(h, RQ_SCHEME, vl))
          return F_BAD;
        if (is(v, vl, "http") || is(v, vl, "https")) {
          h->hb_seen |= RQ_HTTP;
          return vl == 4 ? F_HTTP : F_HTTPS;
        }
        if (!(weft__http_cls[v[0]] & WEFT__C_ALPHA) ||
            !all(v, vl, WEFT__C_SCHEME))
          return F_BAD;
        if ((vl == 4 && weft__http_ieq((const char *)v, "http", 4)) ||
            (vl == 5 && weft__http_ieq((const char *)v, "https", 5)))
          h->hb_seen |= RQ_HTTP;
        return F_SCHEME;
      }
      break;
    case 10:
      if (is(n, nl, ":authority")) {
        if (!once(h, RQ_AUTHORITY, vl) || !all(v, vl, WEFT__C_AUTH))
          return F_BAD;
        return F_AUTHORITY;
      }
      break;
    }
    return F_BAD; /* :status, :protocol, unknown */
  }
  h->hb_seen |= RQ_REGULAR;
  if (nl == 0 || !all(n, nl, WEFT__C_NAME)) {
    for (size_t i = 0; i < nl; i++)
      if (n[i] >= 'A' && n[i] <= 'Z')
        return F_BAD; /* upper case: never in HTTP/2 */
    return F_DROP;
  }
  switch (nl) {
  case 2:
    if (is(n, nl, "te") &&
        !(vl == 8 && weft__http_ieq((const char *)v, "trailers", 8)))
      return F_BAD;
    break;
  case 4:
    if (is(n, nl, "host")) {
      if (!all(v, vl, WEFT__C_AUTH))
        return F_DROP;
      if (!once(h, RQ_HOST, vl))
        return F_BAD;
      return F_HOST;
    }
    break;
  case 6:
    if (is(n, nl, "expect") && value_ok(v, vl))
      return F_EXPECT;
    break;
  case 7:
    if (is(n, nl, "upgrade"))
      return F_BAD;
    break;
  case 10:
    if (is(n, nl, "connection") || is(n, nl, "keep-alive"))
      return F_BAD;
    break;
  case 14:
    if (is(n, nl, "content-length")) {
      /* At most 18 digits: no overflow. */
      if (h->hb_trailers || !once(h, RQ_LENGTH, vl) || vl > 18 ||
          !all(v, vl, WEFT__C_DIGIT))
        return F_BAD;
      return F_LENGTH;
    }
    break;
  case 16:
    if (is(n, nl, "proxy-connection"))
      return F_BAD;
    break;
  case 17:
    if (is(n, nl, "transfer-encoding"))
      return F_BAD;
    break;
  }
  return value_ok(v, vl) ? F_FIELD : F_DROP;
}

/* What a field of a response is (a client's session: nghttp2 checked it). */
static int field_kind(const uint8_t *n, size_t nl) {
  if (nl > 0 && n[0] == ':')
    return is(n, nl, ":status") ? F_STATUS : F_PSEUDO;
  if (is(n, nl, "content-length"))
    return F_LENGTH;
  return F_FIELD;
}

/* A request head is complete: are the fields it needs there? */
static bool head_ok(const weft__h2 *h) {
  uint16_t m = h->hb_seen;
  if ((m & (RQ_METHOD | RQ_PATH | RQ_SCHEME)) !=
          (RQ_METHOD | RQ_PATH | RQ_SCHEME) ||
      !(m & (RQ_AUTHORITY | RQ_HOST)))
    return false;
  return !(m & RQ_HTTP) || (m & RQ_PATH_SLASH) ||
         ((m & RQ_OPTIONS) && (m & RQ_PATH_STAR));
}

/* The request on `sid` is broken: RST_STREAM PROTOCOL_ERROR (before
 * nghttp2's own INTERNAL_ERROR, which then is not sent), and a glitch. */
static void bad_request(weft__h2 *h, int32_t sid) {
  nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, sid,
                            NGHTTP2_PROTOCOL_ERROR);
  (void)weft__h2_glitch(h);
}

/* The other common methods as literals: no copy for them (GET, http and
 * https have their own kinds). */
static const char *common(const char *v, size_t vl) {
  switch (vl) {
  case 3:
    return is(v, vl, "PUT") ? "PUT" : NULL;
  case 4:
    return is(v, vl, "POST") ? "POST" : is(v, vl, "HEAD") ? "HEAD" : NULL;
  default:
    return NULL;
  }
}

/* One field of a head, for on_header_server and on_header_client: inline
 * in both, so each is made for its role. */
static inline __attribute__((always_inline)) int
on_field(weft__h2 *h, const nghttp2_frame *f, const uint8_t *name, size_t nl,
         const uint8_t *value, size_t vl, bool server) {
  weft__http_msg *m = h->hb_msg;
  if (m == NULL || f->hd.type != NGHTTP2_HEADERS)
    return 0;
  int kind =
      server ? check_field(h, name, nl, value, vl) : field_kind(name, nl);
  if (kind == F_BAD) {
    bad_request(h, f->hd.stream_id);
    h->hb_msg = NULL;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the rest is skipped */
  }
  if (kind == F_DROP)
    return 0;
  /* RFC 9113 6.5.2: the size of a header list counts 32 bytes a field.
   * Fields past a limit are dropped (decoding goes on, so the HPACK state
   * stays right) and the head is reported too big. */
  h->hb_room -= (int64_t)(nl + vl + 32);
  h->hb_left--;
  /* Both only go down: once either is below 0 it stays there, so this
   * test alone says whether the head is too big already. */
  if ((h->hb_room < 0) | (h->hb_left < 0)) {
    h->hb_too_big = true;
    return 0;
  }
  const char *n = (const char *)name, *v = (const char *)value;
  char *copy;
  switch (kind) {
  case F_GET:
    m->method = "GET";
    return 0;
  case F_ROOT:
    m->target = m->path = "/";
    m->path_len = 1;
    m->query = "";
    return 0;
  case F_HTTP:
    m->scheme = "http";
    return 0;
  case F_HTTPS:
    m->scheme = "https";
    return 0;
  case F_PATH:
    return weft__http_msg_set_target(m, v, vl) == 0
               ? 0
               : NGHTTP2_ERR_CALLBACK_FAILURE;
  case F_METHOD:
  case F_AUTHORITY:
  case F_SCHEME:
    /* An authority is never one of the literals: no look for it. */
    if ((kind == F_AUTHORITY || (copy = (char *)common(v, vl)) == NULL) &&
        (copy = weft__arena_strndup(&m->arena, v, vl)) == NULL)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (kind == F_METHOD)
      m->method = copy;
    else if (kind == F_AUTHORITY)
      m->authority = copy;
    else
      m->scheme = copy;
    return 0;
  case F_STATUS: {
    int st = 0;
    for (size_t i = 0; i < vl && i < 3; i++)
      st = st * 10 + (v[i] - '0');
    m->status = st;
    return 0;
  }
  case F_PSEUDO:
    return 0;
  default:
    break;
  }
  weft__http_hdrs *list = h->hb_trailers ? &m->trailers : &m->hdrs;
  if (list->n >= h->lim.max_headers) {
    h->hb_too_big = true;
    h->hb_left = -1; /* as the test above expects */
    return 0;
  }
  if (weft__http_hdrs_add(m, list, n, nl, v, vl) != 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (h->hb_trailers)
    return 0;
  if (kind == F_LENGTH) {
    int64_t cl = 0;
    for (size_t i = 0; i < vl; i++)
      cl = cl * 10 + (v[i] - '0'); /* digits, checked */
    m->content_length = cl;
  } else if (kind == F_HOST && m->authority[0] == '\0') {
    m->authority = list->v[list->n - 1].value;
  } else if (kind == F_EXPECT && vl == 12 &&
             weft__http_ieq(v, "100-continue", 12)) {
    m->expect_continue = true;
  }
  return 0;
}

static int on_header_server(nghttp2_session *s, const nghttp2_frame *f,
                            const uint8_t *name, size_t nl,
                            const uint8_t *value, size_t vl, uint8_t flags,
                            void *user) {
  (void)s;
  (void)flags;
  return on_field(user, f, name, nl, value, vl, true);
}

static int on_header_client(nghttp2_session *s, const nghttp2_frame *f,
                            const uint8_t *name, size_t nl,
                            const uint8_t *value, size_t vl, uint8_t flags,
                            void *user) {
  (void)s;
  (void)flags;
  return on_field(user, f, name, nl, value, vl, false);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *user) {
  (void)s;
  weft__h2 *h = user;
  int32_t sid = f->hd.stream_id;
  void *ud = NULL;
  if (f->hd.type == NGHTTP2_HEADERS && sid != 0 && sid == h->hb_sid)
    ud = h->hb_ud; /* the block on_begin_headers saw (saves a lookup) */
  else if (sid != 0)
    ud = ud_get(h, sid);
  bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (ud == NULL)
      return 0;
    if (h->server && h->hb_msg != NULL &&
        (h->hb_trailers
             ? !end
             : !head_ok(h) || (end && h->hb_msg->content_length > 0))) {
      /* Trailers must end the stream; a head without a body must not
       * promise one. */
      h->hb_msg = NULL;
      bad_request(h, sid);
      return 0;
    }
    h->hb_msg = NULL;
    int rc = h->ev.head(h->owner, ud, h->hb_trailers, end, h->hb_too_big);
    if (rc < 0)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (rc > 0)
      return 0; /* the end went with the head */
    break;
  case NGHTTP2_DATA:
    break;
  case NGHTTP2_RST_STREAM:
    h->resets_recv++;
    (void)weft__h2_glitch(h);
    return 0;
  default:
    return 0;
  }
  if (end && ud != NULL && h->ev.end(h->owner, ud) != 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid,
                         const uint8_t *data, size_t len, void *user) {
  (void)flags;
  weft__h2 *h = user;
  void *ud = ud_get(h, sid);
  if (ud == NULL) {
    nghttp2_session_consume_connection(s, len);
    return 0;
  }
  return h->ev.data(h->owner, ud, data, len) == 0
             ? 0
             : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code,
                           void *user) {
  (void)s;
  weft__h2 *h = user;
  void *ud = ud_take(h, sid);
  if (sid == h->hb_sid)
    h->hb_sid = 0;
  if (ud == NULL)
    return 0;
  /* The stream goes with this call: its pointer needs no clearing. */
  return h->ev.close(h->owner, ud, code) == 0 ? 0
                                              : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A frame the peer should not have sent: a stream error it caused
 * (MadeYouReset's lever), or a connection error nghttp2 handles. */
static int on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int err,
                            void *user) {
  (void)s;
  (void)f;
  (void)err;
  (void)weft__h2_glitch(user);
  return 0;
}

bool weft__h2_body_ok(weft__h2 *h, int32_t sid, int64_t cl, uint64_t got,
                      bool end) {
  if (cl < 0 || (end ? got == (uint64_t)cl : got <= (uint64_t)cl))
    return true;
  bad_request(h, sid);
  return false;
}

/* ---- sending bodies ---- */

static ssize_t read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf,
                       size_t len, uint32_t *flags, nghttp2_data_source *src,
                       void *user) {
  weft__h2 *h = user;
  bool eof = false;
  const weft__http_hdrs *tr = NULL;
  ssize_t n = h->ev.read(h->owner, src->ptr, buf, len, &eof, &tr);
  if (n == WEFT_EAGAIN)
    return NGHTTP2_ERR_DEFERRED;
  if (n < 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  if (eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (tr != NULL && tr->n > 0 && weft__h2_submit_trailers(h, sid, tr) == 0)
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }
  (void)s;
  return n;
}

/* ---- making ---- */

int weft__h2_new(weft__h2 **out, bool server, const weft__h2_limits *lim,
                 const weft__h2_events *ev, void *owner) {
  weft__h2 *h = weft__calloc(1, sizeof *h);
  if (h == NULL)
    return WEFT_ENOMEM;
  h->ev = *ev;
  h->owner = owner;
  h->lim = *lim;
  h->server = server;
  h->tokens = lim->max_glitches;
  h->tokens_at = weft_now_ns();
  nghttp2_session_callbacks *cb = NULL;
  nghttp2_option *opt = NULL;
  int rc = WEFT_ENOMEM;
  if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
    goto out;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(
      cb, server ? on_header_server : on_header_client);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
      cb, on_invalid_frame);
  /* Windows open as the application consumes (weft__h2_consume). */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* A server checks requests itself, in the pass that stores them (see
   * check_field); a client leaves responses to nghttp2. */
  if (server)
    nghttp2_option_set_no_http_messaging(opt, 1);
  /* Flood limits, explicitly (their defaults in newer nghttp2 versions,
   * missing or different in older ones). */
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  nghttp2_mem mem = {mc_get(), m_malloc, m_free, m_calloc, m_realloc};
  if (server)
    rc = nghttp2_session_server_new3(&h->s, cb, h, opt, &mem);
  else
    rc = nghttp2_session_client_new3(&h->s, cb, h, opt, &mem);
  rc = rc == 0 ? 0 : WEFT_ENOMEM;
out:
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  if (rc != 0) {
    weft__free(h);
    return rc;
  }
  *out = h;
  return 0;
}

int weft__h2_start(weft__h2 *h) {
  nghttp2_settings_entry iv[5];
  size_t n = 0;
  iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                     h->lim.max_streams};
  iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                     h->lim.stream_window};
  iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                     (uint32_t)h->lim.max_header_bytes};
  if (!h->server)
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  else
    iv[n++] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
  if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, n) != 0)
    return WEFT_ENOMEM;
  if (h->lim.conn_window > 65535 &&
      nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0,
                                            (int32_t)h->lim.conn_window) != 0)
    return WEFT_ENOMEM;
  return 0;
}

void weft__h2_free(weft__h2 *h) {
  if (h == NULL)
    return;
  nghttp2_session_del(h->s);
  weft__free(h);
}

/* base64url (RFC 4648 §5, unpadded) to bytes. Returns the length or -1. */
static ssize_t b64url_decode(const char *in, uint8_t *out, size_t cap) {
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (const char *p = in; *p != '\0' && *p != '='; p++) {
    int v;
    char c = *p;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-' || c == '+')
      v = 62;
    else if (c == '_' || c == '/')
      v = 63;
    else
      return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == cap)
        return -1;
      out[n++] = (uint8_t)(acc >> bits);
    }
  }
  return (ssize_t)n;
}

int weft__h2_upgrade(weft__h2 *h, const char *settings_b64, bool head,
                     void *ud) {
  uint8_t buf[256];
  ssize_t n = b64url_decode(settings_b64, buf, sizeof buf);
  if (n < 0 || n % 6 != 0)
    return WEFT_EBADMSG;
  int rc = nghttp2_session_upgrade2(h->s, buf, (size_t)n, head ? 1 : 0, ud);
  if (rc == NGHTTP2_ERR_NOMEM)
    return WEFT_ENOMEM;
  if (rc != 0)
    return WEFT_EBADMSG;
  /* A server's upgrade ignores the pointer it is given. */
  ud_set(h, 1, ud);
  return 0;
}

/* ---- I/O ---- */

static int map_err(weft__h2 *h, ssize_t rc) {
  switch (rc) {
  case NGHTTP2_ERR_NOMEM:
    return WEFT_ENOMEM;
  case NGHTTP2_ERR_FLOODED:
    if (!h->calm) {
      h->calm = true;
      nghttp2_session_terminate_session(h->s, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return WEFT_ELIMIT;
  case NGHTTP2_ERR_CALLBACK_FAILURE:
    nghttp2_session_terminate_session(h->s, NGHTTP2_INTERNAL_ERROR);
    return WEFT_EPROTO;
  default:
    nghttp2_session_terminate_session(h->s, NGHTTP2_PROTOCOL_ERROR);
    return WEFT_EPROTO;
  }
}

int weft__h2_recv(weft__h2 *h, const uint8_t *data, size_t len) {
  ssize_t rc = nghttp2_session_mem_recv(h->s, data, len);
  if (rc < 0)
    return map_err(h, rc);
  return h->calm ? WEFT_ELIMIT : 0;
}

ssize_t weft__h2_send(weft__h2 *h, const uint8_t **data) {
  ssize_t n = nghttp2_session_mem_send(h->s, data);
  if (n < 0)
    return map_err(h, n);
  return n;
}

nghttp2_session *weft__h2_session(weft__h2 *h) { return h->s; }

int weft__h2_send_failed(weft__h2 *h, ssize_t rc) { return map_err(h, rc); }

bool weft__h2_want_read(const weft__h2 *h) {
  return nghttp2_session_want_read(h->s) != 0;
}

bool weft__h2_want_write(const weft__h2 *h) {
  return nghttp2_session_want_write(h->s) != 0;
}

/* ---- sending ---- */

/* Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2). */
static bool h2_forbidden(const char *n, size_t l) {
  switch (l) {
  case 7:
    return weft__http_ieq(n, "upgrade", 7);
  case 10:
    return weft__http_ieq(n, "connection", 10) ||
           weft__http_ieq(n, "keep-alive", 10);
  case 16:
    return weft__http_ieq(n, "proxy-connection", 16);
  case 17:
    return weft__http_ieq(n, "transfer-encoding", 17);
  default:
    return false;
  }
}

/* The index of the first upper-case ASCII byte of n[0..l), or l: eight
 * bytes at a time (bit tricks, exact: the high bits are cleared first so
 * no byte carries into the next), the last eight overlapping. */
static size_t first_upper(const char *n, size_t l) {
  const uint64_t ones = 0x0101010101010101u, highs = ones * 0x80;
  if (l >= 8) {
    for (size_t i = 0;; i += 8) {
      if (i + 8 > l)
        i = l - 8;
      uint64_t x, y;
      memcpy(&x, n + i, 8);
      y = x & ~highs;
      if ((y + ones * (0x80 - 'A')) & ~(y + ones * (0x80 - 'Z' - 1)) & ~x &
          highs)
        break; /* one of these: find it below */
      if (i + 8 == l)
        return l;
    }
  }
  size_t j = 0;
  while (j < l && (unsigned)(n[j] - 'A') >= 26u)
    j++;
  return j;
}

/* Builds the nv list of m's fields after `extra` entries left for the
 * caller at the front, in `stack` (room for NV_STACK entries) when it fits,
 * else in one allocation. nghttp2 copies a head's strings and lower-cases
 * the names it copies (documented for nghttp2_submit_*). With `keep`, it is
 * told not to copy them (they live as long as the message); a name with
 * upper case in it is still left to nghttp2 to copy, and so to lower-case.
 * Returns the list or NULL. Inline: its one caller a response is
 * weft__h2_submit. */
#define NV_STACK 32
static inline __attribute__((always_inline)) nghttp2_nv *
make_nv(const weft__http_hdrs *hd, size_t extra, size_t *count,
        nghttp2_nv *stack, bool keep) {
  nghttp2_nv *nv = stack;
  if (hd->n + extra > NV_STACK) {
    nv = weft__malloc((hd->n + extra) * sizeof *nv);
    if (nv == NULL)
      return NULL;
  }
  uint8_t flags =
      keep ? NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE
           : NGHTTP2_NV_FLAG_NONE;
  size_t k = extra;
  for (uint32_t i = 0; i < hd->n; i++) {
    const weft_http_field *f = &hd->v[i];
    if (h2_forbidden(f->name, f->name_len))
      continue;
    uint8_t fl = flags;
    if (keep && first_upper(f->name, f->name_len) < f->name_len)
      fl = NGHTTP2_NV_FLAG_NO_COPY_VALUE; /* nghttp2 lower-cases its copy */
    nv[k++] = (nghttp2_nv){(uint8_t *)f->name, (uint8_t *)f->value, f->name_len,
                           f->value_len, fl};
  }
  *count = k;
  return nv;
}

#define NV(n, v, vl, fl)                                                       \
  ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), (fl)})

/* "000" to "999", three bytes each: a status, or a short Content-Length
 * (most bodies), is a pointer into it, which outlives every frame: no
 * formatting, no copy. */
#define D3(a, b, c)                                                            \
  { '0' + (a), '0' + (b), '0' + (c) }
#define D2(a, b)                                                               \
  D3(a, b, 0), D3(a, b, 1), D3(a, b, 2), D3(a, b, 3), D3(a, b, 4),             \
      D3(a, b, 5), D3(a, b, 6), D3(a, b, 7), D3(a, b, 8), D3(a, b, 9)
#define D1(a)                                                                  \
  D2(a, 0), D2(a, 1), D2(a, 2), D2(a, 3), D2(a, 4), D2(a, 5), D2(a, 6),        \
      D2(a, 7), D2(a, 8), D2(a, 9)
static const char dec3[1000][3] = {D1(0), D1(1), D1(2), D1(3), D1(4),
                                   D1(5), D1(6), D1(7), D1(8), D1(9)};
#undef D1
#undef D2
#undef D3

int32_t weft__h2_submit(weft__h2 *h, int32_t sid, weft__http_msg *m, bool body,
                        void *ud) {
  /* A server's response is sent without copies: its strings are in its
   * arena (or static), which lasts until the stream closes. */
  bool resp = m->kind == WEFT__HTTP_RESPONSE;
  bool keep = h->server && resp;
  uint8_t fl =
      keep ? NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE
           : NGHTTP2_NV_FLAG_NONE;
  /* The fixed entries go first, the fields after them. */
  size_t fixed =
      (resp ? 1 + (h->server ? 1 : 0) : 4) + (m->content_length >= 0 ? 1 : 0);
  size_t n;
  nghttp2_nv room[NV_STACK];
  nghttp2_nv *nv = make_nv(&m->hdrs, fixed, &n, room, keep);
  if (nv == NULL)
    return WEFT_ENOMEM;
  size_t k = 0;
  if (resp) {
    /* The three digits of status % 1000, as ever. */
    nv[k++] = NV(":status", dec3[(unsigned)m->status % 1000], 3, fl);
    if (h->server) {
      /* "Date: <value>\r\n", in the thread's cache: the text may turn to
       * the next second before the frame goes, never its length or
       * place. */
      const char *date;
      size_t datel = weft__http_date(&date);
      nv[k++] = NV("date", date + 6, datel - 8, fl);
    }
  } else {
    nv[k++] = NV(":method", m->method, strlen(m->method), fl);
    const char *scheme = m->scheme ? m->scheme : "https";
    nv[k++] = NV(":scheme", scheme, strlen(scheme), fl);
    nv[k++] = NV(":authority", m->authority, strlen(m->authority), fl);
    nv[k++] = NV(":path", m->target, strlen(m->target), fl);
  }
  char cl[24];
  if (m->content_length >= 1000) {
    /* On the stack: nghttp2 copies this one. */
    nv[k++] = NV("content-length", cl,
                 weft__http_fmt_dec(cl, (uint64_t)m->content_length),
                 fl & NGHTTP2_NV_FLAG_NO_COPY_NAME);
  } else if (m->content_length >= 0) {
    unsigned v = (unsigned)m->content_length;
    size_t l = v >= 100 ? 3 : v >= 10 ? 2 : 1;
    nv[k++] = NV("content-length", dec3[v] + 3 - l, l, fl);
  }
  nghttp2_data_provider prd = {.source.ptr = ud, .read_callback = read_cb};
  int32_t rc;
  if (resp)
    rc = nghttp2_submit_response(h->s, sid, nv, n, body ? &prd : NULL);
  else
    rc = nghttp2_submit_request(h->s, NULL, nv, n, body ? &prd : NULL, ud);
  if (nv != room)
    weft__free(nv);
  if (rc == NGHTTP2_ERR_NOMEM)
    return WEFT_ENOMEM;
  if (rc < 0)
    return WEFT_EINVAL;
  return rc;
}

/* make_nv out of line, for trailers (rare). */
static __attribute__((noinline)) nghttp2_nv *
make_trailer_nv(const weft__http_hdrs *t, size_t *count, nghttp2_nv *stack) {
  return make_nv(t, 0, count, stack, false);
}

int weft__h2_submit_trailers(weft__h2 *h, int32_t sid,
                             const weft__http_hdrs *t) {
  size_t n;
  nghttp2_nv room[NV_STACK];
  nghttp2_nv *nv = make_trailer_nv(t, &n, room);
  if (nv == NULL)
    return WEFT_ENOMEM;
  int rc = nghttp2_submit_trailer(h->s, sid, nv, n);
  if (nv != room)
    weft__free(nv);
  return rc == 0 ? 0 : (rc == NGHTTP2_ERR_NOMEM ? WEFT_ENOMEM : WEFT_EINVAL);
}

void weft__h2_resume(weft__h2 *h, int32_t sid) {
  (void)nghttp2_session_resume_data(h->s, sid);
}

void weft__h2_reset(weft__h2 *h, int32_t sid, uint32_t code) {
  (void)nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, sid, code);
}

void weft__h2_consume(weft__h2 *h, int32_t sid, size_t n) {
  /* nghttp2_session_consume opens the connection's window, then the
   * stream's if the stream is still there: no lookup of ours first. */
  if (n > 0)
    (void)nghttp2_session_consume(h->s, sid, n);
}

void weft__h2_goaway(weft__h2 *h, uint32_t code) {
  if (code == NGHTTP2_NO_ERROR) {
    (void)nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(h->s),
                                NGHTTP2_NO_ERROR, NULL, 0);
    return;
  }
  if (code == NGHTTP2_ENHANCE_YOUR_CALM)
    h->calm = true;
  (void)nghttp2_session_terminate_session(h->s, code);
}

void *weft__h2_stream_ud(weft__h2 *h, int32_t sid) { return ud_get(h, sid); }

uint64_t weft__h2_resets_recv(const weft__h2 *h) { return h->resets_recv; }

bool weft__h2_calmed(const weft__h2 *h) { return h->calm; }

uint32_t weft__h2_peer_max_streams(const weft__h2 *h) {
  return nghttp2_session_get_remote_settings(
      h->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool weft__h2_may_open(const weft__h2 *h) {
  return nghttp2_session_check_request_allowed(h->s) != 0 &&
         nghttp2_session_want_read(h->s) != 0;
}

void weft__h2_consume_conn(weft__h2 *h, size_t n) {
  if (n > 0)
    (void)nghttp2_session_consume_connection(h->s, n);
}

void weft__h2_consume_stream(weft__h2 *h, int32_t sid, size_t n) {
  /* A stream that is gone is skipped by nghttp2 itself. */
  if (n > 0)
    (void)nghttp2_session_consume_stream(h->s, sid, n);
}
