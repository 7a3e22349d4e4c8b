/* clock.h — a monotonic clock in seconds, for rates, ETAs and checkpoint intervals. */
#ifndef KN_CLOCK_H
#define KN_CLOCK_H

#include <time.h>

static inline double kn_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
