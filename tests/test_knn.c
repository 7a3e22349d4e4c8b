/* test_knn.c — the kNN-LM arithmetic (knn.h) and the exact sums (exactsum.h).
 *
 * Reference numbers marked "numpy" come from this script (numpy 1.24, float64), pasted as constants:
 *
 *   import numpy as np
 *   def knn_logp(d, v, label, T=1.0):
 *       s = -np.asarray(d, dtype=np.float64) / T; v = np.asarray(v)
 *       lse = np.logaddexp.reduce(s); m = v == label
 *       return np.logaddexp.reduce(s[m]) - lse if m.any() else -np.inf
 *   knn_logp([1,2,3], [7,7,9], 7)        # -0.09434427692615754
 *   knn_logp([1,2,3], [7,7,9], 9)        # -2.4076059644443806
 *   knn_logp([1,2,3], [7,7,9], 7, 2.0)   # -0.2061926864616279
 *   knn_logp([1,2,3], [7,7,9], 7, 0.5)   # -0.016003617456927133
 *   np.exp(-np.array([1.,2,3]) - np.logaddexp.reduce(-np.array([1.,2,3])))
 *                                        # [0.6652409557748219, 0.24472847105479767, 0.09003057317038043]
 *   np.logaddexp(np.log(0.25) - 1.0, np.log(0.75) - 2.0)                  # -1.6426259804912116
 *   0.25*np.exp(-1.0) / (0.25*np.exp(-1.0) + 0.75*np.exp(-2.0))          # 0.4753668864186718
 *   V = 51200; i = np.arange(V); logits = (((i*7919) % 1000)/50.0 - 10).astype(np.float32)
 *   x = logits.astype(np.float64); lse = x.max() + np.log(np.sum(np.exp(x - x.max())))
 *   x[[0, 1, 12345, 51199]] - lse        # -27.837395011286823, -9.457394896845905,
 *                                        # -26.737394629817096, -10.217395125727741
 *   np.argmax(logits)                    # 321
 */
#include <float.h>
#include <stdint.h>

#include "knnlm/exactsum.h"
#include "knnlm/knn.h"
#include "test.h"

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ------------------------------------------------------------------ knn.h */

static void test_duplicate_values_aggregate(void) {
    /* p(7) = (e^-1 + e^-2) / (e^-1 + e^-2 + e^-3) = 0.503214724 / 0.552991793 = 0.90996943 */
    const float d[] = {1, 2, 3};
    const int32_t v[] = {7, 7, 9};
    double lp7 = knn_log_prob(d, v, 3, 7, 1.0, KNN_DIST_L2SQ);
    CHECK_NEAR(lp7, -0.09434427692615754, 1e-15);
    CHECK_NEAR(exp(lp7), (exp(-1) + exp(-2)) / (exp(-1) + exp(-2) + exp(-3)), 1e-15);
    CHECK_NEAR(knn_log_prob(d, v, 3, 9, 1.0, KNN_DIST_L2SQ), -2.4076059644443806, 1e-15);
    CHECK(knn_log_prob(d, v, 3, 8, 1.0, KNN_DIST_L2SQ) == -INFINITY);

    double w[3];
    CHECK_EQ_INT(knn_weights(w, d, v, 3, 1.0, KNN_DIST_L2SQ), 3);
    CHECK_NEAR(w[0], 0.6652409557748219, 1e-15);
    CHECK_NEAR(w[1], 0.24472847105479767, 1e-15);
    CHECK_NEAR(w[2], 0.09003057317038043, 1e-15);

    KnnVote votes[3];
    CHECK_EQ_INT(knn_votes(votes, d, v, 3, 1.0, KNN_DIST_L2SQ), 2);
    CHECK_EQ_INT(votes[0].value, 7);
    CHECK_EQ_INT(votes[0].first, 0);
    CHECK(same_bits(votes[0].log_prob, lp7)); /* the same log-sum-exp, pushed in the same order */
    CHECK_NEAR(votes[0].prob, 0.9099694268296195, 1e-15);
    CHECK_EQ_INT(votes[1].value, 9);
    CHECK_EQ_INT(votes[1].first, 2);
    CHECK_NEAR(votes[0].prob + votes[1].prob, 1.0, 1e-15);
}

