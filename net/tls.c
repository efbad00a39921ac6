/* weft — TLS with OpenSSL 3: contexts, and the TLS transport under streams.
 *
 * The transport drives an SSL object over the stream's socket through a
 * small BIO of ours: it reads the socket (after handing over any bytes the
 * stream had already read before STARTTLS), writes with MSG_NOSIGNAL, and
 * remembers the errno and the end of the socket so errors come out
 * precisely. OpenSSL never blocks: it says what it waits for, and the
 * stream waits (stream_int.h).
 *
 * Records OpenSSL has already decrypted or buffered (SSL_has_pending) are
 * read before the stream waits for the socket again — with read-ahead on,
 * the socket can be empty while whole records sit in OpenSSL (libevent
 * #854).
 *
 * OpenSSL asks that a write which returned WANT_WRITE be repeated with the
 * same bytes. The transport hands OpenSSL at most one record (16 KiB) per
 * call, and when that record cannot go out yet it keeps a copy, reports the
 * bytes as taken, and repeats the call with the copy on the next write. So
 * the stream's own queue is free to move and shrink.
 *
 * Contexts are SSL_CTXs with our settings attached as ex_data; the settings
 * are freed by OpenSSL's own reference counting, when the last SSL using
 * the context goes, so a context freed by its owner stays valid for the
 * connections still using it.
 *
 * A client context keeps the sessions servers give it (OpenSSL's new-session
 * callback; in TLS 1.3 the tickets come after the handshake, read with the
 * first application data) in a small cache of its own, keyed by the name
 * verified and the port, and a new connection to the same key offers the
 * newest one. OpenSSL's internal client store is not used: it is not looked
 * up by name, and a session is not taken out of it when used.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <weft/tls.h>

#include "stream_int.h"

#define RECORD 16384 /* plaintext bytes handed to one SSL_write */
#define DEFAULT_HANDSHAKE_TIMEOUT 30.0
#define SHUTDOWN_KEEP (256 * 1024)

/* A session in a client context's cache. The session is the cache's own
 * copy, never one a live SSL uses (see on_new_session). */
typedef struct sess_entry {
  char *key; /* peer_key() */
  SSL_SESSION *sess;
  uint64_t stamp; /* when last stored or used: the smallest goes first */
  bool tls13;     /* a ticket used once */
} sess_entry;

struct weft_tls_ctx {
  SSL_CTX *ssl;
  bool server;
  bool insecure;
  bool verify_peer;
  int min_version, max_version;
  double handshake_timeout;
  unsigned char *alpn; /* wire format: length-prefixed names */
  size_t alpn_len;
  char *ciphers, *ciphersuites, *ca_file, *ca_path;
  weft_tls_sni_fn sni_fn;
  void *sni_arg;
  SSL_CTX **certs; /* extra certificates chosen by SNI */
  size_t ncerts;
  /* Client session cache. The one thing that changes after setup, from
   * any thread using the context: `lock` guards the fields below it. It is
   * a leaf lock, held for a scan of the entries; no callback of ours runs
   * under it. */
  size_t sess_max; /* 0: no cache */
  pthread_mutex_t lock;
  sess_entry *sess;
  size_t nsess, sess_alloc;
  uint64_t sess_clock;
};

/* ---- process-wide, set once ---- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_meth;
static int ctx_idx = -1;

static void ctx_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                          long argl, void *argp);
static int bio_write(BIO *b, const char *data, int len);
static int bio_read(BIO *b, char *out, int len);
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr);

static void init_once(void) {
  OPENSSL_init_ssl(0, NULL);
  ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_data_free);
  bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft");
  if (bio_meth != NULL) {
    BIO_meth_set_write(bio_meth, bio_write);
    BIO_meth_set_read(bio_meth, bio_read);
    BIO_meth_set_ctrl(bio_meth, bio_ctrl);
  }
}

static bool init(void) {
  pthread_once(&once, init_once);
  return bio_meth != NULL && ctx_idx >= 0;
}

/* ---- errors ---- */

static int verify_error(long v) {
  switch (v) {
  case X509_V_OK:
    return 0;
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return WEFT_ETLS_EXPIRED;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return WEFT_ETLS_NOT_YET_VALID;
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
  case X509_V_ERR_EMAIL_MISMATCH:
    return WEFT_ETLS_HOSTNAME;
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    return WEFT_ETLS_SELF_SIGNED;
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    return WEFT_ETLS_UNKNOWN_CA;
  default:
    return WEFT_ETLS_VERIFY;
  }
}

/* What OpenSSL's error queue says, as a weft code. */
static int queue_error(bool handshake) {
  unsigned long e = ERR_peek_error();
  int rc = handshake ? WEFT_ETLS_HANDSHAKE : WEFT_ETLS;
  if (e == 0)
    return rc;
  if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
    return WEFT_ENOMEM;
  if (ERR_GET_LIB(e) != ERR_LIB_SSL)
    return rc;
  switch (ERR_GET_REASON(e)) {
  case SSL_R_UNEXPECTED_EOF_WHILE_READING:
    return handshake ? WEFT_EOF : WEFT_ETLS_TRUNCATED;
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_NO_PROTOCOLS_AVAILABLE:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
  case SSL_R_VERSION_TOO_LOW:
  case SSL_R_VERSION_TOO_HIGH:
    return WEFT_ETLS_VERSION;
  case SSL_R_NO_APPLICATION_PROTOCOL:
  case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
    return WEFT_ETLS_ALPN;
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
  case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
  case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    return WEFT_ETLS_REJECTED;
  case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    return WEFT_ETLS_NO_CERT;
  case SSL_R_CERTIFICATE_VERIFY_FAILED:
    return WEFT_ETLS_VERIFY;
  default:
    return rc;
  }
}

