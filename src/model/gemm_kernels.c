/* gemm_kernels.c — the products of gemm.h, compiled twice: on its own for the build's target (x86-64-v3: AVX2 +
 * FMA, where a vf is two ymm registers), and included by gemm_kernels_avx512.c under a target pragma for
 * AVX-512 (one zmm register, and VDPBF16PS). gemm.c picks one table at run time. The arithmetic of every
 * output element is the same in both (gemm.h), so they give the same bits.
 *
 * One register tile computes GEMM_MR rows x GEMM_NR columns (6 x 4 vectors: 24 accumulators) and walks the
 * whole inner dimension K, so every output is finished in registers and its bias, activation and residual
 * add cost nothing extra. Each thread takes whole panels of GEMM_NR columns: it copies the panel of w
 * (K x 64 floats, at most 768 KB) into its scratch, where it stays in L2 while all M rows of inp stream past
 * it. The weights are thus read from memory once per call, as OpenBLAS would. When M <= GEMM_MR (decoding)
 * the copy would cost more than the product: gemv_f32 streams w's rows instead, with the same arithmetic.
 *
 * The code is written with GCC vector extensions; only VDPBF16PS needs intrinsics. */
#ifndef GEMM_KERNELS
#define GEMM_KERNELS gemm_kernels_avx2
#define GEMM_KERNELS_NAME "avx2"
#define GEMM_NATIVE_BF16 0 /* AVX512_BF16 implies AVX-512: only the AVX-512 build needs VDPBF16PS */
#endif
#pragma GCC optimize("fp-contract=fast") /* a + b * c as one FMA: -std=c11 would keep them apart */

#include "model/gemm.h"
#include "model/gemm_kernels.h"
#include "model/kernels.h"

#include <omp.h>
#include <string.h>

#if GEMM_NATIVE_BF16
#include <immintrin.h>
#endif

/* Built for a CPU without AVX-512, GCC notes that passing a 64-byte vector changes the ABI. Every function that
 * takes or returns one is always_inline, so no call passes one (a call from the avx512bf16-target code into a
 * function built for the base target would disagree on where the vector is: wrong results at -O0). */
#pragma GCC diagnostic ignored "-Wpsabi"
/* tile_store reads t's first cols <= VF * nv columns of each row, all written: GCC cannot see that bound */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/* One register: VF floats (16 in a zmm register, 8 in a ymm one; a wider GCC vector than the target has would
 * live in memory). A register tile is GEMM_MR rows x TILE_NV registers: 6 x 4 x 16 = 64 columns in 24 of
 * AVX-512's 32 registers, 6 x 2 x 8 = 16 columns in 12 of AVX2's 16. The order of operations per output is the
 * same whatever the tile, so are the results. */
#if GEMM_NATIVE_BF16
#define VF 16
#define TILE_NV 4
#else
#define VF 8
#define TILE_NV 2
#endif
typedef float vf __attribute__((vector_size(VF * 4)));
typedef uint32_t vu __attribute__((vector_size(VF * 4)));

static inline __attribute__((always_inline)) vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* Stores a finished tile's first `cols` columns: the activation (GEMM_ACTIVATE), then the residual add
 * (GEMM_ACCUMULATE) or a plain store. */
static inline __attribute__((always_inline)) void tile_store(float *c, uint16_t *cb, size_t ldc, vf acc[GEMM_MR][TILE_NV], const int rows,
                                                             const int nv, int cols, int mode, Gpt2Activation act) {
    if (mode == GEMM_STORE && cols == VF * nv && !cb) {
        for (int i = 0; i < rows; i++)
            for (int v = 0; v < nv; v++) vstore(c + i * ldc + VF * v, acc[i][v]);
        return;
    }
    const int w = VF * nv; /* row stride in t */
    float t[GEMM_MR * GEMM_NR] __attribute__((aligned(64)));
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) vstore(t + i * w + VF * v, acc[i][v]);
    /* the whole tile in one call: its constants are set up once per tile, not per row */
    if (mode & GEMM_ACTIVATE) activation_span(act, t, (size_t)rows * w);
    if (cb) { /* bf16 output (gemm_bf16_out_bf16): the next product's input, rounded once here */
        for (int i = 0; i < rows; i++) {
            uint16_t *o = cb + i * ldc;
#pragma omp simd
            for (int j = 0; j < cols; j++) o[j] = gemm_bf16_round(t[i * w + j]);
        }
        return;
    }
    for (int i = 0; i < rows; i++) {
        float *o = c + i * ldc;
        if (mode & GEMM_ACCUMULATE) {
#pragma omp simd
            for (int j = 0; j < cols; j++) o[j] += t[i * w + j];
        } else {
            memcpy(o, t + i * w, (size_t)cols * sizeof(float));
        }
    }
}

