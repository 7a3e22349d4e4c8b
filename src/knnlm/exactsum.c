/* exactsum.c — the fixed-point accumulator behind exactsum.h. */
#include "knnlm/exactsum.h"

#include <math.h>
#include <string.h>

#define DIGIT_BITS 32
#define DIGIT_MASK 0xFFFFFFFFll
#define LOWEST_EXP (-1074) /* exponent of the smallest subnormal: the weight of bit 0 of digit 0 */

/* One addition adds less than 2^33 to a digit (two 32-bit pieces can land in the middle one), so 2^29
 * additions keep every digit below 2^62 in magnitude before the carries must be propagated. */
#define MAX_PENDING (1u << 29)

void exactsum_init(ExactSum *s) { memset(s, 0, sizeof *s); }

/* Propagates the carries so that digits 0..N-2 lie in [0, 2^32) and the top digit carries the sign. This
 * representation is unique for a given value, which is what makes exactsum_value() deterministic. */
static void normalize(ExactSum *s) {
    int64_t carry = 0;
    for (int i = 0; i < EXACTSUM_DIGITS - 1; i++) {
        int64_t v = s->digit[i] + carry;
        /* Arithmetic right shift (floor division by 2^32); GCC and Clang define >> on negative values so. */
        carry = v >> DIGIT_BITS;
        s->digit[i] = v & DIGIT_MASK;
    }
    s->digit[EXACTSUM_DIGITS - 1] += carry;
    s->pending = 0;
}

void exactsum_add(ExactSum *s, double x) {
    if (isnan(x)) {
        s->n_nan++;
        return;
    }
    if (isinf(x)) {
        if (x > 0)
            s->n_pos_inf++;
        else
            s->n_neg_inf++;
        return;
    }
    if (x == 0)
        return;
    /* x = m * 2^e with m an integer, |m| < 2^53, e >= -1074: exact because a double is a multiple of its
     * ulp, and the ulp of a normal double is 2^(E-53) where x = f * 2^E, f in [0.5, 1). */
    int E;
    frexp(x, &E);
    int e = E - 53 < LOWEST_EXP ? LOWEST_EXP : E - 53;
    double mant = ldexp(x, -e);
    int negative = mant < 0;
    uint64_t u = (uint64_t)(negative ? -mant : mant);
    int pos = e - LOWEST_EXP; /* bit position of m's bit 0 in the fixed-point number, 0..2045 */
    int idx = pos / DIGIT_BITS, sh = pos % DIGIT_BITS;
    /* Split m into its low 32 and high 21 bits before shifting, so nothing is shifted out of 64 bits. */
    uint64_t lo = (u & DIGIT_MASK) << sh, hi = (u >> DIGIT_BITS) << sh;
    int64_t p0 = (int64_t)(lo & DIGIT_MASK);
    int64_t p1 = (int64_t)(lo >> DIGIT_BITS) + (int64_t)(hi & DIGIT_MASK);
    int64_t p2 = (int64_t)(hi >> DIGIT_BITS);
    if (negative) {
        p0 = -p0;
        p1 = -p1;
        p2 = -p2;
    }
    s->digit[idx] += p0;
    s->digit[idx + 1] += p1;
    s->digit[idx + 2] += p2; /* idx + 2 <= 65 < EXACTSUM_DIGITS */
    if (++s->pending >= MAX_PENDING)
        normalize(s);
}

void exactsum_merge(ExactSum *dst, const ExactSum *src) {
    ExactSum tmp = *src;
    normalize(&tmp);
    normalize(dst);
    for (int i = 0; i < EXACTSUM_DIGITS; i++)
        dst->digit[i] += tmp.digit[i];
    normalize(dst);
    dst->n_nan += src->n_nan;
    dst->n_pos_inf += src->n_pos_inf;
    dst->n_neg_inf += src->n_neg_inf;
}

double exactsum_value(const ExactSum *s) {
    if (s->n_nan || (s->n_pos_inf && s->n_neg_inf))
        return NAN;
    if (s->n_pos_inf)
        return INFINITY;
    if (s->n_neg_inf)
        return -INFINITY;
    ExactSum t = *s;
    normalize(&t);
    /* Round the magnitude: with a negative total the low digits are positive and the top one negative, and
     * adding them up in doubles would cancel catastrophically. */
    int negative = t.digit[EXACTSUM_DIGITS - 1] < 0;
    if (negative) {
        for (int i = 0; i < EXACTSUM_DIGITS; i++)
            t.digit[i] = -t.digit[i];
        normalize(&t);
    }
    /* All digits are now non-negative; adding them from the least significant up rounds once per step on a
     * partial sum that only the last two or three digits dominate, so the result is within ~1 ulp. */
    double r = 0;
    for (int i = 0; i < EXACTSUM_DIGITS; i++)
        if (t.digit[i])
            r += ldexp((double)t.digit[i], DIGIT_BITS * i + LOWEST_EXP);
    return negative ? -r : r;
}
