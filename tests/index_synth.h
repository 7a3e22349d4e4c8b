/* index_synth.h — synthetic vectors for tests/test_index.c and bench/bench_index.c: a fixed-seed mixture of
 * Gaussian clusters (so that IVF lists mean something) and the recall measure both report. Header-only
 * (static inline): each user is a single-file program. */
#ifndef KN_INDEX_SYNTH_H
#define KN_INDEX_SYNTH_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t state;
} SynthRng;

/* splitmix64: fast, and the same stream on every platform. */
static inline uint64_t synth_next(SynthRng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double synth_uniform(SynthRng *r) { return (double)(synth_next(r) >> 11) / 9007199254740992.0; }

static inline double synth_gaussian(SynthRng *r) {
    double u = synth_uniform(r), v = synth_uniform(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* centres[ncentres, d], uniform in [-1, 1]^d. */
static inline void synth_centres(SynthRng *r, float *centres, int ncentres, int d) {
    for (int64_t i = 0; i < (int64_t)ncentres * d; i++) centres[i] = (float)(2.0 * synth_uniform(r) - 1.0);
}

/* x[n, d]: each a centre drawn at random plus Gaussian noise of standard deviation sigma per coordinate. */
static inline void synth_points(SynthRng *r, float *x, int64_t n, int d, const float *centres, int ncentres, double sigma) {
    for (int64_t i = 0; i < n; i++) {
        const float *c = centres + (synth_next(r) % (uint64_t)ncentres) * (uint64_t)d;
        for (int j = 0; j < d; j++) x[i * d + j] = c[j] + (float)(sigma * synth_gaussian(r));
    }
}

/* Recall@k: the mean over nq queries of |first k of ids ∩ first k of ref| / k, where the rows of ids hold
 * kid entries and those of ref kref (both >= k). */
static inline double synth_recall(const int64_t *ids, int kid, const int64_t *ref, int kref, int64_t nq, int k) {
    long hits = 0;
    for (int64_t q = 0; q < nq; q++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) hits += ids[q * kid + i] == ref[q * kref + j];
    return (double)hits / ((double)nq * k);
}

#endif
