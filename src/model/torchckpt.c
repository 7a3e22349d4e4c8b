/* torchckpt.c — see torchckpt.h. What torch.save writes is in torch/serialization.py (_save, persistent_id)
 * and torch/_tensor.py (__reduce_ex__); what we accept is the subset a state dict of dense tensors uses. */
#include "model/torchckpt.h"

#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    DType dtype;
} storage_types[] = {
    {"FloatStorage", DTYPE_F32}, {"HalfStorage", DTYPE_F16},  {"BFloat16Storage", DTYPE_BF16},
    {"DoubleStorage", DTYPE_F64}, {"LongStorage", DTYPE_I64}, {"IntStorage", DTYPE_I32},
    {"ShortStorage", DTYPE_I16}, {"CharStorage", DTYPE_I8},   {"ByteStorage", DTYPE_U8},
    {"BoolStorage", DTYPE_BOOL},
};

static int storage_dtype(const PickleValue *type, DType *out) {
    if (type->kind != PV_GLOBAL || strcmp(type->global.module, "torch") != 0) return -1;
    for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++) {
        if (strcmp(type->global.name, storage_types[i].name) == 0) {
            *out = storage_types[i].dtype;
            return 0;
        }
    }
    return -1;
}

static int is_str(const PickleValue *v) { return v->kind == PV_STR && strlen(v->str.s) == v->str.len; }

/* "tensor "w": " or "", for messages about a storage that may be read on its own. */
static const char *tensor_prefix(char *buf, size_t cap, const char *tensor) {
    if (tensor) snprintf(buf, cap, "tensor \"%s\": ", tensor);
    else buf[0] = '\0';
    return buf;
}

int torchckpt_storage_id(TorchStorageId *out, const PickleValue *persid, int legacy, const char *tensor,
                         const char *path) {
    char who[300];
    tensor_prefix(who, sizeof who, tensor);
    const PickleValue *pid = persid->kind == PV_PERSID ? persid->persid : NULL;
    size_t n = pid && pid->kind == PV_TUPLE ? pid->seq.count : 0;
    if ((n != 5 && !(legacy && n == 6)) || !is_str(pid->seq.items[0]) ||
        strcmp(pid->seq.items[0]->str.s, "storage") != 0 || !is_str(pid->seq.items[2]) ||
        pid->seq.items[4]->kind != PV_INT || pid->seq.items[4]->i < 0)
        return kn_error(KN_EFORMAT, "%s: %sstorage is not ('storage', type, key, location, numel%s)", path, who,
                        legacy ? ", view" : "");
    const PickleValue *type = pid->seq.items[1];
    if (storage_dtype(type, &out->dtype) != 0)
        return kn_error(KN_EFORMAT, "%s: %sunsupported storage type %s%s%s", path, who,
                        type->kind == PV_GLOBAL ? type->global.module : pickle_kind_name(type->kind),
                        type->kind == PV_GLOBAL ? "." : "", type->kind == PV_GLOBAL ? type->global.name : "");
    out->key = pid->seq.items[2]->str.s;
    out->numel = (uint64_t)pid->seq.items[4]->i;
    out->is_view = 0;
    out->view_offset = 0;
    out->view_numel = out->numel;
    const PickleValue *view = n == 6 ? pid->seq.items[5] : NULL;
    if (view && view->kind != PV_NONE) {
        if (view->kind != PV_TUPLE || view->seq.count != 3 || !is_str(view->seq.items[0]) ||
            view->seq.items[1]->kind != PV_INT || view->seq.items[1]->i < 0 || view->seq.items[2]->kind != PV_INT ||
            view->seq.items[2]->i < 0)
            return kn_error(KN_EFORMAT, "%s: %sstorage view is not (key, offset, numel)", path, who);
        out->is_view = 1;
        out->view_offset = (uint64_t)view->seq.items[1]->i;
        out->view_numel = (uint64_t)view->seq.items[2]->i;
        if (out->view_offset > out->numel || out->view_numel > out->numel - out->view_offset)
            return kn_error(KN_EFORMAT, "%s: %sstorage view [%llu, %llu) lies outside storage %s of %llu elements",
                            path, who, (unsigned long long)out->view_offset,
                            (unsigned long long)(out->view_offset + out->view_numel), out->key,
                            (unsigned long long)out->numel);
    }
    return KN_OK;
}

/* What a tensor's storage persistent id says, and the bytes it names (a view already applied). */
typedef struct {
    DType dtype;
    const uint8_t *data;
    uint64_t numel;
} Storage;

static int read_storage(Storage *st, const PickleValue *persid, const TorchStorages *storages, const char *name,
                        const char *path) {
    TorchStorageId id;
    int rc = torchckpt_storage_id(&id, persid, storages->legacy, name, path);
    if (rc == KN_OK) rc = storages->bytes(storages->ctx, &id, name, &st->data);
    if (rc != KN_OK) return rc;
    st->dtype = id.dtype;
    st->data += id.view_offset * dtype_size(id.dtype);   /* inside: checked against numel above */
    st->numel = id.view_numel;
    return KN_OK;
}

