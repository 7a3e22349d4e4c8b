/* test_index.c — the Faiss index behind src/index/index.h, against references computed here.
 *
 * Data: N = 20,000 base vectors and NQ = 200 queries of dimension D = 64 from a fixed-seed mixture of 1000
 * Gaussian clusters that overlap (so that an IVF list holds some of a query's neighbours, not all), random
 * floats so that no two distances tie. Each index kind is trained once, on the first NTRAIN base vectors
 * (OPQ on fewer), and read from that file by every test that builds one (PQ and OPQ training take seconds).
 * References: a brute-force search in double precision written here; the Flat index; and, when Python's
 * faiss is importable, faiss.read_index of the files we write (tests/check_index.py). */
#include "index/index.h"
#include "index_synth.h"
#include "test.h"
#include "util/error.h"
#include "util/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <stdint.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* Faiss 1.7.3 leaks the half-built index when read_index throws (raw new, no RAII): the objects allocated
 * inside a call that is expected to fail are not ours to free, so LeakSanitizer ignores them. */
#define EXPECT_FAILURE_BEGIN() __lsan_disable()
#define EXPECT_FAILURE_END() __lsan_enable()
#else
#define EXPECT_FAILURE_BEGIN() ((void)0)
#define EXPECT_FAILURE_END() ((void)0)
#endif

enum { D = 64, N = 20000, NQ = 200, NCLUSTER = 1000, KREF = 16, NTRAIN = 5000 };

static float *g_base;  /* [N, D] */
static float *g_query; /* [NQ, D] */
static int64_t g_ref_ids[NQ * KREF];  /* brute force, ascending distance */
static double g_ref_dist[NQ * KREF];
static char g_dir[64];                /* scratch folder, removed at the end */
static FILE *g_manifest;              /* what tests/check_index.py checks */

/* ---- data ---- */

static void make_data(void) {
    static float centres[NCLUSTER * D];
    SynthRng rng = {20240601};
    synth_centres(&rng, centres, NCLUSTER, D);
    g_base = malloc(sizeof(float) * N * D);
    g_query = malloc(sizeof(float) * NQ * D);
    synth_points(&rng, g_base, N, D, centres, NCLUSTER, 0.5);
    synth_points(&rng, g_query, NQ, D, centres, NCLUSTER, 0.5);
}

static double l2sq(const float *a, const float *b) {
    double s = 0;
    for (int j = 0; j < D; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

/* The KREF nearest base vectors of every query, by insertion into a sorted list. */
static void brute_force(void) {
    for (int q = 0; q < NQ; q++) {
        int64_t *ids = g_ref_ids + q * KREF;
        double *dist = g_ref_dist + q * KREF;
        for (int r = 0; r < KREF; r++) dist[r] = INFINITY, ids[r] = -1;
        for (int64_t i = 0; i < N; i++) {
            double dd = l2sq(g_query + q * D, g_base + i * D);
            if (dd >= dist[KREF - 1]) continue;
            int r = KREF - 1;
            for (; r > 0 && dist[r - 1] > dd; r--) dist[r] = dist[r - 1], ids[r] = ids[r - 1];
            dist[r] = dd, ids[r] = i;
        }
    }
}

/* ---- helpers ---- */

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", g_dir, name); }

/* The trained, empty index of a factory string, written once to the scratch folder; its path in out. */
static int trained_file(const char *factory, char *out, size_t cap) {
    char name[128];
    snprintf(name, sizeof name, "trained.%s.faiss", factory);
    for (char *c = name; *c; c++)
        if (*c == ',') *c = '_';
    path_in(out, cap, name);
    struct stat st;
    if (stat(out, &st) == 0) return KN_OK;
    KnnIndex *ix = NULL;
    int rc = index_create(&ix, D, factory);
    int64_t ntrain = strstr(factory, "OPQ") ? NTRAIN / 5 : NTRAIN; /* OPQ trains its PQ 50 times */
    if (rc == KN_OK && !index_is_trained(ix)) rc = index_train(ix, ntrain, D, g_base);
    if (rc == KN_OK) rc = index_write(ix, out);
    index_free(ix);
    return rc;
}

/* The trained index of `factory` with rows [0, n) added and nprobe set; NULL (and a message) on failure. */
static KnnIndex *build(const char *factory, int64_t n, int nprobe) {
    KnnIndex *ix = NULL;
    char trained[256];
    int rc = trained_file(factory, trained, sizeof trained);
    if (rc == KN_OK) rc = index_read(&ix, trained, 0);
    if (rc == KN_OK) rc = index_add(ix, n, D, g_base);
    if (rc == KN_OK) rc = index_set_nprobe(ix, nprobe);
    if (rc != KN_OK) {
        fprintf(stderr, "build(%s) failed: %s\n", factory, kn_errmsg());
        index_free(ix);
        return NULL;
    }
    return ix;
}

typedef struct {
    float dist[NQ * KREF];
    int64_t ids[NQ * KREF];
} Results;

static int search_all(const KnnIndex *ix, int k, Results *r) {
    int rc = index_search(ix, NQ, D, g_query, k, r->dist, r->ids);
    if (rc != KN_OK) fprintf(stderr, "search failed: %s\n", kn_errmsg());
    return rc;
}

/* Bit-for-bit equal results (k per query). */
static int same_results(const Results *a, const Results *b, int k) {
    return memcmp(a->ids, b->ids, sizeof(int64_t) * NQ * k) == 0 && memcmp(a->dist, b->dist, sizeof(float) * NQ * k) == 0;
}

static double recall_at(const Results *r, const Results *ref, int k) { return synth_recall(r->ids, k, ref->ids, k, NQ, k); }

static int write_raw(const char *name, const void *data, size_t bytes) {
    char path[256];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, bytes, f);
    return fclose(f) == 0 && w == bytes ? 0 : -1;
}

/* Saves r as what Python's faiss must find in index_path: "index nprobe k ntotal d ids dist" per line. */
static void expect_in_python(const char *index_path, int nprobe, int k, int64_t ntotal, const Results *r, const char *tag) {
    char ids[64], dist[64];
    snprintf(ids, sizeof ids, "%s.ids", tag);
    snprintf(dist, sizeof dist, "%s.dist", tag);
    CHECK(write_raw(ids, r->ids, sizeof(int64_t) * NQ * k) == 0);
    CHECK(write_raw(dist, r->dist, sizeof(float) * NQ * k) == 0);
    fprintf(g_manifest, "%s %d %d %lld %d %s/%s %s/%s\n", index_path, nprobe, k, (long long)ntotal, D, g_dir, ids, g_dir, dist);
}

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Copies the first `len` bytes of src to dst (a truncated copy). */
static int copy_prefix(const char *src, const char *dst, off_t len) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    int ok = in && out;
    char buf[65536];
    while (ok && len > 0) {
        size_t want = len < (off_t)sizeof buf ? (size_t)len : sizeof buf;
        size_t got = fread(buf, 1, want, in);
        ok = got == want && fwrite(buf, 1, got, out) == got;
        len -= (off_t)got;
    }
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok ? 0 : -1;
}

