/* weft — the HTTP/1.1 codec over llhttp (http1.h). */
#include <stdio.h>
#include <string.h>

#include "http1.h"

/* ---- llhttp callbacks ---- */

static weft__h1 *H(llhttp_t *p) { return p->data; }

static int fail(weft__h1 *h, int status, const char *why) {
  h->status = status;
  h->why = why;
  llhttp_set_error_reason(&h->p, why);
  return HPE_USER;
}

/* Counts head bytes against the limit (the request line counts too). */
static int count(weft__h1 *h, size_t n, bool in_target) {
  h->head_bytes += n;
  if (h->head_bytes > h->lim->max_header_bytes)
    return fail(h, in_target ? 414 : 431,
                in_target ? "request line too long" : "header block too large");
  return 0;
}

static int scratch_add(weft__h1 *h, const char *at, size_t n) {
  if (h->sc_cap - h->sc_len < n) {
    size_t cap = h->sc_cap ? h->sc_cap : 256;
    while (cap - h->sc_len < n)
      cap *= 2;
    char *d = weft__realloc(h->scratch, cap);
    if (d == NULL)
      return fail(h, 500, "out of memory");
    h->scratch = d;
    h->sc_cap = cap;
  }
  memcpy(h->scratch + h->sc_len, at, n);
  h->sc_len += n;
  return 0;
}

/* Moves what still points into the fed bytes to the scratch buffer (the
 * name first, then the piece after it): before a second piece is joined,
 * and at the end of a feed, after which those bytes may move. */
static int spill(weft__h1 *h) {
  if (h->have_fld && !h->fld_sc) {
    h->sc_len = 0;
    if (scratch_add(h, h->fld, h->fld_len) != 0)
      return HPE_USER;
    h->fld_sc = true;
  }
  if (!h->cur_sc) {
    if (!h->fld_sc)
      h->sc_len = 0;
    if (h->cur_len > 0 && scratch_add(h, h->cur, h->cur_len) != 0)
      return HPE_USER;
    h->cur_sc = true;
  }
  return 0;
}

/* A piece of the current span: kept where it is when it is the first. */
static inline __attribute__((always_inline)) int
piece(weft__h1 *h, const char *at, size_t n) {
  if (h->cur_len == 0 && !h->cur_sc) {
    h->cur = at;
    h->cur_len = n;
    return 0;
  }
  if (!h->cur_sc && spill(h) != 0)
    return HPE_USER;
  h->cur_len += n;
  return scratch_add(h, at, n);
}

/* The bytes of the current span (whole now); the span is reset. */
static const char *take(weft__h1 *h, size_t *len) {
  const char *s = h->cur;
  if (h->cur_sc)
    s = h->scratch + (h->have_fld && h->fld_sc ? h->fld_len : 0);
  *len = h->cur_len;
  h->cur_len = 0;
  h->cur_sc = false;
  return s;
}

static int on_message_begin(llhttp_t *p) {
  weft__h1 *h = H(p);
  h->state = WEFT__H1_START;
  h->status = 0;
  h->val_open = false;
  h->chunk_left = 0;
  h->crlf_left = 0;
  h->head_bytes = 0;
  h->sc_len = h->cur_len = h->fld_len = 0;
  h->cur_sc = h->fld_sc = h->have_fld = false;
  h->in_trailers = false;
  h->body_bytes = 0;
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n) {
  weft__h1 *h = H(p);
  int rc = count(h, n, true);
  return rc ? rc : piece(h, at, n);
}

/* The common methods as literals (llhttp has matched the bytes to
 * p->method, so a name of the same length is the same name). */
#define LIT(m, s) [m] = {s, sizeof s - 1}
static const struct {
  const char *name;
  size_t len;
} methods[] = {LIT(HTTP_DELETE, "DELETE"), LIT(HTTP_GET, "GET"),
               LIT(HTTP_HEAD, "HEAD"),     LIT(HTTP_POST, "POST"),
               LIT(HTTP_PUT, "PUT"),       LIT(HTTP_OPTIONS, "OPTIONS"),
               LIT(HTTP_PATCH, "PATCH")};
