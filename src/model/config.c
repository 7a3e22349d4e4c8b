/* config.c — see config.h. Defaults are those of transformers' GPT2Config. */
#include "model/config.h"
#include "model/gpt2.h"

#include "util/error.h"
#include "util/file.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reads an integer field; absent -> *out = dflt. Present but not a whole number in [lo, hi] -> error. */
static int get_int(const cJSON *root, const char *key, int dflt, int lo, int hi, int *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return KN_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return kn_error(KN_EFORMAT, "%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)v->valuedouble;
    return KN_OK;
}

static int get_bool(const cJSON *root, const char *key, int dflt, int *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return KN_OK;
    }
    if (!cJSON_IsBool(v)) return kn_error(KN_EFORMAT, "%s: \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return KN_OK;
}

static int parse(Gpt2Config *c, const cJSON *root, const char *path) {
    if (!cJSON_IsObject(root)) return kn_error(KN_EFORMAT, "%s: not a JSON object", path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !(cJSON_IsString(mt) && strcmp(mt->valuestring, "gpt2") == 0))
        return kn_error(KN_EFORMAT, "%s: model_type %s is not supported (only \"gpt2\")", path,
                        cJSON_IsString(mt) ? mt->valuestring : "(not a string)");
    int rc;
    if ((rc = get_int(root, "n_layer", 12, 1, 1024, &c->n_layer, path)) ||
        (rc = get_int(root, "n_head", 12, 1, 1024, &c->n_head, path)) ||
        (rc = get_int(root, "n_embd", 768, 1, 1 << 16, &c->n_embd, path)) ||
        (rc = get_int(root, "n_inner", 4 * c->n_embd, 1, 1 << 20, &c->n_inner, path)) ||
        (rc = get_int(root, "n_positions", 1024, 1, 1 << 20, &c->n_positions, path)) ||
        (rc = get_int(root, "vocab_size", 50257, 1, 1 << 24, &c->vocab_size, path)) ||
        (rc = get_int(root, "bos_token_id", -1, -1, 1 << 24, &c->bos_token_id, path)) ||
        (rc = get_int(root, "eos_token_id", -1, -1, 1 << 24, &c->eos_token_id, path)) ||
        (rc = get_bool(root, "scale_attn_weights", 1, &c->scale_attn_weights, path)) ||
        (rc = get_bool(root, "scale_attn_by_inverse_layer_idx", 0, &c->scale_attn_by_inverse_layer_idx, path)) ||
        (rc = get_bool(root, "tie_word_embeddings", 1, &c->tie_word_embeddings, path)))
        return rc;
    if (c->n_embd % c->n_head != 0)
        return kn_error(KN_EFORMAT, "%s: n_embd %d is not a multiple of n_head %d", path, c->n_embd, c->n_head);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    c->ln_eps = 1e-5f;
    if (eps) {
        /* checked as the float the model uses: 1e-50 is positive as a double but 0 as a float */
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1) || !((float)eps->valuedouble > 0 && (float)eps->valuedouble < 1))
            return kn_error(KN_EFORMAT, "%s: \"layer_norm_epsilon\" must be a number in (0, 1) (as a float)", path);
        c->ln_eps = (float)eps->valuedouble;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    const char *a = act && cJSON_IsString(act) ? act->valuestring : act ? NULL : "gelu_new";
    if (!a) return kn_error(KN_EFORMAT, "%s: \"activation_function\" must be a string", path);
    if (!strcmp(a, "gelu_new") || !strcmp(a, "gelu_pytorch_tanh") || !strcmp(a, "gelu_fast")) c->activation = ACT_GELU_NEW;
    else if (!strcmp(a, "gelu")) c->activation = ACT_GELU_ERF;
    else if (!strcmp(a, "relu")) c->activation = ACT_RELU;
    else return kn_error(KN_EFORMAT, "%s: activation_function \"%s\" is not supported (gelu_new, gelu, relu)", path, a);
    return KN_OK;
}

int gpt2_config_load(Gpt2Config *cfg, const char *path) {
    memset(cfg, 0, sizeof *cfg);
    char *text;
    size_t len;
    int rc = file_read_all(path, &text, &len);
    if (rc != KN_OK) return rc;
    const char *err_at = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &err_at, 0);
    if (!root) {
        rc = kn_error(KN_EFORMAT, "%s: invalid JSON near byte %td", path, err_at ? err_at - text : (ptrdiff_t)0);
        free(text);
        return rc;
    }
    rc = parse(cfg, root, path);
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* The names of the key types (gpt2.h), kept beside the rest of what describes a model, so that the manifest
 * reader needs no forward pass. */
static const char *const key_names[] = {"last_ffn_input", "final_hidden", "last_layer_output"};

const char *gpt2_key_name(Gpt2KeyType key) { return key_names[key]; }

int gpt2_key_parse(const char *name, Gpt2KeyType *key) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, key_names[i]) == 0) {
            *key = (Gpt2KeyType)i;
            return KN_OK;
        }
    return kn_error(KN_EINVAL, "key type \"%s\" is not one of last_ffn_input, final_hidden, last_layer_output", name);
}
