/* manifest.c — see manifest.h. */
#include "dstore/manifest.h"

#include "model/gpt2.h"
#include "util/error.h"
#include "util/file.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void manifest_free(DstoreManifest *m) {
    free(m->parts);
    m->parts = NULL;
    m->nparts = 0;
}

static int add_int(cJSON *o, const char *k, int64_t v) { return cJSON_AddNumberToObject(o, k, (double)v) != NULL; }

int manifest_write(const DstoreManifest *m, const char *path, const char *extra_key, int64_t extra_value) {
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    ok = ok && cJSON_AddStringToObject(o, "format", MANIFEST_FORMAT) && add_int(o, "version", MANIFEST_VERSION);
    ok = ok && cJSON_AddStringToObject(o, "model", m->model) && cJSON_AddStringToObject(o, "weights_hash", m->weights_hash);
    ok = ok && cJSON_AddStringToObject(o, "key", m->key) && cJSON_AddStringToObject(o, "precision", m->precision);
    ok = ok && add_int(o, "window", m->window) && add_int(o, "stride", m->stride);
    ok = ok && cJSON_AddStringToObject(o, "dtype", m->dtype == NPY_F16 ? "float16" : "float32");
    ok = ok && cJSON_AddStringToObject(o, "corpus", m->corpus) && cJSON_AddStringToObject(o, "corpus_format", m->corpus_format);
    ok = ok && cJSON_AddStringToObject(o, "corpus_hash", m->corpus_hash) && add_int(o, "max_tokens", m->max_tokens);
    ok = ok && add_int(o, "eos_id", m->eos_id) && cJSON_AddBoolToObject(o, "replace_invalid_utf8", m->replace_invalid_utf8);
    ok = ok && add_int(o, "shard_index", m->shard_index) && add_int(o, "shard_count", m->shard_count);
    ok = ok && add_int(o, "tokens", m->tokens) && add_int(o, "entry_begin", m->entry_begin) && add_int(o, "entries", m->entries);
    ok = ok && add_int(o, "dim", m->dim) && add_int(o, "vocab_size", m->vocab_size) && add_int(o, "n_layer", m->n_layer);
    ok = ok && cJSON_AddStringToObject(o, "tool_version", m->tool_version);
    ok = ok && cJSON_AddStringToObject(o, "keys_hash", m->keys_hash) && cJSON_AddStringToObject(o, "vals_hash", m->vals_hash);
    if (ok && m->tokens_hash[0]) ok = cJSON_AddStringToObject(o, "tokens_hash", m->tokens_hash) != NULL;
    if (ok && m->nparts > 0) {
        cJSON *parts = cJSON_AddArrayToObject(o, "parts");
        for (int i = 0; ok && i < m->nparts; i++) {
            cJSON *p = cJSON_CreateObject();
            ok = p && cJSON_AddItemToArray(parts, p) && cJSON_AddStringToObject(p, "path", m->parts[i].path) &&
                 add_int(p, "entry_begin", m->parts[i].entry_begin) && add_int(p, "entries", m->parts[i].entries);
        }
    }
    if (ok && extra_key) ok = add_int(o, extra_key, extra_value);
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) return kn_error(KN_ENOMEM, "%s: out of memory writing the manifest", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* replace the NUL: the file ends with a newline */
    int rc = file_write_atomic(path, text, len + 1);
    free(text);
    return rc;
}

typedef struct {
    const cJSON *root;
    const char *path;
    int rc;
} Reader;

static const cJSON *field(Reader *r, const char *key, int (*is)(const cJSON *)) {
    if (r->rc != KN_OK) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || !is(v)) {
        r->rc = kn_error(KN_EFORMAT, "%s: field \"%s\" is %s", r->path, key, v ? "of the wrong type" : "missing");
        return NULL;
    }
    return v;
}

static void get_str(Reader *r, const char *key, char *out, size_t cap) {
    const cJSON *v = field(r, key, cJSON_IsString);
    if (!v) return;
    if (strlen(v->valuestring) >= cap) r->rc = kn_error(KN_EFORMAT, "%s: field \"%s\" is too long", r->path, key);
    else strcpy(out, v->valuestring);
}

static int64_t get_int(Reader *r, const char *key, int64_t lo, int64_t hi) {
    const cJSON *v = field(r, key, cJSON_IsNumber);
    if (!v) return 0;
    double d = v->valuedouble;
    if (d != floor(d) || d < (double)lo || d > (double)hi) {
        r->rc = kn_error(KN_EFORMAT, "%s: field \"%s\" must be an integer in [%lld, %lld]", r->path, key, (long long)lo, (long long)hi);
        return 0;
    }
    return (int64_t)d;
}

