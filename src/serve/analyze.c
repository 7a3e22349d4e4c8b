/* analyze.c — see analyze.h. */
#include "serve/analyze.h"

#include "knnlm/cases.h"
#include "knnlm/evaluate.h"
#include "util/error.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void analyze_defaults(AnalyzeOptions *o) {
    o->k = 8;
    o->lambda = 0.25;
    o->temperature = 1;
    o->context = 16;
    o->top = ANALYZE_TOP;
}

char *analyze_passage(const AnalyzeModel *m, int64_t begin, int64_t end) {
    if (begin < 0) begin = 0;
    if (end > m->stream_len) end = m->stream_len;
    char *text = NULL;
    if (end <= begin) return strdup("");
    if (tokenizer_decode(m->tk, m->stream + begin, (size_t)(end - begin), 0, &text) != KN_OK) return NULL;
    return text;
}

typedef struct {
    const AnalyzeModel *m;
    const AnalyzeOptions *o;
    CaseOptions case_opt;
    int64_t last;             /* the position of the placeholder's context: the continuation, label unknown */
    cJSON *tokens;            /* the array being filled */
    cJSON *next;              /* the continuation's case */
    double sum_lm, sum_knnlm; /* sum of -log p over the labelled tokens */
    int64_t n;
} Analysis;

static cJSON *token_text_json(const Tokenizer *tk, int32_t id) {
    char buf[256];
    case_token_text(tk, id, buf, sizeof buf);
    return cJSON_CreateString(buf);
}

/* The n most probable tokens of the LM at this position, most probable first (ties: smaller id). */
static cJSON *lm_top_json(const AnalyzeModel *m, const ScoredToken *t, int n) {
    enum { TOP_MAX = 16 };
    int32_t best[TOP_MAX];
    int have = 0, V = gpt2_config(m->model)->vocab_size;
    if (n > TOP_MAX) n = TOP_MAX;
    for (int32_t v = 0; v < V; v++) {
        if (have == n && t->logits[v] <= t->logits[best[n - 1]]) continue;
        int i = have < n ? have++ : n - 1;
        while (i > 0 && t->logits[best[i - 1]] < t->logits[v]) {
            best[i] = best[i - 1];
            i--;
        }
        best[i] = v;
    }
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < have; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "token", token_text_json(m->tk, best[i]));
        cJSON_AddNumberToObject(e, "id", best[i]);
        cJSON_AddNumberToObject(e, "p", exp(lm_norm_log_prob(&t->norm, t->logits, best[i])));
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static int add_neighbors(cJSON *c, const Analysis *an, const ScoredToken *t) {
    const AnalyzeModel *m = an->m;
    cJSON *nb = cJSON_AddArrayToObject(c, "neighbors"), *vlm = cJSON_AddArrayToObject(c, "value_lm_probability");
    if (!nb || !vlm) return KN_ENOMEM;
    const int64_t begin = m->ds ? dstore_manifest(m->ds)->entry_begin : 0;
    for (int i = 0; i < t->k; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) return KN_ENOMEM;
        cJSON_AddItemToArray(nb, e);
        cJSON_AddNumberToObject(e, "id", (double)t->ids[i]);
        cJSON_AddItemToObject(e, "distance", isfinite(t->dist[i]) ? cJSON_CreateNumber(t->dist[i]) : cJSON_CreateNull());
        if (t->ids[i] < 0) { /* Faiss found fewer than k */
            cJSON_AddNullToObject(e, "value");
            cJSON_AddNullToObject(e, "context");
            cJSON_AddItemToArray(vlm, cJSON_CreateNull());
            continue;
        }
        cJSON_AddItemToObject(e, "value", token_text_json(m->tk, t->vals[i]));
        cJSON_AddItemToArray(vlm, cJSON_CreateNumber(exp(lm_norm_log_prob(&t->norm, t->logits, t->vals[i]))));
        /* row r is entry begin + r of the stream: its key read tokens up to that entry, its value is the next */
        int64_t value_at = begin + t->ids[i] + 1;
        if (!m->stream || value_at >= m->stream_len) {
            cJSON_AddNullToObject(e, "context");
            continue;
        }
        char *passage = analyze_passage(m, value_at - an->o->context, value_at);
        if (!passage) return KN_ENOMEM;
        cJSON_AddStringToObject(e, "context", passage);
        free(passage);
    }
    return KN_OK;
}

static int on_scored(void *ctx, const ScoredToken *t, int n) {
    Analysis *an = ctx;
    for (int i = 0; i < n; i++) {
        int is_next = t[i].position == an->last;
        int32_t label = is_next ? -1 : t[i].label;
        cJSON *c = case_json(&t[i], label, &an->case_opt);
        if (!c) return kn_error(KN_ENOMEM, "out of memory");
        if (is_next) an->next = c;
        else cJSON_AddItemToArray(an->tokens, c);
        cJSON_AddNumberToObject(c, "label_id", label);
        if (add_neighbors(c, an, &t[i]) != KN_OK || !cJSON_AddItemToObject(c, "lm_top", lm_top_json(an->m, &t[i], an->o->top)))
            return kn_error(KN_ENOMEM, "out of memory");
        if (is_next) continue;
        double lp_knn = t[i].k ? knn_log_prob(t[i].dist, t[i].vals, t[i].k, label, an->o->temperature, KNN_DIST_L2SQ) : -INFINITY;
        an->sum_lm -= t[i].lm_log_prob;
        an->sum_knnlm -= knn_interpolate(t[i].lm_log_prob, lp_knn, an->case_opt.lambda);
        an->n++;
    }
    return KN_OK;
}