static void test_votes_ties_go_to_smaller_token(void) {
    /* Two values at the same distance: 50/50; the smaller id first, as argmax over the vocabulary. */
    const float d[] = {2, 2};
    const int32_t v[] = {40, 12};
    KnnVote votes[2];
    CHECK_EQ_INT(knn_votes(votes, d, v, 2, 1.0, KNN_DIST_L2SQ), 2);
    CHECK_EQ_INT(votes[0].value, 12);
    CHECK_EQ_INT(votes[0].first, 1);
    CHECK_NEAR(votes[0].prob, 0.5, 1e-16);
    CHECK_NEAR(votes[1].prob, 0.5, 1e-16);
}

static void test_temperature(void) {
    /* T = 2: p(7) = (e^-0.5 + e^-1) / (e^-0.5 + e^-1 + e^-1.5); T = 0.5: scores -2, -4, -6. */
    const float d[] = {1, 2, 3};
    const int32_t v[] = {7, 7, 9};
    CHECK_NEAR(knn_log_prob(d, v, 3, 7, 2.0, KNN_DIST_L2SQ), -0.2061926864616279, 1e-15);
    CHECK_NEAR(knn_log_prob(d, v, 3, 7, 0.5, KNN_DIST_L2SQ), -0.016003617456927133, 1e-15);
    CHECK_NEAR(exp(knn_log_prob(d, v, 3, 7, 2.0, KNN_DIST_L2SQ)),
               (exp(-0.5) + exp(-1)) / (exp(-0.5) + exp(-1) + exp(-1.5)), 1e-15);
    /* A very high temperature flattens the distribution to the vote share 2/3. */
    CHECK_NEAR(exp(knn_log_prob(d, v, 3, 7, 1e12, KNN_DIST_L2SQ)), 2.0 / 3.0, 1e-11);
}

static void test_squared_vs_plain_l2(void) {
    /* Squared distances 1, 4, 9 are Euclidean 1, 2, 3: KNN_DIST_L2 on them is the L2SQ case above. */
    const float d2[] = {1, 4, 9}, d[] = {1, 2, 3};
    const int32_t v[] = {7, 7, 9};
    CHECK(same_bits(knn_log_prob(d2, v, 3, 7, 1.0, KNN_DIST_L2), knn_log_prob(d, v, 3, 7, 1.0, KNN_DIST_L2SQ)));
    /* (e^-1 + e^-4) / (e^-1 + e^-4 + e^-9) on the squared ones */
    CHECK_NEAR(exp(knn_log_prob(d2, v, 3, 7, 1.0, KNN_DIST_L2SQ)),
               (exp(-1) + exp(-4)) / (exp(-1) + exp(-4) + exp(-9)), 1e-15);
    /* Faiss can return -1e-6 for an exact match; sqrt of it must not give NaN: it is distance 0. */
    const float dneg[] = {-1e-6f, 1};
    const int32_t v2[] = {3, 4};
    double lp = knn_log_prob(dneg, v2, 2, 3, 1.0, KNN_DIST_L2);
    CHECK_NEAR(lp, -log1p(exp(-1)), 1e-15); /* weights e^0 and e^-1 */
}

static void test_missing_ids_ignored(void) {
    /* Faiss pads missing results with id -1 (distance FLT_MAX or inf): the rest is the [1,2,3] case. */
    const float d[] = {1, FLT_MAX, 2, INFINITY, 3};
    const int32_t v[] = {7, -1, 7, -1, 9};
    CHECK_NEAR(knn_log_prob(d, v, 5, 7, 1.0, KNN_DIST_L2SQ), -0.09434427692615754, 1e-15);
    double w[5];
    CHECK_EQ_INT(knn_weights(w, d, v, 5, 1.0, KNN_DIST_L2SQ), 3);
    CHECK(w[1] == 0 && w[3] == 0);
    CHECK_NEAR(w[2], 0.24472847105479767, 1e-15);
    /* No neighbour at all: p_kNN = 0 everywhere, no votes, no NaN. */
    const int32_t none[] = {-1, -1};
    CHECK(knn_log_prob(d, none, 2, 7, 1.0, KNN_DIST_L2SQ) == -INFINITY);
    CHECK_EQ_INT(knn_weights(w, d, none, 2, 1.0, KNN_DIST_L2SQ), 0);
    CHECK(w[0] == 0 && w[1] == 0);
    KnnVote votes[2];
    CHECK_EQ_INT(knn_votes(votes, d, none, 2, 1.0, KNN_DIST_L2SQ), 0);
}

