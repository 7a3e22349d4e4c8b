/* dstore.c — see dstore.h: opening, reading, verifying and merging datastores. */
#include "dstore/dstore.h"

#include "util/error.h"
#include "util/file.h"
#include "util/half.h"
#include "util/version.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int64_t begin, n;       /* rows [begin, begin + n) of the datastore */
    NpyArray keys, vals;
    char dir[PATH_MAX];
} Part;

struct Dstore {
    DstoreManifest man;
    char dir[PATH_MAX];
    int nparts;
    Part *parts;
};

const DstoreManifest *dstore_manifest(const Dstore *ds) { return &ds->man; }
int64_t dstore_size(const Dstore *ds) { return ds->man.entries; }
int dstore_dim(const Dstore *ds) { return ds->man.dim; }

/* Maps dir/keys.npy and dir/vals.npy and checks them against the expected rows, dim and dtype, and every value
 * against the vocabulary. */
static int open_part(Part *p, const char *dir, int64_t begin, int64_t n, int dim, NpyDtype dtype, int vocab_size) {
    char path[PATH_MAX];
    p->begin = begin;
    p->n = n;
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    int rc = path_join(path, sizeof path, dir, "keys.npy");
    if (rc == KN_OK) rc = npy_map(&p->keys, path);
    if (rc != KN_OK) return rc;
    if (p->keys.dtype != dtype || p->keys.ndim != 2 || p->keys.shape[0] != n || p->keys.shape[1] != dim)
        return kn_error(KN_EMISMATCH, "%s: holds %s [%lld, %lld] but the manifest says %s [%lld, %d]", path, npy_dtype_descr(p->keys.dtype),
                        (long long)p->keys.shape[0], (long long)(p->keys.ndim > 1 ? p->keys.shape[1] : 0), npy_dtype_descr(dtype), (long long)n, dim);
    rc = path_join(path, sizeof path, dir, "vals.npy");
    if (rc == KN_OK) rc = npy_map(&p->vals, path);
    if (rc != KN_OK) return rc;
    if (p->vals.dtype != NPY_I32 || p->vals.ndim != 2 || p->vals.shape[0] != n || p->vals.shape[1] != 1)
        return kn_error(KN_EMISMATCH, "%s: holds %s [%lld, %lld] but the manifest says <i4 [%lld, 1]", path, npy_dtype_descr(p->vals.dtype),
                        (long long)p->vals.shape[0], (long long)(p->vals.ndim > 1 ? p->vals.shape[1] : 0), (long long)n);
    /* Every value is used as a token id (an index into the LM's distribution): one out of range would be read
     * far outside it. One pass here (4 bytes a row) spares every reader a check per neighbour. */
    const int32_t *v = p->vals.data;
    for (int64_t r = 0; r < n; r++)
        if (v[r] < 0 || v[r] >= vocab_size)
            return kn_error(KN_EFORMAT, "%s: row %lld holds the value %d, outside the vocabulary [0, %d)", path, (long long)r, v[r], vocab_size);
    return KN_OK;
}