/* out[rows, VF*nv] (ldc) = bias + a[rows, K] (lda) @ b[K, VF*nv] (ldb): one register tile. rows and nv are
 * constants where it is inlined, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void tile_f32(const int rows, const int nv, int K, const float *a, size_t lda, const float *b,
                                                           size_t ldb, const float *bias, float *c, size_t ldc, int cols, int mode,
                                                           Gpt2Activation act) {
    vf acc[GEMM_MR][TILE_NV];
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = bias ? vload(bias + VF * v) : (vf){0};
    for (int k = 0; k < K; k++) {
        vf bv[TILE_NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = vload(b + (size_t)k * ldb + VF * v);
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            const float s = a[i * lda + k];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] += bv[v] * s;
        }
    }
    tile_store(c, NULL, ldc, acc, rows, nv, cols, mode, act);
}

/* tile_f32 for run-time rows (1..GEMM_MR) and nv (1..TILE_NV), each pair compiled on its own. */
#define TILE_F32_CASE(R, V) \
    case (R) * 8 + (V): tile_f32(R, V, K, a, lda, b, ldb, bias, c, ldc, cols, mode, act); break;
#if TILE_NV == 4
#define TILE_F32_ROW(R) TILE_F32_CASE(R, 1) TILE_F32_CASE(R, 2) TILE_F32_CASE(R, 3) TILE_F32_CASE(R, 4)
#else
#define TILE_F32_ROW(R) TILE_F32_CASE(R, 1) TILE_F32_CASE(R, 2)
#endif
static void tile_f32_any(int rows, int nv, int K, const float *a, size_t lda, const float *b, size_t ldb, const float *bias, float *c,
                         size_t ldc, int cols, int mode, Gpt2Activation act) {
    switch (rows * 8 + nv) {
        TILE_F32_ROW(1) TILE_F32_ROW(2) TILE_F32_ROW(3) TILE_F32_ROW(4) TILE_F32_ROW(5) TILE_F32_ROW(6)
    default: break;
    }
}

/* All M rows against one panel b[K, cols] (ldb): full tiles specialised, the last rows and a narrow panel
 * through tile_f32_any. */
static void panel_f32(float *out, size_t ldo, const float *inp, size_t ldi, const float *b, size_t ldb, const float *bias, int M, int K,
                      int cols, int mode, Gpt2Activation act) {
    const int nv_all = (cols + VF - 1) / VF;
    for (int v0 = 0; v0 < nv_all; v0 += TILE_NV) {
        const int nv = nv_all - v0 < TILE_NV ? nv_all - v0 : TILE_NV, c0 = VF * v0, cc = cols - c0 < VF * nv ? cols - c0 : VF * nv;
        const float *bb = b + c0, *bi = bias ? bias + c0 : NULL;
        float *o = out + c0;
        int m0 = 0;
        if (nv == TILE_NV)
            for (; m0 + GEMM_MR <= M; m0 += GEMM_MR)
                tile_f32(GEMM_MR, TILE_NV, K, inp + (size_t)m0 * ldi, ldi, bb, ldb, bi, o + (size_t)m0 * ldo, ldo, cc, mode, act);
        for (; m0 < M; m0 += GEMM_MR)
            tile_f32_any(M - m0 < GEMM_MR ? M - m0 : GEMM_MR, nv, K, inp + (size_t)m0 * ldi, ldi, bb, ldb, bi, o + (size_t)m0 * ldo, ldo, cc,
                         mode, act);
    }
}

/* One panel of gemm_f32: columns [n0, n0 + cols) of w packed into pk [K, GEMM_NR] (zero-padded), then every
 * row of inp against it. */