/* ---- the transport ---- */

typedef struct tls_tp {
  weft__transport base;
  SSL *ssl;
  int fd;
  bool handshake; /* still in the handshake: errors say so */
  bool starved;   /* the last read wanted more from the socket */
  /* Bytes the stream read before TLS started: the BIO reads them first. */
  char *pre;
  size_t pre_len, pre_off;
  /* What the socket said last, for precise errors. */
  int sock_err;
  bool sock_eof;
  /* A record OpenSSL could not send yet, repeated on the next write. */
  unsigned char *scratch;
  size_t pend;
  char *peer; /* client with a session cache: the cache key */
  char alpn[256];
} tls_tp;

static int bio_write(BIO *b, const char *data, int len) {
  tls_tp *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  for (;;) {
    ssize_t n = send(t->fd, data, (size_t)len, MSG_NOSIGNAL);
    if (n >= 0)
      return (int)n;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_write(b);
      return -1;
    }
    t->sock_err = -errno;
    return -1;
  }
}

static int bio_read(BIO *b, char *out, int len) {
  tls_tp *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->pre != NULL) {
    size_t n = t->pre_len - t->pre_off;
    if (n > (size_t)len)
      n = (size_t)len;
    memcpy(out, t->pre + t->pre_off, n);
    t->pre_off += n;
    if (t->pre_off == t->pre_len) {
      weft__free(t->pre);
      t->pre = NULL;
    }
    return (int)n;
  }
  for (;;) {
    ssize_t n = recv(t->fd, out, (size_t)len, 0);
    if (n > 0)
      return (int)n;
    if (n == 0) {
      t->sock_eof = true;
      return 0;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(b);
      return -1;
    }
    t->sock_err = -errno;
    return -1;
  }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  tls_tp *t = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF:
    /* Tells OpenSSL that a read of 0 was the socket's end, so a missing
     * close_notify is reported as such. */
    return t->sock_eof && t->pre == NULL;
  default:
    return 0;
  }
}

/* Turns an SSL_get_error verdict into EAGAIN + want, or an error. */
static int ssl_result(tls_tp *t, int ret, int *want) {
  int e = SSL_get_error(t->ssl, ret);
  int rc;
  switch (e) {
  case SSL_ERROR_WANT_READ:
    *want = WEFT__WANT_READ;
    return WEFT_EAGAIN;
  case SSL_ERROR_WANT_WRITE:
    *want = WEFT__WANT_WRITE;
    return WEFT_EAGAIN;
  case SSL_ERROR_ZERO_RETURN:
    rc = WEFT_EOF;
    break;
  case SSL_ERROR_SYSCALL:
    if (t->sock_err != 0)
      rc = t->sock_err;
    else if (ERR_peek_error() != 0)
      rc = queue_error(t->handshake);
    else
      rc = t->handshake ? WEFT_EOF : WEFT_ETLS_TRUNCATED;
    break;
  case SSL_ERROR_SSL: {
    /* The verification result counts only in a handshake that verifies:
     * an insecure context records it too, and goes on. */
    long v = t->handshake && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER)
                 ? SSL_get_verify_result(t->ssl)
                 : X509_V_OK;
    rc = v != X509_V_OK ? verify_error(v) : queue_error(t->handshake);
    break;
  }
  default:
    rc = WEFT_ETLS;
  }
  ERR_clear_error();
  return rc;
}

static ssize_t tls_read(weft__transport *tp, void *buf, size_t len, int *want) {
  tls_tp *t = (tls_tp *)tp;
  ERR_clear_error();
  size_t got = 0;
  int r = SSL_read_ex(t->ssl, buf, len, &got);
  if (r == 1) {
    t->starved = false;
    return (ssize_t)got;
  }
  int rc = ssl_result(t, r, want);
  t->starved = rc == WEFT_EAGAIN && *want == WEFT__WANT_READ;
  return rc;
}

/* Repeats the record OpenSSL could not send. Returns 0 once it is out. */
static int flush_pending(tls_tp *t, int *want) {
  if (t->pend == 0)
    return 0;
  ERR_clear_error();
  size_t w = 0;
  int r = SSL_write_ex(t->ssl, t->scratch, t->pend, &w);
  if (r == 1) {
    t->pend = 0;
    return 0;
  }
  return ssl_result(t, r, want);
}

