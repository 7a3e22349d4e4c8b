/* test_model.c — the GPT-2 forward pass against PyTorch's outputs for tests/data/tiny-random (README.md there):
 * every weight format, every case, the KV-cache path against the batched one, thread-count independence, and
 * checkpoints that disagree with their config.json. */
#include "model/gemm.h"
#include "model/gpt2.h"
#include "model/tensorfile.h"
#include "util/error.h"
#include "util/file.h"
#include "util/npy.h"
#include "test.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REF "tests/data/tiny-random"
#define HIDDEN_TOL 1e-4
#define LOGIT_TOL 1e-3

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

static int load_ids(const char *case_name, int32_t **ids, int *T) {
    char path[256];
    snprintf(path, sizeof path, REF "/%s.ids.npy", case_name);
    NpyArray a;
    int rc = npy_map(&a, path);
    if (rc) return rc;
    if (a.dtype != NPY_I32 || a.ndim != 1) {
        npy_unmap(&a);
        return kn_error(KN_EFORMAT, "%s: expected int32 [T]", path);
    }
    *T = (int)a.shape[0];
    *ids = malloc((size_t)*T * sizeof(int32_t));
    memcpy(*ids, a.data, (size_t)*T * sizeof(int32_t));
    npy_unmap(&a);
    return KN_OK;
}

/* Compares `got` [rows, cols] with the reference file REF/<case>.<what>.npy. */
static void check_against(const char *label, const char *case_name, const char *what, const float *got, int rows, int cols, double tol) {
    char path[256];
    snprintf(path, sizeof path, REF "/%s.%s.npy", case_name, what);
    NpyArray ref;
    if (npy_map(&ref, path) != KN_OK) {
        CHECK_MSG(0, "%s", kn_errmsg());
        return;
    }
    CHECK_EQ_INT(ref.dtype, NPY_F32);
    CHECK_EQ_INT(ref.shape[0], rows);
    CHECK_EQ_INT(ref.shape[1], cols);
    if (ref.shape[0] == rows && ref.shape[1] == cols) {
        double d = max_abs_diff(got, ref.data, (size_t)rows * cols);
        CHECK_MSG(d <= tol, "%s %s %s: max |diff| %.3g > %.1g", label, case_name, what, d, tol);
    }
    npy_unmap(&ref);
}

static const char *const cases[] = {"case0", "case1", "case2", "case3"};

/* Every case through one weights file; f16 selects the F16 references (only logits are given for them). */
static void check_weights_file(const char *weights, int f16) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, weights));
    const Gpt2Config *c = gpt2_config(m);
    CHECK_EQ_INT(c->n_layer, 2);
    CHECK_EQ_INT(c->n_embd, 64);
    CHECK_EQ_INT(c->vocab_size, 51200);
    Gpt2State *s;
    if (gpt2_state_create(&s, m, c->n_positions, 0) != KN_OK) {
        CHECK_MSG(0, "%s", kn_errmsg());
        gpt2_free(m);
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids;
        int T;
        if (load_ids(cases[i], &ids, &T) != KN_OK) {
            CHECK_MSG(0, "%s", kn_errmsg());
            continue;
        }
        int rc = gpt2_forward(s, ids, T, GPT2_NEED_LAST_FFN_INPUT | GPT2_NEED_FINAL_HIDDEN);
        CHECK_MSG(rc == KN_OK, "%s", kn_errmsg());
        const float *final = gpt2_state_output(s, KEY_FINAL_HIDDEN);
        if (!f16) {
            check_against(weights, cases[i], "last_ffn_input", gpt2_state_output(s, KEY_LAST_FFN_INPUT), T, c->n_embd, HIDDEN_TOL);
            check_against(weights, cases[i], "final_hidden", final, T, c->n_embd, HIDDEN_TOL);
        }
        int rows = T < 4 ? T : 4;
        float *logits = malloc((size_t)rows * c->vocab_size * sizeof(float));
        CHECK_OK(gpt2_logits(m, final + (size_t)(T - rows) * c->n_embd, rows, logits));
        check_against(weights, cases[i], f16 ? "f16.logits_tail" : "logits_tail", logits, rows, c->vocab_size, LOGIT_TOL);
        free(logits);
        free(ids);
    }
    gpt2_state_free(s);
    gpt2_free(m);
}

