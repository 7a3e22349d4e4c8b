/* test_evaluate.c — the evaluation pass against brute force: a Flat index returns exactly the nearest keys of
 * every query, --exact-distances recomputes the squared L2 distance of an approximate index's candidates from
 * the datastore's keys (matching brute force) and re-sorts them, every token of the text is scored once in
 * order with the LM's log-probability of the next token, and bad options are refused. */
#include "dstore_fixture.h"
#include "knnlm/evaluate.h"
#include "util/error.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "tests/data/tiny-random"
#define K 6
static char dir[64];

typedef struct {
    const Dstore *ds;
    float *keys;            /* all datastore keys, float32 */
    int64_t n_keys;
    int64_t tokens, next_position;
    int64_t id_mismatches, dist_errors, unsorted, label_errors;
    double worst_rel;
    int exact;              /* the distances must equal brute force's for the returned ids */
    const int32_t *stream;
} Check;

/* Squared L2 in double from the stored keys: the reference. */
static double sqdist(const float *a, const float *b, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) {
        double t = (double)a[i] - (double)b[i];
        s += t * t;
    }
    return s;
}

static int check_tokens(void *ctx, const ScoredToken *t, int n) {
    Check *c = ctx;
    const int D = dstore_dim(c->ds);
    for (int i = 0; i < n; i++) {
        const ScoredToken *s = &t[i];
        c->label_errors += s->position != c->next_position++ || s->label != c->stream[s->position + 1] || !(s->lm_log_prob < 0);
        /* brute force: the K nearest keys of the query */
        int64_t best[K];
        double bestd[K];
        for (int j = 0; j < K; j++) best[j] = -1, bestd[j] = INFINITY;
        for (int64_t r = 0; r < c->n_keys; r++) {
            double d = sqdist(s->query, c->keys + r * D, D);
            if (d >= bestd[K - 1]) continue;
            int j = K - 1;
            while (j > 0 && bestd[j - 1] > d) {
                bestd[j] = bestd[j - 1];
                best[j] = best[j - 1];
                j--;
            }
            bestd[j] = d;
            best[j] = r;
        }
        for (int j = 0; j < K; j++) {
            if (!c->exact && s->ids[j] != best[j]) c->id_mismatches++;
            double want = s->ids[j] >= 0 ? sqdist(s->query, c->keys + s->ids[j] * D, D) : INFINITY;
            double rel = fabs(s->dist[j] - want) / (want > 1e-6 ? want : 1e-6);
            if (rel > c->worst_rel) c->worst_rel = rel;
            if (rel > (c->exact ? 1e-6 : 1e-4)) c->dist_errors++;
            if (j && s->dist[j] < s->dist[j - 1]) c->unsorted++;
            if (s->ids[j] >= 0 && s->vals[j] != dstore_value(c->ds, s->ids[j])) c->label_errors++;
        }
        c->tokens++;
    }
    return KN_OK;
}

/* Windows of 64 moved by 32, K neighbours from ix over ds. */
static EvalOptions options(const KnnIndex *ix, const Dstore *ds) {
    EvalOptions o;
    evaluate_defaults(&o);
    o.window = 64;
    o.stride = 32;
    o.index = ix;
    o.dstore = ds;
    o.k = K;
    return o;
}

static void run(const char *index_name, int nprobe, int exact, Check *c, const int32_t *text, int64_t n) {
    Dstore *ds;
    KnnIndex *ix;
    Gpt2 *m;
    char path[128];
    snprintf(path, sizeof path, "%s/ds", dir);
    CHECK_OK(dstore_open(&ds, path));
    snprintf(path, sizeof path, "%s/%s", dir, index_name);
    CHECK_OK(dstore_index_open(&ix, path, ds));
    CHECK_OK(index_set_nprobe(ix, nprobe));
    CHECK_OK(gpt2_load(&m, MODEL, NULL));
    memset(c, 0, sizeof *c);
    c->ds = ds;
    c->exact = exact;
    c->stream = text;
    c->n_keys = dstore_size(ds);
    c->keys = malloc((size_t)c->n_keys * dstore_dim(ds) * sizeof(float));
    dstore_keys(ds, 0, c->n_keys, c->keys);
    EvalOptions o = options(ix, ds);
    o.exact_distances = exact;
    EvalStats st;
    int rc = evaluate(m, text, n, &o, check_tokens, c, NULL, &st);
    CHECK_MSG(rc == KN_OK, "%s", kn_errmsg());
    CHECK(st.total > 0 && st.search > 0);
    /* bad options are refused before any work */
    o.k = (int)dstore_size(ds) + 1;
    CHECK_EQ_INT(evaluate(m, text, n, &o, check_tokens, c, NULL, NULL), KN_EINVAL);
    o.k = K;
    o.window = 256; /* n_positions is 128 */
    CHECK_EQ_INT(evaluate(m, text, n, &o, check_tokens, c, NULL, NULL), KN_EINVAL);
    o.window = 64;
    CHECK_EQ_INT(evaluate(m, text, 1, &o, check_tokens, c, NULL, NULL), KN_EINVAL);
    int32_t bad[3] = {1, 51200, 2};
    CHECK_EQ_INT(evaluate(m, bad, 3, &o, check_tokens, c, NULL, NULL), KN_EINVAL);
    /* what the command line used to check alone is the library's too: the key type the datastore was built
     * with, and the weights (their file's hash against the manifest's) */
    o.key = o.key == KEY_FINAL_HIDDEN ? KEY_LAST_FFN_INPUT : KEY_FINAL_HIDDEN;
    CHECK_EQ_INT(evaluate(m, text, n, &o, check_tokens, c, NULL, NULL), KN_EMISMATCH);
    CHECK_MSG(strstr(kn_errmsg(), "keys but the evaluation would query it with") != NULL, "%s", kn_errmsg());
    o = options(ix, ds);
    Gpt2 *f16;
    CHECK_OK(gpt2_load(&f16, MODEL, MODEL "/model-f16.safetensors")); /* the same model, another weights file */
    CHECK_EQ_INT(evaluate(f16, text, n, &o, check_tokens, c, NULL, NULL), KN_EMISMATCH);
    CHECK_MSG(strstr(kn_errmsg(), "built with other model weights") && strstr(kn_errmsg(), "model-f16.safetensors"), "%s", kn_errmsg());
    gpt2_free(f16);
    free(c->keys);
    gpt2_free(m);
    index_free(ix);
    dstore_close(ds);
}