static ssize_t tls_writev(weft__transport *tp, const struct iovec *iov, int n,
                          int *want) {
  tls_tp *t = (tls_tp *)tp;
  int rc = flush_pending(t, want);
  if (rc != 0)
    return rc;
  size_t total = 0;
  int i = 0;
  size_t off = 0;
  while (i < n) {
    if (iov[i].iov_len == off) {
      i++;
      off = 0;
      continue;
    }
    /* One record's worth: straight from the caller's piece when it is big
     * enough, else small pieces gathered into one record (one MAC and
     * header for them all). */
    const unsigned char *chunk;
    size_t clen;
    size_t piece = iov[i].iov_len - off;
    if (piece >= RECORD || i == n - 1) {
      chunk = (const unsigned char *)iov[i].iov_base + off;
      clen = piece < RECORD ? piece : RECORD;
      off += clen;
    } else {
      if (t->scratch == NULL && (t->scratch = weft__malloc(RECORD)) == NULL)
        return total > 0 ? (ssize_t)total : WEFT_ENOMEM;
      clen = 0;
      while (i < n && clen < RECORD) {
        size_t k = iov[i].iov_len - off;
        if (k > RECORD - clen)
          k = RECORD - clen;
        memcpy(t->scratch + clen, (const char *)iov[i].iov_base + off, k);
        clen += k;
        off += k;
        if (off == iov[i].iov_len) {
          i++;
          off = 0;
        }
      }
      chunk = t->scratch;
    }
    ERR_clear_error();
    size_t w = 0;
    int r = SSL_write_ex(t->ssl, chunk, clen, &w);
    if (r == 1) {
      total += w;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      /* The record is built and waits in OpenSSL; the bytes count as
       * taken, and the next write repeats the call with this copy. */
      if (chunk != t->scratch) {
        if (t->scratch == NULL && (t->scratch = weft__malloc(RECORD)) == NULL) {
          ERR_clear_error();
          return WEFT_ENOMEM; /* nothing counted: the stream retries */
        }
        memcpy(t->scratch, chunk, clen);
      }
      t->pend = clen;
      ERR_clear_error();
      return (ssize_t)(total + clen);
    }
    rc = ssl_result(t, r, want);
    return total > 0 ? (ssize_t)total : rc;
  }
  return (ssize_t)total;
}

static size_t tls_wpending(weft__transport *tp) { return ((tls_tp *)tp)->pend; }

/* Decrypted bytes, or records OpenSSL holds that it has not looked at yet.
 * After a read that wanted the socket, what OpenSSL holds is at most part of
 * a record: only new socket data helps then, and saying "pending" would
 * make a notify callback spin. */
static bool tls_rpending(weft__transport *tp) {
  tls_tp *t = (tls_tp *)tp;
  return t->pre != NULL || SSL_pending(t->ssl) > 0 ||
         (!t->starved && SSL_has_pending(t->ssl));
}

static int tls_shutdown(weft__transport *tp, int *want) {
  tls_tp *t = (tls_tp *)tp;
  if (!SSL_is_init_finished(t->ssl))
    return 0;
  int rc = flush_pending(t, want);
  if (rc != 0)
    return rc;
  if (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)
    return 0;
  ERR_clear_error();
  int r = SSL_shutdown(t->ssl);
  if (r >= 0)
    return 0;
  return ssl_result(t, r, want);
}

static void tls_free(weft__transport *tp) {
  tls_tp *t = (tls_tp *)tp;
  SSL_free(t->ssl); /* and the BIO */
  weft__free(t->peer);
  weft__free(t->pre);
  weft__free(t->scratch);
  weft__free(t);
}

static const weft__transport_vt tls_vt = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .wpending = tls_wpending,
    .rpending = tls_rpending,
    .shutdown = tls_shutdown,
    .free = tls_free,
};

/* ---- the client session cache ---- */

/* The key a session is kept under: the name the certificate was checked
 * against (and sent as SNI) with the port, or the peer's address (IP and
 * port) when there is no name; a Unix socket's path stands for the port.
 * The name's length leads, so no name and port can pass for another pair.
 * NULL when out of memory or the peer's address is unknown: no caching. */
static char *peer_key(weft_stream *s, const char *name) {
  weft_addr a;
  if (weft_stream_peer_addr(s, &a) != 0)
    return NULL;
  char where[WEFT_ADDR_STRLEN];
  int port = weft_addr_port(&a);
  if (name == NULL || port < 0)
    weft_addr_format(&a, where, sizeof where);
  else
    snprintf(where, sizeof where, "%d", port);
  if (name == NULL)
    name = "";
  size_t len = strlen(name) + strlen(where) + 24;
  char *key = weft__malloc(len);
  if (key != NULL)
    snprintf(key, len, "%zu:%s:%s", strlen(name), name, where);
  return key;
}

static bool sess_expired(SSL_SESSION *x, time_t now) {
  return !SSL_SESSION_is_resumable(x) ||
         SSL_SESSION_get_time(x) + SSL_SESSION_get_timeout(x) <= now;
}

/* Takes entry i out (the last one fills its place); returns its session
 * for the caller to free once the lock is released. */
static SSL_SESSION *sess_remove(weft_tls_ctx *c, size_t i) {
  SSL_SESSION *x = c->sess[i].sess;
  weft__free(c->sess[i].key);
  c->sess[i] = c->sess[--c->nsess];
  return x;
}