static void test_huge_distances(void) {
    /* Shifting every distance by 1e4 changes nothing: exp(-1e4) alone would underflow to 0. */
    const float d[] = {10000, 10001, 10002};
    const int32_t v[] = {7, 7, 9};
    CHECK_NEAR(knn_log_prob(d, v, 3, 7, 1.0, KNN_DIST_L2SQ), -0.09434427692615754, 1e-12);
    CHECK_NEAR(knn_log_prob(d, v, 3, 9, 1.0, KNN_DIST_L2SQ), -2.4076059644443806, 1e-12);
    /* A label only at a neighbour 1e6 farther: log p = -1e6 - log1p(e^-1e6) = -1e6, not -inf or NaN;
     * the near one has log p = -log1p(e^-1e6) = -0 (rounded). */
    const float far[] = {1e6f, 2e6f};
    const int32_t fv[] = {1, 2};
    CHECK_NEAR(knn_log_prob(far, fv, 2, 2, 1.0, KNN_DIST_L2SQ), -1e6, 1e-9);
    CHECK(knn_log_prob(far, fv, 2, 1, 1.0, KNN_DIST_L2SQ) == 0.0);
    double w[2];
    knn_weights(w, far, fv, 2, 1.0, KNN_DIST_L2SQ);
    CHECK(w[0] == 1.0 && w[1] == 0.0);
    KnnVote votes[2];
    CHECK_EQ_INT(knn_votes(votes, far, fv, 2, 1.0, KNN_DIST_L2SQ), 2);
    CHECK_EQ_INT(votes[0].value, 1);
    CHECK_NEAR(votes[1].log_prob, -1e6, 1e-9);
}

static void test_prefixes_and_unsorted(void) {
    const float d[] = {0.5f, 1.5f, 1.0f, 4.0f, 2.0f}; /* not sorted: recomputed distances need not be */
    const int32_t v[] = {4, 3, 4, 3, -1};
    const int ks[] = {1, 2, 3, 5};
    double out[4];
    knn_log_prob_prefixes(out, d, v, 5, ks, 4, 3, 1.0, KNN_DIST_L2SQ);
    for (int j = 0; j < 4; j++)
        CHECK(same_bits(out[j], knn_log_prob(d, v, ks[j], 3, 1.0, KNN_DIST_L2SQ)));
    /* k = 1: only value 4 -> p(3) = 0. k = 3: e^-1.5 / (e^-0.5 + e^-1.5 + e^-1). k = 5: + e^-4 (id -1 out). */
    CHECK(out[0] == -INFINITY);
    CHECK_NEAR(exp(out[2]), exp(-1.5) / (exp(-0.5) + exp(-1.5) + exp(-1.0)), 1e-15);
    CHECK_NEAR(exp(out[3]), (exp(-1.5) + exp(-4)) / (exp(-0.5) + exp(-1.5) + exp(-1.0) + exp(-4)), 1e-15);
}

