/* test_synth.c — the synthetic key generator (src/dstore/synth.h): any row on its own, the same bits for any
 * block, offset and thread count, and the distribution it documents (the squared norm's mean is the
 * spectrum's sum, the rotation keeps norms, values in range and concentrated per cluster). */
#include "dstore/synth.h"
#include "test.h"
#include "util/error.h"

#include <stdint.h>

static Synth *make(int dim, uint64_t seed) {
    SynthOptions o;
    synth_defaults(&o, dim);
    o.seed = seed;
    Synth *s = NULL;
    CHECK(synth_create(&s, &o) == KN_OK);
    return s;
}

/* Rows 1000..1299 asked for alone, on one thread, equal the same rows of one call for 0..1499 on two threads. */
static void test_rows_do_not_depend_on_block_or_threads(void) {
    const int D = 96;
    Synth *s = make(D, 7);
    float *all = malloc(sizeof(float) * 1500 * D), *part = malloc(sizeof(float) * 300 * D);
    int32_t vall[1500], vpart[300];
    CHECK(synth_rows(s, 0, 1500, all, vall, 2) == KN_OK);
    CHECK(synth_rows(s, 1000, 300, part, vpart, 1) == KN_OK);
    CHECK(memcmp(all + 1000 * D, part, sizeof(float) * 300 * D) == 0);
    CHECK(memcmp(vall + 1000, vpart, sizeof vpart) == 0);
    /* without values, the keys are the same */
    CHECK(synth_rows(s, 1000, 300, part, NULL, 2) == KN_OK);
    CHECK(memcmp(all + 1000 * D, part, sizeof(float) * 300 * D) == 0);
    /* another seed, other keys */
    Synth *t = make(D, 8);
    CHECK(synth_rows(t, 1000, 300, part, NULL, 1) == KN_OK);
    CHECK(memcmp(all + 1000 * D, part, sizeof(float) * 300 * D) != 0);
    synth_free(t);
    free(all);
    free(part);
    synth_free(s);
}

/* E|x|^2 = sum of the spectrum (the centres carry alpha of it, the clusters' spread 1 - alpha, and the
 * rotation keeps norms); with 20,000 rows the sample mean is within a few percent of it. Values are token ids
 * below vocab, and each cluster's own token takes about half of its rows, so the most common value of the
 * stream is far above the uniform 1/vocab. */
static void test_distribution(void) {
    const int D = 64, N = 20000;
    Synth *s = make(D, 1);
    const double *lam = synth_spectrum(s);
    double total = 0;
    for (int j = 0; j < D; j++) {
        total += lam[j];
        if (j) CHECK(lam[j] <= lam[j - 1]);
    }
    float *x = malloc(sizeof(float) * N * D);
    int32_t *v = malloc(sizeof(int32_t) * N);
    CHECK(synth_rows(s, 0, N, x, v, 2) == KN_OK);
    double norm2 = 0;
    for (int64_t i = 0; i < (int64_t)N * D; i++) norm2 += (double)x[i] * x[i];
    norm2 /= N;
    CHECK_MSG(fabs(norm2 / total - 1) < 0.05, "mean |x|^2 %g, spectrum sum %g", norm2, total);
    int in_range = 1;
    for (int i = 0; i < N; i++) in_range &= v[i] >= 0 && v[i] < 51200;
    CHECK(in_range);
    /* the most popular cluster (c = 0: u^2 < 1/4096, probability 1/64) gives its own token to half its rows */
    int best = 0;
    for (int i = 0; i < 200; i++) {
        int c = 0;
        for (int j = 0; j < N; j++) c += v[j] == v[i];
        if (c > best) best = c;
    }
    CHECK_MSG(best > N / 200, "most common value has %d rows of %d", best, N);
    free(x);
    free(v);
    synth_free(s);
}

/* The stretched spectrum keeps the real one's mean variance per coordinate whatever D. */
static void test_spectrum_stretch(void) {
    Synth *a = make(128, 1), *b = make(768, 1);
    double ma = 0, mb = 0;
    for (int j = 0; j < 128; j++) ma += synth_spectrum(a)[j] / 128;
    for (int j = 0; j < 768; j++) mb += synth_spectrum(b)[j] / 768;
    CHECK_NEAR(ma / mb, 1.0, 1e-9);
    CHECK_NEAR(synth_spectrum(b)[0] / synth_spectrum(b)[767], synth_spectrum(a)[0] / synth_spectrum(a)[127], 1e-6 * synth_spectrum(a)[0] / synth_spectrum(a)[127]);
    char desc[300];
    synth_describe(b, desc, sizeof desc);
    CHECK(strstr(desc, "D=768") && strstr(desc, "(128 -> 768)"));
    synth_free(a);
    synth_free(b);
}

static void test_bad_options(void) {
    SynthOptions o;
    Synth *s = NULL;
    synth_defaults(&o, 0);
    CHECK(synth_create(&s, &o) == KN_EINVAL && strstr(kn_errmsg(), "dimension 0"));
    synth_defaults(&o, 8);
    o.between = 1.5;
    CHECK(synth_create(&s, &o) == KN_EINVAL && strstr(kn_errmsg(), "between"));
    synth_defaults(&o, 8);
    o.clusters = 0;
    CHECK(synth_create(&s, &o) == KN_EINVAL && strstr(kn_errmsg(), "clusters"));
    CHECK(s == NULL);
}

int main(void) {
    RUN(test_rows_do_not_depend_on_block_or_threads);
    RUN(test_distribution);
    RUN(test_spectrum_stretch);
    RUN(test_bad_options);
    return TEST_EXIT();
}