/* index_read that must fail with `code` and a message naming `path`. */
static void check_read_fails(const char *path, unsigned flags, int code) {
    KnnIndex *ix = NULL;
    EXPECT_FAILURE_BEGIN();
    int rc = index_read(&ix, path, flags);
    EXPECT_FAILURE_END();
    CHECK_MSG(rc == code, "%s (flags %u): got %d (%s), want %d", path, flags, rc, kn_errmsg(), code);
    CHECK(ix == NULL);
    CHECK_MSG(strstr(kn_errmsg(), path) != NULL && strchr(kn_errmsg(), '\n') == NULL, "message: %s", kn_errmsg());
    index_free(ix);
}

/* ---- exact search ---- */

static void test_flat_matches_brute_force(void) {
    KnnIndex *ix = build("Flat", N, 1);
    CHECK(ix != NULL);
    if (!ix) return;
    CHECK_EQ_INT(index_ntotal(ix), N);
    CHECK_EQ_INT(index_nlist(ix), 0);
    static Results r;
    if (search_all(ix, KREF, &r) != KN_OK) goto out;
    int wrong_ids = 0;
    double worst = 0;
    for (int i = 0; i < NQ * KREF; i++) {
        wrong_ids += r.ids[i] != g_ref_ids[i];
        double rel = fabs((double)r.dist[i] - g_ref_dist[i]) / g_ref_dist[i];
        if (rel > worst) worst = rel;
    }
    CHECK_EQ_INT(wrong_ids, 0);
    CHECK_MSG(worst < 1e-4, "worst relative distance error %g", worst);
out:
    index_free(ix);
}

static void test_flat_k_above_ntotal(void) {
    KnnIndex *ix = build("Flat", 5, 1);
    CHECK(ix != NULL);
    if (!ix) return;
    float dist[8];
    int64_t ids[8];
    CHECK_OK(index_search(ix, 1, D, g_query, 8, dist, ids));
    for (int r = 0; r < 5; r++) CHECK(ids[r] >= 0 && ids[r] < 5);
    for (int r = 1; r < 5; r++) CHECK(dist[r - 1] <= dist[r]);
    for (int r = 5; r < 8; r++) {
        CHECK_EQ_INT(ids[r], -1);
        CHECK(dist[r] == FLT_MAX);
    }
    index_free(ix);
}

/* IVF at nprobe 1 over 200 rows: the probed list holds fewer than k, the rest of the row is empty. */
static void test_ivf_k_above_reachable(void) {
    enum { K = 64 };
    KnnIndex *ix = build("IVF64,Flat", 200, 1);
    CHECK(ix != NULL);
    if (!ix) return;
    static float dist[NQ * K];
    static int64_t ids[NQ * K];
    CHECK_OK(index_search(ix, NQ, D, g_query, K, dist, ids));
    int bad_tail = 0;
    for (int q = 0; q < NQ; q++) {
        int filled = 0;
        while (filled < K && ids[q * K + filled] >= 0) filled++;
        CHECK(filled < K); /* ~3 rows per list */
        for (int r = 0; r < filled; r++) {
            CHECK(ids[q * K + r] < 200);
            CHECK(r == 0 || dist[q * K + r - 1] <= dist[q * K + r]);
            CHECK_NEAR(dist[q * K + r], l2sq(g_query + q * D, g_base + ids[q * K + r] * D), 1e-4 * dist[q * K + r]);
        }
        for (int r = filled; r < K; r++) bad_tail += !(ids[q * K + r] == -1 && dist[q * K + r] == FLT_MAX);
    }
    CHECK_EQ_INT(bad_tail, 0);
    index_free(ix);
}

/* IVF-Flat visiting every list is an exhaustive search: the same neighbours as Flat. */
static void test_ivf_flat_full_probe_equals_flat(void) {
    KnnIndex *flat = build("Flat", N, 1), *ivf = build("IVF64,Flat", N, 64);
    CHECK(flat && ivf);
    static Results a, b;
    if (flat && ivf && search_all(flat, KREF, &a) == KN_OK && search_all(ivf, KREF, &b) == KN_OK) {
        CHECK_EQ_INT(index_nlist(ivf), 64);
        CHECK(memcmp(a.ids, b.ids, sizeof a.ids) == 0);
        for (int i = 0; i < NQ * KREF; i++) CHECK_NEAR(b.dist[i], a.dist[i], 1e-5 * a.dist[i]);
        /* and fewer probes miss some */
        CHECK_OK(index_set_nprobe(ivf, 1));
        CHECK(search_all(ivf, KREF, &b) == KN_OK);
        double r1 = recall_at(&b, &a, KREF);
        fprintf(stderr, "    IVF64,Flat recall@16 at nprobe 1: %.3f\n", r1);
        CHECK(r1 > 0.2 && r1 < 1.0);
    }
    index_free(flat);
    index_free(ivf);
}

/* Adding to an IVF whose coarse quantizer is flat finds each vector's list on our GEMM (faiss_index.cpp,
 * coarse_assign), not Faiss' sgemm. The list must be the one Faiss' own quantizer picks at search time: each
 * base vector, searched at nprobe 1 in an IVF-Flat, is in the one list probed, at distance 0. (A vector whose
 * two nearest centroids tie within float rounding may go either way: a handful at most, by chance none.) Then
 * the same search in an IVF-PQ index added in blocks of 777 and in one call: the same lists, so the same
 * results bit for bit. */
