/* test_generate.c — generation against our own batched forward pass (no PyTorch): greedy decoding with the KV
 * cache picks, token after token, the argmax of a full forward of the growing text (also across window slides);
 * with λ = 1 and one neighbour it picks the brute-force nearest key's value; sampling is deterministic for a
 * seed whatever the thread count and from concurrent threads, differs between seeds, and top-k 1 / a tiny
 * top-p equal greedy; the callback can stop it; the streamed text equals tokenizers' decode; bad options are
 * refused naming the flag. Model: tests/data/tiny-random (n_positions 128, so that the window slides soon). */
#include "dstore_fixture.h"
#include "knnlm/generate.h"
#include "util/error.h"
#include "test.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "tests/data/tiny-random"
enum { MAXGEN = 200 };

static Gpt2 *model;
static Tokenizer *tk;
static char dir[64];

typedef struct {
    int n;
    int32_t tokens[MAXGEN];
    double lm_log_prob[MAXGEN];
    int64_t position[MAXGEN];
    int last[MAXGEN];
    int32_t nearest_val[MAXGEN]; /* with a datastore: the value of the brute-force nearest key of the query */
    int in_vals[MAXGEN];         /* the token is one of the neighbours' values */
    char text[4096];
    size_t text_len;
    int stop_at;                 /* > 0: return 5 from the callback at this index */
    const Dstore *ds;
    const float *keys;
} Run;

static int collect(void *ctx, const GeneratedToken *t) {
    Run *r = ctx;
    if (r->n < MAXGEN) {
        r->tokens[r->n] = t->token;
        r->lm_log_prob[r->n] = t->scored.lm_log_prob;
        r->position[r->n] = t->scored.position;
        r->last[r->n] = t->last;
        r->in_vals[r->n] = 0;
        for (int j = 0; j < t->scored.k; j++) r->in_vals[r->n] |= t->scored.vals[j] == t->token;
        if (r->keys) {
            const int D = dstore_dim(r->ds);
            double best = INFINITY;
            for (int64_t row = 0; row < dstore_size(r->ds); row++) {
                double s = 0;
                for (int i = 0; i < D; i++) {
                    double d = (double)t->scored.query[i] - (double)r->keys[row * D + i];
                    s += d * d;
                }
                if (s < best) best = s, r->nearest_val[r->n] = dstore_value(r->ds, row);
            }
        }
    }
    if (t->text && r->text_len + t->text_len < sizeof r->text) {
        memcpy(r->text + r->text_len, t->text, t->text_len);
        r->text_len += t->text_len;
        r->text[r->text_len] = '\0';
    }
    r->n++;
    return r->stop_at > 0 && t->index == r->stop_at ? 5 : 0;
}

/* A prompt of n kowiki-like ids (fixed, not meaningful). */
static void make_prompt(int32_t *p, int n) {
    for (int i = 0; i < n; i++) p[i] = (int32_t)((i * 7919 + 375) % 51200);
}

/* The argmax of the logits of the last row of a fresh (cache-less) forward of seq[0..n). */
static int32_t full_forward_argmax(const int32_t *seq, int n, double *log_p_top) {
    const Gpt2Config *c = gpt2_config(model);
    Gpt2State *st;
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    if (gpt2_state_create(&st, model, n, 0) != KN_OK || !logits || gpt2_forward(st, seq, n, GPT2_NEED_FINAL_HIDDEN) != KN_OK ||
        gpt2_logits(model, gpt2_state_output(st, KEY_FINAL_HIDDEN) + (size_t)(n - 1) * c->n_embd, 1, logits) != KN_OK) {
        fprintf(stderr, "full forward of %d tokens: %s\n", n, kn_errmsg());
        abort();
    }
    int32_t top;
    *log_p_top = lm_log_prob(logits, c->vocab_size, 0, &top);
    *log_p_top = lm_log_prob(logits, c->vocab_size, top, NULL);
    gpt2_state_free(st);
    free(logits);
    return top;
}

/* Greedy LM-only decoding equals, for each token, the argmax of a full forward over the window the generator
 * says it holds: the whole text until it reaches n_positions, then (after each slide) its last `keep` tokens
 * plus what followed. A prompt longer than the window starts with its last n_positions tokens. */