static void test_safetensors_f32(void) { check_weights_file(REF "/model.safetensors", 0); }
static void test_pytorch_bin(void) { check_weights_file(REF "/pytorch_model.bin", 0); }
static void test_safetensors_f16(void) { check_weights_file(REF "/model-f16.safetensors", 1); }

/* Without an explicit file the folder's model.safetensors is found. */
static void test_find_weights(void) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, NULL));
    CHECK(strstr(gpt2_weights_path(m), "model.safetensors") != NULL);
    gpt2_free(m);
}

/* The KV-cache path, one token at a time and in uneven chunks, gives what one batched window gives. */
static void test_kv_cache_matches_batched(void) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, REF "/model.safetensors"));
    const int C = gpt2_config(m)->n_embd;
    int32_t *ids;
    int T;
    CHECK_OK(load_ids("case3", &ids, &T));
    Gpt2State *batch, *inc;
    CHECK_OK(gpt2_state_create(&batch, m, T, 0));
    CHECK_OK(gpt2_state_create(&inc, m, T, 1));
    const unsigned need = GPT2_NEED_FINAL_HIDDEN | GPT2_NEED_LAST_FFN_INPUT | GPT2_NEED_LAST_LAYER_OUTPUT;
    CHECK_OK(gpt2_forward(batch, ids, T, need));
    double worst = 0;
    for (int t = 0; t < T; t++) {
        CHECK_OK(gpt2_forward(inc, ids + t, 1, need));
        for (int k = 0; k < 3; k++) {
            double d = max_abs_diff(gpt2_state_output(inc, (Gpt2KeyType)k), gpt2_state_output(batch, (Gpt2KeyType)k) + (size_t)t * C, (size_t)C);
            worst = d > worst ? d : worst;
        }
    }
    CHECK_EQ_INT(gpt2_state_cached(inc), T);
    CHECK_MSG(worst <= 1e-5, "one token at a time differs from batched by %.3g", worst);
    /* chunks of 50, 1 and the rest */
    gpt2_state_reset(inc);
    int chunks[] = {50, 1, T - 51}, at = 0;
    worst = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(gpt2_forward(inc, ids + at, chunks[i], need));
        double d = max_abs_diff(gpt2_state_output(inc, KEY_FINAL_HIDDEN), gpt2_state_output(batch, KEY_FINAL_HIDDEN) + (size_t)at * C, (size_t)chunks[i] * C);
        worst = d > worst ? d : worst;
        at += chunks[i];
    }
    CHECK_MSG(worst <= 1e-5, "chunked prefill differs from batched by %.3g", worst);
    /* the cache is full: one more token must be refused, not written past the end */
    int32_t one = ids[0];
    CHECK_EQ_INT(gpt2_forward(inc, &one, 1, need), KN_EINVAL);
    gpt2_state_free(batch);
    gpt2_state_free(inc);
    gpt2_free(m);
    free(ids);
}

/* The fp32 model, case3's ids and a state without a KV cache for them. */
static void open_case3(Gpt2 **m, int32_t **ids, int *T, Gpt2State **s) {
    CHECK_OK(gpt2_load(m, REF, REF "/model.safetensors"));
    CHECK_OK(load_ids("case3", ids, T));
    CHECK_OK(gpt2_state_create(s, *m, *T, 0));
}

/* Hidden states and logits are bit-identical with 1, 2 and 3 threads (whatever OPENBLAS_* says: nothing in the
 * model calls BLAS), and a row's logits do not depend on how many rows are computed with it. */