static void test_ivf_add_assigns_nearest_list(void) {
    KnnIndex *ivf = build("IVF64,Flat", N, 1);
    CHECK(ivf != NULL);
    enum { NCHECK = 4000 };
    if (ivf) {
        static float dist[NCHECK];
        static int64_t ids[NCHECK];
        CHECK_OK(index_search(ivf, NCHECK, D, g_base, 1, dist, ids));
        int found = 0;
        for (int i = 0; i < NCHECK; i++) found += ids[i] == i && dist[i] == 0.0f;
        fprintf(stderr, "    IVF64,Flat: %d of %d base vectors found in their own list at nprobe 1\n", found, NCHECK);
        CHECK(found >= NCHECK - 2);
    }
    index_free(ivf);
    KnnIndex *one = build("IVF64,PQ16", N, 4), *blocks = NULL;
    char trained[256];
    CHECK_OK(trained_file("IVF64,PQ16", trained, sizeof trained));
    CHECK_OK(index_read(&blocks, trained, 0));
    for (int64_t r = 0; blocks && r < N; r += 777) CHECK_OK(index_add_range(blocks, r, N - r < 777 ? N - r : 777, D, g_base + r * D));
    if (one && blocks) {
        CHECK_OK(index_set_nprobe(blocks, 4));
        static Results a, b;
        CHECK(search_all(one, KREF, &a) == KN_OK && search_all(blocks, KREF, &b) == KN_OK);
        CHECK(memcmp(a.ids, b.ids, sizeof a.ids) == 0 && memcmp(a.dist, b.dist, sizeof a.dist) == 0);
    }
    index_free(one);
    index_free(blocks);
}

/* An IVF search finds its lists on our GEMM too (faiss_index.cpp, search_probed): one query at a time (the
 * generation case, which Faiss does with its own scalar loop) gives the bits of the same queries in one batch,
 * and on several threads; the equality with Faiss' own search is test_python_reads_our_files'. */
static void test_ivf_single_queries_equal_batch(void) {
    KnnIndex *ix = build("IVF64,PQ16", N, 4);
    CHECK(ix != NULL);
    if (ix) {
        static Results batch, one;
        CHECK(search_all(ix, KREF, &batch) == KN_OK);
        for (int i = 0; i < NQ; i++) CHECK_OK(index_search(ix, 1, D, g_query + (size_t)i * D, KREF, one.dist + i * KREF, one.ids + i * KREF));
        CHECK(memcmp(batch.ids, one.ids, sizeof one.ids) == 0 && memcmp(batch.dist, one.dist, sizeof one.dist) == 0);
        CHECK_OK(index_set_threads(3));
        CHECK(search_all(ix, KREF, &one) == KN_OK);
        CHECK_OK(index_set_threads(1));
        CHECK(memcmp(batch.ids, one.ids, sizeof one.ids) == 0 && memcmp(batch.dist, one.dist, sizeof one.dist) == 0);
    }
    index_free(ix);
}

/* ---- approximate search ---- */

static void test_ivfpq_recall_rises_with_nprobe(void) {
    enum { K = 8 };
    KnnIndex *flat = build("Flat", N, 1), *pq = build("IVF64,PQ16", N, 1);
    CHECK(flat && pq);
    static Results ref, r;
    if (flat && pq && search_all(flat, K, &ref) == KN_OK) {
        const int probes[] = {1, 4, 16, 64};
        double recall[4];
        for (int i = 0; i < 4; i++) {
            CHECK_OK(index_set_nprobe(pq, probes[i]));
            CHECK_EQ_INT(index_nprobe(pq), probes[i]);
            if (search_all(pq, K, &r) != KN_OK) break;
            recall[i] = recall_at(&r, &ref, K);
            fprintf(stderr, "    IVF64,PQ16 recall@8 vs Flat at nprobe %2d: %.3f\n", probes[i], recall[i]);
        }
        CHECK(recall[0] < recall[1] && recall[1] < recall[2]);
        CHECK(recall[3] >= recall[2] - 0.01);
        CHECK(recall[3] > 0.6);
        for (int i = 0; i < NQ * K; i++) CHECK(r.ids[i] >= 0 && r.ids[i] < N); /* nprobe 64 reaches all */
    }
    index_free(flat);
    index_free(pq);
}

static void test_opq_behind_transform(void) {
    enum { K = 8 };
    KnnIndex *flat = build("Flat", N, 1), *opq = build("OPQ2,IVF64,PQ2", N, 16);
    CHECK(flat && opq);
    static Results ref, r;
    if (flat && opq && search_all(flat, K, &ref) == KN_OK && search_all(opq, K, &r) == KN_OK) {
        CHECK_EQ_INT(index_nlist(opq), 64); /* the IVF behind the OPQ transform */
        CHECK_EQ_INT(index_nprobe(opq), 16);
        double rec16 = recall_at(&r, &ref, K);
        CHECK_OK(index_set_nprobe(opq, 1));
        CHECK(search_all(opq, K, &r) == KN_OK);
        double rec1 = recall_at(&r, &ref, K);
        fprintf(stderr, "    OPQ2,IVF64,PQ2 (2-byte codes) recall@8 at nprobe 1: %.3f, 16: %.3f\n", rec1, rec16);
        /* chance is 8 / 20000: the rotation is applied alike to the vectors and the queries */
        CHECK(rec1 < rec16 && rec16 > 0.15);
    }
    index_free(flat);
    index_free(opq);
}

/* ---- files ---- */

/* Writes the index, reads it back (loaded and mapped): identical results; queues a Python check. */
static void roundtrip(const char *factory, int nprobe, const char *file) {
    char path[256];
    path_in(path, sizeof path, file);
    KnnIndex *ix = build(factory, N, nprobe), *back = NULL, *mapped = NULL;
    CHECK(ix != NULL);
    if (!ix) return;
    static Results a, b;
    CHECK_OK(index_write(ix, path));
    CHECK(search_all(ix, KREF, &a) == KN_OK);
    CHECK_OK(index_read(&back, path, 0));
    CHECK_OK(index_read(&mapped, path, INDEX_READ_MMAP));
    CHECK_OK(index_set_prefetch_threads(mapped, 0)); /* the file is in the page cache */
    CHECK_EQ_INT(index_ntotal(back), N);
    CHECK_EQ_INT(index_dim(back), D);
    CHECK_EQ_INT(index_is_read_only(back), 0);
    CHECK_OK(index_set_nprobe(back, nprobe));
    CHECK_OK(index_set_nprobe(mapped, nprobe));
    CHECK(search_all(back, KREF, &b) == KN_OK && same_results(&a, &b, KREF));
    CHECK(search_all(mapped, KREF, &b) == KN_OK && same_results(&a, &b, KREF));
    char desc[256];
    index_describe(mapped, desc, sizeof desc);
    fprintf(stderr, "    %s\n", desc);
    if (index_nlist(ix) > 0) {
        CHECK_EQ_INT(index_is_read_only(mapped), 1);
        CHECK(strstr(desc, "lists=mmap:") != NULL);
        CHECK_EQ_INT(index_add(mapped, 1, D, g_base), KN_EINVAL);       /* mapped lists are read-only */
        CHECK_EQ_INT(index_write(mapped, path), KN_EINVAL);             /* would write lists that point nowhere */
        CHECK_OK(index_add(back, 1, D, g_base));                        /* a loaded copy is writable */
        CHECK_EQ_INT(index_ntotal(back), N + 1);
    }
    char tag[64];
    snprintf(tag, sizeof tag, "%s.expected", file);
    expect_in_python(path, nprobe, KREF, N, &a, tag);
    index_free(ix);
    index_free(back);
    index_free(mapped);
}

