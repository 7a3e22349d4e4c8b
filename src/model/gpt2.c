/* gpt2.c — the forward pass (see gpt2.h). One block:
 *   ln = ln_1(x); qkv = ln @ c_attn; att = attention(qkv); x += att @ attn.c_proj
 *   ln = ln_2(x); fc = act(ln @ c_fc); x += fc @ mlp.c_proj
 * then final = ln_f(x). The activations of one call live in a Gpt2State and are reused from layer to layer. */
#include "model/gpt2.h"
#include "model/gpt2_internal.h"
#include "model/kernels.h"

#include "util/error.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct Gpt2State {
    const Gpt2 *model;
    int max_tokens;         /* T of one call at most */
    int kv_cache;           /* 1: keys/values are kept across calls */
    int cached;             /* tokens in the cache */
    int T;                  /* tokens of the last call */
    unsigned have;          /* GPT2_NEED_* bits the last call produced */
    float *x;               /* (maxT, C) residual stream */
    float *ln;              /* (maxT, C) layer-norm output; after the last block: its ln_2 output */
    float *qkv;             /* (maxT, 3C) */
    float *att;             /* (maxT, C) attention output before c_proj */
    float *fc;              /* (maxT, I) */
    float *final;           /* (maxT, C) ln_f output */
    float *kcache, *vcache; /* (L, n_positions, C) when kv_cache */
    float *scratch;         /* attention scores, ATTN_TILE * context per thread */
    int scratch_threads;
};

static const char *const key_names[] = {"last_ffn_input", "final_hidden", "last_layer_output"};

const char *gpt2_key_name(Gpt2KeyType key) { return key_names[key]; }

int gpt2_key_parse(const char *name, Gpt2KeyType *key) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, key_names[i]) == 0) {
            *key = (Gpt2KeyType)i;
            return KN_OK;
        }
    return kn_error(KN_EINVAL, "key type \"%s\" is not one of last_ffn_input, final_hidden, last_layer_output", name);
}

int gpt2_state_create(Gpt2State **out, const Gpt2 *m, int max_tokens, int kv_cache) {
    const Gpt2Config *c = &m->cfg;
    *out = NULL;
    if (max_tokens < 1 || max_tokens > c->n_positions)
        return kn_error(KN_EINVAL, "window of %d tokens: the model takes 1 to %d (n_positions)", max_tokens, c->n_positions);
    Gpt2State *s = calloc(1, sizeof *s);
    if (!s) return kn_error(KN_ENOMEM, "out of memory");
    s->model = m;
    s->max_tokens = max_tokens;
    s->kv_cache = kv_cache;
    const size_t T = (size_t)max_tokens, C = (size_t)c->n_embd, I = (size_t)c->n_inner;
    const size_t context = kv_cache ? (size_t)c->n_positions : T;
    s->scratch_threads = omp_get_max_threads() > omp_get_num_procs() ? omp_get_max_threads() : omp_get_num_procs();
    s->x = malloc(T * C * sizeof(float));
    s->ln = malloc(T * C * sizeof(float));
    s->qkv = malloc(T * 3 * C * sizeof(float));
    s->att = malloc(T * C * sizeof(float));
    s->fc = malloc(T * I * sizeof(float));
    s->final = malloc(T * C * sizeof(float));
    s->scratch = malloc((size_t)s->scratch_threads * ATTN_TILE * context * sizeof(float));
    int ok = s->x && s->ln && s->qkv && s->att && s->fc && s->final && s->scratch;
    if (ok && kv_cache) {
        size_t n = (size_t)c->n_layer * context * C;
        s->kcache = malloc(n * sizeof(float));
        s->vcache = malloc(n * sizeof(float));
        ok = s->kcache && s->vcache;
    }
    if (!ok) {
        gpt2_state_free(s);
        return kn_error(KN_ENOMEM, "out of memory for the activations of %d tokens", max_tokens);
    }
    *out = s;
    return KN_OK;
}

void gpt2_state_free(Gpt2State *s) {
    if (!s) return;
    free(s->x);
    free(s->ln);
    free(s->qkv);
    free(s->att);
    free(s->fc);
    free(s->final);
    free(s->kcache);
    free(s->vcache);
    free(s->scratch);
    free(s);
}

int gpt2_state_cached(const Gpt2State *s) { return s->cached; }
void gpt2_state_reset(Gpt2State *s) { s->cached = 0; }

static void activation_forward(Gpt2Activation act, float *x, size_t n) {
    switch (act) {
    case ACT_GELU_NEW: gelu_tanh_forward(x, n); break;
    case ACT_GELU_ERF: gelu_erf_forward(x, n); break;
    case ACT_RELU: relu_forward(x, n); break;
    }
}

