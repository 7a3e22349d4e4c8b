/* test_overlap.c — overlap_measure (src/knnlm/overlap.c), the check behind eval's warning about text that
 * occurs in the datastore's corpus, on hand-made streams whose answers are counted by hand. */
#include "knnlm/overlap.h"
#include "util/error.h"
#include "test.h"

#include <stdlib.h>

enum { M = 10000, G = 8 };

static void test_counts(void) {
    int32_t *corpus = malloc(M * sizeof *corpus), text[64];
    CHECK(corpus != NULL);
    if (!corpus) return;
    for (int i = 0; i < M; i++) corpus[i] = (int32_t)((i * 7919L + 13) % 51200);
    OverlapReport r;
    /* 64 tokens copied from the corpus at an offset that is no multiple of G: 8 windows, all found */
    for (int i = 0; i < 64; i++) text[i] = corpus[1237 + i];
    CHECK_OK(overlap_measure(text, 64, corpus, M, G, &r));
    CHECK_EQ_INT(r.windows, 8);
    CHECK_EQ_INT(r.found, 8);
    /* the second half replaced by ids the corpus never holds (>= 51200): windows 4..7 are new */
    for (int i = 32; i < 64; i++) text[i] = 60000 + i;
    CHECK_OK(overlap_measure(text, 64, corpus, M, G, &r));
    CHECK_EQ_INT(r.windows, 8);
    CHECK_EQ_INT(r.found, 4);
    /* one token changed inside window 1: it is no longer found */
    text[10] = 70000;
    CHECK_OK(overlap_measure(text, 64, corpus, M, G, &r));
    CHECK_EQ_INT(r.found, 3);
    /* the corpus' last window counts (the rolling hash reaches position M - G) */
    for (int i = 0; i < G; i++) text[i] = corpus[M - G + i];
    CHECK_OK(overlap_measure(text, G, corpus, M, G, &r));
    CHECK_EQ_INT(r.windows, 1);
    CHECK_EQ_INT(r.found, 1);
    /* repeated windows of the text count once */
    for (int i = 0; i < 32; i++) text[i] = corpus[i % G];
    CHECK_OK(overlap_measure(text, 32, corpus, M, G, &r));
    CHECK_EQ_INT(r.windows, 1);
    CHECK_EQ_INT(r.found, 1);
    /* shorter than a window: nothing to compare */
    CHECK_OK(overlap_measure(text, G - 1, corpus, M, G, &r));
    CHECK_EQ_INT(r.windows, 0);
    CHECK_OK(overlap_measure(text, 32, corpus, G - 1, G, &r));
    CHECK_EQ_INT(r.windows, 0);
    CHECK_EQ_INT(overlap_measure(text, 32, corpus, M, 0, &r), KN_EINVAL);
    free(corpus);
}

int main(void) {
    RUN(test_counts);
    return TEST_EXIT();
}
