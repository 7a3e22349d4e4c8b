/* generate.c — see generate.h. Per generated token: the lm_head over the last position's final hidden state,
 * one index search with its key, then the interpolated log-probability of every token of the vocabulary (only
 * the kNN's values differ from a shifted log p_LM), and one draw. */
#include "knnlm/generate.h"

#include "util/clock.h"
#include "util/error.h"
#include "util/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void generate_defaults(GenerateOptions *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 64;
    o->eos_id = -1;
    o->key = KEY_LAST_FFN_INPUT;
    o->k = 8;
    o->lambda = 0.25;
    o->knn_temperature = 1;
    o->distance = KNN_DIST_L2SQ;
    o->temperature = 1;
    o->top_p = 1;
}

/* ---- streaming text ---- */

struct TextStream {
    const Tokenizer *tk;
    IdVec ids;        /* [base] + the tokens whose text is not all emitted yet */
    size_t shown;     /* bytes of decode(ids) already emitted (or belonging to the base) */
    char *text;       /* the last decode of ids */
    char *piece;      /* what the last call emitted */
    size_t piece_cap;
};

/* The length of the longest prefix of s[0..n) that ends at a whole UTF-8 character. */
static size_t utf8_complete(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n; /* only continuation bytes: nothing to wait for */
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return back + 1 >= need ? n : i - 1;
}

static int stream_decode(TextStream *s) {
    free(s->text);
    s->text = NULL;
    return tokenizer_decode(s->tk, s->ids.data, s->ids.len, 1, &s->text);
}

/* Starts over from token id alone (a non-special token whose text is all out): decode([id]) is its text as a
 * first token, and every later token's text is the suffix of decode([id, ...]) that the whole decode has too. */
static int stream_rebase(TextStream *s, int32_t id) {
    s->ids.len = 0;
    int rc = idvec_reserve(&s->ids, 1);
    if (rc != KN_OK) return rc;
    s->ids.data[s->ids.len++] = id;
    if ((rc = stream_decode(s)) != KN_OK) return rc;
    s->shown = strlen(s->text);
    return KN_OK;
}

/* Copies the decode's bytes [shown, end) into piece. */
static int stream_emit(TextStream *s, size_t end, const char **text, size_t *len) {
    size_t n = end - s->shown;
    if (n + 1 > s->piece_cap) {
        char *p = realloc(s->piece, n + 1);
        if (!p) return kn_error(KN_ENOMEM, "out of memory for the generated text");
        s->piece = p;
        s->piece_cap = n + 1;
    }
    memcpy(s->piece, s->text + s->shown, n);
    s->piece[n] = '\0';
    s->shown = end;
    *text = s->piece;
    *len = n;
    return KN_OK;
}

int text_stream_create(TextStream **out, const Tokenizer *tk, const int32_t *context, int n) {
    *out = NULL;
    TextStream *s = calloc(1, sizeof *s);
    if (!s) return kn_error(KN_ENOMEM, "out of memory for a text stream");
    s->tk = tk;
    /* the last non-special token of the context decides the first new token's leading space; without one the
     * first new token is the first of the text and loses it, as in tokenizers' decode */
    int last = n - 1;
    while (last >= 0 && tokenizer_is_special(tk, context[last])) last--;
    int rc = last >= 0 ? stream_rebase(s, context[last]) : KN_OK;
    if (rc != KN_OK) {
        text_stream_free(s);
        return rc;
    }
    *out = s;
    return KN_OK;
}

void text_stream_free(TextStream *s) {
    if (!s) return;
    idvec_free(&s->ids);
    free(s->text);
    free(s->piece);
    free(s);
}

/* text_stream_push; with final, the held-back tail goes out too. */
static int stream_push(TextStream *s, int32_t id, int final, const char **text, size_t *len) {
    *text = "";
    *len = 0;
    int rc = idvec_reserve(&s->ids, 1);
    if (rc != KN_OK) return rc;
    s->ids.data[s->ids.len++] = id;
    if ((rc = stream_decode(s)) != KN_OK) {
        s->ids.len--;
        return rc;
    }
    size_t all = strlen(s->text), end = final ? all : utf8_complete(s->text, all);
    if (end > s->shown && (rc = stream_emit(s, end, text, len)) != KN_OK) return rc;
    /* everything out: the next decode need not carry the tokens before this one */
    if (end == all && !tokenizer_is_special(s->tk, id)) rc = stream_rebase(s, id);
    return rc;
}

int text_stream_push(TextStream *s, int32_t id, const char **text, size_t *len) { return stream_push(s, id, 0, text, len); }

