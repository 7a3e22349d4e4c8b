/* tensorfile.c — see tensorfile.h: format detection, the name index, dtypes and float conversions. */
#include "model/tensorfile.h"

#include "model/safetensors.h"
#include "model/torchckpt.h"
#include "model/torchlegacy.h"
#include "util/error.h"
#include "util/file.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct TensorFile {
    char *path;
    const char *format;
    FileMap map;
    TensorList list;
    const TensorInfo **by_name;   /* list.items sorted by name, for tensorfile_find() */
};

/* ---- the tensor list the readers fill ---- */

int tensorlist_add(TensorList *list, const char *name, size_t name_len, const TensorInfo *info,
                   const char *path) {
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        TensorInfo *items = realloc(list->items, cap * sizeof *items);
        if (!items) return kn_error(KN_ENOMEM, "%s: out of memory for %zu tensors", path, cap);
        list->items = items;
        list->cap = cap;
    }
    char *copy = malloc(name_len + 1);
    if (!copy) return kn_error(KN_ENOMEM, "%s: out of memory", path);
    memcpy(copy, name, name_len);
    copy[name_len] = '\0';
    TensorInfo *t = &list->items[list->count++];
    *t = *info;
    t->name = copy;
    return KN_OK;
}

void tensorlist_free(TensorList *list) {
    for (size_t i = 0; i < list->count; i++) free((char *)list->items[i].name);
    free(list->items);
    memset(list, 0, sizeof *list);
}

int tensor_shape_bytes(DType dt, int ndim, const int64_t *shape, uint64_t *numel, uint64_t *nbytes) {
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || __builtin_mul_overflow(n, (uint64_t)shape[d], &n)) return -1;
    }
    uint64_t b;
    if (__builtin_mul_overflow(n, (uint64_t)dtype_size(dt), &b) || b > SIZE_MAX) return -1;
    *numel = n;
    *nbytes = b;
    return 0;
}

/* ---- opening ---- */

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const TensorInfo *const *)a)->name, (*(const TensorInfo *const *)b)->name);
}

/* Sorting makes lookups O(log n) and finds duplicates in O(n log n), which matters for a hostile header
 * with millions of names (a pairwise check would hang). */
static int index_names(TensorFile *tf) {
    size_t n = tf->list.count;
    tf->by_name = malloc((n ? n : 1) * sizeof *tf->by_name);
    if (!tf->by_name) return kn_error(KN_ENOMEM, "%s: out of memory for %zu tensor names", tf->path, n);
    for (size_t i = 0; i < n; i++) tf->by_name[i] = &tf->list.items[i];
    qsort(tf->by_name, n, sizeof *tf->by_name, cmp_by_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(tf->by_name[i - 1]->name, tf->by_name[i]->name) == 0)
            return kn_error(KN_EFORMAT, "%s: tensor \"%s\" appears twice", tf->path, tf->by_name[i]->name);
    }
    return KN_OK;
}

/* What the readers promise, checked here once so that a reader bug cannot hand out a wild pointer. */
static void assert_inside_map(const TensorFile *tf) {
#ifndef NDEBUG
    for (size_t i = 0; i < tf->list.count; i++) {
        const TensorInfo *t = &tf->list.items[i];
        uint64_t numel, nbytes;
        assert(t->ndim >= 0 && t->ndim <= TENSOR_MAX_DIMS);
        assert(tensor_shape_bytes(t->dtype, t->ndim, t->shape, &numel, &nbytes) == 0 && nbytes == t->nbytes);
        assert(t->nbytes == 0 || ((const uint8_t *)t->data >= tf->map.data &&
                                  t->nbytes <= tf->map.size - (size_t)((const uint8_t *)t->data - tf->map.data)));
    }
#else
    (void)tf;
#endif
}

static int is_zip(const uint8_t *p, size_t n) {
    return n >= 4 && p[0] == 'P' && p[1] == 'K' && ((p[2] == 3 && p[3] == 4) || (p[2] == 5 && p[3] == 6));
}

