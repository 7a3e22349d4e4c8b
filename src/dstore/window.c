/* window.c — see window.h. */
#include "dstore/window.h"

#include "util/error.h"

int window_check(int window, int stride) {
    if (window < 1) return kn_error(KN_EINVAL, "--window %d: must be at least 1", window);
    if (stride < 1 || stride > window) return kn_error(KN_EINVAL, "--stride %d: must be between 1 and the window (%d)", stride, window);
    return KN_OK;
}

int64_t window_count(int64_t n, int window, int stride) {
    if (n < 2) return 0;
    if (n <= window) return 1;
    return (n - window + stride - 1) / stride + 1;
}

Window window_at(int64_t n, int window, int stride, int64_t i) {
    Window w;
    int64_t count = window_count(n, window, stride);
    if (i + 1 < count) {
        w.begin = i * stride;
        w.end = w.begin + window;
    } else {
        w.begin = n > window ? n - window : 0;
        w.end = n;
    }
    w.emit_begin = i == 0 ? 0 : (i - 1) * stride + window;
    w.emit_end = w.end < n ? w.end : n - 1;
    return w;
}

int64_t window_of_entry(int64_t n, int window, int stride, int64_t t) {
    if (t < window) return 0;
    int64_t count = window_count(n, window, stride);
    /* window i >= 1 emits [(i-1)*S + W, i*S + W) until the last one */
    int64_t i = (t - window) / stride + 1;
    return i < count ? i : count - 1;
}
