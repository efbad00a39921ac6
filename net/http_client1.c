/* weft — HTTP/1.1 exchanges of the client (http_client_int.h).
 *
 * An HTTP/1.1 connection carries one request at a time, so the requesting
 * task owns it for the whole exchange and does its I/O directly: it writes
 * the head and body, then reads the response through the same llhttp codec
 * the server uses, in response mode (http1.h). The response body is read
 * only as the caller asks for it, so TCP pushes back on a fast server. The
 * read buffer stays with the connection: bytes of a response that arrive
 * with the end of the one before are not lost.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "http_client_int.h"

#define RBUF_MIN (16 * 1024)
#define FILE_CHUNK (64 * 1024)

static const weft__h1_limits limits = {
    .max_target = 8192,
    .max_header_bytes = 256 * 1024,
    .max_headers = 256,
};

void weft__hc1_free(hc_conn *c) {
  if (c->rbuf != NULL || c->p.lim != NULL)
    weft__h1_release(&c->p);
  weft__free(c->rbuf);
  c->rbuf = NULL;
  weft__hbuf_free(&c->out);
}

/* Room for at least 1 KiB more in the read buffer. */
static int room(hc_conn *c) {
  if (c->rpos == c->rlen)
    c->rpos = c->rlen = 0;
  if (c->rcap - c->rlen >= 1024)
    return 0;
  if (c->rpos > 0) {
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
    if (c->rcap - c->rlen >= 1024)
      return 0;
  }
  size_t cap = c->rcap ? c->rcap * 2 : RBUF_MIN;
  char *d = weft__realloc(c->rbuf, cap);
  if (d == NULL)
    return WEFT_ENOMEM;
  c->rbuf = d;
  c->rcap = cap;
  return 0;
}

/* Reads what the socket has into the buffer, waiting up to the read
 * timeout. Returns the count or an error (WEFT_EOF at the end). */
static ssize_t fill(hc_conn *c, const hc_time *t) {
  int rc = room(c);
  if (rc != 0)
    return rc;
  hc_scopes sc;
  weft__hc_time_enter(&sc, t, true);
  ssize_t n = weft_stream_read(c->st, c->rbuf + c->rlen, c->rcap - c->rlen);
  int trc = weft__hc_time_exit(&sc, n < 0 ? (int)n : 0);
  if (n < 0)
    return trc;
  c->rlen += (size_t)n;
  return n;
}

static int write_all(hc_conn *c, const struct iovec *iov, int n,
                     const hc_time *t) {
  hc_scopes sc;
  weft__hc_time_enter(&sc, t, false);
  int rc = weft_stream_writev(c->st, iov, n);
  return weft__hc_time_exit(&sc, rc);
}

/* Sends the head and the body. */
static int send_request(hc_conn *c, const hc_req *q, const hc_time *t) {
  bool chunked = q->length == -1;
  c->out.len = 0;
  int rc = weft__h1_head(&c->out, q->msg, chunked ? WEFT__H1_CHUNKED : 0);
  if (rc != 0)
    return rc;
  if (q->length <= 0 && !chunked) {
    struct iovec iov = {c->out.data, c->out.len};
    return write_all(c, &iov, 1, t);
  }
  if (q->body_fn == NULL && q->body_fd < 0) {
    struct iovec iov[2] = {{c->out.data, c->out.len},
                           {(void *)q->body, q->body_len}};
    return write_all(c, iov, 2, t);
  }
  struct iovec iov = {c->out.data, c->out.len};
  if ((rc = write_all(c, &iov, 1, t)) != 0)
    return rc;
  char *buf = weft__malloc(FILE_CHUNK + 32);
  if (buf == NULL)
    return WEFT_ENOMEM;
  uint64_t sent = 0;
  for (;;) {
    ssize_t n;
    char *data = buf + 24;
    if (q->body_fd >= 0) {
      n = read(q->body_fd, data, FILE_CHUNK);
      if (n < 0)
        n = -errno;
    } else {
      n = q->body_fn(q->body_arg, data, FILE_CHUNK);
    }
    if (n < 0) {
      rc = (int)n;
      break;
    }
    if (n == 0) {
      if (chunked) {
        iov = (struct iovec){"0\r\n\r\n", 5};
        rc = write_all(c, &iov, 1, t);
      } else if (sent != (uint64_t)q->length) {
        rc = WEFT_EINVAL; /* fewer bytes than announced */
      }
      break;
    }
    sent += (uint64_t)n;
    if (!chunked && sent > (uint64_t)q->length) {
      rc = WEFT_EINVAL; /* more bytes than announced */
      break;
    }
    if (chunked) {
      char hd[24];
      size_t hl = weft__h1_chunk_head(hd, (size_t)n);
      memcpy(data - hl, hd, hl);
      memcpy(data + n, "\r\n", 2);
      iov = (struct iovec){data - hl, hl + (size_t)n + 2};
    } else {
      iov = (struct iovec){data, (size_t)n};
    }
    if ((rc = write_all(c, &iov, 1, t)) != 0)
      break;
  }
  weft__free(buf);
  return rc;
}

