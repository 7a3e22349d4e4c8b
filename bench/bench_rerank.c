/* bench_rerank.c — searches with exact distances on a datastore larger than RAM: what `eval --exact-distances`
 * does per window (one batched index search, then k rows of keys per query read from the datastore to
 * recompute the distances), timed with a cold page cache and warm, with and without dstore_prefetch_rows.
 *
 *   bench_rerank DSTORE INDEX [NQ=2048] [K=256] [NPROBE=32] [BATCH=512]
 *
 * INDEX "-" measures the re-ranking alone: each query's k rows are drawn uniformly (seeded) instead of searched,
 * the access pattern of neighbours scattered over the datastore, without building an index over it first.
 *
 * DSTORE is a synthetic datastore (bench/scale.c --phase dstore): the queries are rows N.. of the same
 * generator, i.e. from the keys' distribution and not among them. "Cold" drops the page cache of keys.npy,
 * vals.npy and the index's ivfdata first (posix_fadvise DONTNEED: only pages no process maps are dropped, so
 * nothing else holds them; the datastore is opened afresh for every run). vals.npy is read whole when the
 * datastore opens (its values are checked), so only keys.npy is cold. Prints queries/s, the share of the time spent re-ranking, and the resident set. */
#include "dstore/dstore.h"
#include "dstore/synth.h"
#include "index/index.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/rng.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "bench_rerank: %s: %s\n", what, kn_errmsg());
    exit(1);
}

static void drop_cache(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static double rss_mb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) kb = atof(line + strlen(field) + 1);
    if (f) fclose(f);
    return kb / 1024;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_rerank DSTORE INDEX [NQ=2048] [K=256] [NPROBE=32] [BATCH=512]\n");
        return 2;
    }
    const char *dir = argv[1], *index_path = argv[2];
    int nq = argc > 3 ? atoi(argv[3]) : 2048, k = argc > 4 ? atoi(argv[4]) : 256, nprobe = argc > 5 ? atoi(argv[5]) : 32;
    int batch = argc > 6 ? atoi(argv[6]) : 512;
    if (nq < 1 || k < 1 || nprobe < 1 || batch < 1) die("arguments");
    char path[PATH_MAX];
    const char *files[] = {"keys.npy", "vals.npy"};
    Dstore *ds = NULL;
    if (dstore_open(&ds, dir) != KN_OK) die(dir); /* reads vals.npy once (its check): dropped again below */
    if (strcmp(dstore_manifest(ds)->model, "synthetic")) die("not a synthetic datastore (bench/scale.c --phase dstore)");
    const int64_t N = dstore_size(ds);
    const int D = dstore_dim(ds), f16 = dstore_manifest(ds)->dtype == NPY_F16;
    SynthOptions so;
    synth_defaults(&so, D);
    Synth *synth = NULL;
    if (synth_create(&synth, &so) != KN_OK) die("generator");
    float *q = malloc(sizeof(float) * (size_t)nq * D), *dist = malloc(sizeof(float) * (size_t)batch * k);
    float *keys = malloc(sizeof(float) * (size_t)k * D);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)batch * k);
    if (!q || !dist || !keys || !ids) die("out of memory");
    if (synth_rows(synth, N, nq, q, NULL, 2) != KN_OK) die("queries");
    printf("bench_rerank: %s (%lld keys of %d, %s), %s, %d queries in batches of %d, k %d, nprobe %d\n", dir, (long long)N, D,
           f16 ? "float16" : "float32", index_path, nq, batch, k, nprobe);
    printf("| cache | prefetch | queries/s | search s | re-rank s | re-rank share | RSS MB (peak) |\n|---|---|---:|---:|---:|---:|---:|\n");
    dstore_close(ds);
    for (int run = 0; run < 4; run++) {
        int prefetch = run >= 2, cold = run % 2 == 0;
        /* a fresh mapping per run: pages still mapped by this process would survive the drop */
        if (dstore_open(&ds, dir) != KN_OK) die(dir);
        if (cold) {
            for (int f = 0; f < 2; f++) {
                snprintf(path, sizeof path, "%s/%s", dir, files[f]);
                drop_cache(path);
            }
            snprintf(path, sizeof path, "%s.ivfdata", index_path);
            if (strcmp(index_path, "-")) drop_cache(path);
        }
        KnnIndex *ix = NULL;
        int random_ids = !strcmp(index_path, "-");
        uint64_t rng = 12345;
        if (!random_ids && (index_read(&ix, index_path, 0) != KN_OK || index_set_nprobe(ix, nprobe) != KN_OK)) die(index_path);
        dstore_advise(ds, DSTORE_RANDOM);
        double t_search = 0, t_rerank = 0, checksum = 0;
        for (int b = 0; b < nq; b += batch) {
            int nb = nq - b < batch ? nq - b : batch;
            double t0 = kn_seconds();
            if (random_ids)
                for (size_t j = 0; j < (size_t)nb * k; j++) ids[j] = (int64_t)(splitmix64(&rng) % (uint64_t)N);
            else if (index_search(ix, nb, D, q + (size_t)b * D, k, dist, ids) != KN_OK)
                die("search");
            double t1 = kn_seconds();
            if (prefetch) dstore_prefetch_rows(ds, ids, (int64_t)nb * k);
            for (int i = 0; i < nb; i++) {
                dstore_key_rows(ds, ids + (size_t)i * k, k, keys);
                const float *qi = q + (size_t)(b + i) * D;
                for (int j = 0; j < k; j++) {
                    if (ids[(size_t)i * k + j] < 0) continue;
                    double s = 0;
                    for (int c = 0; c < D; c++) {
                        double d = (double)qi[c] - keys[(size_t)j * D + c];
                        s += d * d;
                    }
                    checksum += s + dstore_value(ds, ids[(size_t)i * k + j]);
                }
            }
            t_rerank += kn_seconds() - t1;
            t_search += t1 - t0;
        }
        printf("| %s | %s | %.0f | %.2f | %.2f | %.0f %% | %.0f (%.0f) |\n", cold ? "cold" : "warm", prefetch ? "yes" : "no",
               nq / (t_search + t_rerank), t_search, t_rerank, 100 * t_rerank / (t_search + t_rerank), rss_mb("VmRSS:"), rss_mb("VmHWM:"));
        fflush(stdout);
        if (!isfinite(checksum)) die("non-finite distances");
        index_free(ix);
        dstore_close(ds);
    }
    synth_free(synth);
    free(q);
    free(dist);
    free(keys);
    free(ids);
    return 0;
}
