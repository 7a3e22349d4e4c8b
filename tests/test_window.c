/* test_window.c — the sliding-window plan: every entry exactly once, the SPEC.md windows, context bounds. */
#include "dstore/window.h"
#include "util/error.h"
#include "test.h"

#include <stdlib.h>

/* For many (n, W, S): windows tile the entries 0..n-2 exactly once, in order, each inside its window, with at
 * least W - S tokens of context after the first window, and window_of_entry agrees with the plan. */
static void test_every_entry_once(void) {
    int sizes[][2] = {{1024, 512}, {512, 256}, {8, 3}, {8, 8}, {5, 1}, {7, 4}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int W = sizes[s][0], S = sizes[s][1];
        for (int64_t n = 0; n < 3 * W + 7; n += (n < 2 * W ? 1 : 5)) {
            int64_t count = window_count(n, W, S), next = 0;
            int ok = 1;
            for (int64_t i = 0; i < count; i++) {
                Window w = window_at(n, W, S, i);
                ok &= w.emit_begin == next && w.emit_begin <= w.emit_end;
                ok &= w.begin >= 0 && w.end <= n && w.end - w.begin <= W && w.begin <= w.emit_begin && w.emit_end <= w.end;
                ok &= i == 0 || w.emit_begin - w.begin >= W - S;
                ok &= i + 1 < count || w.end == n;
                for (int64_t t = w.emit_begin; t < w.emit_end; t++) ok &= window_of_entry(n, W, S, t) == i;
                next = w.emit_end;
            }
            ok &= next == (n >= 2 ? n - 1 : 0);
            CHECK_MSG(ok, "n=%lld W=%d S=%d", (long long)n, W, S);
        }
    }
}

/* SPEC.md's example: windows [0,1024], [512,1536], [1024,2048], ..., [total-1024, total]. */
static void test_spec_windows(void) {
    int64_t n = 3000;
    CHECK_EQ_INT(window_count(n, 1024, 512), 5);
    Window w0 = window_at(n, 1024, 512, 0), w1 = window_at(n, 1024, 512, 1), w2 = window_at(n, 1024, 512, 2);
    Window last = window_at(n, 1024, 512, 4);
    CHECK_EQ_INT(w0.begin, 0);
    CHECK_EQ_INT(w0.end, 1024);
    CHECK_EQ_INT(w0.emit_end, 1024);
    CHECK_EQ_INT(w1.begin, 512);
    CHECK_EQ_INT(w1.emit_begin, 1024);
    CHECK_EQ_INT(w1.emit_end, 1536);
    CHECK_EQ_INT(w2.begin, 1024);
    CHECK_EQ_INT(last.begin, 3000 - 1024);
    CHECK_EQ_INT(last.end, 3000);
    CHECK_EQ_INT(last.emit_begin, 2560);
    CHECK_EQ_INT(last.emit_end, 2999); /* the last token has no next token */
    /* a stream shorter than one window */
    Window only = window_at(100, 1024, 512, 0);
    CHECK_EQ_INT(window_count(100, 1024, 512), 1);
    CHECK_EQ_INT(only.end, 100);
    CHECK_EQ_INT(only.emit_end, 99);
    CHECK_EQ_INT(window_count(1, 1024, 512), 0);
}

static void test_bad_options(void) {
    CHECK_EQ_INT(window_check(1024, 512), KN_OK);
    CHECK_EQ_INT(window_check(0, 1), KN_EINVAL);
    CHECK_EQ_INT(window_check(16, 0), KN_EINVAL);
    CHECK_EQ_INT(window_check(16, 17), KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "--stride") != NULL);
}

int main(void) {
    RUN(test_every_entry_once);
    RUN(test_spec_windows);
    RUN(test_bad_options);
    return TEST_EXIT();
}