int weft__hc1_exchange(hc_conn *c, const hc_req *q, weft_http_response *r) {
  if (c->p.lim == NULL)
    weft__h1_init(&c->p, WEFT__HTTP_RESPONSE, &r->msg, &limits);
  else
    weft__h1_next(&c->p, &r->msg);
  weft__h1_expect_head(&c->p, q->is_head);
  int rc = send_request(c, q, &r->t);
  if (rc != 0)
    return rc;
  for (;;) {
    while (c->rpos < c->rlen) {
      r->got_any = true;
      ssize_t n = weft__h1_feed(&c->p, c->rbuf + c->rpos, c->rlen - c->rpos);
      if (n < 0)
        return WEFT_EBADMSG;
      c->rpos += (size_t)n;
      uint8_t st = c->p.state;
      if (st == WEFT__H1_HEAD || st == WEFT__H1_DONE) {
        int status = r->msg.status;
        if (status == 101)
          return WEFT_EBADMSG; /* we never ask to switch protocols */
        if (status >= 200) {
          if (st == WEFT__H1_DONE)
            r->raw_end = true;
          return 0;
        }
        /* 1xx (100 Continue, 103 Early Hints): the answer comes next. */
        weft__http_msg_reset(&r->msg);
        weft__h1_next(&c->p, &r->msg);
        weft__h1_expect_head(&c->p, q->is_head);
        continue;
      }
      if (n == 0)
        break;
    }
    ssize_t n = fill(c, &r->t);
    if (n == WEFT_EOF)
      return c->p.state == WEFT__H1_IDLE && !r->got_any
                 ? WEFT_EOF
                 : WEFT_EHTTP_NO_RESPONSE;
    if (n < 0)
      return (int)n;
  }
}

ssize_t weft__hc1_read(weft_http_response *r, void *buf, size_t len) {
  hc_conn *c = r->c;
  if (c->p.state == WEFT__H1_DONE)
    return 0;
  for (;;) {
    if (c->rpos < c->rlen) {
      weft__h1_set_sink(&c->p, buf, len);
      ssize_t n = weft__h1_feed(&c->p, c->rbuf + c->rpos, c->rlen - c->rpos);
      if (n < 0)
        return WEFT_EBADMSG;
      c->rpos += (size_t)n;
      if (c->p.dst_len > 0)
        return (ssize_t)c->p.dst_len;
      if (c->p.state == WEFT__H1_DONE)
        return 0;
      if (n > 0)
        continue;
    }
    ssize_t n = fill(c, &r->t);
    if (n == WEFT_EOF) {
      if (weft__h1_body_until_eof(&c->p) && weft__h1_finish(&c->p) == 0) {
        r->msg.keep_alive = false;
        return 0;
      }
      return WEFT_EHTTP_TRUNCATED;
    }
    if (n < 0)
      return n;
  }
}
