/* kernels.c — see kernels.h. Loops are written for the compiler to vectorise (omp simd); the attention's
 * products go through gemm_f32_block's register tiles (P V through a plain loop with the same arithmetic for
 * head sizes that are not a multiple of 16 floats). No BLAS: its results depend on the thread count and the
 * CPU. */
#pragma GCC optimize("fp-contract=fast") /* a + b * c as one FMA: -std=c11 would keep them apart */
/* No operation here traps; saying so lets GCC turn the clamps of kn_expf into selects and vectorise the GELU and
 * softmax exponentials (they ran scalar: 10 % and 12 % of a forward pass). Every element gets the same IEEE
 * operations either way, and sums keep a fixed order, so the same bits on every CPU and thread count. */
#pragma GCC optimize("no-trapping-math")

#include "model/kernels.h"
#include "model/gemm.h"

#include <math.h>
#include <omp.h>
#include <string.h>

void encoder_forward(float *out, const int32_t *ids, const float *wte, const float *wpe, int T, int C, int pos0) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *te = wte + (size_t)ids[t] * C, *pe = wpe + (size_t)(pos0 + t) * C;
        float *o = out + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) o[i] = te[i] + pe[i];
    }
}

/* The mean and 1 / sqrt(variance + eps) of one row (biased variance, two passes, as torch.nn.LayerNorm). */
static inline void row_moments(const float *x, int C, float eps, float *mean_out, float *rstd_out) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < C; i++) sum += x[i];
    const float mean = sum / (float)C;
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < C; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    *mean_out = mean;
    *rstd_out = 1.0f / sqrtf(var / (float)C + eps);
}

void layernorm_forward(float *out, const float *inp, const float *w, const float *b, int T, int C, float eps) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * C;
        float mean, rstd;
        row_moments(x, C, eps, &mean, &rstd);
#pragma omp simd
        for (int i = 0; i < C; i++) o[i] = (x[i] - mean) * rstd * w[i] + b[i];
    }
}

void layernorm_bf16_forward(uint16_t *outb, int ldb, float *out, const float *inp, const float *w, const float *b, int T, int C, float eps) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        uint16_t *ob = outb + (size_t)t * ldb;
        float mean, rstd;
        row_moments(x, C, eps, &mean, &rstd);
        if (out) {
            float *o = out + (size_t)t * C;
#pragma omp simd
            for (int i = 0; i < C; i++) {
                o[i] = (x[i] - mean) * rstd * w[i] + b[i];
                ob[i] = gemm_bf16_round(o[i]);
            }
        } else {
#pragma omp simd
            for (int i = 0; i < C; i++) ob[i] = gemm_bf16_round((x[i] - mean) * rstd * w[i] + b[i]);
        }
        if (ldb > C) ob[C] = 0;
    }
}

/* Built twice, for AVX-512 and for the baseline, and chosen by the CPU at load time (not by KNNLM_ISA): the same
 * operations per element on 16 floats or 8, so the same bits (as softmax_row). */
__attribute__((target_clones("avx512f", "default"))) void activation_span(Gpt2Activation act, float *x, size_t n) {
    switch (act) {
    case ACT_GELU_NEW: {
        const float s = 0.7978845608028654f; /* sqrt(2 / pi) */
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float u = s * (v + 0.044715f * v * v * v);
            u = u < -9.0f ? -9.0f : u > 9.0f ? 9.0f : u; /* tanh is +-1 to float precision beyond */
            float e = kn_expf(2.0f * u);
            x[i] = 0.5f * v * (1.0f + (e - 1.0f) / (e + 1.0f));
        }
        break;
    }
    case ACT_GELU_ERF:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case ACT_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    }
}

void transpose_keys(float *kt, int ldkt, const float *k, int ldk, int T, int C, int pos0, int nthreads) {
    enum { B = 16 };
    const int nb = (C + B - 1) / B;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && T > 16)
    for (int cb = 0; cb < nb; cb++) {
        const int c0 = cb * B, c1 = c0 + B < C ? c0 + B : C;
        for (int t0 = 0; t0 < T; t0 += B) {
            const int t1 = t0 + B < T ? t0 + B : T;
            for (int c = c0; c < c1; c++)
                for (int t = t0; t < t1; t++) kt[(size_t)c * ldkt + pos0 + t] = k[(size_t)t * ldk + c];
        }
    }
}

/* Per thread: the tile's scores S [ATTN_TILE, padded context] in fp32, the bf16 probabilities (half as many
 * floats' room), 1 / sum per row. */
size_t attention_scratch_floats(int context) { return (size_t)ATTN_TILE * ATTN_KEYS_PADDED(context) * 3 / 2 + ATTN_TILE + 32; }

