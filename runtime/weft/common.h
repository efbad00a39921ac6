/* weft — shared definitions for every public header. */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(WEFT_STATIC)
#define WEFT_EXTERN
#elif defined(__GNUC__)
#define WEFT_EXTERN __attribute__((visibility("default")))
#else
#define WEFT_EXTERN
#endif

#if defined(__GNUC__)
#define WEFT_NODISCARD __attribute__((warn_unused_result))
#else
#define WEFT_NODISCARD
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the version of the library the program runs against, e.g. "0.1.0". */
WEFT_EXTERN const char *weft_version(void);

/*
 * The allocator weft (and libevent, and later nghttp2) allocate through. Set it
 * before the first loop is made; it is process-wide configuration, not state.
 * realloc(NULL, n) must behave like malloc(n). Every weft call that allocates
 * returns WEFT_ENOMEM when the allocator returns NULL; weft never aborts on it.
 */
typedef struct weft_allocator {
  void *(*malloc)(size_t size);
  void *(*realloc)(void *ptr, size_t size);
  void (*free)(void *ptr);
} weft_allocator;

/* Installs `a` (copied), or restores the C library's allocator when `a` is
 * NULL. Returns 0, or WEFT_EBUSY when a loop already exists. */
WEFT_EXTERN int weft_set_allocator(const weft_allocator *a);

#ifdef __cplusplus
}
#endif

#endif
