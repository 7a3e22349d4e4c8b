/* half.h — IEEE binary16 <-> float32 for whole arrays: datastore keys are stored as float16 and read back as
 * float32. Rounding is to nearest even, as numpy's astype(float16) does, so our files equal NumPy's. Uses the
 * F16C instructions when the build targets a CPU that has them, a bit-exact scalar path otherwise. */
#ifndef KN_HALF_H
#define KN_HALF_H

#include <stddef.h>
#include <stdint.h>

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

void halves_to_floats(float *out, const uint16_t *in, size_t n);
void floats_to_halves(uint16_t *out, const float *in, size_t n);

#endif
