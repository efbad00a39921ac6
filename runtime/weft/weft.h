/* weft — everything of the runtime in one include. */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include <weft/common.h>
#include <weft/debug.h>
#include <weft/error.h>
#include <weft/future.h>
#include <weft/group.h>
#include <weft/loop.h>
#include <weft/signal.h>
#include <weft/sync.h>
#include <weft/task.h>

#endif
