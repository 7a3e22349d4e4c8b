/* scale.c — the synthetic-scale pipeline behind bench/run_scale.sh: an IVF index over N synthetic keys
 * (src/dstore/synth.h) that are never stored, built in shards from the generator's stream, merged into
 * on-disk inverted lists, and searched against an exact search over all N keys.
 *
 *   scale --entries N --dim D --out DIR [--factory F] [--shard-entries S] [--queries Q] [--train-mb MB]
 *         [--nprobe 1,4,16,64] [--threads T] [--phase train|add|finish|all] [--rank r --ranks R]
 *
 * Phases, each skipped when its files exist (so a killed run goes on from its last finished shard):
 *   train   DIR/trained.faiss: the empty index trained on the first rows of the stream (at most --train-mb
 *           of them, default 1024 MB: the memory bound, not Faiss' 39 points per centroid where that is more).
 *   add     for each shard s (rows s*S .. s*S+S-1) with s % R == r: the trained index plus those rows
 *           (DIR/shards/sNNNNN.faiss) and, from the same generated rows, the exact 8 nearest of every query
 *           among them (sNNNNN.truth); the keys are generated in blocks of 16,384 rows and dropped.
 *   finish  merges the shards into DIR/index.faiss + DIR/index.faiss.ivfdata (streaming, memory-mapped),
 *           merges the shards' truths into the exact 8 nearest over all N keys (DIR/truth.npy), searches the index for every
 *           nprobe (the Q queries as one batch, then one at a time) and writes DIR/scale.json.
 *   dump    (small runs, for tests) DIR/keys.npy and DIR/queries.npy: the rows and queries as float32.
 *   dstore  DIR/dstore: a real datastore folder (keys.npy float16, vals.npy, tokens.npy, manifest.json whose
 *           model and corpus say "synthetic") of the N rows, for `knnlm index build`, `datastore verify`
 *           and searches with exact distances on a datastore larger than RAM.
 * The queries are rows N .. N+Q-1 of the same stream: from the keys' distribution, never among them.
 * Memory: the training sample, a block of rows, one shard's codes and ids, the coarse quantizer. */
#include "dstore/synth.h"
#include "index/index.h"
#include "model/gemm.h"
#include "util/clock.h"
#include "util/error.h"
#include "dstore/manifest.h"
#include "util/file.h"
#include "util/half.h"
#include "util/hash.h"
#include "util/npy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { TOPK = 8, BLOCK = 16384, MAX_PROBES = 16 };

typedef struct {
    int64_t entries, shard_entries;
    int dim, queries, threads, rank, ranks, train_mb;
    const char *out, *factory, *phase;
    int probes[MAX_PROBES], n_probes;
} Opts;

static void die(const char *what) {
    fprintf(stderr, "scale: %s: %s\n", what, kn_errmsg());
    exit(1);
}

