/* half.c — see half.h. */
#include "util/half.h"

#include <string.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));   /* inf, NaN (payload kept) */
    if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));  /* rebias 15 -> 127 */
    if (man == 0) return bits_to_f32(sign);
    /* subnormal: man * 2^-24, exact in float */
    float mag = (float)man * 0x1p-24f;
    return bits_to_f32(sign | f32_to_bits(mag));
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t man = u & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | (man ? 0x7e00 : 0x7c00));
    int e = (int)exp - 127 + 15;   /* the half exponent field, if the value were normal in half */
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
    uint32_t m, shift;
    if (e >= 1) {
        /* keep the top 10 of 23 mantissa bits; the carry of rounding may bump the exponent (even to inf) */
        uint32_t v = ((uint32_t)e << 10) | (man >> 13);
        uint32_t rest = man & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (v & 1))) v++;
        return (uint16_t)(sign | v);
    }
    if (e < -10) return sign;   /* below half of the smallest subnormal (2^-25): rounds to zero */
    /* subnormal half: the value is (0x800000 | man) * 2^(exp-150); express it in units of 2^-24 */
    m = 0x800000 | man;
    shift = (uint32_t)(14 - e);   /* 14..24 */
    uint32_t v = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (v & 1))) v++;
    return (uint16_t)(sign | v);   /* v may reach 0x400: the smallest normal, which is right */
}

float bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
    u += 0x7fff + ((u >> 16) & 1);   /* round to nearest even; a carry into the exponent is right */
    return (uint16_t)(u >> 16);
}

void halves_to_floats(float *out, const uint16_t *in, size_t n) {
    size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
#endif
    for (; i < n; i++) out[i] = f16_to_f32(in[i]);
}

void floats_to_halves(uint16_t *out, const float *in, size_t n) {
    size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; i++) out[i] = f32_to_f16(in[i]);
}
