/* dstore_index.c — see dstore_index.h. */
#include "index/dstore_index.h"

#include "index/index_meta.h"

#include "util/clock.h"
#include "util/error.h"
#include "util/rng.h"
#include "util/file.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void index_build_defaults(IndexBuildOptions *o) {
    memset(o, 0, sizeof *o);
    o->factory = "Flat";
    o->batch = 65536;
    o->seed = 1;
    o->shard_rows = 4194304;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* n distinct rows of [0, N), drawn with a seed by Floyd's algorithm, then sorted so that the keys are read in
 * file order. */
static int sample_rows(int64_t N, int64_t n, uint64_t seed, int64_t **out) {
    int64_t *rows = malloc((size_t)n * sizeof *rows);
    if (!rows) return kn_error(KN_ENOMEM, "out of memory for a training sample of %lld rows", (long long)n);
    if (n == N) {
        for (int64_t i = 0; i < n; i++) rows[i] = i;
        *out = rows;
        return KN_OK;
    }
    /* Floyd: for j = N-n .. N-1 pick t in [0, j]; take t unless taken, else j. Membership in a bitmap of N
     * bits: 13 MB for 10^8 rows. */
    uint8_t *taken = calloc((size_t)(N + 7) / 8, 1);
    if (!taken) {
        free(rows);
        return kn_error(KN_ENOMEM, "out of memory for the sample bitmap");
    }
    int64_t k = 0;
    for (int64_t j = N - n; j < N; j++) {
        int64_t t = (int64_t)(splitmix64(&seed) % (uint64_t)(j + 1));
        if (taken[t >> 3] & (1u << (t & 7))) t = j;
        taken[t >> 3] |= (uint8_t)(1u << (t & 7));
        rows[k++] = t;
    }
    free(taken);
    qsort(rows, (size_t)n, sizeof *rows, cmp_i64);
    *out = rows;
    return KN_OK;
}

static int train(KnnIndex *ix, const Dstore *ds, const IndexBuildOptions *o, const KnMonitor *mon, IndexBuildReport *rep) {
    const int64_t N = dstore_size(ds);
    const int D = dstore_dim(ds);
    int64_t n = o->train_size;
    if (n <= 0) {
        n = index_train_points_recommended(ix);
        if (n < 65536) n = 65536;
    }
    if (n > N) n = N;
    int64_t *rows = NULL;
    int rc = sample_rows(N, n, o->seed, &rows);
    if (rc != KN_OK) return rc;
    float *x = malloc((size_t)n * D * sizeof(float));
    if (!x) {
        free(rows);
        return kn_error(KN_ENOMEM, "out of memory for %lld training vectors", (long long)n);
    }
    monitor_begin(mon, "index train", "vectors", (uint64_t)n, 0);
    enum { CHUNK = 4096 };
    for (int64_t i = 0; i < n; i += CHUNK) {
        dstore_key_rows(ds, rows + i, (int)(n - i < CHUNK ? n - i : CHUNK), x + (size_t)i * D);
        monitor_progress(mon, (uint64_t)(i + CHUNK < n ? i + CHUNK : n), 0);
    }
    dstore_release_keys(ds, 0, N); /* the sample's pages, and the neighbours the kernel mapped around each */
    double t0 = kn_seconds();
    rc = index_train_monitored(ix, n, D, x, mon);
    rep->train_seconds = kn_seconds() - t0;
    rep->trained_on = n;
    monitor_end(mon, (uint64_t)n, 0);
    free(x);
    free(rows);
    return rc;
}

/* Adds rows [begin, end) of ds to ix in batches, with global ids. */
static int add_rows(KnnIndex *ix, const Dstore *ds, int64_t begin, int64_t end, int64_t batch, float *buf, const KnMonitor *mon, int64_t *added) {
    const int D = dstore_dim(ds);
    for (int64_t r = begin; r < end; r += batch) {
        int64_t n = end - r < batch ? end - r : batch;
        dstore_keys(ds, r, n, buf);
        dstore_release_keys(ds, r, r + n);
        int rc = index_add_range(ix, r, n, D, buf);
        if (rc != KN_OK) return rc;
        *added += n;
        monitor_progress(mon, (uint64_t)*added, 0);
        if (monitor_stopped(mon)) return kn_error(KN_EINTR, "index build interrupted (nothing was written; run it again)");
    }
    return KN_OK;
}

