/* bench_forward.c — how fast gpt2_forward runs one window, against the bound of its matrix products in
 * OpenBLAS alone, measured in the same run.
 *
 *   build/release/bench/bench_forward MODEL_DIR [--threads N] [--repeats R] [--tokens T] [--check HIDDEN.npy]
 *
 * MODEL_DIR: a model folder (bench/make_random_model writes a KoGPT2-shaped one). The window's ids are
 * (t * 7919 + 375) % vocab, as in bench_torch.py. Every time is the best of R repeats. Prints:
 *   - tokens/s of one window: final hidden states only, and with the logits of every position (lm_head in
 *     chunks of LOGIT_CHUNK rows);
 *   - the sgemm bound: the same matrix products through cblas_sgemm alone (the four linear layers of every
 *     block; attention's Q K^T and P V products over the causal blocks a 64-row query tile sees, one head and
 *     tile per task as our attention does; the lm_head), and our time as a percentage of it;
 *   - where the time goes (gpt2_state_set_profiling);
 *   - incremental decoding at a context of 512 tokens with the KV cache, ms/token;
 *   - the datastore's case: the key only, and the key of the last T/2 rows only (gpt2_forward_rows);
 *   - peak memory (VmHWM) after one forward of the window, split in the file-backed weights and the rest;
 *   - then the same with GPT2_BF16: speed, decode, and the relative error of its keys against fp32's.
 *   - first of all, the machine's own bounds (bench/machine_bounds.h): the fp32 FMA peak, the bf16
 *     dot-product peak and the read bandwidth, and then every figure as a share of its bound: GFLOP/s of a
 *     window against the peak, ms per decoded token against the time to read the weights and the KV cache once.
 * --check compares the final hidden states with bench_torch.py --dump's. */
#include "model/gemm.h"
#include "model/gpt2.h"
#include "util/error.h"
#include "util/npy.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "machine_bounds.h"

enum { LOGIT_CHUNK = 128, ATT_TILE = 64 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_forward: %s: %s\n", what, kn_errmsg());
    exit(1);
}

/* kB of a /proc/self/status line such as "VmHWM:". */
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) v = atol(line + n);
    if (f) fclose(f);
    return v;
}

typedef struct {
    Gpt2 *m;
    Gpt2State *s;
    const int32_t *ids;
    int T;
    float *logits;
} Ctx;

static void run_hidden(Ctx *c) {
    if (gpt2_forward(c->s, c->ids, c->T, GPT2_NEED_FINAL_HIDDEN) != KN_OK) die("forward");
}

static void run_logits(Ctx *c) {
    run_hidden(c);
    const int C = gpt2_config(c->m)->n_embd;
    const float *h = gpt2_state_output(c->s, KEY_FINAL_HIDDEN);
    for (int r = 0; r < c->T; r += LOGIT_CHUNK)
        if (gpt2_logits(c->m, h + (size_t)r * C, c->T - r < LOGIT_CHUNK ? c->T - r : LOGIT_CHUNK, c->logits) != KN_OK) die("logits");
}

static void run_key(Ctx *c) {
    if (gpt2_forward(c->s, c->ids, c->T, GPT2_NEED_LAST_FFN_INPUT) != KN_OK) die("forward");
}

/* What the datastore build needs of a window after the first: the key of its last T/2 rows. */
static void run_key_rows(Ctx *c) {
    if (gpt2_forward_rows(c->s, c->ids, c->T, c->T / 2, GPT2_NEED_LAST_FFN_INPUT) != KN_OK) die("forward");
}

static double best_of(int repeats, void (*fn)(Ctx *), Ctx *c) {
    double best = INFINITY;
    for (int i = 0; i < repeats; i++) {
        double t0 = now();
        fn(c);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

/* The matrix products of one window through cblas_sgemm alone (see the header). Buffers are random: sgemm's
 * speed does not depend on the values. */
typedef struct {
    int T, C, FF, V, L, NH; /* FF: n_inner (not I: cblas.h includes complex.h) */
    float *a, *b, *out, *scratch;
} Bound;

static double bound_linear(const Bound *b) {
    double t0 = now();
    const int T = b->T, C = b->C, FF = b->FF;
    for (int l = 0; l < b->L; l++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, 3 * C, C, 1.0f, b->a, C, b->b, 3 * C, 0.0f, b->out, 3 * C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, C, 1.0f, b->a, C, b->b, C, 0.0f, b->out, C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, FF, C, 1.0f, b->a, C, b->b, FF, 0.0f, b->out, FF);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, FF, 1.0f, b->a, FF, b->b, C, 0.0f, b->out, C);
    }
    return now() - t0;
}