/* Scores s[0, nk) of a query at absolute position p (keys after p are masked): s becomes e^(scale (s - max))
 * up to p and 0 after it. Returns 1 / the sum, which the caller applies to the weighted values instead of
 * dividing every score. */
__attribute__((target_clones("avx512f", "default"))) static float softmax_row(float *s, int p, int nk, float scale) {
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int j = 0; j <= p; j++) max = s[j] > max ? s[j] : max; /* fmaxf would be a call */
#pragma omp simd
    for (int j = 0; j <= p; j++) s[j] = kn_expf((s[j] - max) * scale);
    /* The sum in SOFTMAX_LANES running sums (term j into lane j % SOFTMAX_LANES), then the lanes and the tail in
     * order: a fixed order whatever the vector width or the thread, and not one add's latency per term (a
     * single running sum was ~40 % of attention's time). */
    enum { SOFTMAX_LANES = 16 };
    float lane[SOFTMAX_LANES] = {0};
    int t = 0;
    for (; t + SOFTMAX_LANES <= p + 1; t += SOFTMAX_LANES)
        for (int l = 0; l < SOFTMAX_LANES; l++) lane[l] += s[t + l];
    float sum = 0.0f;
    for (int l = 0; l < SOFTMAX_LANES; l++) sum += lane[l];
    for (; t <= p; t++) sum += s[t];
    for (int j = p + 1; j < nk; j++) s[j] = 0.0f;
    return 1.0f / sum;
}

/* One head, queries [t0, t0 + m) of the call. */
static void attention_tile(float *out, int ldo, const float *q, int ldq, const float *kt, int ldkt, const float *v, int ldv, int t0, int m,
                           int pos0, int HS, float scale, float *S, float *inv) {
    const int nk = pos0 + t0 + m; /* keys visible to the tile's last query */
    const int ldS = ATTN_KEYS_PADDED(nk);
    q += (size_t)t0 * ldq;
    out += (size_t)t0 * ldo;
    /* kt's rows are padded to ldS >= nk rounded up to GEMM_NR, so whole blocks of keys can be read */
    for (int j0 = 0; j0 < nk; j0 += GEMM_NR) gemm_f32_block(S + j0, (size_t)ldS, q, (size_t)ldq, kt + j0, (size_t)ldkt, m, HS, GEMM_NR);
    for (int i = 0; i < m; i++) inv[i] = softmax_row(S + (size_t)i * ldS, pos0 + t0 + i, nk, scale);
    if (HS % 16 == 0) {
        for (int c0 = 0; c0 < HS; c0 += GEMM_NR)
            gemm_f32_block(out + c0, (size_t)ldo, S, (size_t)ldS, v + c0, (size_t)ldv, m, nk, HS - c0 < GEMM_NR ? HS - c0 : GEMM_NR);
    } else {
        /* v's rows cannot be read in whole vectors past HS: the tile's arithmetic (from 0, one FMA per key in
         * order) one row at a time */
        for (int i = 0; i < m; i++) {
            float *o = out + (size_t)i * ldo;
            const float *s = S + (size_t)i * ldS;
            for (int c = 0; c < HS; c++) o[c] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float p = s[j], *vj = v + (size_t)j * ldv;
#pragma omp simd
                for (int c = 0; c < HS; c++) o[c] = fmaf(p, vj[c], o[c]);
            }
        }
    }
    for (int i = 0; i < m; i++) {
        float *o = out + (size_t)i * ldo;
#pragma omp simd
        for (int c = 0; c < HS; c++) o[c] *= inv[i];
    }
}

void attention_forward(float *out, int ldo, const float *q, int ldq, const float *kt, int ldkt, const float *v, int ldv, int T, int pos0,
                       int NH, int HS, float scale, float *scratch, int nthreads) {
    const int ntiles = (T + ATTN_TILE - 1) / ATTN_TILE;
    const size_t per_thread = attention_scratch_floats(pos0 + T);
    /* Largest tiles first (they see the most keys), so the dynamic schedule ends evenly. */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1 && NH * ntiles > 1)
    for (int task = 0; task < NH * ntiles; task++) {
        const int tile = ntiles - 1 - task / NH, h = task % NH;
        float *S = scratch + (size_t)omp_get_thread_num() * per_thread, *inv = S + per_thread - ATTN_TILE - 16;
        const int t0 = tile * ATTN_TILE, m = T - t0 < ATTN_TILE ? T - t0 : ATTN_TILE;
        attention_tile(out + h * HS, ldo, q + h * HS, ldq, kt + (size_t)h * HS * ldkt, ldkt, v + h * HS, ldv, t0, m, pos0, HS, scale, S, inv);
    }
}

