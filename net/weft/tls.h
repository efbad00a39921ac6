/* weft — TLS (OpenSSL 3) under streams.
 *
 * A TLS context holds what many connections share: certificates, trusted
 * authorities, protocol versions, ALPN. Clients verify the server by default
 * (the system's CA store, the host name, TLS 1.2 at least); servers present
 * a certificate chain, and may present others chosen by the name the client
 * asks for (SNI). A context is made once and used by any number of streams,
 * on any thread: it is immutable after setup (but for a client's session
 * cache, which has a lock of its own), and reference counted, so
 * weft_tls_ctx_free() may be called while streams still use it.
 *
 * A client context resumes sessions: a new connection to a server it has
 * talked to (the same name, or IP address when no name is given, and the
 * same port) offers a session that server gave it earlier, and the server
 * may accept it (weft_stream_tls_resumed). See session_cache_size below.
 *
 * A stream gets TLS either at connect time (weft_stream_opts.tls) or later
 * with weft_stream_start_tls() (STARTTLS, and the server side of every
 * accepted connection). From then on weft_stream_read/write carry plaintext.
 *
 * Every certificate problem has its own code (weft/error.h): an expired
 * certificate is WEFT_ETLS_EXPIRED, one not yet valid WEFT_ETLS_NOT_YET_VALID,
 * a name mismatch WEFT_ETLS_HOSTNAME, an unknown issuer WEFT_ETLS_UNKNOWN_CA,
 * a self-signed one WEFT_ETLS_SELF_SIGNED, anything else WEFT_ETLS_VERIFY.
 * A handshake that fails otherwise is WEFT_ETLS_HANDSHAKE, WEFT_ETLS_VERSION
 * (no version in common), WEFT_ETLS_ALPN (no protocol in common),
 * WEFT_ETLS_REJECTED (the peer refused our certificate), WEFT_ETLS_NO_CERT
 * (a server that requires client certificates got none).
 *
 * OpenSSL allocates with its own allocator, not weft_set_allocator()'s:
 * OpenSSL accepts a new allocator only before its first allocation, which a
 * library cannot promise (docs/guide/tls.md).
 */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include <weft/common.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol versions, as on the wire. */
#define WEFT_TLS_1_2 0x0303
#define WEFT_TLS_1_3 0x0304

/* Context options. Zero fields take the default; NULL options mean all
 * defaults. `size` must be sizeof(weft_tls_opts). Strings are copied or
 * read during the call only. */
typedef struct weft_tls_opts {
  size_t size;
  /* PEM certificate chain (leaf first) and its private key. Required for a
   * server; for a client, the certificate it presents when asked. */
  const char *cert_file;
  const char *key_file;
  /* Authorities to trust, instead of the system store (client), or for
   * client certificates (server with verify_peer). PEM file, or a hashed
   * directory (c_rehash). */
  const char *ca_file;
  const char *ca_path;
  /* Client: skip every check of the server's certificate. Only for tests;
   * the connection is then open to any man in the middle. */
  bool insecure;
  /* Server: ask for a client certificate and require a valid one. */
  bool verify_peer;
  /* ALPN protocol names in order of preference, NULL-terminated (e.g.
   * {"h2", "http/1.1", NULL}). A client offers them; a server picks its
   * most preferred one the client offers, and fails the handshake with
   * WEFT_ETLS_ALPN when there is none (RFC 7301). NULL: no ALPN. */
  const char *const *alpn;
  /* WEFT_TLS_1_2 (default) or WEFT_TLS_1_3; maximum 0: the newest. */
  int min_version;
  int max_version;
  /* OpenSSL cipher strings: TLS 1.2 suites ("ECDHE+AESGCM"), TLS 1.3
   * suites ("TLS_AES_128_GCM_SHA256"). NULL: OpenSSL's defaults. */
  const char *ciphers;
  const char *ciphersuites;
  /* Seconds a handshake may take before failing with WEFT_ETIMEDOUT, on top
   * of the caller's deadline scopes (slow or silent peers). 0: 30 s;
   * < 0: no limit of its own. */
  double handshake_timeout;
  /* Client: sessions kept for resumption (an abbreviated handshake, no
   * certificate sent or verified again) by the server's name and port, the
   * way curl, Go and browsers do: at most this many over all servers,
   * WEFT_TLS_SESSIONS_PER_PEER of them per server, the least recently used
   * going first. 0: WEFT_TLS_SESSION_CACHE_DEFAULT; < 0: none kept, every
   * connection makes a full handshake. Ignored by a server context (OpenSSL
   * resumes on that side by itself, with tickets). */
  int session_cache_size;
} weft_tls_opts;

/* The client session cache's defaults (weft_tls_opts.session_cache_size).
 * A TLS 1.3 ticket is used once (RFC 8446 C.4); OpenSSL servers (weft's
 * among them) send two after a full handshake and one after each
 * resumption, so keeping a few per server lets connections opened at the
 * same time resume too. A TLS 1.2 session is reused until it expires or
 * a newer one for the same server replaces it. */
#define WEFT_TLS_SESSION_CACHE_DEFAULT 64
#define WEFT_TLS_SESSIONS_PER_PEER 4

