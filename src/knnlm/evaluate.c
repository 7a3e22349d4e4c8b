/* evaluate.c — see evaluate.h. Per window: one forward pass (final hidden states and the query key), one
 * batched index search for the window's emitted positions, then the logits in chunks of LOGIT_ROWS rows (a
 * whole window of logits would be 1024 x 51200 floats = 200 MB). */
#include "knnlm/evaluate.h"

#include "dstore/window.h"
#include "knnlm/exactsum.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/hash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LOGIT_ROWS = 128 }; /* 26 MB of logits at V = 51200; 128 rows run the lm_head ~1.5x faster than 32 */

void evaluate_defaults(EvalOptions *o) {
    memset(o, 0, sizeof *o);
    o->window = 1024;
    o->stride = 512;
    o->key = KEY_LAST_FFN_INPUT;
    o->k = 8;
}

/* Replaces the index's distances of one query by exact squared L2 distances to the datastore's keys (as
 * stored: float16 keys are upcast), and re-sorts the neighbours by them (insertion sort: k is small, and the
 * order is nearly right already), ties by row, so that every prefix of k' neighbours is the k' nearest. */
static void exact_distances(const Dstore *ds, const float *q, int dim, int k, float *dist, int64_t *ids, float *keybuf) {
    dstore_key_rows(ds, ids, k, keybuf);
    for (int j = 0; j < k; j++) {
        if (ids[j] < 0) {
            dist[j] = INFINITY;
            continue;
        }
        const float *x = keybuf + (size_t)j * dim;
        double s = 0;
        for (int i = 0; i < dim; i++) {
            double d = (double)q[i] - (double)x[i];
            s += d * d;
        }
        dist[j] = (float)s;
    }
    for (int j = 1; j < k; j++) {
        float d = dist[j];
        int64_t id = ids[j];
        int i = j - 1;
        while (i >= 0 && (dist[i] > d || (dist[i] == d && (ids[i] > id || ids[i] < 0) && id >= 0))) {
            dist[i + 1] = dist[i];
            ids[i + 1] = ids[i];
            i--;
        }
        dist[i + 1] = d;
        ids[i + 1] = id;
    }
}

int knn_resolve_neighbours(const KnnIndex *index, const Dstore *ds, const float *queries, int nq, int D, int k, int exact, float *dist,
                           int64_t *ids, int32_t *vals, float *keybuf) {
    /* ids are datastore rows, read for values and keys: one past the datastore (an index file whose stored ids
     * were written for something else, or damaged) would be read out of bounds */
    for (size_t j = 0; j < (size_t)nq * k; j++)
        if (ids[j] < -1 || ids[j] >= dstore_size(ds))
            return kn_error(KN_EFORMAT, "%s: search returned id %lld, outside the datastore's %lld entries (the index file is damaged or was not built on this datastore)",
                            index_name(index), (long long)ids[j], (long long)dstore_size(ds));
    /* the neighbours' keys and values, from a datastore that may be far larger than RAM: start every read of
     * these rows at once rather than one page fault at a time */
    if (exact) dstore_prefetch_rows(ds, ids, (int64_t)nq * k);
    if (exact)
        for (int i = 0; i < nq; i++) exact_distances(ds, queries + (size_t)i * D, D, k, dist + (size_t)i * k, ids + (size_t)i * k, keybuf);
    for (size_t j = 0; j < (size_t)nq * k; j++) vals[j] = ids[j] >= 0 ? dstore_value(ds, ids[j]) : -1;
    return KN_OK;
}

typedef struct {
    Gpt2State *state;
    float *logits;     /* [LOGIT_ROWS, V] */
    ScoredToken *scored;
    float *dist;       /* [window, k] */
    int64_t *ids;
    int32_t *vals;
    float *keybuf;     /* [k, D] for exact distances */
    float *gq;         /* [LOGIT_ROWS, D]: the queries that pass the retrieval gate, gathered */
    int *grow;         /* [LOGIT_ROWS]: their rows in the chunk */
} Buffers;

