/* weft — weft_bytes (weft/bytes.h). */
#include <string.h>
#include <weft/bytes.h>

#include "internal.h"

void *weft_bytes_alloc(weft_bytes *b, size_t len) {
  weft_bytes_free(b);
  uint8_t *p = weft__malloc(len ? len : 1);
  if (p == NULL)
    return NULL;
  b->data = p;
  b->len = len;
  return p;
}

int weft_bytes_set(weft_bytes *b, const void *data, size_t len) {
  void *p = weft_bytes_alloc(b, len);
  if (p == NULL)
    return WEFT_ENOMEM;
  if (len)
    memcpy(p, data, len);
  return 0;
}

void weft_bytes_free(weft_bytes *b) {
  if (b == NULL)
    return;
  weft__free(b->data);
  b->data = NULL;
  b->len = 0;
}
