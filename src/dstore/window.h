/* window.h — the sliding window over a token stream (SPEC.md), shared by the datastore, `ppl` and `eval`.
 *
 * A stream of N tokens x_0..x_{N-1} has N-1 entries: entry t (0 <= t <= N-2) is the model's representation at
 * position t, predicting x_{t+1}. Windows of W tokens start every S tokens: [0, W), [S, S+W), ..., and the last
 * one is [N-W, N) (or [0, N) when N <= W). The first window emits every position; each later window emits only
 * the positions that no earlier window emitted, so every entry is produced exactly once and, after the first
 * window, with at least W - S tokens of context. */
#ifndef KN_WINDOW_H
#define KN_WINDOW_H

#include <stdint.h>

typedef struct {
    int64_t begin, end;       /* the window's tokens: [begin, end) */
    int64_t emit_begin;       /* entries emitted by this window: positions [emit_begin, emit_end) */
    int64_t emit_end;
} Window;

/* KN_EINVAL unless 1 <= stride <= window. */
int window_check(int window, int stride);

/* Number of windows over a stream of n tokens (0 when n < 2: no entries). */
int64_t window_count(int64_t n, int window, int stride);

/* Window i (0 <= i < window_count). */
Window window_at(int64_t n, int window, int stride, int64_t i);

/* The first window that emits position t (0 <= t <= n-2): a resumed or sharded build starts there. */
int64_t window_of_entry(int64_t n, int window, int stride, int64_t t);

#endif
