/* bench_index.c — search throughput of the index module: Flat and IVF-PQ (in memory, memory-mapped, on disk).
 *
 * usage: bench_index [N [D [NQ [THREADS [FACTORY]]]]]   defaults 1000000 128 1000 2 IVF1024,PQ<D/8>
 *
 * Data: N base vectors and NQ queries of dimension D from a fixed-seed mixture of 4096 Gaussian clusters
 * (centres uniform in [-1, 1]^D, noise 0.3 per coordinate: "random-ish", IVF lists mean something, and a
 * query's neighbours are close but not isolated, so PQ codes lose some of them). The IVF-PQ index (FACTORY)
 * is trained on 50,000 vectors. Prints build times, then one row per configuration: queries per second
 * over the NQ queries searched as one batch (the best of 3 runs: the machine may be shared), and recall@8
 * against Flat (the share of Flat's 8 nearest that the index also returns among its 8). Scratch files go
 * to $TMPDIR (default /tmp). */
#include "../tests/index_synth.h"
#include "index/index.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_index: %s: %s\n", what, kn_errmsg());
    exit(1);
}

/* One table row: searches the nq queries at once, 3 times, prints the best q/s and recall@8 against ref
 * (k 8 rows of Flat). */
static void row(const char *what, KnnIndex *ix, int nprobe, int k, const float *q, int64_t nq, int d, const int64_t *ref) {
    float *dist = malloc(sizeof(float) * nq * k);
    int64_t *ids = malloc(sizeof(int64_t) * nq * k);
    if (!dist || !ids) die("out of memory");
    if (nprobe > 0 && index_set_nprobe(ix, nprobe) != KN_OK) die("nprobe");
    double dt = INFINITY;
    for (int run = 0; run < 3; run++) {
        double t0 = now();
        if (index_search(ix, nq, d, q, k, dist, ids) != KN_OK) die("search");
        if (now() - t0 < dt) dt = now() - t0;
    }
    char np[16] = "-";
    if (nprobe > 0) snprintf(np, sizeof np, "%d", nprobe);
    printf("| %-28s | %6s | %5d | %10.0f | %8.3f |\n", what, np, k, nq / dt, ref ? synth_recall(ids, k, ref, 8, nq, 8) : 1.0);
    fflush(stdout);
    free(dist);
    free(ids);
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 1000000;
    int d = argc > 2 ? atoi(argv[2]) : 128;
    int64_t nq = argc > 3 ? atoll(argv[3]) : 1000;
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    const int ncentres = 4096, ntrain = 50000;
    if (n < ntrain || d <= 0 || d % 8 || nq <= 0 || threads <= 0) {
        fprintf(stderr, "usage: bench_index [N >= %d [D multiple of 8 [NQ [THREADS [FACTORY]]]]]\n", ntrain);
        return 2;
    }
    if (index_set_threads(threads) != KN_OK) die("threads");
    float *centres = malloc(sizeof(float) * ncentres * d);
    float *x = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * nq * d);
    if (!centres || !x || !q) die("out of memory");
    SynthRng rng = {2545};
    synth_centres(&rng, centres, ncentres, d);
    synth_points(&rng, x, n, d, centres, ncentres, 0.3);
    synth_points(&rng, q, nq, d, centres, ncentres, 0.3);

    char factory[64], path[512];
    snprintf(factory, sizeof factory, "%s", argc > 5 ? argv[5] : "");
    if (!*factory) snprintf(factory, sizeof factory, "IVF1024,PQ%d", d / 8);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof path, "%s/bench_index.%d.faiss", tmp, (int)getpid());
    printf("bench_index: N=%lld D=%d NQ=%lld threads=%d, %s trained on %d vectors\n", (long long)n, d, (long long)nq,
           threads, factory, ntrain);

    KnnIndex *flat = NULL, *pq = NULL, *mapped = NULL, *disk = NULL;
    double t0 = now();
    if (index_create(&flat, d, "Flat") != KN_OK || index_add(flat, n, d, x) != KN_OK) die("Flat");
    double t_flat = now() - t0;
    t0 = now();
    if (index_create(&pq, d, factory) != KN_OK || index_train(pq, ntrain, d, x) != KN_OK) die(factory);
    double t_train = now() - t0;
    t0 = now();
    if (index_add(pq, n, d, x) != KN_OK) die("add");
    double t_add = now() - t0;
    t0 = now();
    if (index_write(pq, path) != KN_OK || index_read(&mapped, path, INDEX_READ_MMAP) != KN_OK) die("write/read");
    if (index_to_ondisk(pq, path, NULL) != KN_OK || index_read(&disk, path, 0) != KN_OK) die("on disk");
    double t_io = now() - t0;
    printf("build: Flat add %.1f s; IVF-PQ train %.1f s, add %.1f s (%.0f vectors/s); write + to_ondisk + reads %.1f s\n\n",
           t_flat, t_train, t_add, n / t_add, t_io);

    int64_t *ref = malloc(sizeof(int64_t) * nq * 8);
    float *refd = malloc(sizeof(float) * nq * 8);
    if (!ref || !refd || index_search(flat, nq, d, q, 8, refd, ref) != KN_OK) die("reference search");

    printf("| %-28s | %6s | %5s | %10s | %8s |\n", "index", "nprobe", "k", "queries/s", "recall@8");
    printf("|------------------------------|--------|-------|------------|----------|\n");
    row("Flat", flat, 0, 8, q, nq, d, NULL);
    row("Flat", flat, 0, 1024, q, nq, d, ref);
    const int probes[] = {8, 32};
    const int ks[] = {8, 1024};
    for (int p = 0; p < 2; p++)
        for (int kk = 0; kk < 2; kk++) row("IVF-PQ in memory", pq, probes[p], ks[kk], q, nq, d, ref);
    if (index_set_prefetch_threads(mapped, 0) != KN_OK) die("prefetch");
    for (int p = 0; p < 2; p++) row("IVF-PQ mmap, no prefetch", mapped, probes[p], 8, q, nq, d, ref);
    for (int p = 0; p < 2; p++) row("IVF-PQ on disk, prefetch 32", disk, probes[p], 8, q, nq, d, ref);
    if (index_set_prefetch_threads(disk, 0) != KN_OK) die("prefetch");
    for (int p = 0; p < 2; p++) row("IVF-PQ on disk, no prefetch", disk, probes[p], 8, q, nq, d, ref);
    /* one query at a time: the interactive case */
    for (int prefetch = 0; prefetch <= 32; prefetch += 32) {
        float dist[8];
        int64_t ids[8];
        if (index_set_prefetch_threads(disk, prefetch) != KN_OK || index_set_nprobe(disk, 32) != KN_OK) die("disk");
        double t1 = now();
        for (int i = 0; i < 100; i++)
            if (index_search(disk, 1, d, q + (size_t)(i % nq) * d, 8, dist, ids) != KN_OK) die("search");
        printf("%ssingle-query latency, on disk, nprobe 32, k 8, prefetch %d: %.3f ms\n", prefetch ? "" : "\n", prefetch,
               (now() - t1) * 10.0);
    }

    char data[600];
    snprintf(data, sizeof data, "%s.ivfdata", path);
    unlink(path);
    unlink(data);
    index_free(flat);
    index_free(pq);
    index_free(mapped);
    index_free(disk);
    free(centres);
    free(x);
    free(q);
    free(ref);
    free(refd);
    return 0;
}
