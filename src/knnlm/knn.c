/* knn.c — the kNN-LM arithmetic behind knn.h. */
/* No operation here traps; saying so lets GCC turn exp_nonpositive's clamp into a select and vectorise the
 * softmax's block of exponentials over the vocabulary (it ran scalar). Each element gets the same IEEE
 * operations, and the block's sum keeps its fixed order: the same bits. */
#pragma GCC optimize("no-trapping-math")
#include "knnlm/knn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* A log-sum-exp accumulated one term at a time: log(sum exp(x)) = max + log(sum). With the neighbours in
 * ascending distance the first used score is the maximum, so sum = sum exp(x_i - max) in order, exactly
 * the two-pass formula; out-of-order input (recomputed distances) stays correct through the rescaling. */
typedef struct {
    double max; /* largest term so far, -inf when none */
    double sum; /* sum of exp(term - max) */
} LogSumExp;

static const LogSumExp LSE_EMPTY = {-INFINITY, 0.0};

static void lse_push(LogSumExp *acc, double x) {
    if (x <= acc->max) {
        acc->sum += exp(x - acc->max);
    } else {
        acc->sum = acc->sum * exp(acc->max - x) + 1.0;
        acc->max = x;
    }
}

static double lse_value(const LogSumExp *acc) { return acc->sum > 0 ? acc->max + log(acc->sum) : -INFINITY; }

/* The neighbour's score -d/T, or NaN when it is not used (missing id, NaN distance, or -d/T overflowing). */
static double neighbour_score(float dist, int32_t val, double temperature, KnnDistance kind) {
    if (val < 0)
        return NAN;
    double d = dist;
    if (kind == KNN_DIST_L2)
        d = d > 0 ? sqrt(d) : 0.0; /* Faiss' ||x||^2 + ||y||^2 - 2<x,y> can come out slightly below 0 */
    double x = -d / temperature;
    return isfinite(x) ? x : NAN;
}

void knn_log_prob_prefixes(double *out, const float *dist, const int32_t *vals, int k, const int *ks, int n_ks,
                           int32_t label, double temperature, KnnDistance kind) {
    assert(temperature > 0);
    LogSumExp all = LSE_EMPTY, hit = LSE_EMPTY;
    int i = 0;
    for (int j = 0; j < n_ks; j++) {
        assert(ks[j] <= k && (j == 0 || ks[j] >= ks[j - 1]));
        for (; i < ks[j]; i++) {
            double x = neighbour_score(dist[i], vals[i], temperature, kind);
            if (isnan(x))
                continue;
            lse_push(&all, x);
            /* The label's own log-sum-exp, with its own maximum, so a label found only at a far neighbour
             * gets its true tiny probability instead of exp() underflowing to 0. */
            if (vals[i] == label)
                lse_push(&hit, x);
        }
        out[j] = hit.sum > 0 ? lse_value(&hit) - lse_value(&all) : -INFINITY;
    }
}

double knn_log_prob(const float *dist, const int32_t *vals, int k, int32_t label, double temperature,
                    KnnDistance kind) {
    double out;
    knn_log_prob_prefixes(&out, dist, vals, k, &k, 1, label, temperature, kind);
    return out;
}

/* log of the softmax denominator over the used neighbours, in neighbour order; -inf when none is used. */
static double log_normaliser(const float *dist, const int32_t *vals, int k, double temperature, KnnDistance kind,
                             int *n_used) {
    LogSumExp all = LSE_EMPTY;
    int used = 0;
    for (int i = 0; i < k; i++) {
        double x = neighbour_score(dist[i], vals[i], temperature, kind);
        if (isnan(x))
            continue;
        lse_push(&all, x);
        used++;
    }
    *n_used = used;
    return lse_value(&all);
}

