/* gemm.h — the matrix products of the forward pass, fp32 and bf16, with the bias, the activation and the
 * residual add done on each output tile while it is in registers (no extra passes over the activations).
 *
 *   out[M,N] = inp[M,K] @ w[K,N] + bias[N]                 (GEMM_STORE)
 *   out[M,N] = act(inp[M,K] @ w[K,N] + bias[N])            (GEMM_ACTIVATE)
 *   out[M,N] += inp[M,K] @ w[K,N] + bias[N]                (GEMM_ACCUMULATE: the residual stream)
 *
 * Every output element is computed the same way whatever the thread count, the tiling or M: the accumulator
 * starts at the bias (or 0) and takes one fused multiply-add per k, in order k = 0..K-1 (bf16: one pair of
 * k per step, k+1 then k, as VDPBF16PS does). So results are bit-identical for any thread count, and a token
 * decoded alone gets the same numbers as in a batch.
 *
 * Instruction sets: the program is built for x86-64-v3 (AVX2 + FMA) and runs these products with AVX-512 where
 * the CPU has it (and VDPBF16PS where it has AVX512_BF16), chosen at run time; KNNLM_ISA=avx2 in the
 * environment forces the AVX2 kernels. Same arithmetic, so the same bits on both.
 *
 * Layout: row-major; w is a Conv1D weight [in, out] = [K, N]. The fp32 product packs panels of GEMM_NR
 * columns of w on the fly (into `scratch`, gemm_scratch_floats per thread), or streams w's rows when
 * M <= GEMM_MR (decoding). The bf16 product takes weights packed once by gemm_pack_bf16 and activations converted by
 * gemm_to_bf16. */
#ifndef KN_GEMM_H
#define KN_GEMM_H

#include "model/config.h"

#include <stddef.h>
#include <stdint.h>

#define GEMM_MR 6   /* rows of a register tile */
#define GEMM_NR 64  /* columns of a register tile: 4 vectors of 16 floats */

/* mode: GEMM_STORE, or GEMM_ACCUMULATE and/or GEMM_ACTIVATE (act(.) is added when both are set) */
enum { GEMM_STORE = 0, GEMM_ACCUMULATE = 1, GEMM_ACTIVATE = 2 };

/* Floats of scratch one thread needs for an fp32 product with inner dimension K. */
size_t gemm_scratch_floats(int K);

/* out (ldo) = or += [act](inp (ldi) @ w[K,N] (ldw) + bias) as mode says; act is read only with GEMM_ACTIVATE. bias may be NULL.
 * Runs on nthreads OpenMP threads (1: in the calling thread, e.g. inside a parallel region); scratch holds
 * gemm_scratch_floats(K) floats per thread. */
void gemm_f32(float *out, size_t ldo, const float *inp, size_t ldi, const float *w, size_t ldw, const float *bias, int M, int K, int N,
              int mode, Gpt2Activation act, float *scratch, int nthreads);

/* One block of at most GEMM_NR columns, in the calling thread, reading b in place: out[M, cols] (ldo) =
 * inp[M,K] (ldi) @ b[K, cols] (ldb). cols is a multiple of 16 and every row of b is readable for cols floats.
 * The attention's Q K^T and P V products. */
void gemm_f32_block(float *out, size_t ldo, const float *inp, size_t ldi, const float *b, size_t ldb, int M, int K, int cols);

/* fp32 weights packed once, for a weight read by many calls in a layout the product cannot stream (the lm_head's
 * wte is [V, C], the transpose of what it needs): panels of GEMM_NR columns, each [K][GEMM_NR] (the last padded
 * with zeros). With transposed, w is [N,K]. gemm_f32_packed_size gives the float count. */
size_t gemm_f32_packed_size(int K, int N);
void gemm_pack_f32(float *packed, const float *w, size_t ldw, int K, int N, int transposed, int nthreads);

/* out[M,N] (ldo) = inp[M,K] (ldi) @ w, w packed by gemm_pack_f32: gemm_f32's arithmetic (one FMA per k, in
 * order), each thread whole panels, for any M. */
void gemm_f32_packed(float *out, size_t ldo, const float *inp, size_t ldi, const float *packed, int M, int K, int N, int nthreads);

/* bf16 weights: w[K,N] (fp32, ldw) rounded to bf16 (nearest even) and packed in panels of GEMM_NR columns,
 * each [Kp/2][GEMM_NR][2] (Kp = K rounded up to even; the last panel and row padded with zeros). With
 * transposed, w is [N,K] (the lm_head's wte). gemm_bf16_packed_size gives the uint16 count. */
size_t gemm_bf16_packed_size(int K, int N);
void gemm_pack_bf16(uint16_t *packed, const float *w, size_t ldw, int K, int N, int transposed, int nthreads);

/* Activations to bf16 for gemm_bf16: out[M, Kp] (Kp = K rounded up to even; the pad column is 0). */
void gemm_to_bf16(uint16_t *out, const float *inp, size_t ldi, int M, int K, int nthreads);

/* gemm_f32 with bf16 inputs and fp32 accumulation: inp is gemm_to_bf16's [M, Kp], w gemm_pack_bf16's. */
void gemm_bf16(float *out, size_t ldo, const uint16_t *inp, const uint16_t *w, const float *bias, int M, int K, int N, int mode,
               Gpt2Activation act, int nthreads);

/* gemm_bf16 writing its output in bf16 (rounded after the activation), [M, ldo] with ldo >= N rounded up to even
 * (a pad column is zeroed): directly the next product's input. GEMM_STORE or GEMM_ACTIVATE. */
void gemm_bf16_out_bf16(uint16_t *out, size_t ldo, const uint16_t *inp, const uint16_t *w, const float *bias, int M, int K, int N, int mode,
                        Gpt2Activation act, int nthreads);

/* gemm_bf16 for one block of at most GEMM_NR columns, in the calling thread, b in place: out[M, cols] (ldo) =
 * inp[M, Kp] (bf16, ldi) @ b, where b holds bf16 pairs: step kk (k = 2kk, 2kk+1) of column n at
 * b[kk * ldb + 2n + (k & 1)]. Kp is even; cols a multiple of 16 with every step readable for cols pairs. The
 * attention's products in GPT2_BF16. */
void gemm_bf16_block(float *out, size_t ldo, const uint16_t *inp, size_t ldi, const uint16_t *b, size_t ldb, int M, int Kp, int cols);

/* Round to nearest even, NaN to 0x7fc0: util/half's f32_to_bf16, inline so that loops over it vectorise. */
static inline uint16_t gemm_bf16_round(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, sizeof u);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : r);
}

/* The kernels in use: "avx512" where the CPU has AVX-512 F, VL, BW and DQ and KNNLM_ISA is not "avx2", else
 * "avx2". gemm_set_isa forces one ("avx2" or "avx512"; KN_EINVAL if unknown or this CPU lacks it), not while a
 * product runs: tests, benchmarks, and the CLI's check of KNNLM_ISA. */
const char *gemm_isa(void);
int gemm_set_isa(const char *name);

/* 1 if the AVX-512 kernels are in use and this CPU has AVX512_BF16 (VDPBF16PS); else gemm_bf16 emulates it
 * with fp32 fused multiply-adds in the same order. gemm_bf16_force_emulation(1) makes it emulate anyway (tests). */
int gemm_bf16_native(void);
void gemm_bf16_force_emulation(int on);

#endif