#undef LIT

static const char *method_lit(uint8_t m, size_t len) {
  return m < sizeof methods / sizeof *methods && methods[m].len == len
             ? methods[m].name
             : NULL;
}

static int on_method_complete(llhttp_t *p) {
  weft__h1 *h = H(p);
  size_t n;
  const char *s = take(h, &n);
  const char *lit = method_lit(p->method, n);
  h->msg->method = lit ? lit : weft__arena_strndup(&h->msg->arena, s, n);
  return h->msg->method ? 0 : fail(h, 500, "out of memory");
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  weft__h1 *h = H(p);
  if (h->cur_len + n > h->lim->max_target)
    return fail(h, 414, "request target too long");
  int rc = count(h, n, true);
  return rc ? rc : piece(h, at, n);
}

static int on_url_complete(llhttp_t *p) {
  weft__h1 *h = H(p);
  size_t n;
  const char *s = take(h, &n);
  int rc = weft__http_msg_set_target(h->msg, s, n);
  return rc ? fail(h, 500, "out of memory") : 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n) {
  (void)at;
  return count(H(p), n, false); /* the reason phrase is not kept */
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  weft__h1 *h = H(p);
  int rc = count(h, n, false);
  return rc ? rc : piece(h, at, n);
}

static int on_header_field_complete(llhttp_t *p) {
  weft__h1 *h = H(p);
  bool sc = h->cur_sc;
  h->fld = take(h, &h->fld_len);
  h->fld_sc = sc;
  h->have_fld = true;
  /* llhttp's loose build takes "Host : x"; a name is a token. */
  if (!weft__http_token_ok(h->fld, h->fld_len))
    return fail(h, 400, "invalid header field name");
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  weft__h1 *h = H(p);
  /* A value comes in several pieces only when the input was cut between
   * two feeds: the last piece ended its feed, and the next starts the new
   * one. Any other second piece is an obs-fold continuation line, which
   * llhttp's loose build joins: refused (RFC 9112 5.2). */
  if (h->val_open && !(h->val_at_end && at == h->feed_start))
    return fail(h, 400, "obs-fold in a header field");
  h->val_open = true;
  h->val_at_end = at + n == h->feed_end;
  int rc = count(h, n, false);
  return rc ? rc : piece(h, at, n);
}