static void test_write_read_roundtrip(void) {
    roundtrip("Flat", 1, "flat.faiss");
    roundtrip("IVF64,Flat", 8, "ivfflat.faiss");
    roundtrip("IVF64,PQ16", 8, "ivfpq.faiss");
    roundtrip("OPQ2,IVF64,PQ2", 8, "opq.faiss");
}

/* ---- on disk ---- */

static void test_to_ondisk_same_results(void) {
    char path[256], data[300], away[320], moved_dir[256], moved[300], moved_data[320];
    path_in(path, sizeof path, "ondisk.faiss");
    snprintf(data, sizeof data, "%s.ivfdata", path);
    KnnIndex *ix = build("IVF64,PQ16", N, 8), *disk = NULL, *moved_ix = NULL;
    CHECK(ix != NULL);
    if (!ix) return;
    static Results a, b;
    CHECK(search_all(ix, KREF, &a) == KN_OK);
    CHECK_OK(index_to_ondisk(ix, path, NULL));
    CHECK_EQ_INT(index_ntotal(ix), N);                   /* the handle stays in memory */
    CHECK(file_size(data) == (off_t)N * (16 + 8));       /* compact: a 16-byte code and an id per entry */
    CHECK_OK(index_read(&disk, path, 0)); /* searched with Faiss' 32 prefetch threads */
    CHECK_EQ_INT(index_set_prefetch_threads(disk, -1), KN_EINVAL);
    CHECK_EQ_INT(index_is_read_only(disk), 1);
    CHECK_EQ_INT(index_nprobe(disk), 8);                 /* nprobe is saved with the index */
    CHECK(search_all(disk, KREF, &b) == KN_OK && same_results(&a, &b, KREF));
    CHECK_EQ_INT(index_add(disk, 1, D, g_base), KN_EINVAL);
    expect_in_python(path, 8, KREF, N, &a, "ondisk.expected");
    /* the pair copied to another folder still opens when the stored ivfdata path is gone: the file is
     * found beside the index */
    path_in(moved_dir, sizeof moved_dir, "moved");
    snprintf(moved, sizeof moved, "%s/ondisk.faiss", moved_dir);
    snprintf(moved_data, sizeof moved_data, "%s.ivfdata", moved);
    snprintf(away, sizeof away, "%s.away", data);
    CHECK(mkdir(moved_dir, 0755) == 0);
    CHECK(copy_prefix(path, moved, file_size(path)) == 0);
    CHECK(copy_prefix(data, moved_data, file_size(data)) == 0);
    CHECK(rename(data, away) == 0);
    CHECK_OK(index_read(&moved_ix, moved, INDEX_READ_MMAP));
    if (moved_ix) {
        char desc[512];
        index_describe(moved_ix, desc, sizeof desc);
        CHECK_MSG(strstr(desc, "lists=ondisk:") && strstr(desc, "/moved/ondisk.faiss.ivfdata"), "%s", desc);
        CHECK(search_all(moved_ix, KREF, &b) == KN_OK && same_results(&a, &b, KREF));
    }
    CHECK(rename(away, data) == 0);
    index_free(moved_ix);
    index_free(disk);
    index_free(ix);
}

/* Rows [0, N) in 3 shards of uneven sizes, each built from the same trained file and added in batches;
 * the merged on-disk index must equal, bit for bit, one index that added the same batches in memory. */
static const int64_t shard_bounds[] = {0, 5000, 16000, N};
enum { BATCH = 3000 };

static int add_rows(KnnIndex *ix, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i += BATCH) {
        int64_t n = end - i < BATCH ? end - i : BATCH;
        int rc = index_add_range(ix, i, n, D, g_base + i * D);
        if (rc != KN_OK) return rc;
    }
    return KN_OK;
}

static int write_shards(const char *tag, const char *trained, char shards[3][256]) {
    int rc = KN_OK;
    for (int s = 0; s < 3 && rc == KN_OK; s++) {
        char name[64];
        snprintf(name, sizeof name, "%s.shard%d.faiss", tag, s);
        path_in(shards[s], 256, name);
        KnnIndex *ix = NULL;
        rc = index_read(&ix, trained, 0);
        if (rc == KN_OK) rc = add_rows(ix, shard_bounds[s], shard_bounds[s + 1]);
        if (rc == KN_OK && index_ntotal(ix) != shard_bounds[s + 1] - shard_bounds[s]) rc = KN_EINVAL;
        if (rc == KN_OK) rc = index_write(ix, shards[s]);
        index_free(ix);
    }
    if (rc != KN_OK) fprintf(stderr, "write_shards: %s\n", kn_errmsg());
    return rc;
}