static void test_interpolate(void) {
    CHECK_NEAR(knn_interpolate(-2.0, -1.0, 0.25), -1.6426259804912116, 1e-15);
    /* The end points give the operands themselves, bit for bit. */
    double lp_lm = -3.0000000000000004, lp_knn = -0.1;
    CHECK(same_bits(knn_interpolate(lp_lm, lp_knn, 0.0), lp_lm));
    CHECK(same_bits(knn_interpolate(lp_lm, lp_knn, 1.0), lp_knn));
    CHECK(knn_interpolate(lp_lm, -INFINITY, 1.0) == -INFINITY);
    CHECK(same_bits(knn_interpolate(lp_lm, -INFINITY, 0.0), lp_lm));
    /* p_kNN = 0: log((1 - λ) p_LM) */
    CHECK_NEAR(knn_interpolate(-2.0, -INFINITY, 0.5), log(0.5) - 2.0, 1e-15);
    CHECK(knn_interpolate(-INFINITY, -INFINITY, 0.5) == -INFINITY);
    CHECK_NEAR(knn_interpolate(-INFINITY, -1.0, 0.5), log(0.5) - 1.0, 1e-15);
    /* Far apart logs do not underflow: log(0.5 e^-1000 + 0.5 e^-2000) = log 0.5 - 1000. */
    CHECK_NEAR(knn_interpolate(-2000.0, -1000.0, 0.5), log(0.5) - 1000.0, 1e-12);

    CHECK_NEAR(knn_lm_share(-2.0, -1.0, 0.25), 0.4753668864186718, 1e-15);
    CHECK_NEAR(knn_lm_percent(-2.0, -1.0, 0.25), 47.53668864186718, 1e-12);
    CHECK(knn_lm_share(-2.0, -1.0, 0.0) == 0.0);
    CHECK(knn_lm_share(-2.0, -1.0, 1.0) == 1.0);
    CHECK(knn_lm_share(-2.0, -INFINITY, 0.5) == 0.0);
    CHECK(knn_lm_share(-INFINITY, -1.0, 0.5) == 1.0);
    CHECK(knn_lm_share(-INFINITY, -INFINITY, 0.5) == 0.0);
    CHECK(knn_lm_share(0.0, -3000.0, 0.5) == 0.0); /* exp(3000) overflows to inf: 1/(1+inf) = 0, no NaN */
}

static void test_lm_log_prob(void) {
    /* Hand: logits 1, 2, 3: log p(2) = 3 - log(e + e^2 + e^3) = -0.40760596444437..., p(0) = -2.4076... */
    const float l3[] = {1, 2, 3};
    int32_t am = -1;
    CHECK_NEAR(lm_log_prob(l3, 3, 2, &am), 3 - log(exp(1) + exp(2) + exp(3)), 1e-15);
    CHECK_NEAR(lm_log_prob(l3, 3, 0, NULL), -2.4076059644443806, 1e-15);
    CHECK_EQ_INT(am, 2);
    const float ties[] = {5, 5, 1};
    CHECK_NEAR(lm_log_prob(ties, 3, 1, &am), -log(2 + exp(-4)), 1e-15);
    CHECK_EQ_INT(am, 0); /* first of the largest, as torch.argmax */
    /* Large logits: nothing overflows. log p(0) = -log1p(e^-1000 + e^-2000) = -0. */
    const float big[] = {1000, 0, -1000};
    CHECK(lm_log_prob(big, 3, 0, NULL) == 0.0);
    CHECK_NEAR(lm_log_prob(big, 3, 2, NULL), -2000.0, 1e-12);

    /* numpy: a KoGPT2-sized row (V = 51,200). */
    enum { V = 51200 };
    static float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)((double)(((int64_t)i * 7919) % 1000) / 50.0 - 10);
    CHECK_NEAR(lm_log_prob(logits, V, 0, &am), -27.837395011286823, 1e-12);
    CHECK_EQ_INT(am, 321);
    CHECK_NEAR(lm_log_prob(logits, V, 1, NULL), -9.457394896845905, 1e-12);
    CHECK_NEAR(lm_log_prob(logits, V, 12345, NULL), -26.737394629817096, 1e-12);
    CHECK_NEAR(lm_log_prob(logits, V, 51199, NULL), -10.217395125727741, 1e-12);

    /* Against libm's exp() summed in long double, over rows whose logits spread from 1 to 2000 (so the
     * exponentials cover the whole double range down to subnormals and 0), and V not a multiple of the
     * block size. The vectorised exp is within 1 ulp, so the results agree to ~1e-15 relative. */
    static const double spreads[] = {1, 30, 300, 800, 2000};
    uint64_t r = 99;
    for (size_t sp = 0; sp < sizeof spreads / sizeof spreads[0]; sp++) {
        int n = V - 77;
        for (int i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            logits[i] = (float)((double)(r >> 11) / 9007199254740992.0 * spreads[sp] - spreads[sp] / 2);
        }
        float mx = logits[0];
        for (int i = 1; i < n; i++)
            mx = logits[i] > mx ? logits[i] : mx;
        long double sum = 0;
        for (int i = 0; i < n; i++)
            sum += expl((long double)logits[i] - mx);
        for (int label = 0; label < n; label += 4999) {
            double want = (double)(((long double)logits[label] - mx) - logl(sum));
            double got = lm_log_prob(logits, n, label, NULL);
            CHECK_MSG(fabs(got - want) <= 1e-14 * fmax(1, fabs(want)), "spread %g label %d: %.17g vs %.17g",
                      spreads[sp], label, got, want);
        }
    }
    /* Masked (-inf) logits are probability 0; a NaN logit gives NaN, which the sweep refuses. */
    const float masked[] = {-INFINITY, 0, -INFINITY, 0};
    CHECK_NEAR(lm_log_prob(masked, 4, 1, NULL), -log(2), 1e-16);
    CHECK(lm_log_prob(masked, 4, 0, NULL) == -INFINITY);
    const float with_nan[] = {1, NAN, 2};
    CHECK(isnan(lm_log_prob(with_nan, 3, 0, NULL)));
}

