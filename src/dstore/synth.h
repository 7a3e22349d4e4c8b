/* synth.h — synthetic datastore keys for runs at the mission's scale, where real keys (107 M forward passes,
 * 165 GB) cannot be made or stored: a fixed-seed generator that gives any row of an unbounded stream on its
 * own, so a run can regenerate any shard (to add it to an index, or to scan it for exact neighbours) instead
 * of storing it.
 *
 * The distribution (everything below is fixed by the options; row i depends only on the seed and i):
 *
 *   spectrum    λ_1 >= ... >= λ_D: the principal-component variances measured on real keys (the bundled
 *               tiny Korean GPT-2's last_ffn_input keys over 300,000 kowiki tokens, 128 values; see
 *               synth.c), stretched to D by interpolating log λ linearly in the relative rank, and scaled so
 *               that the mean variance per coordinate is the real keys' one.
 *   clusters    C centres μ_c ~ N(0, α diag(λ)) and per-cluster scales σ_c,j = sqrt((1 − α) λ_j) e^{τ g − τ²},
 *               g ~ N(0, 1) per cluster and coordinate (so E σ² = (1 − α) λ_j: each cluster is anisotropic in
 *               its own way, and on average the spectrum is λ).
 *   a row       c = floor(C u^β) with u ~ U(0, 1) (β > 1 makes low-numbered clusters popular: a few contexts
 *               are very common, as in text), y = μ_c + σ_c ⊙ z with z ~ N(0, I), and the key x = R y with R a
 *               fixed random rotation (so that no coordinate axis is special: a product quantizer's
 *               sub-spaces see the spectrum mixed, as they do on real keys).
 *   a value     the token that "follows" the row: with probability 1/2 the cluster's own token, else one of
 *               the cluster's 16 others (uniform): the kNN memory predicts well where a query's neighbours
 *               share a cluster.
 *
 * Randomness is splitmix64 seeded per row (and per cluster), Gaussians by Box–Muller in double, the rotation
 * by gemm_f32 (one FMA per k, in order): the same rows to the bit on every machine, thread count and
 * instruction set. Recall measured on these keys is a property of this distribution, not of KoGPT2's keys. */
#ifndef KN_SYNTH_H
#define KN_SYNTH_H

#include <stdint.h>

typedef struct {
    int dim;              /* D */
    int clusters;         /* C (default 4096) */
    uint64_t seed;        /* default 1 */
    double between;       /* α: the share of the variance between cluster centres (default 0.5) */
    double anisotropy;    /* τ (default 0.5) */
    double skew;          /* β (default 2) */
    int vocab;            /* values are token ids in [0, vocab) (default 51200, KoGPT2's) */
} SynthOptions;

void synth_defaults(SynthOptions *opt, int dim);

typedef struct Synth Synth;

/* KN_EINVAL names a bad option (dim < 1 or > 65536, clusters < 1, between outside [0, 1], ...). */
int synth_create(Synth **out, const SynthOptions *opt);
void synth_free(Synth *synth);

const SynthOptions *synth_options(const Synth *synth);

/* Rows first .. first+n-1 of the stream as float32 keys into x[n, dim] and, when vals is not NULL, their
 * values into vals[n]. Any first >= 0. Runs on nthreads OpenMP threads; the result does not depend on it.
 * KN_ENOMEM when its scratch cannot be allocated. */
int synth_rows(const Synth *synth, int64_t first, int64_t n, float *x, int32_t *vals, int nthreads);

/* The per-coordinate variances the generator was built with (after stretching), dim doubles. */
const double *synth_spectrum(const Synth *synth);

/* A one-line description of the distribution for result files, e.g.
 * "synth v1: D=768 C=4096 alpha=0.5 tau=0.5 beta=2 seed=1 spectrum=tiny-kogpt2 last_ffn_input (128 -> 768)". */
void synth_describe(const Synth *synth, char *buf, int cap);

#endif
