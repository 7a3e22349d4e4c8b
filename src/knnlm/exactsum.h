/* exactsum.h — an exact, order-independent sum of doubles.
 *
 * Why: the perplexity sweep adds ~10^8 values of -log p into each of a few hundred sums, and evaluation runs in
 * parallel chunks that are merged afterwards. A plain (or Kahan, or pairwise) double sum depends on the order
 * of the additions, so the same evaluation split into different chunks would give perplexities that differ
 * in the last bits. ExactSum holds the sum as a fixed-point integer wide enough for every finite double
 * (2^-1074 .. 2^1024, with 64 bits of headroom), so every addition is exact: the result depends only on the
 * multiset of values added, never on their order or on how they were split into partial sums and merged.
 *
 * Cost: one frexp-like split and three integer additions per value; 576 bytes per sum.
 *
 * Infinities and NaN are counted apart: the value is +inf if any +inf was added (and no -inf or NaN), NaN if
 * a NaN or both infinities were added. */
#ifndef KN_EXACTSUM_H
#define KN_EXACTSUM_H

#include <stdint.h>

/* 32-bit digits in int64 cells: digit i weighs 2^(32 i - 1074). 68 digits = 2176 bits >= 2098 bits of the
 * finite double range + 64 bits of headroom for 2^64 additions. */
#define EXACTSUM_DIGITS 68

typedef struct {
    int64_t digit[EXACTSUM_DIGITS]; /* value = sum digit[i] * 2^(32 i - 1074); digits may exceed 32 bits
                                       between normalisations (carries are deferred) */
    uint64_t n_nan;                 /* counts of the non-finite values added */
    uint64_t n_pos_inf;
    uint64_t n_neg_inf;
    uint32_t pending;               /* additions since the last carry propagation */
} ExactSum;

/* Sets the sum to zero. A zero-filled ExactSum (calloc, = {0}) is also a valid zero. */
void exactsum_init(ExactSum *s);

/* Adds x exactly (finite x), or counts it (inf, NaN). */
void exactsum_add(ExactSum *s, double x);

/* dst += src, exactly. */
void exactsum_merge(ExactSum *dst, const ExactSum *src);

/* The sum rounded to a double (within about one ulp of the exact sum, and a deterministic function of the
 * exact sum alone); ±inf when it overflows or an infinity was added; NaN as described above. */
double exactsum_value(const ExactSum *s);

#endif
