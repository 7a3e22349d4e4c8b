/* kernels.h — the layers of the GPT-2 forward pass, llm.c style: free functions whose arguments come in one
 * order everywhere (outputs, inputs, weights, dimensions). All are fp32, row-major, and parallel with OpenMP
 * where the work is large; none depends on the thread count for its result. The matrix products are in
 * gemm.h. */
#ifndef KN_KERNELS_H
#define KN_KERNELS_H

#include "model/config.h"

#include <stddef.h>
#include <stdint.h>

/* out[T,C] = wte[ids[t]] + wpe[pos0 + t]. */
void encoder_forward(float *out, const int32_t *ids, const float *wte, const float *wpe, int T, int C, int pos0);

/* out[T,C] = (inp - mean) / sqrt(var + eps) * w + b, per row (biased variance, as torch.nn.LayerNorm). */
void layernorm_forward(float *out, const float *inp, const float *w, const float *b, int T, int C, float eps);

/* layernorm_forward rounded to bf16 into outb [T, ldb] (ldb >= C rounded up to even; a pad column is zeroed),
 * for a bf16 product's input; also the fp32 values into out unless it is NULL. */
void layernorm_bf16_forward(uint16_t *outb, int ldb, float *out, const float *inp, const float *w, const float *b, int T, int C, float eps);

/* In place on n floats, in the calling thread (vectorised): gelu_new (tanh approximation), exact-erf gelu or
 * relu as act says. The matrix products apply it to each output tile. */
void activation_span(Gpt2Activation act, float *x, size_t n);

/* Keys transposed per head, as attention_forward reads them: rows [0, T) of k (row t at k + t*ldk, C floats)
 * become columns [pos0, pos0 + T) of kt [C, ldkt] (dimension c of key j at kt[c * ldkt + j]). */
void transpose_keys(float *kt, int ldkt, const float *k, int ldk, int T, int C, int pos0, int nthreads);

/* Causal multi-head attention for T queries at positions pos0..pos0+T-1 over keys/values 0..pos0+T-1.
 * q: row t at q + t*ldq, head h at offset h*HS. kt: transpose_keys' layout; every row must be readable up to
 * column ATTN_KEYS_PADDED(pos0 + T). v: row j (absolute position) at v + j*ldv, head h at h*HS. out: row t at
 * out + t*ldo. Scores are scaled by `scale` (> 0). scratch: attention_scratch_floats(pos0 + T) per thread,
 * for nthreads threads. One task is one head and ATTN_TILE queries: no T x T matrix is ever materialised for
 * all heads at once, and a tile's scores stay in L2. */
#define ATTN_TILE 48
#define ATTN_KEYS_PADDED(n) (((n) + 63) / 64 * 64)
size_t attention_scratch_floats(int context); /* either attention's */
void attention_forward(float *out, int ldo, const float *q, int ldq, const float *kt, int ldkt, const float *v, int ldv, int T, int pos0,
                       int NH, int HS, float scale, float *scratch, int nthreads);

/* GPT2_BF16's attention: the same as attention_forward with Q K^T and P V in bf16 (fp32 accumulation; scores,
 * softmax and its sum in fp32; P rounded to bf16 for the product). Layouts (gemm_bf16_block's pairs):
 *   q: [T, ldq] bf16, row t = query t (gemm_to_bf16 of the queries);
 *   kt: pack_keys_bf16's: dimension c of key j at kt[(c / 2) * 2 * ldkt + 2 * j + (c & 1)], rows readable up to
 *       column ATTN_KEYS_PADDED(pos0 + T) (finite values past the last key);
 *   v: pack_values_bf16's: head h, key j, dimension c at v[h * ldv + (j / 2) * 2 * HS + 2 * c + (j & 1)].
 * HS must be a multiple of 16. scratch: attention_scratch_floats(pos0 + T) per thread. */
void attention_bf16_forward(float *out, int ldo, const uint16_t *q, int ldq, const uint16_t *kt, int ldkt, const uint16_t *v, size_t ldv, int T,
                            int pos0, int NH, int HS, float scale, float *scratch, int nthreads);
/* Rows [0, T) of k (ld ldk) into kt's bf16 pairs as above (columns 0..T-1). */
void pack_keys_bf16(uint16_t *kt, int ldkt, const float *k, int ldk, int T, int C, int nthreads);
/* Rows [0, T) of v (ld ldv) into v's bf16 pairs as above, ldvp per head; the pair slot after an odd T is
 * zeroed (a zero probability times it must stay zero). */
void pack_values_bf16(uint16_t *vp, size_t ldvp, const float *v, int ldv, int T, int NH, int HS, int nthreads);

/* e^x with |relative error| < 2e-7 for x in [-87, 88] (clamped outside), written so that loops over it
 * vectorise: no libm call (floorf would be one, GCC inlines it only without -ftrapping-math). n, the power of
 * two, is x / ln 2 rounded to nearest by adding and subtracting 1.5 * 2^23. */
static inline float kn_expf(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds |v| < 2^22 to an integer */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
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