/* The newest usable session for `key`, for SSL_set_session, or NULL. A TLS
 * 1.3 ticket leaves the cache (single use, RFC 8446 C.4: a ticket seen twice
 * links the two connections); a TLS 1.2 session stays, and the connection
 * gets a copy. Drops the key's expired sessions on the way. */
static SSL_SESSION *sess_take(weft_tls_ctx *c, const char *key) {
  SSL_SESSION *dead[WEFT_TLS_SESSIONS_PER_PEER];
  size_t ndead = 0;
  SSL_SESSION *got = NULL;
  time_t now = time(NULL);
  pthread_mutex_lock(&c->lock);
  size_t best = SIZE_MAX;
  for (size_t i = c->nsess; i-- > 0;) {
    sess_entry *e = &c->sess[i];
    if (strcmp(e->key, key) != 0)
      continue;
    if (sess_expired(e->sess, now)) {
      /* Going down, the entry moved into i was seen already. A key holds
       * at most WEFT_TLS_SESSIONS_PER_PEER, so `dead` has room. */
      if (ndead < WEFT_TLS_SESSIONS_PER_PEER) {
        dead[ndead++] = sess_remove(c, i);
        if (best == c->nsess)
          best = i; /* the best one was the last, and moved here */
      }
      continue;
    }
    if (best == SIZE_MAX || e->stamp > c->sess[best].stamp)
      best = i;
  }
  if (best != SIZE_MAX) {
    if (c->sess[best].tls13) {
      got = sess_remove(c, best);
    } else {
      c->sess[best].stamp = ++c->sess_clock;
      got = SSL_SESSION_dup(c->sess[best].sess);
    }
  }
  pthread_mutex_unlock(&c->lock);
  for (size_t i = 0; i < ndead; i++)
    SSL_SESSION_free(dead[i]);
  return got;
}

/* Keeps `x` (ours: stored or freed) under `key`. A TLS 1.2 session replaces
 * the key's others (one reusable session is enough); a key already holding
 * WEFT_TLS_SESSIONS_PER_PEER loses its oldest, and a full cache its least
 * recently used entry. */
static void sess_put(weft_tls_ctx *c, const char *key, SSL_SESSION *x) {
  bool tls13 = SSL_SESSION_get_protocol_version(x) == TLS1_3_VERSION;
  char *k = weft__strdup(key);
  if (k == NULL) {
    SSL_SESSION_free(x);
    return;
  }
  SSL_SESSION *dead[WEFT_TLS_SESSIONS_PER_PEER + 1];
  size_t ndead = 0;
  pthread_mutex_lock(&c->lock);
  if (!tls13)
    for (size_t i = c->nsess; i-- > 0;)
      if (!c->sess[i].tls13 && strcmp(c->sess[i].key, key) == 0 &&
          ndead < WEFT_TLS_SESSIONS_PER_PEER)
        dead[ndead++] = sess_remove(c, i);
  size_t mine = 0, old_mine = SIZE_MAX, old_all = SIZE_MAX;
  for (size_t i = 0; i < c->nsess; i++) {
    sess_entry *e = &c->sess[i];
    if (old_all == SIZE_MAX || e->stamp < c->sess[old_all].stamp)
      old_all = i;
    if (strcmp(e->key, key) == 0) {
      mine++;
      if (old_mine == SIZE_MAX || e->stamp < c->sess[old_mine].stamp)
        old_mine = i;
    }
  }
  size_t at = mine >= WEFT_TLS_SESSIONS_PER_PEER ? old_mine
              : c->nsess >= c->sess_max          ? old_all
                                                 : SIZE_MAX;
  if (at != SIZE_MAX) {
    dead[ndead++] = c->sess[at].sess;
    weft__free(c->sess[at].key);
  } else {
    if (c->nsess == c->sess_alloc) {
      size_t n = c->sess_alloc ? 2 * c->sess_alloc : 8;
      if (n > c->sess_max)
        n = c->sess_max;
      sess_entry *more = weft__realloc(c->sess, n * sizeof *more);
      if (more == NULL) {
        pthread_mutex_unlock(&c->lock);
        weft__free(k);
        SSL_SESSION_free(x);
        for (size_t i = 0; i < ndead; i++)
          SSL_SESSION_free(dead[i]);
        return;
      }
      c->sess = more;
      c->sess_alloc = n;
    }
    at = c->nsess++;
  }
  c->sess[at] = (sess_entry){
      .key = k, .sess = x, .stamp = ++c->sess_clock, .tls13 = tls13};
  pthread_mutex_unlock(&c->lock);
  for (size_t i = 0; i < ndead; i++)
    SSL_SESSION_free(dead[i]);
}

/* OpenSSL's new-session callback: a session (TLS 1.2, at the end of a full
 * handshake) or a ticket (TLS 1.3, any time after it; often two). Returns 0:
 * OpenSSL keeps its reference, the cache keeps a copy. A copy because the
 * session given is the connection's current one, which that connection
 * (perhaps on another thread) may still change - OpenSSL marks it not
 * resumable when the SSL is cleared without a close_notify
 * (ssl_clear_bad_session) - while the cache reads its sessions under its
 * own lock only. */