static void usage_error(const char *msg) {
    fprintf(stderr, "scale: %s (see the comment at the top of bench/scale.c)\n", msg);
    exit(2);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

static void pathf(char *out, const Opts *o, const char *fmt, long v) {
    char name[256];
    snprintf(name, sizeof name, fmt, v);
    if (path_join(out, PATH_MAX, o->out, name) != KN_OK) die("path");
}

static int64_t n_shards(const Opts *o) { return (o->entries + o->shard_entries - 1) / o->shard_entries; }

/* ---- the run's settings: written by the first run, every later run must repeat them ---- */

static void check_config(const Opts *o) {
    char path[PATH_MAX], text[512];
    pathf(path, o, "config.json", 0);
    snprintf(text, sizeof text, "{\"entries\": %lld, \"dim\": %d, \"factory\": \"%s\", \"shard_entries\": %lld, \"queries\": %d, \"train_mb\": %d, \"synth\": \"v1 defaults\"}\n",
             (long long)o->entries, o->dim, o->factory, (long long)o->shard_entries, o->queries, o->train_mb);
    char *old = NULL;
    size_t len = 0;
    if (file_read_all(path, &old, &len) == KN_OK) {
        int same = strcmp(old, text) == 0;
        free(old);
        if (!same) {
            fprintf(stderr, "scale: %s: this folder holds a run with other settings; use another --out\n", path);
            exit(1);
        }
        return;
    }
    if (file_mkdirs(o->out) != KN_OK || file_write_atomic(path, text, strlen(text)) != KN_OK) die("config");
}

/* ---- the generator and the queries ---- */

static Synth *make_synth(int dim) {
    SynthOptions so;
    synth_defaults(&so, dim);
    Synth *s = NULL;
    if (synth_create(&s, &so) != KN_OK) die("generator");
    return s;
}

static float *make_queries(const Synth *s, const Opts *o) {
    float *q = malloc(sizeof(float) * (size_t)o->queries * o->dim);
    if (!q) usage_error("out of memory for the queries");
    if (synth_rows(s, o->entries, o->queries, q, NULL, o->threads) != KN_OK) die("queries");
    return q;
}

/* ---- train ---- */

static void phase_train(const Synth *s, const Opts *o) {
    char path[PATH_MAX], meta[PATH_MAX];
    pathf(path, o, "trained.faiss", 0);
    pathf(meta, o, "train.json", 0);
    if (file_exists(path)) return;
    KnnIndex *ix = NULL;
    if (index_create(&ix, o->dim, o->factory) != KN_OK) die("factory");
    if (index_check_ondisk(ix) != KN_OK) die("factory");
    int64_t want = index_train_points_recommended(ix);
    int64_t cap = (int64_t)o->train_mb * 1024 * 1024 / ((int64_t)sizeof(float) * o->dim);
    int64_t n = want < cap ? want : cap;
    if (n > o->entries) n = o->entries;
    if (n < index_nlist(ix)) n = index_nlist(ix) <= o->entries ? index_nlist(ix) : o->entries;
    fprintf(stderr, "scale: training %s on %lld rows (Faiss recommends %lld)\n", o->factory, (long long)n, (long long)want);
    float *x = malloc(sizeof(float) * (size_t)n * o->dim);
    if (!x) usage_error("out of memory for the training sample");
    double t0 = kn_seconds();
    if (synth_rows(s, 0, n, x, NULL, o->threads) != KN_OK) die("training rows");
    if (index_train(ix, n, o->dim, x) != KN_OK) die("train");
    double dt = kn_seconds() - t0;
    free(x);
    if (index_write(ix, path) != KN_OK) die("write");
    index_free(ix);
    char text[256];
    snprintf(text, sizeof text, "{\"train_seconds\": %.3f, \"train_rows\": %lld, \"peak_rss_mb\": %.1f}\n", dt, (long long)n, peak_rss_mb());
    if (file_write_atomic(meta, text, strlen(text)) != KN_OK) die("train.json");
}

/* ---- add: one shard and its part of the exact search ---- */

typedef struct {
    float dist[TOPK];
    int64_t id[TOPK];
} Top;

static void top_init(Top *t, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < TOPK; j++) {
            t[i].dist[j] = FLT_MAX;
            t[i].id[j] = -1;
        }
}

/* Inserts (d, id) keeping the list sorted by (distance, id). */
static void top_push(Top *t, float d, int64_t id) {
    if (d > t->dist[TOPK - 1] || (d == t->dist[TOPK - 1] && (t->id[TOPK - 1] >= 0 && id > t->id[TOPK - 1]))) return;
    int j = TOPK - 1;
    while (j > 0 && (t->dist[j - 1] > d || (t->dist[j - 1] == d && (t->id[j - 1] < 0 || t->id[j - 1] > id)))) {
        t->dist[j] = t->dist[j - 1];
        t->id[j] = t->id[j - 1];
        j--;
    }
    t->dist[j] = d;
    t->id[j] = id;
}