int dstore_open(Dstore **out, const char *dir) {
    *out = NULL;
    Dstore *ds = calloc(1, sizeof *ds);
    if (!ds) return kn_error(KN_ENOMEM, "out of memory");
    char path[PATH_MAX];
    snprintf(ds->dir, sizeof ds->dir, "%s", dir);
    int rc = path_join(path, sizeof path, dir, "manifest.json");
    if (rc == KN_OK && !file_exists(path)) {
        char build[PATH_MAX];
        path_join(build, sizeof build, dir, "build.json");
        rc = file_exists(build) ? kn_error(KN_EINVAL, "%s: the datastore build is not finished (run the same datastore build command again to resume it)", dir)
                                : kn_error(KN_ENOTFOUND, "%s: not a datastore (no manifest.json)", dir);
    }
    if (rc == KN_OK) rc = manifest_read(&ds->man, path);
    if (rc == KN_OK) {
        ds->nparts = ds->man.nparts ? ds->man.nparts : 1;
        ds->parts = calloc((size_t)ds->nparts, sizeof *ds->parts);
        if (!ds->parts) rc = kn_error(KN_ENOMEM, "out of memory");
    }
    for (int i = 0; rc == KN_OK && i < ds->nparts; i++) {
        if (!ds->man.nparts) {
            rc = open_part(&ds->parts[0], dir, 0, ds->man.entries, ds->man.dim, ds->man.dtype, ds->man.vocab_size);
            break;
        }
        const DstorePart *dp = &ds->man.parts[i];
        char pdir[PATH_MAX];
        if (dp->path[0] == '/') snprintf(pdir, sizeof pdir, "%s", dp->path);
        else rc = path_join(pdir, sizeof pdir, dir, dp->path);
        if (rc == KN_OK) rc = open_part(&ds->parts[i], pdir, dp->entry_begin - ds->man.entry_begin, dp->entries, ds->man.dim, ds->man.dtype, ds->man.vocab_size);
    }
    if (rc != KN_OK) {
        dstore_close(ds);
        return rc;
    }
    *out = ds;
    return KN_OK;
}

void dstore_close(Dstore *ds) {
    if (!ds) return;
    for (int i = 0; ds->parts && i < ds->nparts; i++) {
        npy_unmap(&ds->parts[i].keys);
        npy_unmap(&ds->parts[i].vals);
    }
    free(ds->parts);
    manifest_free(&ds->man);
    free(ds);
}

/* The part holding row (binary search: parts are in row order). */
static const Part *part_of(const Dstore *ds, int64_t row) {
    int lo = 0, hi = ds->nparts - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ds->parts[mid].begin <= row) lo = mid;
        else hi = mid - 1;
    }
    return &ds->parts[lo];
}

static void copy_rows(const Part *p, int64_t local, int64_t n, int dim, float *out) {
    size_t count = (size_t)n * (size_t)dim;
    if (p->keys.dtype == NPY_F16) halves_to_floats(out, (const uint16_t *)p->keys.data + (size_t)local * dim, count);
    else memcpy(out, (const float *)p->keys.data + (size_t)local * dim, count * sizeof(float));
}

void dstore_keys(const Dstore *ds, int64_t begin, int64_t n, float *out) {
    assert(begin >= 0 && n >= 0 && begin + n <= ds->man.entries);
    const int dim = ds->man.dim;
    while (n > 0) {
        const Part *p = part_of(ds, begin);
        int64_t local = begin - p->begin, take = p->n - local < n ? p->n - local : n;
        copy_rows(p, local, take, dim, out);
        out += (size_t)take * dim;
        begin += take;
        n -= take;
    }
}

void dstore_release_keys(const Dstore *ds, int64_t begin, int64_t end) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const size_t row_bytes = (size_t)ds->man.dim * npy_dtype_size(ds->parts[0].keys.dtype);
    for (int i = 0; i < ds->nparts; i++) {
        const Part *p = &ds->parts[i];
        int64_t lo = begin > p->begin ? begin - p->begin : 0, hi = end < p->begin + p->n ? end - p->begin : p->n;
        if (!p->keys.map_ || hi <= lo) continue;
        const uintptr_t data = (uintptr_t)p->keys.data, map = (uintptr_t)p->keys.map_;
        uintptr_t from = (data + (size_t)lo * row_bytes) / page * page, to = (data + (size_t)hi * row_bytes) / page * page;
        if (from < map) from = map;
        if (to > from) madvise((void *)from, to - from, MADV_DONTNEED);
    }
}

void dstore_key_rows(const Dstore *ds, const int64_t *rows, int n, float *out) {
    const int dim = ds->man.dim;
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * dim;
        if (rows[i] < 0 || rows[i] >= ds->man.entries) {
            for (int j = 0; j < dim; j++) o[j] = NAN;
            continue;
        }
        const Part *p = part_of(ds, rows[i]);
        copy_rows(p, rows[i] - p->begin, 1, dim, o);
    }
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* madvise(WILLNEED) on the pages of bytes [from, to) of a mapping, extending *pending (a range not yet
 * advised) when they touch it, so that neighbouring rows cost one call. */
