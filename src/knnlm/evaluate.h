/* evaluate.h — one pass of the sliding window (window.h) over a held-out token stream: for every predicted
 * token, the LM's log-probability and top token, and, given an index over a datastore, the k nearest
 * datastore entries of the token's query (the model's key representation at that position).
 *
 * The consumer (a perplexity sum, the λ/k/T sweep, the case analysis) receives the tokens in stream order, a
 * chunk at a time; what a ScoredToken points to is valid only during the call. */
#ifndef KN_EVALUATE_H
#define KN_EVALUATE_H

#include "dstore/dstore.h"
#include "index/index.h"
#include "knnlm/knn.h"
#include "model/gpt2.h"
#include "util/monitor.h"

#include <stdint.h>

typedef struct {
    int64_t position;      /* entry t of the stream: the context ends with token t; the label is token t+1 */
    int32_t label;
    double lm_log_prob;    /* log p_LM(label) */
    const float *logits;   /* [V] the LM's logits */
    LmSoftmaxNorm norm;    /* their normaliser; norm.argmax is the LM's top token */
    const float *query;    /* [D] the key representation at this position: what the index was searched with */
    int k;                 /* neighbours (0 without an index, or where the retrieval gate skipped the search) */
    const float *dist;     /* [k] distances, ascending: as the index returns them, or recomputed exactly */
    const int64_t *ids;    /* [k] datastore rows (-1: no neighbour) */
    const int32_t *vals;   /* [k] their values, the tokens that followed them (-1 for no neighbour) */
} ScoredToken;

/* Receives n consecutive scored tokens; a non-zero return stops the evaluation and is returned. */
typedef int (*ScoredFn)(void *ctx, const ScoredToken *tokens, int n);

typedef struct {
    int window, stride;        /* as the datastore's (default 1024 / 512) */
    Gpt2KeyType key;           /* the query representation: the datastore's key type */
    const KnnIndex *index;     /* NULL: LM only */
    const Dstore *dstore;      /* the datastore the index was built on (values, exact distances) */
    int k;                     /* neighbours to search */
    int exact_distances;       /* recompute each neighbour's squared L2 distance from the datastore's keys (float32
                                  upcast) instead of the index's (approximate for PQ), and re-sort by it */
    double retrieval_gate;     /* adaptive retrieval: no search for a token where the LM's largest probability is
                                  >= this (its ScoredToken has k = 0); 0: every token is searched. The queries
                                  that pass are searched LOGIT_ROWS at a time, after the logits */
} EvalOptions;

void evaluate_defaults(EvalOptions *opt);

/* That a model, an index and its datastore belong together for queries of `key` with k neighbours: KN_EINVAL
 * when dstore is NULL or k is outside [1, datastore size] (naming --k); KN_EMISMATCH when dimensions, entry
 * counts or key type disagree, or the datastore was built with other weights (the weights file's hash, computed
 * once per model, against the manifest's). What evaluate() and generate() check first. */
int knn_setup_check(const Gpt2 *model, const KnnIndex *index, const Dstore *dstore, Gpt2KeyType key, int k);

/* What follows index_search() of nq queries[nq, D] for k neighbours: every id is checked against the datastore
 * (KN_EFORMAT naming the index for one outside it: a damaged index or one built on something else); with exact,
 * each distance is recomputed from the datastore's keys (squared L2 in double, float16 keys upcast; keybuf
 * [k, D] is scratch) and each row re-sorted by it, ties by row; vals[nq, k] receives the values (-1 for an
 * empty slot). */
int knn_resolve_neighbours(const KnnIndex *index, const Dstore *ds, const float *queries, int nq, int D, int k, int exact, float *dist,
                           int64_t *ids, int32_t *vals, float *keybuf);

/* Where the time went (seconds): the forward pass, the lm_head and its softmax, the index search, the exact
 * distance recompute, and the consumer. */
typedef struct {
    double model, logits, search, exact, consumer, total;
    int64_t searched; /* tokens whose neighbours were searched (all of them without a retrieval gate) */
} EvalStats;

/* Scores tokens[0..n): every entry t (0 <= t <= n-2) once. KN_EINVAL for bad options (window larger than the
 * model's n_positions, k < 1 or above the datastore's size), KN_EMISMATCH when the model, the datastore and the
 * index do not belong together (dimensions, entry counts, key type, or a datastore built with other weights:
 * the weights file's hash, computed once per model, against the manifest's), KN_EFORMAT naming the
 * token when a log p_LM is NaN or infinite (the model's logits are not finite), KN_EINTR when stopped.
 * monitor: phase "evaluate", unit tokens. stats may be NULL. */
int evaluate(const Gpt2 *model, const int32_t *tokens, int64_t n, const EvalOptions *opt, ScoredFn fn, void *ctx,
             const KnMonitor *monitor, EvalStats *stats);

/* The LM's perplexity of tokens[0..n) (opt->index must be NULL): exp(mean -log p_LM) over the n - 1
 * predicted tokens, summed exactly (exactsum.h). */
typedef struct {
    int64_t tokens;   /* predicted tokens: n - 1 */
    double nll;       /* mean negative log-likelihood (nats) */
    double ppl;       /* exp(nll) */
} LmPerplexity;

/* evaluate() with that sum. A perplexity that is not a finite number is an error, not a result: KN_EFORMAT
 * naming the first token whose log-probability is NaN or infinite (evaluate() refuses it), or the overflow. */
int evaluate_lm_perplexity(const Gpt2 *model, const int32_t *tokens, int64_t n, const EvalOptions *opt, const KnMonitor *monitor,
                           LmPerplexity *out);

#endif
