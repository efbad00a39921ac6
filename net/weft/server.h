/* weft — stream servers (asyncio.start_server).
 *
 * weft_serve() listens on a TCP address (IPv4 or IPv6) or a Unix socket and
 * runs a handler task for every connection it accepts, handing it the
 * connection as a weft_stream. The server bounds what it takes on: at
 * max_connections it stops accepting (the listening socket is left alone,
 * so new peers wait in the kernel's backlog; nothing is dropped) and takes
 * the next one as soon as a connection ends; out of file descriptors
 * (EMFILE/ENFILE) it backs off and retries instead of spinning. Connections
 * that stay silent longer than idle_timeout are closed, and shutdown is
 * graceful: stop accepting, let handlers finish up to a deadline, then
 * cancel what is left and wait for it (docs/guide/servers.md).
 *
 * A server belongs to the loop of the thread that made it; its calls are
 * made on that thread. To use every core, run one server per worker loop
 * with reuse_port (weft_run_workers in weft/loop.h).
 */
#ifndef WEFT_SERVER_H
#define WEFT_SERVER_H

#include <weft/addr.h>
#include <weft/common.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_server weft_server;

/*
 * A connection handler (asyncio's client_connected_cb). Runs as a task of
 * its own, one per connection, with the accepted stream (TLS already
 * negotiated when the server has a TLS context). The server owns the stream:
 * when the handler returns, the server closes it gracefully (sending what is
 * still queued) and frees it; the handler must not close or free it, but may
 * shut down its write side. The handler may suspend anywhere. It returns 0
 * (or >= 0) on success; a failure (< 0) is counted and reported on stderr
 * with the handler's spawn site unless it is a peer's doing (WEFT_EOF,
 * WEFT_ECONNRESET, WEFT_EPIPE, WEFT_ECONNABORTED) or the server's
 * (WEFT_ECANCELED after an idle timeout or a shutdown); it never affects
 * other connections.
 */
typedef int (*weft_serve_fn)(weft_stream *s, void *arg);

/*
 * A lower level than a handler task, for protocol servers that keep no task
 * per idle connection (weft/http.h): called at once, outside any task, with
 * each accepted socket (non-blocking, close-on-exec). Returning 0, the
 * callback owns `fd` and the connection holds one of max_connections' slots
 * until its owner calls weft_server_conn_done(); returning < 0 refuses it
 * (the server closes fd and counts it in `dropped`).
 */
typedef int (*weft_server_accept_fn)(weft_server *srv, int fd, void *arg);

/* Server options. Zero fields take the defaults; NULL options mean all
 * defaults. `size` must be sizeof(weft_server_opts) so the struct can
 * grow. */
typedef struct weft_server_opts {
  size_t size;
  /* listen() backlog: connections the kernel completes and holds while the
   * server does not accept (also while it is at max_connections). Default
   * 4096; the kernel caps it at net.core.somaxconn. */
  int backlog;
  /* Connections served at once. At the limit the server stops accepting
   * until one ends. 0: no limit but the process's file descriptors. */
  size_t max_connections;
  /* Seconds a connection may stay idle - nothing received and nothing sent
   * - before its handler is cancelled (it sees WEFT_ECANCELED) and the
   * connection closed. Checked every idle_timeout / 4, so it fires between
   * 1 and 1.25 times the value. 0: no idle timeout. */
  double idle_timeout;
  /* SO_REUSEPORT: other sockets (in this or other processes and loops) may
   * listen on the same port, and the kernel spreads new connections among
   * them. Each worker of weft_run_workers opens its own server so. */
  bool reuse_port;
  /* IPV6_V6ONLY on an IPv6 listener: refuse IPv4 peers on "::". Default:
   * the system's (dual stack on Linux). */
  bool v6only;
  /* TLS: every connection runs the server-side handshake with this server
   * context (weft/tls.h) in its handler task before the handler is called;
   * a connection whose handshake fails is closed and counted
   * (weft_server_stats.tls_failures). The handshake is bounded by the
   * context's handshake_timeout. Borrowed: the context must outlive the
   * server. NULL: plain TCP. */
  weft_tls_ctx *tls;
  /* Options for the accepted streams (write buffer marks, nodelay,
   * keepalive, close_timeout; the connect-only fields are ignored).
   * Copied. NULL: defaults. */
  const weft_stream_opts *stream;
  /* Stack size of each handler task; 0: the loop's default. */
  size_t stack_size;
  /* Unix socket: permission bits for the socket file (e.g. 0660); 0 leaves
   * what the umask gives. */
  unsigned unix_mode;
  /* Hands accepted sockets to this callback (with weft_serve's `arg`)
   * instead of running `handler` tasks, which must then be NULL. The
   * owner does its own idle timeouts, TLS and shutdown: idle_timeout, tls,
   * stream and stack_size do not apply, and weft_server_shutdown() only
   * closes the listener and waits up to `grace` for the owner to end its
   * connections (it cannot cancel them), returning how many were left. */
  weft_server_accept_fn accept;
} weft_server_opts;