static int on_new_session(SSL *ssl, SSL_SESSION *x) {
  tls_tp *t = SSL_get_app_data(ssl);
  weft_tls_ctx *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_idx);
  if (t == NULL || t->peer == NULL || c == NULL || c->sess_max == 0 ||
      !SSL_SESSION_is_resumable(x))
    return 0;
  ERR_set_mark(); /* a failed copy must not fail the read it runs in */
  SSL_SESSION *copy = SSL_SESSION_dup(x);
  ERR_pop_to_mark();
  if (copy != NULL)
    sess_put(c, t->peer, copy);
  return 0;
}

static void sess_clear(weft_tls_ctx *c) {
  for (size_t i = 0; i < c->nsess; i++) {
    SSL_SESSION_free(c->sess[i].sess);
    weft__free(c->sess[i].key);
  }
  weft__free(c->sess);
  c->sess = NULL;
  c->nsess = c->sess_alloc = 0;
}

size_t weft__tls_sessions(weft_tls_ctx *c) {
  pthread_mutex_lock(&c->lock);
  size_t n = c->nsess;
  pthread_mutex_unlock(&c->lock);
  return n;
}

/* ---- contexts ---- */

static void ctx_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                          long argl, void *argp) {
  (void)parent;
  (void)ad;
  (void)idx;
  (void)argl;
  (void)argp;
  weft_tls_ctx *c = ptr;
  if (c == NULL)
    return;
  sess_clear(c);
  pthread_mutex_destroy(&c->lock);
  for (size_t i = 0; i < c->ncerts; i++)
    SSL_CTX_free(c->certs[i]);
  weft__free(c->certs);
  weft__free(c->alpn);
  weft__free(c->ciphers);
  weft__free(c->ciphersuites);
  weft__free(c->ca_file);
  weft__free(c->ca_path);
  weft__free(c);
}

/* A file OpenSSL will read: say ENOENT / EACCES rather than a vague
 * OpenSSL error. */
static int check_file(const char *path) {
  if (path != NULL && access(path, R_OK) != 0)
    return -errno;
  return 0;
}

