/* index_meta.c — see index_meta.h. */
#include "index/index_meta.h"

#include "util/error.h"
#include "util/file.h"
#include "util/version.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int index_meta_write(const char *meta_path, const DstoreManifest *m, int64_t entries, int dim, const IndexMetaBuild *b) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "knnlm-index");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "factory", b->factory);
    cJSON_AddBoolToObject(j, "ondisk", b->ondisk);
    cJSON_AddNumberToObject(j, "entries", (double)entries);
    cJSON_AddNumberToObject(j, "dim", dim);
    cJSON_AddStringToObject(j, "key", m->key);
    cJSON_AddStringToObject(j, "weights_hash", m->weights_hash);
    cJSON_AddStringToObject(j, "keys_hash", m->keys_hash);
    cJSON_AddStringToObject(j, "corpus_hash", m->corpus_hash);
    cJSON_AddNumberToObject(j, "train_size", (double)b->train_size);
    cJSON_AddNumberToObject(j, "seed", (double)b->seed);
    cJSON_AddStringToObject(j, "tool_version", KNNLM_VERSION);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return kn_error(KN_ENOMEM, "out of memory");
    int rc = file_write_atomic(meta_path, text, strlen(text));
    free(text);
    return rc;
}

static int meta_str(const cJSON *j, const char *key, const char **out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsString(v)) return kn_error(KN_EFORMAT, "%s: \"%s\" is missing", path, key);
    *out = v->valuestring;
    return KN_OK;
}

int index_meta_check(const char *text, size_t len, const char *meta_path, const char *index_path, const DstoreManifest *m,
                     int64_t n, int d) {
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return kn_error(KN_EFORMAT, "%s: not a JSON object", meta_path);
    }
    const char *key = NULL, *wh = NULL, *kh = NULL;
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(j, "entries"), *dim = cJSON_GetObjectItemCaseSensitive(j, "dim");
    int rc = meta_str(j, "key", &key, meta_path);
    if (rc == KN_OK) rc = meta_str(j, "weights_hash", &wh, meta_path);
    if (rc == KN_OK) rc = meta_str(j, "keys_hash", &kh, meta_path);
    if (rc == KN_OK && (!cJSON_IsNumber(entries) || !cJSON_IsNumber(dim))) rc = kn_error(KN_EFORMAT, "%s: \"entries\" or \"dim\" is missing", meta_path);
    if (rc == KN_OK && strcmp(key, m->key) != 0)
        rc = kn_error(KN_EMISMATCH, "%s: the index was built on %s keys but the datastore holds %s keys", index_path, key, m->key);
    if (rc == KN_OK && strcmp(wh, m->weights_hash) != 0)
        rc = kn_error(KN_EMISMATCH, "%s: the index was built on keys of another model (weights %s, the datastore's are %s)", index_path, wh, m->weights_hash);
    /* compared as doubles: converting an out-of-range number (1e300) to an integer is undefined */
    if (rc == KN_OK && (entries->valuedouble != (double)n || dim->valuedouble != (double)d))
        rc = kn_error(KN_EMISMATCH, "%s: the index was built on %.17g keys of dimension %.17g but the datastore holds %lld of dimension %d", index_path,
                      entries->valuedouble, dim->valuedouble, (long long)n, d);
    if (rc == KN_OK && kh[0] && m->keys_hash[0] && strcmp(kh, m->keys_hash) != 0)
        rc = kn_error(KN_EMISMATCH, "%s: the index was built on another datastore's keys (keys hash %s, this datastore's is %s)", index_path, kh, m->keys_hash);
    cJSON_Delete(j);
    return rc;
}