static int parse_manifest(DstoreManifest *m, const cJSON *root, const char *path) {
    Reader r = {root, path, KN_OK};
    char fmt[64] = "", dtype[16] = "";
    get_str(&r, "format", fmt, sizeof fmt);
    if (r.rc == KN_OK && strcmp(fmt, MANIFEST_FORMAT) != 0) return kn_error(KN_EFORMAT, "%s: not a knnlm datastore manifest (format \"%s\")", path, fmt);
    int64_t version = get_int(&r, "version", 1, 1000);
    if (r.rc == KN_OK && version > MANIFEST_VERSION)
        return kn_error(KN_EFORMAT, "%s: manifest version %lld is newer than this knnlm understands (%d)", path, (long long)version, MANIFEST_VERSION);
    const int64_t big = (int64_t)1 << 50;
    get_str(&r, "model", m->model, sizeof m->model);
    get_str(&r, "weights_hash", m->weights_hash, sizeof m->weights_hash);
    get_str(&r, "key", m->key, sizeof m->key);
    get_str(&r, "precision", m->precision, sizeof m->precision);
    m->window = (int)get_int(&r, "window", 1, 1 << 20);
    m->stride = (int)get_int(&r, "stride", 1, 1 << 20);
    get_str(&r, "dtype", dtype, sizeof dtype);
    get_str(&r, "corpus", m->corpus, sizeof m->corpus);
    get_str(&r, "corpus_format", m->corpus_format, sizeof m->corpus_format);
    get_str(&r, "corpus_hash", m->corpus_hash, sizeof m->corpus_hash);
    m->max_tokens = get_int(&r, "max_tokens", 0, big);
    m->eos_id = (int32_t)get_int(&r, "eos_id", 0, 1 << 24);
    const cJSON *b = field(&r, "replace_invalid_utf8", cJSON_IsBool);
    m->replace_invalid_utf8 = b && cJSON_IsTrue(b);
    m->shard_index = (int)get_int(&r, "shard_index", 0, 1 << 20);
    m->shard_count = (int)get_int(&r, "shard_count", 1, 1 << 20);
    m->tokens = get_int(&r, "tokens", 0, big);
    m->entry_begin = get_int(&r, "entry_begin", 0, big);
    m->entries = get_int(&r, "entries", 0, big);
    m->dim = (int)get_int(&r, "dim", 1, 1 << 16);
    m->vocab_size = (int)get_int(&r, "vocab_size", 1, 1 << 24);
    m->n_layer = (int)get_int(&r, "n_layer", 1, 1 << 12);
    get_str(&r, "tool_version", m->tool_version, sizeof m->tool_version);
    get_str(&r, "keys_hash", m->keys_hash, sizeof m->keys_hash);
    get_str(&r, "vals_hash", m->vals_hash, sizeof m->vals_hash);
    if (cJSON_GetObjectItemCaseSensitive(root, "tokens_hash")) /* optional: older manifests lack it */
        get_str(&r, "tokens_hash", m->tokens_hash, sizeof m->tokens_hash);
    if (r.rc != KN_OK) return r.rc;
    Gpt2KeyType key;
    if (gpt2_key_parse(m->key, &key) != KN_OK)
        return kn_error(KN_EFORMAT, "%s: key \"%s\" is not one of last_ffn_input, final_hidden, last_layer_output", path, m->key);
    if (!strcmp(dtype, "float16")) m->dtype = NPY_F16;
    else if (!strcmp(dtype, "float32")) m->dtype = NPY_F32;
    else return kn_error(KN_EFORMAT, "%s: dtype \"%s\" is not float16 or float32", path, dtype);
    if (m->shard_index >= m->shard_count) return kn_error(KN_EFORMAT, "%s: shard_index %d >= shard_count %d", path, m->shard_index, m->shard_count);
    if (m->entry_begin + m->entries > (m->tokens > 0 ? m->tokens - 1 : 0))
        return kn_error(KN_EFORMAT, "%s: entries [%lld, %lld) exceed the %lld-token stream", path, (long long)m->entry_begin,
                        (long long)(m->entry_begin + m->entries), (long long)m->tokens);
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(root, "parts");
    if (parts) {
        if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) < 1) return kn_error(KN_EFORMAT, "%s: \"parts\" must be a non-empty array", path);
        m->nparts = cJSON_GetArraySize(parts);
        m->parts = calloc((size_t)m->nparts, sizeof *m->parts);
        if (!m->parts) return kn_error(KN_ENOMEM, "out of memory");
        int64_t next = m->entry_begin;
        for (int i = 0; i < m->nparts; i++) {
            Reader pr = {cJSON_GetArrayItem(parts, i), path, KN_OK};
            if (!cJSON_IsObject(pr.root)) return kn_error(KN_EFORMAT, "%s: parts[%d] is not an object", path, i);
            get_str(&pr, "path", m->parts[i].path, sizeof m->parts[i].path);
            m->parts[i].entry_begin = get_int(&pr, "entry_begin", 0, big);
            m->parts[i].entries = get_int(&pr, "entries", 0, big);
            if (pr.rc != KN_OK) return pr.rc;
            if (m->parts[i].entry_begin != next) return kn_error(KN_EFORMAT, "%s: parts[%d] starts at entry %lld, expected %lld", path, i, (long long)m->parts[i].entry_begin, (long long)next);
            next += m->parts[i].entries;
        }
        if (next != m->entry_begin + m->entries) return kn_error(KN_EFORMAT, "%s: parts hold %lld entries, the manifest says %lld", path, (long long)(next - m->entry_begin), (long long)m->entries);
    }
    return KN_OK;
}