static void phase_add_shard(const Synth *s, const Opts *o, int64_t shard, const float *qt, const float *qnorm) {
    char path[PATH_MAX], truth[PATH_MAX], meta[PATH_MAX], trained[PATH_MAX];
    pathf(path, o, "shards/s%05ld.faiss", (long)shard);
    pathf(truth, o, "shards/s%05ld.truth", (long)shard);
    pathf(meta, o, "shards/s%05ld.json", (long)shard);
    pathf(trained, o, "trained.faiss", 0);
    if (file_exists(path) && file_exists(truth) && file_exists(meta)) return;
    int64_t first = shard * o->shard_entries, n = o->entries - first < o->shard_entries ? o->entries - first : o->shard_entries;
    int D = o->dim, Q = o->queries;
    KnnIndex *ix = NULL;
    if (index_read(&ix, trained, 0) != KN_OK) die("trained index");
    float *x = malloc(sizeof(float) * (size_t)BLOCK * D), *dots = malloc(sizeof(float) * (size_t)BLOCK * Q);
    float *scratch = malloc(sizeof(float) * gemm_scratch_floats(D) * (size_t)o->threads);
    double *xnorm = malloc(sizeof(double) * BLOCK);
    Top *top = malloc(sizeof(Top) * (size_t)Q);
    if (!x || !dots || !scratch || !xnorm || !top) usage_error("out of memory for a block");
    top_init(top, Q);
    double t0 = kn_seconds();
    for (int64_t b = 0; b < n; b += BLOCK) {
        int m = (int)(n - b < BLOCK ? n - b : BLOCK);
        if (synth_rows(s, first + b, m, x, NULL, o->threads) != KN_OK) die("rows");
        if (index_add_range(ix, first + b, m, D, x) != KN_OK) die("add");
        /* the exact part: |x - q|^2 = |x|^2 - 2 x.q + |q|^2 for every row of the block and every query */
        gemm_f32(dots, (size_t)Q, x, (size_t)D, qt, (size_t)Q, NULL, m, D, Q, GEMM_STORE, (Gpt2Activation)0, scratch, o->threads);
#pragma omp parallel for num_threads(o->threads) schedule(static)
        for (int r = 0; r < m; r++) {
            double acc = 0;
            for (int c = 0; c < D; c++) acc += (double)x[(size_t)r * D + c] * x[(size_t)r * D + c];
            xnorm[r] = acc;
        }
#pragma omp parallel for num_threads(o->threads) schedule(static)
        for (int q = 0; q < Q; q++)
            for (int r = 0; r < m; r++) {
                float d = (float)(xnorm[r] - 2.0 * dots[(size_t)r * Q + q] + qnorm[q]);
                top_push(&top[q], d, first + b + r);
            }
    }
    double dt = kn_seconds() - t0;
    char dir[PATH_MAX];
    pathf(dir, o, "shards", 0);
    if (file_mkdirs(dir) != KN_OK) die("shards folder");
    if (file_write_atomic(truth, top, sizeof(Top) * (size_t)Q) != KN_OK) die("truth");
    if (index_write(ix, path) != KN_OK) die("write shard");
    char text[256];
    snprintf(text, sizeof text, "{\"rows\": %lld, \"seconds\": %.3f, \"peak_rss_mb\": %.1f}\n", (long long)n, dt, peak_rss_mb());
    if (file_write_atomic(meta, text, strlen(text)) != KN_OK) die("shard json");
    fprintf(stderr, "scale: shard %lld/%lld: %lld rows in %.1f s (%.0f rows/s)\n", (long long)shard + 1, (long long)n_shards(o),
            (long long)n, dt, n / dt);
    index_free(ix);
    free(x);
    free(dots);
    free(scratch);
    free(xnorm);
    free(top);
}

static void phase_add(const Synth *s, const Opts *o) {
    int D = o->dim, Q = o->queries;
    float *q = make_queries(s, o);
    float *qt = malloc(sizeof(float) * (size_t)D * Q);
    float *qnorm = malloc(sizeof(float) * Q);
    if (!qt || !qnorm) usage_error("out of memory for the queries");
    for (int i = 0; i < Q; i++) {
        double acc = 0;
        for (int c = 0; c < D; c++) {
            qt[(size_t)c * Q + i] = q[(size_t)i * D + c];
            acc += (double)q[(size_t)i * D + c] * q[(size_t)i * D + c];
        }
        qnorm[i] = (float)acc;
    }
    for (int64_t sh = o->rank; sh < n_shards(o); sh += o->ranks) phase_add_shard(s, o, sh, qt, qnorm);
    free(q);
    free(qt);
    free(qnorm);
}

/* ---- finish: merge, truth, search, scale.json ---- */

