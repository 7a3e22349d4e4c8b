/* test_kernels.c — the forward pass' kernels (gemm.h, kernels.h) against plain double-precision loops:
 * fp32 and bf16 matrix products with every epilogue and odd shapes, results independent of the thread count
 * and of M (a row alone = the same row in a batch), VDPBF16PS against its emulation, the bf16 rounding against
 * util/half, attention against a naive softmax(QK^T)V, the activations and kn_expf. */
#include "model/gemm.h"
#include "model/kernels.h"
#include "util/half.h"
#include "test.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * 0x1.0p-24 * 2.0 - 1.0);
}

static float *random_floats(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}

static double gelu_tanh_ref(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

/* The product in double, with the bias, the activation and the residual as gemm's mode says. Also the bound
 * sum |a||w| + |bias| per element, which scales the allowed rounding error. */
static void gemm_ref(double *out, double *mag, const float *resid, const float *a, const float *w, const float *bias, int M, int K, int N,
                     int mode) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0, g = bias ? fabs(bias[n]) : 0.0;
            for (int k = 0; k < K; k++) {
                s += (double)a[(size_t)m * K + k] * w[(size_t)k * N + n];
                g += fabs((double)a[(size_t)m * K + k] * w[(size_t)k * N + n]);
            }
            if (mode & GEMM_ACTIVATE) s = gelu_tanh_ref(s);
            if (mode & GEMM_ACCUMULATE) s += resid[(size_t)m * N + n];
            out[(size_t)m * N + n] = s;
            mag[(size_t)m * N + n] = g + ((mode & GEMM_ACCUMULATE) ? fabs(resid[(size_t)m * N + n]) : 0.0);
        }
}

static const int shapes[][3] = {{1, 64, 64}, {1, 37, 100}, {5, 37, 100}, {6, 64, 128}, {7, 64, 192}, {13, 130, 70},
                                {64, 64, 256}, {100, 96, 200}, {3, 1, 17}, {33, 300, 64}};

static void test_gemm_f32_matches_reference(void) {
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
        float *a = random_floats((size_t)M * K, 1.0f), *w = random_floats((size_t)K * N, 0.1f), *bias = random_floats((size_t)N, 0.5f);
        float *resid = random_floats((size_t)M * N, 1.0f), *out = malloc((size_t)M * N * sizeof(float));
        float *scratch = malloc(4 * gemm_scratch_floats(K) * sizeof(float));
        double *ref = malloc((size_t)M * N * sizeof(double)), *mag = malloc((size_t)M * N * sizeof(double));
        const int modes[] = {GEMM_STORE, GEMM_ACTIVATE, GEMM_ACCUMULATE};
        for (int mi = 0; mi < 3; mi++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const int mode = modes[mi];
                memcpy(out, resid, (size_t)M * N * sizeof(float));
                gemm_f32(out, (size_t)N, a, (size_t)K, w, (size_t)N, with_bias ? bias : NULL, M, K, N, mode, ACT_GELU_NEW, scratch, 2);
                gemm_ref(ref, mag, resid, a, w, with_bias ? bias : NULL, M, K, N, mode);
                double worst = 0;
                for (size_t i = 0; i < (size_t)M * N; i++) {
                    double e = fabs(out[i] - ref[i]) / (mag[i] + 1e-30);
                    worst = e > worst ? e : worst;
                }
                CHECK_MSG(worst < 1e-6 * sqrt((double)K) + 1e-6, "gemm_f32 %dx%dx%d mode %d bias %d: error %.3g of sum |a w|", M, K, N, mode, with_bias,
                          worst);
            }
        free(a), free(w), free(bias), free(resid), free(out), free(scratch), free(ref), free(mag);
    }
}

/* Same bits for 1, 2 and 3 threads, and a row computed alone (the decoding path, which reads w in place)
 * equals that row in a batch (the path that packs w). */