static void test_thread_count_independent(void) {
    Gpt2 *m;
    int32_t *ids;
    int T;
    Gpt2State *s;
    open_case3(&m, &ids, &T, &s);
    const int C = gpt2_config(m)->n_embd, V = gpt2_config(m)->vocab_size;
    float *out[3], *logits[3];
    int saved = omp_get_max_threads();
    for (int n = 1; n <= 3; n++) {
        omp_set_num_threads(n);
        CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
        out[n - 1] = malloc((size_t)T * C * sizeof(float));
        logits[n - 1] = malloc((size_t)T * V * sizeof(float));
        memcpy(out[n - 1], gpt2_state_output(s, KEY_FINAL_HIDDEN), (size_t)T * C * sizeof(float));
        CHECK_OK(gpt2_logits(m, out[n - 1], T, logits[n - 1]));
    }
    omp_set_num_threads(saved);
    for (int n = 1; n < 3; n++) {
        CHECK_MSG(memcmp(out[0], out[n], (size_t)T * C * sizeof(float)) == 0, "hidden states differ with %d threads", n + 1);
        CHECK_MSG(memcmp(logits[0], logits[n], (size_t)T * V * sizeof(float)) == 0, "logits differ with %d threads", n + 1);
    }
    /* one row at a time (decoding), and the last 7 rows (a full register tile and one more) */
    float *one = malloc((size_t)V * sizeof(float));
    for (int t = 0; t < T; t++) {
        CHECK_OK(gpt2_logits(m, out[0] + (size_t)t * C, 1, one));
        CHECK_MSG(memcmp(one, logits[0] + (size_t)t * V, (size_t)V * sizeof(float)) == 0, "row %d alone differs", t);
    }
    if (T >= 7) {
        float *tail = malloc((size_t)7 * V * sizeof(float));
        CHECK_OK(gpt2_logits(m, out[0] + (size_t)(T - 7) * C, 7, tail));
        CHECK(memcmp(tail, logits[0] + (size_t)(T - 7) * V, (size_t)7 * V * sizeof(float)) == 0);
        free(tail);
    }
    free(one);
    for (int n = 0; n < 3; n++) {
        free(out[n]);
        free(logits[n]);
    }
    gpt2_state_free(s);
    gpt2_free(m);
    free(ids);
}

/* Max |a - b| / max |b| over n floats. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e;
        scale = fabs((double)b[i]) > scale ? fabs((double)b[i]) : scale;
    }
    return d / scale;
}

static const float *ref_output(NpyArray *a, const char *case_name, const char *what) {
    char path[256];
    snprintf(path, sizeof path, REF "/%s.%s.npy", case_name, what);
    return npy_map(a, path) == KN_OK ? a->data : NULL;
}

/* The AVX2 and AVX-512 kernels (gemm.h) give the same bits: hidden states and logits in fp32, hidden states in
 * bf16 (VDPBF16PS on AVX-512 where the CPU has it, its emulation on AVX2). tests/run.sh also runs this whole
 * file with KNNLM_ISA=avx2, so the PyTorch comparisons above hold on both paths. */
static void test_isa_same_bits(void) {
    const char *start = gemm_isa();
    if (gemm_set_isa("avx512") != KN_OK) {
        printf("    (no AVX-512 on this CPU: only the AVX2 kernels are tested)\n");
        CHECK(strcmp(gemm_isa(), "avx2") == 0);
        return;
    }
    CHECK(gemm_set_isa("avx3") == KN_EINVAL);
    Gpt2 *m;
    int32_t *ids;
    int T;
    Gpt2State *s;
    open_case3(&m, &ids, &T, &s);
    const int C = gpt2_config(m)->n_embd, V = gpt2_config(m)->vocab_size;
    const size_t nh = (size_t)T * C, nl = (size_t)4 * V;
    float *h[2][2], *logits[2];
    const char *isa[2] = {"avx2", "avx512"};
    for (int p = 0; p < 2; p++) {
        CHECK_OK(gpt2_set_precision(m, p ? GPT2_BF16 : GPT2_FP32));
        for (int i = 0; i < 2; i++) {
            CHECK_OK(gemm_set_isa(isa[i]));
            CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
            h[p][i] = malloc(nh * sizeof(float));
            memcpy(h[p][i], gpt2_state_output(s, KEY_FINAL_HIDDEN), nh * sizeof(float));
            if (p == 0) {
                logits[i] = malloc(nl * sizeof(float));
                CHECK_OK(gpt2_logits(m, h[p][i] + (size_t)(T - 4) * C, 4, logits[i]));
            }
        }
        CHECK_MSG(memcmp(h[p][0], h[p][1], nh * sizeof(float)) == 0, "%s hidden states differ between AVX2 and AVX-512", p ? "bf16" : "fp32");
    }
    CHECK_MSG(memcmp(logits[0], logits[1], nl * sizeof(float)) == 0, "logits differ between AVX2 and AVX-512");
    CHECK_OK(gemm_set_isa(start));
    CHECK_OK(gpt2_set_precision(m, GPT2_FP32));
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 2; i++) free(h[p][i]);
    free(logits[0]);
    free(logits[1]);
    free(ids);
    gpt2_state_free(s);
    gpt2_free(m);
}

