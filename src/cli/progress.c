/* progress.c — see progress.h. */
#include "cli/progress.h"

#include "util/clock.h"

#include <stdio.h>
#include <unistd.h>

static double log_interval_s = 30;

void progress_set_log_interval(double seconds) { log_interval_s = seconds; }

static void format_duration(char *out, size_t cap, double s) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(out, cap, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 86400) snprintf(out, cap, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600) snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t % 3600 / 60, t % 60);
    else snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

static void format_bytes(char *out, size_t cap, uint64_t b) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void progress_start(Progress *p, const char *label, const char *unit, uint64_t total, uint64_t already_done, int quiet) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->start_done = already_done;
    p->t0 = p->last_draw = p->last_log = kn_seconds();
    p->quiet = quiet;
    p->tty = !quiet && isatty(STDERR_FILENO);
    p->log_every_s = log_interval_s;
    p->logged = 0;
}

static void draw(Progress *p, uint64_t done, uint64_t bytes, double now, int final) {
    double elapsed = now - p->t0;
    double rate = elapsed > 0 && done >= p->start_done ? (double)(done - p->start_done) / elapsed : 0;
    char eta[32] = "", size[32] = "", bar[32];
    if (p->total && rate > 0 && done <= p->total) format_duration(eta, sizeof eta, (double)(p->total - done) / rate);
    if (bytes) format_bytes(size, sizeof size, bytes);
    double frac = p->total ? (double)done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    int filled = (int)(frac * 24);
    for (int i = 0; i < 24; i++) bar[i] = i < filled ? '#' : '.';
    bar[24] = '\0';
    char el[32];
    format_duration(el, sizeof el, elapsed);
    if (p->tty) {
        if (p->total)
            fprintf(stderr, "\r%s [%s] %5.1f%% %llu/%llu %s, %.0f %s/s, %s elapsed%s%s%s%s\033[K", p->label, bar, 100 * frac,
                    (unsigned long long)done, (unsigned long long)p->total, p->unit, rate, p->unit, el, eta[0] ? ", ETA " : "", eta,
                    size[0] ? ", " : "", size);
        else
            fprintf(stderr, "\r%s %llu %s, %.0f %s/s, %s elapsed%s%s\033[K", p->label, (unsigned long long)done, p->unit, rate,
                    p->unit, el, size[0] ? ", " : "", size);
        if (final) fputc('\n', stderr);
    } else {
        /* one self-contained line a log reader can grep: "index add: 65536/300000 vectors (21.8%), ..." */
        char of[64] = "", pct[32] = "";
        if (p->total) {
            snprintf(of, sizeof of, "/%llu", (unsigned long long)p->total);
            snprintf(pct, sizeof pct, " (%.1f%%)", 100 * frac);
        }
        fprintf(stderr, "%s: %llu%s %s%s, %.0f %s/s, %s elapsed%s%s%s%s%s\n", p->label, (unsigned long long)done, of, p->unit, pct, rate,
                p->unit, el, eta[0] ? ", ETA " : "", eta, size[0] ? ", " : "", size, final ? ", done" : "");
    }
    fflush(stderr);
}

void progress_update(Progress *p, uint64_t done, uint64_t bytes) {
    if (p->quiet) return;
    double now = kn_seconds();
    if (p->tty && now - p->last_draw >= 0.1) {
        p->last_draw = now;
        draw(p, done, bytes, now, 0);
    } else if (!p->tty && now - p->last_log >= p->log_every_s) {
        p->last_log = now;
        p->logged++;
        draw(p, done, bytes, now, 0);
    }
}

void progress_finish(Progress *p, uint64_t done, uint64_t bytes) {
    if (p->quiet) return;
    /* in a log, a phase that wrote lines ends with one, so that its last line does not read as where it stopped */
    if (p->tty || p->logged) draw(p, done, bytes, kn_seconds(), 1);
}
