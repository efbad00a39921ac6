/* net-addr: numeric addresses parse and format both ways; bad ones are
 * refused with WEFT_EINVAL. */
#include <arpa/inet.h>
#include <weft/addr.h>

#include "test.h"

static void test_ipv4(void) {
  weft_addr a;
  char buf[WEFT_ADDR_STRLEN];
  T_OK(weft_addr_ip(&a, "127.0.0.1", 8080));
  T_EQ(weft_addr_family(&a), AF_INET);
  T_EQ(a.len, sizeof(struct sockaddr_in));
  T_EQ(weft_addr_port(&a), 8080);
  T_STREQ(weft_addr_format(&a, buf, sizeof buf), "127.0.0.1:8080");
  T_OK(weft_addr_set_port(&a, 0));
  T_STREQ(weft_addr_format(&a, buf, sizeof buf), "127.0.0.1:0");
}

static void test_ipv6(void) {
  weft_addr a, b;
  char buf[WEFT_ADDR_STRLEN];
  T_OK(weft_addr_ip(&a, "::1", 443));
  T_EQ(weft_addr_family(&a), AF_INET6);
  T_STREQ(weft_addr_format(&a, buf, sizeof buf), "[::1]:443");
  T_OK(weft_addr_ip(&b, "[::1]", 443)); /* brackets as in URLs */
  T_TRUE(weft_addr_equal(&a, &b));
  T_OK(weft_addr_set_port(&b, 444));
  T_FALSE(weft_addr_equal(&a, &b));
  T_OK(weft_addr_ip(&a, "fe80::1%1", 1)); /* numeric zone */
  T_EQ(a.u.in6.sin6_scope_id, 1);
  T_OK(weft_addr_ip(&a, "fe80::1%lo", 1)); /* named zone */
  T_STREQ(weft_addr_format(&a, buf, sizeof buf), "[fe80::1%lo]:1");
  T_OK(weft_addr_ip(&a, "2001:db8::42", 65535));
  T_STREQ(weft_addr_format(&a, buf, sizeof buf), "[2001:db8::42]:65535");
}

static void test_unix(void) {
  weft_addr a;
  char buf[WEFT_ADDR_STRLEN];
  T_OK(weft_addr_unix(&a, "/tmp/x.sock"));
  T_EQ(weft_addr_family(&a), AF_UNIX);
  T_EQ(weft_addr_port(&a), -1);
  T_STREQ(weft_addr_format(&a, buf, sizeof buf), "/tmp/x.sock");
  T_OK(weft_addr_unix(&a, "@weft-abstract"));
  T_EQ(a.u.un.sun_path[0], 0);
  T_STREQ(weft_addr_format(&a, buf, sizeof buf), "@weft-abstract");
  char longpath[200];
  memset(longpath, 'a', sizeof longpath - 1);
  longpath[sizeof longpath - 1] = '\0';
  T_RC(weft_addr_unix(&a, longpath), WEFT_EINVAL);
  T_RC(weft_addr_unix(&a, ""), WEFT_EINVAL);
  T_RC(weft_addr_set_port(&a, 1), WEFT_EINVAL);
}

static void test_bad(void) {
  weft_addr a;
  const char *bad[] = {
      "",     "localhost", "1.2.3",    "1.2.3.4.5", "256.1.1.1",        "::g",
      "[::1", "fe80::1%",  "1.2.3.4 ", "[]",        "fe80::1%nosuchif0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    T_RC(weft_addr_ip(&a, bad[i], 80), WEFT_EINVAL);
  T_RC(weft_addr_ip(&a, "1.2.3.4", -1), WEFT_EINVAL);
  T_RC(weft_addr_ip(&a, "1.2.3.4", 65536), WEFT_EINVAL);
  T_RC(weft_addr_ip(NULL, "1.2.3.4", 1), WEFT_EINVAL);
  weft_addr empty = {0};
  char buf[8];
  T_EQ(weft_addr_family(&empty), AF_UNSPEC);
  T_STREQ(weft_addr_format(&empty, buf, sizeof buf), "?");
  /* A buffer too small truncates, never overflows. */
  T_OK(weft_addr_ip(&a, "255.255.255.255", 65535));
  T_EQ(strlen(weft_addr_format(&a, buf, sizeof buf)), sizeof buf - 1);
}

static const t_case cases[] = {{"ipv4", test_ipv4},
                               {"ipv6", test_ipv6},
                               {"unix", test_unix},
                               {"bad", test_bad},
                               {NULL, NULL}};
T_MAIN("net-addr", cases)
