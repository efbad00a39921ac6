/* runtime-error: every code has a name and a message; errno passes through. */
#include "test.h"

static void test_names_and_messages(void) {
  int codes[] = {
#define XX(name, value, msg) WEFT_##name,
      WEFT_ERRNO_MAP(XX)
#undef XX
  };
  size_t n = sizeof codes / sizeof codes[0];
  T_GT(n, 40);
  for (size_t i = 0; i < n; i++) {
    T_LT(codes[i], 0);
    T_TRUE(strncmp(weft_err_name(codes[i]), "WEFT_E", 6) == 0);
    T_TRUE(strcmp(weft_strerror(codes[i]), "unknown error") != 0);
    for (size_t j = i + 1; j < n; j++)
      T_NE(codes[i], codes[j]);
  }
  T_STREQ(weft_err_name(WEFT_ETIMEDOUT), "WEFT_ETIMEDOUT");
  T_STREQ(weft_strerror(WEFT_ETIMEDOUT), "timed out");
  T_STREQ(weft_strerror(WEFT_ENOTASK), "suspending call made outside a task");
  T_EQ(WEFT_ECANCELED, -ECANCELED);
  T_LT(WEFT_ENOTASK, -4000);
}

static void test_unknown(void) {
  T_STREQ(weft_strerror(-3999), "unknown error");
  T_STREQ(weft_strerror(-999999), "unknown error");
  T_STREQ(weft_err_name(-999999), "WEFT_EUNKNOWN");
  T_STREQ(weft_strerror(0), "success");
  T_STREQ(weft_strerror(-EDOM), "Numerical argument out of domain");
  T_STREQ(weft_version(), WEFT_VERSION_STRING);
}

static const t_case cases[] = {{"names_and_messages", test_names_and_messages},
                               {"unknown", test_unknown},
                               {NULL, NULL}};

T_MAIN("runtime-error", cases)