static void check_greedy(int n_prompt, int n_new, int keep) {
    const int maxT = gpt2_config(model)->n_positions;
    int32_t seq[600];
    make_prompt(seq, n_prompt);
    GenerateOptions o;
    generate_defaults(&o);
    o.temperature = 0;
    o.max_new_tokens = n_new;
    o.window_keep = keep;
    Run r = {0};
    GenerateStats st;
    CHECK_OK(generate(model, NULL, seq, n_prompt, &o, collect, &r, &st));
    CHECK_EQ_INT(r.n, n_new);
    CHECK_EQ_INT(st.generated, n_new);
    CHECK_EQ_INT(st.stop, GENERATE_STOP_LENGTH);
    CHECK(r.last[n_new - 1] && !r.last[0]);
    int start = n_prompt > maxT ? n_prompt - maxT : 0, len = n_prompt, mismatches = 0, slides = 0;
    double worst = 0;
    for (int i = 0; i < n_new; i++) {
        double lp;
        int32_t want = full_forward_argmax(seq + start, len - start, &lp);
        mismatches += want != r.tokens[i];
        CHECK_EQ_INT(r.position[i], len - 1);
        if (fabs(lp - r.lm_log_prob[i]) > worst) worst = fabs(lp - r.lm_log_prob[i]);
        seq[len++] = r.tokens[i];
        if (len - 1 - start == maxT) start = len - (keep ? keep : maxT / 2), slides++;
    }
    CHECK_MSG(mismatches == 0, "prompt %d, %d new: %d tokens differ from the full forward's argmax", n_prompt, n_new, mismatches);
    CHECK_MSG(worst < 1e-4, "log p_LM differs from the full forward's by %g", worst);
    CHECK_EQ_INT(st.slides, slides);
}

static void test_greedy_equals_full_forward(void) {
    check_greedy(5, 30, 0);
    check_greedy(1, 3, 0);
}

static void test_window_slides(void) {
    /* n_positions 128: 100 + 60 tokens slide once at keep 64 (the cache holds 64 after it), twice at keep 100 */
    check_greedy(100, 60, 64);
    check_greedy(100, 60, 100);
    check_greedy(300, 20, 0); /* a prompt longer than the window */
}

static void generate_sampled(Run *r, uint64_t seed, int top_k, double top_p, double temperature, int threads) {
    int32_t prompt[8];
    make_prompt(prompt, 8);
    GenerateOptions o;
    generate_defaults(&o);
    o.max_new_tokens = 24;
    o.seed = seed;
    o.top_k = top_k;
    o.top_p = top_p;
    o.temperature = temperature;
    memset(r, 0, sizeof *r);
    int saved = omp_get_max_threads();
    if (threads) omp_set_num_threads(threads);
    int rc = generate(model, tk, prompt, 8, &o, collect, r, NULL);
    omp_set_num_threads(saved);
    CHECK_MSG(rc == KN_OK, "%s", kn_errmsg());
}

static int same_tokens(const Run *a, const Run *b) { return a->n == b->n && memcmp(a->tokens, b->tokens, (size_t)a->n * sizeof a->tokens[0]) == 0; }

static void test_sampling(void) {
    static Run a, b, c, g;
    generate_sampled(&a, 42, 0, 1, 1, 1);
    generate_sampled(&b, 42, 0, 1, 1, 2);
    CHECK_MSG(same_tokens(&a, &b), "seed 42 gave other tokens with 2 threads than with 1");
    CHECK_STR(a.text, b.text);
    generate_sampled(&c, 43, 0, 1, 1, 0);
    CHECK_MSG(!same_tokens(&a, &c), "seeds 42 and 43 gave the same 24 tokens");
    /* top-k 1 and a tiny top-p keep only the most probable token: greedy, whatever the seed and τ */
    generate_sampled(&g, 0, 0, 1, 0, 0);
    generate_sampled(&c, 7, 1, 1, 1, 0);
    CHECK_MSG(same_tokens(&g, &c), "top-k 1 differs from greedy");
    generate_sampled(&c, 8, 0, 1e-9, 2.5, 0);
    CHECK_MSG(same_tokens(&g, &c), "top-p 1e-9 differs from greedy");
    /* a top-k 5 draw is among the 5 most probable tokens (a full forward's ranks), and it does vary */
    generate_sampled(&c, 9, 5, 1, 1, 0);
    int32_t seq[64];
    make_prompt(seq, 8);
    memcpy(seq + 8, c.tokens, 10 * sizeof seq[0]);
    int outside = 0;
    for (int i = 0; i < 10; i++) {
        const Gpt2Config *cf = gpt2_config(model);
        Gpt2State *st;
        float *logits = malloc((size_t)cf->vocab_size * sizeof *logits);
        CHECK_OK(gpt2_state_create(&st, model, 8 + i, 0));
        CHECK_OK(gpt2_forward(st, seq, 8 + i, GPT2_NEED_FINAL_HIDDEN));
        CHECK_OK(gpt2_logits(model, gpt2_state_output(st, KEY_FINAL_HIDDEN) + (size_t)(8 + i - 1) * cf->n_embd, 1, logits));
        int above = 0;
        for (int y = 0; y < cf->vocab_size; y++) above += logits[y] > logits[c.tokens[i]];
        outside += above >= 5;
        gpt2_state_free(st);
        free(logits);
    }
    CHECK_EQ_INT(outside, 0);
    CHECK_MSG(!same_tokens(&g, &c), "top-k 5 sampling gave the greedy text");
}