void pack_keys_bf16(uint16_t *kt, int ldkt, const float *k, int ldk, int T, int C, int nthreads) {
    enum { B = 16 };
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && T > 16)
    for (int cp = 0; cp < C / 2; cp++) {
        uint16_t *row = kt + (size_t)cp * 2 * ldkt;
        for (int j = 0; j < T; j++) {
            row[2 * j] = gemm_bf16_round(k[(size_t)j * ldk + 2 * cp]);
            row[2 * j + 1] = gemm_bf16_round(k[(size_t)j * ldk + 2 * cp + 1]);
        }
    }
}

void pack_values_bf16(uint16_t *vp, size_t ldvp, const float *v, int ldv, int T, int NH, int HS, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && T > 16)
    for (int h = 0; h < NH; h++) {
        uint16_t *dst = vp + (size_t)h * ldvp;
        for (int j = 0; j < T; j++) {
            const float *x = v + (size_t)j * ldv + h * HS;
            uint16_t *o = dst + (size_t)(j / 2) * 2 * HS + (j & 1);
            for (int c = 0; c < HS; c++) o[2 * c] = gemm_bf16_round(x[c]);
        }
        if (T & 1)
            for (int c = 0; c < HS; c++) dst[(size_t)(T / 2) * 2 * HS + 2 * c + 1] = 0;
    }
}

/* attention_tile in bf16: S = Q K^T (fp32 out), softmax in fp32, P rounded to bf16, out = P V / sum. */
static void attention_tile_bf16(float *out, int ldo, const uint16_t *q, int ldq, const uint16_t *kt, int ldkt, const uint16_t *v, int t0, int m,
                                int pos0, int HS, float scale, float *S, uint16_t *P, float *inv) {
    const int nk = pos0 + t0 + m, ldS = ATTN_KEYS_PADDED(nk), nkp = (nk + 1) / 2 * 2;
    q += (size_t)t0 * ldq;
    out += (size_t)t0 * ldo;
    for (int j0 = 0; j0 < nk; j0 += GEMM_NR) gemm_bf16_block(S + j0, (size_t)ldS, q, (size_t)ldq, kt + 2 * (size_t)j0, 2 * (size_t)ldkt, m, HS, GEMM_NR);
    for (int i = 0; i < m; i++) {
        float *s = S + (size_t)i * ldS;
        uint16_t *p = P + (size_t)i * ldS;
        const int last = pos0 + t0 + i;
        inv[i] = softmax_row(s, last, last + 1, scale);
#pragma omp simd
        for (int j = 0; j <= last; j++) p[j] = gemm_bf16_round(s[j]);
        for (int j = last + 1; j < nkp; j++) p[j] = 0;
    }
    for (int c0 = 0; c0 < HS; c0 += GEMM_NR)
        gemm_bf16_block(out + c0, (size_t)ldo, P, (size_t)ldS, v + 2 * (size_t)c0, 2 * (size_t)HS, m, nkp, HS - c0 < GEMM_NR ? HS - c0 : GEMM_NR);
    for (int i = 0; i < m; i++) {
        float *o = out + (size_t)i * ldo;
#pragma omp simd
        for (int c = 0; c < HS; c++) o[c] *= inv[i];
    }
}

void attention_bf16_forward(float *out, int ldo, const uint16_t *q, int ldq, const uint16_t *kt, int ldkt, const uint16_t *v, size_t ldv, int T,
                            int pos0, int NH, int HS, float scale, float *scratch, int nthreads) {
    const int ntiles = (T + ATTN_TILE - 1) / ATTN_TILE;
    const size_t per_thread = attention_scratch_floats(pos0 + T), s_floats = (size_t)ATTN_TILE * ATTN_KEYS_PADDED(pos0 + T);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1 && NH * ntiles > 1)
    for (int task = 0; task < NH * ntiles; task++) {
        const int tile = ntiles - 1 - task / NH, h = task % NH;
        float *S = scratch + (size_t)omp_get_thread_num() * per_thread, *inv = S + per_thread - ATTN_TILE - 16;
        uint16_t *P = (uint16_t *)(S + s_floats);
        const int t0 = tile * ATTN_TILE, m = T - t0 < ATTN_TILE ? T - t0 : ATTN_TILE;
        attention_tile_bf16(out + h * HS, ldo, q + h * HS, ldq, kt + (size_t)h * (HS / 2) * 2 * ldkt, ldkt, v + (size_t)h * ldv, t0, m, pos0, HS,
                            scale, S, P, inv);
    }
}