/* ln_1, attention and its projection, for layer l; the residual x is updated in place. */
static void attention_block(Gpt2State *s, int l, int T, int pos0) {
    const Gpt2Config *c = &s->model->cfg;
    const Gpt2Layer *w = &s->model->layers[l];
    const int C = c->n_embd, NH = c->n_head, HS = C / NH;
    layernorm_forward(s->ln, s->x, w->ln1_w, w->ln1_b, T, C, c->ln_eps);
    matmul_forward(s->qkv, s->ln, w->qkv_w, w->qkv_b, T, C, 3 * C, 0);
    float scale = c->scale_attn_weights ? 1.0f / sqrtf((float)HS) : 1.0f;
    if (c->scale_attn_by_inverse_layer_idx) scale /= (float)(l + 1);
    int nthreads = omp_get_max_threads() < s->scratch_threads ? omp_get_max_threads() : s->scratch_threads;
    if (s->kv_cache) {
        const size_t context = (size_t)c->n_positions;
        float *kc = s->kcache + (size_t)l * context * C, *vc = s->vcache + (size_t)l * context * C;
        for (int t = 0; t < T; t++) {
            memcpy(kc + (size_t)(pos0 + t) * C, s->qkv + (size_t)t * 3 * C + C, (size_t)C * sizeof(float));
            memcpy(vc + (size_t)(pos0 + t) * C, s->qkv + (size_t)t * 3 * C + 2 * C, (size_t)C * sizeof(float));
        }
        attention_forward(s->att, C, s->qkv, 3 * C, kc, vc, C, T, pos0, NH, HS, scale, s->scratch, nthreads);
    } else {
        attention_forward(s->att, C, s->qkv, 3 * C, s->qkv + C, s->qkv + 2 * C, 3 * C, T, 0, NH, HS, scale, s->scratch,
                          nthreads);
    }
    matmul_forward(s->x, s->att, w->proj_w, w->proj_b, T, C, C, 1);
}

static void mlp_block(Gpt2State *s, int l, int T) {
    const Gpt2Config *c = &s->model->cfg;
    const Gpt2Layer *w = &s->model->layers[l];
    const int C = c->n_embd, I = c->n_inner;
    matmul_forward(s->fc, s->ln, w->fc_w, w->fc_b, T, C, I, 0);
    activation_forward(c->activation, s->fc, (size_t)T * I);
    matmul_forward(s->x, s->fc, w->fcproj_w, w->fcproj_b, T, I, C, 1);
}

int gpt2_forward(Gpt2State *s, const int32_t *ids, int T, unsigned need) {
    const Gpt2 *m = s->model;
    const Gpt2Config *c = &m->cfg;
    const int C = c->n_embd, L = c->n_layer;
    const int pos0 = s->kv_cache ? s->cached : 0;
    if (T < 1 || T > s->max_tokens) return kn_error(KN_EINVAL, "forward of %d tokens: this state takes 1 to %d", T, s->max_tokens);
    if (pos0 + T > c->n_positions)
        return kn_error(KN_EINVAL, "context of %d tokens exceeds the model's n_positions %d", pos0 + T, c->n_positions);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return kn_error(KN_EINVAL, "token id %d at position %d is outside the vocabulary [0, %d)", ids[t], t, c->vocab_size);

    encoder_forward(s->x, ids, m->wte, m->wpe, T, C, pos0);
    /* The last block's MLP is needed only for the outputs after it. */
    const int need_last_mlp = (need & (GPT2_NEED_FINAL_HIDDEN | GPT2_NEED_LAST_LAYER_OUTPUT)) != 0;
    for (int l = 0; l < L; l++) {
        attention_block(s, l, T, pos0);
        layernorm_forward(s->ln, s->x, m->layers[l].ln2_w, m->layers[l].ln2_b, T, C, c->ln_eps);
        if (l + 1 < L || need_last_mlp) mlp_block(s, l, T);
    }
    if (need & GPT2_NEED_FINAL_HIDDEN) layernorm_forward(s->final, s->x, m->lnf_w, m->lnf_b, T, C, c->ln_eps);
    if (s->kv_cache) s->cached += T;
    s->T = T;
    s->have = need;
    return KN_OK;
}

const float *gpt2_state_output(const Gpt2State *s, Gpt2KeyType key) {
    if (!(s->have & (1u << key))) return NULL;
    switch (key) {
    case KEY_LAST_FFN_INPUT: return s->ln;
    case KEY_FINAL_HIDDEN: return s->final;
    case KEY_LAST_LAYER_OUTPUT: return s->x;
    }
    return NULL;
}

void gpt2_logits(const Gpt2 *m, const float *hidden, int n, float *logits) {
    const Gpt2Config *c = &m->cfg;
    matmul_transposed_forward(logits, hidden, m->lm_head, n, c->n_embd, c->vocab_size);
}