static void gemm_f32_panel(float *out, size_t ldo, const float *inp, size_t ldi, const float *w, size_t ldw, const float *bias, int M,
                           int K, int n0, int cols, int mode, Gpt2Activation act, float *pk) {
    const float *bp = bias ? bias + n0 : NULL;
    float bias_pad[GEMM_NR];
    for (int k = 0; k < K; k++) {
        memcpy(pk + (size_t)k * GEMM_NR, w + (size_t)k * ldw + n0, (size_t)cols * sizeof(float));
        if (cols < GEMM_NR) memset(pk + (size_t)k * GEMM_NR + cols, 0, (size_t)(GEMM_NR - cols) * sizeof(float));
    }
    if (bias && cols % 16) { /* the tile reads whole vectors of the bias */
        memset(bias_pad, 0, sizeof bias_pad);
        memcpy(bias_pad, bias + n0, (size_t)cols * sizeof(float));
        bp = bias_pad;
    }
    panel_f32(out + n0, ldo, inp, ldi, pk, GEMM_NR, bp, M, K, cols, mode, act);
}

/* Few rows (decoding): columns [n0, n1) of w read row after row, each row segment contiguous, which streams
 * from memory faster than 64-column panels at a stride of a whole row (one thread: 15 vs 11 GB/s here). Every
 * output gets the tiles' arithmetic: bias, then one FMA per k in order, then the same epilogue. Four rows of w
 * go through each accumulator vector while it is in a register (a quarter of the loads and stores of one row
 * at a time), and the segments GEMV_AHEAD rows ahead are prefetched: a segment is only a few KB, too short
 * for the hardware prefetcher to reach full speed before it ends. The prefetches go to L2 (prefetcht1): eight
 * rows ahead are up to 64 KB, more than an L1, and an Intel Xeon puts non-temporal prefetches in L1 only, where
 * they were evicted before use (fp32 decoding ran at 39 % of the bandwidth bound there, against 97 % on a Zen 5). */
enum { GEMV_COLS = 2048, GEMV_AHEAD = 8 }; /* acc: GEMM_MR x 2048 floats = 48 KB of stack */

static inline __attribute__((always_inline)) void gemv_prefetch(const float *w, size_t ldw, int k, int rows, int K, int cols) {
    for (int r = k; r < k + rows && r < K; r++)
        for (int j = 0; j < cols; j += 16) __builtin_prefetch(w + (size_t)r * ldw + j, 0, 2);
}

static void gemv_f32(float *out, size_t ldo, const float *inp, size_t ldi, const float *w, size_t ldw, const float *bias, int M, int K, int n0,
                     int n1, int mode, Gpt2Activation act) {
    float acc[GEMM_MR][GEMV_COLS] __attribute__((aligned(64)));
    for (int nb = n0; nb < n1; nb += GEMV_COLS) {
        const int cols = n1 - nb < GEMV_COLS ? n1 - nb : GEMV_COLS, cv = cols / VF * VF;
        const float *wb = w + nb;
        for (int m = 0; m < M; m++) {
            if (bias) memcpy(acc[m], bias + nb, (size_t)cols * sizeof(float));
            else memset(acc[m], 0, (size_t)cols * sizeof(float));
        }
        gemv_prefetch(wb, ldw, 0, GEMV_AHEAD, K, cols);
        int k = 0;
        for (; k + 4 <= K; k += 4) {
            gemv_prefetch(wb, ldw, k + GEMV_AHEAD, 4, K, cols);
            const float *w0 = wb + (size_t)k * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
            for (int m = 0; m < M; m++) {
                const float *a = inp + (size_t)m * ldi + k;
                const float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
                float *am = acc[m];
                for (int j = 0; j < cv; j += VF) {
                    vf v = vload(am + j);
                    v += vload(w0 + j) * a0;
                    v += vload(w1 + j) * a1;
                    v += vload(w2 + j) * a2;
                    v += vload(w3 + j) * a3;
                    vstore(am + j, v);
                }
                for (int j = cv; j < cols; j++) {
                    float x = am[j];
                    x += w0[j] * a0;
                    x += w1[j] * a1;
                    x += w2[j] * a2;
                    x += w3[j] * a3;
                    am[j] = x;
                }
            }
        }
        for (; k < K; k++) {
            const float *wr = wb + (size_t)k * ldw;
            for (int m = 0; m < M; m++) {
                const float a = inp[(size_t)m * ldi + k];
                float *am = acc[m];
                int j = 0;
                for (; j + VF <= cols; j += VF) vstore(am + j, vload(am + j) + vload(wr + j) * a);
                for (; j < cols; j++) am[j] += wr[j] * a;
            }
        }
        for (int m = 0; m < M; m++) {
            float *o = out + (size_t)m * ldo + nb;
            if (mode & GEMM_ACTIVATE) activation_span(act, acc[m], (size_t)cols);
            if (mode & GEMM_ACCUMULATE) {
#pragma omp simd
                for (int j = 0; j < cols; j++) o[j] += acc[m][j];
            } else {
                memcpy(o, acc[m], (size_t)cols * sizeof(float));
            }
        }
    }
}

