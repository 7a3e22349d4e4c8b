/* safetensors.c — see safetensors.h. */
#include "model/safetensors.h"

#include "util/error.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <utf8proc.h>
#include <string.h>

/* The reference reader's limit: a larger header is refused rather than parsed. */
#define SAFETENSORS_MAX_HEADER 100000000ull

/* Integers in the header must be exact in a double (cJSON's number type): 2^53 bounds every real file. */
#define MAX_EXACT_INT 9007199254740992.0

static const struct {
    const char *name;
    DType dtype;
} dtype_names[] = {
    {"F32", DTYPE_F32}, {"F16", DTYPE_F16}, {"BF16", DTYPE_BF16}, {"F64", DTYPE_F64}, {"I64", DTYPE_I64},
    {"I32", DTYPE_I32}, {"I16", DTYPE_I16}, {"I8", DTYPE_I8},     {"U8", DTYPE_U8},   {"BOOL", DTYPE_BOOL},
};

int safetensors_dtype(const char *name, DType *out) {
    for (size_t i = 0; i < sizeof dtype_names / sizeof dtype_names[0]; i++) {
        if (strcmp(name, dtype_names[i].name) == 0) {
            *out = dtype_names[i].dtype;
            return 0;
        }
    }
    return -1;
}

static int is_utf8(const uint8_t *s, size_t n) {
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* A JSON number that is a non-negative integer exactly representable; -1 otherwise. */
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= MAX_EXACT_INT) || v != (double)(uint64_t)v) return -1;
    *out = (uint64_t)v;
    return 0;
}

/* What one tensor entry says, before its place in the buffer is checked against the others. */
typedef struct {
    uint64_t begin, end;
    size_t index;   /* in the list */
} Span;

static int parse_entry(TensorList *list, Span *span, const cJSON *entry, const char *path) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry)) return kn_error(KN_EFORMAT, "%s: tensor \"%s\" is not a JSON object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!dtype || !shape || !offsets)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\" lacks %s", path, name,
                        !dtype ? "\"dtype\"" : !shape ? "\"shape\"" : "\"data_offsets\"");
    TensorInfo t = {0};
    if (!cJSON_IsString(dtype) || safetensors_dtype(dtype->valuestring, &t.dtype) != 0)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\" has unknown or unsupported dtype %s%s%s", path, name,
                        cJSON_IsString(dtype) ? "\"" : "", cJSON_IsString(dtype) ? dtype->valuestring : "(not a string)",
                        cJSON_IsString(dtype) ? "\"" : "");
    if (!cJSON_IsArray(shape)) return kn_error(KN_EFORMAT, "%s: tensor \"%s\": shape is not an array", path, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TENSOR_MAX_DIMS)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\" has %d dimensions, at most %d are supported", path, name,
                        ndim, TENSOR_MAX_DIMS);
    t.ndim = ndim;
    int d = 0;
    for (const cJSON *dim = shape->child; dim; dim = dim->next, d++) {
        uint64_t v;
        if (json_uint(dim, &v) != 0)
            return kn_error(KN_EFORMAT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", path, name, d);
        t.shape[d] = (int64_t)v;
    }
    uint64_t numel, nbytes;
    if (tensor_shape_bytes(t.dtype, t.ndim, t.shape, &numel, &nbytes) != 0)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": shape is too large (byte count overflows)", path, name);
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || json_uint(offsets->child, &span->begin) != 0 ||
        json_uint(offsets->child->next, &span->end) != 0)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": data_offsets is not [begin, end] of non-negative integers",
                        path, name);
    if (span->end < span->begin)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin", path, name,
                        (unsigned long long)span->begin, (unsigned long long)span->end);
    if (span->end - span->begin != nbytes)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] hold %llu bytes but shape and %s "
                        "need %llu", path, name, (unsigned long long)span->begin, (unsigned long long)span->end,
                        (unsigned long long)(span->end - span->begin), dtype_name(t.dtype), (unsigned long long)nbytes);
    t.nbytes = (size_t)nbytes;
    span->index = list->count;
    return tensorlist_add(list, name, strlen(name), &t, path);
}