static int on_header_value_complete(llhttp_t *p) {
  weft__h1 *h = H(p);
  h->val_open = false;
  weft__http_hdrs *list = h->in_trailers ? &h->msg->trailers : &h->msg->hdrs;
  size_t vlen;
  const char *value = take(h, &vlen);
  const char *name = h->fld_sc ? h->scratch : h->fld; /* scratch may move */
  size_t nlen = h->fld_len;
  h->have_fld = h->fld_sc = false;
  h->fld_len = h->sc_len = 0;
  if (list->n >= h->lim->max_headers)
    return fail(h, 431, "too many header fields");
  /* llhttp leaves trailing whitespace in values (OWS). */
  while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
    vlen--;
  if (weft__http_hdrs_add(h->msg, list, name, nlen, value, vlen) != 0)
    return fail(h, 500, "out of memory");
  if (h->in_trailers)
    return 0;
  if (nlen == 4 && weft__http_ieq(name, "host", 4)) {
    if (h->msg->authority[0] == '\0')
      h->msg->authority = list->v[list->n - 1].value;
  } else if (nlen == 6 && weft__http_ieq(name, "expect", 6) && vlen == 12 &&
             weft__http_ieq(value, "100-continue", 12)) {
    h->msg->expect_continue = true;
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  weft__h1 *h = H(p);
  weft__http_msg *m = h->msg;
  m->version = (uint8_t)(p->http_major * 10 + p->http_minor);
  if (m->kind == WEFT__HTTP_RESPONSE)
    m->status = p->status_code;
  if (p->flags & F_CONTENT_LENGTH)
    m->content_length = (int64_t)p->content_length;
  m->chunked = (p->flags & F_CHUNKED) != 0;
  m->keep_alive = llhttp_should_keep_alive(p) != 0;
  m->upgrade = p->upgrade != 0;
  h->in_trailers = true; /* any later fields are trailers */
  h->state = WEFT__H1_HEAD;
  if (m->kind == WEFT__HTTP_RESPONSE && m->head)
    return 1; /* no body, whatever the head says: complete now */
  /* A message without a body completes at once (and pauses there): the
   * driver then sees WEFT__H1_DONE with the head. */
  bool nobody;
  if (m->kind == WEFT__HTTP_REQUEST)
    nobody = !m->chunked && m->content_length <= 0;
  else
    nobody = m->status / 100 == 1 || m->status == 204 || m->status == 304 ||
             (!m->chunked && m->content_length == 0);
  return nobody ? 0 : HPE_PAUSED;
}

/* Checks the bytes after a chunk's data against "\r\n", as far as this
 * feed has them; the rest is checked at the start of the next feed. */
static int check_crlf(weft__h1 *h, const char *from) {
  while (h->crlf_left > 0 && from < h->feed_end) {
    if (*from != "\r\n"[2 - h->crlf_left])
      return fail(h, 400, "chunk data not followed by CRLF");
    from++;
    h->crlf_left--;
  }
  return 0;
}

static int on_chunk_header(llhttp_t *p) {
  weft__h1 *h = H(p);
  h->chunk_left = p->content_length;
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  weft__h1 *h = H(p);
  /* weft__h1_feed never feeds more than the sink can take. */
  if (h->dst_cap - h->dst_len < n)
    return fail(h, 500, "body sink overflow");
  memcpy(h->dst + h->dst_len, at, n);
  h->dst_len += n;
  h->body_bytes += n;
  if (h->msg->chunked) {
    h->chunk_left -= n < h->chunk_left ? n : h->chunk_left;
    if (h->chunk_left == 0) {
      h->crlf_left = 2;
      return check_crlf(h, at + n);
    }
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  weft__h1 *h = H(p);
  h->state = WEFT__H1_DONE;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* ---- parsing ---- */

void weft__h1_init(weft__h1 *h, int kind, weft__http_msg *msg,
                   const weft__h1_limits *lim) {
  memset(h, 0, sizeof *h);
  llhttp_init(&h->p, kind == WEFT__HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE,
              &settings);
  /* Every lenient flag stays off (llhttp's default): see the top of
   * http1.h. */
  h->p.data = h;
  h->msg = msg;
  h->lim = lim;
  h->state = WEFT__H1_IDLE;
}

void weft__h1_reuse(weft__h1 *h, const weft__h1 *proto, weft__http_msg *msg) {
  /* The prototype is a parser as weft__h1_init leaves it (llhttp's state
   * included): a copy, without the memset and llhttp_init calls; the
   * scratch buffer stays. */
  char *sc = h->scratch;
  size_t cap = h->sc_cap;
  *h = *proto;
  h->p.data = h;
  h->msg = msg;
  h->scratch = sc;
  h->sc_cap = cap;
}

void weft__h1_release(weft__h1 *h) {
  weft__free(h->scratch);
  h->scratch = NULL;
  h->sc_len = h->sc_cap = h->cur_len = h->fld_len = 0;
  h->cur_sc = h->fld_sc = h->have_fld = false;
}

void weft__h1_expect_head(weft__h1 *h, bool head) { h->msg->head = head; }

static int status_of(llhttp_errno_t e) {
  (void)e; /* nginx and h2o answer every malformed head 400 */
  return 400;
}

ssize_t weft__h1_feed(weft__h1 *h, const char *data, size_t len) {
  if (h->state == WEFT__H1_ERROR)
    return -1;
  if (h->state == WEFT__H1_DONE || len == 0)
    return 0;
  if (h->state == WEFT__H1_HEAD)
    h->state = WEFT__H1_BODY;
  /* In a body, never feed more than the sink takes: body bytes are at most
   * the bytes fed (framing only adds). */
  if (h->state == WEFT__H1_BODY && len > h->dst_cap - h->dst_len)
    len = h->dst_cap - h->dst_len;
  if (len == 0)
    return 0;
  h->feed_start = data;
  h->feed_end = data + len;
  if (h->crlf_left > 0 && check_crlf(h, data) != 0) {
    h->state = WEFT__H1_ERROR;
    return -1;
  }
  llhttp_errno_t e = llhttp_execute(&h->p, data, len);
  if (e == HPE_OK || e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
    /* What is kept of a cut span must not point into these bytes. */
    if (((h->cur_len > 0 && !h->cur_sc) || (h->have_fld && !h->fld_sc)) &&
        spill(h) != 0) {
      h->state = WEFT__H1_ERROR;
      return -1;
    }
  }
  if (e == HPE_OK)
    return (ssize_t)len;
  if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
    size_t used = (size_t)(llhttp_get_error_pos(&h->p) - data);
    if (e == HPE_PAUSED_UPGRADE) {
      h->upgrade = true;
      llhttp_resume_after_upgrade(&h->p);
    } else {
      llhttp_resume(&h->p);
    }
    return (ssize_t)used;
  }
  h->state = WEFT__H1_ERROR;
  if (h->status == 0) {
    /* llhttp's own error (a callback's failure keeps its status even when
     * llhttp reports it under another code). */
    h->status = status_of(e);
    h->why = llhttp_get_error_reason(&h->p);
    if (h->why == NULL)
      h->why = llhttp_errno_name(e);
  }
  return -1;
}

int weft__h1_finish(weft__h1 *h) {
  if (h->state == WEFT__H1_IDLE || h->state == WEFT__H1_DONE)
    return 0;
  llhttp_errno_t e = llhttp_finish(&h->p);
  if (e == HPE_OK || e == HPE_PAUSED) {
    if (h->state == WEFT__H1_DONE)
      return 0;
  }
  h->state = WEFT__H1_ERROR;
  h->status = 400;
  h->why = "message cut short";
  return -1;
}

bool weft__h1_body_until_eof(const weft__h1 *h) {
  return llhttp_message_needs_eof(&h->p) != 0;
}

/* ---- serialising ---- */

/* Status lines of the common answers, whole, each padded to 32 bytes so
 * that one fixed-size copy (a few moves, no call) writes any of them. */
typedef struct status_line {
  char s[32];
  size_t len;
} status_line;

#define SL(code, text)                                                         \
  { "HTTP/1.1 " #code " " text "\r\n", sizeof("HTTP/1.1 " #code " " text) + 1 }
static const status_line common_lines[] = {
    SL(200, "OK"),          SL(204, "No Content"), SL(304, "Not Modified"),
    SL(400, "Bad Request"), SL(404, "Not Found"),
};
#undef SL

static const status_line *common_line(int st) {
  switch (st) {
  case 200:
    return &common_lines[0];
  case 204:
    return &common_lines[1];
  case 304:
    return &common_lines[2];
  case 400:
    return &common_lines[3];
  case 404:
    return &common_lines[4];
  default:
    return NULL;
  }
}

/* The fixed part of a head at most: a status line with the longest reason
 * (46), Date (37), Content-Length with 20 digits (38), Connection:
 * keep-alive (24) and the blank line, plus room for the copies above to
 * write past their end. */
#define HEAD_FIXED 192

int weft__h1_head(weft__hbuf *out, const weft__http_msg *m, unsigned flags) {
  size_t need = HEAD_FIXED;
  for (uint32_t i = 0; i < m->hdrs.n; i++)
    need += m->hdrs.v[i].name_len + m->hdrs.v[i].value_len + 4;
  size_t ml = 0, tl = 0;
  if (m->kind == WEFT__HTTP_REQUEST) {
    ml = strlen(m->method);
    tl = strlen(m->target);
    need += ml + tl;
  }
  if (weft__hbuf_reserve(out, need) != 0)
    return WEFT_ENOMEM;
  char *p = out->data + out->len;
  const status_line *sl;
  if (m->kind == WEFT__HTTP_REQUEST) {
    memcpy(p, m->method, ml);
    p += ml;
    *p++ = ' ';
    memcpy(p, m->target, tl);
    p += tl;
    memcpy(p, " HTTP/1.1\r\n", 11);
    p += 11;
  } else if ((sl = common_line(m->status)) != NULL) {
    memcpy(p, sl->s, sizeof sl->s);
    p += sl->len;
  } else {
    int st = m->status;
    const char *reason = weft_http_reason(st);
    size_t rl = strlen(reason);
    memcpy(p, "HTTP/1.1 ", 9);
    p += 9;
    *p++ = (char)('0' + st / 100 % 10);
    *p++ = (char)('0' + st / 10 % 10);
    *p++ = (char)('0' + st % 10);
    *p++ = ' ';
    memcpy(p, reason, rl);
    p += rl;
    *p++ = '\r';
    *p++ = '\n';
  }
  if (flags & WEFT__H1_DATE) {
    const char *d;
    size_t dl = weft__http_date(&d);
    /* The date's cache holds 64 bytes (http_msg.c): a fixed copy of 40
     * takes the 37 of the line without a call. */
    if (dl <= 40)
      memcpy(p, d, 40);
    else
      memcpy(p, d, dl);
    p += dl;
  }
  for (uint32_t i = 0; i < m->hdrs.n; i++) {
    const weft_http_field *f = &m->hdrs.v[i];
    memcpy(p, f->name, f->name_len);
    p += f->name_len;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, f->value, f->value_len);
    p += f->value_len;
    *p++ = '\r';
    *p++ = '\n';
  }
  if (flags & WEFT__H1_CHUNKED) {
    memcpy(p, "Transfer-Encoding: chunked\r\n", 28);
    p += 28;
  } else if (m->content_length >= 0 && !(flags & WEFT__H1_NOLEN)) {
    memcpy(p, "Content-Length: ", 16);
    p += 16;
    p += weft__http_fmt_dec(p, (uint64_t)m->content_length);
    *p++ = '\r';
    *p++ = '\n';
  }
  if (flags & WEFT__H1_CLOSE) {
    memcpy(p, "Connection: close\r\n", 19);
    p += 19;
  } else if (flags & WEFT__H1_KEEP) {
    memcpy(p, "Connection: keep-alive\r\n", 24);
    p += 24;
  }
  *p++ = '\r';
  *p++ = '\n';
  out->len = (size_t)(p - out->data);
  return 0;
}

size_t weft__h1_chunk_head(char *buf, size_t n) {
  static const char hex[] = "0123456789abcdef";
  char tmp[20];
  size_t k = 0;
  do {
    tmp[k++] = hex[n & 15];
    n >>= 4;
  } while (n != 0);
  for (size_t i = 0; i < k; i++)
    buf[i] = tmp[k - 1 - i];
  buf[k++] = '\r';
  buf[k++] = '\n';
  return k;
}

int weft__h1_chunk_end(weft__hbuf *out, const weft__http_hdrs *trailers) {
  size_t need = 5;
  if (trailers != NULL)
    for (uint32_t i = 0; i < trailers->n; i++)
      need += trailers->v[i].name_len + trailers->v[i].value_len + 4;
  if (weft__hbuf_reserve(out, need) != 0)
    return WEFT_ENOMEM;
  weft__hbuf_put(out, "0\r\n", 3);
  if (trailers != NULL)
    for (uint32_t i = 0; i < trailers->n; i++) {
      const weft_http_field *f = &trailers->v[i];
      weft__hbuf_put(out, f->name, f->name_len);
      weft__hbuf_put(out, ": ", 2);
      weft__hbuf_put(out, f->value, f->value_len);
      weft__hbuf_put(out, "\r\n", 2);
    }
  weft__hbuf_put(out, "\r\n", 2);
  return 0;
}
