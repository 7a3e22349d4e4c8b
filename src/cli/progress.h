/* progress.h — a one-line progress bar on stderr: done/total, rate, ETA and an optional byte count.
 *
 * It draws only when stderr is a terminal and not --quiet (at most 10 times a second); otherwise, unless quiet,
 * it writes a plain log line (done/total, rate, ETA) every --progress-seconds (default 30) so that a nohup'ed
 * multi-day build, a Slurm job or a CI log shows how far it is, and a last line when a phase that logged ends. */
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
    int logged;            /* log lines written for this phase (not a terminal) */
    double log_every_s;
} Progress;

/* The interval of the log lines of every bar started afterwards (--progress-seconds). */
void progress_set_log_interval(double seconds);

void progress_start(Progress *p, const char *label, const char *unit, uint64_t total, uint64_t already_done, int quiet);
/* bytes: written so far (0 to hide). */
void progress_update(Progress *p, uint64_t done, uint64_t bytes);
/* Draws the final state and ends the line. */
void progress_finish(Progress *p, uint64_t done, uint64_t bytes);

#endif