static void free_buffers(Buffers *b) {
    gpt2_state_free(b->state);
    free(b->logits);
    free(b->scored);
    free(b->dist);
    free(b->ids);
    free(b->vals);
    free(b->keybuf);
    free(b->gq);
    free(b->grow);
}

/* The k neighbours of queries[nq, D] in one index call, then their values (and exact distances), into b's
 * dist, ids and vals; the time of each part added to st's search and exact. */
static int search_rows(const EvalOptions *o, Buffers *b, const float *queries, int nq, int D, int k, EvalStats *st) {
    if (nq == 0) return KN_OK;
    double t = kn_seconds();
    int rc = index_search(o->index, nq, D, queries, k, b->dist, b->ids);
    st->search += kn_seconds() - t;
    if (rc != KN_OK) return rc;
    t = kn_seconds();
    rc = knn_resolve_neighbours(o->index, o->dstore, queries, nq, D, k, o->exact_distances, b->dist, b->ids, b->vals, b->keybuf);
    st->exact += kn_seconds() - t;
    return rc;
}

int knn_setup_check(const Gpt2 *model, const KnnIndex *index, const Dstore *dstore, Gpt2KeyType key, int k) {
    const Gpt2Config *c = gpt2_config(model);
    if (!dstore) return kn_error(KN_EINVAL, "an index needs its datastore (for the neighbours' values)");
    if (k < 1) return kn_error(KN_EINVAL, "--k %d: must be at least 1", k);
    if (index_dim(index) != c->n_embd) return kn_error(KN_EMISMATCH, "the index holds %d-dimensional keys but the model's are %d-dimensional", index_dim(index), c->n_embd);
    if (dstore_dim(dstore) != c->n_embd) return kn_error(KN_EMISMATCH, "the datastore holds %d-dimensional keys but the model's are %d-dimensional", dstore_dim(dstore), c->n_embd);
    if (index_ntotal(index) != dstore_size(dstore))
        return kn_error(KN_EMISMATCH, "the index holds %lld vectors but the datastore %lld entries: they were not built together", (long long)index_ntotal(index), (long long)dstore_size(dstore));
    if (k > dstore_size(dstore)) return kn_error(KN_EINVAL, "--k %d: larger than the datastore (%lld entries)", k, (long long)dstore_size(dstore));
    const DstoreManifest *m = dstore_manifest(dstore);
    Gpt2KeyType built;
    if (gpt2_key_parse(m->key, &built) != KN_OK || built != key)
        return kn_error(KN_EMISMATCH, "the datastore holds %s keys but the evaluation would query it with %s", m->key, gpt2_key_name(key));
    char hash[HASH_HEX_LEN];
    int rc = gpt2_weights_hash(model, hash);
    if (rc != KN_OK) return rc;
    if (strcmp(hash, m->weights_hash) != 0)
        return kn_error(KN_EMISMATCH, "the datastore was built with other model weights (hash %s, from %s) than %s (hash %s)", m->weights_hash, m->model,
                        gpt2_weights_path(model), hash);
    return KN_OK;
}

static int check_options(const Gpt2 *model, const EvalOptions *o) {
    const Gpt2Config *c = gpt2_config(model);
    int rc = window_check(o->window, o->stride);
    if (rc != KN_OK) return rc;
    if (o->window > c->n_positions) return kn_error(KN_EINVAL, "--window %d: the model takes at most %d tokens (n_positions)", o->window, c->n_positions);
    if (!(o->retrieval_gate >= 0 && o->retrieval_gate <= 1)) return kn_error(KN_EINVAL, "--retrieval-gate %g: must be from 0 to 1", o->retrieval_gate);
    if (!o->index) return KN_OK;
    return knn_setup_check(model, o->index, o->dstore, o->key, o->k);
}