int knn_weights(double *weights, const float *dist, const int32_t *vals, int k, double temperature,
                KnnDistance kind) {
    assert(temperature > 0);
    int used;
    double log_z = log_normaliser(dist, vals, k, temperature, kind, &used);
    for (int i = 0; i < k; i++) {
        double x = neighbour_score(dist[i], vals[i], temperature, kind);
        weights[i] = isnan(x) ? 0.0 : exp(x - log_z);
    }
    return used;
}

/* Groups the votes by value, keeping neighbour order inside a value so that each value's log-sum-exp is
 * pushed in the same order as in knn_log_prob (hence bit-identical). */
static int cmp_value_then_first(const void *pa, const void *pb) {
    const KnnVote *a = pa, *b = pb;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return (a->first > b->first) - (a->first < b->first);
}

static int cmp_prob_desc_then_value(const void *pa, const void *pb) {
    const KnnVote *a = pa, *b = pb;
    if (a->log_prob != b->log_prob)
        return a->log_prob > b->log_prob ? -1 : 1;
    return (a->value > b->value) - (a->value < b->value);
}

int knn_votes(KnnVote *votes, const float *dist, const int32_t *vals, int k, double temperature,
              KnnDistance kind) {
    assert(temperature > 0);
    int used;
    double log_z = log_normaliser(dist, vals, k, temperature, kind, &used);
    /* votes[] doubles as scratch: first one entry per used neighbour (its score in log_prob), then merged
     * in place into one entry per distinct value. */
    int n = 0;
    for (int i = 0; i < k; i++) {
        double x = neighbour_score(dist[i], vals[i], temperature, kind);
        if (!isnan(x))
            votes[n++] = (KnnVote){.value = vals[i], .first = i, .log_prob = x, .prob = 0};
    }
    qsort(votes, (size_t)n, sizeof *votes, cmp_value_then_first);
    int n_votes = 0;
    for (int i = 0; i < n;) {
        LogSumExp acc = LSE_EMPTY;
        int j = i;
        for (; j < n && votes[j].value == votes[i].value; j++)
            lse_push(&acc, votes[j].log_prob);
        KnnVote v = {.value = votes[i].value, .first = votes[i].first};
        v.log_prob = lse_value(&acc) - log_z;
        v.prob = exp(v.log_prob);
        votes[n_votes++] = v;
        i = j;
    }
    qsort(votes, (size_t)n_votes, sizeof *votes, cmp_prob_desc_then_value);
    return n_votes;
}

double knn_interpolate(double log_p_lm, double log_p_knn, double lambda) {
    assert(lambda >= 0 && lambda <= 1);
    /* The end points are returned as they are, not through log(0) = -inf arithmetic, so that the λ = 0 row
     * of a sweep is the LM's perplexity to the bit and the λ = 1 row the kNN's. */
    if (lambda == 0)
        return log_p_lm;
    if (lambda == 1)
        return log_p_knn;
    return knn_logaddexp(log(lambda) + log_p_knn, log1p(-lambda) + log_p_lm);
}

double knn_lm_share(double log_p_lm, double log_p_knn, double lambda) {
    assert(lambda >= 0 && lambda <= 1);
    if (lambda == 0 || log_p_knn == -INFINITY)
        return 0.0;
    if (lambda == 1)
        return 1.0;
    /* a/(a+b) = 1 / (1 + b/a) in log space: a sigmoid, which neither overflows nor divides 0 by 0. */
    double log_a = log(lambda) + log_p_knn, log_b = log1p(-lambda) + log_p_lm;
    if (log_b == -INFINITY)
        return 1.0;
    return 1.0 / (1.0 + exp(log_b - log_a));
}

