/* gemm.c — see gemm.h. The products themselves are in gemm_kernels.c, built once for the baseline (x86-64-v3)
 * and once for AVX-512; this file picks one of the two tables at run time and holds what does not depend on
 * the instruction set (packing the weights, rounding activations to bf16). */
#include "model/gemm.h"
#include "model/gemm_kernels.h"
#include "util/error.h"

#include <assert.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- which kernels ---------------------------------------------------------------------------------------- */

static int cpu_has_avx512(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

static int cpu_has_avx512_bf16(void) {
#if defined(__x86_64__)
    return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

static const GemmKernels *chosen;
static int force_emulation = 0;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

/* The widest the CPU has, unless KNNLM_ISA=avx2 asks for the baseline (other values: the CLI refuses them). */
static void choose_from_cpu(void) {
    const char *env = getenv("KNNLM_ISA");
    chosen = &gemm_kernels_avx2;
#if defined(__x86_64__)
    if (cpu_has_avx512() && !(env && strcmp(env, "avx2") == 0)) chosen = &gemm_kernels_avx512;
#else
    (void)env;
#endif
}

static const GemmKernels *kernels(void) {
    pthread_once(&chosen_once, choose_from_cpu);
    return chosen;
}

const char *gemm_isa(void) { return kernels()->name; }

int gemm_set_isa(const char *name) {
    pthread_once(&chosen_once, choose_from_cpu);
    if (strcmp(name, "avx2") == 0) {
        chosen = &gemm_kernels_avx2;
        return KN_OK;
    }
#if defined(__x86_64__)
    if (strcmp(name, "avx512") == 0) {
        if (!cpu_has_avx512()) return kn_error(KN_EINVAL, "KNNLM_ISA=avx512: this CPU has no AVX-512 (F, VL, BW, DQ)");
        chosen = &gemm_kernels_avx512;
        return KN_OK;
    }
#endif
    return kn_error(KN_EINVAL, "KNNLM_ISA=%s: expected avx2 or avx512", name);
}

void gemm_bf16_force_emulation(int on) { force_emulation = on; }

int gemm_bf16_native(void) { return strcmp(kernels()->name, "avx512") == 0 && cpu_has_avx512_bf16(); }

static int bf16_native_now(void) { return gemm_bf16_native() && !force_emulation; }

/* ---- fp32 ------------------------------------------------------------------------------------------------- */

size_t gemm_scratch_floats(int K) { return (size_t)K * GEMM_NR + 16; }

void gemm_f32(float *out, size_t ldo, const float *inp, size_t ldi, const float *w, size_t ldw, const float *bias, int M, int K, int N,
              int mode, Gpt2Activation act, float *scratch, int nthreads) {
    kernels()->f32(out, ldo, inp, ldi, w, ldw, bias, M, K, N, mode, act, scratch, nthreads);
}

void gemm_f32_block(float *out, size_t ldo, const float *inp, size_t ldi, const float *b, size_t ldb, int M, int K, int cols) {
    kernels()->f32_block(out, ldo, inp, ldi, b, ldb, M, K, cols);
}

size_t gemm_f32_packed_size(int K, int N) { return (size_t)(N + GEMM_NR - 1) / GEMM_NR * K * GEMM_NR; }

void gemm_pack_f32(float *packed, const float *w, size_t ldw, int K, int N, int transposed, int nthreads) {
    const int np = (N + GEMM_NR - 1) / GEMM_NR;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int p = 0; p < np; p++) {
        float *dst = packed + (size_t)p * K * GEMM_NR;
        const int n0 = p * GEMM_NR, cols = N - n0 < GEMM_NR ? N - n0 : GEMM_NR;
        if (transposed) {
            /* column j of the panel is row n0 + j of w: read each row once, contiguously */
            memset(dst, 0, (size_t)K * GEMM_NR * sizeof(float));
            for (int j = 0; j < cols; j++) {
                const float *row = w + (size_t)(n0 + j) * ldw;
                for (int k = 0; k < K; k++) dst[(size_t)k * GEMM_NR + j] = row[k];
            }
        } else {
            for (int k = 0; k < K; k++) {
                memcpy(dst + (size_t)k * GEMM_NR, w + (size_t)k * ldw + n0, (size_t)cols * sizeof(float));
                memset(dst + (size_t)k * GEMM_NR + cols, 0, (size_t)(GEMM_NR - cols) * sizeof(float));
            }
        }
    }
}
void gemm_f32_packed(float *out, size_t ldo, const float *inp, size_t ldi, const float *packed, int M, int K, int N, int nthreads) {
    kernels()->f32_packed(out, ldo, inp, ldi, packed, M, K, N, nthreads);
}

/* ---- bf16 ------------------------------------------------------------------------------------------------- */

size_t gemm_bf16_packed_size(int K, int N) {
    const size_t Kp = (size_t)(K + 1) / 2 * 2, np = (size_t)(N + GEMM_NR - 1) / GEMM_NR;
    return np * Kp * GEMM_NR;
}

void gemm_pack_bf16(uint16_t *packed, const float *w, size_t ldw, int K, int N, int transposed, int nthreads) {
    const int Kp = (K + 1) / 2 * 2, np = (N + GEMM_NR - 1) / GEMM_NR;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int p = 0; p < np; p++) {
        uint16_t *dst = packed + (size_t)p * Kp * GEMM_NR;
        for (int k = 0; k < Kp; k++)
            for (int j = 0; j < GEMM_NR; j++) {
                const int n = p * GEMM_NR + j;
                float x = 0.0f;
                if (k < K && n < N) x = transposed ? w[(size_t)n * ldw + k] : w[(size_t)k * ldw + n];
                dst[(size_t)(k / 2) * 2 * GEMM_NR + 2 * j + (k & 1)] = gemm_bf16_round(x);
            }
    }
}

void gemm_to_bf16(uint16_t *out, const float *inp, size_t ldi, int M, int K, int nthreads) {
    const int Kp = (K + 1) / 2 * 2;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && (size_t)M * K > 65536)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * ldi;
        uint16_t *o = out + (size_t)m * Kp;
#pragma omp simd
        for (int k = 0; k < K; k++) o[k] = gemm_bf16_round(x[k]);
        if (Kp > K) o[K] = 0;
    }
}

void gemm_bf16(float *out, size_t ldo, const uint16_t *inp, const uint16_t *w, const float *bias, int M, int K, int N, int mode,
               Gpt2Activation act, int nthreads) {
    kernels()->bf16((GemmOut){out, NULL, ldo}, inp, w, bias, M, K, N, mode, act, bf16_native_now(), nthreads);
}

void gemm_bf16_out_bf16(uint16_t *out, size_t ldo, const uint16_t *inp, const uint16_t *w, const float *bias, int M, int K, int N, int mode,
                        Gpt2Activation act, int nthreads) {
    assert(!(mode & GEMM_ACCUMULATE)); /* a residual stream in bf16 would lose it */
    kernels()->bf16((GemmOut){NULL, out, ldo}, inp, w, bias, M, K, N, mode, act, bf16_native_now(), nthreads);
    if (ldo > (size_t)N)
        for (int m = 0; m < M; m++) out[(size_t)m * ldo + N] = 0; /* the pad column of an odd N, as gemm_to_bf16 */
}

void gemm_bf16_block(float *out, size_t ldo, const uint16_t *inp, size_t ldi, const uint16_t *b, size_t ldb, int M, int Kp, int cols) {
    kernels()->bf16_block(out, ldo, inp, ldi, b, ldb, M, Kp, cols, bf16_native_now());
}
