/* weft — the process pool's wire format, shared by the parent (procpool.c)
 * and the worker (procworker.c). Both ends are the same binary, so fields go
 * in host byte order. Every message starts with a fixed header; the parent
 * checks each field of each reply, so garbage, a reply to the wrong call or a
 * truncated message is caught (WEFT_EBADMSG) instead of trusted. */
#ifndef WEFT_PROCMSG_H
#define WEFT_PROCMSG_H

#include <stdint.h>

#define WEFT__PROC_MAGIC 0x31504657u /* "WFP1" */
#define WEFT__PROC_ENV "WEFT_PROC_WORKER"
#define WEFT__PROC_FD 3     /* the worker's end of the socket */
#define WEFT__PROC_SHM_FD 4 /* the doorbells (a memfd), when there are */

/* A page shared by the parent and one worker (a memfd mapped by both). The
 * socket stays the only channel for data; this page only carries hints:
 * a doorbell the worker rings for each reply, so the parent's spinning task
 * polls memory instead of making a system call per turn, and cancel marks
 * for calls queued in the worker. */
typedef struct weft__proc_shm {
  _Alignas(64) uint64_t rep; /* replies the worker has started sending */
  /* cancel[seq % 64] == seq: the caller of request `seq` gave up before
   * the worker reached it; the worker skips it (replies WEFT_ECANCELED). */
  _Alignas(64) uint32_t cancel[64];
} weft__proc_shm;

enum {
  WEFT__MSG_HELLO = 1, /* worker -> parent: ready; status = its pid */
  WEFT__MSG_CALL = 2,  /* parent -> worker: name (name_len bytes), payload */
  WEFT__MSG_REPLY = 3, /* worker -> parent: status, payload */
};

typedef struct weft__proc_hdr {
  uint32_t magic;
  uint16_t kind;
  uint16_t name_len;
  int32_t status;
  uint32_t seq; /* the call's number; the reply repeats it */
  uint64_t len; /* payload bytes after the name */
} weft__proc_hdr;

_Static_assert(sizeof(weft__proc_hdr) == 24, "wire header is 24 bytes");

#define WEFT__PROC_NAME_MAX 255

/* procworker.c: the registry, shared with the parent's checks. */
#include <weft/proc.h>
weft_proc_fn weft__proc_lookup(const char *name, size_t len);

#endif