typedef struct {
    const NpyArray *arr;
    uintptr_t lo, hi;
} Pending;

static void advise_flush(Pending *p) {
    if (p->arr && p->hi > p->lo) madvise((void *)p->lo, p->hi - p->lo, MADV_WILLNEED);
    p->arr = NULL;
}

static void advise_bytes(Pending *p, const NpyArray *arr, const void *base, size_t from, size_t to) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)base + from) & ~(page - 1), hi = ((uintptr_t)base + to + page - 1) & ~(page - 1);
    if (p->arr == arr && lo <= p->hi && lo >= p->lo) { /* touching or overlapping: one call for both */
        if (hi > p->hi) p->hi = hi;
        return;
    }
    advise_flush(p);
    p->arr = arr;
    p->lo = lo;
    p->hi = hi;
}

void dstore_prefetch_rows(const Dstore *ds, const int64_t *rows, int64_t n) {
    int64_t *sorted = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!sorted) return; /* only an optimisation */
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (rows[i] >= 0 && rows[i] < ds->man.entries) sorted[m++] = rows[i];
    qsort(sorted, (size_t)m, sizeof *sorted, cmp_i64);
    Pending keys = {0}, vals = {0};
    const size_t row_bytes = (size_t)ds->man.dim * npy_dtype_size(ds->parts[0].keys.dtype);
    for (int64_t i = 0; i < m; i++) {
        if (i && sorted[i] == sorted[i - 1]) continue;
        const Part *p = part_of(ds, sorted[i]);
        size_t local = (size_t)(sorted[i] - p->begin);
        advise_bytes(&keys, &p->keys, p->keys.data, local * row_bytes, (local + 1) * row_bytes);
        advise_bytes(&vals, &p->vals, p->vals.data, local * sizeof(int32_t), (local + 1) * sizeof(int32_t));
    }
    advise_flush(&keys);
    advise_flush(&vals);
    free(sorted);
}

int32_t dstore_value(const Dstore *ds, int64_t row) {
    assert(row >= 0 && row < ds->man.entries);
    const Part *p = part_of(ds, row);
    return ((const int32_t *)p->vals.data)[row - p->begin];
}

/* madvise works on page-aligned ranges: advise the whole mapping (header included). */
static void advise_map(const NpyArray *a, int advice) {
    if (a->map_) madvise(a->map_, a->map_len_, advice);
}

void dstore_advise(const Dstore *ds, DstoreAccess access) {
    for (int i = 0; i < ds->nparts; i++) advise_map(&ds->parts[i].keys, access == DSTORE_RANDOM ? MADV_RANDOM : MADV_SEQUENTIAL);
}

/* Hashes a whole mapped .npy file (header and data), as hash_file would, without reading it a second time. */
static void hash_npy(HashState *h, const NpyArray *a, size_t from, size_t len) {
    hash_update(h, (const uint8_t *)a->map_ + from, len);
}

