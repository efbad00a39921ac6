/* weft — error codes.
 *
 * Every call that can fail returns 0 (or a count >= 0) on success and a
 * negative WEFT_E* code on failure. Codes that have an errno equivalent are
 * that errno negated (as in libuv); weft's own codes live in a reserved range
 * below -4000 so they never collide with an errno value.
 */
#ifndef WEFT_ERROR_H
#define WEFT_ERROR_H

#include <errno.h>
#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message). One list makes the enum, weft_strerror and
 * weft_err_name, so they can never disagree. */
#define WEFT_ERRNO_MAP(XX)                                                     \
  XX(ENOMEM, -ENOMEM, "out of memory")                                         \
  XX(EINVAL, -EINVAL, "invalid argument")                                      \
  XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                      \
  XX(EBUSY, -EBUSY, "resource busy")                                           \
  XX(ECANCELED, -ECANCELED, "operation canceled")                              \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                       \
  XX(EALREADY, -EALREADY, "already done")                                      \
  XX(ENOENT, -ENOENT, "no such file or directory")                             \
  XX(EEXIST, -EEXIST, "file exists")                                           \
  XX(EACCES, -EACCES, "permission denied")                                     \
  XX(EPERM, -EPERM, "operation not permitted")                                 \
  XX(EISDIR, -EISDIR, "is a directory")                                        \
  XX(ENOTDIR, -ENOTDIR, "not a directory")                                     \
  XX(EBADF, -EBADF, "bad file descriptor")                                     \
  XX(EIO, -EIO, "i/o error")                                                   \
  XX(ENOSPC, -ENOSPC, "no space left on device")                               \
  XX(EMFILE, -EMFILE, "too many open files")                                   \
  XX(ENFILE, -ENFILE, "file table overflow")                                   \
  XX(EPIPE, -EPIPE, "broken pipe")                                             \
  XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                        \
  XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                      \
  XX(ECONNABORTED, -ECONNABORTED, "connection aborted")                        \
  XX(ENOTCONN, -ENOTCONN, "socket is not connected")                           \
  XX(EADDRINUSE, -EADDRINUSE, "address already in use")                        \
  XX(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                   \
  XX(EAFNOSUPPORT, -EAFNOSUPPORT, "address family not supported")              \
  XX(ENETUNREACH, -ENETUNREACH, "network is unreachable")                      \
  XX(EHOSTUNREACH, -EHOSTUNREACH, "host is unreachable")                       \
  XX(EMSGSIZE, -EMSGSIZE, "message too long")                                  \
  XX(ENOSYS, -ENOSYS, "function not implemented")                              \
  XX(ENOTSUP, -ENOTSUP, "operation not supported")                             \
  XX(ERANGE, -ERANGE, "result out of range")                                   \
  XX(E2BIG, -E2BIG, "argument list too long")                                  \
  XX(ESRCH, -ESRCH, "no such process")                                         \
  XX(ECHILD, -ECHILD, "no child processes")                                    \
  XX(EPROTO, -EPROTO, "protocol error")                                        \
  XX(ENOTASK, -4001, "suspending call made outside a task")                    \
  XX(ECLOSED, -4002, "object is closed")                                       \
  XX(EOF, -4003, "end of file")                                                \
  XX(ESTACKOVERFLOW, -4004, "task stack overflow")                             \
  XX(EDEADLK, -4005, "task would wait on itself")                              \
  XX(ECRASHED, -4006, "worker crashed")                                        \
  XX(EBADMSG, -4007, "malformed message")                                      \
  XX(ELIMIT, -4008, "limit exceeded")                                          \
  XX(EWRONGLOOP, -4009, "object belongs to another loop")                      \
  XX(ENOLOOP, -4010, "no weft loop runs on this thread")                       \
  /* DNS: -4100 ... -4199 */                                                   \
  XX(ENOHOST, -4100, "no such host name (NXDOMAIN)")                           \
  XX(ENOADDR, -4101, "host has no address of the requested family")            \
  XX(ESERVFAIL, -4102, "DNS server failure (SERVFAIL)")                        \
  XX(EDNSTIMEOUT, -4103, "DNS server did not answer in time")                  \
  XX(EREFUSED, -4104, "DNS server refused the query (REFUSED)")                \
  XX(EBADRESP, -4105, "malformed DNS reply")                                   \
  XX(EFORMERR, -4106, "DNS server could not parse the query (FORMERR)")        \
  XX(ENOTIMP, -4107, "DNS server does not implement the query (NOTIMP)")       \
  XX(EBADNAME, -4108, "invalid host name")                                     \
  /* TLS: -4200 ... -4299 (net/weft/tls.h) */                                  \
  XX(ETLS, -4200, "TLS error")                                                 \
  XX(ETLS_HANDSHAKE, -4201, "TLS handshake failed")                            \
  XX(ETLS_EXPIRED, -4202, "certificate has expired")                           \
  XX(ETLS_NOT_YET_VALID, -4203, "certificate is not yet valid")                \
  XX(ETLS_HOSTNAME, -4204, "certificate does not match the host name")         \
  XX(ETLS_UNKNOWN_CA, -4205, "certificate issued by an unknown authority")     \
  XX(ETLS_SELF_SIGNED, -4206, "self-signed certificate")                       \
  XX(ETLS_VERIFY, -4207, "certificate verification failed")                    \
  XX(ETLS_NO_CERT, -4208, "peer sent no certificate")                          \
  XX(ETLS_BADCERT, -4209, "cannot load certificate or key")                    \
  XX(ETLS_TRUNCATED, -4210, "connection closed without TLS close_notify")      \
  XX(ETLS_ALPN, -4211, "no application protocol in common")                    \
  XX(ETLS_VERSION, -4212, "no TLS version in common")                          \
  XX(ETLS_REJECTED, -4213, "peer rejected our certificate")                    \
  /* HTTP: -4500 ... -4599 (net/weft/http_client.h) */                         \
  XX(EHTTP_TRUNCATED, -4500,                                                   \
     "HTTP body cut short by the end of the connection")                       \
  XX(EHTTP_REDIRECTS, -4501, "too many HTTP redirects")                        \
  XX(EHTTP_NO_RESPONSE, -4502, "server closed the connection without answering")

enum {
#define WEFT__ERR_ENUM(name, value, msg) WEFT_##name = (value),
  WEFT_ERRNO_MAP(WEFT__ERR_ENUM)
#undef WEFT__ERR_ENUM
};

/* Returns a short human message for `code` ("timed out"). Any negative errno
 * value is named too (through strerror); an unknown code gives "unknown
 * error". The string is static: never free it. */
WEFT_EXTERN const char *weft_strerror(int code);

/* Returns the code's name ("WEFT_ETIMEDOUT"), or "WEFT_EUNKNOWN" for a code
 * outside the list (weft_strerror still describes any errno). Static string. */
WEFT_EXTERN const char *weft_err_name(int code);

#ifdef __cplusplus
}
#endif

#endif
