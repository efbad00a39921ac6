/* weft — UDP endpoints (asyncio's create_datagram_endpoint, as calls a task
 * awaits instead of a protocol's callbacks).
 *
 * An endpoint is one datagram socket, bound to a local address, optionally
 * connected to one peer. Sends and receives are whole datagrams. It belongs
 * to the loop of the thread that made it; its calls are made from that
 * loop's tasks. Several tasks may wait on one endpoint at once: receivers are
 * served in the order they started waiting, as are senders.
 */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#include <weft/addr.h>
#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_udp weft_udp;

/* Largest payload of one UDP datagram over IPv4 (65 535 - 8 - 20); a
 * receive buffer this large is never too small for IPv4 or IPv6 (without
 * jumbograms). */
#define WEFT_UDP_MAX_DATAGRAM 65507

/* Endpoint options. NULL or zero fields take the defaults. */
typedef struct weft_udp_opts {
  size_t size;     /* sizeof(weft_udp_opts) */
  bool reuse_port; /* SO_REUSEPORT: several sockets share the local port and
                      the kernel spreads datagrams between them (one per
                      worker, weft_run_workers) */
  bool reuse_addr; /* SO_REUSEADDR */
  bool v6only;     /* IPV6_V6ONLY on an IPv6 socket: no IPv4-mapped traffic
                      (default: the system's, dual stack on Linux) */
  bool broadcast;  /* SO_BROADCAST: may send to broadcast addresses */
  int recv_buffer; /* SO_RCVBUF in bytes; 0: the system's default */
  int send_buffer; /* SO_SNDBUF in bytes; 0: the system's default */
} weft_udp_opts;

/*
 * Makes an endpoint. `local` (may be NULL: the kernel picks an address and
 * port at the first send) is bound, port 0 picking a free port (read it back
 * with weft_udp_local_addr); `remote` (may be NULL) makes it connected: sends
 * go there without an address and only its datagrams are received. At least
 * one is needed (it gives the family: IPv4 or IPv6; Unix datagram sockets
 * work too). Never suspends; loop thread. Returns 0, WEFT_EINVAL,
 * WEFT_EAFNOSUPPORT, WEFT_EADDRINUSE, WEFT_EADDRNOTAVAIL, WEFT_EACCES,
 * WEFT_EMFILE, WEFT_ENOMEM, WEFT_ENOLOOP, or another bind/connect errno.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_udp_new(weft_udp **out,
                                            const weft_addr *local,
                                            const weft_addr *remote,
                                            const weft_udp_opts *opts);

/* Closes the socket and frees the endpoint (NULL ok). Tasks waiting in a send
 * or receive on it wake with WEFT_ECANCELED (and no longer touch it). Loop
 * thread; never suspends. */
WEFT_EXTERN void weft_udp_free(weft_udp *u);

/*
 * Sends one datagram of `len` bytes to `to` (NULL on a connected endpoint),
 * waiting while the socket's send buffer is full. May suspend. Returns 0 when
 * the whole datagram was handed to the kernel (UDP does not say whether it
 * arrived), WEFT_EMSGSIZE (too large for one datagram), WEFT_EINVAL (no
 * address on an unconnected endpoint, or a family it cannot reach),
 * WEFT_ECONNREFUSED (connected endpoint: an earlier datagram was refused by
 * the peer's ICMP), WEFT_ENETUNREACH, WEFT_EHOSTUNREACH, WEFT_ECANCELED /
 * WEFT_ETIMEDOUT (nothing was sent), WEFT_EWRONGLOOP, WEFT_ENOTASK.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_udp_send_to(weft_udp *u, const void *data,
                                                size_t len,
                                                const weft_addr *to);
/* weft_udp_send_to(u, data, len, NULL): send on a connected endpoint. */
WEFT_EXTERN WEFT_NODISCARD int weft_udp_send(weft_udp *u, const void *data,
                                             size_t len);

/*
 * Receives one datagram into buf[0..cap), waiting until one arrives, and
 * stores its sender in *from (may be NULL). May suspend. Returns the
 * datagram's length (>= 0; 0 is a valid empty datagram), or:
 *   WEFT_EMSGSIZE   the datagram was longer than `cap`: buf holds its first
 *                   `cap` bytes, *from is set, and the rest is gone (UDP keeps
 *                   no remainder) - never a silent cut. WEFT_UDP_MAX_DATAGRAM
 *                   bytes always suffice.
 *   WEFT_ECONNREFUSED  connected endpoint: the peer's ICMP said no one
 *                   listens; later receives work again.
 *   WEFT_ECANCELED / WEFT_ETIMEDOUT  nothing was taken: the datagram stays
 *                   for the next receive.
 *   WEFT_EWRONGLOOP, WEFT_ENOTASK.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_udp_recv_from(weft_udp *u, void *buf,
                                                  size_t cap, weft_addr *from);
/* weft_udp_recv_from(u, buf, cap, NULL). */
WEFT_EXTERN WEFT_NODISCARD int weft_udp_recv(weft_udp *u, void *buf,
                                             size_t cap);

/* The bound address (with the port the kernel picked for port 0) / the
 * connected peer. Never suspend. Return 0, WEFT_ENOTCONN (peer of an
 * unconnected endpoint), or a getsockname/getpeername errno. */
WEFT_EXTERN int weft_udp_local_addr(const weft_udp *u, weft_addr *out);
WEFT_EXTERN int weft_udp_peer_addr(const weft_udp *u, weft_addr *out);

/* The socket, for setsockopt (multicast membership, TTL, ...). The endpoint
 * keeps owning it: never close it or make it blocking. */
WEFT_EXTERN int weft_udp_fd(const weft_udp *u);

#ifdef __cplusplus
}
#endif

#endif
