/* weft — error names and messages, generated from WEFT_ERRNO_MAP. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *weft_version(void) { return WEFT_VERSION_STRING; }

const char *weft_strerror(int code) {
  switch (code) {
#define XX(name, value, msg)                                                   \
  case WEFT_##name:                                                            \
    return msg;
    WEFT_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "success";
  }
  if (code < 0 && code > -4000) {
    /* strerror() may format unknown numbers into a buffer the next call
     * reuses; the description table is static. */
    const char *d = strerrordesc_np(-code);
    if (d != NULL)
      return d;
  }
  return "unknown error";
}

const char *weft_err_name(int code) {
  switch (code) {
#define XX(name, value, msg)                                                   \
  case WEFT_##name:                                                            \
    return "WEFT_" #name;
    WEFT_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "0";
  }
  if (code > 0)
    return "(not an error)";
  return "WEFT_EUNKNOWN";
}