/* The zip's storages: <archive>data/<key>, stored, of exactly numel elements. */
typedef struct {
    const TorchZip *zip;
    const char *archive, *path;
} ZipStorages;

static int zip_storage_bytes(void *ctx, const TorchStorageId *id, const char *tensor, const uint8_t **data) {
    const ZipStorages *z = ctx;
    size_t len = strlen(z->archive) + strlen("data/") + strlen(id->key) + 1;
    char *entry_name = malloc(len);
    if (!entry_name) return kn_error(KN_ENOMEM, "%s: out of memory", z->path);
    snprintf(entry_name, len, "%sdata/%s", z->archive, id->key);
    const ZipEntry *entry = NULL;
    int rc = torchzip_find(z->zip, entry_name)
                 ? torchzip_get(z->zip, entry_name, 0, &entry)
                 : kn_error(KN_EFORMAT, "%s: tensor \"%s\": its storage has no zip entry %s", z->path, tensor,
                            entry_name);
    free(entry_name);
    if (rc != KN_OK) return rc;
    uint64_t bytes;
    if (__builtin_mul_overflow(id->numel, (uint64_t)dtype_size(id->dtype), &bytes) || bytes != entry->size)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": storage %s holds %llu bytes, not %llu elements of %s",
                        z->path, tensor, id->key, (unsigned long long)entry->size, (unsigned long long)id->numel,
                        dtype_name(id->dtype));
    *data = entry->data;
    return KN_OK;
}

/* A tuple of at most TENSOR_MAX_DIMS ints into dims; its length, or -1. */
static int int_tuple(const PickleValue *v, int64_t *dims) {
    if (v->kind != PV_TUPLE || v->seq.count > TENSOR_MAX_DIMS) return -1;
    for (size_t d = 0; d < v->seq.count; d++) {
        if (v->seq.items[d]->kind != PV_INT) return -1;
        dims[d] = v->seq.items[d]->i;
    }
    return (int)v->seq.count;
}

/* torch's is_contiguous(): dimensions of size 1 may have any stride; an empty tensor is contiguous. */
static int is_contiguous(int ndim, const int64_t *shape, const int64_t *stride, uint64_t numel) {
    if (numel == 0) return 1;
    int64_t expected = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] == 1) continue;
        if (stride[d] != expected) return 0;
        expected *= shape[d];   /* <= numel: cannot overflow */
    }
    return 1;
}

/* call is torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]). */
static int read_tensor(TensorList *list, const char *name, const PickleValue *call, const TorchStorages *storages,
                       const char *path) {
    const PickleValue *args = call->call.args;
    if (args->seq.count != 6 && args->seq.count != 7)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": _rebuild_tensor_v2 takes 6 or 7 arguments, not %zu", path, name,
                        args->seq.count);
    Storage st = {0};
    int rc = read_storage(&st, args->seq.items[0], storages, name, path);
    if (rc != KN_OK) return rc;
    TensorInfo t = {.dtype = st.dtype};
    int64_t stride[TENSOR_MAX_DIMS];
    const PickleValue *offset = args->seq.items[1];
    t.ndim = int_tuple(args->seq.items[2], t.shape);
    int stride_dims = int_tuple(args->seq.items[3], stride);
    if (offset->kind != PV_INT || offset->i < 0 || t.ndim < 0 || stride_dims != t.ndim)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": storage offset, size or stride is malformed (or has more than "
                        "%d dimensions)", path, name, TENSOR_MAX_DIMS);
    uint64_t numel, nbytes;
    if (tensor_shape_bytes(t.dtype, t.ndim, t.shape, &numel, &nbytes) != 0)
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": size is negative or too large", path, name);
    if (!is_contiguous(t.ndim, t.shape, stride, numel))
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\" is not contiguous (its strides are not row-major); save "
                        "tensor.contiguous() instead", path, name);
    uint64_t first = (uint64_t)offset->i;
    if (numel > 0 && (first > st.numel || numel > st.numel - first))
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": elements [%llu, %llu) lie outside its storage of %llu elements",
                        path, name, (unsigned long long)first, (unsigned long long)(first + numel),
                        (unsigned long long)st.numel);
    t.data = numel > 0 ? st.data + first * dtype_size(t.dtype) : st.data;
    t.nbytes = (size_t)nbytes;
    return tensorlist_add(list, name, strlen(name), &t, path);
}

static const char *callable_name(const PickleValue *call, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", call->call.callable->global.module, call->call.callable->global.name);
    return buf;
}