static void check_merge(const char *factory, const char *tag) {
    char trained[256], shards[3][256], out[256], name[64];
    snprintf(name, sizeof name, "%s.merged.faiss", tag);
    path_in(out, sizeof out, name);
    if (trained_file(factory, trained, sizeof trained) != KN_OK || write_shards(tag, trained, shards) != KN_OK) {
        CHECK(0);
        return;
    }
    const char *paths[3] = {shards[0], shards[1], shards[2]};
    CHECK_OK(index_merge_ondisk(trained, paths, 3, out, NULL));
    KnnIndex *mem = NULL, *all = NULL, *merged = NULL;
    CHECK_OK(index_read(&mem, trained, 0));
    CHECK_OK(add_rows(mem, 0, N));
    CHECK_OK(index_read(&merged, out, 0));
    CHECK_OK(index_set_prefetch_threads(merged, 0));
    CHECK_EQ_INT(index_ntotal(merged), N);
    static Results a, b, c;
    for (int nprobe = 1; nprobe <= 64; nprobe *= 8) {
        CHECK_OK(index_set_nprobe(mem, nprobe));
        CHECK_OK(index_set_nprobe(merged, nprobe));
        CHECK(search_all(mem, KREF, &a) == KN_OK && search_all(merged, KREF, &b) == KN_OK);
        CHECK_MSG(same_results(&a, &b, KREF), "%s nprobe %d: merged differs from in memory", tag, nprobe);
    }
    /* one index that added everything in one call: Faiss encodes per batch, so only float ties could
     * differ; on this data there are none */
    CHECK_OK(index_read(&all, trained, 0));
    CHECK_OK(index_add(all, N, D, g_base));
    CHECK_OK(index_set_nprobe(all, 8));
    CHECK_OK(index_set_nprobe(merged, 8));
    CHECK(search_all(all, KREF, &c) == KN_OK && search_all(merged, KREF, &b) == KN_OK);
    CHECK_MSG(same_results(&b, &c, KREF), "%s: merged differs from one add of all rows", tag);
    snprintf(name, sizeof name, "%s.merged.expected", tag);
    expect_in_python(out, 8, KREF, N, &b, name);
    index_free(mem);
    index_free(all);
    index_free(merged);
}

static void test_merge_shards_equals_in_memory(void) {
    check_merge("IVF64,PQ16", "pq");
    check_merge("IVF64,Flat", "flat");
    check_merge("OPQ2,IVF64,PQ2", "opq");
}

static void check_merge_fails(const char *trained, const char *const *paths, int n, int code, const char *tag) {
    char out[256];
    path_in(out, sizeof out, "bad.merged.faiss");
    EXPECT_FAILURE_BEGIN();
    int rc = index_merge_ondisk(trained, paths, n, out, NULL);
    EXPECT_FAILURE_END();
    CHECK_MSG(rc == code, "%s: got %d (%s), want %d", tag, rc, kn_errmsg(), code);
    CHECK_MSG(strchr(kn_errmsg(), '\n') == NULL && *kn_errmsg(), "%s: message: %s", tag, kn_errmsg());
    CHECK(file_size(out) < 0);
}

static void test_merge_refuses_bad_shards(void) {
    char trained[256], s[3][256], other[256];
    CHECK_OK(trained_file("IVF64,PQ16", trained, sizeof trained));
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "pq.shard%d.faiss", i);
        path_in(s[i], sizeof s[i], name);
    }
    path_in(other, sizeof other, "other.shard.faiss");
    /* a shard trained on other data: same type and shape, other centroids */
    KnnIndex *ix = NULL;
    CHECK_OK(index_create(&ix, D, "IVF64,PQ16"));
    CHECK_OK(index_train(ix, 1000, D, g_base + (size_t)NTRAIN * D));
    CHECK_OK(index_add_range(ix, 0, 5000, D, g_base));
    CHECK_OK(index_write(ix, other));
    index_free(ix);
    char flat_shard[256];
    path_in(flat_shard, sizeof flat_shard, "flat.shard0.faiss");

    const char *overlap[] = {s[0], s[0], s[1]}, *disorder[] = {s[1], s[0], s[2]}, *gap[] = {s[0], s[2]};
    const char *foreign[] = {other, s[1], s[2]}, *wrong_type[] = {flat_shard, s[1], s[2]}, *good[] = {s[0], s[1], s[2]};
    char missing[256];
    path_in(missing, sizeof missing, "no-such-shard.faiss");
    const char *absent[] = {s[0], missing, s[2]};
    check_merge_fails(trained, overlap, 3, KN_EMISMATCH, "overlapping shards");
    check_merge_fails(trained, disorder, 3, KN_EMISMATCH, "shards out of row order");
    check_merge_fails(trained, gap, 2, KN_EMISMATCH, "a missing row range");
    check_merge_fails(trained, foreign, 3, KN_EMISMATCH, "a shard of another training");
    check_merge_fails(trained, wrong_type, 3, KN_EMISMATCH, "a shard of another index type");
    check_merge_fails(trained, absent, 3, KN_ENOTFOUND, "a shard file that does not exist");
    check_merge_fails(trained, good, 0, KN_EINVAL, "no shards");
    check_merge_fails(s[0], good, 3, KN_EINVAL, "a trained index that is not empty");
    char flat[256];
    path_in(flat, sizeof flat, "flat.faiss");
    check_merge_fails(flat, good, 3, KN_EINVAL, "a Flat index");
    char out[256];
    path_in(out, sizeof out, "same.faiss");
    CHECK_EQ_INT(index_merge_ondisk(trained, good, 3, out, out), KN_EINVAL);
    CHECK_EQ_INT(index_merge_ondisk(trained, good, 3, "/nonexistent-folder/x.faiss", NULL), KN_ENOTFOUND);
}

/* ---- bad input ---- */

/* Trains on the first n base vectors with stderr sent to a file: the number of bytes Faiss printed there,
 * or -1 when training failed. */
