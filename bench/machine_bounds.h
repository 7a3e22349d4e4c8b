/* machine_bounds.h — what this machine can do at most, measured in the benchmark's own run, so that every
 * figure it prints can be given as a share of a bound rather than against a number from a data sheet:
 *
 *   - the fp32 FMA peak: register-only chains of fused multiply-adds on every thread (zmm where the CPU has
 *     AVX-512, else ymm), 16 independent chains per thread, enough to cover the FMA latency on Zen 4 and Zen 5;
 *   - the bf16 dot-product peak: the same with VDPBF16PS (64 FLOP per instruction), where the CPU has
 *     AVX512_BF16; else 0;
 *   - the read bandwidth: a sum over MACHINE_STREAM_BYTES of memory split between the threads, best of 5 passes.
 *
 * A header of static functions because every C file in bench/ is a program of its own. */
#ifndef KN_BENCH_MACHINE_BOUNDS_H
#define KN_BENCH_MACHINE_BOUNDS_H

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <time.h>

#define MACHINE_STREAM_BYTES ((size_t)1 << 30)

typedef struct {
    double fma_gflops;  /* fp32 fused multiply-adds, all threads */
    double bf16_gflops; /* VDPBF16PS, all threads; 0 without AVX512_BF16 */
    double read_gbs;    /* streaming read, all threads */
    const char *vector; /* "zmm" or "ymm": the registers of the FMA loop */
} MachineBounds;

static double mb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* x = x * m + c on 16 chains, iters times; returns something of the result so that nothing is optimised away. */
__attribute__((target("avx512f"))) static float mb_fma_zmm(long iters, float seed) {
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    __m512 x[16];
    for (int j = 0; j < 16; j++) x[j] = _mm512_set1_ps(seed + (float)j);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) x[j] = _mm512_fmadd_ps(x[j], m, c);
    __m512 s = x[0];
    for (int j = 1; j < 16; j++) s = _mm512_add_ps(s, x[j]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float mb_fma_ymm(long iters, float seed) {
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    __m256 x[12]; /* 12 chains + 2 constants in AVX2's 16 registers */
    for (int j = 0; j < 12; j++) x[j] = _mm256_set1_ps(seed + (float)j);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) x[j] = _mm256_fmadd_ps(x[j], m, c);
    __m256 s = x[0];
    for (int j = 1; j < 12; j++) s = _mm256_add_ps(s, x[j]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f,avx512bf16"))) static float mb_bf16_zmm(long iters, float seed) {
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6); /* 1.0 and 1e-7 in bf16 */
    __m512 x[16];
    for (int j = 0; j < 16; j++) x[j] = _mm512_set1_ps(seed + (float)j);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) x[j] = _mm512_dpbf16_ps(x[j], a, b);
    __m512 s = x[0];
    for (int j = 1; j < 16; j++) s = _mm512_add_ps(s, x[j]);
    return _mm512_reduce_add_ps(s);
}

enum { MB_FMA_ZMM, MB_FMA_YMM, MB_BF16_ZMM };

/* GFLOP/s of one loop on `threads` threads: best of 3 runs of about 0.2 s each. */
static double mb_peak(int kind, int threads) {
    const long iters = 20 * 1000 * 1000;
    const double lanes = kind == MB_FMA_YMM ? 8 : 16, chains = kind == MB_FMA_YMM ? 12 : 16, flop_per_lane = kind == MB_BF16_ZMM ? 4 : 2;
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < 3; r++) {
        const double t0 = mb_now();
#pragma omp parallel num_threads(threads)
        {
            const float seed = (float)omp_get_thread_num();
            const float v = kind == MB_FMA_ZMM ? mb_fma_zmm(iters, seed) : kind == MB_FMA_YMM ? mb_fma_ymm(iters, seed) : mb_bf16_zmm(iters, seed);
#pragma omp atomic
            sink += v;
        }
        const double t = mb_now() - t0, gflops = (double)threads * iters * chains * lanes * flop_per_lane / t / 1e9;
        best = gflops > best ? gflops : best;
    }
    (void)sink;
    return best;
}

/* GB/s of a streaming read of MACHINE_STREAM_BYTES split between the threads, best of 5 passes (the pages
 * are written once first, so none of them is the zero page). Eight independent vector sums per thread, so that
 * the adds' latency does not bound the loop below the memory (one sum reads ~40 GB/s here, eight ~70). */
typedef float mb_v8 __attribute__((vector_size(32)));

static float mb_sum_span(const float *p, size_t n) {
    mb_v8 a[8] = {{0}};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 8; j++) {
            mb_v8 x;
            __builtin_memcpy(&x, p + i + 8 * j, sizeof x);
            a[j] += x;
        }
    float s = 0;
    for (; i < n; i++) s += p[i];
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 8; l++) s += a[j][l];
    return s;
}

static double mb_read_bandwidth(int threads) {
    const size_t n = MACHINE_STREAM_BYTES / sizeof(float);
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (!buf) return 0;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023);
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < 5; r++) {
        const double t0 = mb_now();
        float total = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : total)
        for (int t = 0; t < threads; t++) {
            const size_t i0 = n / threads * t, i1 = t == threads - 1 ? n : n / threads * (t + 1);
            total += mb_sum_span(buf + i0, i1 - i0);
        }
        const double t = mb_now() - t0;
        sink += total;
        best = MACHINE_STREAM_BYTES / t / 1e9 > best ? MACHINE_STREAM_BYTES / t / 1e9 : best;
    }
    (void)sink;
    free(buf);
    return best;
}

static MachineBounds machine_bounds(int threads) {
    MachineBounds b = {0};
    const int zmm = __builtin_cpu_supports("avx512f");
    b.vector = zmm ? "zmm" : "ymm";
    b.fma_gflops = mb_peak(zmm ? MB_FMA_ZMM : MB_FMA_YMM, threads);
    b.bf16_gflops = zmm && __builtin_cpu_supports("avx512bf16") ? mb_peak(MB_BF16_ZMM, threads) : 0;
    b.read_gbs = mb_read_bandwidth(threads);
    return b;
}

#endif