static void f32(float *out, size_t ldo, const float *inp, size_t ldi, const float *w, size_t ldw, const float *bias, int M, int K, int N,
              int mode, Gpt2Activation act, float *scratch, int nthreads) {
    if (M <= 0 || N <= 0) return;
    if (M <= GEMM_MR) {
        /* each thread a contiguous range of columns (a multiple of 16 wide) */
        const int nt = nthreads > 1 ? nthreads : 1, units = (N + 15) / 16;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int t = 0; t < nt; t++) {
            const int u0 = (int)((long)units * t / nt), u1 = (int)((long)units * (t + 1) / nt);
            const int n0 = 16 * u0, n1 = 16 * u1 < N ? 16 * u1 : N;
            if (n0 < n1) gemv_f32(out, ldo, inp, ldi, w, ldw, bias, M, K, n0, n1, mode, act);
        }
        return;
    }
    const int np = (N + GEMM_NR - 1) / GEMM_NR;
    if (nthreads <= 1 || np == 1) {
        for (int p = 0; p < np; p++) {
            const int n0 = p * GEMM_NR;
            gemm_f32_panel(out, ldo, inp, ldi, w, ldw, bias, M, K, n0, N - n0 < GEMM_NR ? N - n0 : GEMM_NR, mode, act, scratch);
        }
        return;
    }
    /* dynamic: a thread slowed by another process on its core does not hold the others up */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int p = 0; p < np; p++) {
        const int n0 = p * GEMM_NR;
        gemm_f32_panel(out, ldo, inp, ldi, w, ldw, bias, M, K, n0, N - n0 < GEMM_NR ? N - n0 : GEMM_NR, mode, act,
                       scratch + (size_t)omp_get_thread_num() * (size_t)K * GEMM_NR + 16 /* gemm_scratch_floats */);
    }
}

static void f32_block(float *out, size_t ldo, const float *inp, size_t ldi, const float *b, size_t ldb, int M, int K, int cols) {
    panel_f32(out, ldo, inp, ldi, b, ldb, NULL, M, K, cols, GEMM_STORE, ACT_GELU_NEW);
}

static void f32_packed(float *out, size_t ldo, const float *inp, size_t ldi, const float *packed, int M, int K, int N, int nthreads) {
    if (M <= 0 || N <= 0) return;
    const int np = (N + GEMM_NR - 1) / GEMM_NR;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1 && np > 1)
    for (int p = 0; p < np; p++) {
        const int n0 = p * GEMM_NR;
        panel_f32(out + n0, ldo, inp, ldi, packed + (size_t)p * K * GEMM_NR, GEMM_NR, NULL, M, K, N - n0 < GEMM_NR ? N - n0 : GEMM_NR,
                  GEMM_STORE, ACT_GELU_NEW);
    }
}

/* ---- bf16 ---------------------------------------------------------------------------------------------- */

static inline GemmOut out_at(GemmOut o, int m, int n) {
    if (o.f) o.f += (size_t)m * o.ld + n;
    else o.b += (size_t)m * o.ld + n;
    return o;
}

static inline uint32_t pair_at(const uint16_t *p) {
    uint32_t u;
    memcpy(&u, p, sizeof u);
    return u;
}

/* VDPBF16PS in fp32: per lane, acc += a_odd * b_odd, then acc += a_even * b_even (each product of two bf16
 * values is exact in fp32, so each step is one FMA). The even (k) element of a pair is the low half. */
static inline __attribute__((always_inline)) void tile_bf16_emulated(const int rows, const int nv, int Kp, const uint16_t *a, size_t lda,
                                                                     const uint16_t *b, size_t ldb, const float *bias, GemmOut c, int cols,
                                                                     int mode, Gpt2Activation act) {
    vf acc[GEMM_MR][TILE_NV];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = bias ? vload(bias + VF * v) : (vf){0};
    for (int kk = 0; kk < Kp / 2; kk++) {
        vf be[TILE_NV], bo[TILE_NV];
        for (int v = 0; v < nv; v++) {
            vu raw;
            memcpy(&raw, b + (size_t)kk * ldb + 2 * VF * v, sizeof raw); /* VF pairs */
            vu e = raw << 16, o = raw & 0xffff0000u;
            memcpy(&be[v], &e, sizeof e);
            memcpy(&bo[v], &o, sizeof o);
        }
        for (int i = 0; i < rows; i++) {
            const uint32_t ap = pair_at(a + i * lda + 2 * kk), ae_bits = ap << 16, ao_bits = ap & 0xffff0000u;
            float ae, ao;
            memcpy(&ae, &ae_bits, sizeof ae);
            memcpy(&ao, &ao_bits, sizeof ao);
            for (int v = 0; v < nv; v++) {
                acc[i][v] += bo[v] * ao;
                acc[i][v] += be[v] * ae;
            }
        }
    }
    tile_store(c.f, c.b, c.ld, acc, rows, nv, cols, mode, act);
}