static int check_metadata(const cJSON *meta, const char *path) {
    if (!cJSON_IsObject(meta)) return kn_error(KN_EFORMAT, "%s: __metadata__ is not a JSON object", path);
    for (const cJSON *item = meta->child; item; item = item->next) {
        if (!cJSON_IsString(item))
            return kn_error(KN_EFORMAT, "%s: __metadata__ \"%s\" is not a string", path, item->string);
    }
    return KN_OK;
}

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* The tensors must tile [0, buffer_size) exactly: in offset order each begins where the last ended. */
static int check_tiling(TensorList *list, Span *spans, size_t n, const uint8_t *buffer, uint64_t buffer_size,
                        const char *path) {
    qsort(spans, n, sizeof *spans, cmp_span);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = list->items[spans[i].index].name;
        if (spans[i].end > buffer_size)
            return kn_error(KN_EFORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] run past the end of the data "
                            "(%llu bytes; the file is truncated or the header is wrong)", path, name,
                            (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end,
                            (unsigned long long)buffer_size);
        if (spans[i].begin != at)
            return kn_error(KN_EFORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] %s the previous tensor, which "
                            "ends at %llu", path, name, (unsigned long long)spans[i].begin,
                            (unsigned long long)spans[i].end, spans[i].begin < at ? "overlap" : "leave a gap after",
                            (unsigned long long)at);
        at = spans[i].end;
        list->items[spans[i].index].data = buffer + spans[i].begin;
    }
    if (at != buffer_size)
        return kn_error(KN_EFORMAT, "%s: the tensors cover %llu bytes of data but %llu follow the header", path,
                        (unsigned long long)at, (unsigned long long)buffer_size);
    return KN_OK;
}

static int read_header(TensorList *list, const cJSON *root, const uint8_t *buffer, uint64_t buffer_size,
                       const char *path) {
    size_t n = (size_t)cJSON_GetArraySize(root);
    Span *spans = malloc((n ? n : 1) * sizeof *spans);
    if (!spans) return kn_error(KN_ENOMEM, "%s: out of memory for %zu tensors", path, n);
    size_t count = 0;
    int rc = KN_OK, seen_metadata = 0;
    for (const cJSON *entry = root->child; entry && rc == KN_OK; entry = entry->next) {
        if (strcmp(entry->string, "__metadata__") == 0) {
            if (seen_metadata++) rc = kn_error(KN_EFORMAT, "%s: __metadata__ appears twice", path);
            else rc = check_metadata(entry, path);
        } else {
            rc = parse_entry(list, &spans[count], entry, path);
            if (rc == KN_OK) count++;
        }
    }
    if (rc == KN_OK) rc = check_tiling(list, spans, count, buffer, buffer_size, path);
    free(spans);
    return rc;
}

int safetensors_read(TensorList *list, const uint8_t *data, size_t size, const char *path) {
    if (size < 8)
        return kn_error(KN_EFORMAT, "%s: %zu bytes, too short for a safetensors header length (8 bytes)", path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
    if (n > SAFETENSORS_MAX_HEADER)
        return kn_error(KN_EFORMAT, "%s: safetensors header length %llu is larger than the limit of %llu bytes (not a "
                        "safetensors file?)", path, (unsigned long long)n, SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return kn_error(KN_EFORMAT, "%s: safetensors header length %llu runs past the end of the file (%zu bytes)",
                        path, (unsigned long long)n, size);
    const char *json = (const char *)data + 8;
    if (n < 2 || json[0] != '{')
        return kn_error(KN_EFORMAT, "%s: safetensors header does not start with '{' (not a safetensors file?)", path);
    if (!is_utf8((const uint8_t *)json, (size_t)n))
        return kn_error(KN_EFORMAT, "%s: safetensors header is not valid UTF-8", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - json) : 0;
        return kn_error(KN_EFORMAT, "%s: safetensors header is not valid JSON (at byte %zu of %llu)", path, at,
                        (unsigned long long)n);
    }
    int rc = KN_OK;
    for (const char *p = end; p < json + n && rc == KN_OK; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            rc = kn_error(KN_EFORMAT, "%s: safetensors header has bytes after its JSON object (at byte %zu)", path,
                          (size_t)(p - json));
    }
    if (rc == KN_OK && !cJSON_IsObject(root))
        rc = kn_error(KN_EFORMAT, "%s: safetensors header is JSON but not an object", path);
    if (rc == KN_OK) rc = read_header(list, root, data + 8 + n, size - 8 - n, path);
    cJSON_Delete(root);
    return rc;
}