/* A token decoded alone gets the very numbers of the batched window (gemm.h: one order of operations). */
static void test_kv_cache_bit_identical(void) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, REF "/model.safetensors"));
    const int C = gpt2_config(m)->n_embd;
    int32_t *ids;
    int T;
    CHECK_OK(load_ids("case3", &ids, &T));
    Gpt2State *batch, *inc;
    CHECK_OK(gpt2_state_create(&batch, m, T, 0));
    CHECK_OK(gpt2_state_create(&inc, m, T, 1));
    CHECK_OK(gpt2_forward(batch, ids, T, GPT2_NEED_FINAL_HIDDEN));
    int differ = 0;
    for (int t = 0; t < T; t++) {
        CHECK_OK(gpt2_forward(inc, ids + t, 1, GPT2_NEED_FINAL_HIDDEN));
        differ += memcmp(gpt2_state_output(inc, KEY_FINAL_HIDDEN), gpt2_state_output(batch, KEY_FINAL_HIDDEN) + (size_t)t * C, (size_t)C * sizeof(float)) != 0;
    }
    CHECK_EQ_INT(differ, 0);
    gpt2_state_free(batch);
    gpt2_state_free(inc);
    gpt2_free(m);
    free(ids);
}

/* gpt2_forward_rows gives forward's rows [first, T) bit for bit, with and without a KV cache, and refuses a
 * first row outside [0, T). */
static void test_forward_rows(void) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, REF "/model.safetensors"));
    const int C = gpt2_config(m)->n_embd;
    int32_t *ids;
    int T;
    CHECK_OK(load_ids("case3", &ids, &T));
    Gpt2State *full, *part, *cached;
    CHECK_OK(gpt2_state_create(&full, m, T, 0));
    CHECK_OK(gpt2_state_create(&part, m, T, 0));
    CHECK_OK(gpt2_state_create(&cached, m, T, 1));
    const unsigned need = GPT2_NEED_FINAL_HIDDEN | GPT2_NEED_LAST_FFN_INPUT | GPT2_NEED_LAST_LAYER_OUTPUT;
    CHECK_OK(gpt2_forward(full, ids, T, need));
    const int firsts[] = {0, 1, 64, 100, T - 1};
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        const int f = firsts[i];
        CHECK_OK(gpt2_forward_rows(part, ids, T, f, need));
        gpt2_state_reset(cached);
        CHECK_OK(gpt2_forward(cached, ids, 20, need));
        CHECK_OK(gpt2_forward_rows(cached, ids + 20, T - 20, f > 20 ? f - 20 : 0, need));
        CHECK_EQ_INT(gpt2_state_cached(cached), T);
        for (int k = 0; k < 3; k++) {
            const size_t off = (size_t)f * C, n = (size_t)(T - f) * C;
            CHECK_MSG(memcmp(gpt2_state_output(part, (Gpt2KeyType)k) + off, gpt2_state_output(full, (Gpt2KeyType)k) + off, n * sizeof(float)) == 0,
                      "first row %d: %s differs", f, gpt2_key_name((Gpt2KeyType)k));
            const int g = f > 20 ? f : 20; /* the cached call covers rows 20.. */
            CHECK_MSG(memcmp(gpt2_state_output(cached, (Gpt2KeyType)k) + (size_t)(g - 20) * C, gpt2_state_output(full, (Gpt2KeyType)k) + (size_t)g * C,
                             (size_t)(T - g) * C * sizeof(float)) == 0,
                      "first row %d with a KV cache: %s differs", f, gpt2_key_name((Gpt2KeyType)k));
        }
    }
    CHECK_EQ_INT(gpt2_forward_rows(part, ids, T, T, need), KN_EINVAL);
    CHECK_EQ_INT(gpt2_forward_rows(part, ids, T, -1, need), KN_EINVAL);
    gpt2_state_free(full);
    gpt2_state_free(part);
    gpt2_state_free(cached);
    gpt2_free(m);
    free(ids);
}

/* GPT2_BF16: within BF16_TOL of the largest value of the fp32 references (measured: 0.5-1.7e-2); the same bits for 1 and 2
 * threads and with VDPBF16PS emulated; back to GPT2_FP32, the references again. */
