/* weft — waiting for POSIX signals from a task (graceful shutdown). */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Waits until one of signums[0..n) arrives and stores it in *which (may be
 * NULL). The first wait for a signal makes the loop catch it for the rest of
 * the loop's life (the default action, e.g. termination on SIGINT, no longer
 * happens); a signal that arrives while no task waits is kept and delivered
 * to the next wait, so a SIGTERM is never lost. Only one loop per process
 * can catch signals (a libevent rule). May suspend. Returns 0, WEFT_EINVAL,
 * WEFT_EBUSY (another loop catches signals), WEFT_ECANCELED, WEFT_ETIMEDOUT,
 * WEFT_ENOMEM, WEFT_ENOTASK.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_signal_wait(const int *signums, size_t n,
                                                int *which);

#ifdef __cplusplus
}
#endif

#endif
