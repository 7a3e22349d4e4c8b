/* analyze.h — the case analysis of one text as the server returns it (POST /v1/analyze): for every token of
 * the text, SPEC.md's 11 case fields (cases.h), the neighbours with the passage of the datastore's token stream
 * each came from, and what the viewer needs to redo the interpolation for another λ or k in the page.
 *
 * The text is analysed as `knnlm query --context` analyses it (one window: the whole text and a placeholder
 * after it, so that its continuation is scored too), so both give the same numbers. */
#ifndef KN_ANALYZE_H
#define KN_ANALYZE_H

#include "dstore/dstore.h"
#include "index/index.h"
#include "knnlm/knn.h"
#include "model/gpt2.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

/* What the server holds for its whole life; every pointer is read-only and shared by all requests. */
typedef struct {
    const Gpt2 *model;
    const Tokenizer *tk;
    const Dstore *ds;           /* NULL: the LM alone (no kNN fields, no neighbours) */
    const KnnIndex *index;      /* NULL with ds */
    const int32_t *stream;      /* the datastore's tokens.npy [stream_len], NULL when it has none (then the
                                   neighbours have no passage) */
    int64_t stream_len;
    int32_t eos_id;             /* the placeholder after the text */
    int exact_distances;        /* as `knnlm query`: always for an exact (Flat) index */
} AnalyzeModel;

typedef struct {
    int k;                  /* neighbours per token, 1..dstore size */
    double lambda;          /* [0, 1] */
    double temperature;     /* > 0 */
    int context;            /* tokens of passage shown before each neighbour's value, 0..ANALYZE_CONTEXT_MAX */
    int top;                /* the LM's top predictions listed per token (lm_top) */
} AnalyzeOptions;

enum { ANALYZE_CONTEXT_MAX = 256, ANALYZE_TOP = 5 };

void analyze_defaults(AnalyzeOptions *o);

/* Analyses text[0..len) and writes the JSON answer (malloc'd, NUL-terminated) to *json:
 *   {"tokens": [...], "lm_ppl": x, "knnlm_ppl": x, "prefix": first token's text, "next": the continuation's
 *    case (label null), "k", "lambda", "temperature", "context", "distance": "l2sq"}
 * Each element of tokens: the 11 case fields, then "label_id" (the label's token id, -1 for next),
 *   "neighbors": [{"id": datastore row, "distance", "value": its token's text, "context": the `context` tokens
 *                  of the stream before the value, as text (null without tokens.npy)}],
 *   "value_lm_probability": p_LM of each neighbour's value (with lm_top, the interpolated top is exact),
 *   "lm_top": [{"token", "id", "p"}] the LM's ANALYZE_TOP most probable tokens.
 * KN_EINVAL (a message for the client) for an empty text, one that gives fewer than one token or more than the
 * model's n_positions - 1, or a bad option; other codes for failures of ours. */
int analyze_text(const AnalyzeModel *m, const char *text, size_t len, const AnalyzeOptions *o, char **json);

/* The text of stream tokens [begin, end) (clamped to the stream), as the tokenizer decodes them; NULL when out of
 * memory. The caller frees it. */
char *analyze_passage(const AnalyzeModel *m, int64_t begin, int64_t end);

#endif
