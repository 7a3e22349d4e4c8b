/* synth.c — the synthetic key generator of synth.h. */
#include "dstore/synth.h"

#include "model/gemm.h"
#include "util/error.h"
#include "util/rng.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The principal-component variances (eigenvalues of the covariance, descending) of the bundled tiny Korean
 * GPT-2's last_ffn_input keys over the first 300,000 tokens of the kowiki sample (the quick start's
 * datastore), computed in float64 by bench/key_spectrum.py. */
static const double REAL_SPECTRUM[] = {
#include "dstore/synth_spectrum.inc"
};
enum { REAL_DIM = (int)(sizeof REAL_SPECTRUM / sizeof REAL_SPECTRUM[0]) };

enum { VALUES_PER_CLUSTER = 16, BLOCK_ROWS = 256, MAX_DIM = 4096 };

struct Synth {
    SynthOptions opt;
    double *spectrum;   /* [D] */
    float *centre;      /* [C, D] */
    float *scale;       /* [C, D] */
    int32_t *values;    /* [C, VALUES_PER_CLUSTER]: the cluster's own token first */
    float *rotation;    /* [D, D]: x = y @ rotation, rotation = R^T with R orthonormal */
};

void synth_defaults(SynthOptions *opt, int dim) {
    opt->dim = dim;
    opt->clusters = 4096;
    opt->seed = 1;
    opt->between = 0.5;
    opt->anisotropy = 0.5;
    opt->skew = 2;
    opt->vocab = 51200;
}

const SynthOptions *synth_options(const Synth *synth) { return &synth->opt; }
const double *synth_spectrum(const Synth *synth) { return synth->spectrum; }

/* A generator state for stream `what` of item i: different seeds, streams and items never share a state. */
static uint64_t stream_state(uint64_t seed, uint64_t what, uint64_t i) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull ^ what * 0xd1b54a32d192ed03ull;
    splitmix64(&s);
    s ^= i * 0xbf58476d1ce4e5b9ull;
    splitmix64(&s);
    return s;
}

/* Standard normals into out[n] (n even or not), Box–Muller in double. */
static void normals(uint64_t *st, double *out, int n) {
    for (int i = 0; i < n; i += 2) {
        double u1 = 1.0 - splitmix64_unit(st); /* (0, 1]: log is finite */
        double u2 = splitmix64_unit(st);
        double r = sqrt(-2.0 * log(u1));
        out[i] = r * cos(2.0 * M_PI * u2);
        if (i + 1 < n) out[i + 1] = r * sin(2.0 * M_PI * u2);
    }
}

/* The real spectrum stretched to D values: log λ interpolated linearly at relative rank j / (D - 1), then
 * scaled to the real mean variance per coordinate. */
static void stretch_spectrum(double *out, int D) {
    double real_mean = 0, mean = 0;
    for (int i = 0; i < REAL_DIM; i++) real_mean += REAL_SPECTRUM[i] / REAL_DIM;
    for (int j = 0; j < D; j++) {
        double r = D == 1 ? 0 : (double)j * (REAL_DIM - 1) / (D - 1);
        int i = (int)r;
        if (i >= REAL_DIM - 1) i = REAL_DIM - 2;
        double f = r - i;
        out[j] = exp((1 - f) * log(REAL_SPECTRUM[i]) + f * log(REAL_SPECTRUM[i + 1]));
        mean += out[j] / D;
    }
    for (int j = 0; j < D; j++) out[j] *= real_mean / mean;
}

/* A random rotation: Gram–Schmidt (modified, twice for accuracy) on Gaussian rows, in double; stored
 * transposed for the product x = y @ rotation. */
static int make_rotation(Synth *s) {
    int D = s->opt.dim;
    double *r = malloc(sizeof(double) * D * D);
    if (!r) return kn_error(KN_ENOMEM, "synthetic keys: out of memory for a %dx%d rotation", D, D);
    uint64_t st = stream_state(s->opt.seed, 3, 0);
    normals(&st, r, D * D);
    for (int i = 0; i < D; i++) {
        double *ri = r + (size_t)i * D;
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                const double *rj = r + (size_t)j * D;
                double dot = 0;
                for (int c = 0; c < D; c++) dot += ri[c] * rj[c];
                for (int c = 0; c < D; c++) ri[c] -= dot * rj[c];
            }
        double norm = 0;
        for (int c = 0; c < D; c++) norm += ri[c] * ri[c];
        norm = sqrt(norm);
        for (int c = 0; c < D; c++) ri[c] /= norm;
    }
    for (int i = 0; i < D; i++)
        for (int c = 0; c < D; c++) s->rotation[(size_t)c * D + i] = (float)r[(size_t)i * D + c];
    free(r);
    return KN_OK;
}