static int write_meta(const Dstore *ds, const char *index_path, const IndexBuildOptions *o, const IndexBuildReport *rep) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s.meta.json", index_path) >= (int)sizeof path) return kn_error(KN_EINVAL, "%s: path too long", index_path);
    IndexMetaBuild b = {o->factory, o->ondisk, rep->trained_on, o->seed};
    return index_meta_write(path, dstore_manifest(ds), dstore_size(ds), dstore_dim(ds), &b);
}

static void shard_path(char *buf, size_t cap, const char *index_path, int s) { snprintf(buf, cap, "%s.shard%d.tmp", index_path, s); }

/* The "1T vectors" path: a trained empty index, shards of shard_rows rows each written beside the output,
 * merged into index_path + its ivfdata, shards removed. With a group, rank r adds its block of shards (see
 * dstore_index.h): rank 0 alone writes the trained index and merges, after every rank agreed it succeeded. */
static int build_ondisk(KnnIndex *trained, const Dstore *ds, const char *index_path, const IndexBuildOptions *o, float *buf, const KnMonitor *mon,
                        IndexBuildReport *rep) {
    const int64_t N = dstore_size(ds);
    const int rank = group_rank(o->group), ranks = group_size(o->group);
    char trained_path[PATH_MAX];
    snprintf(trained_path, sizeof trained_path, "%s.trained.tmp", index_path);
    int rc = rank == 0 ? index_write(trained, trained_path) : KN_OK;
    if ((rc = group_agree(o->group, rc)) != KN_OK) {
        if (rank == 0) unlink(trained_path);
        return rc;
    }
    int nshards = (int)((N + o->shard_rows - 1) / o->shard_rows);
    int first = (int)((int64_t)nshards * rank / ranks), last = (int)((int64_t)nshards * (rank + 1) / ranks);
    int64_t rows = first == last ? 0 : (last < nshards ? (int64_t)last * o->shard_rows : N) - (int64_t)first * o->shard_rows;
    char path[PATH_MAX];
    monitor_begin(mon, "index add", "vectors", (uint64_t)rows, 0);
    double t0 = kn_seconds();
    for (int s = first; rc == KN_OK && s < last; s++) {
        shard_path(path, sizeof path, index_path, s);
        KnnIndex *shard = NULL;
        rc = index_read(&shard, trained_path, 0);
        int64_t begin = (int64_t)s * o->shard_rows, end = begin + o->shard_rows < N ? begin + o->shard_rows : N;
        if (rc == KN_OK) rc = add_rows(shard, ds, begin, end, o->batch, buf, mon, &rep->added);
        if (rc == KN_OK) rc = index_write(shard, path);
        index_free(shard);
    }
    rep->add_seconds = kn_seconds() - t0;
    monitor_end(mon, (uint64_t)rep->added, 0);
    rep->shards = nshards;
    const int added_all = (rc = group_agree(o->group, rc)) == KN_OK;
    char **paths = NULL;
    if (added_all && rank == 0) {
        paths = calloc((size_t)nshards, sizeof *paths);
        if (!paths) rc = kn_error(KN_ENOMEM, "out of memory");
        for (int s = 0; rc == KN_OK && s < nshards; s++) {
            if (!(paths[s] = malloc(PATH_MAX))) rc = kn_error(KN_ENOMEM, "out of memory");
            else shard_path(paths[s], PATH_MAX, index_path, s);
        }
        if (rc == KN_OK) rc = index_merge_ondisk(trained_path, (const char *const *)paths, nshards, index_path, NULL);
        if (rc == KN_OK) rep->added = N;
    }
    /* the shards: once every rank wrote its own, rank 0 removes them all (merged or not); after a failure
     * each rank removes its own */
    if (!added_all || rank == 0)
        for (int s = added_all ? 0 : first; s < (added_all ? nshards : last); s++) {
            shard_path(path, sizeof path, index_path, s);
            unlink(path);
        }
    for (int s = 0; paths && s < nshards; s++) free(paths[s]);
    free(paths);
    if (rank == 0) unlink(trained_path);
    return rc;
}