static int load_cert(SSL_CTX *c, const char *cert, const char *key) {
  int rc = check_file(cert);
  if (rc == 0)
    rc = check_file(key);
  if (rc != 0)
    return rc;
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(c) != 1) {
    ERR_clear_error();
    return WEFT_ETLS_BADCERT;
  }
  return 0;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  const weft_tls_ctx *c = arg;
  /* Our preference first (RFC 7301 leaves the choice to the server). */
  for (size_t i = 0; i < c->alpn_len; i += 1u + c->alpn[i]) {
    for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
      if (j + 1u + in[j] > inlen)
        break; /* malformed list: OpenSSL checks too */
      if (in[j] == c->alpn[i] &&
          memcmp(in + j + 1, c->alpn + i + 1, in[j]) == 0) {
        *out = in + j + 1;
        *outlen = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  weft_tls_ctx *c = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (c->sni_fn != NULL) {
    weft_tls_ctx *x = c->sni_fn(c->sni_arg, name);
    if (x != NULL && x->server) {
      SSL_set_SSL_CTX(ssl, x->ssl);
      return SSL_TLSEXT_ERR_OK;
    }
  }
  if (name == NULL)
    return SSL_TLSEXT_ERR_OK;
  for (size_t i = 0; i < c->ncerts; i++) {
    X509 *x = SSL_CTX_get0_certificate(c->certs[i]);
    if (x != NULL && X509_check_host(x, name, 0, 0, NULL) == 1) {
      SSL_set_SSL_CTX(ssl, c->certs[i]);
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

/* Settings every SSL_CTX of a context gets (its extra certificates too:
 * OpenSSL uses the switched-to context's callbacks). */
static int configure(SSL_CTX *x, weft_tls_ctx *c) {
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(x, c->min_version) != 1 ||
      (c->max_version && SSL_CTX_set_max_proto_version(x, c->max_version) != 1))
    return WEFT_EINVAL;
  SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             (c->server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  /* Partial writes and a moving buffer: the stream's queue may move
   * between a write and its repetition (see the top of this file). Idle
   * connections give their record buffers back. */
  SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(x, 1);
  if (c->ciphers != NULL && SSL_CTX_set_cipher_list(x, c->ciphers) != 1)
    return WEFT_EINVAL;
  if (c->ciphersuites != NULL &&
      SSL_CTX_set_ciphersuites(x, c->ciphersuites) != 1)
    return WEFT_EINVAL;
  bool verify = c->server ? c->verify_peer : !c->insecure;
  if (verify) {
    int rc = check_file(c->ca_file);
    if (rc != 0)
      return rc;
    if (c->ca_file != NULL || c->ca_path != NULL) {
      if (SSL_CTX_load_verify_locations(x, c->ca_file, c->ca_path) != 1)
        return WEFT_ETLS_BADCERT;
    } else if (SSL_CTX_set_default_verify_paths(x) != 1) {
      return WEFT_ETLS_BADCERT;
    }
    int mode = SSL_VERIFY_PEER;
    if (c->server)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(x, mode, NULL);
    if (c->server && c->ca_file != NULL) {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->ca_file);
      if (names != NULL)
        SSL_CTX_set_client_CA_list(x, names);
    }
  } else {
    SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
  }
  if (c->server) {
    static const unsigned char sid[] = "weft";
    SSL_CTX_set_session_id_context(x, sid, sizeof sid - 1);
    if (c->alpn != NULL)
      SSL_CTX_set_alpn_select_cb(x, on_alpn, c);
  } else if (c->alpn != NULL &&
             SSL_CTX_set_alpn_protos(x, c->alpn, (unsigned)c->alpn_len) != 0) {
    return WEFT_ENOMEM;
  }
  if (!c->server && c->sess_max > 0) {
    /* Our cache, not OpenSSL's (see the top of this file). */
    long mode = SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE;
    SSL_CTX_set_session_cache_mode(x, mode);
    SSL_CTX_sess_set_new_cb(x, on_new_session);
  } else if (!c->server) {
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
  }
  ERR_clear_error();
  return 0;
}

static char *dup_or_null(const char *s, bool *fail) {
  if (s == NULL)
    return NULL;
  char *d = weft__strdup(s);
  if (d == NULL)
    *fail = true;
  return d;
}

static int ctx_new(weft_tls_ctx **out, const weft_tls_opts *opts, bool server) {
  if (out == NULL)
    return WEFT_EINVAL;
  if (!init())
    return WEFT_ENOMEM;
  weft_tls_opts o = {0};
  if (opts != NULL) {
    size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
    memcpy(&o, opts, n);
  }
  if (server && (o.cert_file == NULL || o.key_file == NULL))
    return WEFT_EINVAL;
  if ((o.cert_file == NULL) != (o.key_file == NULL))
    return WEFT_EINVAL;
  int minv = o.min_version ? o.min_version : WEFT_TLS_1_2;
  if ((minv != WEFT_TLS_1_2 && minv != WEFT_TLS_1_3) ||
      (o.max_version != 0 && o.max_version != WEFT_TLS_1_2 &&
       o.max_version != WEFT_TLS_1_3) ||
      (o.max_version != 0 && o.max_version < minv))
    return WEFT_EINVAL;

  /* ALPN names in wire format: each 1..255 bytes, length-prefixed. */
  size_t alpn_len = 0;
  if (o.alpn != NULL)
    for (const char *const *p = o.alpn; *p != NULL; p++) {
      size_t l = strlen(*p);
      if (l == 0 || l > 255)
        return WEFT_EINVAL;
      alpn_len += 1 + l;
    }

  weft_tls_ctx *c = weft__calloc(1, sizeof *c);
  if (c == NULL)
    return WEFT_ENOMEM;
  pthread_mutex_init(&c->lock, NULL);
  c->server = server;
  c->sess_max = server || o.session_cache_size < 0 ? 0
                : o.session_cache_size == 0 ? WEFT_TLS_SESSION_CACHE_DEFAULT
                                            : (size_t)o.session_cache_size;
  c->insecure = o.insecure;
  c->verify_peer = o.verify_peer;
  c->min_version = minv;
  c->max_version = o.max_version;
  c->handshake_timeout = o.handshake_timeout == 0  ? DEFAULT_HANDSHAKE_TIMEOUT
                         : o.handshake_timeout < 0 ? -1
                                                   : o.handshake_timeout;
  bool fail = false;
  c->ciphers = dup_or_null(o.ciphers, &fail);
  c->ciphersuites = dup_or_null(o.ciphersuites, &fail);
  c->ca_file = dup_or_null(o.ca_file, &fail);
  c->ca_path = dup_or_null(o.ca_path, &fail);
  if (alpn_len > 0 && !fail) {
    c->alpn = weft__malloc(alpn_len);
    if (c->alpn == NULL)
      fail = true;
    else {
      size_t k = 0;
      for (const char *const *p = o.alpn; *p != NULL; p++) {
        size_t l = strlen(*p);
        c->alpn[k++] = (unsigned char)l;
        memcpy(c->alpn + k, *p, l);
        k += l;
      }
      c->alpn_len = alpn_len;
    }
  }
  c->ssl =
      fail ? NULL
           : SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (c->ssl == NULL) {
    ERR_clear_error();
    ctx_data_free(NULL, c, NULL, 0, 0, NULL);
    return WEFT_ENOMEM;
  }
  /* From here the SSL_CTX owns c: freeing it frees c. */
  SSL_CTX_set_ex_data(c->ssl, ctx_idx, c);
  int rc = configure(c->ssl, c);
  if (rc == 0 && o.cert_file != NULL)
    rc = load_cert(c->ssl, o.cert_file, o.key_file);
  if (rc == 0 && server) {
    SSL_CTX_set_tlsext_servername_callback(c->ssl, on_servername);
    SSL_CTX_set_tlsext_servername_arg(c->ssl, c);
  }
  if (rc != 0) {
    SSL_CTX_free(c->ssl);
    ERR_clear_error();
    return rc;
  }
  *out = c;
  return 0;
}

int weft_tls_client_ctx_new(weft_tls_ctx **out, const weft_tls_opts *opts) {
  return ctx_new(out, opts, false);
}

int weft_tls_server_ctx_new(weft_tls_ctx **out, const weft_tls_opts *opts) {
  return ctx_new(out, opts, true);
}

void weft_tls_ctx_free(weft_tls_ctx *ctx) {
  if (ctx != NULL)
    SSL_CTX_free(ctx->ssl);
}

int weft_tls_ctx_add_cert(weft_tls_ctx *ctx, const char *cert_file,
                          const char *key_file) {
  if (ctx == NULL || !ctx->server || cert_file == NULL || key_file == NULL)
    return WEFT_EINVAL;
  SSL_CTX **certs =
      weft__realloc(ctx->certs, (ctx->ncerts + 1) * sizeof *certs);
  if (certs == NULL)
    return WEFT_ENOMEM;
  ctx->certs = certs;
  SSL_CTX *x = SSL_CTX_new(TLS_server_method());
  if (x == NULL) {
    ERR_clear_error();
    return WEFT_ENOMEM;
  }
  int rc = configure(x, ctx);
  if (rc == 0)
    rc = load_cert(x, cert_file, key_file);
  if (rc != 0) {
    SSL_CTX_free(x);
    return rc;
  }
  ctx->certs[ctx->ncerts++] = x;
  return 0;
}

void weft_tls_ctx_set_sni(weft_tls_ctx *ctx, weft_tls_sni_fn fn, void *arg) {
  if (ctx == NULL)
    return;
  ctx->sni_fn = fn;
  ctx->sni_arg = arg;
}

void *weft_tls_ctx_ssl_ctx(weft_tls_ctx *ctx) { return ctx ? ctx->ssl : NULL; }

/* ---- TLS on a stream ---- */

/* Makes the certificate check name the IP address `a`. */
static int check_ip(SSL *ssl, const weft_addr *a) {
  const unsigned char *raw;
  size_t len;
  if (a->u.sa.sa_family == AF_INET6) {
    raw = (const unsigned char *)&a->u.in6.sin6_addr;
    len = 16;
  } else if (a->u.sa.sa_family == AF_INET) {
    raw = (const unsigned char *)&a->u.in.sin_addr;
    len = 4;
  } else {
    return WEFT_EINVAL; /* a Unix socket: give the name to check */
  }
  return X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl), raw, len) == 1
             ? 0
             : WEFT_ENOMEM;
}

/* Sets what a client checks: the name (SNI too), or an IP address. */
static int set_peer_name(weft_stream *s, SSL *ssl, const char *name,
                         bool verify) {
  weft_addr a;
  if (name != NULL && weft_addr_ip(&a, name, 0) == 0) {
    /* An IP literal ("[::1]" too): checked against the certificate's IP
     * addresses, and never sent as SNI (RFC 6066). */
    return verify ? check_ip(ssl, &a) : 0;
  }
  if (name != NULL) {
    if (SSL_set_tlsext_host_name(ssl, name) != 1)
      return WEFT_EINVAL;
    if (verify && SSL_set1_host(ssl, name) != 1)
      return WEFT_ENOMEM;
    return 0;
  }
  if (!verify)
    return 0;
  /* No name at all: the certificate must name the address we reached. */
  if (weft_stream_peer_addr(s, &a) != 0)
    return WEFT_EINVAL;
  return check_ip(ssl, &a);
}

/* A client with a session cache: sets the key its new sessions go under,
 * and offers the newest one kept for that key. Without memory it goes on
 * without either. */
static void offer_session(weft_stream *s, tls_tp *t, weft_tls_ctx *ctx,
                          const char *name) {
  t->peer = peer_key(s, name);
  if (t->peer == NULL)
    return;
  SSL_set_app_data(t->ssl, t);
  SSL_SESSION *x = sess_take(ctx, t->peer);
  if (x != NULL) {
    SSL_set_session(t->ssl, x); /* takes its own reference */
    SSL_SESSION_free(x);
  }
}

static int make_tp(weft_stream *s, weft_tls_ctx *ctx, const char *name,
                   tls_tp **out) {
  tls_tp *t = weft__calloc(1, sizeof *t);
  if (t == NULL)
    return WEFT_ENOMEM;
  t->base.vt = &tls_vt;
  t->base.s = s;
  t->fd = s->fd;
  t->handshake = true;
  ERR_clear_error();
  t->ssl = SSL_new(ctx->ssl);
  BIO *b = t->ssl ? BIO_new(bio_meth) : NULL;
  if (b == NULL) {
    SSL_free(t->ssl);
    weft__free(t);
    ERR_clear_error();
    return WEFT_ENOMEM;
  }
  BIO_set_data(b, t);
  BIO_set_init(b, 1);
  SSL_set_bio(t->ssl, b, b);
  int rc = 0;
  if (ctx->server)
    SSL_set_accept_state(t->ssl);
  else {
    SSL_set_connect_state(t->ssl);
    rc = set_peer_name(s, t->ssl, name, !ctx->insecure);
    if (rc == 0 && ctx->sess_max > 0)
      offer_session(s, t, ctx, name);
  }
  if (rc != 0) {
    tls_free(&t->base);
    ERR_clear_error();
    return rc;
  }
  /* Bytes the peer sent after the plaintext part belong to the handshake. */
  size_t have = weft__buf_len(&s->rbuf);
  if (have > 0) {
    t->pre = weft__malloc(have);
    if (t->pre == NULL) {
      tls_free(&t->base);
      return WEFT_ENOMEM;
    }
    memcpy(t->pre, s->rbuf.data + s->rbuf.start, have);
    t->pre_len = have;
    s->rbuf.start = s->rbuf.end = 0;
  }
  *out = t;
  return 0;
}

static int handshake(weft_stream *s, tls_tp *t) {
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
      break;
    int want = 0;
    int rc = ssl_result(t, r, &want);
    if (rc != WEFT_EAGAIN)
      return rc;
    weft__stream_spent(s, want);
    rc = weft__stream_wait_io(s, want);
    if (rc != 0)
      return rc;
  }
  t->handshake = false;
  const unsigned char *p;
  unsigned len;
  SSL_get0_alpn_selected(t->ssl, &p, &len);
  if (p != NULL && len > 0 && len < sizeof t->alpn) {
    memcpy(t->alpn, p, len);
    t->alpn[len] = '\0';
  }
  return 0;
}