static void test_gemm_f32_bit_identical(void) {
    const int M = 50, K = 200, N = 320;
    float *a = random_floats((size_t)M * K, 1.0f), *w = random_floats((size_t)K * N, 0.1f), *bias = random_floats((size_t)N, 0.5f);
    float *scratch = malloc(4 * gemm_scratch_floats(K) * sizeof(float));
    float *o1 = malloc((size_t)M * N * sizeof(float)), *o2 = malloc((size_t)M * N * sizeof(float)), *o3 = malloc((size_t)M * N * sizeof(float));
    float *rows = malloc((size_t)M * N * sizeof(float));
    gemm_f32(o1, N, a, K, w, N, bias, M, K, N, GEMM_ACTIVATE, ACT_GELU_NEW, scratch, 1);
    gemm_f32(o2, N, a, K, w, N, bias, M, K, N, GEMM_ACTIVATE, ACT_GELU_NEW, scratch, 2);
    gemm_f32(o3, N, a, K, w, N, bias, M, K, N, GEMM_ACTIVATE, ACT_GELU_NEW, scratch, 3);
    for (int m = 0; m < M; m++) gemm_f32(rows + (size_t)m * N, N, a + (size_t)m * K, K, w, N, bias, 1, K, N, GEMM_ACTIVATE, ACT_GELU_NEW, scratch, 2);
    CHECK(memcmp(o1, o2, (size_t)M * N * sizeof(float)) == 0);
    CHECK(memcmp(o1, o3, (size_t)M * N * sizeof(float)) == 0);
    CHECK(memcmp(o1, rows, (size_t)M * N * sizeof(float)) == 0);
    /* a column subset (w + n0, ldw = N) gives the same columns */
    float *sub = malloc((size_t)M * 128 * sizeof(float));
    gemm_f32(sub, 128, a, K, w + 64, N, bias + 64, M, K, 128, GEMM_ACTIVATE, ACT_GELU_NEW, scratch, 2);
    int same = 1;
    for (int m = 0; m < M; m++) same &= memcmp(sub + (size_t)m * 128, o1 + (size_t)m * N + 64, 128 * sizeof(float)) == 0;
    CHECK(same);
    free(a), free(w), free(bias), free(scratch), free(o1), free(o2), free(o3), free(rows), free(sub);
}

static void test_gemm_f32_block(void) {
    const int M = 11, K = 70, ld = 100;
    float *a = random_floats((size_t)M * ld, 1.0f), *b = random_floats((size_t)K * ld, 1.0f), *out = malloc((size_t)M * ld * sizeof(float));
    for (int cols = 16; cols <= 64; cols += 16) {
        gemm_f32_block(out, ld, a, ld, b, ld, M, K, cols);
        double worst = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < cols; n++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)a[m * ld + k] * b[k * ld + n];
                worst = fmax(worst, fabs(s - out[m * ld + n]));
            }
        CHECK_MSG(worst < 1e-4, "gemm_f32_block cols %d: max |diff| %.3g", cols, worst);
    }
    free(a), free(b), free(out);
}

/* gemm_to_bf16 rounds as util/half's f32_to_bf16: nearest even, NaN to 0x7fc0, infinities kept. */
static void test_bf16_rounding(void) {
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xffa00000u,
                                0x00000001u, 0x80000000u, 0x007fffffu, 0x3f7fffffu};
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float));
    uint16_t *y = malloc((N + 2) * sizeof(uint16_t));
    for (int i = 0; i < N; i++) {
        uint32_t u = i < (int)(sizeof special / sizeof special[0]) ? special[i] : (uint32_t)(rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 0;
        if (i >= (int)(sizeof special / sizeof special[0])) u = (uint32_t)(rng >> 32);
        memcpy(&x[i], &u, sizeof u);
    }
    gemm_to_bf16(y, x, N, 1, N, 1);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += y[i] != f32_to_bf16(x[i]);
    CHECK_EQ_INT(bad, 0);
    /* an odd K gets a zero pad column */
    gemm_to_bf16(y, x, 3, 2, 3, 1);
    CHECK_EQ_INT(y[3], 0);
    CHECK_EQ_INT(y[7], 0);
    CHECK_EQ_INT(y[4], f32_to_bf16(x[3]));
    free(x), free(y);
}

static float bf16_value(float x) { return bf16_to_f32(f32_to_bf16(x)); }

/* The bf16 product equals the double product of the bf16-rounded inputs up to fp32 accumulation, for every
 * mode, native and emulated; both give the same bits, for any thread count. */
