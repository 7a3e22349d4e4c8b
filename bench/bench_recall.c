/* bench_recall.c — how many of the exact 8 nearest neighbours an approximate index finds, on real queries.
 *
 *   build/release/bench/bench_recall DSTORE FLAT_INDEX INDEX QUERIES_DSTORE [NQ] [nprobe,...]
 *
 * The queries are the keys of QUERIES_DSTORE (a datastore built on held-out text: its keys are exactly the
 * queries `knnlm eval` sends). For each nprobe: recall@8 of INDEX's 8 results against FLAT_INDEX's 8, its
 * search rate, and recall@8 after searching 64 candidates and re-ranking them by exact distance to the
 * datastore's keys (what `eval --k 64 --exact-distances` does before using its first 8). */
#include "dstore/dstore.h"
#include "index/dstore_index.h"
#include "util/clock.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) {
    fprintf(stderr, "bench_recall: %s: %s\n", what, kn_errmsg());
    exit(1);
}

/* |a ∩ b| / 8 summed over queries, for rows of 8 ids. */
static double recall8(const int64_t *got, int got_k, const int64_t *want, int64_t nq) {
    int64_t hit = 0;
    for (int64_t q = 0; q < nq; q++)
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) hit += want[q * 8 + i] >= 0 && got[q * got_k + j] == want[q * 8 + i];
    return (double)hit / (double)(nq * 8);
}

static int cmp_pair(const void *a, const void *b) {
    const double *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Re-ranks each query's k candidates by exact squared L2 to the stored keys; the first 8 go to out. */
static void rerank(const Dstore *ds, const float *q, int d, int64_t nq, int k, const int64_t *ids, int64_t *out) {
    float *keys = malloc(sizeof(float) * k * d);
    double *pairs = malloc(sizeof(double) * 2 * k);
    for (int64_t i = 0; i < nq; i++) {
        dstore_key_rows(ds, ids + i * k, k, keys);
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int c = 0; c < d; c++) {
                double t = (double)q[i * d + c] - keys[j * d + c];
                s += t * t;
            }
            pairs[2 * j] = ids[i * k + j] < 0 ? 1e300 : s;
            pairs[2 * j + 1] = (double)ids[i * k + j];
        }
        qsort(pairs, (size_t)k, 2 * sizeof(double), cmp_pair);
        for (int j = 0; j < 8; j++) out[i * 8 + j] = (int64_t)pairs[2 * j + 1];
    }
    free(keys);
    free(pairs);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: bench_recall DSTORE FLAT_INDEX INDEX QUERIES_DSTORE [NQ] [nprobe,...]\n");
        return 2;
    }
    Dstore *ds, *qs;
    KnnIndex *flat, *ix;
    if (dstore_open(&ds, argv[1]) || dstore_open(&qs, argv[4])) die("datastore");
    if (dstore_index_open(&flat, argv[2], ds) || dstore_index_open(&ix, argv[3], ds)) die("index");
    int64_t nq = argc > 5 ? atoll(argv[5]) : 2000;
    if (nq > dstore_size(qs)) nq = dstore_size(qs);
    const char *probes = argc > 6 ? argv[6] : "1,8,32,128";
    const int d = dstore_dim(ds);
    float *q = malloc(sizeof(float) * nq * d);
    float *dist = malloc(sizeof(float) * nq * 64);
    int64_t *ref = malloc(sizeof(int64_t) * nq * 8), *ids = malloc(sizeof(int64_t) * nq * 64), *top = malloc(sizeof(int64_t) * nq * 8);
    /* every (size / nq)-th query, so they come from all over the held-out text */
    int64_t step = dstore_size(qs) / nq;
    for (int64_t i = 0; i < nq; i++) dstore_keys(qs, i * step, 1, q + i * d);
    double t = kn_seconds();
    if (index_search(flat, nq, d, q, 8, dist, ref)) die("flat search");
    printf("%lld queries (keys of %s), datastore %lld x %d\nFlat: %.0f queries/s\n", (long long)nq, argv[4], (long long)dstore_size(ds), d,
           nq / (kn_seconds() - t));
    char desc[256];
    index_describe(ix, desc, sizeof desc);
    printf("%s\n%8s %12s %12s %24s\n", desc, "nprobe", "recall@8", "queries/s", "recall@8 (64, re-ranked)");
    for (const char *p = probes; *p;) {
        int nprobe = atoi(p);
        if (index_set_nprobe(ix, nprobe)) die("nprobe");
        t = kn_seconds();
        if (index_search(ix, nq, d, q, 8, dist, ids)) die("search");
        double rate = nq / (kn_seconds() - t), r8 = recall8(ids, 8, ref, nq);
        if (index_search(ix, nq, d, q, 64, dist, ids)) die("search");
        rerank(ds, q, d, nq, 64, ids, top);
        printf("%8d %12.3f %12.0f %24.3f\n", nprobe, r8, rate, recall8(top, 8, ref, nq));
        p = strchr(p, ',');
        p = p ? p + 1 : "";
    }
    index_free(ix);
    index_free(flat);
    dstore_close(qs);
    dstore_close(ds);
    free(q), free(dist), free(ref), free(ids), free(top);
    return 0;
}