static double json_number(const char *path, const char *key) {
    char *text = NULL;
    size_t len = 0;
    if (file_read_all(path, &text, &len) != KN_OK) die("result file");
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
    if (!cJSON_IsNumber(v)) {
        fprintf(stderr, "scale: %s: no number \"%s\"\n", path, key);
        exit(1);
    }
    double x = v->valuedouble;
    cJSON_Delete(j);
    return x;
}

static void phase_finish(const Synth *s, const Opts *o) {
    int64_t ns = n_shards(o);
    int D = o->dim, Q = o->queries;
    char path[PATH_MAX], data[PATH_MAX], trained[PATH_MAX];
    double add_seconds = 0, peak = peak_rss_mb();
    char **shards = calloc((size_t)ns, sizeof(char *));
    Top *truth = malloc(sizeof(Top) * (size_t)Q), *part = malloc(sizeof(Top) * (size_t)Q);
    if (!shards || !truth || !part) usage_error("out of memory");
    top_init(truth, Q);
    for (int64_t sh = 0; sh < ns; sh++) {
        shards[sh] = malloc(PATH_MAX);
        pathf(shards[sh], o, "shards/s%05ld.faiss", (long)sh);
        pathf(path, o, "shards/s%05ld.json", (long)sh);
        if (!file_exists(shards[sh]) || !file_exists(path)) {
            fprintf(stderr, "scale: %s: shard %lld of %lld is not built yet (run the add phase)\n", shards[sh], (long long)sh + 1, (long long)ns);
            exit(1);
        }
        add_seconds += json_number(path, "seconds");
        double p = json_number(path, "peak_rss_mb");
        if (p > peak) peak = p;
        pathf(path, o, "shards/s%05ld.truth", (long)sh);
        char *raw = NULL;
        size_t len = 0;
        if (file_read_all(path, &raw, &len) != KN_OK) die("truth");
        if (len != sizeof(Top) * (size_t)Q) {
            fprintf(stderr, "scale: %s: %zu bytes, expected %zu\n", path, len, sizeof(Top) * (size_t)Q);
            exit(1);
        }
        memcpy(part, raw, len);
        free(raw);
        for (int q = 0; q < Q; q++)
            for (int j = 0; j < TOPK; j++)
                if (part[q].id[j] >= 0) top_push(&truth[q], part[q].dist[j], part[q].id[j]);
    }
    int64_t *truth_ids = malloc(sizeof(int64_t) * (size_t)Q * TOPK);
    if (!truth_ids) usage_error("out of memory");
    for (int q = 0; q < Q; q++)
        for (int j = 0; j < TOPK; j++) truth_ids[(size_t)q * TOPK + j] = truth[q].id[j];
    int64_t tshape[2] = {Q, TOPK};
    pathf(path, o, "truth.npy", 0);
    if (npy_write(path, NPY_I64, 2, tshape, truth_ids) != KN_OK) die("truth.npy");
    free(truth_ids);
    pathf(trained, o, "trained.faiss", 0);
    pathf(path, o, "index.faiss", 0);
    pathf(data, o, "index.faiss.ivfdata", 0);
    double merge_seconds = 0;
    if (!file_exists(path)) {
        double t0 = kn_seconds();
        if (index_merge_ondisk(trained, (const char *const *)shards, (int)ns, path, data) != KN_OK) die("merge");
        merge_seconds = kn_seconds() - t0;
    }
    pathf(trained, o, "train.json", 0);
    double train_seconds = json_number(trained, "train_seconds");
    double p = json_number(trained, "peak_rss_mb");
    if (p > peak) peak = p;

    KnnIndex *ix = NULL;
    if (index_read(&ix, path, 0) != KN_OK) die("merged index");
    float *q = make_queries(s, o);
    float *dist = malloc(sizeof(float) * (size_t)Q * TOPK);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)Q * TOPK);
    if (!dist || !ids) usage_error("out of memory");
    cJSON *root = cJSON_CreateObject(), *search = cJSON_CreateArray();
    char desc[512];
    synth_describe(s, desc, sizeof desc);
    cJSON_AddNumberToObject(root, "entries", (double)o->entries);
    cJSON_AddNumberToObject(root, "dim", D);
    cJSON_AddStringToObject(root, "factory", o->factory);
    cJSON_AddNumberToObject(root, "train_seconds", train_seconds);
    cJSON_AddNumberToObject(root, "add_seconds", add_seconds);
    cJSON_AddNumberToObject(root, "merge_seconds", merge_seconds);
    cJSON_AddNumberToObject(root, "index_bytes", (double)(file_size(path) + file_size(data)));
    cJSON_AddStringToObject(root, "keys", desc);
    cJSON_AddNumberToObject(root, "shards", (double)ns);
    cJSON_AddNumberToObject(root, "threads", o->threads);
    if (index_set_prefetch_threads(ix, 0) != KN_OK) die("prefetch");
    for (int pi = 0; pi < o->n_probes; pi++) {
        if (index_set_nprobe(ix, o->probes[pi]) != KN_OK) die("nprobe");
        /* batch (evaluation): all queries in one call, after one warm-up pass over the lists it reads */
        if (index_search(ix, Q, D, q, TOPK, dist, ids) != KN_OK) die("search");
        double t0 = kn_seconds();
        if (index_search(ix, Q, D, q, TOPK, dist, ids) != KN_OK) die("search");
        double batch = kn_seconds() - t0;
        /* single queries (generation): one call per query */
        t0 = kn_seconds();
        for (int i = 0; i < Q; i++)
            if (index_search(ix, 1, D, q + (size_t)i * D, TOPK, dist + (size_t)i * TOPK, ids + (size_t)i * TOPK) != KN_OK) die("search");
        double single = kn_seconds() - t0;
        int64_t hit = 0;
        for (int i = 0; i < Q; i++)
            for (int a = 0; a < TOPK; a++)
                for (int b = 0; b < TOPK; b++) hit += truth[i].id[a] >= 0 && ids[(size_t)i * TOPK + b] == truth[i].id[a];
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "nprobe", o->probes[pi]);
        cJSON_AddNumberToObject(row, "recall_at_8", (double)hit / ((double)Q * TOPK));
        cJSON_AddNumberToObject(row, "ms_per_query", 1e3 * single / Q);
        cJSON_AddNumberToObject(row, "ms_per_query_batch", 1e3 * batch / Q);
        cJSON_AddNumberToObject(row, "queries", Q);
        cJSON_AddItemToArray(search, row);
        fprintf(stderr, "scale: nprobe %d: recall@8 %.4f, %.3f ms/query single, %.3f ms/query in a batch of %d\n", o->probes[pi],
                (double)hit / ((double)Q * TOPK), 1e3 * single / Q, 1e3 * batch / Q, Q);
    }
    double rss = peak_rss_mb();
    cJSON_AddNumberToObject(root, "peak_rss_mb", rss > peak ? rss : peak);
    cJSON_AddItemToObject(root, "search", search);
    char *text = cJSON_Print(root);
    pathf(path, o, "scale.json", 0);
    if (!text || file_write_atomic(path, text, strlen(text)) != KN_OK) die("scale.json");
    printf("%s\n", text);
    free(text);
    cJSON_Delete(root);
    index_free(ix);
    for (int64_t sh = 0; sh < ns; sh++) free(shards[sh]);
    free(shards);
    free(truth);
    free(part);
    free(q);
    free(dist);
    free(ids);
}

