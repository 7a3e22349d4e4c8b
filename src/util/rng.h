/* rng.h — splitmix64: a small, well-mixed 64-bit generator. Wherever a result must be reproducible from a
 * seed alone (the corpus split, the index's training sample), this is the generator. */
#ifndef KN_RNG_H
#define KN_RNG_H

#include <stdint.h>

static inline uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A double uniform in [0, 1). */
static inline double splitmix64_unit(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

#endif