static void test_lm_top_token(void) {
    /* Hand: logits 0, 1, 2: p_LM = 0.0900, 0.2447, 0.6652 (the weights of test_duplicate_values_aggregate,
     * mirrored); one neighbour, of token 0: p_kNN(0) = 1.
     *   λ = 0.3: p(0) = 0.3 + 0.7·0.0900 = 0.3630, p(2) = 0.7·0.6652 = 0.4657 -> 2
     *   λ = 0.5: p(0) = 0.5 + 0.5·0.0900 = 0.5450, p(2) = 0.5·0.6652 = 0.3326 -> 0 */
    const float logits[] = {0, 1, 2}, d[] = {5};
    const int32_t v[] = {0};
    LmSoftmaxNorm norm;
    lm_softmax_norm(&norm, logits, 3);
    CHECK_EQ_INT(norm.argmax, 2);
    CHECK(same_bits(lm_norm_log_prob(&norm, logits, 1), lm_log_prob(logits, 3, 1, NULL)));
    KnnVote votes[1];
    int n = knn_votes(votes, d, v, 1, 1.0, KNN_DIST_L2SQ);
    double lp;
    CHECK_EQ_INT(knn_lm_top_token(&norm, logits, votes, n, 0.0, &lp), 2);
    CHECK(same_bits(lp, lm_log_prob(logits, 3, 2, NULL)));
    CHECK_EQ_INT(knn_lm_top_token(&norm, logits, votes, n, 0.3, &lp), 2);
    CHECK_NEAR(exp(lp), 0.7 * 0.6652409557748219, 1e-15);
    CHECK_EQ_INT(knn_lm_top_token(&norm, logits, votes, n, 0.5, &lp), 0);
    CHECK_NEAR(exp(lp), 0.5 + 0.5 * 0.09003057317038043, 1e-15);
    CHECK_EQ_INT(knn_lm_top_token(&norm, logits, votes, n, 1.0, &lp), 0);
    CHECK(lp == 0.0);
    /* No votes: the LM's top token. */
    CHECK_EQ_INT(knn_lm_top_token(&norm, logits, votes, 0, 0.5, NULL), 2);

    /* Against the brute-force argmax over a whole vocabulary of 500 tokens, on random rows and neighbours. */
    enum { NV = 500, NK = 32 };
    static float row[NV];
    float dist[NK];
    int32_t vals[NK];
    KnnVote vv[NK];
    uint64_t r = 7;
#define NEXT() (r = r * 6364136223846793005ull + 1442695040888963407ull, (double)(r >> 11) / 9007199254740992.0)
    for (int trial = 0; trial < 40; trial++) {
        for (int i = 0; i < NV; i++)
            row[i] = (float)(NEXT() * 8);
        float acc = 0;
        for (int i = 0; i < NK; i++) {
            acc += (float)(NEXT() * 0.5);
            dist[i] = acc;
            vals[i] = (int32_t)(NEXT() * NV);
        }
        double lambda = trial / 39.0;
        lm_softmax_norm(&norm, row, NV);
        n = knn_votes(vv, dist, vals, NK, 1.0, KNN_DIST_L2SQ);
        int32_t want = -1;
        double want_lp = -INFINITY;
        for (int y = 0; y < NV; y++) {
            double p = knn_interpolate(lm_norm_log_prob(&norm, row, y),
                                       knn_log_prob(dist, vals, NK, y, 1.0, KNN_DIST_L2SQ), lambda);
            if (p > want_lp) {
                want_lp = p;
                want = y;
            }
        }
        CHECK_EQ_INT(knn_lm_top_token(&norm, row, vv, n, lambda, &lp), want);
        CHECK(same_bits(lp, want_lp));
    }
#undef NEXT
}