/* ---- dump: the keys and queries as .npy, for checking the pipeline against an independent exact search ---- */

static void phase_dump(const Synth *s, const Opts *o) {
    char path[PATH_MAX];
    float *x = malloc(sizeof(float) * (size_t)o->entries * o->dim);
    if (!x) usage_error("out of memory: dump is for small runs");
    if (synth_rows(s, 0, o->entries, x, NULL, o->threads) != KN_OK) die("rows");
    int64_t shape[2] = {o->entries, o->dim};
    pathf(path, o, "keys.npy", 0);
    if (npy_write(path, NPY_F32, 2, shape, x) != KN_OK) die("keys.npy");
    free(x);
    float *q = make_queries(s, o);
    shape[0] = o->queries;
    pathf(path, o, "queries.npy", 0);
    if (npy_write(path, NPY_F32, 2, shape, q) != KN_OK) die("queries.npy");
    free(q);
}

/* ---- dstore: a real datastore folder of synthetic keys, for runs on a datastore larger than RAM ---- */

static FILE *open_npy(char *tmp, const char *dir, const char *name, NpyDtype dtype, int ndim, const int64_t *shape) {
    char path[PATH_MAX];
    uint8_t header[NPY_HEADER_BYTES];
    if (path_join(path, sizeof path, dir, name) != KN_OK || file_temp_path(tmp, PATH_MAX, path) != KN_OK) die("path");
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "scale: %s: cannot create: %s\n", tmp, strerror(errno));
        exit(1);
    }
    if (npy_header(header, dtype, ndim, shape) != KN_OK || fwrite(header, 1, sizeof header, f) != sizeof header) die(name);
    return f;
}