int evaluate(const Gpt2 *model, const int32_t *tokens, int64_t n, const EvalOptions *o, ScoredFn fn, void *ctx, const KnMonitor *monitor,
             EvalStats *stats) {
    EvalStats st = {0};
    double t_start = kn_seconds(), t;
    int rc = check_options(model, o);
    if (rc != KN_OK) return rc;
    if (n < 2) return kn_error(KN_EINVAL, "the text gives %lld tokens: nothing to predict", (long long)n);
    const Gpt2Config *c = gpt2_config(model);
    const int V = c->vocab_size, D = c->n_embd, k = o->index ? o->k : 0;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V) return kn_error(KN_EINVAL, "token %lld has id %d, outside the vocabulary [0, %d)", (long long)i, tokens[i], V);
    Buffers b = {0};
    rc = gpt2_state_create(&b.state, model, o->window, 0);
    b.logits = malloc((size_t)LOGIT_ROWS * V * sizeof(float));
    b.scored = calloc(LOGIT_ROWS, sizeof *b.scored);
    if (k) {
        b.dist = malloc((size_t)o->window * k * sizeof(float));
        b.ids = malloc((size_t)o->window * k * sizeof(int64_t));
        b.vals = malloc((size_t)o->window * k * sizeof(int32_t));
        b.keybuf = o->exact_distances ? malloc((size_t)k * D * sizeof(float)) : NULL;
        if (o->retrieval_gate > 0) {
            b.gq = malloc((size_t)LOGIT_ROWS * D * sizeof(float));
            b.grow = malloc(LOGIT_ROWS * sizeof(int));
        }
    }
    const int gated = k && o->retrieval_gate > 0;
    if (rc == KN_OK && (!b.logits || !b.scored || (k && (!b.dist || !b.ids || !b.vals || (o->exact_distances && !b.keybuf))) ||
                        (gated && (!b.gq || !b.grow))))
        rc = kn_error(KN_ENOMEM, "out of memory for the evaluation buffers (k = %d)", k);
    const int64_t nw = window_count(n, o->window, o->stride);
    monitor_begin(monitor, "evaluate", "tokens", (uint64_t)(n - 1), 0);
    const unsigned need = GPT2_NEED_FINAL_HIDDEN | (1u << o->key);
    for (int64_t w = 0; rc == KN_OK && w < nw; w++) {
        Window win = window_at(n, o->window, o->stride, w);
        const int T = (int)(win.end - win.begin), r0 = (int)(win.emit_begin - win.begin), nr = (int)(win.emit_end - win.emit_begin);
        t = kn_seconds();
        rc = gpt2_forward(b.state, tokens + win.begin, T, need);
        st.model += kn_seconds() - t;
        if (rc != KN_OK) break;
        const float *hidden = gpt2_state_output(b.state, KEY_FINAL_HIDDEN) + (size_t)r0 * D;
        const float *queries = gpt2_state_output(b.state, o->key) + (size_t)r0 * D;
        if (k && !gated && (rc = search_rows(o, &b, queries, nr, D, k, &st)) != KN_OK) break; /* the window's queries in one call */
        for (int c0 = 0; rc == KN_OK && c0 < nr; c0 += LOGIT_ROWS) {
            const int rows = nr - c0 < LOGIT_ROWS ? nr - c0 : LOGIT_ROWS;
            t = kn_seconds();
            if ((rc = gpt2_logits(model, hidden + (size_t)c0 * D, rows, b.logits)) != KN_OK) break;
#pragma omp parallel for schedule(static)
            for (int i = 0; i < rows; i++) {
                ScoredToken *s = &b.scored[i];
                const int r = c0 + i;
                s->position = win.emit_begin + r;
                s->label = tokens[s->position + 1];
                s->logits = b.logits + (size_t)i * V;
                lm_softmax_norm(&s->norm, s->logits, V);
                s->lm_log_prob = lm_norm_log_prob(&s->norm, s->logits, s->label);
                s->query = queries + (size_t)r * D;
                s->k = k;
                s->dist = k ? b.dist + (size_t)r * k : NULL;
                s->ids = k ? b.ids + (size_t)r * k : NULL;
                s->vals = k ? b.vals + (size_t)r * k : NULL;
            }
            if (gated && rc == KN_OK) {
                /* the retrieval gate: search only the rows where the LM's largest probability is below it */
                int nq = 0;
                for (int i = 0; i < rows; i++) {
                    ScoredToken *s = &b.scored[i];
                    if (lm_norm_max_prob(&s->norm) >= o->retrieval_gate) {
                        s->k = 0;
                        s->dist = NULL, s->ids = NULL, s->vals = NULL;
                    } else {
                        memcpy(b.gq + (size_t)nq * D, s->query, (size_t)D * sizeof(float));
                        b.grow[nq++] = i;
                    }
                }
                const double t1 = kn_seconds();
                rc = search_rows(o, &b, b.gq, nq, D, k, &st);
                for (int j = 0; j < nq; j++) {
                    ScoredToken *s = &b.scored[b.grow[j]];
                    s->dist = b.dist + (size_t)j * k, s->ids = b.ids + (size_t)j * k, s->vals = b.vals + (size_t)j * k;
                }
                st.searched += nq;
                t += kn_seconds() - t1; /* the search is not the lm_head's time */
            } else if (k) {
                st.searched += rows;
            }
            /* log p_LM is finite for finite logits (it is computed in log space): a NaN or infinite one means
             * the model's output is not numbers, and every perplexity or case built on it would be too */
            for (int i = 0; rc == KN_OK && i < rows; i++)
                if (!isfinite(b.scored[i].lm_log_prob))
                    rc = kn_error(KN_EFORMAT, "token %lld: log p_LM is %s: the model's logits are not finite numbers", (long long)b.scored[i].position + 1,
                                  isnan(b.scored[i].lm_log_prob) ? "NaN" : b.scored[i].lm_log_prob > 0 ? "+inf" : "-inf");
            double t2 = kn_seconds();
            st.logits += t2 - t;
            if (rc != KN_OK) break;
            rc = fn(ctx, b.scored, rows);
            st.consumer += kn_seconds() - t2;
        }
        monitor_progress(monitor, (uint64_t)win.emit_end, 0);
        if (rc == KN_OK && monitor_stopped(monitor)) rc = kn_error(KN_EINTR, "evaluation interrupted");
    }
    monitor_end(monitor, (uint64_t)(n - 1), 0);
    free_buffers(&b);
    st.total = kn_seconds() - t_start;
    if (stats) *stats = st;
    return rc;
}

typedef struct {
    ExactSum nll;
    int64_t count;
} NllSum;

static int add_nll(void *ctx, const ScoredToken *t, int n) {
    NllSum *s = ctx;
    for (int i = 0; i < n; i++) exactsum_add(&s->nll, -t[i].lm_log_prob);
    s->count += n;
    return KN_OK;
}

int evaluate_lm_perplexity(const Gpt2 *model, const int32_t *tokens, int64_t n, const EvalOptions *opt, const KnMonitor *monitor,
                           LmPerplexity *out) {
    memset(out, 0, sizeof *out);
    if (opt->index) return kn_error(KN_EINVAL, "evaluate_lm_perplexity: the LM alone takes no index");
    NllSum sum = {0};
    int rc = evaluate(model, tokens, n, opt, add_nll, &sum, monitor, NULL);
    if (rc != KN_OK) return rc;
    out->tokens = sum.count;
    out->nll = exactsum_value(&sum.nll) / (double)sum.count;
    out->ppl = exp(out->nll);
    if (!isfinite(out->ppl)) return kn_error(KN_EFORMAT, "mean NLL %g over %lld tokens: the perplexity is not a finite number", out->nll, (long long)out->tokens);
    return KN_OK;
}