#define BF16_TOL 3e-2
static void test_bf16_precision(void) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, REF "/model.safetensors"));
    const Gpt2Config *c = gpt2_config(m);
    const int C = c->n_embd;
    CHECK_EQ_INT(gpt2_precision(m), GPT2_FP32);
    CHECK_EQ_INT(gpt2_set_precision(m, (Gpt2Precision)7), KN_EINVAL);
    CHECK_OK(gpt2_set_precision(m, GPT2_BF16));
    CHECK_EQ_INT(gpt2_precision(m), GPT2_BF16);
    CHECK_OK(gpt2_set_precision(m, GPT2_BF16)); /* again: a no-op */
    Gpt2State *s;
    CHECK_OK(gpt2_state_create(&s, m, c->n_positions, 0));
    const unsigned need = GPT2_NEED_LAST_FFN_INPUT | GPT2_NEED_FINAL_HIDDEN;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids;
        int T;
        CHECK_OK(load_ids(cases[i], &ids, &T));
        CHECK_OK(gpt2_forward(s, ids, T, need));
        const char *what[2] = {"last_ffn_input", "final_hidden"};
        const Gpt2KeyType key[2] = {KEY_LAST_FFN_INPUT, KEY_FINAL_HIDDEN};
        for (int k = 0; k < 2; k++) {
            NpyArray ref;
            const float *r = ref_output(&ref, cases[i], what[k]);
            CHECK(r != NULL);
            if (!r) continue;
            double d = rel_diff(gpt2_state_output(s, key[k]), r, (size_t)T * C);
            CHECK_MSG(d < BF16_TOL, "bf16 %s %s: relative error %.3g", cases[i], what[k], d);
            CHECK_MSG(d > 1e-5, "bf16 %s %s: relative error %.3g: is bf16 really used?", cases[i], what[k], d);
            npy_unmap(&ref);
        }
        free(ids);
    }
    /* threads and emulation */
    int32_t *ids;
    int T;
    CHECK_OK(load_ids("case3", &ids, &T));
    float *out[3];
    int saved = omp_get_max_threads();
    for (int v = 0; v < 3; v++) {
        omp_set_num_threads(v == 0 ? 1 : 2);
        gemm_bf16_force_emulation(v == 2);
        CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
        out[v] = malloc((size_t)T * C * sizeof(float));
        memcpy(out[v], gpt2_state_output(s, KEY_FINAL_HIDDEN), (size_t)T * C * sizeof(float));
    }
    gemm_bf16_force_emulation(0);
    omp_set_num_threads(saved);
    CHECK(memcmp(out[0], out[1], (size_t)T * C * sizeof(float)) == 0);
    CHECK_MSG(memcmp(out[1], out[2], (size_t)T * C * sizeof(float)) == 0, "bf16 emulation differs from VDPBF16PS (native: %d)", gpt2_bf16_native());
    /* only the last rows: the same bits as the whole window */
    CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_LAST_FFN_INPUT));
    memcpy(out[0], gpt2_state_output(s, KEY_LAST_FFN_INPUT), (size_t)T * C * sizeof(float));
    CHECK_OK(gpt2_forward_rows(s, ids, T, 64, GPT2_NEED_LAST_FFN_INPUT));
    CHECK(memcmp(out[0] + (size_t)64 * C, gpt2_state_output(s, KEY_LAST_FFN_INPUT) + (size_t)64 * C, (size_t)(T - 64) * C * sizeof(float)) == 0);
    /* the lm_head in bf16: PyTorch's fp32 final hidden rows through it, against PyTorch's logits; really bf16
     * (not the fp32 product's bits); the same bits for 1 and 2 threads */
    {
        NpyArray hr, lr;
        const float *h = ref_output(&hr, "case3", "final_hidden"), *lt = ref_output(&lr, "case3", "logits_tail");
        CHECK(h && lt);
        if (h && lt) {
            const int rows = 4, V = c->vocab_size;
            float *lg[2] = {malloc((size_t)rows * V * sizeof(float)), malloc((size_t)rows * V * sizeof(float))};
            for (int v = 0; v < 2; v++) {
                omp_set_num_threads(v + 1);
                CHECK_OK(gpt2_logits(m, h + (size_t)(T - rows) * C, rows, lg[v]));
            }
            omp_set_num_threads(saved);
            const double d = rel_diff(lg[1], lt, (size_t)rows * V);
            CHECK_MSG(d < BF16_TOL && d > 1e-5, "bf16 lm_head: relative error %.3g of the largest reference logit", d);
            CHECK(memcmp(lg[0], lg[1], (size_t)rows * V * sizeof(float)) == 0);
            free(lg[0]), free(lg[1]);
        }
        if (h) npy_unmap(&hr);
        if (lt) npy_unmap(&lr);
    }
    /* back to fp32: the exact references */
    CHECK_OK(gpt2_set_precision(m, GPT2_FP32));
    CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
    check_against("fp32 after bf16", "case3", "final_hidden", gpt2_state_output(s, KEY_FINAL_HIDDEN), T, C, HIDDEN_TOL);
    for (int v = 0; v < 3; v++) free(out[v]);
    free(ids);
    gpt2_state_free(s);
    gpt2_free(m);
}