static void close_npy(FILE *f, const char *tmp, const char *dir, const char *name, char hex[HASH_HEX_LEN]) {
    char path[PATH_MAX];
    if (fflush(f) || fsync(fileno(f)) || fclose(f)) {
        fprintf(stderr, "scale: %s: write failed: %s\n", tmp, strerror(errno));
        exit(1);
    }
    if (path_join(path, sizeof path, dir, name) != KN_OK || rename(tmp, path)) die(name);
    if (hash_file(path, hex) != KN_OK) die(name);
}

/* DIR/dstore: keys.npy (float16), vals.npy, tokens.npy (eos then the values: entry i is followed by token i+1)
 * and a manifest whose model and corpus say "synthetic"; written in blocks, files renamed into place, the
 * manifest last. Skipped when the manifest exists. */
static void phase_dstore(const Synth *s, const Opts *o) {
    char dir[PATH_MAX], path[PATH_MAX], tk[PATH_MAX], tv[PATH_MAX], tt[PATH_MAX];
    pathf(dir, o, "dstore", 0);
    if (path_join(path, sizeof path, dir, "manifest.json") != KN_OK) die("path");
    if (file_exists(path)) return;
    if (file_mkdirs(dir) != KN_OK) die("dstore folder");
    int D = o->dim;
    int64_t N = o->entries, kshape[2] = {N, D}, vshape[2] = {N, 1}, tshape[1] = {N + 1};
    FILE *fk = open_npy(tk, dir, "keys.npy", NPY_F16, 2, kshape), *fv = open_npy(tv, dir, "vals.npy", NPY_I32, 2, vshape),
         *ft = open_npy(tt, dir, "tokens.npy", NPY_I32, 1, tshape);
    float *x = malloc(sizeof(float) * (size_t)BLOCK * D);
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)BLOCK * D);
    int32_t *v = malloc(sizeof(int32_t) * BLOCK), eos = 1;
    if (!x || !h || !v) usage_error("out of memory for a block");
    if (fwrite(&eos, sizeof eos, 1, ft) != 1) die("tokens.npy");
    double t0 = kn_seconds(), shown = t0;
    for (int64_t b = 0; b < N; b += BLOCK) {
        int m = (int)(N - b < BLOCK ? N - b : BLOCK);
        if (synth_rows(s, b, m, x, v, o->threads) != KN_OK) die("rows");
        floats_to_halves(h, x, (size_t)m * D);
        if (fwrite(h, sizeof(uint16_t) * D, (size_t)m, fk) != (size_t)m || fwrite(v, sizeof(int32_t), (size_t)m, fv) != (size_t)m ||
            fwrite(v, sizeof(int32_t), (size_t)m, ft) != (size_t)m) {
            fprintf(stderr, "scale: %s: write failed: %s\n", dir, strerror(errno));
            exit(1);
        }
        if (kn_seconds() - shown > 30) {
            shown = kn_seconds();
            fprintf(stderr, "scale: dstore %lld/%lld rows, %.0f rows/s\n", (long long)(b + m), (long long)N, (b + m) / (shown - t0));
        }
    }
    free(x);
    free(h);
    free(v);
    DstoreManifest m;
    memset(&m, 0, sizeof m);
    char desc[400];
    synth_describe(s, desc, sizeof desc);
    snprintf(m.model, sizeof m.model, "synthetic");
    memset(m.weights_hash, '0', HASH_HEX_LEN - 1);
    snprintf(m.key, sizeof m.key, "last_ffn_input");
    snprintf(m.precision, sizeof m.precision, "fp32");
    m.window = 1024;
    m.stride = 512;
    m.dtype = NPY_F16;
    snprintf(m.corpus, sizeof m.corpus, "synthetic: %s", desc);
    snprintf(m.corpus_format, sizeof m.corpus_format, "lines");
    memset(m.corpus_hash, '0', HASH_HEX_LEN - 1);
    m.eos_id = eos;
    m.shard_count = 1;
    m.tokens = N + 1;
    m.entries = N;
    m.dim = D;
    m.vocab_size = synth_options(s)->vocab;
    m.n_layer = 12;
    snprintf(m.tool_version, sizeof m.tool_version, "scale");
    close_npy(fk, tk, dir, "keys.npy", m.keys_hash);
    close_npy(fv, tv, dir, "vals.npy", m.vals_hash);
    close_npy(ft, tt, dir, "tokens.npy", m.tokens_hash);
    if (manifest_write(&m, path, NULL, 0) != KN_OK) die("manifest");
    fprintf(stderr, "scale: %s: %lld synthetic entries of %d dimensions in %.0f s\n", dir, (long long)N, D, kn_seconds() - t0);
}