int text_stream_flush(TextStream *s, const char **text, size_t *len) {
    *text = "";
    *len = 0;
    size_t all = s->text ? strlen(s->text) : 0;
    return all > s->shown ? stream_emit(s, all, text, len) : KN_OK;
}

/* ---- sampling ---- */

/* One candidate of the vocabulary, ranked by its interpolated log-probability (before τ), ties by smaller id: a
 * total order, so the top-k and top-p sets are well defined whatever the order the candidates come in. */
typedef struct {
    double lp;
    double w;      /* exp((lp - max lp) / τ): its unnormalised sampling weight */
    int32_t id;
} Cand;

static int cand_before(const Cand *a, const Cand *b) { return a->lp > b->lp || (a->lp == b->lp && a->id < b->id); }

/* Rearranges c[0..n) so that its best m come first, and returns m: with count > 0, m = count (top-k); else the
 * smallest m whose weights reach mass (top-p). A quickselect: O(n) expected, no sort of the whole vocabulary,
 * and, the order being total and the pivots chosen by position, the same result every run. */
static int select_top(Cand *c, int n, int count, double mass) {
    int lo = 0, hi = n;
    while (hi - lo > 1) {
        Cand pivot = c[lo + (hi - lo) / 2];
        int i = lo;
        for (int j = lo; j < hi; j++)
            if (cand_before(&c[j], &pivot)) {
                Cand t = c[i];
                c[i++] = c[j];
                c[j] = t;
            }
        for (int j = i; j < hi; j++)
            if (c[j].id == pivot.id) {
                c[j] = c[i];
                c[i] = pivot;
                break;
            }
        /* [lo, i) beat the pivot, now at i; [i + 1, hi) do not */
        double upper = 0;
        for (int j = lo; j < i; j++) upper += c[j].w;
        if (count > 0 ? i - lo >= count : upper >= mass) {
            hi = i;
        } else if (count > 0 ? i - lo + 1 == count : upper + pivot.w >= mass) {
            return i + 1;
        } else {
            count -= count > 0 ? i - lo + 1 : 0;
            mass -= upper + pivot.w;
            lo = i + 1;
        }
    }
    return hi;
}

/* lp[V]: interpolated log-probabilities; returns the sampled token. cand: scratch of V entries. */
static int32_t sample_token(const double *lp, int V, const GenerateOptions *o, Cand *cand, uint64_t *rng) {
    double max = -INFINITY;
    for (int y = 0; y < V; y++)
        if (lp[y] > max) max = lp[y];
    const double inv_t = 1.0 / o->temperature;
    double total = 0;
    for (int y = 0; y < V; y++) {
        cand[y] = (Cand){lp[y], exp((lp[y] - max) * inv_t), y};
        total += cand[y].w;
    }
    int n = V;
    if (o->top_k > 0 && o->top_k < n) {
        n = select_top(cand, n, o->top_k, 0);
        total = 0;
        for (int i = 0; i < n; i++) total += cand[i].w;
    }
    if (o->top_p < 1) {
        /* Tokens whose weight is below (1 - top_p) / n of the total hold less than 1 - top_p together, so the
         * ones above that level hold more than top_p: the nucleus is among them (a cheap first cut). */
        const double level = (1 - o->top_p) * total / n;
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (cand[i].w >= level) cand[kept++] = cand[i];
        n = select_top(cand, kept, 0, o->top_p * total);
        total = 0;
        for (int i = 0; i < n; i++) total += cand[i].w;
    }
    const double u = splitmix64_unit(rng) * total;
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += cand[i].w;
        if (u < cum) return cand[i].id;
    }
    /* rounding left u at the very end: the last candidate with any weight */
    for (int i = n - 1; i > 0; i--)
        if (cand[i].w > 0) return cand[i].id;
    return cand[0].id;
}

/* ---- generation ---- */

static int check_options(const Gpt2 *model, const int32_t *prompt, int n_prompt, const GenerateOptions *o) {
    const Gpt2Config *c = gpt2_config(model);
    if (o->max_new_tokens < 0) return kn_error(KN_EINVAL, "--max-new-tokens %d: must be 0 or more", o->max_new_tokens);
    if (!(o->temperature >= 0) || isinf(o->temperature)) return kn_error(KN_EINVAL, "--temperature %g: must be 0 (greedy) or positive", o->temperature);
    if (o->top_k < 0) return kn_error(KN_EINVAL, "--top-k %d: must be 0 (off) or positive", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1)) return kn_error(KN_EINVAL, "--top-p %g: must be in (0, 1]", o->top_p);
    if (o->window_keep < 0 || o->window_keep >= c->n_positions)
        return kn_error(KN_EINVAL, "window_keep %d: must be in [1, %d) (n_positions), or 0 for half of it", o->window_keep, c->n_positions);
    if (n_prompt < 1) return kn_error(KN_EINVAL, "the prompt gives no tokens");
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return kn_error(KN_EINVAL, "prompt token %d has id %d, outside the vocabulary [0, %d)", i, prompt[i], c->vocab_size);
    if (!(o->retrieval_gate >= 0 && o->retrieval_gate <= 1)) return kn_error(KN_EINVAL, "--retrieval-gate %g: must be from 0 to 1", o->retrieval_gate);
    if (!o->index) return KN_OK;
    if (!(o->lambda >= 0 && o->lambda <= 1)) return kn_error(KN_EINVAL, "--lambda %g: λ must be in [0, 1]", o->lambda);
    if (!(o->knn_temperature > 0) || isinf(o->knn_temperature)) return kn_error(KN_EINVAL, "--knn-temperature %g: must be positive", o->knn_temperature);
    return knn_setup_check(model, o->index, o->dstore, o->key, o->k);
}