int dstore_verify(const Dstore *ds, const KnMonitor *monitor, DstoreVerifyReport *rep) {
    memset(rep, 0, sizeof *rep);
    const DstoreManifest *m = &ds->man;
    const int dim = m->dim;
    rep->entries = m->entries;
    enum { BLOCK_ROWS = 16384 };
    float *buf = malloc((size_t)BLOCK_ROWS * dim * sizeof(float));
    if (!buf) return kn_error(KN_ENOMEM, "out of memory");
    /* tokens.npy, when the datastore has one, says what every value must be */
    NpyArray tokens = {0};
    char path[PATH_MAX];
    int have_tokens = path_join(path, sizeof path, ds->dir, "tokens.npy") == KN_OK && file_exists(path) && npy_map(&tokens, path) == KN_OK;
    int check_tokens_hash = m->tokens_hash[0] && ds->nparts == 1;
    if (check_tokens_hash && !have_tokens) { /* the manifest lists it: its absence is a finding, not a skip */
        free(buf);
        return file_exists(path) ? kn_error_wrap(KN_EFORMAT, "%s: unreadable, but the manifest lists its hash", path)
                                 : kn_error(KN_ENOTFOUND, "%s: missing, but the manifest lists its hash", path);
    }
    if (have_tokens && (tokens.dtype != NPY_I32 || tokens.ndim != 1 || tokens.shape[0] != m->tokens)) {
        npy_unmap(&tokens);
        free(buf);
        return kn_error(KN_EFORMAT, "%s: does not hold the %lld-token stream the manifest describes", path, (long long)m->tokens);
    }
    dstore_advise(ds, DSTORE_SEQUENTIAL);
    monitor_begin(monitor, "verify", "entries", (uint64_t)m->entries, 0);
    int rc = KN_OK;
    int check_hashes = m->keys_hash[0] && ds->nparts == 1;
    HashState *hk = NULL, *hv = NULL;
    if (check_hashes && (hash_begin(&hk) != KN_OK || hash_begin(&hv) != KN_OK)) rc = KN_ENOMEM;
    if (check_hashes && rc == KN_OK) {
        hash_npy(hk, &ds->parts[0].keys, 0, ds->parts[0].keys.data_offset);
        hash_npy(hv, &ds->parts[0].vals, 0, ds->parts[0].vals.map_len_);
    }
    int64_t first_bad_key = -1, first_bad_value = -1;
    for (int64_t r = 0; rc == KN_OK && r < m->entries; r += BLOCK_ROWS) {
        int64_t n = m->entries - r < BLOCK_ROWS ? m->entries - r : BLOCK_ROWS;
        dstore_keys(ds, r, n, buf);
        for (int64_t i = 0; i < n; i++) {
            const float *row = buf + (size_t)i * dim;
            int finite = 1;
            for (int j = 0; j < dim; j++) finite &= isfinite(row[j]);
            if (!finite && rep->nonfinite_keys++ == 0) first_bad_key = r + i;
            int32_t v = dstore_value(ds, r + i);
            if ((v < 0 || v >= m->vocab_size) && rep->bad_values++ == 0) first_bad_value = r + i;
            if (have_tokens && v != ((const int32_t *)tokens.data)[m->entry_begin + r + i + 1]) rep->value_mismatches++;
        }
        if (check_hashes) {
            const NpyArray *k = &ds->parts[0].keys;
            size_t row_bytes = (size_t)dim * npy_dtype_size(k->dtype);
            hash_npy(hk, k, k->data_offset + (size_t)r * row_bytes, (size_t)n * row_bytes);
        }
        dstore_release_keys(ds, r, r + n);
        monitor_progress(monitor, (uint64_t)(r + n), 0);
        if (monitor_stopped(monitor)) rc = kn_error(KN_EINTR, "%s: verify interrupted", ds->dir);
    }
    monitor_end(monitor, (uint64_t)m->entries, 0);
    if (check_hashes) {
        char hkx[HASH_HEX_LEN], hvx[HASH_HEX_LEN];
        hash_end(hk, hkx);
        hash_end(hv, hvx);
        rep->hashes_checked = rc == KN_OK;
        rep->hashes_match = !strcmp(hkx, m->keys_hash) && !strcmp(hvx, m->vals_hash);
        if (rc == KN_OK && strcmp(hkx, m->keys_hash) != 0) rc = kn_error(KN_EFORMAT, "%s/keys.npy: content hash %s differs from the manifest's %s (the file changed after the build)", ds->dir, hkx, m->keys_hash);
        if (rc == KN_OK && strcmp(hvx, m->vals_hash) != 0) rc = kn_error(KN_EFORMAT, "%s/vals.npy: content hash %s differs from the manifest's %s (the file changed after the build)", ds->dir, hvx, m->vals_hash);
    }
    if (check_tokens_hash && rc == KN_OK) {
        char htx[HASH_HEX_LEN];
        HashState *ht = NULL;
        rc = hash_begin(&ht);
        if (rc == KN_OK) {
            hash_npy(ht, &tokens, 0, tokens.map_len_);
            hash_end(ht, htx);
            rep->hashes_match &= !strcmp(htx, m->tokens_hash);
            if (strcmp(htx, m->tokens_hash) != 0)
                rc = kn_error(KN_EFORMAT, "%s: content hash %s differs from the manifest's %s (the file changed after the build)", path, htx, m->tokens_hash);
        }
    }
    if (rc == KN_OK && rep->nonfinite_keys)
        rc = kn_error(KN_EFORMAT, "%s: %lld keys hold NaN or Inf (first: row %lld)", ds->dir, (long long)rep->nonfinite_keys, (long long)first_bad_key);
    if (rc == KN_OK && rep->bad_values)
        rc = kn_error(KN_EFORMAT, "%s: %lld values are outside the vocabulary [0, %d) (first: row %lld)", ds->dir, (long long)rep->bad_values, m->vocab_size, (long long)first_bad_value);
    if (rc == KN_OK && rep->value_mismatches)
        rc = kn_error(KN_EFORMAT, "%s: %lld values differ from the next token in tokens.npy", ds->dir, (long long)rep->value_mismatches);
    if (have_tokens) npy_unmap(&tokens);
    free(buf);
    return rc;
}