/* exp(x) for x <= 0, within one ulp of libm's over the whole range (the test checks it), but written
 * without branches or calls so that the compiler vectorises it: the softmax denominator takes 51,200 of them
 * per token, and libm's exp() made lm_log_prob cost ~320 us a token, 4x more than this.
 *   x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2, so r is exact to ~2^-60)
 *   e^r by its Taylor series to r^13 (truncation error < 4e-18 for |r| <= 0.347)
 *   2^n as two factors 2^floor(n/2) · 2^(n - floor(n/2)), both normal, so subnormal results come out right.
 * NaN stays NaN; x < -746 (and -inf) gives 0. No FMA: ISO C mode compiles without contraction, so every
 * build gives the same bits. */
static inline double exp_nonpositive(double x) {
    const double log2e = 1.4426950408889634, ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
    const double shifter = 6755399441055744.0; /* 2^52 + 2^51: adding it rounds to an integer kept in the low bits */
    x = x < -746.0 ? -746.0 : x;
    double t = x * log2e + shifter;
    double n = t - shifter;
    double r = (x - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    int64_t ni = (int64_t)(bits << 13) >> 13; /* n, sign-extended from the low 51 bits */
    int64_t half = ni >> 1;
    uint64_t b1 = (uint64_t)(half + 1023) << 52, b2 = (uint64_t)(ni - half + 1023) << 52;
    double s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}

void lm_softmax_norm(LmSoftmaxNorm *out, const float *logits, int V) {
    assert(V > 0);
    float max = logits[0];
    int32_t argmax = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > max) {
            max = logits[i];
            argmax = i;
        }
    /* The exponentials are taken and summed in double (float would lose ~1e-7 relative per term, and this is
     * the denominator of every perplexity we report), in blocks: the block's exponentials in one vectorisable
     * loop, then added into 8 running sums in a fixed order, so the result does not depend on the build. */
    enum { BLOCK = 256, LANES = 8 };
    double lane[LANES] = {0}, e[BLOCK];
    const double m = max;
    int i = 0;
    for (; i + BLOCK <= V; i += BLOCK) {
        for (int j = 0; j < BLOCK; j++)
            e[j] = exp_nonpositive((double)logits[i + j] - m);
        for (int j = 0; j < BLOCK; j += LANES)
            for (int q = 0; q < LANES; q++)
                lane[q] += e[j + q];
    }
    double sum = 0;
    for (; i < V; i++)
        sum += exp_nonpositive((double)logits[i] - m);
    for (int q = 0; q < LANES; q++)
        sum += lane[q];
    out->max = max;
    out->log_sum = log(sum);
    out->argmax = argmax;
}

double lm_log_prob(const float *logits, int V, int32_t label, int32_t *argmax_out) {
    assert(label >= 0 && label < V);
    LmSoftmaxNorm norm;
    lm_softmax_norm(&norm, logits, V);
    if (argmax_out)
        *argmax_out = norm.argmax;
    return lm_norm_log_prob(&norm, logits, label);
}

int32_t knn_lm_top_token(const LmSoftmaxNorm *norm, const float *logits, const KnnVote *votes, int n_votes,
                         double lambda, double *log_p_out) {
    /* A token outside the votes has p = (1 − λ) p_LM(y) <= (1 − λ) p_LM(argmax_LM) <= p(argmax_LM), so the
     * maximum is the LM's top token or one of the votes; ties go to the smaller id, as argmax over the
     * vocabulary (the LM's top token is the first of its ties, so no other LM tie can come before it). */
    int32_t top = norm->argmax;
    double lm_top_knn = -INFINITY;
    for (int i = 0; i < n_votes; i++)
        if (votes[i].value == top)
            lm_top_knn = votes[i].log_prob;
    double best = knn_interpolate(lm_norm_log_prob(norm, logits, top), lm_top_knn, lambda);
    for (int i = 0; i < n_votes; i++) {
        double lp = knn_interpolate(lm_norm_log_prob(norm, logits, votes[i].value), votes[i].log_prob, lambda);
        if (lp > best || (lp == best && votes[i].value < top)) {
            best = lp;
            top = votes[i].value;
        }
    }
    if (log_p_out)
        *log_p_out = best;
    return top;
}
