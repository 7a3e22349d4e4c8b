/* knn_overlap.c — what the bf16 forward pass does to a real datastore: the 8 nearest neighbours of held-out
 * queries among keys computed in fp32 and among keys computed with GPT2_BF16.
 *
 *   build/release/bench/knn_overlap [MODEL_DIR [WEIGHTS [TRAIN.txt [VALID.txt [ENTRIES [QUERIES]]]]]]
 *
 * Defaults: models/tiny-kogpt2 (its model-f16.safetensors), data/kowiki-sample/train.txt and valid.txt,
 * 200000 entries, 4000 queries. The datastore is built as the build command does (every line's tokens and
 * </s>; windows of n_positions tokens with stride n_positions / 2; key last_ffn_input), queries are the
 * same keys over the valid text. Exact 8-NN by brute force (squared L2 through cblas_sgemm). Reported as the
 * mean share of the fp32 neighbours (fp32 keys, fp32 queries) that each variant finds:
 *   - fp16 storage: fp32 keys rounded to float16 (the datastore's default dtype), fp32 queries: the change the
 *     project already accepts, for scale;
 *   - bf16 keys and bf16 queries (a datastore and an evaluation both run with GPT2_BF16);
 *   - bf16 keys, fp32 queries (a bf16-built datastore searched by an fp32 evaluation);
 *   - bf16 keys stored as float16, fp32 queries (what a bf16 build writes by default).
 * Also the relative error of the bf16 keys. */
#include "dstore/corpus.h"
#include "dstore/window.h"
#include "model/gpt2.h"
#include "util/error.h"
#include "util/half.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_NN = 8, QBLOCK = 256, KBLOCK = 8192 };

static void die(const char *what) {
    fprintf(stderr, "knn_overlap: %s: %s\n", what, kn_errmsg());
    exit(1);
}

/* The key of every entry of the stream (window/stride as the datastore), [n - 1, C]. */
static float *stream_keys(Gpt2 *m, const int32_t *ids, int64_t n, int window, int stride, double *seconds) {
    const int C = gpt2_config(m)->n_embd;
    Gpt2State *s;
    if (gpt2_state_create(&s, m, window, 0) != KN_OK) die("state");
    float *keys = malloc((size_t)(n - 1) * C * sizeof(float));
    double t0 = omp_get_wtime();
    for (int64_t w = 0; w < window_count(n, window, stride); w++) {
        Window win = window_at(n, window, stride, w);
        const int T = (int)(win.end - win.begin), first = (int)(win.emit_begin - win.begin);
        if (gpt2_forward_rows(s, ids + win.begin, T, first, GPT2_NEED_LAST_FFN_INPUT) != KN_OK) die("forward");
        memcpy(keys + (size_t)win.emit_begin * C, gpt2_state_output(s, KEY_LAST_FFN_INPUT) + (size_t)first * C,
               (size_t)(win.emit_end - win.emit_begin) * C * sizeof(float));
    }
    *seconds = omp_get_wtime() - t0;
    gpt2_state_free(s);
    return keys;
}

/* Inserts (d, id) into a sorted list of K_NN (ascending d). */
static void push(float *d, int64_t *id, float dist, int64_t j) {
    if (dist >= d[K_NN - 1]) return;
    int i = K_NN - 1;
    while (i > 0 && d[i - 1] > dist) {
        d[i] = d[i - 1];
        id[i] = id[i - 1];
        i--;
    }
    d[i] = dist;
    id[i] = j;
}

/* The K_NN nearest keys of each query (squared L2; ||q||^2 left out, it does not change the order). */
static void knn(int64_t *out, const float *keys, int64_t N, const float *q, int Q, int D) {
    float *norms = malloc((size_t)N * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int i = 0; i < D; i++) s += (double)keys[(size_t)j * D + i] * keys[(size_t)j * D + i];
        norms[j] = (float)s;
    }
    float *dot = malloc((size_t)QBLOCK * KBLOCK * sizeof(float)), *bd = malloc((size_t)QBLOCK * K_NN * sizeof(float));
    for (int q0 = 0; q0 < Q; q0 += QBLOCK) {
        const int nq = Q - q0 < QBLOCK ? Q - q0 : QBLOCK;
        for (int i = 0; i < nq * K_NN; i++) bd[i] = INFINITY, out[(size_t)q0 * K_NN + i] = -1;
        for (int64_t k0 = 0; k0 < N; k0 += KBLOCK) {
            const int nk = N - k0 < KBLOCK ? (int)(N - k0) : KBLOCK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, q + (size_t)q0 * D, D, keys + (size_t)k0 * D, D, 0.0f, dot, nk);
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nq; i++)
                for (int j = 0; j < nk; j++)
                    push(bd + (size_t)i * K_NN, out + (size_t)(q0 + i) * K_NN, norms[k0 + j] - 2.0f * dot[(size_t)i * nk + j], k0 + j);
        }
    }
    free(norms);
    free(dot);
    free(bd);
}

