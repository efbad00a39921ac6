/* weft — a byte buffer the library allocates and the caller frees: what
 * weft_fs_read_file() and weft_proc_call() hand back. */
#ifndef WEFT_BYTES_H
#define WEFT_BYTES_H

#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_bytes {
  uint8_t *data; /* a weft allocation, or NULL (then len is 0) */
  size_t len;
} weft_bytes;

/* Makes room for `len` bytes in *b (whose old contents are freed) and
 * returns the start, or NULL (b left empty) when memory runs out. The bytes
 * are uninitialised. len 0 gives a non-NULL pointer to nothing. */
WEFT_EXTERN void *weft_bytes_alloc(weft_bytes *b, size_t len);

/* Copies data[0..len) into *b. Returns 0 or WEFT_ENOMEM. */
WEFT_EXTERN int weft_bytes_set(weft_bytes *b, const void *data, size_t len);

/* Frees what *b holds and empties it. NULL ok. */
WEFT_EXTERN void weft_bytes_free(weft_bytes *b);

#ifdef __cplusplus
}
#endif

#endif
