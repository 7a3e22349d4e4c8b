/* gpt2.c — the forward pass (see gpt2.h). One block:
 *   ln = ln_1(x); qkv = ln @ c_attn; att = attention(qkv); x += att @ attn.c_proj
 *   ln = ln_2(x); fc = act(ln @ c_fc); x += fc @ mlp.c_proj
 * then final = ln_f(x). The activations of one call live in a Gpt2State and are reused from layer to layer.
 * The bias, the activation and the residual add are done by the matrix products (gemm.h) on each output
 * tile; the keys are kept transposed per head (kernels.h), in the state or in the KV cache. */
#include "model/gpt2.h"
#include "model/gemm.h"
#include "model/gpt2_internal.h"
#include "model/kernels.h"

#include "util/error.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { PART_MATMUL, PART_ATTENTION, PART_OTHER, PART_COUNT };

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
    /* GPT2_BF16: the products' inputs in bf16, rows of C and I rounded up to even */
    uint16_t *abf;          /* (maxT, Cp) ln_1 / ln_2 / attention output */
    uint16_t *fcbf;         /* (maxT, Ip) act(c_fc), written so by the product itself */
    int ldkt;               /* row length of kt and of each layer's kcache: context padded for attention */
    float *kt;              /* (C, ldkt) this call's keys transposed per head (without a KV cache) */
    /* GPT2_BF16 without a KV cache: the attention's inputs in bf16 (kernels.h, attention_bf16_forward) */
    uint16_t *qbf;          /* (maxT, C) */
    uint16_t *ktbf;         /* (C / 2, 2 ldkt) keys, pairs of dimensions */
    uint16_t *vbf;          /* (NH, ldvbf) values, pairs of positions */
    size_t ldvbf;
    float *kcache;          /* (L, C, ldkt) when kv_cache: every layer's keys, transposed */
    float *vcache;          /* (L, n_positions, C) when kv_cache */
    float *scratch;         /* per thread: attention scores or a packed weight panel */
    size_t scratch_per_thread;
    int scratch_threads;
    int profiling;
    double prof[PART_COUNT];
    long prof_calls;
};

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
    const int context = kv_cache ? c->n_positions : max_tokens;
    /* +16: a row of 4 KB would put every key dimension of a head in the same L1 sets */
    s->ldkt = ATTN_KEYS_PADDED(context) + 16;
    s->scratch_threads = omp_get_max_threads() > omp_get_num_procs() ? omp_get_max_threads() : omp_get_num_procs();
    const size_t gemm_scratch = gemm_scratch_floats((int)(C > I ? C : I)), att_scratch = attention_scratch_floats(context);
    s->scratch_per_thread = gemm_scratch > att_scratch ? gemm_scratch : att_scratch;
    s->x = malloc(T * C * sizeof(float));
    s->ln = malloc(T * C * sizeof(float));
    s->qkv = malloc(T * 3 * C * sizeof(float));
    s->att = malloc(T * C * sizeof(float));
    s->fc = malloc(T * I * sizeof(float));
    s->final = malloc(T * C * sizeof(float));
    s->abf = malloc(T * (C + 1) * sizeof(uint16_t)); /* untouched (no RSS) unless GPT2_BF16 */
    s->fcbf = malloc(T * (I + 1) * sizeof(uint16_t));
    s->scratch = malloc((size_t)s->scratch_threads * s->scratch_per_thread * sizeof(float));
    int ok = s->x && s->ln && s->qkv && s->att && s->fc && s->final && s->abf && s->fcbf && s->scratch;
    /* zeroed: attention reads whole 64-key blocks of kt, past the last key, and multiplies what it finds */
    if (ok && kv_cache) {
        s->kcache = calloc((size_t)c->n_layer * C * (size_t)s->ldkt, sizeof(float));
        s->vcache = malloc((size_t)c->n_layer * (size_t)c->n_positions * C * sizeof(float));
        ok = s->kcache && s->vcache;
    } else if (ok) {
        /* untouched (no RSS) until used: the bf16 ones only with GPT2_BF16 */
        s->kt = calloc(C * (size_t)s->ldkt, sizeof(float));
        s->ldvbf = (size_t)ATTN_KEYS_PADDED(max_tokens) * (C / (size_t)c->n_head);
        s->qbf = malloc(T * C * sizeof(uint16_t));
        s->ktbf = calloc(C * (size_t)s->ldkt, sizeof(uint16_t));
        s->vbf = malloc((size_t)c->n_head * s->ldvbf * sizeof(uint16_t));
        ok = s->kt && s->qbf && s->ktbf && s->vbf;
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
    free(s->abf);
    free(s->fcbf);
    free(s->kt);
    free(s->qbf);
    free(s->ktbf);
    free(s->vbf);
    free(s->kcache);
    free(s->vcache);
    free(s->scratch);
    free(s);
}

