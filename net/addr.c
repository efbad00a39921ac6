/* weft — socket addresses: parsing numeric addresses, formatting them. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/addr.h>
#include <weft/error.h>

int weft_addr_ip(weft_addr *out, const char *ip, int port) {
  if (out == NULL || ip == NULL || port < 0 || port > 65535)
    return WEFT_EINVAL;
  memset(out, 0, sizeof *out);
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 3];
  size_t n = strlen(ip);
  if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']') {
    ip++;
    n -= 2;
  }
  if (n == 0 || n >= sizeof buf)
    return WEFT_EINVAL;
  memcpy(buf, ip, n);
  buf[n] = '\0';

  if (inet_pton(AF_INET, buf, &out->u.in.sin_addr) == 1) {
    out->u.in.sin_family = AF_INET;
    out->u.in.sin_port = htons((uint16_t)port);
    out->len = sizeof out->u.in;
    return 0;
  }
  /* An IPv6 literal may carry a zone: "fe80::1%eth0" or "fe80::1%2". */
  char *zone = strchr(buf, '%');
  if (zone != NULL)
    *zone++ = '\0';
  if (inet_pton(AF_INET6, buf, &out->u.in6.sin6_addr) != 1)
    return WEFT_EINVAL;
  if (zone != NULL) {
    unsigned idx = if_nametoindex(zone);
    if (idx == 0) {
      char *end;
      unsigned long v = strtoul(zone, &end, 10);
      if (*zone == '\0' || *end != '\0' || v == 0 || v > UINT32_MAX)
        return WEFT_EINVAL;
      idx = (unsigned)v;
    }
    out->u.in6.sin6_scope_id = idx;
  }
  out->u.in6.sin6_family = AF_INET6;
  out->u.in6.sin6_port = htons((uint16_t)port);
  out->len = sizeof out->u.in6;
  return 0;
}

int weft_addr_unix(weft_addr *out, const char *path) {
  if (out == NULL || path == NULL)
    return WEFT_EINVAL;
  memset(out, 0, sizeof *out);
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof out->u.un.sun_path)
    return WEFT_EINVAL;
  out->u.un.sun_family = AF_UNIX;
  memcpy(out->u.un.sun_path, path, n);
  if (path[0] == '@') {
    /* Abstract socket: a leading NUL, and the length counts exactly the
     * name (no terminating NUL is part of it). */
    out->u.un.sun_path[0] = '\0';
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

const char *weft_addr_format(const weft_addr *a, char *buf, size_t size) {
  if (a == NULL || buf == NULL || size == 0)
    return "?";
  char ip[INET6_ADDRSTRLEN];
  switch (a->len ? a->u.sa.sa_family : AF_UNSPEC) {
  case AF_INET:
    inet_ntop(AF_INET, &a->u.in.sin_addr, ip, sizeof ip);
    snprintf(buf, size, "%s:%u", ip, ntohs(a->u.in.sin_port));
    return buf;
  case AF_INET6: {
    inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, sizeof ip);
    char zone[IF_NAMESIZE + 2] = "";
    if (a->u.in6.sin6_scope_id != 0) {
      char name[IF_NAMESIZE];
      if (if_indextoname(a->u.in6.sin6_scope_id, name) != NULL)
        snprintf(zone, sizeof zone, "%%%s", name);
      else
        snprintf(zone, sizeof zone, "%%%u", a->u.in6.sin6_scope_id);
    }
    snprintf(buf, size, "[%s%s]:%u", ip, zone, ntohs(a->u.in6.sin6_port));
    return buf;
  }
  case AF_UNIX: {
    size_t n = a->len - offsetof(struct sockaddr_un, sun_path);
    if (n > 0 && a->u.un.sun_path[0] == '\0') /* abstract */
      snprintf(buf, size, "@%.*s", (int)(n - 1), a->u.un.sun_path + 1);
    else
      snprintf(buf, size, "%.*s", (int)strnlen(a->u.un.sun_path, n),
               a->u.un.sun_path);
    return buf;
  }
  }
  return "?";
}

int weft_addr_port(const weft_addr *a) {
  if (a == NULL || a->len == 0)
    return -1;
  if (a->u.sa.sa_family == AF_INET)
    return ntohs(a->u.in.sin_port);
  if (a->u.sa.sa_family == AF_INET6)
    return ntohs(a->u.in6.sin6_port);
  return -1;
}

int weft_addr_set_port(weft_addr *a, int port) {
  if (a == NULL || a->len == 0 || port < 0 || port > 65535)
    return WEFT_EINVAL;
  if (a->u.sa.sa_family == AF_INET)
    a->u.in.sin_port = htons((uint16_t)port);
  else if (a->u.sa.sa_family == AF_INET6)
    a->u.in6.sin6_port = htons((uint16_t)port);
  else
    return WEFT_EINVAL;
  return 0;
}

int weft_addr_family(const weft_addr *a) {
  return a == NULL || a->len == 0 ? AF_UNSPEC : a->u.sa.sa_family;
}

bool weft_addr_equal(const weft_addr *a, const weft_addr *b) {
  if (a->len != b->len)
    return false;
  if (a->len == 0)
    return true;
  if (a->u.sa.sa_family != b->u.sa.sa_family)
    return false;
  switch (a->u.sa.sa_family) {
  case AF_INET:
    return a->u.in.sin_port == b->u.in.sin_port &&
           a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
  case AF_INET6:
    return a->u.in6.sin6_port == b->u.in6.sin6_port &&
           a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id &&
           memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0;
  default:
    return memcmp(&a->u, &b->u, a->len) == 0;
  }
}