static cJSON *ppl_json(double sum, int64_t n) { return n && isfinite(exp(sum / (double)n)) ? cJSON_CreateNumber(exp(sum / (double)n)) : cJSON_CreateNull(); }

static int check_options(const AnalyzeModel *m, const AnalyzeOptions *o) {
    if (!(o->lambda >= 0 && o->lambda <= 1)) return kn_error(KN_EINVAL, "lambda %g: must be in [0, 1]", o->lambda);
    if (!(o->temperature > 0) || !isfinite(o->temperature)) return kn_error(KN_EINVAL, "temperature %g: must be positive", o->temperature);
    if (o->context < 0 || o->context > ANALYZE_CONTEXT_MAX) return kn_error(KN_EINVAL, "context %d: must be between 0 and %d", o->context, ANALYZE_CONTEXT_MAX);
    if (m->ds && (o->k < 1 || o->k > dstore_size(m->ds)))
        return kn_error(KN_EINVAL, "k %d: must be between 1 and the datastore's %lld entries", o->k, (long long)dstore_size(m->ds));
    if (o->top < 0 || o->top > 16) return kn_error(KN_EINVAL, "top %d: must be between 0 and 16", o->top);
    return KN_OK;
}

int analyze_text(const AnalyzeModel *m, const char *text, size_t len, const AnalyzeOptions *o, char **json) {
    *json = NULL;
    int rc = check_options(m, o);
    if (rc != KN_OK) return rc;
    if (len == 0) return kn_error(KN_EINVAL, "text: empty");
    IdVec ids = {0};
    rc = tokenizer_encode(m->tk, text, len, 0, &ids);
    if (rc != KN_OK) return kn_error_wrap(rc == KN_EFORMAT ? KN_EINVAL : rc, "text");
    const int maxT = gpt2_config(m->model)->n_positions;
    if (ids.len == 0) rc = kn_error(KN_EINVAL, "text: gives no tokens");
    else if (ids.len > (size_t)maxT - 1) rc = kn_error(KN_EINVAL, "text: %zu tokens; at most %d (the model's n_positions - 1)", ids.len, maxT - 1);
    if (rc == KN_OK) rc = idvec_reserve(&ids, 1);
    if (rc != KN_OK) {
        idvec_free(&ids);
        return rc;
    }
    ids.data[ids.len++] = m->eos_id; /* the placeholder: the last position's outputs do not depend on it */
    EvalOptions eo;
    evaluate_defaults(&eo);
    eo.window = eo.stride = (int)ids.len;
    const double lambda = m->index ? o->lambda : 0;
    if (m->ds) gpt2_key_parse(dstore_manifest(m->ds)->key, &eo.key);
    eo.index = m->index;
    eo.dstore = m->ds;
    eo.k = m->index ? o->k : 0;
    eo.exact_distances = m->exact_distances;
    Analysis an = {m, o, {m->tk, lambda, o->temperature, KNN_DIST_L2SQ}, (int64_t)ids.len - 2, cJSON_CreateArray(), NULL, 0, 0, 0};
    cJSON *root = cJSON_CreateObject();
    if (!an.tokens || !root) rc = kn_error(KN_ENOMEM, "out of memory");
    if (rc == KN_OK) rc = evaluate(m->model, ids.data, (int64_t)ids.len, &eo, on_scored, &an, NULL, NULL);
    if (rc == KN_OK) {
        char first[256];
        case_token_text(m->tk, ids.data[0], first, sizeof first);
        cJSON_AddStringToObject(root, "prefix", first);
        cJSON_AddItemToObject(root, "tokens", an.tokens);
        an.tokens = NULL;
        cJSON_AddItemToObject(root, "next", an.next ? an.next : cJSON_CreateNull());
        an.next = NULL;
        cJSON_AddItemToObject(root, "lm_ppl", ppl_json(an.sum_lm, an.n));
        cJSON_AddItemToObject(root, "knnlm_ppl", ppl_json(an.sum_knnlm, an.n));
        cJSON_AddNumberToObject(root, "k", eo.k);
        cJSON_AddNumberToObject(root, "lambda", lambda);
        cJSON_AddNumberToObject(root, "temperature", o->temperature);
        cJSON_AddNumberToObject(root, "context", o->context);
        cJSON_AddStringToObject(root, "distance", "l2sq");
        *json = cJSON_PrintUnformatted(root);
        if (!*json) rc = kn_error(KN_ENOMEM, "out of memory");
    }
    cJSON_Delete(an.tokens);
    cJSON_Delete(an.next);
    cJSON_Delete(root);
    idvec_free(&ids);
    return rc;
}
