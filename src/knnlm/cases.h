/* cases.h — the per-token case analysis of SPEC.md: why the kNN memory helped or hurt, one JSON object per
 * predicted token, with exactly these fields:
 *   label            the true next token (text), or null for the continuation of a query's context
 *   lm, knn, lm+knn  the top token of the LM, of the kNN distribution, and of their interpolation (text)
 *   lm_probability   p_LM(label)
 *   knn_probability  p_kNN(label)
 *   knn_lm_percent   the share of the interpolated probability of the label that comes from the kNN side,
 *                    100 * λ p_kNN / p (0 when p = 0)
 *   labels, values   the neighbours' values as text and as token ids, nearest first
 *   distance         their distances (as searched: squared L2 unless --distance l2)
 *   softmax          their normalised weights exp(-d/T) / sum
 * Tokens are shown as their vocabulary strings with the Metaspace "▁" turned back into a space, so " 서울"
 * starts a word and "시" continues one. Probabilities of a null label are null. */
#ifndef KN_CASES_H
#define KN_CASES_H

#include "knnlm/evaluate.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>

typedef struct {
    const Tokenizer *tk;
    double lambda;           /* the interpolation the lm+knn and knn_lm_percent fields describe */
    double temperature;
    KnnDistance distance;
} CaseOptions;

/* Writes the object for one scored token (its first t->k neighbours) as one line to f; label overrides
 * t->label (pass t->label, or -1 for "unknown": null). */
int case_write(FILE *f, const ScoredToken *t, int32_t label, const CaseOptions *opt);

/* The same object as a cJSON tree the caller owns (cJSON_Delete), for a caller that adds fields to it (the
 * server's neighbours); NULL when out of memory. */
struct cJSON;
struct cJSON *case_json(const ScoredToken *t, int32_t label, const CaseOptions *opt);

/* The token's text as described above, into buf (truncated to cap). */
void case_token_text(const Tokenizer *tk, int32_t id, char *buf, size_t cap);

#endif
