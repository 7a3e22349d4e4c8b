/* torchlegacy.c — see torchlegacy.h. The layout follows torch/serialization.py (_legacy_save writes it,
 * _legacy_load reads it) and torch/csrc/generic/serialization.cpp (writeFileRaw: count, then data). */
#include "model/torchlegacy.h"

#include "model/pickle.h"
#include "model/torchckpt.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0x1950a86a20f9469cfc6c as pickle's LONG1 stores it: little-endian two's complement, 10 bytes. */
static const uint8_t magic_bytes[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
#define LEGACY_PROTOCOL_VERSION 1001

int torchlegacy_detect(const uint8_t *data, size_t size) {
    /* PROTO 2..5 first; a safetensors file whose header length happens to start 0x80 0x02 has '{' at byte 8,
     * where a pickle of the magic number has a FRAME length or the magic's own bytes. */
    return size >= 2 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5 && !(size > 8 && data[8] == '{');
}

/* One storage record, as the persistent ids and the key list describe it. */
typedef struct {
    const char *key;        /* borrowed from the key-list pickle */
    int named;              /* some persistent id names it: dtype and numel are known */
    DType dtype;
    uint64_t numel;
    const uint8_t *data;    /* inside the file, after its count */
} Record;

typedef struct {
    Record *records;        /* in key-list order */
    const Record **by_key;  /* sorted by key */
    size_t count;
    const char *path;
} Records;

static int cmp_record(const void *a, const void *b) {
    return strcmp((*(const Record *const *)a)->key, (*(const Record *const *)b)->key);
}

static Record *find_record(const Records *rs, const char *key) {
    size_t lo = 0, hi = rs->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(rs->by_key[mid]->key, key);
        if (c == 0) return (Record *)rs->by_key[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* TorchStorages.bytes for the records: every check was made when they were read. */
static int record_bytes(void *ctx, const TorchStorageId *id, const char *tensor, const uint8_t **data) {
    const Records *rs = ctx;
    const Record *r = find_record(rs, id->key);
    if (!r || !r->named || r->dtype != id->dtype || r->numel != id->numel)   /* name_records() saw every id */
        return kn_error(KN_EFORMAT, "%s: tensor \"%s\": storage %s is not as read", rs->path, tensor, id->key);
    *data = r->data;
    return KN_OK;
}

/* The next pickle of the file, from *pos; *pos moves past it. what names it in messages. */
static int next_pickle(Pickle **p, const PickleValue **root, const uint8_t *data, size_t size, size_t *pos,
                       const char *what, const char *path) {
    *p = NULL;
    *root = NULL;
    char where[4096];
    snprintf(where, sizeof where, "%s: %s pickle at byte %zu (legacy torch.save format)", path, what, *pos);
    if (*pos >= size)
        return kn_error(KN_EFORMAT, "%s: truncated: the file ends before its %s (legacy torch.save format)", path,
                        what);
    size_t used;
    int rc = pickle_load_prefix(p, root, &used, data + *pos, size - *pos, where);
    if (rc == KN_OK) *pos += used;
    return rc;
}

/* Pickles 1-3: magic number, protocol version, sys_info. */
static int check_header(const uint8_t *data, size_t size, size_t *pos, const char *path) {
    Pickle *p = NULL;
    const PickleValue *v = NULL;
    int rc = next_pickle(&p, &v, data, size, pos, "magic number", path);
    if (rc == KN_OK && !(v->kind == PV_BIGINT && v->str.len == sizeof magic_bytes &&
                         memcmp(v->str.s, magic_bytes, sizeof magic_bytes) == 0))
        rc = kn_error(KN_EFORMAT, "%s: a pickle, but not a PyTorch checkpoint: it starts with a %s, not torch's "
                      "magic number 0x1950a86a20f9469cfc6c", path, pickle_kind_name(v->kind));
    pickle_free(p);
    if (rc != KN_OK) return rc;
    rc = next_pickle(&p, &v, data, size, pos, "protocol version", path);
    if (rc == KN_OK && !(v->kind == PV_INT && v->i == LEGACY_PROTOCOL_VERSION)) {
        if (v->kind == PV_INT)
            rc = kn_error(KN_EFORMAT, "%s: legacy torch checkpoint of protocol version %lld; only %d is known", path,
                          (long long)v->i, LEGACY_PROTOCOL_VERSION);
        else
            rc = kn_error(KN_EFORMAT, "%s: legacy torch checkpoint whose protocol version is a %s, not %d", path,
                          pickle_kind_name(v->kind), LEGACY_PROTOCOL_VERSION);
    }
    pickle_free(p);
    if (rc != KN_OK) return rc;
    rc = next_pickle(&p, &v, data, size, pos, "sys_info", path);
    if (rc == KN_OK && v->kind != PV_DICT)
        rc = kn_error(KN_EFORMAT, "%s: legacy torch checkpoint whose sys_info is a %s, not a dict", path,
                      pickle_kind_name(v->kind));
    for (size_t i = 0; rc == KN_OK && i + 1 < v->seq.count; i += 2) {
        const PickleValue *key = v->seq.items[i], *value = v->seq.items[i + 1];
        if (key->kind == PV_STR && strcmp(key->str.s, "little_endian") == 0 && value->kind == PV_BOOL && !value->i)
            rc = kn_error(KN_EFORMAT, "%s: a legacy torch checkpoint saved on a big-endian machine, which we do "
                          "not read", path);
    }
    pickle_free(p);
    return rc;
}

/* Pickle 5, the keys, into rs (sorted index included); keys borrow from p. */
static int read_keys(Records *rs, const PickleValue *v, const char *path) {
    if (v->kind != PV_LIST)
        return kn_error(KN_EFORMAT, "%s: legacy torch checkpoint whose storage keys are a %s, not a list", path,
                        pickle_kind_name(v->kind));
    size_t n = v->seq.count;
    rs->records = calloc(n ? n : 1, sizeof *rs->records);
    rs->by_key = malloc((n ? n : 1) * sizeof *rs->by_key);
    if (!rs->records || !rs->by_key) return kn_error(KN_ENOMEM, "%s: out of memory for %zu storages", path, n);
    for (size_t i = 0; i < n; i++) {
        const PickleValue *k = v->seq.items[i];
        if (k->kind != PV_STR || strlen(k->str.s) != k->str.len)
            return kn_error(KN_EFORMAT, "%s: legacy torch checkpoint: storage key %zu is a %s, not a name", path, i,
                            pickle_kind_name(k->kind));
        rs->records[i].key = k->str.s;
        rs->by_key[i] = &rs->records[i];
    }
    rs->count = n;
    qsort(rs->by_key, n, sizeof *rs->by_key, cmp_record);
    for (size_t i = 1; i < n; i++)
        if (strcmp(rs->by_key[i - 1]->key, rs->by_key[i]->key) == 0)
            return kn_error(KN_EFORMAT, "%s: legacy torch checkpoint lists storage %s twice", path, rs->by_key[i]->key);
    return KN_OK;
}

/* Types and counts from every persistent id of the state-dict pickle. */
static int name_records(Records *rs, const Pickle *state, const char *path) {
    PickleValue *const *ids;
    size_t n = pickle_persids(state, &ids);
    for (size_t i = 0; i < n; i++) {
        TorchStorageId id;
        int rc = torchckpt_storage_id(&id, ids[i], 1, NULL, path);
        if (rc != KN_OK) return rc;
        Record *r = find_record(rs, id.key);
        if (!r)
            return kn_error(KN_EFORMAT, "%s: storage %s is used by the state dict but not in the file's storage list",
                            path, id.key);
        if (!r->named) {
            r->named = 1;
            r->dtype = id.dtype;
            r->numel = id.numel;
        } else if (r->dtype != id.dtype || r->numel != id.numel) {
            return kn_error(KN_EFORMAT, "%s: storage %s is named both as %llu elements of %s and as %llu of %s", path,
                            id.key, (unsigned long long)r->numel, dtype_name(r->dtype), (unsigned long long)id.numel,
                            dtype_name(id.dtype));
        }
    }
    return KN_OK;
}

/* The records after the last pickle: count, then data, in key-list order, up to the end of the file. */
static int read_records(Records *rs, const uint8_t *data, size_t size, size_t pos, const char *path) {
    for (size_t i = 0; i < rs->count; i++) {
        Record *r = &rs->records[i];
        if (!r->named)
            return kn_error(KN_EFORMAT, "%s: storage %s is listed but nothing in the state dict names its type", path,
                            r->key);
        if (size - pos < 8)
            return kn_error(KN_EFORMAT, "%s: truncated: storage %s (%zu of %zu) has no element count at byte %zu", path,
                            r->key, i + 1, rs->count, pos);
        uint64_t count = 0;
        for (int b = 7; b >= 0; b--) count = count << 8 | data[pos + (size_t)b];
        pos += 8;
        if (count != r->numel)
            return kn_error(KN_EFORMAT, "%s: storage %s holds %llu elements, but the state dict says %llu", path,
                            r->key, (unsigned long long)count, (unsigned long long)r->numel);
        uint64_t bytes;
        if (__builtin_mul_overflow(count, (uint64_t)dtype_size(r->dtype), &bytes) || bytes > size - pos)
            return kn_error(KN_EFORMAT, "%s: truncated: storage %s needs %llu elements of %s at byte %zu, past the "
                            "end of the file (%zu bytes)", path, r->key, (unsigned long long)count,
                            dtype_name(r->dtype), pos, size);
        r->data = data + pos;
        pos += (size_t)bytes;
    }
    if (pos != size)
        return kn_error(KN_EFORMAT, "%s: %zu bytes follow the last storage of a legacy torch checkpoint", path,
                        size - pos);
    return KN_OK;
}

int torchlegacy_read(TensorList *list, const uint8_t *data, size_t size, const char *path) {
    size_t pos = 0;
    Pickle *state = NULL, *keys = NULL;
    const PickleValue *root = NULL, *key_list = NULL;
    Records rs = {.path = path};
    int rc = check_header(data, size, &pos, path);
    if (rc == KN_OK) rc = next_pickle(&state, &root, data, size, &pos, "state-dict", path);
    if (rc == KN_OK) rc = next_pickle(&keys, &key_list, data, size, &pos, "storage-key", path);
    if (rc == KN_OK) rc = read_keys(&rs, key_list, path);
    if (rc == KN_OK) rc = name_records(&rs, state, path);
    if (rc == KN_OK) rc = read_records(&rs, data, size, pos, path);
    if (rc == KN_OK) {
        TorchStorages storages = {record_bytes, &rs, 1, "the state-dict pickle"};
        rc = torchckpt_read_dict(list, root, &storages, path);
    }
    free(rs.records);
    free(rs.by_key);
    pickle_free(keys);
    pickle_free(state);
    return rc;
}