typedef struct {
    Gpt2State *state;
    int32_t *seq;      /* prompt + generated */
    float *logits;     /* [V] */
    double *lp;        /* [V] interpolated log p */
    Cand *cand;        /* [V] */
    float *dist;       /* [k] */
    int64_t *ids;
    int32_t *vals;
    KnnVote *votes;
    float *keybuf;     /* [k, D] */
    TextStream *text;
} GenBuffers;

static void free_buffers(GenBuffers *b) {
    gpt2_state_free(b->state);
    free(b->seq);
    free(b->logits);
    free(b->lp);
    free(b->cand);
    free(b->dist);
    free(b->ids);
    free(b->vals);
    free(b->votes);
    free(b->keybuf);
    text_stream_free(b->text);
}

/* Fills the cache with seq[begin, end) and leaves the last position's outputs in the state. */
static int prefill(GenBuffers *b, int begin, int end, unsigned need) {
    gpt2_state_reset(b->state);
    return gpt2_forward_rows(b->state, b->seq + begin, end - begin, end - begin - 1, need);
}

int generate(const Gpt2 *model, const Tokenizer *tk, const int32_t *prompt, int n_prompt, const GenerateOptions *o, GeneratedFn fn, void *ctx,
             GenerateStats *stats) {
    GenerateStats st = {0};
    st.prompt_tokens = n_prompt;
    if (stats) *stats = st;
    const double t_start = kn_seconds();
    int rc = check_options(model, prompt, n_prompt, o);
    if (rc != KN_OK) return rc;
    const Gpt2Config *c = gpt2_config(model);
    const int V = c->vocab_size, D = c->n_embd, maxT = c->n_positions, k = o->index ? o->k : 0;
    const int keep = o->window_keep ? o->window_keep : maxT / 2;
    const double lambda = o->index ? o->lambda : 0;
    GenBuffers b = {0};
    rc = gpt2_state_create(&b.state, model, maxT, 1);
    b.seq = malloc(((size_t)n_prompt + (size_t)o->max_new_tokens) * sizeof *b.seq);
    b.logits = malloc((size_t)V * sizeof *b.logits);
    b.lp = malloc((size_t)V * sizeof *b.lp);
    b.cand = malloc((size_t)V * sizeof *b.cand);
    if (k) {
        b.dist = malloc((size_t)k * sizeof *b.dist);
        b.ids = malloc((size_t)k * sizeof *b.ids);
        b.vals = malloc((size_t)k * sizeof *b.vals);
        b.votes = malloc((size_t)k * sizeof *b.votes);
        b.keybuf = o->exact_distances ? malloc((size_t)k * D * sizeof *b.keybuf) : NULL;
    }
    if (rc == KN_OK && (!b.seq || !b.logits || !b.lp || !b.cand || (k && (!b.dist || !b.ids || !b.vals || !b.votes || (o->exact_distances && !b.keybuf)))))
        rc = kn_error(KN_ENOMEM, "out of memory for the generation buffers");
    if (rc == KN_OK && tk) rc = text_stream_create(&b.text, tk, prompt, n_prompt);
    if (rc != KN_OK || o->max_new_tokens == 0) {
        free_buffers(&b);
        st.total = kn_seconds() - t_start;
        if (stats) *stats = st;
        return rc;
    }
    memcpy(b.seq, prompt, (size_t)n_prompt * sizeof *b.seq);
    const unsigned need = GPT2_NEED_FINAL_HIDDEN | (k ? 1u << o->key : 0);
    int len = n_prompt;
    uint64_t rng = o->seed;
    double t = kn_seconds();
    /* a prompt longer than the window: its last maxT tokens */
    int first = len > maxT ? len - maxT : 0, last_row = len - first - 1;
    rc = prefill(&b, first, len, need);
    double t_lm = kn_seconds() - t;
    st.stop = GENERATE_STOP_LENGTH;
    for (int i = 0; rc == KN_OK && i < o->max_new_tokens; i++) {
        GeneratedToken g = {0};
        g.index = i;
        ScoredToken *s = &g.scored;
        t = kn_seconds();
        const float *hidden = gpt2_state_output(b.state, KEY_FINAL_HIDDEN) + (size_t)last_row * D;
        if ((rc = gpt2_logits(model, hidden, 1, b.logits)) != KN_OK) break;
        lm_softmax_norm(&s->norm, b.logits, V);
        if (!isfinite(s->norm.log_sum) || !isfinite(s->norm.max)) {
            rc = kn_error(KN_EFORMAT, "generated token %d: the model's logits are not finite numbers", i);
            break;
        }
        g.t_lm = t_lm + kn_seconds() - t;
        t = kn_seconds();
        s->position = len - 1;
        s->logits = b.logits;
        s->query = k ? gpt2_state_output(b.state, o->key) + (size_t)last_row * D : NULL;
        int n_votes = 0;
        if (k && !(o->retrieval_gate > 0 && lm_norm_max_prob(&s->norm) >= o->retrieval_gate)) {
            rc = index_search(o->index, 1, D, s->query, k, b.dist, b.ids);
            if (rc == KN_OK) rc = knn_resolve_neighbours(o->index, o->dstore, s->query, 1, D, k, o->exact_distances, b.dist, b.ids, b.vals, b.keybuf);
            if (rc != KN_OK) break;
            s->k = k;
            s->dist = b.dist;
            s->ids = b.ids;
            s->vals = b.vals;
            n_votes = knn_votes(b.votes, b.dist, b.vals, k, o->knn_temperature, o->distance);
            st.searched++;
        }
        g.t_search = kn_seconds() - t;
        t = kn_seconds();
        /* λ = 1 with no neighbour would leave nothing to sample from: that token falls back to the LM */
        const double lam = n_votes == 0 ? 0 : lambda;
        int32_t token;
        if (o->temperature == 0) {
            token = knn_lm_top_token(&s->norm, b.logits, b.votes, n_votes, lam, NULL);
        } else {
            /* knn_interpolate(lm, -inf, λ) for every token outside the votes, written out (the same bits) */
            const double shift = log1p(-lam);
            for (int y = 0; y < V; y++) {
                double lm = lm_norm_log_prob(&s->norm, b.logits, y);
                b.lp[y] = lam == 0 ? lm : lam == 1 ? -INFINITY : shift + lm;
            }
            for (int j = 0; j < n_votes; j++) {
                int32_t y = b.votes[j].value;
                b.lp[y] = knn_interpolate(lm_norm_log_prob(&s->norm, b.logits, y), b.votes[j].log_prob, lam);
            }
            token = sample_token(b.lp, V, o, b.cand, &rng);
        }
        g.token = s->label = token;
        s->lm_log_prob = lm_norm_log_prob(&s->norm, b.logits, token);
        g.knn_log_prob = -INFINITY;
        for (int j = 0; j < n_votes; j++)
            if (b.votes[j].value == token) g.knn_log_prob = b.votes[j].log_prob;
        g.log_prob = knn_interpolate(s->lm_log_prob, g.knn_log_prob, lam);
        g.last = token == o->eos_id || i == o->max_new_tokens - 1;
        if (b.text) {
            /* a vocabulary that splits characters could leave a tail held back: the last token takes it too */
            rc = stream_push(b.text, token, g.last, &g.text, &g.text_len);
            if (rc != KN_OK) break;
        }
        g.t_sample = kn_seconds() - t;
        st.lm += g.t_lm;
        st.search += g.t_search;
        st.sample += g.t_sample;
        st.generated++;
        b.seq[len++] = token;
        if ((rc = fn(ctx, &g)) != KN_OK) {
            st.stop = GENERATE_STOP_CALLER;
            break;
        }
        if (token == o->eos_id) {
            st.stop = GENERATE_STOP_EOS;
            break;
        }
        if (g.last) break;
        t = kn_seconds();
        if (gpt2_state_cached(b.state) == maxT) {
            /* the window is full: recompute the cache over the last `keep` tokens, the new one included */
            rc = prefill(&b, len - keep, len, need);
            last_row = keep - 1;
            st.slides++;
        } else {
            rc = gpt2_forward(b.state, &b.seq[len - 1], 1, need);
            last_row = 0;
        }
        t_lm = kn_seconds() - t;
    }
    free_buffers(&b);
    st.total = kn_seconds() - t_start;
    if (stats) *stats = st;
    return rc;
}