int tensorfile_open(TensorFile **out, const char *path) {
    *out = NULL;
    TensorFile *tf = calloc(1, sizeof *tf);
    char *path_copy = strdup(path);
    if (!tf || !path_copy) {
        free(tf);
        free(path_copy);
        return kn_error(KN_ENOMEM, "%s: out of memory", path);
    }
    tf->path = path_copy;
    int rc = file_map(&tf->map, path);
    if (rc == KN_OK) {
        const uint8_t *p = tf->map.data;
        size_t n = tf->map.size;
        if (n == 0) {
            rc = kn_error(KN_EFORMAT, "%s: empty file, expected safetensors or a PyTorch checkpoint", path);
        } else if (is_zip(p, n)) {
            tf->format = "pytorch";
            rc = torchckpt_read(&tf->list, p, n, path);
        } else if (torchlegacy_detect(p, n)) {
            tf->format = "pytorch";
            rc = torchlegacy_read(&tf->list, p, n, path);
        } else {
            tf->format = "safetensors";
            rc = safetensors_read(&tf->list, p, n, path);
        }
    }
    if (rc == KN_OK) rc = index_names(tf);
    if (rc != KN_OK) {
        tensorfile_close(tf);
        return rc;
    }
    assert_inside_map(tf);
    *out = tf;
    return KN_OK;
}

void tensorfile_close(TensorFile *tf) {
    if (!tf) return;
    tensorlist_free(&tf->list);
    free(tf->by_name);
    file_unmap(&tf->map);
    free(tf->path);
    free(tf);
}

size_t tensorfile_count(const TensorFile *tf) { return tf->list.count; }

const TensorInfo *tensorfile_at(const TensorFile *tf, size_t i) {
    assert(i < tf->list.count);
    return &tf->list.items[i];
}

const TensorInfo *tensorfile_find(const TensorFile *tf, const char *name) {
    size_t lo = 0, hi = tf->list.count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(tf->by_name[mid]->name, name);
        if (c == 0) return tf->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *tensorfile_path(const TensorFile *tf) { return tf->path; }
const char *tensorfile_format(const TensorFile *tf) { return tf->format; }

/* ---- dtypes ---- */

size_t dtype_size(DType dt) {
    switch (dt) {
    case DTYPE_F64: case DTYPE_I64: return 8;
    case DTYPE_F32: case DTYPE_I32: return 4;
    case DTYPE_F16: case DTYPE_BF16: case DTYPE_I16: return 2;
    case DTYPE_I8: case DTYPE_U8: case DTYPE_BOOL: return 1;
    }
    assert(0 && "unknown dtype");
    return 0;
}

const char *dtype_name(DType dt) {
    switch (dt) {
    case DTYPE_F32: return "F32";
    case DTYPE_F16: return "F16";
    case DTYPE_BF16: return "BF16";
    case DTYPE_F64: return "F64";
    case DTYPE_I64: return "I64";
    case DTYPE_I32: return "I32";
    case DTYPE_I16: return "I16";
    case DTYPE_I8: return "I8";
    case DTYPE_U8: return "U8";
    case DTYPE_BOOL: return "BOOL";
    }
    return "?";
}

int64_t tensor_numel(const TensorInfo *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];   /* cannot overflow: validated at open */
    return n;
}

int tensor_to_f32(const TensorInfo *t, float *out) {
    size_t n = (size_t)tensor_numel(t);
    const uint8_t *p = t->data;
    uint16_t h;
    switch (t->dtype) {
    case DTYPE_F32:
        if (n) memcpy(out, p, n * sizeof(float));
        return KN_OK;
    case DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        return KN_OK;
    case DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = bf16_to_f32(h);
        }
        return KN_OK;
    default:
        return kn_error(KN_EINVAL, "tensor %s: dtype %s cannot be converted to float32", t->name,
                        dtype_name(t->dtype));
    }
}
