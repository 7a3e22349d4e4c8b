/* knnlm.c — the public interface (knnlm.h) over the library's modules: the model, the tokenizer, the
 * datastore, the index and the evaluation. The checks that the pieces belong together are evaluate()'s. */
#include "api/knnlm.h"

#include "dstore/dstore.h"
#include "index/dstore_index.h"
#include "index/index.h"
#include "knnlm/evaluate.h"
#include "knnlm/sweep.h"
#include "model/gpt2.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"

#include <limits.h>
#include <stdlib.h>

struct KnModel {
    Gpt2 *gpt2;
    Tokenizer *tokenizer;
};

struct KnMemory {
    Dstore *dstore;
    KnnIndex *index;
};

int kn_model_open(KnModel **out, const char *model_dir) {
    *out = NULL;
    KnModel *m = calloc(1, sizeof *m);
    if (!m) return kn_error(KN_ENOMEM, "out of memory");
    char path[PATH_MAX];
    int rc = gpt2_load(&m->gpt2, model_dir, NULL);
    if (rc == KN_OK) rc = path_join(path, sizeof path, model_dir, "tokenizer.json");
    if (rc == KN_OK) rc = tokenizer_load(&m->tokenizer, path);
    if (rc != KN_OK) {
        kn_model_close(m);
        return rc;
    }
    *out = m;
    return KN_OK;
}

void kn_model_close(KnModel *m) {
    if (!m) return;
    gpt2_free(m->gpt2);
    tokenizer_free(m->tokenizer);
    free(m);
}

int kn_tokenize(const KnModel *m, const char *text, size_t len, int32_t **ids, size_t *n) {
    IdVec v = {0};
    int rc = tokenizer_encode(m->tokenizer, text, len, 0, &v);
    if (rc != KN_OK) {
        idvec_free(&v);
        return rc;
    }
    *ids = v.data;
    *n = v.len;
    return KN_OK;
}

int kn_lm_perplexity(const KnModel *m, const int32_t *ids, size_t n, int window, int stride, double *ppl) {
    EvalOptions o;
    evaluate_defaults(&o);
    o.window = window;
    o.stride = stride;
    LmPerplexity r;
    int rc = evaluate_lm_perplexity(m->gpt2, ids, (int64_t)n, &o, NULL, &r);
    if (rc == KN_OK) *ppl = r.ppl;
    return rc;
}

int kn_memory_open(KnMemory **out, const KnModel *m, const char *dstore_dir, const char *index_path) {
    *out = NULL;
    KnMemory *mem = calloc(1, sizeof *mem);
    if (!mem) return kn_error(KN_ENOMEM, "out of memory");
    int rc = dstore_open(&mem->dstore, dstore_dir);
    if (rc == KN_OK) rc = dstore_index_open(&mem->index, index_path, mem->dstore);
    if (rc == KN_OK && dstore_dim(mem->dstore) != gpt2_config(m->gpt2)->n_embd)
        rc = kn_error(KN_EMISMATCH, "%s: keys of dimension %d, but the model's are %d", dstore_dir, dstore_dim(mem->dstore),
                      gpt2_config(m->gpt2)->n_embd);
    if (rc != KN_OK) {
        kn_memory_close(mem);
        return rc;
    }
    dstore_advise(mem->dstore, DSTORE_RANDOM);
    *out = mem;
    return KN_OK;
}

void kn_memory_close(KnMemory *mem) {
    if (!mem) return;
    index_free(mem->index);
    dstore_close(mem->dstore);
    free(mem);
}

static int add_to_sweep(void *ctx, const ScoredToken *t, int n) {
    for (int i = 0; i < n; i++) {
        int rc = sweep_add_token(ctx, t[i].lm_log_prob, t[i].dist, t[i].vals, t[i].k, t[i].label);
        if (rc != KN_OK) return rc;
    }
    return KN_OK;
}

int kn_knnlm_perplexity(const KnModel *m, const KnMemory *mem, const int32_t *ids, size_t n, int k, double lambda, double temperature,
                        double *ppl, double *lm_ppl) {
    const DstoreManifest *man = dstore_manifest(mem->dstore);
    EvalOptions o;
    evaluate_defaults(&o);
    o.window = man->window;
    o.stride = man->stride;
    int rc = gpt2_key_parse(man->key, &o.key);
    o.index = mem->index;
    o.dstore = mem->dstore;
    o.k = k;
    o.exact_distances = index_nlist(mem->index) == 0; /* as the command line: the same bits for any thread count */
    const SweepConfig cfg = {&lambda, 1, &k, 1, &temperature, 1, KNN_DIST_L2SQ, k};
    Sweep *s = NULL;
    if (rc == KN_OK) rc = sweep_create(&s, &cfg);
    if (rc == KN_OK) rc = evaluate(m->gpt2, ids, (int64_t)n, &o, add_to_sweep, s, NULL, NULL);
    if (rc == KN_OK) {
        *ppl = sweep_ppl(s, 0, 0, 0);
        if (lm_ppl) *lm_ppl = sweep_lm_ppl(s);
    }
    sweep_free(s);
    return rc;
}

void kn_free(void *p) { free(p); }