static void test_gemm_bf16(void) {
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], K = shapes[si][1], N = shapes[si][2], Kp = (K + 1) / 2 * 2;
        float *a = random_floats((size_t)M * K, 1.0f), *w = random_floats((size_t)K * N, 0.1f), *bias = random_floats((size_t)N, 0.5f);
        float *wt = malloc((size_t)K * N * sizeof(float)), *ar = malloc((size_t)M * K * sizeof(float)), *wr = malloc((size_t)K * N * sizeof(float));
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++) wt[(size_t)n * K + k] = w[(size_t)k * N + n];
        for (size_t i = 0; i < (size_t)M * K; i++) ar[i] = bf16_value(a[i]);
        for (size_t i = 0; i < (size_t)K * N; i++) wr[i] = bf16_value(w[i]);
        uint16_t *wp = malloc(gemm_bf16_packed_size(K, N) * sizeof(uint16_t)), *wpt = malloc(gemm_bf16_packed_size(K, N) * sizeof(uint16_t));
        uint16_t *abf = malloc((size_t)M * Kp * sizeof(uint16_t));
        gemm_pack_bf16(wp, w, N, K, N, 0, 2);
        gemm_pack_bf16(wpt, wt, K, K, N, 1, 1);
        CHECK(memcmp(wp, wpt, gemm_bf16_packed_size(K, N) * sizeof(uint16_t)) == 0); /* transposed packing: same panels */
        gemm_to_bf16(abf, a, K, M, K, 2);
        float *resid = random_floats((size_t)M * N, 1.0f), *out = malloc((size_t)M * N * sizeof(float)), *emu = malloc((size_t)M * N * sizeof(float));
        double *ref = malloc((size_t)M * N * sizeof(double)), *mag = malloc((size_t)M * N * sizeof(double));
        const int modes[] = {GEMM_STORE, GEMM_ACTIVATE, GEMM_ACCUMULATE};
        for (int mi = 0; mi < 3; mi++) {
            const int mode = modes[mi];
            memcpy(out, resid, (size_t)M * N * sizeof(float));
            memcpy(emu, resid, (size_t)M * N * sizeof(float));
            gemm_bf16(out, N, abf, wp, bias, M, K, N, mode, ACT_GELU_NEW, 2);
            gemm_bf16_force_emulation(1);
            gemm_bf16(emu, N, abf, wp, bias, M, K, N, mode, ACT_GELU_NEW, 1);
            gemm_bf16_force_emulation(0);
            gemm_ref(ref, mag, resid, ar, wr, bias, M, K, N, mode);
            double worst = 0;
            for (size_t i = 0; i < (size_t)M * N; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / (mag[i] + 1e-30));
            CHECK_MSG(worst < 1e-6 * sqrt((double)K) + 1e-6, "gemm_bf16 %dx%dx%d mode %d: error %.3g of sum |a w|", M, K, N, mode, worst);
            CHECK_MSG(memcmp(out, emu, (size_t)M * N * sizeof(float)) == 0, "gemm_bf16 %dx%dx%d mode %d: native (%d) and emulated differ", M, K, N,
                      mode, gemm_bf16_native());
        }
        free(a), free(w), free(bias), free(wt), free(ar), free(wr), free(wp), free(wpt), free(abf), free(resid), free(out), free(emu), free(ref),
            free(mag);
    }
}

/* softmax(scale Q K^T, causal) V in double, for T queries at positions pos0.. over keys 0..pos0+T-1. */
static void attention_ref(double *out, const float *q, int ldq, const float *k, const float *v, int ldkv, int T, int pos0, int NH, int HS,
                          float scale) {
    double *p = malloc((size_t)(pos0 + T) * sizeof(double));
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            const int n = pos0 + t + 1;
            double max = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int d = 0; d < HS; d++) s += (double)q[(size_t)t * ldq + h * HS + d] * k[(size_t)j * ldkv + h * HS + d];
                p[j] = s * scale;
                max = fmax(max, p[j]);
            }
            for (int j = 0; j < n; j++) sum += (p[j] = exp(p[j] - max));
            for (int d = 0; d < HS; d++) {
                double o = 0;
                for (int j = 0; j < n; j++) o += p[j] * v[(size_t)j * ldkv + h * HS + d];
                out[(size_t)t * NH * HS + h * HS + d] = o / sum;
            }
        }
    free(p);
}

