/* cases.c — see cases.h. */
#include "knnlm/cases.h"

#include "util/error.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void case_token_text(const Tokenizer *tk, int32_t id, char *buf, size_t cap) {
    const char *piece = tokenizer_token(tk, id);
    size_t n = 0;
    if (!piece) piece = "";
    for (const char *p = piece; *p && n + 1 < cap;) {
        if (strncmp(p, "\xe2\x96\x81", 3) == 0) { /* U+2581 ▁ */
            buf[n++] = ' ';
            p += 3;
        } else {
            buf[n++] = *p++;
        }
    }
    buf[n] = '\0';
}

static cJSON *token_json(const Tokenizer *tk, int32_t id) {
    if (id < 0) return cJSON_CreateNull();
    char text[256];
    case_token_text(tk, id, text, sizeof text);
    return cJSON_CreateString(text);
}

static cJSON *number_or_null(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

cJSON *case_json(const ScoredToken *t, int32_t label, const CaseOptions *o) {
    const int k = t->k;
    KnnVote *votes = k ? malloc((size_t)k * sizeof *votes) : NULL;
    double *weights = k ? malloc((size_t)k * sizeof *weights) : NULL;
    if (k && (!votes || !weights)) {
        free(votes);
        free(weights);
        return NULL;
    }
    int nv = k ? knn_votes(votes, t->dist, t->vals, k, o->temperature, o->distance) : 0;
    if (k) knn_weights(weights, t->dist, t->vals, k, o->temperature, o->distance);
    int32_t both = knn_lm_top_token(&t->norm, t->logits, votes, nv, o->lambda, NULL);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "label", token_json(o->tk, label));
    cJSON_AddItemToObject(j, "lm", token_json(o->tk, t->norm.argmax));
    cJSON_AddItemToObject(j, "knn", token_json(o->tk, nv ? votes[0].value : -1));
    cJSON_AddItemToObject(j, "lm+knn", token_json(o->tk, both));
    if (label >= 0) {
        double lp_lm = lm_norm_log_prob(&t->norm, t->logits, label);
        double lp_knn = k ? knn_log_prob(t->dist, t->vals, k, label, o->temperature, o->distance) : -INFINITY;
        cJSON_AddItemToObject(j, "lm_probability", cJSON_CreateNumber(exp(lp_lm)));
        cJSON_AddItemToObject(j, "knn_probability", cJSON_CreateNumber(exp(lp_knn)));
        cJSON_AddItemToObject(j, "knn_lm_percent", cJSON_CreateNumber(knn_lm_percent(lp_lm, lp_knn, o->lambda)));
    } else {
        cJSON_AddNullToObject(j, "lm_probability");
        cJSON_AddNullToObject(j, "knn_probability");
        cJSON_AddNullToObject(j, "knn_lm_percent");
    }
    cJSON *labels = cJSON_AddArrayToObject(j, "labels"), *values = cJSON_AddArrayToObject(j, "values");
    cJSON *dist = cJSON_AddArrayToObject(j, "distance"), *soft = cJSON_AddArrayToObject(j, "softmax");
    for (int i = 0; i < k; i++) {
        cJSON_AddItemToArray(labels, token_json(o->tk, t->vals[i]));
        cJSON_AddItemToArray(values, cJSON_CreateNumber(t->vals[i]));
        cJSON_AddItemToArray(dist, number_or_null(t->dist[i]));
        cJSON_AddItemToArray(soft, cJSON_CreateNumber(weights[i]));
    }
    free(votes);
    free(weights);
    return j;
}

int case_write(FILE *f, const ScoredToken *t, int32_t label, const CaseOptions *o) {
    cJSON *j = case_json(t, label, o);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) return kn_error(KN_ENOMEM, "out of memory");
    int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    free(text);
    return ok ? KN_OK : kn_error_errno("case analysis: write failed");
}
