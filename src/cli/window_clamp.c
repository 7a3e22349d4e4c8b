/* window_clamp.c — a --window larger than the model takes is clamped to n_positions, with a message. */
#include "cli/cli.h"

#include <stdio.h>

void cli_clamp_window(const char *command, int n_positions, int *window, int *stride) {
    if (*window <= n_positions) return;
    int given_window = *window, given_stride = *stride;
    /* the stride keeps its share of the window: --window 1024 --stride 512 becomes 512 and 256, so that every
     * window still gives its tokens the same share of context */
    if (*stride) {
        long long s = (long long)*stride * n_positions / *window;
        *stride = s < 1 ? 1 : (int)s;
    }
    *window = n_positions;
    if (given_stride)
        fprintf(stderr, "knnlm %s: --window %d --stride %d: the model takes at most %d tokens (n_positions); using --window %d --stride %d\n",
                command, given_window, given_stride, n_positions, *window, *stride);
    else
        fprintf(stderr, "knnlm %s: --window %d: the model takes at most %d tokens (n_positions); using --window %d\n", command, given_window,
                n_positions, *window);
}