/*
 * Starts serving: binds `addr` (IPv4, IPv6 or Unix, weft/addr.h; port 0
 * picks a free port, read back with weft_server_addr), listens, and from
 * the loop's next turn on runs handler(stream, arg) for each accepted
 * connection. A Unix socket path left behind by a dead server is replaced;
 * one a live server listens on gives WEFT_EADDRINUSE; the path is removed
 * when the server is freed. Never suspends; loop thread, in a task or not.
 * On success *out is the server, which the caller frees with
 * weft_server_free (after weft_server_shutdown, for a graceful end).
 * Returns 0, WEFT_EINVAL, WEFT_EADDRINUSE, WEFT_EADDRNOTAVAIL, WEFT_EACCES,
 * WEFT_EAFNOSUPPORT, WEFT_EMFILE, WEFT_ENOMEM, WEFT_ENOLOOP, or another
 * socket/bind/listen errno.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_serve(weft_server **out,
                                          const weft_addr *addr,
                                          weft_serve_fn handler, void *arg,
                                          const weft_server_opts *opts);

/* The address the server listens on, with the real port when it asked for
 * port 0. Never suspends. Returns 0, or a getsockname errno. */
WEFT_EXTERN int weft_server_addr(const weft_server *s, weft_addr *out);

/* Stops accepting and closes the listening socket (peers that connect from
 * now on are refused; those waiting in the backlog are reset). Connections
 * already accepted go on. Never suspends. Closing twice does nothing. */
WEFT_EXTERN void weft_server_close(weft_server *s);

/* True once the server was closed or is shutting down: long-lived handlers
 * (keep-alive loops) check it between requests and return. */
WEFT_EXTERN bool weft_server_closing(const weft_server *s);

/*
 * Graceful shutdown: closes the server (weft_server_close), waits up to
 * `grace` seconds for every handler to return, then cancels the handlers
 * still running and waits until they have returned (they see
 * WEFT_ECANCELED; the wait for them ignores the caller's cancellation, so no
 * handler outlives this call). May suspend. Returns the number of handlers
 * that had to be cancelled (0: all finished in time); WEFT_ECANCELED or
 * WEFT_ETIMEDOUT when the caller was cancelled or its own deadline passed
 * during the grace period (the remaining handlers were then cancelled and
 * awaited just the same); WEFT_EDEADLK when called from one of the
 * server's own handlers (it would wait for itself; nothing is done);
 * WEFT_EINVAL (grace is NaN), WEFT_ENOTASK, WEFT_EWRONGLOOP.
 */
WEFT_EXTERN int weft_server_shutdown(weft_server *s, double grace);

/* Ends one connection taken by an opts->accept callback: its slot is free
 * for the next peer (accepting resumes if it paused at max_connections or
 * after running out of descriptors). Call it once per connection, after
 * closing its socket; for connections taken before weft_server_free() it
 * may still be called after it (the server's memory goes with the last
 * one). Never suspends; loop thread. */
WEFT_EXTERN void weft_server_conn_done(weft_server *s);

/* Connections being served now. */
WEFT_EXTERN size_t weft_server_connections(const weft_server *s);

typedef struct weft_server_stats {
  uint64_t accepted;       /* connections accepted */
  uint64_t active;         /* being served now */
  uint64_t peak;           /* the most served at once */
  uint64_t limit_pauses;   /* times accepting paused at max_connections */
  uint64_t fd_backoffs;    /* times accepting backed off on EMFILE/ENFILE
                              (or ENOBUFS/ENOMEM) */
  uint64_t accept_errors;  /* other accept() failures (each retried) */
  uint64_t dropped;        /* accepted but closed at once: no memory for the
                              connection's task (also reported on stderr) */
  uint64_t handler_errors; /* handlers that failed (returned < 0) for a
                              reason of their own; each is reported */
  uint64_t peer_errors;    /* handlers that returned the peer's failure:
                              WEFT_EOF, a reset, WEFT_EPIPE, a timeout, a
                              TLS error (counted, not reported) */
  uint64_t idle_timeouts;  /* connections closed for idleness */
  uint64_t tls_failures;   /* handshakes that failed or timed out */
  uint64_t cancelled;      /* handlers cancelled by a shutdown or a free */
} weft_server_stats;

/* Fills *out with the server's counters. Never suspends. */
WEFT_EXTERN void weft_server_stats_get(const weft_server *s,
                                       weft_server_stats *out);

/*
 * Frees the server (NULL ok). Never suspends. If it is still open it is
 * closed first; handlers still running are cancelled and run on until they
 * return (their connections are then closed, and the server's memory goes
 * with the last one), so whatever `arg` points to must stay valid until
 * they have returned - call weft_server_shutdown first to know when. A
 * task already waiting in weft_server_shutdown returns normally once they
 * are gone (the memory goes after it). Never use the pointer again.
 */
WEFT_EXTERN void weft_server_free(weft_server *s);

#ifdef __cplusplus
}
#endif

#endif