static void check_attention(int T, int pos0, int NH, int HS) {
    const int C = NH * HS, ctx = pos0 + T, ldkt = ATTN_KEYS_PADDED(ctx) + 16;
    float *q = random_floats((size_t)T * C, 2.0f), *k = random_floats((size_t)ctx * C, 2.0f), *v = random_floats((size_t)ctx * C, 1.0f);
    float *kt = calloc((size_t)C * ldkt, sizeof(float)), *scratch = malloc(3 * attention_scratch_floats(ctx) * sizeof(float));
    float *out1 = malloc((size_t)T * C * sizeof(float)), *out2 = malloc((size_t)T * C * sizeof(float)), *out3 = malloc((size_t)T * C * sizeof(float));
    double *ref = malloc((size_t)T * C * sizeof(double));
    /* keys in two calls, as the KV cache appends them */
    transpose_keys(kt, ldkt, k, C, pos0, C, 0, 2);
    transpose_keys(kt, ldkt, k + (size_t)pos0 * C, C, T, C, pos0, 1);
    const float scale = 1.0f / sqrtf((float)HS);
    attention_forward(out1, C, q, C, kt, ldkt, v, C, T, pos0, NH, HS, scale, scratch, 1);
    attention_forward(out2, C, q, C, kt, ldkt, v, C, T, pos0, NH, HS, scale, scratch, 2);
    attention_forward(out3, C, q, C, kt, ldkt, v, C, T, pos0, NH, HS, scale, scratch, 3);
    attention_ref(ref, q, C, k, v, C, T, pos0, NH, HS, scale);
    double worst = 0;
    for (size_t i = 0; i < (size_t)T * C; i++) worst = fmax(worst, fabs(out1[i] - ref[i]));
    CHECK_MSG(worst < 2e-6, "attention T %d pos0 %d NH %d HS %d: max |diff| %.3g", T, pos0, NH, HS, worst);
    CHECK(memcmp(out1, out2, (size_t)T * C * sizeof(float)) == 0);
    CHECK(memcmp(out1, out3, (size_t)T * C * sizeof(float)) == 0);
    /* the last query alone (decoding) gives the same bits as in the batch */
    attention_forward(out2, C, q + (size_t)(T - 1) * C, C, kt, ldkt, v, C, 1, pos0 + T - 1, NH, HS, scale, scratch, 2);
    CHECK(memcmp(out2, out1 + (size_t)(T - 1) * C, (size_t)C * sizeof(float)) == 0);
    free(q), free(k), free(v), free(kt), free(scratch), free(out1), free(out2), free(out3), free(ref);
}

static void test_attention(void) {
    check_attention(1, 0, 2, 16);
    check_attention(7, 0, 4, 16);
    check_attention(100, 0, 2, 64);
    check_attention(130, 0, 3, 32);
    check_attention(5, 60, 2, 64);   /* queries after a cached prefix */
    check_attention(50, 77, 2, 128); /* head size over one register tile */
    check_attention(33, 10, 3, 24);  /* head size not a multiple of 16: the OpenBLAS path */
}

/* The bf16 attention: within bf16 rounding of the double reference on the rounded inputs, the same bits for
 * any thread count and emulated, and the last query alone equals the batch's. */
