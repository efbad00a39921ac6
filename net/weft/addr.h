/* weft — socket addresses: one value type for IPv4, IPv6 and Unix-domain
 * addresses, shared by DNS results, streams, servers and UDP. */
#ifndef WEFT_ADDR_H
#define WEFT_ADDR_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An address of any family, copied by value. `len` is the length of the
 * sockaddr inside (what bind/connect/accept take); 0 means no address. */
typedef struct weft_addr {
  socklen_t len;
  union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    struct sockaddr_storage ss;
  } u;
} weft_addr;

/* Longest text weft_addr_format writes, with its NUL: "[v6%scope]:65535" or
 * a Unix path. */
#define WEFT_ADDR_STRLEN 112

/* Parses a numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "fe80::1%lo";
 * brackets allowed around IPv6) with `port` into *out. No DNS: a name gives
 * WEFT_EINVAL (resolve names with weft/dns.h). Returns 0 or WEFT_EINVAL
 * (also for a port outside 0..65535). Never suspends. */
WEFT_EXTERN int weft_addr_ip(weft_addr *out, const char *ip, int port);

/* Makes a Unix-domain address for `path`. A path starting with '@' names
 * an abstract socket (Linux). Returns 0, or WEFT_EINVAL when the path is
 * empty or longer than sun_path holds. */
WEFT_EXTERN int weft_addr_unix(weft_addr *out, const char *path);

/* Writes "1.2.3.4:80", "[::1]:80" or the Unix path into buf (at most `size`
 * bytes with the NUL; WEFT_ADDR_STRLEN is always enough). Returns buf, or
 * "?" for an address of unknown family. */
WEFT_EXTERN const char *weft_addr_format(const weft_addr *a, char *buf,
                                         size_t size);

/* The port (host byte order) of an IPv4/IPv6 address; -1 for others. */
WEFT_EXTERN int weft_addr_port(const weft_addr *a);
/* Sets the port of an IPv4/IPv6 address. Returns 0 or WEFT_EINVAL. */
WEFT_EXTERN int weft_addr_set_port(weft_addr *a, int port);
/* The address family: AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC when empty. */
WEFT_EXTERN int weft_addr_family(const weft_addr *a);
/* True when both hold the same family, address and port (or path). */
WEFT_EXTERN bool weft_addr_equal(const weft_addr *a, const weft_addr *b);

#ifdef __cplusplus
}
#endif

#endif