/* Mean share of a's neighbours found in b, and how often the nearest is the same. */
static void overlap(const char *what, const int64_t *a, const int64_t *b, int Q) {
    double shared = 0, top1 = 0;
    for (int i = 0; i < Q; i++) {
        int n = 0;
        for (int x = 0; x < K_NN; x++)
            for (int y = 0; y < K_NN; y++) n += a[(size_t)i * K_NN + x] == b[(size_t)i * K_NN + y];
        shared += n;
        top1 += a[(size_t)i * K_NN] == b[(size_t)i * K_NN];
    }
    printf("  %-46s overlap@8 %6.2f%%   same nearest %6.2f%%\n", what, 100.0 * shared / ((double)Q * K_NN), 100.0 * top1 / Q);
}

static float *as_f16(const float *x, size_t n) {
    uint16_t *h = malloc(n * sizeof *h);
    float *y = malloc(n * sizeof *y);
    floats_to_halves(h, x, n);
    halves_to_floats(y, h, n);
    free(h);
    return y;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/tiny-kogpt2";
    const char *weights_name = argc > 2 ? argv[2] : "model-f16.safetensors";
    const char *train = argc > 3 ? argv[3] : "data/kowiki-sample/train.txt";
    const char *valid = argc > 4 ? argv[4] : "data/kowiki-sample/valid.txt";
    const int64_t max_entries = argc > 5 ? atoll(argv[5]) : 200000;
    const int max_queries = argc > 6 ? atoi(argv[6]) : 4000;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, weights_name);
    Gpt2 *m;
    if (gpt2_load(&m, dir, path) != KN_OK) die("load");
    const Gpt2Config *c = gpt2_config(m);
    const int D = c->n_embd, window = c->n_positions, stride = window / 2;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    Tokenizer *tk;
    if (tokenizer_load(&tk, path) != KN_OK) die("tokenizer");
    CorpusOptions co = {CORPUS_LINES, c->eos_token_id >= 0 ? c->eos_token_id : 1, max_entries + 1, CORPUS_REPLACE_INVALID_UTF8};
    int32_t *tr, *va;
    int64_t ntr, nva;
    if (corpus_tokenize_all(tk, train, &co, &tr, &ntr, NULL) != KN_OK) die(train);
    co.max_tokens = max_queries + 1;
    if (corpus_tokenize_all(tk, valid, &co, &va, &nva, NULL) != KN_OK) die(valid);
    const int64_t N = ntr - 1;
    const int Q = (int)(nva - 1);
    printf("model %s (%d layers, n_embd %d), window %d stride %d, %d threads\n", dir, c->n_layer, D, window, stride, omp_get_max_threads());
    printf("datastore: %lld entries of %s; queries: %d positions of %s\n", (long long)N, train, Q, valid);

    double t32, t16, tq;
    float *k32 = stream_keys(m, tr, ntr, window, stride, &t32), *q32 = stream_keys(m, va, nva, window, stride, &tq);
    if (gpt2_set_precision(m, GPT2_BF16) != KN_OK) die("bf16");
    float *kbf = stream_keys(m, tr, ntr, window, stride, &t16), *qbf = stream_keys(m, va, nva, window, stride, &tq);
    printf("datastore forward: fp32 %.2f s, bf16 (%s) %.2f s\n", t32, gpt2_bf16_native() ? "VDPBF16PS" : "emulated", t16);

    double rel = 0, rel_max = 0;
    for (int64_t j = 0; j < N; j++) {
        double d2 = 0, n2 = 0;
        for (int i = 0; i < D; i++) {
            double a = k32[(size_t)j * D + i], d = kbf[(size_t)j * D + i] - a;
            d2 += d * d;
            n2 += a * a;
        }
        double r = sqrt(d2 / n2);
        rel += r;
        rel_max = r > rel_max ? r : rel_max;
    }
    printf("bf16 keys vs fp32 keys: relative L2 error per key mean %.4f, max %.4f\n", rel / N, rel_max);

    int64_t *nn_ref = malloc((size_t)Q * K_NN * sizeof(int64_t)), *nn = malloc((size_t)Q * K_NN * sizeof(int64_t));
    double t0 = omp_get_wtime();
    knn(nn_ref, k32, N, q32, Q, D);
    printf("exact 8-NN of %d queries over %lld keys: %.1f s per run\n", Q, (long long)N, omp_get_wtime() - t0);
    printf("8 nearest neighbours, against fp32 keys + fp32 queries:\n");
    float *k16 = as_f16(k32, (size_t)N * D);
    knn(nn, k16, N, q32, Q, D);
    overlap("fp32 keys stored as float16, fp32 queries", nn_ref, nn, Q);
    knn(nn, kbf, N, qbf, Q, D);
    overlap("bf16 keys, bf16 queries", nn_ref, nn, Q);
    knn(nn, kbf, N, q32, Q, D);
    overlap("bf16 keys, fp32 queries", nn_ref, nn, Q);
    float *kbf16 = as_f16(kbf, (size_t)N * D);
    knn(nn, kbf16, N, q32, Q, D);
    overlap("bf16 keys stored as float16, fp32 queries", nn_ref, nn, Q);
    knn(nn, kbf16, N, qbf, Q, D);
    overlap("bf16 keys stored as float16, bf16 queries", nn_ref, nn, Q);

    free(k32), free(q32), free(kbf), free(qbf), free(k16), free(kbf16), free(nn_ref), free(nn), free(tr), free(va);
    tokenizer_free(tk);
    gpt2_free(m);
    return 0;
}