static double bound_attention(const Bound *b) {
    const int T = b->T, C = b->C, NH = b->NH, HS = C / NH, ntiles = (T + ATT_TILE - 1) / ATT_TILE;
    const float *q = b->a, *k = b->a + C, *v = b->a + 2 * C; /* rows of 3C, as qkv */
    double t0 = now();
    for (int l = 0; l < b->L; l++) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int task = 0; task < NH * ntiles; task++) {
            const int tile = ntiles - 1 - task / NH, h = task % NH, t0r = tile * ATT_TILE;
            const int m = T - t0r < ATT_TILE ? T - t0r : ATT_TILE, nk = t0r + m;
            float *S = b->scratch + (size_t)omp_get_thread_num() * ATT_TILE * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nk, HS, 1.0f, q + (size_t)t0r * 3 * C + h * HS, 3 * C, k + h * HS, 3 * C, 0.0f, S, nk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, nk, 1.0f, S, nk, v + h * HS, 3 * C, 0.0f, b->out + (size_t)t0r * C + h * HS, C);
        }
    }
    return now() - t0;
}

static double bound_lm_head(const Bound *b) {
    double t0 = now();
    for (int r = 0; r < b->T; r += LOGIT_CHUNK)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b->T - r < LOGIT_CHUNK ? b->T - r : LOGIT_CHUNK, b->V, b->C, 1.0f, b->a, b->C, b->b,
                    b->C, 0.0f, b->out, b->V);
    return now() - t0;
}

static double min_d(double a, double b) { return a < b ? a : b; }

enum { DECODE_STEPS = 32 };

/* The contexts decoding is measured at: 512 and the longest that leaves DECODE_STEPS positions (0: none). */
static const int *decode_contexts(const Gpt2Config *cfg) {
    static int ctx[2];
    ctx[0] = cfg->n_positions >= 512 + DECODE_STEPS ? 512 : 0;
    ctx[1] = cfg->n_positions - DECODE_STEPS > 512 ? cfg->n_positions - DECODE_STEPS : 0;
    return ctx;
}

/* ms per token of incremental decoding with the KV cache after a prefill of ctx tokens, best of `repeats`;
 * with logits, gpt2_logits of every decoded token too. */
static double decode_ms(Gpt2 *m, int ctx, int repeats, float *logits) {
    const Gpt2Config *cfg = gpt2_config(m);
    Gpt2State *d;
    if (gpt2_state_create(&d, m, cfg->n_positions, 1) != KN_OK) die("decode state");
    int32_t *ids = malloc((size_t)(ctx + DECODE_STEPS) * sizeof *ids);
    for (int t = 0; t < ctx + DECODE_STEPS; t++) ids[t] = (int32_t)(((int64_t)t * 7919 + 375) % cfg->vocab_size);
    double best = INFINITY;
    for (int r = 0; r < repeats; r++) {
        gpt2_state_reset(d);
        if (gpt2_forward(d, ids, ctx, GPT2_NEED_FINAL_HIDDEN) != KN_OK) die("prefill");
        const double t0 = now();
        for (int t = 0; t < DECODE_STEPS; t++) {
            if (gpt2_forward(d, ids + ctx + t, 1, GPT2_NEED_FINAL_HIDDEN) != KN_OK) die("decode");
            if (logits && gpt2_logits(m, gpt2_state_output(d, KEY_FINAL_HIDDEN), 1, logits) != KN_OK) die("logits");
        }
        best = min_d(best, (now() - t0) / DECODE_STEPS);
    }
    gpt2_state_free(d);
    free(ids);
    return best * 1e3;
}

/* Bytes one decoded token must read at least: every weight of the blocks once (bytes_per_weight), the KV
 * cache's keys and values of ctx positions in every layer (fp32), and with logits the fp32 lm_head. */