int synth_create(Synth **out, const SynthOptions *opt) {
    *out = NULL;
    if (opt->dim < 1 || opt->dim > MAX_DIM) return kn_error(KN_EINVAL, "synthetic keys: dimension %d is not in [1, %d]", opt->dim, MAX_DIM);
    if (opt->clusters < 1) return kn_error(KN_EINVAL, "synthetic keys: clusters %d must be at least 1", opt->clusters);
    if (!(opt->between >= 0 && opt->between <= 1)) return kn_error(KN_EINVAL, "synthetic keys: between %g is not in [0, 1]", opt->between);
    if (!(opt->anisotropy >= 0 && opt->anisotropy <= 4)) return kn_error(KN_EINVAL, "synthetic keys: anisotropy %g is not in [0, 4]", opt->anisotropy);
    if (!(opt->skew > 0 && opt->skew <= 16)) return kn_error(KN_EINVAL, "synthetic keys: skew %g is not in (0, 16]", opt->skew);
    if (opt->vocab < VALUES_PER_CLUSTER) return kn_error(KN_EINVAL, "synthetic keys: vocab %d is below %d", opt->vocab, VALUES_PER_CLUSTER);
    Synth *s = calloc(1, sizeof *s);
    if (!s) return kn_error(KN_ENOMEM, "synthetic keys: out of memory");
    s->opt = *opt;
    int D = opt->dim, C = opt->clusters;
    s->spectrum = malloc(sizeof(double) * D);
    s->centre = malloc(sizeof(float) * (size_t)C * D);
    s->scale = malloc(sizeof(float) * (size_t)C * D);
    s->values = malloc(sizeof(int32_t) * (size_t)C * VALUES_PER_CLUSTER);
    s->rotation = malloc(sizeof(float) * (size_t)D * D);
    double *g = malloc(sizeof(double) * 2 * D);
    if (!s->spectrum || !s->centre || !s->scale || !s->values || !s->rotation || !g) {
        free(g);
        synth_free(s);
        return kn_error(KN_ENOMEM, "synthetic keys: out of memory for %d clusters of dimension %d", C, D);
    }
    stretch_spectrum(s->spectrum, D);
    double tau = opt->anisotropy;
    for (int c = 0; c < C; c++) {
        uint64_t st = stream_state(opt->seed, 1, (uint64_t)c);
        normals(&st, g, 2 * D);
        for (int j = 0; j < D; j++) {
            s->centre[(size_t)c * D + j] = (float)(sqrt(opt->between * s->spectrum[j]) * g[j]);
            s->scale[(size_t)c * D + j] = (float)(sqrt((1 - opt->between) * s->spectrum[j]) * exp(tau * g[D + j] - tau * tau));
        }
        for (int v = 0; v < VALUES_PER_CLUSTER; v++)
            s->values[c * VALUES_PER_CLUSTER + v] = (int32_t)(splitmix64(&st) % (uint64_t)opt->vocab);
    }
    free(g);
    int rc = make_rotation(s);
    if (rc != KN_OK) {
        synth_free(s);
        return rc;
    }
    *out = s;
    return KN_OK;
}

void synth_free(Synth *s) {
    if (!s) return;
    free(s->spectrum);
    free(s->centre);
    free(s->scale);
    free(s->values);
    free(s->rotation);
    free(s);
}

/* Row i before the rotation: y[D] and its value. */
static int32_t row_unrotated(const Synth *s, int64_t i, float *y, double *z) {
    int D = s->opt.dim, C = s->opt.clusters;
    uint64_t st = stream_state(s->opt.seed, 2, (uint64_t)i);
    double u = splitmix64_unit(&st);
    int c = (int)((double)C * pow(u, s->opt.skew));
    if (c >= C) c = C - 1;
    uint64_t pick = splitmix64(&st);
    int v = (pick & 1) ? 0 : 1 + (int)((pick >> 1) % (VALUES_PER_CLUSTER - 1));
    normals(&st, z, D);
    const float *mu = s->centre + (size_t)c * D, *sigma = s->scale + (size_t)c * D;
    for (int j = 0; j < D; j++) y[j] = (float)((double)mu[j] + (double)sigma[j] * z[j]);
    return s->values[c * VALUES_PER_CLUSTER + v];
}

int synth_rows(const Synth *s, int64_t first, int64_t n, float *x, int32_t *vals, int nthreads) {
    int D = s->opt.dim;
    if (nthreads < 1) nthreads = 1;
    float *y = malloc(sizeof(float) * (size_t)BLOCK_ROWS * D);
    double *z = malloc(sizeof(double) * (size_t)nthreads * D);
    float *scratch = malloc(sizeof(float) * gemm_scratch_floats(D) * (size_t)nthreads);
    if (!y || !z || !scratch) {
        free(y);
        free(z);
        free(scratch);
        return kn_error(KN_ENOMEM, "synthetic keys: out of memory for a block of %d rows", BLOCK_ROWS);
    }
    for (int64_t b = 0; b < n; b += BLOCK_ROWS) {
        int m = (int)(n - b < BLOCK_ROWS ? n - b : BLOCK_ROWS);
#pragma omp parallel for num_threads(nthreads) schedule(static)
        for (int r = 0; r < m; r++) {
            int32_t v = row_unrotated(s, first + b + r, y + (size_t)r * D, z + (size_t)omp_get_thread_num() * D);
            if (vals) vals[b + r] = v;
        }
        gemm_f32(x + (size_t)b * D, (size_t)D, y, (size_t)D, s->rotation, (size_t)D, NULL, m, D, D, GEMM_STORE, (Gpt2Activation)0,
                 scratch, nthreads);
    }
    free(y);
    free(z);
    free(scratch);
    return KN_OK;
}

void synth_describe(const Synth *s, char *buf, int cap) {
    const SynthOptions *o = &s->opt;
    snprintf(buf, (size_t)cap,
             "synth v1: D=%d C=%d alpha=%g tau=%g beta=%g seed=%llu vocab=%d spectrum=tiny-kogpt2 last_ffn_input (%d -> %d)",
             o->dim, o->clusters, o->between, o->anisotropy, o->skew, (unsigned long long)o->seed, o->vocab, REAL_DIM, o->dim);
}