static long train_silently(KnnIndex *ix, int64_t n) {
    char path[256];
    path_in(path, sizeof path, "stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0) return -1;
    dup2(fd, 2);
    int rc = index_train(ix, n, D, g_base);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    if (rc != KN_OK) {
        fprintf(stderr, "train_silently: %s\n", kn_errmsg());
        return -1;
    }
    return (long)file_size(path);
}

static void test_bad_factory_and_arguments(void) {
    const char *bad[] = {"NotAnIndex", "IVF,Flat", "PQ7", "IVF64,PQ7", "Flat,Flat", "IVF64,"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        KnnIndex *ix = (KnnIndex *)&ix;
        EXPECT_FAILURE_BEGIN();
        int rc = index_create(&ix, D, bad[i]);
        EXPECT_FAILURE_END();
        CHECK_MSG(rc == KN_EINVAL && ix == NULL, "%s: %d %s", bad[i], rc, kn_errmsg());
        CHECK_MSG(strstr(kn_errmsg(), bad[i]) != NULL && !strchr(kn_errmsg(), '\n'), "%s", kn_errmsg());
    }
    KnnIndex *ix = NULL;
    CHECK_EQ_INT(index_create(&ix, D, ""), KN_EINVAL);
    CHECK_EQ_INT(index_create(&ix, D, NULL), KN_EINVAL);
    CHECK_EQ_INT(index_create(&ix, 0, "Flat"), KN_EINVAL);
    CHECK_EQ_INT(index_create(NULL, D, "Flat"), KN_EINVAL);
    CHECK_EQ_INT(index_set_threads(0), KN_EINVAL);

    float dist[8];
    int64_t ids[8];
    /* Flat: no training, no nprobe, no gaps in ids */
    CHECK_OK(index_create(&ix, D, "Flat"));
    CHECK_EQ_INT(index_search(ix, 1, D, g_query, 8, dist, ids), KN_EINVAL); /* empty */
    CHECK(strstr(kn_errmsg(), "empty") != NULL);
    CHECK_EQ_INT(index_train(ix, N, D, g_base), KN_EINVAL); /* already trained */
    CHECK_EQ_INT(index_train_points_recommended(ix), 0);
    CHECK_OK(index_set_nprobe(ix, 4)); /* no-op */
    CHECK_EQ_INT(index_nprobe(ix), 0);
    CHECK_EQ_INT(index_set_nprobe(ix, 0), KN_EINVAL);
    CHECK_EQ_INT(index_add(ix, 10, D + 1, g_base), KN_EMISMATCH);
    CHECK_EQ_INT(index_add(ix, -1, D, g_base), KN_EINVAL);
    CHECK_EQ_INT(index_add(ix, 10, D, NULL), KN_EINVAL);
    CHECK_OK(index_add(ix, 10, D, g_base));
    CHECK_EQ_INT(index_add_range(ix, 20, 10, D, g_base), KN_EINVAL); /* Flat keeps rows in order */
    CHECK_EQ_INT(index_add_range(ix, -5, 10, D, g_base), KN_EINVAL);
    CHECK_OK(index_add_range(ix, 10, 10, D, g_base + 10 * D));
    CHECK_EQ_INT(index_ntotal(ix), 20);
    CHECK_EQ_INT(index_search(ix, 1, D - 1, g_query, 8, dist, ids), KN_EMISMATCH);
    CHECK(strstr(kn_errmsg(), "Flat") != NULL && strstr(kn_errmsg(), "63") != NULL);
    CHECK_EQ_INT(index_search(ix, 1, D, g_query, 0, dist, ids), KN_EINVAL);
    CHECK_EQ_INT(index_search(ix, 1, D, g_query, -3, dist, ids), KN_EINVAL);
    CHECK_EQ_INT(index_search(ix, 1, D, NULL, 8, dist, ids), KN_EINVAL);
    CHECK_EQ_INT(index_search(ix, 1, D, g_query, 8, NULL, ids), KN_EINVAL);
    CHECK_OK(index_search(ix, 0, D, g_query, 8, dist, ids));
    CHECK_EQ_INT(index_to_ondisk(ix, "/tmp/never-written.faiss", NULL), KN_EINVAL);
    index_free(ix);

    /* fast-scan codes cannot live in on-disk lists (Faiss would abort on an unaligned block): refused */
    CHECK_OK(index_create(&ix, D, "IVF16,PQ16x4fs"));
    CHECK_OK(index_train(ix, 4096, D, g_base));
    CHECK_OK(index_add(ix, 4096, D, g_base));
    CHECK_EQ_INT(index_to_ondisk(ix, "/tmp/never-written.faiss", NULL), KN_EINVAL);
    CHECK_MSG(strstr(kn_errmsg(), "fast-scan") != NULL, "%s", kn_errmsg());
    CHECK(!file_exists("/tmp/never-written.faiss") && !file_exists("/tmp/never-written.faiss.ivfdata"));
    index_free(ix);

    /* IVF: training rules */
    CHECK_OK(index_create(&ix, D, "IVF64,Flat"));
    CHECK_EQ_INT(index_train_points_recommended(ix), 64 * 39);
    CHECK_EQ_INT(index_train(ix, 10, D, g_base), KN_EINVAL); /* fewer points than lists */
    CHECK_MSG(strstr(kn_errmsg(), "IVF64 (one point per list) needs at least 64") != NULL, "%s", kn_errmsg());
    CHECK_OK(index_train(ix, 64, D, g_base)); /* one point per list: works, as in Faiss */
    index_free(ix);
    CHECK_OK(index_create(&ix, D, "IVF64,PQ4"));
    CHECK_EQ_INT(index_train_points_recommended(ix), 256 * 39);
    CHECK_EQ_INT(index_search(ix, 1, D, g_query, 8, dist, ids), KN_EINVAL); /* untrained */
    CHECK(strstr(kn_errmsg(), "not trained") != NULL);
    CHECK_EQ_INT(index_add(ix, 10, D, g_base), KN_EINVAL);
    CHECK_EQ_INT(index_train(ix, 100, D, g_base), KN_EINVAL); /* enough for the lists, too few for 256 PQ centroids */
    CHECK_MSG(strstr(kn_errmsg(), "PQ4 (256 centroids") != NULL, "%s", kn_errmsg());
    CHECK_EQ_INT(index_train(ix, 0, D, g_base), KN_EINVAL);
    CHECK_EQ_INT(index_train(ix, N, D + 1, g_base), KN_EMISMATCH);
    CHECK_EQ_INT(index_is_trained(ix), 0);
    CHECK_EQ_INT(train_silently(ix, 1000), 0); /* under Faiss' 39 per centroid: works, and prints nothing */
    CHECK_EQ_INT(index_train(ix, N, D, g_base), KN_EINVAL); /* twice */
    CHECK_EQ_INT(index_search(ix, 1, D, g_query, 8, dist, ids), KN_EINVAL); /* trained but empty */
    /* ids from a shard's row range come back as given */
    CHECK_OK(index_add_range(ix, 1000000, 100, D, g_base));
    CHECK_OK(index_set_nprobe(ix, 64));
    CHECK_OK(index_search(ix, 1, D, g_base + 7 * D, 1, dist, ids));
    CHECK_EQ_INT(ids[0], 1000007);
    CHECK_EQ_INT(index_set_nprobe(ix, -1), KN_EINVAL);
    CHECK_OK(index_set_nprobe(ix, 100000)); /* Faiss clamps to nlist */
    CHECK_OK(index_search(ix, 1, D, g_base, 8, dist, ids));
    index_free(ix);
    CHECK_OK(index_create(&ix, D, "OPQ2,IVF16,PQ2"));
    CHECK_EQ_INT(index_train_points_recommended(ix), 256 * 39);
    CHECK_EQ_INT(index_train(ix, 200, D, g_base), KN_EINVAL); /* OPQ's PQ has 256 centroids */
    CHECK_MSG(strstr(kn_errmsg(), "OPQ2") != NULL, "%s", kn_errmsg());
    CHECK_EQ_INT(train_silently(ix, 300), 0);
    index_free(ix);
}

/* index_train_monitored: Faiss' k-means iterations as one phase, one progress call per iteration (IVF: 10,
 * Faiss' Level1Quantizer default; each of the 4 PQ sub-quantizers: 25, ClusteringParameters' default), and the
 * same index as index_train gives. */
typedef struct {
    int begins, ends, calls, in_order;
    uint64_t total, last, end_done;
} KmeansLog;

static void km_begin(void *ctx, const char *what, const char *unit, uint64_t total, uint64_t done) {
    KmeansLog *l = ctx;
    l->begins++;
    l->total = total;
    CHECK(!strcmp(what, "index k-means") && !strcmp(unit, "iterations") && done == 0);
}
static void km_progress(void *ctx, uint64_t done, uint64_t bytes) {
    KmeansLog *l = ctx;
    l->calls++;
    l->in_order += done == l->last + 1;
    l->last = done;
}
static void km_end(void *ctx, uint64_t done, uint64_t bytes) {
    KmeansLog *l = ctx;
    l->ends++;
    l->end_done = done;
}

static void test_training_reports_kmeans(void) {
    enum { K = 4, NT = 4096 };
    KmeansLog log = {0};
    KnMonitor mon = {km_begin, km_progress, km_end, &log, NULL};
    KnnIndex *plain = NULL, *watched = NULL;
    CHECK_OK(index_create(&plain, D, "IVF16,PQ4"));
    CHECK_OK(index_create(&watched, D, "IVF16,PQ4"));
    if (!plain || !watched) goto out;
    CHECK_OK(index_train(plain, NT, D, g_base));
    CHECK_OK(index_train_monitored(watched, NT, D, g_base, &mon));
    CHECK_EQ_INT(log.begins, 1);
    CHECK_EQ_INT(log.ends, 1);
    CHECK_EQ_INT((int)log.total, 10 + 4 * 25);
    CHECK_EQ_INT(log.calls, 10 + 4 * 25);
    CHECK_EQ_INT(log.in_order, log.calls);
    CHECK_EQ_INT((int)log.end_done, 10 + 4 * 25);
    CHECK_OK(index_add(plain, N, D, g_base));
    CHECK_OK(index_add(watched, N, D, g_base));
    float d1[NQ * K], d2[NQ * K];
    int64_t i1[NQ * K], i2[NQ * K];
    CHECK_OK(index_set_nprobe(plain, 4));
    CHECK_OK(index_set_nprobe(watched, 4));
    CHECK_OK(index_search(plain, NQ, D, g_query, K, d1, i1));
    CHECK_OK(index_search(watched, NQ, D, g_query, K, d2, i2));
    CHECK(memcmp(i1, i2, sizeof i1) == 0 && memcmp(d1, d2, sizeof d1) == 0);
    /* a Flat index needs no training: no phase at all */
    index_free(plain);
    plain = NULL;
    log = (KmeansLog){0};
    CHECK_OK(index_create(&plain, D, "IVF16,Flat"));
    CHECK_OK(index_train_monitored(plain, NT, D, g_base, &mon));
    CHECK_EQ_INT((int)log.total, 10);
    CHECK_EQ_INT(log.calls, 10);
out:
    index_free(plain);
    index_free(watched);
}

static void test_large_query_batch(void) {
    enum { K = 2, ROWS = 500 };
    float *dist = malloc(sizeof(float) * N * K), *dist1 = malloc(sizeof(float) * N * K);
    int64_t *ids = malloc(sizeof(int64_t) * N * K), *ids1 = malloc(sizeof(int64_t) * N * K);
    /* Flat: every base vector finds itself first, with Faiss' threads splitting the 20,000 queries */
    KnnIndex *ix = build("Flat", N, 1);
    CHECK(ix && dist && dist1 && ids && ids1);
    if (!ix || !dist || !dist1 || !ids || !ids1) goto out;
    CHECK_OK(index_set_threads(2));
    CHECK_OK(index_search(ix, N, D, g_base, K, dist, ids));
    int self = 0;
    for (int i = 0; i < N; i++) self += ids[K * i] == i && fabsf(dist[K * i]) < 1e-3f && ids[K * i + 1] != i;
    CHECK_EQ_INT(self, N);
    index_free(ix);
    /* IVF at nprobe 64: 20,000 queries are more than index_search hands Faiss at once; the blocks must
     * give what 200-query searches give */
    ix = build("IVF64,Flat", ROWS, 64);
    CHECK(ix != NULL);
    if (!ix) goto out;
    CHECK_OK(index_search(ix, N, D, g_base, K, dist, ids));
    for (int i = 0; i < N; i += NQ) CHECK_OK(index_search(ix, NQ, D, g_base + (size_t)i * D, K, dist1 + i * K, ids1 + i * K));
    CHECK(memcmp(ids, ids1, sizeof(int64_t) * N * K) == 0 && memcmp(dist, dist1, sizeof(float) * N * K) == 0);
    self = 0;
    for (int i = 0; i < ROWS; i++) self += ids[K * i] == i && dist[K * i] == 0.0f;
    CHECK_EQ_INT(self, ROWS);
out:
    CHECK_OK(index_set_threads(1));
    index_free(ix);
    free(dist);
    free(dist1);
    free(ids);
    free(ids1);
}

static void test_bad_files(void) {
    char path[256], text[256], ivf[256], cut[256], disk[256], data[300];
    path_in(path, sizeof path, "no-such.faiss");
    check_read_fails(path, 0, KN_ENOTFOUND);
    check_read_fails(g_dir, 0, KN_EINVAL); /* a folder */
    path_in(text, sizeof text, "text.faiss");
    CHECK(write_raw("text.faiss", "this is not an index\n", 21) == 0);
    check_read_fails(text, 0, KN_EFORMAT);
    CHECK(write_raw("empty.faiss", "", 0) == 0);
    path_in(path, sizeof path, "empty.faiss");
    check_read_fails(path, 0, KN_EFORMAT);
    KnnIndex *ix = NULL;
    CHECK_EQ_INT(index_read(&ix, text, 0x80), KN_EINVAL);

    /* every index file cut short, loaded or mapped: an error, never a crash */
    const char *files[] = {"flat.faiss", "ivfflat.faiss", "ivfpq.faiss", "opq.faiss", "ondisk.faiss"};
    path_in(cut, sizeof cut, "cut.faiss");
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        path_in(ivf, sizeof ivf, files[f]);
        off_t size = file_size(ivf);
        CHECK(size > 100);
        const off_t cuts[] = {4, 30, size / 3, size / 2, size - 100, size - 8, size - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            CHECK(copy_prefix(ivf, cut, cuts[c]) == 0);
            check_read_fails(cut, 0, KN_EFORMAT);
            check_read_fails(cut, INDEX_READ_MMAP, KN_EFORMAT);
        }
    }

    /* the ivfdata file of an on-disk index: missing, short */
    path_in(disk, sizeof disk, "bad-ondisk.faiss");
    snprintf(data, sizeof data, "%s.ivfdata", disk);
    path_in(ivf, sizeof ivf, "ivfpq.faiss");
    CHECK_OK(index_read(&ix, ivf, 0));
    CHECK_OK(index_to_ondisk(ix, disk, NULL));
    index_free(ix);
    off_t size = file_size(data);
    CHECK(truncate(data, size - 1) == 0);
    check_read_fails(disk, 0, KN_EFORMAT);
    CHECK(truncate(data, 0) == 0);
    check_read_fails(disk, INDEX_READ_MMAP, KN_EFORMAT);
    CHECK(unlink(data) == 0);
    check_read_fails(disk, 0, KN_ENOTFOUND);
}

