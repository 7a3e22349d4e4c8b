/* kernels.c — see kernels.h. The matrix products go to OpenBLAS (OpenMP build: inside our parallel regions
 * it runs single-threaded, outside it uses the whole pool). */
#include "model/kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void encoder_forward(float *out, const int32_t *ids, const float *wte, const float *wpe, int T, int C, int pos0) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *te = wte + (size_t)ids[t] * C, *pe = wpe + (size_t)(pos0 + t) * C;
        float *o = out + (size_t)t * C;
        for (int i = 0; i < C; i++) o[i] = te[i] + pe[i];
    }
}

void layernorm_forward(float *out, const float *inp, const float *w, const float *b, int T, int C, float eps) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * C;
        float sum = 0.0f;
        for (int i = 0; i < C; i++) sum += x[i];
        float mean = sum / (float)C, var = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = x[i] - mean;
            var += d * d;
        }
        float rstd = 1.0f / sqrtf(var / (float)C + eps);
        for (int i = 0; i < C; i++) o[i] = (x[i] - mean) * rstd * w[i] + b[i];
    }
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int C, int OC, int accumulate) {
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
        /* start from the bias (or add it to the residual) so the product accumulates onto it in one pass */
#pragma omp parallel for schedule(static) if (T > 16)
        for (int t = 0; t < T; t++) {
            float *o = out + (size_t)t * OC;
            if (accumulate)
                for (int i = 0; i < OC; i++) o[i] += bias[i];
            else
                memcpy(o, bias, (size_t)OC * sizeof(float));
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, OC, C, 1.0f, inp, C, w, OC, beta, out, OC);
}

void matmul_transposed_forward(float *out, const float *inp, const float *w, int T, int C, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
}

void gelu_tanh_forward(float *x, size_t n) {
    const float s = 0.7978845608028654f; /* sqrt(2 / pi) */
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = s * (v + 0.044715f * v * v * v);
        u = u < -9.0f ? -9.0f : u > 9.0f ? 9.0f : u; /* tanh is +-1 to float precision beyond */
        float e = kn_expf(2.0f * u);
        x[i] = 0.5f * v * (1.0f + (e - 1.0f) / (e + 1.0f));
    }
}

void gelu_erf_forward(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void relu_forward(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* Row i of S (length nk) holds the scores of a query at absolute position p; keys after p are masked. */
static void causal_softmax_row(float *row, int p, int nk) {
    float max = -INFINITY;
    for (int j = 0; j <= p; j++) max = row[j] > max ? row[j] : max;
    float sum = 0.0f;
    for (int j = 0; j <= p; j++) {
        row[j] = kn_expf(row[j] - max);
        sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j <= p; j++) row[j] *= inv;
    for (int j = p + 1; j < nk; j++) row[j] = 0.0f;
}

void attention_forward(float *out, int ldo, const float *q, int ldq, const float *k, const float *v, int ldkv,
                       int T, int pos0, int NH, int HS, float scale, float *scratch, int nthreads) {
    const int ntiles = (T + ATTN_TILE - 1) / ATTN_TILE;
    const size_t per_thread = (size_t)ATTN_TILE * (size_t)(pos0 + T);
    /* Largest tiles first (they see the most keys), so the dynamic schedule ends evenly. */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int task = 0; task < NH * ntiles; task++) {
        const int tile = ntiles - 1 - task / NH, h = task % NH;
        float *S = scratch + (size_t)omp_get_thread_num() * per_thread;
        const int t0 = tile * ATTN_TILE, m = T - t0 < ATTN_TILE ? T - t0 : ATTN_TILE;
        const int nk = pos0 + t0 + m; /* keys visible to the tile's last query */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nk, HS, scale, q + (size_t)t0 * ldq + h * HS, ldq,
                    k + h * HS, ldkv, 0.0f, S, nk);
        for (int i = 0; i < m; i++) causal_softmax_row(S + (size_t)i * nk, pos0 + t0 + i, nk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, nk, 1.0f, S, nk, v + h * HS, ldkv, 0.0f,
                    out + (size_t)t0 * ldo + h * HS, ldo);
    }
}
