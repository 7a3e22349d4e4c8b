/* gemm_kernels_avx512.c — gemm_kernels.c again, for CPUs with AVX-512 (F, VL, BW, DQ: every one that has
 * AVX512_BF16 too). The rest of the program is built for x86-64-v3 and runs anywhere; gemm.c calls this table
 * only where __builtin_cpu_supports says the CPU has these instructions. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#define GEMM_KERNELS gemm_kernels_avx512
#define GEMM_KERNELS_NAME "avx512"
#define GEMM_NATIVE_BF16 1
#include "model/gemm_kernels.c"
#else
typedef int gemm_kernels_avx512_unused; /* ISO C: a translation unit is not empty */
#endif