/* Copies len bytes from in (at in_off) to out (at out_off) with copy_file_range, falling back to read/write. */
static int copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len, const char *src, const char *dst) {
    while (len > 0) {
        loff_t io = (loff_t)in_off, oo = (loff_t)out_off;
        ssize_t n = copy_file_range(in, &io, out, &oo, len > (1u << 30) ? (1u << 30) : (size_t)len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
            char buf[1 << 16];
            size_t chunk = len < sizeof buf ? (size_t)len : sizeof buf;
            int rc = file_pread_full(in, buf, chunk, in_off, src);
            if (rc == KN_OK) rc = pwrite(out, buf, chunk, (off_t)out_off) == (ssize_t)chunk ? KN_OK : kn_error_errno("%s: write failed", dst);
            if (rc != KN_OK) return rc;
            n = (ssize_t)chunk;
        } else if (n < 0) {
            return kn_error_errno("%s: copying from %s failed", dst, src);
        } else if (n == 0) {
            return kn_error(KN_EFORMAT, "%s: shorter than its header says", src);
        }
        in_off += (uint64_t)n;
        out_off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return KN_OK;
}

/* Concatenates the data of the shards' `name` files (2-D arrays of the same dtype and width) into out_dir/name. */
static int concat_npy(const char *out_dir, const char *name, const char *const *dirs, const int *order, int n, int64_t rows, int64_t cols,
                      NpyDtype dtype, const KnMonitor *monitor, uint64_t *copied) {
    char out_path[PATH_MAX], tmp[PATH_MAX + 8];
    int rc = path_join(out_path, sizeof out_path, out_dir, name);
    if (rc != KN_OK) return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return kn_error_errno("%s: cannot create", tmp);
    uint8_t header[NPY_HEADER_BYTES];
    int64_t shape[2] = {rows, cols};
    rc = npy_header(header, dtype, 2, shape);
    if (rc == KN_OK) rc = file_write_full(fd, header, sizeof header, tmp);
    uint64_t at = NPY_HEADER_BYTES;
    for (int i = 0; rc == KN_OK && i < n; i++) {
        char src[PATH_MAX];
        NpyArray a;
        rc = path_join(src, sizeof src, dirs[order[i]], name);
        if (rc == KN_OK) rc = npy_map(&a, src);
        if (rc != KN_OK) break;
        uint64_t bytes = (uint64_t)a.numel * npy_dtype_size(a.dtype);
        size_t off = a.data_offset;
        npy_unmap(&a);
        int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            rc = kn_error_errno("%s: cannot open", src);
            break;
        }
        rc = copy_range(in, off, fd, at, bytes, src, tmp);
        close(in);
        at += bytes;
        *copied += bytes;
        monitor_progress(monitor, *copied, *copied);
    }
    if (rc == KN_OK && fsync(fd) != 0) rc = kn_error_errno("%s: fsync failed", tmp);
    if (close(fd) != 0 && rc == KN_OK) rc = kn_error_errno("%s: close failed", tmp);
    if (rc == KN_OK && rename(tmp, out_path) != 0) rc = kn_error_errno("%s: cannot rename", tmp);
    if (rc != KN_OK) unlink(tmp);
    return rc;
}