/* A write that fails half way (here: the file size limit, as a full disk would) is an error naming the file
 * (not Faiss' nameless "write error in : ..."), leaves no file behind, not even the temporary, and leaves an
 * older file of that name as it was. */
static void test_failed_write_keeps_old_file(void) {
    char path[256], tmp[300], data[300], data_tmp[320];
    path_in(path, sizeof path, "limited.faiss");
    snprintf(data, sizeof data, "%s.ivfdata", path);
    CHECK_OK(file_temp_path(tmp, sizeof tmp, path));
    CHECK_OK(file_temp_path(data_tmp, sizeof data_tmp, data));
    KnnIndex *small = build("Flat", 5, 1), *big = build("IVF64,Flat", N, 8), *back = NULL; /* ~5 MB each */
    CHECK(small && big);
    if (!small || !big) goto out;
    CHECK_OK(index_write(small, path));
    struct rlimit old, limited;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    limited = old;
    limited.rlim_cur = 1 << 20;
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit then fails with EFBIG instead of killing us */
    CHECK(setrlimit(RLIMIT_FSIZE, &limited) == 0);
    int rc_write = index_write(big, path);
    char msg_write[1024];
    snprintf(msg_write, sizeof msg_write, "%s", kn_errmsg());
    int rc_disk = index_to_ondisk(big, path, NULL);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_DFL);
    char want_write[400], want_disk[400];
    snprintf(want_write, sizeof want_write, "%s: write failed: File too large", path);
    snprintf(want_disk, sizeof want_disk, "%s: write failed: File too large", data);
    CHECK_MSG(rc_write == KN_EIO && !strcmp(msg_write, want_write), "%d %s", rc_write, msg_write);
    CHECK_MSG(rc_disk == KN_EIO && !strcmp(kn_errmsg(), want_disk), "%d %s", rc_disk, kn_errmsg());
    CHECK(file_size(tmp) < 0 && file_size(data) < 0 && file_size(data_tmp) < 0);
    CHECK_OK(index_read(&back, path, 0));
    CHECK_EQ_INT(index_ntotal(back), 5);