static void check_attention_bf16(int T, int NH, int HS) {
    const int C = NH * HS, ldkt = ATTN_KEYS_PADDED(T) + 16;
    const size_t ldvp = (size_t)ATTN_KEYS_PADDED(T) * HS;
    float *qkv = random_floats((size_t)T * 3 * C, 2.0f), *r = malloc((size_t)T * 3 * C * sizeof(float));
    for (size_t i = 0; i < (size_t)T * 3 * C; i++) r[i] = bf16_value(qkv[i]);
    uint16_t *q = malloc((size_t)T * C * sizeof(uint16_t)), *kt = calloc((size_t)C * ldkt, sizeof(uint16_t)), *vp = malloc(NH * ldvp * sizeof(uint16_t));
    gemm_to_bf16(q, qkv, 3 * C, T, C, 2);
    pack_keys_bf16(kt, ldkt, qkv + C, 3 * C, T, C, 2);
    pack_values_bf16(vp, ldvp, qkv + 2 * C, 3 * C, T, NH, HS, 1);
    float *scratch = malloc(3 * attention_scratch_floats(T) * sizeof(float)), *o1 = malloc((size_t)T * C * sizeof(float)),
          *o2 = malloc((size_t)T * C * sizeof(float)), *o3 = malloc((size_t)T * C * sizeof(float));
    double *ref = malloc((size_t)T * C * sizeof(double));
    const float scale = 1.0f / sqrtf((float)HS);
    attention_bf16_forward(o1, C, q, C, kt, ldkt, vp, ldvp, T, 0, NH, HS, scale, scratch, 1);
    attention_bf16_forward(o2, C, q, C, kt, ldkt, vp, ldvp, T, 0, NH, HS, scale, scratch, 3);
    gemm_bf16_force_emulation(1);
    attention_bf16_forward(o3, C, q, C, kt, ldkt, vp, ldvp, T, 0, NH, HS, scale, scratch, 2);
    gemm_bf16_force_emulation(0);
    attention_ref(ref, r, 3 * C, r + C, r + 2 * C, 3 * C, T, 0, NH, HS, scale);
    double worst = 0;
    for (size_t i = 0; i < (size_t)T * C; i++) worst = fmax(worst, fabs(o1[i] - ref[i]));
    CHECK_MSG(worst < 1e-2, "bf16 attention T %d NH %d HS %d: max |diff| %.3g (P rounded to bf16)", T, NH, HS, worst);
    CHECK(memcmp(o1, o2, (size_t)T * C * sizeof(float)) == 0);
    CHECK(memcmp(o1, o3, (size_t)T * C * sizeof(float)) == 0);
    attention_bf16_forward(o2, C, q + (size_t)(T - 1) * C, C, kt, ldkt, vp, ldvp, 1, T - 1, NH, HS, scale, scratch, 2);
    CHECK(memcmp(o2, o1 + (size_t)(T - 1) * C, (size_t)C * sizeof(float)) == 0);
    free(qkv), free(r), free(q), free(kt), free(vp), free(scratch), free(o1), free(o2), free(o3), free(ref);
}

static void test_attention_bf16(void) {
    check_attention_bf16(1, 2, 16);
    check_attention_bf16(7, 3, 32);   /* odd T: the zeroed value pair */
    check_attention_bf16(100, 2, 64);
    check_attention_bf16(61, 1, 128);
}

/* gemm_bf16_out_bf16 = gemm_bf16's fp32 output rounded; layernorm_bf16_forward = layernorm_forward rounded. */
static void test_bf16_outputs(void) {
    const int M = 13, K = 70, N = 99, Kp = 70, Np = 100;
    float *a = random_floats((size_t)M * K, 1.0f), *w = random_floats((size_t)K * N, 0.2f), *bias = random_floats(N, 0.5f);
    uint16_t *abf = malloc((size_t)M * Kp * sizeof(uint16_t)), *wp = malloc(gemm_bf16_packed_size(K, N) * sizeof(uint16_t));
    uint16_t *ob = malloc((size_t)M * Np * sizeof(uint16_t));
    float *of = malloc((size_t)M * N * sizeof(float));
    gemm_to_bf16(abf, a, K, M, K, 1);
    gemm_pack_bf16(wp, w, N, K, N, 0, 1);
    gemm_bf16(of, N, abf, wp, bias, M, K, N, GEMM_ACTIVATE, ACT_GELU_NEW, 2);
    gemm_bf16_out_bf16(ob, Np, abf, wp, bias, M, K, N, GEMM_ACTIVATE, ACT_GELU_NEW, 2);
    int bad = 0;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) bad += ob[m * Np + n] != f32_to_bf16(of[m * N + n]);
        bad += ob[m * Np + N] != 0;
    }
    CHECK_EQ_INT(bad, 0);
    const int T = 9, C = 75;
    float *x = random_floats((size_t)T * C, 2.0f), *g = random_floats(C, 1.0f), *b = random_floats(C, 1.0f);
    float *lf = malloc((size_t)T * C * sizeof(float)), *lf2 = malloc((size_t)T * C * sizeof(float));
    uint16_t *lb = malloc((size_t)T * 76 * sizeof(uint16_t)), *lb2 = malloc((size_t)T * 76 * sizeof(uint16_t));
    layernorm_forward(lf, x, g, b, T, C, 1e-5f);
    layernorm_bf16_forward(lb, 76, lf2, x, g, b, T, C, 1e-5f);
    layernorm_bf16_forward(lb2, 76, NULL, x, g, b, T, C, 1e-5f);
    CHECK(memcmp(lf, lf2, (size_t)T * C * sizeof(float)) == 0);
    bad = 0;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < C; i++) bad += lb[t * 76 + i] != f32_to_bf16(lf[t * C + i]) || lb2[t * 76 + i] != lb[t * 76 + i];
        bad += lb[t * 76 + C] != 0;
    }
    CHECK_EQ_INT(bad, 0);
    free(a), free(w), free(bias), free(abf), free(wp), free(ob), free(of), free(x), free(g), free(b), free(lf), free(lf2), free(lb), free(lb2);
}