/* The profile counts only while it is on, and its parts add up to about the call's time. */
static void test_profile(void) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, REF "/model.safetensors"));
    int32_t *ids;
    int T;
    CHECK_OK(load_ids("case3", &ids, &T));
    Gpt2State *s;
    CHECK_OK(gpt2_state_create(&s, m, T, 0));
    CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
    Gpt2Profile p = gpt2_state_profile(s);
    CHECK(p.calls == 0 && p.matmul == 0 && p.attention == 0 && p.other == 0);
    gpt2_state_set_profiling(s, 1);
    double t0 = omp_get_wtime();
    CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
    CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
    double wall = omp_get_wtime() - t0;
    p = gpt2_state_profile(s);
    CHECK_EQ_INT(p.calls, 2);
    CHECK(p.matmul > 0 && p.attention > 0 && p.other > 0);
    CHECK(p.matmul + p.attention + p.other <= wall * 1.01);
    gpt2_state_set_profiling(s, 0);
    CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
    p = gpt2_state_profile(s);
    CHECK(p.calls == 0 && p.matmul == 0);
    gpt2_state_free(s);
    gpt2_free(m);
    free(ids);
}

/* Out-of-range ids and over-long windows are refused. */
static void test_bad_forward_input(void) {
    Gpt2 *m;
    CHECK_OK(gpt2_load(&m, REF, REF "/model.safetensors"));
    Gpt2State *s;
    CHECK(gpt2_state_create(&s, m, 129, 0) == KN_EINVAL); /* n_positions is 128 */
    CHECK_OK(gpt2_state_create(&s, m, 8, 0));
    int32_t ids[9] = {1, 2, 51200, 3};
    CHECK_EQ_INT(gpt2_forward(s, ids, 4, GPT2_NEED_FINAL_HIDDEN), KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "51200") != NULL);
    ids[2] = -1;
    CHECK_EQ_INT(gpt2_forward(s, ids, 4, GPT2_NEED_FINAL_HIDDEN), KN_EINVAL);
    ids[2] = 5;
    CHECK_EQ_INT(gpt2_forward(s, ids, 9, GPT2_NEED_FINAL_HIDDEN), KN_EINVAL);
    gpt2_state_free(s);
    gpt2_free(m);
}

/* A model folder in a temp dir: config.json text + a symlink to a weights file. */
static void make_model_dir(char *dir, const char *config, const char *weights) {
    strcpy(dir, "/tmp/knnlm-test-model-XXXXXX");
    if (!mkdtemp(dir)) return;
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    file_write_atomic(path, config, strlen(config));
    if (weights) {
        char target[1024];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!realpath(weights, target) || symlink(target, path) != 0) fprintf(stderr, "symlink failed\n");
    }
}