static int copy_file(const char *src, const char *dst) {
    FileMap map;
    int rc = file_map(&map, src);
    if (rc != KN_OK) return rc;
    rc = file_write_atomic(dst, map.data, map.size);
    file_unmap(&map);
    return rc;
}

int dstore_merge(const char *out_dir, const char *const *dirs, int n, int link_only, const KnMonitor *monitor) {
    if (n < 1) return kn_error(KN_EINVAL, "datastore merge: no shard folders given");
    DstoreManifest *ms = calloc((size_t)n, sizeof *ms);
    int *order = calloc((size_t)n, sizeof *order);
    int rc = ms && order ? KN_OK : kn_error(KN_ENOMEM, "out of memory");
    char path[PATH_MAX];
    for (int i = 0; rc == KN_OK && i < n; i++) {
        rc = path_join(path, sizeof path, dirs[i], "manifest.json");
        if (rc == KN_OK && !file_exists(path)) rc = kn_error(KN_ENOTFOUND, "%s: not a finished datastore shard (no manifest.json)", dirs[i]);
        if (rc == KN_OK) rc = manifest_read(&ms[i], path);
        if (rc == KN_OK && ms[i].nparts) rc = kn_error(KN_EINVAL, "%s: is itself a merged datastore; merge the original shards", dirs[i]);
    }
    /* every shard i/N exactly once, all with the same settings */
    for (int i = 0; rc == KN_OK && i < n; i++) order[i] = -1;
    for (int i = 0; rc == KN_OK && i < n; i++) {
        if (ms[i].shard_count != n)
            rc = kn_error(KN_EINVAL, "%s: is shard %d of %d, but %d folders were given", dirs[i], ms[i].shard_index, ms[i].shard_count, n);
        else if (order[ms[i].shard_index] >= 0)
            rc = kn_error(KN_EINVAL, "%s: shard %d/%d is given twice (also %s)", dirs[i], ms[i].shard_index, n, dirs[order[ms[i].shard_index]]);
        else
            order[ms[i].shard_index] = i;
    }
    for (int s = 0; rc == KN_OK && s < n; s++) {
        DstoreManifest want = ms[order[0]];
        want.shard_index = ms[order[s]].shard_index;
        char where[PATH_MAX + 32];
        snprintf(where, sizeof where, "%s", dirs[order[s]]);
        rc = manifest_same_settings(&ms[order[s]], &want, where);
        if (rc == KN_OK && s > 0 && ms[order[s]].entry_begin != ms[order[s - 1]].entry_begin + ms[order[s - 1]].entries)
            rc = kn_error(KN_EINVAL, "%s: entries start at %lld but the previous shard ends at %lld", dirs[order[s]], (long long)ms[order[s]].entry_begin,
                          (long long)(ms[order[s - 1]].entry_begin + ms[order[s - 1]].entries));
    }
    DstoreManifest out = {0};
    if (rc == KN_OK) {
        out = ms[order[0]];
        out.parts = NULL;
        out.shard_index = 0;
        out.shard_count = 1;
        out.entries = ms[order[n - 1]].entry_begin + ms[order[n - 1]].entries - out.entry_begin;
        if (out.entry_begin != 0 || out.entries != (out.tokens > 0 ? out.tokens - 1 : 0))
            rc = kn_error(KN_EINVAL, "the shards hold entries [%lld, %lld) of %lld; is a shard missing?", (long long)out.entry_begin,
                          (long long)(out.entry_begin + out.entries), (long long)(out.tokens - 1));
    }
    const int existed = file_exists(out_dir);
    int wrote = 0; /* files of ours in out_dir, removed again if the merge fails */
    if (rc == KN_OK) rc = file_mkdirs(out_dir);
    if (rc == KN_OK && path_join(path, sizeof path, out_dir, "manifest.json") == KN_OK && file_exists(path))
        rc = kn_error(KN_EINVAL, "%s: already holds a datastore; merge into a new folder", out_dir);
    if (rc == KN_OK && link_only) {
        out.nparts = n;
        out.parts = calloc((size_t)n, sizeof *out.parts);
        out.keys_hash[0] = out.vals_hash[0] = out.tokens_hash[0] = '\0'; /* the parts' manifests hold them */
        if (!out.parts) rc = kn_error(KN_ENOMEM, "out of memory");
        for (int s = 0; rc == KN_OK && s < n; s++) {
            char abs[PATH_MAX];
            if (!realpath(dirs[order[s]], abs)) rc = kn_error_errno("%s: cannot resolve", dirs[order[s]]);
            else if (strlen(abs) >= sizeof out.parts[s].path) rc = kn_error(KN_EINVAL, "%s: path too long", abs);
            else {
                strcpy(out.parts[s].path, abs);
                out.parts[s].entry_begin = ms[order[s]].entry_begin;
                out.parts[s].entries = ms[order[s]].entries;
            }
        }
    } else if (rc == KN_OK) {
        uint64_t copied = 0, total = 0;
        size_t ksize = npy_dtype_size(out.dtype);
        total = (uint64_t)out.entries * ((uint64_t)out.dim * ksize + 4);
        monitor_begin(monitor, "merge", "bytes", total, 0);
        wrote = 1;
        rc = concat_npy(out_dir, "keys.npy", dirs, order, n, out.entries, out.dim, out.dtype, monitor, &copied);
        if (rc == KN_OK) rc = concat_npy(out_dir, "vals.npy", dirs, order, n, out.entries, 1, NPY_I32, monitor, &copied);
        char src[PATH_MAX];
        if (rc == KN_OK && path_join(src, sizeof src, dirs[order[0]], "tokens.npy") == KN_OK && file_exists(src)) {
            rc = path_join(path, sizeof path, out_dir, "tokens.npy");
            if (rc == KN_OK) rc = copy_file(src, path);
            if (rc == KN_OK) rc = hash_file(path, out.tokens_hash);
        } else {
            out.tokens_hash[0] = '\0';
        }
        monitor_end(monitor, copied, copied);
        if (rc == KN_OK && path_join(path, sizeof path, out_dir, "keys.npy") == KN_OK) rc = hash_file(path, out.keys_hash);
        if (rc == KN_OK && path_join(path, sizeof path, out_dir, "vals.npy") == KN_OK) rc = hash_file(path, out.vals_hash);
    }
    if (rc == KN_OK) {
        snprintf(out.tool_version, sizeof out.tool_version, "%s", KNNLM_VERSION);
        rc = path_join(path, sizeof path, out_dir, "manifest.json");
        if (rc == KN_OK) rc = manifest_write(&out, path, NULL, 0);
    }
    if (rc != KN_OK && wrote) {
        /* a half-merged folder would be refused by the rerun ("holds keys.npy but is not a datastore"):
         * leave it as it was before, so that running the same command again is all it takes */
        static const char *const ours[] = {"keys.npy", "vals.npy", "tokens.npy"};
        for (size_t f = 0; f < sizeof ours / sizeof ours[0]; f++)
            if (path_join(path, sizeof path, out_dir, ours[f]) == KN_OK) unlink(path);
        if (!existed) rmdir(out_dir);
    }
    free(out.parts);
    for (int i = 0; ms && i < n; i++) manifest_free(&ms[i]);
    free(ms);
    free(order);
    return rc;
}
