/* progress.h — a one-line progress bar on stderr: done/total, rate, ETA and an optional byte count.
 *
 * It draws only when stderr is a terminal and not --quiet (at most 10 times a second); otherwise, unless quiet,
 * it writes a plain log line every `log_every_s` seconds so that a nohup'ed multi-day build leaves a trace. */
#ifndef KN_PROGRESS_H
#define KN_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;     /* "datastore" */
    const char *unit;      /* "tokens" */
    uint64_t total;        /* 0 if unknown */
    uint64_t start_done;   /* work already done before this run (a resumed build): excluded from the rate */
    double t0, last_draw, last_log;
    int tty, quiet;
    double log_every_s;
} Progress;

void progress_start(Progress *p, const char *label, const char *unit, uint64_t total, uint64_t already_done, int quiet);
/* bytes: written so far (0 to hide). */
void progress_update(Progress *p, uint64_t done, uint64_t bytes);
/* Draws the final state and ends the line. */
void progress_finish(Progress *p, uint64_t done, uint64_t bytes);

#endif
