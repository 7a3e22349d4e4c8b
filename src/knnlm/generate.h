/* generate.h — kNN-LM text generation: token by token with the KV cache, one kNN search per generated token,
 * sampling from the interpolated distribution p(y) = λ p_kNN(y) + (1 − λ) p_LM(y) (knn.h), or from p_LM alone
 * without an index.
 *
 * A call owns all its state (the KV cache, buffers, the random generator): any number of threads may generate
 * at once on the same Gpt2, KnnIndex and Dstore (gpt2_logits and index_search are safe to share). For a given
 * seed the tokens do not depend on the number of OpenMP threads (the forward pass and our sampling are
 * thread-count independent; an exact index's distances are recomputed from the datastore's keys when
 * exact_distances is set, as eval does for Flat).
 *
 * Sampling, per token: log p(y) over the whole vocabulary, divided by the temperature τ and renormalised
 * (softmax(log p / τ)); top_k keeps the k most probable tokens, top_p then the smallest most-probable set whose
 * mass reaches top_p (ties: smaller id first); one uniform draw from splitmix64 (util/rng.h) seeded with seed
 * picks the token. τ = 0 is greedy: the interpolated argmax (knn_lm_top_token), ties to the smaller id.
 *
 * One search per token, of one query: an index whose IVF lists are memory-mapped (as dstore_index_open opens
 * them) should have index_set_prefetch_threads(index, 0) set once by its owner, or every search starts reader
 * threads (4-10 ms a token on a small index, against 0.15 ms without).
 *
 * The context window: the prompt's last n_positions tokens are prefilled; when the cache is full the window
 * slides: the cache is recomputed over the last window_keep tokens, and decoding goes on from there. */
#ifndef KN_GENERATE_H
#define KN_GENERATE_H

#include "dstore/dstore.h"
#include "index/index.h"
#include "knnlm/evaluate.h"
#include "knnlm/knn.h"
#include "model/gpt2.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int max_new_tokens;      /* stop after this many generated tokens (default 64; 0 generates nothing) */
    int32_t eos_id;          /* stop after generating this token (it is passed to the callback); -1: never */

    /* the kNN side: index NULL means the plain LM (lambda, k, knn_temperature, distance are then unused) */
    const KnnIndex *index;
    const Dstore *dstore;    /* the datastore the index was built on (values, exact distances, checks) */
    Gpt2KeyType key;         /* the query representation: the datastore's key type (default last_ffn_input) */
    int k;                   /* neighbours per token (default 8) */
    double lambda;           /* interpolation weight of p_kNN, in [0, 1] (default 0.25) */
    double knn_temperature;  /* T of exp(-d/T), > 0 (default 1) */
    KnnDistance distance;    /* how d is taken from the index's distance (default KNN_DIST_L2SQ) */
    int exact_distances;     /* recompute neighbours' distances from the datastore's keys and re-sort */
    double retrieval_gate;   /* adaptive retrieval: no search (the plain LM) for a token where the LM's largest
                                probability is >= this; 0: search every token (default) */

    /* sampling */
    double temperature;      /* τ >= 0; 0 = greedy (default 1) */
    int top_k;               /* 0 = off (default); 1 is greedy */
    double top_p;            /* in (0, 1]; 1 = off (default) */
    uint64_t seed;           /* default 0 */

    int window_keep;         /* tokens kept when the window slides, in [1, n_positions) (0: n_positions / 2) */
} GenerateOptions;

void generate_defaults(GenerateOptions *opt);

/* One generated token, as the callback sees it (valid only during the call). */
typedef struct {
    int index;               /* 0 for the first generated token */
    int32_t token;           /* the sampled token */
    /* What the case analysis (cases.h) prints, with label = the sampled token: case_write(f, &t->scored,
     * t->token, &case_opt). scored.position is the context's last token in prompt + generated (0-based);
     * scored.k is 0 without an index. */
    ScoredToken scored;
    double knn_log_prob;     /* log p_kNN(token); -inf without an index or when no neighbour has it */
    double log_prob;         /* log p(token) under the interpolated distribution (before τ, top-k, top-p) */
    const char *text;        /* the bytes of the decoded text this token completes (UTF-8, possibly ""), when
                                the options' caller gave a tokenizer to generate(); NULL otherwise */
    size_t text_len;
    int last;                /* 1 if generation stops after this token (eos or max_new_tokens) */
    double t_lm, t_search, t_sample; /* seconds spent for this token: forward + lm_head + softmax; index search +
                                        values + exact distances; interpolation + sampling */
} GeneratedToken;

/* Receives every generated token in order; a non-zero return stops the generation (a client that went away)
 * and generate() returns that value. */
typedef int (*GeneratedFn)(void *ctx, const GeneratedToken *t);

typedef enum {
    GENERATE_STOP_LENGTH,    /* max_new_tokens generated */
    GENERATE_STOP_EOS,       /* eos_id generated */
    GENERATE_STOP_CALLER,    /* the callback returned non-zero */
} GenerateStop;

typedef struct {
    int prompt_tokens;       /* as given (before any truncation to the window) */
    int generated;           /* tokens passed to the callback */
    GenerateStop stop;
    int slides;              /* times the window slid (including a prompt longer than n_positions: 0 for that) */
    int searched;            /* tokens whose neighbours were searched (with an index; fewer with a retrieval gate) */
    double lm, search, sample, total; /* seconds */
} GenerateStats;

/* Generates after prompt[0..n_prompt) (n_prompt >= 1, ids in the vocabulary). tk: when not NULL, each token
 * carries the text it adds (tokenizers' decode of prompt + generated with special tokens skipped, cut at whole
 * UTF-8 characters; the last token flushes the rest). stats may be NULL.
 * Errors: KN_EINVAL naming the option (as --max-new-tokens, --lambda, --k, --knn-temperature, --temperature,
 * --top-k, --top-p) or the bad prompt token; KN_EMISMATCH when the model, datastore and index do not belong
 * together (knn_setup_check); KN_ENOMEM; KN_EFORMAT for non-finite logits or an index id outside the datastore;
 * the callback's own non-zero value. */
int generate(const Gpt2 *model, const Tokenizer *tk, const int32_t *prompt, int n_prompt, const GenerateOptions *opt,
             GeneratedFn fn, void *ctx, GenerateStats *stats);

/* ---- streaming text ----
 * Turns token ids into text incrementally, exactly as tokenizer_decode of the whole sequence would give it
 * (the Metaspace "▁" as a space, the first token's leading one dropped, special tokens skipped), but only
 * whole UTF-8 characters at a time. generate() uses it for GeneratedToken.text; a caller can use it alone. */
typedef struct TextStream TextStream;

/* context[0..n) (may be 0) are the tokens already shown (the prompt): their text is not emitted, but decides
 * whether the first new token's "▁" is a space. */
int text_stream_create(TextStream **out, const Tokenizer *tk, const int32_t *context, int n);
void text_stream_free(TextStream *s);
/* Adds id; text and len receive the new complete bytes (owned by the stream, valid until its next call). */
int text_stream_push(TextStream *s, int32_t id, const char **text, size_t *len);
/* The bytes held back (an incomplete UTF-8 tail, if the vocabulary splits characters), emitted as they are. */
int text_stream_flush(TextStream *s, const char **text, size_t *len);

#endif