out:
    index_free(small);
    index_free(big);
    index_free(back);
}

/* ---- Python's faiss reads our files ---- */

static void test_python_reads_our_files(void) {
    fflush(g_manifest);
    const char *env = getenv("KN_PYTHON");
    const char *candidates[] = {env ? env : "python3", "python3", "/usr/bin/python3"};
    const char *python = NULL;
    char cmd[1024];
    for (size_t i = 0; i < 3 && !python; i++) {
        snprintf(cmd, sizeof cmd, "%s -c 'import faiss, numpy' >/dev/null 2>&1", candidates[i]);
        if (system(cmd) == 0) python = candidates[i];
    }
    if (!python) {
        fprintf(stderr, "    SKIPPED: no python3 with faiss and numpy (set KN_PYTHON)\n");
        return;
    }
    CHECK(write_raw("queries.f32", g_query, sizeof(float) * NQ * D) == 0);
    CHECK(write_raw("base.f32", g_base, sizeof(float) * N * D) == 0);
    snprintf(cmd, sizeof cmd, "%s tests/check_index.py %s/manifest.txt %s/queries.f32 %d %s/base.f32", python, g_dir, g_dir, NQ, g_dir);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(path);
        else unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_index.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char manifest[256];
    path_in(manifest, sizeof manifest, "manifest.txt");
    g_manifest = fopen(manifest, "w");
    if (!g_manifest) return 1;
    index_set_threads(1); /* a 2-core machine shared with other builds: OpenMP barriers would only wait */
    make_data();
    brute_force();
    RUN(test_flat_matches_brute_force);
    RUN(test_flat_k_above_ntotal);
    RUN(test_ivf_k_above_reachable);
    RUN(test_ivf_flat_full_probe_equals_flat);
    RUN(test_ivf_add_assigns_nearest_list);
    RUN(test_ivf_single_queries_equal_batch);
    RUN(test_ivfpq_recall_rises_with_nprobe);
    RUN(test_opq_behind_transform);
    RUN(test_write_read_roundtrip);
    RUN(test_to_ondisk_same_results);
    RUN(test_merge_shards_equals_in_memory);
    RUN(test_merge_refuses_bad_shards);
    RUN(test_bad_factory_and_arguments);
    RUN(test_training_reports_kmeans);
    RUN(test_large_query_batch);
    RUN(test_bad_files);
    RUN(test_failed_write_keeps_old_file);
    RUN(test_python_reads_our_files);
    fclose(g_manifest);
    if (!getenv("KN_KEEP_TMP")) remove_tree(g_dir);
    free(g_base);
    free(g_query);
    return TEST_EXIT();
}
