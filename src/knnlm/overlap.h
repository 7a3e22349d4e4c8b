/* overlap.h — how much of an evaluation text also occurs, verbatim, in a datastore's corpus.
 *
 * A kNN-LM evaluated on text its datastore holds finds every next token among its neighbours: the hit rate
 * approaches 1 and the perplexity means nothing. eval warns about it. The check is cheap: the text's windows of
 * `gram` tokens starting at every gram-th position are hashed into a set (n / gram entries), and one rolling
 * hash over the corpus looks up each of its gram-token windows; a window of the text occurs in the corpus when
 * their 64-bit hashes agree (a false match has probability ~ m / 2^64). */
#ifndef KN_OVERLAP_H
#define KN_OVERLAP_H

#include <stdint.h>

typedef struct {
    int64_t windows;   /* distinct gram-token windows sampled from the text */
    int64_t found;     /* of those, the ones that occur somewhere in the corpus */
} OverlapReport;

/* Fills *report for text[0, n) against corpus[0, m), windows of gram >= 1 tokens. A text or corpus shorter than
 * gram gives 0 windows. KN_OK, or KN_ENOMEM / KN_EINVAL. */
int overlap_measure(const int32_t *text, int64_t n, const int32_t *corpus, int64_t m, int gram, OverlapReport *report);

#endif