int weft_stream_start_tls(weft_stream *s, weft_tls_ctx *ctx,
                          const char *server_name) {
  WEFT__NEED_TASK(t);
  if (s == NULL || ctx == NULL)
    return WEFT_EINVAL;
  if (s->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (s->released)
    return WEFT_ECANCELED;
  if (s->tls != NULL)
    return WEFT_EALREADY;
  if (s->reading || s->writing || s->shutting)
    return WEFT_EBUSY;
  if (s->shut)
    return WEFT_EPIPE;
  if (!init())
    return WEFT_ENOMEM;
  weft__stream_enter(s);
  s->reading = s->writing = true; /* the handshake owns both directions */
  weft_timeout scope;
  weft_timeout_enter(&scope, ctx->handshake_timeout > 0 ? ctx->handshake_timeout
                                                        : (double)INFINITY);
  /* What was written in plaintext goes first. */
  int rc = weft__stream_wait_drain(s, 0);
  tls_tp *tp = NULL;
  if (rc == 0)
    rc = make_tp(s, ctx, server_name ? server_name : s->server_name, &tp);
  if (rc == 0) {
    s->tls = s->tp = &tp->base;
    s->rwant = WEFT__WANT_READ;
    s->wwant = WEFT__WANT_WRITE;
    rc = handshake(s, tp);
  }
  (void)weft_timeout_exit(&scope);
  if (!s->released) {
    s->reading = s->writing = false;
    if (rc != 0) {
      /* Unusable from now on; the caller frees it. */
      s->rerr = s->werr = rc;
    }
  }
  return weft__stream_leave(s, rc);
}

int weft_stream_tls_shutdown(weft_stream *s, double timeout) {
  WEFT__NEED_TASK(t);
  if (s == NULL)
    return WEFT_EINVAL;
  if (s->loop != t->loop)
    return WEFT_EWRONGLOOP;
  if (s->released)
    return WEFT_ECANCELED;
  if (s->tls == NULL)
    return WEFT_EINVAL;
  if (s->reading)
    return WEFT_EBUSY;
  weft__stream_enter(s);
  weft_timeout scope;
  weft_timeout_enter(&scope, timeout >= 0 ? timeout : (double)INFINITY);
  int rc = weft_stream_shutdown(s);
  if (!s->released)
    s->reading = true;
  while (rc == 0 && !s->released) {
    size_t have = weft__buf_len(&s->rbuf);
    if (have > SHUTDOWN_KEEP) {
      rc = WEFT_ELIMIT;
      break;
    }
    rc = weft__stream_fill(s, have + 1);
  }
  if (rc == WEFT_EOF)
    rc = 0; /* the peer's close_notify */
  (void)weft_timeout_exit(&scope);
  if (!s->released)
    s->reading = false;
  return weft__stream_leave(s, rc);
}

static tls_tp *tls_of(const weft_stream *s) {
  return s != NULL && !s->released ? (tls_tp *)s->tls : NULL;
}

const char *weft_stream_tls_alpn(const weft_stream *s) {
  tls_tp *t = tls_of(s);
  return t && t->alpn[0] ? t->alpn : NULL;
}

const char *weft_stream_tls_version(const weft_stream *s) {
  tls_tp *t = tls_of(s);
  return t ? SSL_get_version(t->ssl) : NULL;
}

const char *weft_stream_tls_cipher(const weft_stream *s) {
  tls_tp *t = tls_of(s);
  return t ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *weft_stream_tls_server_name(const weft_stream *s) {
  tls_tp *t = tls_of(s);
  return t ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

bool weft_stream_tls_resumed(const weft_stream *s) {
  tls_tp *t = tls_of(s);
  return t ? SSL_session_reused(t->ssl) == 1 : false;
}

void *weft_stream_tls_ssl(const weft_stream *s) {
  tls_tp *t = tls_of(s);
  return t ? t->ssl : NULL;
}