int gpt2_state_cached(const Gpt2State *s) { return s->cached; }
void gpt2_state_reset(Gpt2State *s) { s->cached = 0; }

void gpt2_state_set_profiling(Gpt2State *s, int on) {
    s->profiling = on;
    memset(s->prof, 0, sizeof s->prof);
    s->prof_calls = 0;
}

Gpt2Profile gpt2_state_profile(const Gpt2State *s) {
    Gpt2Profile p = {s->prof[PART_MATMUL], s->prof[PART_ATTENTION], s->prof[PART_OTHER], s->prof_calls};
    return p;
}

/* Profiling: a part's time is added only when profiling is on; otherwise no clock is read. */
static inline double part_begin(const Gpt2State *s) { return s->profiling ? omp_get_wtime() : 0.0; }
static inline void part_end(Gpt2State *s, int part, double t0) {
    if (s->profiling) s->prof[part] += omp_get_wtime() - t0;
}

static int threads_for(const Gpt2State *s) {
    int n = omp_get_max_threads();
    return n < s->scratch_threads ? n : s->scratch_threads;
}

static inline int even(int n) { return (n + 1) / 2 * 2; }

/* out[M, n0:n0+N] (ldo) (+)= inp[M,K] @ w[:, n0:n0+N] + bias[n0:...], w [K, ldw] in fp32 or its bf16 panels wp
 * (then n0 is a multiple of GEMM_NR and the input is inp_bf [M, even(K)], or inp converted into s->abf). */
static void linear(Gpt2State *s, float *out, size_t ldo, const float *inp, const uint16_t *inp_bf, const float *w, const uint16_t *wp,
                   const float *bias, int M, int K, int ldw, int n0, int N, int mode) {
    const int nthreads = threads_for(s);
    const Gpt2Activation act = s->model->cfg.activation;
    if (wp) {
        if (!inp_bf) {
            gemm_to_bf16(s->abf, inp, (size_t)K, M, K, nthreads);
            inp_bf = s->abf;
        }
        gemm_bf16(out + n0, ldo, inp_bf, wp + (size_t)(n0 / GEMM_NR) * even(K) * GEMM_NR, bias + n0, M, K, N, mode, act, nthreads);
    } else {
        gemm_f32(out + n0, ldo, inp, (size_t)K, w + n0, (size_t)ldw, bias + n0, M, K, N, mode, act, s->scratch, nthreads);
    }
}