static void remove_model_dir(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

static void expect_load_error(const char *config, const char *weights, int code, const char *needle) {
    char dir[64];
    make_model_dir(dir, config, weights);
    Gpt2 *m = NULL;
    int rc = gpt2_load(&m, dir, NULL);
    CHECK_MSG(rc == code, "expected code %d, got %d (%s) for config %s", code, rc, kn_errmsg(), config);
    CHECK_MSG(strstr(kn_errmsg(), needle) != NULL, "message \"%s\" lacks \"%s\"", kn_errmsg(), needle);
    CHECK(m == NULL);
    gpt2_free(m);
    remove_model_dir(dir);
}

static void test_config_mismatch(void) {
    const char *w = REF "/model.safetensors";
    /* shape disagrees: the message names the tensor and the file */
    expect_load_error("{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_head\":4,\"n_embd\":32,\"n_positions\":128,\"vocab_size\":51200}", w, KN_EMISMATCH, "wte.weight");
    expect_load_error("{\"n_layer\":2,\"n_head\":4,\"n_embd\":64,\"n_positions\":128,\"vocab_size\":50257}", w, KN_EMISMATCH, "model.safetensors");
    /* more layers than the checkpoint has: a missing tensor */
    expect_load_error("{\"n_layer\":3,\"n_head\":4,\"n_embd\":64,\"n_positions\":128,\"vocab_size\":51200}", w, KN_EFORMAT, "h.2.ln_1.weight is missing");
    /* fewer: the checkpoint's extra layer is reported */
    expect_load_error("{\"n_layer\":1,\"n_head\":4,\"n_embd\":64,\"n_positions\":128,\"vocab_size\":51200}", w, KN_EMISMATCH, "n_layer 1");
    /* untied lm_head required but absent */
    expect_load_error("{\"n_layer\":2,\"n_head\":4,\"n_embd\":64,\"n_positions\":128,\"vocab_size\":51200,\"tie_word_embeddings\":false}", w, KN_EFORMAT, "lm_head.weight is missing");
    /* config.json itself */
    expect_load_error("{\"n_layer\":2,\"n_head\":3,\"n_embd\":64}", w, KN_EFORMAT, "not a multiple");
    expect_load_error("{\"model_type\":\"llama\"}", w, KN_EFORMAT, "llama");
    expect_load_error("{\"activation_function\":\"swish\"}", w, KN_EFORMAT, "swish");
    expect_load_error("{\"n_layer\":2.5}", w, KN_EFORMAT, "n_layer");
    expect_load_error("{\"n_layer\": 2,", w, KN_EFORMAT, "invalid JSON");
    expect_load_error("[]", w, KN_EFORMAT, "not a JSON object");
    /* no weights in the folder */
    expect_load_error("{}", NULL, KN_ENOTFOUND, "no model.safetensors");
}

/* A weights file whose tensor h.1.mlp.c_fc.weight holds `bad` at element 5 (found by its first 64 bytes). */
static void write_with_bad_value(const char *path, const char *from, const char *tensor, float bad) {
    FILE *f = fopen(from, "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    TensorFile *tf;
    CHECK_OK(tensorfile_open(&tf, from));
    const TensorInfo *t = tensorfile_find(tf, tensor);
    CHECK(t != NULL && t->dtype == DTYPE_F32);
    char *at = memmem(buf, (size_t)n, t->data, 64);
    CHECK(at != NULL);
    if (at) memcpy(at + 5 * sizeof(float), &bad, sizeof bad);
    tensorfile_close(tf);
    CHECK_OK(file_write_atomic(path, buf, (size_t)n));
    free(buf);
}

/* NaN or infinity in a weight: refused at load, naming the tensor and the file (it would give NaN logits). */
static void test_nonfinite_weights(void) {
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        char dir[64];
        make_model_dir(dir, "{\"n_layer\":2,\"n_head\":4,\"n_embd\":64,\"n_positions\":128,\"vocab_size\":51200}", NULL);
        char path[512];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_with_bad_value(path, REF "/model.safetensors", "transformer.h.1.mlp.c_fc.weight", bad[i]);
        Gpt2 *m = NULL;
        CHECK_EQ_INT(gpt2_load(&m, dir, NULL), KN_EFORMAT);
        CHECK_MSG(strstr(kn_errmsg(), "h.1.mlp.c_fc.weight") && strstr(kn_errmsg(), "element 5") && strstr(kn_errmsg(), "model.safetensors"),
                  "%s", kn_errmsg());
        CHECK(m == NULL);
        remove_model_dir(dir);
    }
}

static void test_missing_folder(void) {
    Gpt2 *m;
    CHECK_EQ_INT(gpt2_load(&m, "/nonexistent/model", NULL), KN_ENOTFOUND);
    CHECK(strstr(kn_errmsg(), "/nonexistent/model") != NULL);
}

int main(void) {
    RUN(test_safetensors_f32);
    RUN(test_pytorch_bin);
    RUN(test_safetensors_f16);
    RUN(test_find_weights);
    RUN(test_kv_cache_matches_batched);
    RUN(test_thread_count_independent);
    RUN(test_isa_same_bits);
    RUN(test_kv_cache_bit_identical);
    RUN(test_forward_rows);
    RUN(test_bf16_precision);
    RUN(test_profile);
    RUN(test_bad_forward_input);
    RUN(test_config_mismatch);
    RUN(test_nonfinite_weights);
    RUN(test_missing_folder);
    return TEST_EXIT();
}
