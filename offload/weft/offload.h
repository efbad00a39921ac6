/* weft — everything of offload/ in one include: thread pools, file I/O,
 * process pools. (weft/weft.h is the runtime alone.) */
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include <weft/bytes.h>
#include <weft/fs.h>
#include <weft/proc.h>
#include <weft/thread.h>

#endif