/* ln_1, attention and its projection for layer l; the residual x is updated in place for rows [r0, T). */
static void attention_block(Gpt2State *s, int l, int T, int pos0, int r0) {
    const Gpt2Config *c = &s->model->cfg;
    const Gpt2Layer *w = &s->model->layers[l];
    const int C = c->n_embd, NH = c->n_head, HS = C / NH, nthreads = threads_for(s);
    const int Cp = even(C);
    const uint16_t *ln_bf = w->qkv_p ? s->abf : NULL; /* GPT2_BF16: ln_1 straight to bf16 */
    double t0 = part_begin(s);
    if (ln_bf) layernorm_bf16_forward(s->abf, Cp, NULL, s->x, w->ln1_w, w->ln1_b, T, C, c->ln_eps);
    else layernorm_forward(s->ln, s->x, w->ln1_w, w->ln1_b, T, C, c->ln_eps);
    part_end(s, PART_OTHER, t0);

    t0 = part_begin(s);
    if (r0 == 0 || (w->qkv_p && C % GEMM_NR)) {
        linear(s, s->qkv, 3 * (size_t)C, s->ln, ln_bf, w->qkv_w, w->qkv_p, w->qkv_b, T, C, 3 * C, 0, 3 * C, GEMM_STORE);
    } else { /* every row's keys and values; queries only for rows r0.. */
        linear(s, s->qkv, 3 * (size_t)C, s->ln, ln_bf, w->qkv_w, w->qkv_p, w->qkv_b, T, C, 3 * C, C, 2 * C, GEMM_STORE);
        linear(s, s->qkv + (size_t)r0 * 3 * C, 3 * (size_t)C, s->ln + (size_t)r0 * C, ln_bf ? ln_bf + (size_t)r0 * Cp : NULL, w->qkv_w, w->qkv_p,
               w->qkv_b, T - r0, C, 3 * C, 0, C, GEMM_STORE);
    }
    part_end(s, PART_MATMUL, t0);

    t0 = part_begin(s);
    float scale = c->scale_attn_weights ? 1.0f / sqrtf((float)HS) : 1.0f;
    if (c->scale_attn_by_inverse_layer_idx) scale /= (float)(l + 1);
    /* GPT2_BF16: the attention's products in bf16 too, except with a KV cache (whose layout is fp32) */
    const int bf16_attention = !s->kv_cache && w->qkv_p && HS % 16 == 0;
    const float *kt = s->kt, *v = s->qkv + 2 * C;
    int ldv = 3 * C;
    if (bf16_attention) {
        gemm_to_bf16(s->qbf + (size_t)r0 * C, s->qkv + (size_t)r0 * 3 * C, 3 * (size_t)C, T - r0, C, nthreads);
        pack_keys_bf16(s->ktbf, s->ldkt, s->qkv + C, 3 * C, T, C, nthreads);
        pack_values_bf16(s->vbf, s->ldvbf, s->qkv + 2 * C, 3 * C, T, NH, HS, nthreads);
        attention_bf16_forward(s->att + (size_t)r0 * C, C, s->qbf + (size_t)r0 * C, C, s->ktbf, s->ldkt, s->vbf, s->ldvbf, T - r0, pos0 + r0, NH, HS,
                               scale, s->scratch, nthreads);
    } else if (s->kv_cache) {
        float *kc = s->kcache + (size_t)l * C * s->ldkt, *vc = s->vcache + (size_t)l * c->n_positions * C;
        transpose_keys(kc, s->ldkt, s->qkv + C, 3 * C, T, C, pos0, nthreads);
        for (int t = 0; t < T; t++) memcpy(vc + (size_t)(pos0 + t) * C, s->qkv + (size_t)t * 3 * C + 2 * C, (size_t)C * sizeof(float));
        kt = kc;
        v = vc;
        ldv = C;
    } else {
        transpose_keys(s->kt, s->ldkt, s->qkv + C, 3 * C, T, C, 0, nthreads);
    }
    if (!bf16_attention)
        attention_forward(s->att + (size_t)r0 * C, C, s->qkv + (size_t)r0 * 3 * C, 3 * C, kt, s->ldkt, v, ldv, T - r0, pos0 + r0, NH, HS, scale,
                          s->scratch, nthreads);
    part_end(s, PART_ATTENTION, t0);

    t0 = part_begin(s);
    linear(s, s->x + (size_t)r0 * C, C, s->att + (size_t)r0 * C, NULL, w->proj_w, w->proj_p, w->proj_b, T - r0, C, C, 0, C, GEMM_ACCUMULATE);
    part_end(s, PART_MATMUL, t0);
}

/* ln_2 of layer l, rows [r0, T): into s->ln (fp32), and with GPT2_BF16 into s->abf, the fp32 values then only
 * for the last layer (the key). */