static double decode_bytes(const Gpt2Config *cfg, int ctx, int bytes_per_weight, int logits) {
    const double C = cfg->n_embd, FF = cfg->n_inner, L = cfg->n_layer;
    double b = L * (C * 3 * C + C * C + 2 * C * FF) * bytes_per_weight + L * 2.0 * ctx * C * 4;
    if (logits) b += (double)cfg->vocab_size * C * 4;
    return b;
}

static void print_decode(const char *what, int ctx, double ms, double bytes, const MachineBounds *mb) {
    const double bound = bytes / (mb->read_gbs * 1e9) * 1e3;
    printf("%s at context %d: %.2f ms/token; bound %.2f ms (%.0f MB at %.1f GB/s): %.0f%% of the bandwidth bound\n", what, ctx, ms, bound, bytes / 1e6,
           mb->read_gbs, 100 * bound / ms);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *check = NULL;
    int threads = 2, repeats = 3, T = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) T = atoi(argv[++i]);
        else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc) check = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "usage: %s MODEL_DIR [--threads N] [--repeats R] [--tokens T] [--check HIDDEN.npy]\n", argv[0]);
            return 2;
        }
    }
    if (!dir || threads < 1 || repeats < 1) {
        fprintf(stderr, "usage: %s MODEL_DIR [--threads N] [--repeats R] [--tokens T] [--check HIDDEN.npy]\n", argv[0]);
        return 2;
    }
    omp_set_num_threads(threads);

    /* The bounds first, on an idle process: the FMA loop in the registers the kernels use (KNNLM_ISA=avx2: ymm). */
    MachineBounds mb = machine_bounds(threads);
    if (strcmp(gemm_isa(), "avx2") == 0 && strcmp(mb.vector, "zmm") == 0) {
        mb.vector = "ymm";
        mb.fma_gflops = mb_peak(MB_FMA_YMM, threads);
    }
    printf("machine bounds (%d threads): fp32 FMA peak %.1f GFLOP/s (%s), bf16 dot-product peak %.1f GFLOP/s (VDPBF16PS), read bandwidth %.1f GB/s\n",
           threads, mb.fma_gflops, mb.vector, mb.bf16_gflops, mb.read_gbs);

    Ctx c = {0};
    if (gpt2_load(&c.m, dir, NULL) != KN_OK) die("load");
    const Gpt2Config *cfg = gpt2_config(c.m);
    const int C = cfg->n_embd, L = cfg->n_layer, V = cfg->vocab_size, FF = cfg->n_inner, NH = cfg->n_head;
    if (T <= 0 || T > cfg->n_positions) T = cfg->n_positions;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(((int64_t)t * 7919 + 375) % V);
    c.ids = ids;
    c.T = T;
    if (gpt2_state_create(&c.s, c.m, T, 0) != KN_OK) die("state");

    /* One forward first: its peak memory is what a datastore build holds (plus the key rows it writes). */
    run_key(&c);
    run_hidden(&c);
    long hwm = status_kb("VmHWM:"), file_kb = status_kb("RssFile:"), anon_kb = status_kb("RssAnon:");

    if (check) {
        NpyArray ref;
        if (npy_map(&ref, check) != KN_OK) die("--check");
        if (ref.dtype != NPY_F32 || ref.ndim != 2 || ref.shape[0] != T || ref.shape[1] != C) {
            fprintf(stderr, "%s: expected float32 [%d, %d]\n", check, T, C);
            return 1;
        }
        const float *h = gpt2_state_output(c.s, KEY_FINAL_HIDDEN), *r = ref.data;
        double worst = 0, scale = 0;
        for (size_t i = 0; i < (size_t)T * C; i++) {
            double d = fabs((double)h[i] - r[i]);
            worst = d > worst ? d : worst;
            scale = fabs(r[i]) > scale ? fabs(r[i]) : scale;
        }
        printf("check against %s: max |diff| %.3g (max |value| %.3g)\n", check, worst, scale);
        npy_unmap(&ref);
    }

    c.logits = malloc((size_t)LOGIT_CHUNK * V * sizeof(float));
    Bound b = {T, C, FF, V, L, NH, NULL, NULL, NULL, NULL};
    size_t big = (size_t)T * (FF > 3 * C ? FF : 3 * C);
    size_t wbig = (size_t)V * C > (size_t)C * FF ? (size_t)V * C : (size_t)C * FF;
    b.a = malloc(big * sizeof(float));
    b.b = malloc(wbig * sizeof(float));
    b.out = malloc(((size_t)LOGIT_CHUNK * V > big ? (size_t)LOGIT_CHUNK * V : big) * sizeof(float));
    b.scratch = malloc((size_t)omp_get_max_threads() * ATT_TILE * T * sizeof(float));
    for (size_t i = 0; i < big; i++) b.a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < wbig; i++) b.b[i] = (float)((i * 40503u) % 1000) * 1e-4f - 0.05f;
    bound_linear(&b); /* warm-up */

    /* Interleave ours and the bound's repeats so load from other processes hits both alike. */
    double t_hidden = INFINITY, t_logits = INFINITY, t_key = INFINITY, t_rows = INFINITY, b_lin = INFINITY, b_att = INFINITY, b_lm = INFINITY;
    for (int r = 0; r < repeats; r++) {
        t_hidden = min_d(t_hidden, best_of(1, run_hidden, &c));
        t_logits = min_d(t_logits, best_of(1, run_logits, &c));
        t_key = min_d(t_key, best_of(1, run_key, &c));
        t_rows = min_d(t_rows, best_of(1, run_key_rows, &c));
        b_lin = min_d(b_lin, bound_linear(&b));
        b_att = min_d(b_att, bound_attention(&b));
        b_lm = min_d(b_lm, bound_lm_head(&b));
    }
    const double flop_lin = 2.0 * T * L * ((double)C * 3 * C + (double)C * C + 2.0 * C * FF);
    double flop_att = 0;
    for (int t0 = 0; t0 < T; t0 += ATT_TILE) flop_att += 2.0 * 2.0 * (T - t0 < ATT_TILE ? T - t0 : ATT_TILE) * (t0 + (T - t0 < ATT_TILE ? T - t0 : ATT_TILE)) * C;
    flop_att *= L;
    const double flop_lm = 2.0 * T * (double)C * V;
    const double bound_hidden = b_lin + b_att, bound_logits = b_lin + b_att + b_lm;

    printf("model %s: %d layers, n_embd %d, %d heads, vocab %d; window %d tokens; %d threads; best of %d; %s kernels\n", dir, L, C, NH, V, T,
           omp_get_max_threads(), repeats, gemm_isa());
    printf("%-34s %10s %10s %12s %10s %10s\n", "", "tokens/s", "ms/window", "GFLOP/s", "% of bound", "% of peak");
    printf("%-34s %10.1f %10.1f %12.1f %10.1f %10.1f\n", "ours: hidden (ln_f output)", T / t_hidden, t_hidden * 1e3,
           (flop_lin + flop_att) / t_hidden / 1e9, 100 * bound_hidden / t_hidden, 100 * (flop_lin + flop_att) / t_hidden / 1e9 / mb.fma_gflops);
    printf("%-34s %10.1f %10.1f %12.1f %10.1f %10.1f\n", "ours: with logits (all rows)", T / t_logits, t_logits * 1e3,
           (flop_lin + flop_att + flop_lm) / t_logits / 1e9, 100 * bound_logits / t_logits,
           100 * (flop_lin + flop_att + flop_lm) / t_logits / 1e9 / mb.fma_gflops);
    printf("%-34s %10.1f %10.1f\n", "ours: key (last_ffn_input)", T / t_key, t_key * 1e3);
    printf("%-34s %10.1f %10.1f   (tokens/s of the %d emitted rows: %.1f)\n", "ours: key, last T/2 rows only", T / t_rows, t_rows * 1e3, T - T / 2,
           (T - T / 2) / t_rows);
    printf("%-34s %10.1f %10.1f %12.1f\n", "sgemm bound: hidden", T / bound_hidden, bound_hidden * 1e3, (flop_lin + flop_att) / bound_hidden / 1e9);
    printf("%-34s %10.1f %10.1f %12.1f\n", "sgemm bound: with logits", T / bound_logits, bound_logits * 1e3,
           (flop_lin + flop_att + flop_lm) / bound_logits / 1e9);
    printf("  bound parts: linear %.1f ms (%.1f GFLOP/s), attention QK^T+PV %.1f ms (%.1f GFLOP/s), lm_head %.1f ms (%.1f GFLOP/s)\n", b_lin * 1e3,
           flop_lin / b_lin / 1e9, b_att * 1e3, flop_att / b_att / 1e9, b_lm * 1e3, flop_lm / b_lm / 1e9);
    printf("  FLOPs per token: linear %.1f M, attention %.1f M (causal, 64-row tiles), lm_head %.1f M\n", flop_lin / T / 1e6, flop_att / T / 1e6,
           flop_lm / T / 1e6);

    /* Where the time goes: one more hidden-only forward with the state's timers on. */
    {
        double best = INFINITY;
        Gpt2Profile pr = {0};
        for (int r = 0; r < repeats; r++) {
            gpt2_state_set_profiling(c.s, 1);
            double t0 = now();
            run_hidden(&c);
            double t = now() - t0;
            if (t < best) {
                best = t;
                pr = gpt2_state_profile(c.s);
            }
        }
        gpt2_state_set_profiling(c.s, 0);
        const double rest = best - pr.matmul - pr.attention - pr.other;
        printf("profile (hidden, best of %d, %.1f ms): matmul %.1f ms (%.1f%%, %.1f GFLOP/s), attention %.1f ms (%.1f%%, %.1f GFLOP/s), "
               "layernorm+embedding %.1f ms (%.1f%%), untimed %.1f ms (%.1f%%)\n",
               repeats, best * 1e3, pr.matmul * 1e3, 100 * pr.matmul / best, flop_lin / pr.matmul / 1e9, pr.attention * 1e3, 100 * pr.attention / best,
               flop_att / pr.attention / 1e9, pr.other * 1e3, 100 * pr.other / best, rest * 1e3, 100 * rest / best);
    }

    /* Incremental decoding at two contexts. */
    for (int i = 0; i < 2; i++) {
        const int ctx = decode_contexts(cfg)[i];
        if (ctx <= 0) continue;
        const double h = decode_ms(c.m, ctx, repeats, NULL), l = decode_ms(c.m, ctx, repeats, c.logits);
        print_decode("decode fp32, hidden", ctx, h, decode_bytes(cfg, ctx, 4, 0), &mb);
        print_decode("decode fp32, with logits", ctx, l, decode_bytes(cfg, ctx, 4, 1), &mb);
    }
    printf("peak RSS after one forward of the window: %.1f MB (weights file pages %.1f MB, anonymous %.1f MB)\n", hwm / 1024.0, file_kb / 1024.0,
           anon_kb / 1024.0);

    free(b.a);
    free(b.b);
    free(b.out);
    free(b.scratch);

    /* bf16: the same window, and how far its keys are from fp32's. */
    {
        run_key(&c);
        float *k32 = malloc((size_t)T * C * sizeof(float)), *h32 = malloc((size_t)T * C * sizeof(float));
        memcpy(k32, gpt2_state_output(c.s, KEY_LAST_FFN_INPUT), (size_t)T * C * sizeof(float));
        run_hidden(&c);
        memcpy(h32, gpt2_state_output(c.s, KEY_FINAL_HIDDEN), (size_t)T * C * sizeof(float));
        double t0 = now();
        if (gpt2_set_precision(c.m, GPT2_BF16) != KN_OK) die("bf16");
        const double t_pack = now() - t0;
        double b_hidden = INFINITY, b_key = INFINITY, b_rows = INFINITY, b_logits = INFINITY;
        for (int r = 0; r < repeats; r++) {
            b_hidden = min_d(b_hidden, best_of(1, run_hidden, &c));
            b_logits = min_d(b_logits, best_of(1, run_logits, &c));
            b_key = min_d(b_key, best_of(1, run_key, &c));
            b_rows = min_d(b_rows, best_of(1, run_key_rows, &c));
        }
        {
            double best = INFINITY;
            Gpt2Profile pr = {0};
            for (int r = 0; r < repeats; r++) {
                gpt2_state_set_profiling(c.s, 1);
                double t1 = now();
                run_hidden(&c);
                double t = now() - t1;
                if (t < best) {
                    best = t;
                    pr = gpt2_state_profile(c.s);
                }
            }
            gpt2_state_set_profiling(c.s, 0);
            printf("bf16 profile (hidden, %.1f ms): matmul %.1f ms (%.1f%%, %.1f GFLOP/s), attention %.1f ms (%.1f%%), layernorm+embedding %.1f ms "
                   "(%.1f%%)\n",
                   best * 1e3, pr.matmul * 1e3, 100 * pr.matmul / best, flop_lin / pr.matmul / 1e9, pr.attention * 1e3, 100 * pr.attention / best,
                   pr.other * 1e3, 100 * pr.other / best);
        }
        run_key(&c);
        const float *kb = gpt2_state_output(c.s, KEY_LAST_FFN_INPUT);
        double max_abs = 0, max_val = 0, rel_sum = 0, rel_max = 0;
        for (int t = 0; t < T; t++) {
            double d2 = 0, n2 = 0;
            for (int i = 0; i < C; i++) {
                const double a = k32[(size_t)t * C + i], d = kb[(size_t)t * C + i] - a;
                d2 += d * d;
                n2 += a * a;
                max_abs = fabs(d) > max_abs ? fabs(d) : max_abs;
                max_val = fabs(a) > max_val ? fabs(a) : max_val;
            }
            const double rel = sqrt(d2 / n2);
            rel_sum += rel;
            rel_max = rel > rel_max ? rel : rel_max;
        }
        printf("bf16 (%s VDPBF16PS; packing %.0f ms):\n", gpt2_bf16_native() ? "native" : "emulated", t_pack * 1e3);
        const double bf16_peak = gpt2_bf16_native() ? mb.bf16_gflops : mb.fma_gflops; /* emulated: fp32 FMAs */
        printf("%-34s %10.1f %10.1f %12.1f %10s %10.1f\n", "bf16: hidden (ln_f output)", T / b_hidden, b_hidden * 1e3,
               (flop_lin + flop_att) / b_hidden / 1e9, "", 100 * (flop_lin + flop_att) / b_hidden / 1e9 / bf16_peak);
        printf("%-34s %10.1f %10.1f\n", "bf16: with logits (lm_head bf16)", T / b_logits, b_logits * 1e3);
        printf("%-34s %10.1f %10.1f\n", "bf16: key (last_ffn_input)", T / b_key, b_key * 1e3);
        printf("%-34s %10.1f %10.1f   (tokens/s of the %d emitted rows: %.1f)\n", "bf16: key, last T/2 rows only", T / b_rows, b_rows * 1e3, T - T / 2,
               (T - T / 2) / b_rows);
        printf("bf16 keys vs fp32 keys: relative L2 error per key mean %.4f max %.4f; max |diff| %.4g (max |value| %.4g)\n", rel_sum / T, rel_max,
               max_abs, max_val);
        run_hidden(&c);
        const float *hb = gpt2_state_output(c.s, KEY_FINAL_HIDDEN);
        double hs = 0;
        for (int t = 0; t < T; t++) {
            double d2 = 0, n2 = 0;
            for (int i = 0; i < C; i++) {
                const double a = h32[(size_t)t * C + i], d = hb[(size_t)t * C + i] - a;
                d2 += d * d;
                n2 += a * a;
            }
            hs += sqrt(d2 / n2);
        }
        printf("bf16 final hidden vs fp32: relative L2 error per row mean %.4f\n", hs / T);
        for (int i = 0; i < 2; i++) {
            const int ctx = decode_contexts(cfg)[i];
            if (ctx > 0) print_decode("decode bf16, hidden", ctx, decode_ms(c.m, ctx, repeats, NULL), decode_bytes(cfg, ctx, 2, 0), &mb);
        }
        printf("RSS now (bf16 packed): %.1f MB (file pages %.1f MB, anonymous %.1f MB = packed weights %.1f MB + the state and this benchmark's "
               "buffers)\n",
               status_kb("VmRSS:") / 1024.0, status_kb("RssFile:") / 1024.0, status_kb("RssAnon:") / 1024.0,
               (double)L * 2 * ((double)C * 3 * C + (double)C * C + 2.0 * C * FF) / 1048576.0);
        free(k32);
        free(h32);
    }

    free(c.logits);
    free(ids);
    gpt2_state_free(c.s);
    gpt2_free(c.m);
    return 0;
}
