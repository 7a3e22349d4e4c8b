/* half.h — IEEE binary16 <-> float32 for whole arrays: datastore keys are stored as float16 and read back as
 * float32. Rounding is to nearest even, as numpy's astype(float16) does, so our files equal NumPy's. Uses the
 * F16C instructions when the build targets a CPU that has them, a bit-exact scalar path otherwise. */
#ifndef KN_HALF_H
#define KN_HALF_H

#include <stddef.h>
#include <stdint.h>

/* One value. Widening is exact and keeps NaN payloads; narrowing rounds to nearest even and turns any NaN
 * into the quiet NaN 0x7E00 / 0x7FC0 (sign kept), as PyTorch's c10 does. */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);

/* Whole arrays (F16C when the build targets it). */
void halves_to_floats(float *out, const uint16_t *in, size_t n);
void floats_to_halves(uint16_t *out, const float *in, size_t n);

#endif