static void ln2(Gpt2State *s, int l, int T, int r0) {
    const Gpt2Config *c = &s->model->cfg;
    const Gpt2Layer *w = &s->model->layers[l];
    const int C = c->n_embd;
    double t0 = part_begin(s);
    if (w->fc_p)
        layernorm_bf16_forward(s->abf, even(C), l + 1 == c->n_layer ? s->ln + (size_t)r0 * C : NULL, s->x + (size_t)r0 * C, w->ln2_w, w->ln2_b,
                               T - r0, C, c->ln_eps);
    else
        layernorm_forward(s->ln + (size_t)r0 * C, s->x + (size_t)r0 * C, w->ln2_w, w->ln2_b, T - r0, C, c->ln_eps);
    part_end(s, PART_OTHER, t0);
}

static void mlp_block(Gpt2State *s, int l, int T, int r0) {
    const Gpt2Config *c = &s->model->cfg;
    const Gpt2Layer *w = &s->model->layers[l];
    const int C = c->n_embd, I = c->n_inner, nthreads = threads_for(s);
    double t0 = part_begin(s);
    if (w->fc_p) { /* GPT2_BF16: ln_2 is in s->abf; act(c_fc) goes straight to bf16 for c_proj */
        gemm_bf16_out_bf16(s->fcbf, (size_t)even(I), s->abf, w->fc_p, w->fc_b, T - r0, C, I, GEMM_ACTIVATE, c->activation, nthreads);
        gemm_bf16(s->x + (size_t)r0 * C, C, s->fcbf, w->fcproj_p, w->fcproj_b, T - r0, I, C, GEMM_ACCUMULATE, c->activation, nthreads);
    } else {
        linear(s, s->fc, I, s->ln + (size_t)r0 * C, NULL, w->fc_w, NULL, w->fc_b, T - r0, C, I, 0, I, GEMM_ACTIVATE);
        linear(s, s->x + (size_t)r0 * C, C, s->fc, NULL, w->fcproj_w, NULL, w->fcproj_b, T - r0, I, C, 0, C, GEMM_ACCUMULATE);
    }
    part_end(s, PART_MATMUL, t0);
}

static int forward(Gpt2State *s, const int32_t *ids, int T, int r0, unsigned need) {
    const Gpt2 *m = s->model;
    const Gpt2Config *c = &m->cfg;
    const int C = c->n_embd, L = c->n_layer;
    const int pos0 = s->kv_cache ? s->cached : 0;
    if (T < 1 || T > s->max_tokens) return kn_error(KN_EINVAL, "forward of %d tokens: this state takes 1 to %d", T, s->max_tokens);
    if (r0 < 0 || r0 >= T) return kn_error(KN_EINVAL, "first row %d of a forward of %d tokens: must be in [0, %d)", r0, T, T);
    if (pos0 + T > c->n_positions)
        return kn_error(KN_EINVAL, "context of %d tokens exceeds the model's n_positions %d", pos0 + T, c->n_positions);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return kn_error(KN_EINVAL, "token id %d at position %d is outside the vocabulary [0, %d)", ids[t], t, c->vocab_size);

    double t0 = part_begin(s);
    encoder_forward(s->x, ids, m->wte, m->wpe, T, C, pos0);
    part_end(s, PART_OTHER, t0);
    /* The last block's MLP is needed only for the outputs after it. */
    const int need_last_mlp = (need & (GPT2_NEED_FINAL_HIDDEN | GPT2_NEED_LAST_LAYER_OUTPUT)) != 0;
    for (int l = 0; l < L; l++) {
        const int rows_from = l + 1 < L ? 0 : r0;
        attention_block(s, l, T, pos0, rows_from);
        ln2(s, l, T, rows_from);
        if (l + 1 < L || need_last_mlp) mlp_block(s, l, T, rows_from);
    }
    if (need & GPT2_NEED_FINAL_HIDDEN) {
        t0 = part_begin(s);
        layernorm_forward(s->final + (size_t)r0 * C, s->x + (size_t)r0 * C, m->lnf_w, m->lnf_b, T - r0, C, c->ln_eps);
        part_end(s, PART_OTHER, t0);
    }
    if (s->kv_cache) s->cached += T;
    s->T = T;
    s->have = need;
    s->prof_calls += s->profiling;
    return KN_OK;
}