static void test_activation_and_exp(void) {
    enum { N = 20001 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = y[i] = -20.0f + 40.0f * (float)i / (N - 1);
    activation_span(ACT_GELU_NEW, y, N);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - gelu_tanh_ref(x[i])) / fmax(1.0, fabs(gelu_tanh_ref(x[i]))));
    CHECK_MSG(worst < 1e-6, "gelu_new: error %.3g", worst);
    memcpy(y, x, N * sizeof(float));
    activation_span(ACT_RELU, y, N);
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - fmax(0.0, x[i])));
    CHECK(worst < 1e-6);
    double e = 0;
    for (int i = 0; i < N; i++) {
        float v = -87.0f + 175.0f * (float)i / (N - 1);
        e = fmax(e, fabs(kn_expf(v) - exp(v)) / exp(v));
    }
    CHECK_MSG(e < 3e-7, "kn_expf: relative error %.3g", e);
    CHECK(kn_expf(-1000.0f) >= 0.0f && kn_expf(-1000.0f) < 1e-37f);
    CHECK(isfinite(kn_expf(1000.0f)));
    free(x), free(y);
}

static void test_layernorm(void) {
    const int T = 37, C = 200;
    float *x = random_floats((size_t)T * C, 3.0f), *w = random_floats(C, 1.0f), *b = random_floats(C, 1.0f), *o = malloc((size_t)T * C * sizeof(float));
    for (int i = 0; i < T * C; i++) x[i] += 5.0f; /* a large mean: the variance must not cancel */
    layernorm_forward(o, x, w, b, T, C, 1e-5f);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        double mean = 0, var = 0;
        for (int i = 0; i < C; i++) mean += x[t * C + i];
        mean /= C;
        for (int i = 0; i < C; i++) var += (x[t * C + i] - mean) * (x[t * C + i] - mean);
        var /= C;
        for (int i = 0; i < C; i++) worst = fmax(worst, fabs(o[t * C + i] - ((x[t * C + i] - mean) / sqrt(var + 1e-5) * w[i] + b[i])));
    }
    CHECK_MSG(worst < 1e-5, "layernorm: max |diff| %.3g", worst);
    free(x), free(w), free(b), free(o);
}

/* gemm_bf16_native() says what /proc/cpuinfo says (Linux), so the run-time check neither misses VDPBF16PS nor
 * claims it on a CPU without it (where it would fault); with KNNLM_ISA=avx2 it is never used. The kernels in
 * use are AVX-512 exactly where the CPU has AVX-512 F, VL, BW and DQ. */
static void test_bf16_cpu_check(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[8192];
    int flags = -1;
    int avx512 = -1;
    while (flags < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0) {
            flags = strstr(line, " avx512_bf16") != NULL;
            avx512 = strstr(line, " avx512f") && strstr(line, " avx512vl") && strstr(line, " avx512bw") && strstr(line, " avx512dq");
        }
    fclose(f);
    const char *env = getenv("KNNLM_ISA");
    const int forced_avx2 = env && strcmp(env, "avx2") == 0;
    if (flags >= 0) CHECK_EQ_INT(gemm_bf16_native(), flags && !forced_avx2);
    if (avx512 >= 0) CHECK_MSG(strcmp(gemm_isa(), avx512 && !forced_avx2 ? "avx512" : "avx2") == 0, "kernels in use: %s", gemm_isa());
}

int main(void) {
    RUN(test_gemm_f32_matches_reference);
    RUN(test_gemm_f32_bit_identical);
    RUN(test_gemm_f32_block);
    RUN(test_bf16_rounding);
    RUN(test_gemm_bf16);
    RUN(test_attention);
    RUN(test_attention_bf16);
    RUN(test_bf16_outputs);
    RUN(test_bf16_cpu_check);
    RUN(test_activation_and_exp);
    RUN(test_layernorm);
    fprintf(stderr, "  (kernels: %s; VDPBF16PS %s)\n", gemm_isa(), gemm_bf16_native() ? "native" : "not used: emulated");
    return TEST_EXIT();
}