#if GEMM_NATIVE_BF16
#define BF16_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))
static inline __attribute__((always_inline)) BF16_TARGET void tile_bf16_native(const int rows, const int nv, int Kp, const uint16_t *a,
                                                                                 size_t lda, const uint16_t *b, size_t ldb, const float *bias,
                                                                                 GemmOut c, int cols, int mode, Gpt2Activation act) {
    __m512 acc[GEMM_MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = bias ? _mm512_loadu_ps(bias + VF * v) : _mm512_setzero_ps();
    for (int kk = 0; kk < Kp / 2; kk++) {
        __m512bh bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(b + (size_t)kk * ldb + 32 * v));
        if (rows <= 2) /* decoding: the weights stream from memory once; ask for them 16 steps ahead */
            for (int v = 0; v < nv; v++) _mm_prefetch((const char *)(b + (size_t)(kk + 16) * ldb + 32 * v), _MM_HINT_T0);
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)pair_at(a + i * lda + 2 * kk));
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
        }
    }
    vf out[GEMM_MR][TILE_NV];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) memcpy(&out[i][v], &acc[i][v], sizeof out[i][v]);
    tile_store(c.f, c.b, c.ld, out, rows, nv, cols, mode, act);
}

#define TILE_BF16_CASE(R, V) \
    case (R) * 8 + (V): tile_bf16_native(R, V, Kp, a, lda, b, ldb, bias, c, cols, mode, act); break;
#define TILE_BF16_ROW(R) TILE_BF16_CASE(R, 1) TILE_BF16_CASE(R, 2) TILE_BF16_CASE(R, 3) TILE_BF16_CASE(R, 4)
static BF16_TARGET void tile_bf16_native_any(int rows, int nv, int Kp, const uint16_t *a, size_t lda, const uint16_t *b, size_t ldb,
                                             const float *bias, GemmOut c, int cols, int mode, Gpt2Activation act) {
    switch (rows * 8 + nv) {
        TILE_BF16_ROW(1) TILE_BF16_ROW(2) TILE_BF16_ROW(3) TILE_BF16_ROW(4) TILE_BF16_ROW(5) TILE_BF16_ROW(6)
    default: break;
    }
}

static BF16_TARGET void panel_bf16_native(GemmOut out, const uint16_t *inp, size_t ldi, const uint16_t *b, size_t ldb, const float *bias, int M,
                                          int Kp, int cols, int mode, Gpt2Activation act) {
    const int nv = (cols + VF - 1) / VF;
    int m0 = 0;
    if (nv == 4)
        for (; m0 + GEMM_MR <= M; m0 += GEMM_MR)
            tile_bf16_native(GEMM_MR, 4, Kp, inp + (size_t)m0 * ldi, ldi, b, ldb, bias, out_at(out, m0, 0), cols, mode, act);
    for (; m0 < M; m0 += GEMM_MR)
        tile_bf16_native_any(M - m0 < GEMM_MR ? M - m0 : GEMM_MR, nv, Kp, inp + (size_t)m0 * ldi, ldi, b, ldb, bias, out_at(out, m0, 0), cols,
                             mode, act);
}
#endif

#define TILE_EMU_CASE(R, V) \
    case (R) * 8 + (V): tile_bf16_emulated(R, V, Kp, a, lda, b, ldb, bias, c, cols, mode, act); break;
