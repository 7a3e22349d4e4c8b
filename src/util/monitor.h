/* monitor.h — how long-running library work reports progress and learns that it should stop.
 *
 * The library never prints: it calls begin() when a phase of work starts (its name, its unit, the total and
 * what was already done before, e.g. by an interrupted run), progress(ctx, done, bytes) now and then (done in
 * the phase's unit, bytes written so far or 0), end() when the phase is over, and checks *stop between units
 * of work. A command-line signal handler sets
 * *stop on SIGINT/SIGTERM; the work then finishes its unit, saves a checkpoint where it has one, and returns
 * KN_EINTR. Any field may be NULL. */
#ifndef KN_MONITOR_H
#define KN_MONITOR_H

#include <signal.h>
#include <stdint.h>

typedef struct {
    void (*begin)(void *ctx, const char *what, const char *unit, uint64_t total, uint64_t done);
    void (*progress)(void *ctx, uint64_t done, uint64_t bytes);
    void (*end)(void *ctx, uint64_t done, uint64_t bytes);
    void *ctx;
    volatile sig_atomic_t *stop;
} KnMonitor;

static inline void monitor_begin(const KnMonitor *m, const char *what, const char *unit, uint64_t total, uint64_t done) {
    if (m && m->begin) m->begin(m->ctx, what, unit, total, done);
}

static inline void monitor_end(const KnMonitor *m, uint64_t done, uint64_t bytes) {
    if (m && m->end) m->end(m->ctx, done, bytes);
}

static inline void monitor_progress(const KnMonitor *m, uint64_t done, uint64_t bytes) {
    if (m && m->progress) m->progress(m->ctx, done, bytes);
}

static inline int monitor_stopped(const KnMonitor *m) { return m && m->stop && *m->stop; }

#endif
