/* half.c — see half.h. */
#include "util/half.h"

#include <string.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | mant << 13); /* inf, nan (payload kept) */
    if (exp == 0) {                                                        /* zero, subnormal: mant * 2^-24 */
        float f = (float)mant * 0x1.0p-24f;
        return sign ? -f : f;
    }
    return bits_to_float(sign | (exp + 112) << 23 | mant << 13);
}

uint16_t float_to_half(float f) {
    uint32_t u = float_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((abs >> 13) & 0x3ff); /* nan stays nan */
    if (abs >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {                       /* below the smallest normal half: subnormal or zero */
        /* adding 0.5 (2^-1) aligns the value so that the float adder rounds it to nearest even at 2^-24 */
        float r = bits_to_float(abs) + 0.5f;
        return sign | (uint16_t)(float_to_bits(r) - 0x3f000000u);
    }
    uint32_t mant_odd = (abs >> 13) & 1;
    abs += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return sign | (uint16_t)(abs >> 13);
}

void halves_to_floats(float *out, const uint16_t *in, size_t n) {
    size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
#endif
    for (; i < n; i++) out[i] = half_to_float(in[i]);
}

void floats_to_halves(uint16_t *out, const float *in, size_t n) {
    size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; i++) out[i] = float_to_half(in[i]);
}