static int read_json(const char *path, cJSON **root) {
    char *text;
    size_t len;
    int rc = file_read_all(path, &text, &len);
    if (rc != KN_OK) return rc;
    const char *err_at = NULL;
    *root = cJSON_ParseWithLengthOpts(text, len, &err_at, 0);
    if (!*root || !cJSON_IsObject(*root)) {
        rc = kn_error(KN_EFORMAT, "%s: not a JSON object (invalid JSON near byte %td)", path, err_at ? err_at - text : (ptrdiff_t)0);
        cJSON_Delete(*root);
        *root = NULL;
    }
    free(text);
    return rc;
}

int manifest_read(DstoreManifest *m, const char *path) {
    memset(m, 0, sizeof *m);
    cJSON *root;
    int rc = read_json(path, &root);
    if (rc != KN_OK) return rc;
    rc = parse_manifest(m, root, path);
    cJSON_Delete(root);
    if (rc != KN_OK) manifest_free(m);
    return rc;
}

int manifest_read_extra(const char *path, const char *key, int64_t *value) {
    cJSON *root;
    int rc = read_json(path, &root);
    if (rc != KN_OK) return rc;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) rc = kn_error(KN_ENOTFOUND, "%s: no \"%s\"", path, key);
    /* bounded above too: converting 1e300 to int64_t would be undefined */
    else if (!cJSON_IsNumber(v) || v->valuedouble < -1 || v->valuedouble > (double)((int64_t)1 << 53) || v->valuedouble != floor(v->valuedouble))
        rc = kn_error(KN_EFORMAT, "%s: \"%s\" is not a count", path, key);
    else *value = (int64_t)v->valuedouble;
    cJSON_Delete(root);
    return rc;
}

int manifest_same_settings(const DstoreManifest *a, const DstoreManifest *b, const char *where) {
#define SAME_STR(f, opt) \
    if (strcmp(a->f, b->f) != 0) return kn_error(KN_EMISMATCH, "%s was made with %s %s, not %s", where, opt, a->f, b->f)
#define SAME_INT(f, opt) \
    if (a->f != b->f) return kn_error(KN_EMISMATCH, "%s was made with %s %lld, not %lld", where, opt, (long long)a->f, (long long)b->f)
    SAME_STR(weights_hash, "model weights (hash)");
    SAME_STR(key, "--key");
    SAME_STR(precision, "--precision");
    SAME_INT(window, "--window");
    SAME_INT(stride, "--stride");
    if (a->dtype != b->dtype)
        return kn_error(KN_EMISMATCH, "%s was made with --dtype %s, not %s", where, a->dtype == NPY_F16 ? "f16" : "f32", b->dtype == NPY_F16 ? "f16" : "f32");
    SAME_STR(corpus_hash, "a corpus of hash");
    SAME_STR(corpus_format, "--format");
    SAME_INT(max_tokens, "--max-tokens");
    SAME_INT(eos_id, "end-of-paragraph id");
    SAME_INT(replace_invalid_utf8, "--replace-invalid-utf8");
    SAME_INT(shard_index, "shard index");
    SAME_INT(shard_count, "shard count");
#undef SAME_STR
#undef SAME_INT
    return KN_OK;
}