typedef struct {
    Run run;
    uint64_t seed;
} ThreadJob;

static void *thread_generate(void *p) {
    ThreadJob *j = p;
    int32_t prompt[8];
    make_prompt(prompt, 8);
    GenerateOptions o;
    generate_defaults(&o);
    o.max_new_tokens = 24;
    o.seed = j->seed;
    o.top_p = 0.95;
    if (generate(model, tk, prompt, 8, &o, collect, &j->run, NULL) != KN_OK) j->run.n = -1;
    return NULL;
}

/* Several calls at once on one model: each gives what it gives alone. */
static void test_concurrent(void) {
    static ThreadJob jobs[3];
    static Run alone[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].seed = 100 + (uint64_t)i;
        pthread_create(&th[i], NULL, thread_generate, &jobs[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        ThreadJob j = {0};
        j.seed = 100 + (uint64_t)i;
        thread_generate(&j);
        alone[i] = j.run;
        CHECK_MSG(same_tokens(&jobs[i].run, &alone[i]), "thread %d: concurrent generation differs from a lone one", i);
    }
}

/* The streamed pieces add up to tokenizers' decode of prompt + generated, less the prompt's own text. */
static void test_text_stream(void) {
    int32_t ids[64];
    int n = 0, n_prompt = 0;
    /* words, a word in two pieces (서울 + 이다), a special token in the middle, a word after it */
    const char *parts[] = {"대한민국의 수도는", " 서울이다.", "</s>", "그리고"};
    for (int p = 0; p < 4; p++) {
        IdVec enc = {0};
        CHECK_OK(tokenizer_encode(tk, parts[p], strlen(parts[p]), 0, &enc));
        for (size_t i = 0; i < enc.len; i++) ids[n++] = enc.data[i];
        idvec_free(&enc);
        if (p == 0) n_prompt = n;
    }
    CHECK(n - n_prompt >= 4);
    for (int ctx = 0; ctx <= n_prompt; ctx += n_prompt) {
        TextStream *s;
        CHECK_OK(text_stream_create(&s, tk, ids, ctx));
        char got[512] = "";
        size_t glen = 0;
        for (int i = ctx; i < n; i++) {
            const char *piece;
            size_t len;
            CHECK_OK(text_stream_push(s, ids[i], &piece, &len));
            memcpy(got + glen, piece, len);
            glen += len;
        }
        const char *piece;
        size_t len;
        CHECK_OK(text_stream_flush(s, &piece, &len));
        CHECK_EQ_INT(len, 0);
        got[glen] = '\0';
        char *all, *head;
        CHECK_OK(tokenizer_decode(tk, ids, (size_t)n, 1, &all));
        CHECK_OK(tokenizer_decode(tk, ids, (size_t)ctx, 1, &head));
        CHECK_STR(got, all + strlen(head));
        CHECK_STR(got, ctx ? " 서울이다. 그리고" : "대한민국의 수도는 서울이다. 그리고");
        free(all);
        free(head);
        text_stream_free(s);
    }
}

static void test_callback_stops(void) {
    int32_t prompt[4];
    make_prompt(prompt, 4);
    GenerateOptions o;
    generate_defaults(&o);
    o.max_new_tokens = 20;
    Run r = {0};
    r.stop_at = 3;
    GenerateStats st;
    CHECK_EQ_INT(generate(model, NULL, prompt, 4, &o, collect, &r, &st), 5);
    CHECK_EQ_INT(r.n, 4);
    CHECK_EQ_INT(st.stop, GENERATE_STOP_CALLER);
    /* eos: a greedy run stops at the token chosen as eos, which is passed on */
    Run g = {0};
    o.temperature = 0;
    CHECK_OK(generate(model, NULL, prompt, 4, &o, collect, &g, &st));
    Run e = {0};
    o.eos_id = g.tokens[2];
    int first = 0;
    while (g.tokens[first] != o.eos_id) first++;
    CHECK_OK(generate(model, NULL, prompt, 4, &o, collect, &e, &st));
    CHECK_EQ_INT(e.n, first + 1);
    CHECK_EQ_INT(st.stop, GENERATE_STOP_EOS);
    CHECK(e.last[first]);
    o.max_new_tokens = 0;
    Run z = {0};
    CHECK_OK(generate(model, NULL, prompt, 4, &o, collect, &z, &st));
    CHECK_EQ_INT(z.n, 0);
}

static void expect_einval(const GenerateOptions *o, const int32_t *prompt, int n, const char *flag) {
    Run r = {0};
    int rc = generate(model, NULL, prompt, n, o, collect, &r, NULL);
    CHECK_EQ_INT(rc, KN_EINVAL);
    CHECK_MSG(strstr(kn_errmsg(), flag) != NULL, "expected a message naming %s: %s", flag, kn_errmsg());
    CHECK_EQ_INT(r.n, 0);
}

static void test_bad_options(const KnnIndex *ix, const Dstore *ds) {
    int32_t prompt[4] = {10, 20, 30, 40}, bad[2] = {10, 51200};
    GenerateOptions o;
#define BAD(field, value, flag)   \
    generate_defaults(&o);        \
    o.index = ix;                 \
    o.dstore = ds;                \
    o.field = value;              \
    expect_einval(&o, prompt, 4, flag)
    BAD(max_new_tokens, -1, "--max-new-tokens");
    BAD(temperature, -0.5, "--temperature");
    BAD(temperature, NAN, "--temperature");
    BAD(top_k, -2, "--top-k");
    BAD(top_p, 0, "--top-p");
    BAD(top_p, 1.5, "--top-p");
    BAD(lambda, 1.01, "--lambda");
    BAD(knn_temperature, 0, "--knn-temperature");
    BAD(k, 0, "--k");
    BAD(k, (int)dstore_size(ds) + 1, "--k");
    BAD(window_keep, 128, "window_keep");
#undef BAD
    generate_defaults(&o);
    expect_einval(&o, prompt, 0, "prompt");
    expect_einval(&o, bad, 2, "outside the vocabulary");
    o.index = ix;
    o.dstore = ds;
    o.key = KEY_FINAL_HIDDEN;
    Run r = {0};
    CHECK_EQ_INT(generate(model, NULL, prompt, 4, &o, collect, &r, NULL), KN_EMISMATCH);
}

/* λ = 1, k = 1, greedy: every token is the value of the key nearest its query (brute force over the
 * datastore). λ = 1 sampled: every token is one of its neighbours' values. */
static void test_knn_side(void) {
    char path[128];
    Dstore *ds;
    KnnIndex *ix;
    snprintf(path, sizeof path, "%s/ds", dir);
    CHECK_OK(dstore_open(&ds, path));
    snprintf(path, sizeof path, "%s/flat.faiss", dir);
    CHECK_OK(dstore_index_open(&ix, path, ds));
    const int64_t N = dstore_size(ds);
    float *keys = malloc((size_t)N * dstore_dim(ds) * sizeof *keys);
    dstore_keys(ds, 0, N, keys);
    int32_t prompt[6];
    make_prompt(prompt, 6);
    GenerateOptions o;
    generate_defaults(&o);
    o.index = ix;
    o.dstore = ds;
    o.k = 1;
    o.lambda = 1;
    o.temperature = 0;
    o.exact_distances = 1;
    o.max_new_tokens = 25;
    static Run r;
    memset(&r, 0, sizeof r);
    r.ds = ds;
    r.keys = keys;
    GenerateStats st;
    int rc = generate(model, NULL, prompt, 6, &o, collect, &r, &st);
    CHECK_MSG(rc == KN_OK, "%s", kn_errmsg());
    int wrong = 0;
    for (int i = 0; i < r.n; i++) wrong += r.tokens[i] != r.nearest_val[i];
    CHECK_EQ_INT(r.n, 25);
    CHECK_EQ_INT(wrong, 0);
    CHECK(st.search > 0);
    /* and that is not what the LM alone says */
    Run lm = {0};
    o.lambda = 0;
    CHECK_OK(generate(model, NULL, prompt, 6, &o, collect, &lm, NULL));
    CHECK(!same_tokens(&r, &lm));
    o.lambda = 1;
    o.k = 8;
    o.temperature = 1;
    o.seed = 3;
    memset(&r, 0, sizeof r);
    CHECK_OK(generate(model, NULL, prompt, 6, &o, collect, &r, NULL));
    int outside = 0;
    for (int i = 0; i < r.n; i++) outside += !r.in_vals[i];
    CHECK_EQ_INT(outside, 0);
    test_bad_options(ix, ds);
    free(keys);
    index_free(ix);
    dstore_close(ds);
}

static int build_datastore(void) {
    strcpy(dir, "/tmp/knnlm-test-gen-XXXXXX");
    if (!mkdtemp(dir)) return KN_EIO;
    return fixture_dstore(dir, MODEL, 2000, NULL);
}

int main(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", MODEL);
    if (gpt2_load(&model, MODEL, NULL) != KN_OK || tokenizer_load(&tk, path) != KN_OK || build_datastore() != KN_OK) {
        fprintf(stderr, "setup: %s\n", kn_errmsg());
        return 1;
    }
    RUN(test_greedy_equals_full_forward);
    RUN(test_window_slides);
    RUN(test_sampling);
    RUN(test_concurrent);
    RUN(test_text_stream);
    RUN(test_callback_stops);
    RUN(test_knn_side);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    tokenizer_free(tk);
    gpt2_free(model);
    return TEST_EXIT();
}