int dstore_index_build(const Dstore *ds, const char *index_path, const IndexBuildOptions *o, const KnMonitor *mon, IndexBuildReport *rep) {
    memset(rep, 0, sizeof *rep);
    const int64_t N = dstore_size(ds);
    const int D = dstore_dim(ds);
    if (N < 1) return kn_error(KN_EINVAL, "the datastore is empty");
    if (o->batch < 1 || o->shard_rows < 1) return kn_error(KN_EINVAL, "--batch and --shard-rows must be at least 1");
    KnnIndex *ix = NULL;
    int rc = index_create(&ix, D, o->factory);
    if (rc != KN_OK) return rc;
    if (o->ondisk && index_nlist(ix) == 0) {
        index_free(ix);
        return kn_error(KN_EINVAL, "--ondisk needs an IVF index (e.g. \"IVF4096,PQ64\"), not \"%s\"", o->factory);
    }
    if (o->ondisk && (rc = index_check_ondisk(ix)) != KN_OK) {
        index_free(ix);
        return kn_error_wrap(rc, "--ondisk");
    }
    if (!o->ondisk && group_size(o->group) > 1) {
        index_free(ix);
        return kn_error(KN_EINVAL, "--ondisk is needed to build an index on %d ranks (each adds its rows into its own on-disk lists)", group_size(o->group));
    }
    dstore_advise(ds, DSTORE_SEQUENTIAL);
    if (!index_is_trained(ix) && group_rank(o->group) == 0) rc = train(ix, ds, o, mon, rep);
    float *buf = rc == KN_OK ? malloc((size_t)o->batch * D * sizeof(float)) : NULL;
    if (rc == KN_OK && !buf) rc = kn_error(KN_ENOMEM, "out of memory for a batch of %lld keys", (long long)o->batch);
    if (rc == KN_OK && o->ondisk) {
        rc = build_ondisk(ix, ds, index_path, o, buf, mon, rep);
    } else if (rc == KN_OK) {
        monitor_begin(mon, "index add", "vectors", (uint64_t)N, 0);
        double t0 = kn_seconds();
        rc = add_rows(ix, ds, 0, N, o->batch, buf, mon, &rep->added);
        rep->add_seconds = kn_seconds() - t0;
        monitor_end(mon, (uint64_t)rep->added, 0);
        if (rc == KN_OK) rc = index_write(ix, index_path);
    }
    if (rc == KN_OK && group_rank(o->group) == 0 && (rc = write_meta(ds, index_path, o, rep)) != KN_OK) {
        /* an index without its record would be refused by eval and kept from a rerun (not recognisably ours):
         * remove what this build just wrote, so that running it again is all it takes */
        char ivfdata[PATH_MAX];
        unlink(index_path);
        if (o->ondisk && snprintf(ivfdata, sizeof ivfdata, "%s.ivfdata", index_path) < (int)sizeof ivfdata) unlink(ivfdata);
    }
    free(buf);
    index_free(ix);
    return rc;
}

int dstore_index_open(KnnIndex **out, const char *index_path, const Dstore *ds) {
    *out = NULL;
    const DstoreManifest *m = dstore_manifest(ds);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s.meta.json", index_path) >= (int)sizeof path) return kn_error(KN_EINVAL, "%s: path too long", index_path);
    char *text;
    size_t len;
    int rc = file_read_all(path, &text, &len);
    if (rc == KN_ENOTFOUND) return kn_error(rc, "%s: missing (the index's record of its datastore; build the index with knnlm index build)", path);
    if (rc != KN_OK) return rc;
    rc = index_meta_check(text, len, path, index_path, m, dstore_size(ds), dstore_dim(ds));
    free(text);
    KnnIndex *ix = NULL;
    if (rc == KN_OK) rc = index_read(&ix, index_path, INDEX_READ_MMAP);
    if (rc == KN_OK && (index_ntotal(ix) != dstore_size(ds) || index_dim(ix) != dstore_dim(ds)))
        rc = kn_error(KN_EMISMATCH, "%s: holds %lld vectors of dimension %d but the datastore %lld of dimension %d", index_path, (long long)index_ntotal(ix),
                      index_dim(ix), (long long)dstore_size(ds), dstore_dim(ds));
    if (rc != KN_OK) {
        index_free(ix);
        return rc;
    }
    *out = ix;
    return KN_OK;
}
