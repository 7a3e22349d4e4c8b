/* knn.h — the kNN-LM arithmetic (Khandelwal et al. 2020): pure functions, no I/O, no allocation.
 *
 * Neighbours are given as Faiss returns them for one query: dist[k] (float, the index's L2 distance, i.e.
 * squared Euclidean) and vals[k] (int32, the datastore value = the token that followed the neighbour's
 * context), sorted by distance ascending. Every function uses the first k entries it is given, so the
 * result for k' <= k searched neighbours is the same call with k' (that is how several k are evaluated from
 * one search).
 *
 *   score_i    = -d_i / T           d_i = dist[i] (KNN_DIST_L2SQ) or sqrt(max(dist[i], 0)) (KNN_DIST_L2)
 *   weight_i   = exp(score_i) / sum_j exp(score_j)                    (softmax over the used neighbours)
 *   p_kNN(y)   = sum over i with vals[i] = y of weight_i
 *   p(y)       = λ p_kNN(y) + (1 − λ) p_LM(y)
 *
 * Used neighbours: those with vals[i] >= 0 and a finite score. Faiss marks a missing result with id -1 (its
 * distance is then FLT_MAX or inf); such an entry is ignored, and the softmax is normalised over the used
 * neighbours only. With no used neighbour p_kNN is 0 for every token.
 *
 * Everything is computed in double, in log space with a running maximum (log-sum-exp), so distances of
 * 1e4 or 1e6 neither underflow to 0 nor give NaN: log p_kNN(y) of a far neighbour is about -(d_y - d_1)/T. The
 * references (knn-transformers' knnlm.py, facebookresearch/knnlm's knnlm.py) compute the same quantities in
 * float32 and floor log p_kNN = 0 at -10000; we give the exact -inf (and perplexity inf) instead. */
#ifndef KN_KNN_H
#define KN_KNN_H

#include <math.h>
#include <stdint.h>

typedef enum {
    KNN_DIST_L2SQ = 0, /* d = the distance as Faiss' L2 indexes return it: squared Euclidean (default) */
    KNN_DIST_L2 = 1,   /* d = its square root: the true Euclidean distance */
} KnnDistance;

/* log p_kNN(label | first k neighbours) at temperature T > 0; -INFINITY when no used neighbour has value
 * label. */
double knn_log_prob(const float *dist, const int32_t *vals, int k, int32_t label, double temperature,
                    KnnDistance kind);

/* knn_log_prob for several prefix lengths in one walk over the neighbours: out[j] = log p_kNN(label) over
 * the first ks[j] neighbours. ks[n_ks] ascending, each in [0, k]. Each out[j] is bit-identical to
 * knn_log_prob(dist, vals, ks[j], ...), because both walk the neighbours in the same order with the same
 * running log-sum-exp. */
void knn_log_prob_prefixes(double *out, const float *dist, const int32_t *vals, int k, const int *ks, int n_ks,
                           int32_t label, double temperature, KnnDistance kind);

/* The normalised weight of each neighbour (the case analysis' `softmax`): weights[i] for i < k, 0 for an
 * ignored neighbour; the used ones sum to 1. Returns the number of used neighbours. */
int knn_weights(double *weights, const float *dist, const int32_t *vals, int k, double temperature,
                KnnDistance kind);

/* One distinct value of the neighbours and its aggregated kNN probability. */
typedef struct {
    int32_t value;   /* token id */
    int first;       /* index of its nearest neighbour among the k */
    double log_prob; /* log p_kNN(value); bit-identical to knn_log_prob(..., value, ...) */
    double prob;     /* exp(log_prob) */
} KnnVote;

/* The kNN distribution over the distinct values of the first k neighbours: writes up to k votes to
 * votes[k] (caller-owned), sorted by probability descending, ties by smaller token id (as argmax over the
 * vocabulary would break them). votes[0] is the kNN's top token. Returns the number of votes (0 when no
 * neighbour is used). */
int knn_votes(KnnVote *votes, const float *dist, const int32_t *vals, int k, double temperature,
              KnnDistance kind);

/* log(λ p_kNN + (1 − λ) p_LM) from the two log-probabilities, λ in [0, 1]:
 * logaddexp(log λ + log_p_knn, log(1 − λ) + log_p_lm). Returns log_p_lm itself (bit for bit) at λ = 0 and
 * log_p_knn itself at λ = 1 (-INFINITY allowed); never NaN for finite or -inf inputs. */
double knn_interpolate(double log_p_lm, double log_p_knn, double lambda);

/* The share of the interpolated probability of the label that comes from the kNN side, λ p_kNN / p, as a
 * FRACTION in [0, 1] (the case analysis' `knn_lm_percent` field is 100 × this: see knn_lm_percent). 0 when
 * λ = 0 or p_kNN = 0; 1 when λ = 1 and p_kNN > 0; 0 when p = 0 (nothing to share). */
double knn_lm_share(double log_p_lm, double log_p_knn, double lambda);

/* knn_lm_share as a percentage in [0, 100], for the `knn_lm_percent` field. */
static inline double knn_lm_percent(double log_p_lm, double log_p_knn, double lambda) {
    return 100.0 * knn_lm_share(log_p_lm, log_p_knn, lambda);
}

/* The softmax normaliser of one row of V float logits, so that every log p_LM(y) of the row is one subtraction:
 *   log p_LM(y) = (logits[y] - max) - log_sum,   log_sum = log sum_v exp(logits[v] - max)
 * The sum is in double (exp within 1 ulp of libm's, a fixed summation order: the same bits in every build);
 * -inf logits (masked tokens) count as probability 0; a NaN logit makes log_sum NaN (and so every log p,
 * which sweep_add_token rejects). */
typedef struct {
    float max;      /* the largest logit */
    double log_sum; /* log sum exp(logit - max), >= 0 */
    int32_t argmax; /* the LM's top token: the first index of the largest logit, as torch.argmax */
} LmSoftmaxNorm;

void lm_softmax_norm(LmSoftmaxNorm *out, const float *logits, int V);

/* log p_LM(y) from the row's normaliser; y in [0, V). */
static inline double lm_norm_log_prob(const LmSoftmaxNorm *norm, const float *logits, int32_t y) {
    return ((double)logits[y] - (double)norm->max) - norm->log_sum;
}

/* The LM's largest probability, p_LM(argmax): the retrieval gate's signal. */
static inline double lm_norm_max_prob(const LmSoftmaxNorm *norm) { return exp(-norm->log_sum); }

/* log p_LM(label) of one logits row (lm_softmax_norm + lm_norm_log_prob, the same bits). label in [0, V).
 * When argmax_out is not NULL it receives the LM's top token. */
double lm_log_prob(const float *logits, int V, int32_t label, int32_t *argmax_out);

/* The interpolated model's top token, argmax over the vocabulary of λ p_kNN(y) + (1 − λ) p_LM(y) (the case
 * analysis' `lm+knn`), ties to the smaller id; votes[n_votes] as knn_votes gives them (with the same k and T).
 * Exact without visiting the vocabulary: only the LM's top token and the kNN's values can win. When log_p_out
 * is not NULL it receives the winner's log p. */
int32_t knn_lm_top_token(const LmSoftmaxNorm *norm, const float *logits, const KnnVote *votes, int n_votes,
                         double lambda, double *log_p_out);

/* log(exp(a) + exp(b)) without overflow or underflow; -inf + -inf gives -inf, not NaN. */
static inline double knn_logaddexp(double a, double b) {
    if (a < b) {
        double t = a;
        a = b;
        b = t;
    }
    if (isinf(a))
        return a;
    return a + log1p(exp(b - a));
}

#endif