int torchckpt_read_dict(TensorList *list, const PickleValue *root, const TorchStorages *storages,
                        const char *path) {
    if (root->kind != PV_DICT)
        return kn_error(KN_EFORMAT, "%s: %s holds a %s, not a state dict (name -> tensor)", path,
                        storages->pickle_name, pickle_kind_name(root->kind));
    for (size_t i = 0; i + 1 < root->seq.count; i += 2) {
        const PickleValue *key = root->seq.items[i], *value = root->seq.items[i + 1];
        if (!is_str(key))
            return kn_error(KN_EFORMAT, "%s: a state-dict key is a %s, not a name", path, pickle_kind_name(key->kind));
        const char *name = key->str.s;
        if (value->kind == PV_DICT)
            return kn_error(KN_EFORMAT, "%s: \"%s\" holds a dict, not a tensor: a training checkpoint rather than a "
                            "state dict? (save its model's state_dict())", path, name);
        if (value->kind != PV_CALL) continue;   /* a plain Python value: not a tensor */
        const PickleValue *call = value;
        if (pickle_is_global(call->call.callable, "torch._utils", "_rebuild_parameter") ||
            pickle_is_global(call->call.callable, "torch._utils", "_rebuild_parameter_with_state")) {
            if (call->call.args->seq.count < 1 || call->call.args->seq.items[0]->kind != PV_CALL)
                return kn_error(KN_EFORMAT, "%s: tensor \"%s\": parameter wraps no tensor", path, name);
            call = call->call.args->seq.items[0];
        }
        if (!pickle_is_global(call->call.callable, "torch._utils", "_rebuild_tensor_v2")) {
            char buf[256];
            return kn_error(KN_EFORMAT, "%s: \"%s\" is built by %s, which is not a dense tensor we can read", path, name,
                            callable_name(call, buf, sizeof buf));
        }
        int rc = read_tensor(list, name, call, storages, path);
        if (rc != KN_OK) return rc;
    }
    return KN_OK;
}

int torchckpt_read_state(TensorList *list, const PickleValue *root, const TorchZip *zip, const char *archive,
                         const char *path) {
    ZipStorages z = {zip, archive, path};
    TorchStorages storages = {zip_storage_bytes, &z, 0, "data.pkl"};
    return torchckpt_read_dict(list, root, &storages, path);
}

/* The one "<archive>/data.pkl" entry; *archive gets "<archive>/" (malloc'd). */
static int find_archive(const TorchZip *zip, char **archive, const char *path) {
    const ZipEntry *found = NULL;
    for (size_t i = 0; i < zip->count; i++) {
        const char *name = zip->entries[i].name, *slash = strchr(name, '/');
        if (!slash || slash == name || strcmp(slash, "/data.pkl") != 0) continue;
        if (found)
            return kn_error(KN_EFORMAT, "%s: zip holds several PyTorch archives (%s and %s)", path, found->name, name);
        found = &zip->entries[i];
    }
    if (!found)
        return kn_error(KN_EFORMAT, "%s: a zip without <archive>/data.pkl, so not a PyTorch checkpoint", path);
    size_t len = (size_t)(strchr(found->name, '/') - found->name) + 1;
    *archive = malloc(len + 1);
    if (!*archive) return kn_error(KN_ENOMEM, "%s: out of memory", path);
    memcpy(*archive, found->name, len);
    (*archive)[len] = '\0';
    return KN_OK;
}

/* torch writes "little" or "big"; files from before byteorder existed are little-endian. */
static int check_byteorder(const TorchZip *zip, const char *archive, const char *path) {
    char name[4096];
    if ((size_t)snprintf(name, sizeof name, "%sbyteorder", archive) >= sizeof name || !torchzip_find(zip, name))
        return KN_OK;
    const ZipEntry *e;
    int rc = torchzip_get(zip, name, 1, &e);
    if (rc != KN_OK) return rc;
    if (e->size == 6 && memcmp(e->data, "little", 6) == 0) return KN_OK;
    if (e->size == 3 && memcmp(e->data, "big", 3) == 0)
        return kn_error(KN_EFORMAT, "%s: a big-endian checkpoint (byteorder \"big\"), which we do not read", path);
    return kn_error(KN_EFORMAT, "%s: entry %s says neither \"little\" nor \"big\"", path, name);
}

int torchckpt_read(TensorList *list, const uint8_t *data, size_t size, const char *path) {
    TorchZip zip;
    int rc = torchzip_open(&zip, data, size, path);
    if (rc != KN_OK) return rc;
    char *archive = NULL, *pkl_name = NULL, *where = NULL;
    Pickle *pickle = NULL;
    const PickleValue *root = NULL;
    const ZipEntry *pkl;
    rc = find_archive(&zip, &archive, path);
    if (rc == KN_OK) rc = check_byteorder(&zip, archive, path);
    if (rc == KN_OK) {
        size_t len = strlen(archive) + strlen("data.pkl") + 1, where_len = strlen(path) + 2 + len;
        pkl_name = malloc(len);
        where = malloc(where_len);
        if (!pkl_name || !where) rc = kn_error(KN_ENOMEM, "%s: out of memory", path);
        else {
            snprintf(pkl_name, len, "%sdata.pkl", archive);
            snprintf(where, where_len, "%s: %s", path, pkl_name);
        }
    }
    if (rc == KN_OK) rc = torchzip_get(&zip, pkl_name, 1, &pkl);
    if (rc == KN_OK) rc = pickle_load(&pickle, &root, pkl->data, (size_t)pkl->size, where);
    if (rc == KN_OK) rc = torchckpt_read_state(list, root, &zip, archive, path);
    pickle_free(pickle);
    free(where);
    free(pkl_name);
    free(archive);
    torchzip_close(&zip);
    return rc;
}