/* Makes a client context: verifies the server's certificate chain against
 * the system CA store (or opts->ca_file / ca_path) and its name against the
 * one connected to. Never suspends. Any thread. Returns 0, WEFT_ENOMEM,
 * WEFT_ENOENT / WEFT_EACCES (a file), WEFT_ETLS_BADCERT (a file that is not
 * a usable certificate or key, or a key that does not match), WEFT_EINVAL
 * (bad versions, ciphers or ALPN names). */
WEFT_EXTERN WEFT_NODISCARD int
weft_tls_client_ctx_new(weft_tls_ctx **out, const weft_tls_opts *opts);

/* Makes a server context presenting opts->cert_file / key_file (both
 * required). Never suspends. Any thread. Returns as the client's. */
WEFT_EXTERN WEFT_NODISCARD int
weft_tls_server_ctx_new(weft_tls_ctx **out, const weft_tls_opts *opts);

/* Drops the caller's reference; the context goes when the last stream
 * using it does. NULL allowed. Any thread. */
WEFT_EXTERN void weft_tls_ctx_free(weft_tls_ctx *ctx);

/* Server: adds another certificate chain and key, presented to clients
 * whose SNI matches one of its names (subject alternative DNS names, or
 * the common name when it has none; "*.example.com" matches one label).
 * Clients naming none of them get the context's own certificate. Call
 * before the context is used. Never suspends. Returns 0, WEFT_EINVAL (a
 * client context), or a file error as weft_tls_server_ctx_new. */
WEFT_EXTERN WEFT_NODISCARD int weft_tls_ctx_add_cert(weft_tls_ctx *ctx,
                                                     const char *cert_file,
                                                     const char *key_file);

/* Server SNI callback: called during a handshake (outside any task: it
 * must not suspend) with the name the client asked for (NULL when it sent
 * none). Returns the server context whose certificate to present (the
 * callback keeps its own reference), or NULL to go on with the
 * certificates added by weft_tls_ctx_add_cert. */
typedef weft_tls_ctx *(*weft_tls_sni_fn)(void *arg, const char *server_name);

/* Installs the SNI callback (NULL removes it); it runs before the
 * add_cert matching. Call before the context is used. */
WEFT_EXTERN void weft_tls_ctx_set_sni(weft_tls_ctx *ctx, weft_tls_sni_fn fn,
                                      void *arg);

/* The OpenSSL SSL_CTX under the context, for settings weft does not wrap.
 * Change it only before first use. */
WEFT_EXTERN void *weft_tls_ctx_ssl_ctx(weft_tls_ctx *ctx);

/* ---- TLS on a stream ---- */

/* Starts TLS on an open stream and runs the handshake: as the client with a
 * client context (server_name: SNI and the name verified; NULL: the
 * stream's own server_name option, else the certificate must match the
 * peer's IP address), as the server with a server context (server_name
 * ignored). Bytes the peer sent right after the plaintext part (already
 * buffered by the stream) are fed to the handshake; bytes queued for
 * writing are flushed first. May suspend. Returns 0, a TLS error (see the
 * top of this file), WEFT_EALREADY (TLS already on), WEFT_EBUSY (a read or
 * write is in progress), WEFT_EOF / WEFT_ECONNRESET (the peer went away),
 * or a common error. After any failure the stream is unusable (every call
 * returns that error) and the caller frees it; a cancelled or timed-out
 * handshake leaves it the same way. */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_start_tls(weft_stream *s,
                                                     weft_tls_ctx *ctx,
                                                     const char *server_name);

/* Ends TLS in both directions: sends our close_notify (after what is
 * queued) and waits up to `timeout` seconds (< 0: no limit of its own) for
 * the peer's. Application data that arrives meanwhile stays readable (up to
 * 256 KiB; beyond that the call fails with WEFT_ELIMIT). May suspend.
 * Returns 0 once the peer's close_notify came, WEFT_ETIMEDOUT,
 * WEFT_ETLS_TRUNCATED (the peer closed the connection without one),
 * WEFT_EINVAL (not a TLS stream), or a common error. */
WEFT_EXTERN WEFT_NODISCARD int weft_stream_tls_shutdown(weft_stream *s,
                                                        double timeout);

/* After the handshake: the ALPN protocol agreed on (NULL: none), the
 * negotiated version ("TLSv1.3"), cipher ("TLS_AES_256_GCM_SHA384"), and on
 * a server the SNI name the client sent (NULL: none). The strings live as
 * long as the stream. NULL on a plain stream. Never suspend. */
WEFT_EXTERN const char *weft_stream_tls_alpn(const weft_stream *s);
WEFT_EXTERN const char *weft_stream_tls_version(const weft_stream *s);
WEFT_EXTERN const char *weft_stream_tls_cipher(const weft_stream *s);
WEFT_EXTERN const char *weft_stream_tls_server_name(const weft_stream *s);

/* True when the handshake resumed an earlier session: on a client, one
 * from its context's session cache that the server accepted; on a server,
 * one of this server's that the client offered (a ticket or session id). */
WEFT_EXTERN bool weft_stream_tls_resumed(const weft_stream *s);

/* The OpenSSL SSL object of a TLS stream (NULL on a plain one), to read
 * what weft does not wrap (the peer certificate, ...). Do not read or write
 * through it. */
WEFT_EXTERN void *weft_stream_tls_ssl(const weft_stream *s);

#ifdef __cplusplus
}
#endif

#endif
