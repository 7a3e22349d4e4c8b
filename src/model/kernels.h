/* kernels.h — the layers of the GPT-2 forward pass, llm.c style: free functions whose arguments come in one
 * order everywhere (outputs, inputs, weights, dimensions). All are fp32, row-major, and parallel with OpenMP
 * where the work is large; none depends on the thread count for its result. */
#ifndef KN_KERNELS_H
#define KN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* out[T,C] = wte[ids[t]] + wpe[pos0 + t]. */
void encoder_forward(float *out, const int32_t *ids, const float *wte, const float *wpe, int T, int C, int pos0);

/* out[T,C] = (inp - mean) / sqrt(var + eps) * w + b, per row (biased variance, as torch.nn.LayerNorm). */
void layernorm_forward(float *out, const float *inp, const float *w, const float *b, int T, int C, float eps);

/* out[T,OC] = inp[T,C] @ w[C,OC] + bias[OC] (bias may be NULL); with accumulate, out += that instead
 * (the residual add folded into the matrix product). */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int C, int OC, int accumulate);

/* out[T,OC] = inp[T,C] @ w[OC,C]^T: the lm_head, whose weight is the embedding matrix. */
void matmul_transposed_forward(float *out, const float *inp, const float *w, int T, int C, int OC);

/* In place on n floats: gelu_new (tanh approximation), exact-erf gelu, relu. */
void gelu_tanh_forward(float *x, size_t n);
void gelu_erf_forward(float *x, size_t n);
void relu_forward(float *x, size_t n);

/* Causal multi-head attention for T new queries at positions pos0..pos0+T-1 over keys/values 0..pos0+T-1.
 * q: row t at q + t*ldq, head h at offset h*HS; k, v: row j (absolute position) at k + j*ldkv, likewise.
 * out: row t at out + t*ldo. scores are scaled by `scale`. scratch holds ATTN_TILE * (pos0 + T) floats per
 * thread for nthreads threads: no T x T matrix is ever materialised for all heads at once. */
#define ATTN_TILE 64
void attention_forward(float *out, int ldo, const float *q, int ldq, const float *k, const float *v, int ldkv,
                       int T, int pos0, int NH, int HS, float scale, float *scratch, int nthreads);

/* e^x with |relative error| < 2e-7 for x in [-87, 88] (clamped outside), written so that loops over it
 * vectorise; used by softmax and gelu. */
static inline float kn_expf(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;      /* ln 2 split in a part exact in float and the rest */
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

#endif