/* ---- options ---- */

static int64_t parse_int(const char *flag, const char *v, int64_t lo, int64_t hi) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: '%s' is not an integer in [%lld, %lld]", flag, v, (long long)lo, (long long)hi);
        usage_error(msg);
    }
    return x;
}

int main(int argc, char **argv) {
    Opts o = {.shard_entries = 1000000, .queries = 1000, .train_mb = 1024, .threads = omp_get_num_procs(), .ranks = 1,
              .factory = "IVF4096,PQ64", .phase = "all"};
    const char *probes = "1,4,16,64";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: scale --entries N --dim D --out DIR [--factory F] [--shard-entries S] [--queries Q] [--train-mb MB]\n"
                   "             [--nprobe 1,4,16,64] [--threads T] [--phase train|add|finish|all|dump|dstore] [--rank r --ranks R]\n");
            return 0;
        }
        if (!v) usage_error("an option lacks its value");
        i++;
        if (!strcmp(a, "--entries")) o.entries = parse_int(a, v, 1, (int64_t)1 << 40);
        else if (!strcmp(a, "--dim")) o.dim = (int)parse_int(a, v, 1, 4096);
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--factory")) o.factory = v;
        else if (!strcmp(a, "--shard-entries")) o.shard_entries = parse_int(a, v, 1, (int64_t)1 << 40);
        else if (!strcmp(a, "--queries")) o.queries = (int)parse_int(a, v, 1, 100000);
        else if (!strcmp(a, "--train-mb")) o.train_mb = (int)parse_int(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--threads")) o.threads = (int)parse_int(a, v, 1, 1024);
        else if (!strcmp(a, "--rank")) o.rank = (int)parse_int(a, v, 0, 1 << 20);
        else if (!strcmp(a, "--ranks")) o.ranks = (int)parse_int(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--phase")) o.phase = v;
        else if (!strcmp(a, "--nprobe")) probes = v;
        else {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown option %s", a);
            usage_error(msg);
        }
    }
    if (!o.entries || !o.dim || !o.out) usage_error("--entries, --dim and --out are required");
    if (o.rank >= o.ranks) usage_error("--rank must be below --ranks");
    for (const char *p = probes; *p && o.n_probes < MAX_PROBES;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 1 || (*end && *end != ',')) usage_error("--nprobe: expected a list like 1,4,16,64");
        o.probes[o.n_probes++] = (int)x;
        p = *end ? end + 1 : end;
    }
    int all = !strcmp(o.phase, "all");
    int dump = !strcmp(o.phase, "dump"), dstore = !strcmp(o.phase, "dstore");
    if (!all && !dump && !dstore && strcmp(o.phase, "train") && strcmp(o.phase, "add") && strcmp(o.phase, "finish"))
        usage_error("--phase: train, add, finish, all, dump or dstore");
    if (index_set_threads(o.threads) != KN_OK) die("threads");
    check_config(&o);
    Synth *s = make_synth(o.dim);
    if (all || !strcmp(o.phase, "train")) phase_train(s, &o);
    if (all || !strcmp(o.phase, "add")) phase_add(s, &o);
    if (all || !strcmp(o.phase, "finish")) phase_finish(s, &o);
    if (dump) phase_dump(s, &o);
    if (dstore) phase_dstore(s, &o);
    synth_free(s);
    return 0;
}