#if TILE_NV == 4
#define TILE_EMU_ROW(R) TILE_EMU_CASE(R, 1) TILE_EMU_CASE(R, 2) TILE_EMU_CASE(R, 3) TILE_EMU_CASE(R, 4)
#else
#define TILE_EMU_ROW(R) TILE_EMU_CASE(R, 1) TILE_EMU_CASE(R, 2)
#endif
static void tile_bf16_emulated_any(int rows, int nv, int Kp, const uint16_t *a, size_t lda, const uint16_t *b, size_t ldb, const float *bias,
                                   GemmOut c, int cols, int mode, Gpt2Activation act) {
    switch (rows * 8 + nv) {
        TILE_EMU_ROW(1) TILE_EMU_ROW(2) TILE_EMU_ROW(3) TILE_EMU_ROW(4) TILE_EMU_ROW(5) TILE_EMU_ROW(6)
    default: break;
    }
}

static void panel_bf16_emulated(GemmOut out, const uint16_t *inp, size_t ldi, const uint16_t *b, size_t ldb, const float *bias, int M, int Kp,
                                int cols, int mode, Gpt2Activation act) {
    const int nv_all = (cols + VF - 1) / VF;
    for (int v0 = 0; v0 < nv_all; v0 += TILE_NV) {
        const int nv = nv_all - v0 < TILE_NV ? nv_all - v0 : TILE_NV, c0 = VF * v0, cc = cols - c0 < VF * nv ? cols - c0 : VF * nv;
        for (int m0 = 0; m0 < M; m0 += GEMM_MR)
            tile_bf16_emulated_any(M - m0 < GEMM_MR ? M - m0 : GEMM_MR, nv, Kp, inp + (size_t)m0 * ldi, ldi, b + 2 * c0, ldb, bias ? bias + c0 : NULL,
                                   out_at(out, m0, c0), cc, mode, act);
    }
}

/* One panel, native or emulated. */
static void panel_bf16(GemmOut out, const uint16_t *inp, size_t ldi, const uint16_t *b, size_t ldb, const float *bias, int M, int Kp, int cols,
                       int mode, Gpt2Activation act, int native) {
#if GEMM_NATIVE_BF16
    if (native) {
        panel_bf16_native(out, inp, ldi, b, ldb, bias, M, Kp, cols, mode, act);
        return;
    }
#endif
    (void)native;
    panel_bf16_emulated(out, inp, ldi, b, ldb, bias, M, Kp, cols, mode, act);
}

static void gemm_bf16_panel(GemmOut out, const uint16_t *inp, const uint16_t *w, const float *bias, int M, int K, int N, int p, int mode,
                            Gpt2Activation act, int native) {
    const int Kp = (K + 1) / 2 * 2, n0 = p * GEMM_NR, cols = N - n0 < GEMM_NR ? N - n0 : GEMM_NR;
    const uint16_t *b = w + (size_t)p * Kp * GEMM_NR;
    const float *bp = bias ? bias + n0 : NULL;
    float bias_pad[GEMM_NR];
    if (bias && cols % 16) {
        memset(bias_pad, 0, sizeof bias_pad);
        memcpy(bias_pad, bias + n0, (size_t)cols * sizeof(float));
        bp = bias_pad;
    }
    panel_bf16(out_at(out, 0, n0), inp, (size_t)Kp, b, 2 * GEMM_NR, bp, M, Kp, cols, mode, act, native);
}

static void bf16(GemmOut out, const uint16_t *inp, const uint16_t *w, const float *bias, int M, int K, int N, int mode, Gpt2Activation act,
                 int native, int nthreads) {
    if (M <= 0 || N <= 0) return;
    const int np = (N + GEMM_NR - 1) / GEMM_NR;
    if (nthreads <= 1 || np == 1) {
        for (int p = 0; p < np; p++) gemm_bf16_panel(out, inp, w, bias, M, K, N, p, mode, act, native);
        return;
    }
    if (M <= GEMM_MR) { /* decoding: each thread one contiguous run of panels, streamed with prefetch */
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int p = 0; p < np; p++) gemm_bf16_panel(out, inp, w, bias, M, K, N, p, mode, act, native);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int p = 0; p < np; p++) gemm_bf16_panel(out, inp, w, bias, M, K, N, p, mode, act, native);
}

static void bf16_block(float *out, size_t ldo, const uint16_t *inp, size_t ldi, const uint16_t *b, size_t ldb, int M, int Kp, int cols, int native) {
    panel_bf16((GemmOut){out, NULL, ldo}, inp, ldi, b, ldb, NULL, M, Kp, cols, GEMM_STORE, ACT_GELU_NEW, native);
}

const GemmKernels GEMM_KERNELS = {GEMM_KERNELS_NAME, f32, f32_block, f32_packed, bf16, bf16_block};