int gpt2_forward(Gpt2State *s, const int32_t *ids, int T, unsigned need) { return forward(s, ids, T, 0, need); }

int gpt2_forward_rows(Gpt2State *s, const int32_t *ids, int T, int first, unsigned need) { return forward(s, ids, T, first, need); }

const float *gpt2_state_output(const Gpt2State *s, Gpt2KeyType key) {
    if (!(s->have & (1u << key))) return NULL;
    switch (key) {
    case KEY_LAST_FFN_INPUT: return s->ln;
    case KEY_FINAL_HIDDEN: return s->final;
    case KEY_LAST_LAYER_OUTPUT: return s->x;
    }
    return NULL;
}

/* A packed copy of the lm_head in *slot (fp32 panels, or bf16 ones when bf16), made by the first caller; the
 * others wait for it. The model is logically const: the copy is a cache of m->lm_head. NULL when out of memory. */
static const void *lm_head_copy(const Gpt2 *cm, void **slot, int bf16) {
    Gpt2 *m = (Gpt2 *)cm;
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (p) return p;
    pthread_mutex_lock(&m->lm_head_lock);
    p = *slot;
    if (!p) {
        const int C = m->cfg.n_embd, V = m->cfg.vocab_size, nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
        p = malloc(bf16 ? gemm_bf16_packed_size(C, V) * sizeof(uint16_t) : gemm_f32_packed_size(C, V) * sizeof(float));
        if (p) {
            if (bf16) gemm_pack_bf16(p, m->lm_head, (size_t)C, C, V, 1, nthreads);
            else gemm_pack_f32(p, m->lm_head, (size_t)C, C, V, 1, nthreads);
            __atomic_store_n(slot, p, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&m->lm_head_lock);
    return p;
}

static const float *lm_head_packed(const Gpt2 *m) { return lm_head_copy(m, &((Gpt2 *)m)->lm_head_packed, 0); }
static const uint16_t *lm_head_bf16(const Gpt2 *m) { return lm_head_copy(m, &((Gpt2 *)m)->lm_head_bf16, 1); }

/* GPT2_BF16: the hidden rows rounded to bf16, times the bf16 lm_head, accumulated in fp32 (VDPBF16PS): half
 * the bytes of the fp32 product and twice its arithmetic rate. */
static int logits_bf16(const Gpt2 *m, const float *hidden, int n, float *logits) {
    const Gpt2Config *c = &m->cfg;
    const int C = c->n_embd, Cp = (C + 1) / 2 * 2, nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const uint16_t *w = lm_head_bf16(m);
    uint16_t *a = malloc((size_t)n * Cp * sizeof(uint16_t));
    if (!w || !a) {
        free(a);
        return kn_error(KN_ENOMEM, "%s: out of memory for the bf16 lm_head (%.1f MB)", m->weights_path,
                        (double)gemm_bf16_packed_size(C, c->vocab_size) * 2 / 1e6);
    }
    gemm_to_bf16(a, hidden, (size_t)C, n, C, nthreads);
    gemm_bf16(logits, (size_t)c->vocab_size, a, w, NULL, n, C, c->vocab_size, GEMM_STORE, c->activation, nthreads);
    free(a);
    return KN_OK;
}

int gpt2_logits(const Gpt2 *m, const float *hidden, int n, float *logits) {
    const Gpt2Config *c = &m->cfg;
    if (m->precision == GPT2_BF16) return logits_bf16(m, hidden, n, logits);
    const float *w = lm_head_packed(m);
    if (!w)
        return kn_error(KN_ENOMEM, "%s: out of memory for the lm_head (%.1f MB)", m->weights_path,
                        (double)gemm_f32_packed_size(c->n_embd, c->vocab_size) * sizeof(float) / 1e6);
    gemm_f32_packed(logits, (size_t)c->vocab_size, hidden, (size_t)c->n_embd, w, n, c->n_embd, c->vocab_size,
                    omp_in_parallel() ? 1 : omp_get_max_threads());
    return KN_OK;
}
