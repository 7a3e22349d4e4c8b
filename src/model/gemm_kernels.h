/* gemm_kernels.h — the products of gemm.h as one table per instruction set: gemm_kernels_avx2 (gemm_kernels.c,
 * built for the baseline x86-64-v3) and gemm_kernels_avx512 (gemm_kernels_avx512.c). gemm.c chooses one at run
 * time and checks the arguments; the kernels trust them. Not part of the public API. */
#ifndef KN_GEMM_KERNELS_H
#define KN_GEMM_KERNELS_H

#include "model/gemm.h"

/* Where a bf16 product writes: fp32 (f) or bf16 (b), one of them NULL, row length ld. */
typedef struct {
    float *f;
    uint16_t *b;
    size_t ld;
} GemmOut;

typedef struct {
    const char *name; /* "avx2", "avx512" */
    void (*f32)(float *out, size_t ldo, const float *inp, size_t ldi, const float *w, size_t ldw, const float *bias, int M, int K, int N,
                int mode, Gpt2Activation act, float *scratch, int nthreads);
    void (*f32_block)(float *out, size_t ldo, const float *inp, size_t ldi, const float *b, size_t ldb, int M, int K, int cols);
    void (*f32_packed)(float *out, size_t ldo, const float *inp, size_t ldi, const float *packed, int M, int K, int N, int nthreads);
    /* native: VDPBF16PS (only gemm_kernels_avx512 has it), else its emulation */
    void (*bf16)(GemmOut out, const uint16_t *inp, const uint16_t *w, const float *bias, int M, int K, int N, int mode, Gpt2Activation act,
                 int native, int nthreads);
    void (*bf16_block)(float *out, size_t ldo, const uint16_t *inp, size_t ldi, const uint16_t *b, size_t ldb, int M, int Kp, int cols,
                       int native);
} GemmKernels;

extern const GemmKernels gemm_kernels_avx2;
#if defined(__x86_64__)
extern const GemmKernels gemm_kernels_avx512;
#endif

#endif