/* ------------------------------------------------------------------ exactsum.h */

static void test_exactsum(void) {
    ExactSum s;
    exactsum_init(&s);
    CHECK(exactsum_value(&s) == 0.0);
    /* 1e16 + 1 - 1e16: a double sum gives 0 (1e16 + 1 rounds to 1e16); the exact sum gives 1. */
    exactsum_add(&s, 1e16);
    exactsum_add(&s, 1.0);
    exactsum_add(&s, -1e16);
    CHECK(exactsum_value(&s) == 1.0);
    /* Negative totals, subnormals and the extremes of the range. */
    exactsum_init(&s);
    exactsum_add(&s, DBL_MAX);
    exactsum_add(&s, -DBL_MAX);
    exactsum_add(&s, 5e-324);
    exactsum_add(&s, -0.75);
    CHECK(exactsum_value(&s) == -0.75); /* -0.75 + 5e-324 rounds to -0.75 */
    exactsum_init(&s);
    exactsum_add(&s, 5e-324);
    exactsum_add(&s, 5e-324);
    CHECK(exactsum_value(&s) == 1e-323);
    exactsum_init(&s);
    exactsum_add(&s, DBL_MAX);
    exactsum_add(&s, DBL_MAX);
    CHECK(exactsum_value(&s) == INFINITY); /* overflows when rounded, honestly */
    exactsum_add(&s, -DBL_MAX);
    CHECK(exactsum_value(&s) == DBL_MAX);

    /* Order independence: the same 10,000 values forwards, backwards and in two merged halves. */
    enum { N = 10000 };
    static double x[N];
    uint64_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = ldexp((double)(r >> 11) / 9007199254740992.0, (int)(r % 60) - 30) * ((r >> 7) & 1 ? 1 : -1);
    }
    ExactSum fwd, bwd, h1, h2;
    exactsum_init(&fwd), exactsum_init(&bwd), exactsum_init(&h1), exactsum_init(&h2);
    long double naive = 0;
    for (int i = 0; i < N; i++) {
        exactsum_add(&fwd, x[i]);
        exactsum_add(&bwd, x[N - 1 - i]);
        exactsum_add(i % 3 ? &h1 : &h2, x[i]);
        naive += x[i];
    }
    exactsum_merge(&h1, &h2);
    CHECK(same_bits(exactsum_value(&fwd), exactsum_value(&bwd)));
    CHECK(same_bits(exactsum_value(&fwd), exactsum_value(&h1)));
    CHECK_NEAR(exactsum_value(&fwd), (double)naive, 1e-9 * fabs((double)naive) + 1e-12);

    /* Non-finite values. */
    exactsum_init(&s);
    exactsum_add(&s, 1.0);
    exactsum_add(&s, INFINITY);
    CHECK(exactsum_value(&s) == INFINITY);
    exactsum_add(&s, -INFINITY);
    CHECK(isnan(exactsum_value(&s)));
    exactsum_init(&s);
    exactsum_add(&s, NAN);
    CHECK(isnan(exactsum_value(&s)));
}

int main(void) {
    RUN(test_duplicate_values_aggregate);
    RUN(test_votes_ties_go_to_smaller_token);
    RUN(test_temperature);
    RUN(test_squared_vs_plain_l2);
    RUN(test_missing_ids_ignored);
    RUN(test_huge_distances);
    RUN(test_prefixes_and_unsorted);
    RUN(test_interpolate);
    RUN(test_lm_log_prob);
    RUN(test_lm_top_token);
    RUN(test_exactsum);
    return TEST_EXIT();
}