/* An index whose ids point past the datastore (as many vectors, ids shifted by N: written for another
 * datastore, or damaged) stops the evaluation with an error naming the index, before any value is read. */
static void test_ids_past_datastore(const int32_t *text, int64_t n) {
    Dstore *ds;
    Gpt2 *m;
    KnnIndex *ix = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/ds", dir);
    CHECK_OK(dstore_open(&ds, path));
    CHECK_OK(gpt2_load(&m, MODEL, NULL));
    const int64_t N = dstore_size(ds);
    float *keys = malloc((size_t)N * dstore_dim(ds) * sizeof(float));
    dstore_keys(ds, 0, N, keys);
    CHECK_OK(index_create(&ix, dstore_dim(ds), "IDMap,Flat"));
    CHECK_OK(index_add_range(ix, N, N, dstore_dim(ds), keys));
    EvalOptions o = options(ix, ds);
    Check c = {0};
    c.ds = ds;
    c.stream = text;
    for (int exact = 0; exact < 2; exact++) {
        o.exact_distances = exact;
        CHECK_EQ_INT(evaluate(m, text, n, &o, check_tokens, &c, NULL, NULL), KN_EFORMAT);
        CHECK_MSG(strstr(kn_errmsg(), "index 'IDMap,Flat': search returned id ") && strstr(kn_errmsg(), "outside the datastore's"), "%s", kn_errmsg());
        CHECK_EQ_INT(c.tokens, 0);
    }
    free(keys);
    index_free(ix);
    gpt2_free(m);
    dstore_close(ds);
}

int main(void) {
    strcpy(dir, "/tmp/knnlm-test-eval-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    if (fixture_dstore(dir, MODEL, 4000, "IVF16,PQ8") != KN_OK) {
        fprintf(stderr, "setup: %s\n", kn_errmsg());
        return 1;
    }
    /* a held-out stream of its own: fixed pseudo-random ids (the model's queries need not be meaningful here) */
    int32_t text[600];
    for (int i = 0; i < 600; i++) text[i] = (i * 7919 + 375) % 51200;
    Check c;
    /* Flat: exactly the brute-force neighbours, distances as Faiss computes them (float32 ||q||^2 + ||x||^2 - 2 q.x) */
    run("flat.faiss", 1, 0, &c, text, 600);
    CHECK_EQ_INT(c.tokens, 599);
    CHECK_EQ_INT(c.label_errors, 0);
    CHECK_EQ_INT(c.id_mismatches, 0);
    CHECK_MSG(c.dist_errors == 0, "Flat distances: worst relative error %.3g", c.worst_rel);
    CHECK_EQ_INT(c.unsorted, 0);
    /* IVF-PQ with --exact-distances: the candidates' distances are brute force's, re-sorted */
    run("pq.faiss", 16, 1, &c, text, 600);
    CHECK_EQ_INT(c.tokens, 599);
    CHECK_EQ_INT(c.label_errors, 0);
    CHECK_MSG(c.dist_errors == 0, "exact distances: worst relative error %.3g", c.worst_rel);
    CHECK_EQ_INT(c.unsorted, 0);
    /* IVF-PQ without: approximate distances (so this is not a tautology: they differ from brute force) */
    Check approx;
    run("pq.faiss", 16, 0, &approx, text, 600);
    CHECK_MSG(approx.dist_errors > 0, "PQ distances should be approximate (worst relative error %.3g)", approx.worst_rel);
    test_ids_past_datastore(text, 600);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return TEST_EXIT();
}
