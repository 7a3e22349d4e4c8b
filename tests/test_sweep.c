/* test_sweep.c — the one-pass λ/k/T perplexity sweep (sweep.h): grid parsing, accumulation against numpy
 * and against a direct recomputation, exact merging, and the table, CSV and JSON writers.
 *
 * The three-token sweep of test_sweep_matches_numpy was computed with numpy 1.24 (float64):
 *
 *   import numpy as np
 *   def knn_logp(d, v, label, T=1.0):
 *       s = -np.asarray(d, dtype=np.float64) / T; v = np.asarray(v)
 *       lse = np.logaddexp.reduce(s); m = v == label
 *       return np.logaddexp.reduce(s[m]) - lse if m.any() else -np.inf
 *   toks = [(np.log(0.5), [1,2,3], [7,7,9], 7), (np.log(0.25), [0.5,1.5,4], [3,4,4], 4),
 *           (np.log(0.125), [2,2.5,3], [1,2,3], 3)]
 *   for k in (1, 3):
 *     for lam in (0, 0.25, 1):
 *       tot = 0
 *       for lp, d, v, lab in toks:
 *         lk = knn_logp(d[:k], v[:k], lab)
 *         p = lp if lam == 0 else lk if lam == 1 else np.logaddexp(np.log(lam) + lk, np.log1p(-lam) + lp)
 *         tot -= p
 *       print(k, lam, np.exp(tot / 3))
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <unistd.h>

#include "knnlm/knn.h"
#include "knnlm/sweep.h"
#include "test.h"
#include "util/error.h"
#include "util/file.h"

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ------------------------------------------------------------------ sweep.h: grids */

static void test_grid_parsing(void) {
    double *v;
    int n;
    CHECK_OK(sweep_parse_lambdas("0:1:0.05", "--lambda", &v, &n));
    CHECK_EQ_INT(n, 21);
    CHECK(v[0] == 0.0);
    CHECK(v[20] == 1.0);
    CHECK(v[3] == 0.15);  /* the double "0.15" parses to, not 3 * 0.05 = 0.15000000000000002 */
    CHECK(v[7] == 0.35);
    CHECK(v[10] == 0.5);
    for (int i = 1; i < n; i++)
        CHECK(v[i] > v[i - 1]);
    free(v);

    CHECK_OK(sweep_parse_lambdas(" 0.25 , 0, 0.1", "--lambda", &v, &n));
    CHECK_EQ_INT(n, 3);
    CHECK(v[0] == 0.0 && v[1] == 0.1 && v[2] == 0.25); /* sorted */
    free(v);
    CHECK_OK(sweep_parse_lambdas("0:1:0.3", "--lambda", &v, &n)); /* 1 is not on the grid: 0 .3 .6 .9 */
    CHECK_EQ_INT(n, 4);
    CHECK(v[3] == 0.9);
    free(v);
    CHECK_OK(sweep_parse_lambdas("0.5", "--lambda", &v, &n));
    CHECK(n == 1 && v[0] == 0.5);
    free(v);
    CHECK_OK(sweep_parse_lambdas("-0,1", "--lambda", &v, &n)); /* -0 is 0, printed "0" */
    CHECK(n == 2 && v[0] == 0 && !signbit(v[0]));
    free(v);

    static const char *const bad[] = {"", "0:1:0", "0:1:-0.1", "1:0:0.1", "0:1.5:0.5", "-0.1", "1.01", "a",
                                      "0:1", "0:1:0.1:2", "0,,1", "0.1,0.1", "0:1:1e-9", "nan", "0,inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = (double *)1;
        int rc = sweep_parse_lambdas(bad[i], "--lambda", &v, &n);
        CHECK_MSG(rc == KN_EINVAL, "\"%s\" gave %d", bad[i], rc);
        CHECK_MSG(strncmp(kn_errmsg(), "--lambda: ", 10) == 0, "\"%s\": %s", bad[i], kn_errmsg());
        CHECK(v == NULL && n == 0);
    }

    int *ks;
    CHECK_OK(sweep_parse_ks("1024,8,16", "--k", &ks, &n));
    CHECK(n == 3 && ks[0] == 8 && ks[1] == 16 && ks[2] == 1024);
    free(ks);
    CHECK_OK(sweep_parse_ks("8:64:8", "--k", &ks, &n));
    CHECK(n == 8 && ks[0] == 8 && ks[7] == 64);
    free(ks);
    static const char *const bad_k[] = {"0", "2.5", "-1", "8,8", "1e12"};
    for (size_t i = 0; i < sizeof bad_k / sizeof bad_k[0]; i++) {
        CHECK_MSG(sweep_parse_ks(bad_k[i], "--k", &ks, &n) == KN_EINVAL, "\"%s\"", bad_k[i]);
        CHECK(strncmp(kn_errmsg(), "--k: ", 5) == 0);
    }

    CHECK_OK(sweep_parse_temperatures("0.5:2:0.5", "--temperature", &v, &n));
    CHECK(n == 4 && v[0] == 0.5 && v[3] == 2.0);
    free(v);
    CHECK(sweep_parse_temperatures("0,1", "--temperature", &v, &n) == KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "--temperature") != NULL);
}

/* ------------------------------------------------------------------ sweep.h: accumulation */

static void test_create_rejects_bad_config(void) {
    double lam[] = {0, 0.5}, bad_lam[] = {0, 1.5}, t[] = {1}, dup_t[] = {1, 1};
    int ks[] = {8, 16};
    Sweep *s;
    SweepConfig c = {lam, 2, ks, 2, t, 1, KNN_DIST_L2SQ, 16};
    CHECK_OK(sweep_create(&s, &c));
    sweep_free(s);
    SweepConfig c1 = c;
    c1.lambdas = bad_lam;
    CHECK(sweep_create(&s, &c1) == KN_EINVAL && s == NULL);
    CHECK(strstr(kn_errmsg(), "lambda 1.5") != NULL);
    SweepConfig c2 = c;
    c2.k_searched = 8;
    CHECK(sweep_create(&s, &c2) == KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "k 16 exceeds the 8 neighbours searched") != NULL);
    SweepConfig c3 = c;
    c3.temperatures = dup_t;
    c3.n_temperatures = 2;
    CHECK(sweep_create(&s, &c3) == KN_EINVAL);
    SweepConfig c4 = c;
    c4.n_lambdas = 0;
    CHECK(sweep_create(&s, &c4) == KN_EINVAL);
}

/* Three tokens (log p_LM, neighbours, label) whose sweep numpy computed (see the top of the file):
 *   ppl(k=1, λ=0) = 4.0 (= 1/(0.5·0.25·0.125)^(1/3)), ppl(k=1, λ=0.25) = 4.498307548275995, ppl(k=1, λ=1) = inf
 *   ppl(k=3, λ=0) = 4.0, ppl(k=3, λ=0.25) = 3.5758209110405272, ppl(k=3, λ=1) = 2.7463532377267916 */
static const float TINY_D[3][3] = {{1, 2, 3}, {0.5f, 1.5f, 4}, {2, 2.5f, 3}};
static const int32_t TINY_V[3][3] = {{7, 7, 9}, {3, 4, 4}, {1, 2, 3}};
static const int32_t TINY_LABEL[3] = {7, 4, 3};
static const double TINY_P_LM[3] = {0.5, 0.25, 0.125};

static int tiny_sweep(Sweep **out) {
    static const double lam[] = {1, 0, 0.25}; /* unsorted on purpose: the sweep sorts */
    static const int ks[] = {3, 1};
    static const double t[] = {1};
    SweepConfig c = {lam, 3, ks, 2, t, 1, KNN_DIST_L2SQ, 3};
    int rc = sweep_create(out, &c);
    for (int i = 0; rc == KN_OK && i < 3; i++)
        rc = sweep_add_token(*out, log(TINY_P_LM[i]), TINY_D[i], TINY_V[i], 3, TINY_LABEL[i]);
    return rc;
}

static void test_sweep_matches_numpy(void) {
    Sweep *s;
    CHECK_OK(tiny_sweep(&s));
    const SweepConfig *c = sweep_config(s);
    CHECK(c->lambdas[0] == 0 && c->lambdas[1] == 0.25 && c->lambdas[2] == 1);
    CHECK(c->ks[0] == 1 && c->ks[1] == 3);
    CHECK_EQ_INT(sweep_tokens(s), 3);
    CHECK_NEAR(sweep_lm_ppl(s), 4.0, 1e-14);
    CHECK_NEAR(sweep_ppl(s, 1, 0, 0), 4.498307548275995, 1e-14);
    CHECK(sweep_ppl(s, 2, 0, 0) == INFINITY);
    CHECK_NEAR(sweep_ppl(s, 1, 1, 0), 3.5758209110405272, 1e-14);
    CHECK_NEAR(sweep_ppl(s, 2, 1, 0), 2.7463532377267916, 1e-14);
    /* λ = 0 is the LM and λ = 1 the kNN, to the bit. */
    for (int ki = 0; ki < 2; ki++) {
        CHECK(same_bits(sweep_ppl(s, 0, ki, 0), sweep_lm_ppl(s)));
        CHECK(same_bits(sweep_ppl(s, 2, ki, 0), sweep_knn_ppl(s, ki, 0)));
    }
    CHECK(sweep_knn_ppl(s, 0, 0) == INFINITY);
    /* Hits: k=1: tokens 0 (7 at 0) only; k=3: all three. */
    CHECK_NEAR(sweep_hit_rate(s, 0), 1.0 / 3, 1e-16);
    CHECK(sweep_hit_rate(s, 1) == 1.0);
    SweepPoint best = sweep_best(s);
    CHECK(best.lambda == 1.0 && best.k == 3 && best.temperature == 1.0);
    CHECK(same_bits(best.ppl, sweep_ppl(s, 2, 1, 0)));
    sweep_free(s);
}

static void test_sweep_best_ties_to_smaller_lambda(void) {
    /* p_LM = 1 and a single used neighbour of the label (p_kNN = 1 at every k and T): every point of the grid
     * has perplexity exactly 1, and the tie goes to the smallest λ, then k, then T. (Only λ = 0 and 1: an
     * interior λ computes log(λ + (1 - λ)) = 0 only up to rounding.) */
    double lam[] = {1, 0}, t[] = {2, 1};
    int ks[] = {2, 1};
    SweepConfig c = {lam, 2, ks, 2, t, 2, KNN_DIST_L2SQ, 2};
    Sweep *s;
    CHECK_OK(sweep_create(&s, &c));
    const float d[] = {0, 0};
    const int32_t v[] = {5, -1};
    CHECK_OK(sweep_add_token(s, 0.0, d, v, 2, 5));
    for (int li = 0; li < 2; li++)
        for (int ki = 0; ki < 2; ki++)
            for (int ti = 0; ti < 2; ti++)
                CHECK(sweep_ppl(s, li, ki, ti) == 1.0);
    SweepPoint best = sweep_best(s);
    CHECK(best.lambda == 0 && best.k == 1 && best.temperature == 1 && best.ppl == 1.0);
    sweep_free(s);
}

static void test_sweep_rejects_bad_tokens(void) {
    Sweep *s;
    CHECK_OK(tiny_sweep(&s));
    const float d[] = {1, 2, 3};
    const int32_t v[] = {1, 2, 3};
    CHECK(sweep_add_token(s, -1.0, d, v, 2, 1) == KN_EINVAL); /* 2 neighbours < largest k 3 */
    CHECK(strstr(kn_errmsg(), "token 3: 2 neighbours given, fewer than the largest k (3)") != NULL);
    CHECK(sweep_add_token(s, NAN, d, v, 3, 1) == KN_EINVAL);
    CHECK(sweep_add_token(s, INFINITY, d, v, 3, 1) == KN_EINVAL);
    CHECK(sweep_add_token(s, -1.0, d, v, 3, -1) == KN_EINVAL);
    CHECK_EQ_INT(sweep_tokens(s), 3); /* nothing was added */
    CHECK_NEAR(sweep_lm_ppl(s), 4.0, 1e-14);
    sweep_free(s);
}

/* A synthetic evaluation: n tokens with 16 neighbours (some ids -1), labels and values from a small
 * vocabulary so that both hits and misses occur at small k; the 16th neighbour always holds the label. */
enum { SYN_K = 16, SYN_N = 300, SYN_VOCAB = 6 };
typedef struct {
    float d[SYN_N][SYN_K];
    int32_t v[SYN_N][SYN_K];
    int32_t label[SYN_N];
    double lp_lm[SYN_N];
} Synthetic;

static void make_synthetic(Synthetic *x) {
    uint64_t r = 2024;
#define NEXT() (r = r * 6364136223846793005ull + 1442695040888963407ull, (double)(r >> 11) / 9007199254740992.0)
    for (int t = 0; t < SYN_N; t++) {
        float acc = (float)(NEXT() * 40);
        for (int i = 0; i < SYN_K; i++) {
            acc += (float)(NEXT() * 5);
            x->d[t][i] = acc;
            x->v[t][i] = NEXT() < 0.05 ? -1 : (int32_t)(NEXT() * SYN_VOCAB);
        }
        x->label[t] = (int32_t)(NEXT() * SYN_VOCAB);
        x->v[t][SYN_K - 1] = x->label[t]; /* so that the largest k always finds the label */
        x->lp_lm[t] = log(0.001 + 0.999 * NEXT());
    }
#undef NEXT
}

static const double SYN_LAMBDAS[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1};
static const int SYN_KS[] = {1, 4, 16};
static const double SYN_TEMPS[] = {0.5, 1, 3};

static int synthetic_sweep(Sweep **out, const Synthetic *x, int from, int to) {
    SweepConfig c = {SYN_LAMBDAS, 11, SYN_KS, 3, SYN_TEMPS, 3, KNN_DIST_L2SQ, SYN_K};
    int rc = sweep_create(out, &c);
    for (int t = from; rc == KN_OK && t < to; t++)
        rc = sweep_add_token(*out, x->lp_lm[t], x->d[t], x->v[t], SYN_K, x->label[t]);
    return rc;
}

static void test_sweep_equals_direct_recomputation(void) {
    static Synthetic x;
    make_synthetic(&x);
    Sweep *s;
    CHECK_OK(synthetic_sweep(&s, &x, 0, SYN_N));
    long double lm = 0;
    for (int t = 0; t < SYN_N; t++)
        lm -= x.lp_lm[t];
    CHECK_NEAR(sweep_lm_ppl(s), exp((double)(lm / SYN_N)), 1e-12);
    for (int ki = 0; ki < 3; ki++) {
        int hits = 0;
        for (int t = 0; t < SYN_N; t++)
            for (int i = 0; i < SYN_KS[ki]; i++)
                if (x.v[t][i] == x.label[t]) {
                    hits++;
                    break;
                }
        CHECK_NEAR(sweep_hit_rate(s, ki), (double)hits / SYN_N, 1e-15);
        for (int ti = 0; ti < 3; ti++) {
            long double knn = 0;
            for (int t = 0; t < SYN_N; t++)
                knn -= knn_log_prob(x.d[t], x.v[t], SYN_KS[ki], x.label[t], SYN_TEMPS[ti], KNN_DIST_L2SQ);
            double want = exp((double)(knn / SYN_N)), got = sweep_knn_ppl(s, ki, ti);
            CHECK_MSG(isinf(want) ? got == want : fabs(got - want) <= 1e-12 * want, "k %d T %g: %.17g vs %.17g",
                      SYN_KS[ki], SYN_TEMPS[ti], got, want);
            for (int li = 0; li < 11; li++) {
                long double sum = 0;
                for (int t = 0; t < SYN_N; t++)
                    sum -= knn_interpolate(x.lp_lm[t],
                                           knn_log_prob(x.d[t], x.v[t], SYN_KS[ki], x.label[t], SYN_TEMPS[ti],
                                                        KNN_DIST_L2SQ),
                                           SYN_LAMBDAS[li]);
                want = exp((double)(sum / SYN_N));
                got = sweep_ppl(s, li, ki, ti);
                CHECK_MSG(isinf(want) ? got == want : fabs(got - want) <= 1e-12 * want,
                          "λ %g k %d T %g: %.17g vs %.17g", SYN_LAMBDAS[li], SYN_KS[ki], SYN_TEMPS[ti], got, want);
            }
            CHECK(same_bits(sweep_ppl(s, 0, ki, ti), sweep_lm_ppl(s)));
            CHECK(same_bits(sweep_ppl(s, 10, ki, ti), sweep_knn_ppl(s, ki, ti)));
        }
    }
    /* k = 1 misses some labels, so its kNN perplexity is honestly infinite; k = 16 is finite. */
    CHECK(sweep_knn_ppl(s, 0, 1) == INFINITY);
    CHECK(isfinite(sweep_knn_ppl(s, 2, 1)));
    sweep_free(s);
}

static int sweeps_identical(const Sweep *a, const Sweep *b) {
    const SweepConfig *c = sweep_config(a);
    int same = sweep_tokens(a) == sweep_tokens(b) && same_bits(sweep_lm_ppl(a), sweep_lm_ppl(b));
    for (int ki = 0; ki < c->n_ks; ki++) {
        same = same && same_bits(sweep_hit_rate(a, ki), sweep_hit_rate(b, ki));
        for (int ti = 0; ti < c->n_temperatures; ti++) {
            same = same && same_bits(sweep_knn_ppl(a, ki, ti), sweep_knn_ppl(b, ki, ti));
            for (int li = 0; li < c->n_lambdas; li++)
                same = same && same_bits(sweep_ppl(a, li, ki, ti), sweep_ppl(b, li, ki, ti));
        }
    }
    return same;
}

static void test_merge_equals_one_pass(void) {
    static Synthetic x;
    make_synthetic(&x);
    Sweep *all, *a, *b, *c;
    CHECK_OK(synthetic_sweep(&all, &x, 0, SYN_N));
    /* Two halves. */
    CHECK_OK(synthetic_sweep(&a, &x, 0, SYN_N / 2));
    CHECK_OK(synthetic_sweep(&b, &x, SYN_N / 2, SYN_N));
    CHECK_OK(sweep_merge(a, b));
    CHECK(sweeps_identical(all, a));
    sweep_free(a);
    sweep_free(b);
    /* Three uneven chunks merged in another order: still bit-identical. */
    CHECK_OK(synthetic_sweep(&a, &x, 0, 7));
    CHECK_OK(synthetic_sweep(&b, &x, 7, 200));
    CHECK_OK(synthetic_sweep(&c, &x, 200, SYN_N));
    CHECK_OK(sweep_merge(c, a));
    CHECK_OK(sweep_merge(c, b));
    CHECK(sweeps_identical(all, c));
    sweep_free(a);
    sweep_free(b);
    sweep_free(c);
    /* Different grids do not merge. */
    Sweep *tiny;
    CHECK_OK(tiny_sweep(&tiny));
    CHECK(sweep_merge(all, tiny) == KN_EMISMATCH);
    sweep_free(tiny);
    sweep_free(all);
}

/* ------------------------------------------------------------------ sweep.h: writers */

/* Creates the file named by the mkstemps template (suffix_len characters after the XXXXXX); 1 on success. */
static int make_temp(char *template, int suffix_len) {
    int fd = mkstemps(template, suffix_len);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* The shortest %.15g..%.17g form that reads back to v, or "inf". */
static const char *shortest(char buf[32], double v) {
    if (isinf(v))
        return "inf";
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, 32, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static double json_num(const cJSON *item) {
    if (cJSON_IsString(item) && strcmp(item->valuestring, "inf") == 0)
        return INFINITY;
    /* Read the printed text, not cJSON's double, to check the digits round-trip. */
    char *text = cJSON_PrintUnformatted(item);
    double v = text ? strtod(text, NULL) : NAN;
    free(text);
    return v;
}

static void test_json_round_trip(void) {
    Sweep *s;
    CHECK_OK(tiny_sweep(&s));
    char *text;
    CHECK_OK(sweep_json(s, &text));
    cJSON *root = cJSON_Parse(text);
    CHECK(root != NULL);
    if (!root) {
        free(text);
        sweep_free(s);
        return;
    }
    CHECK(cJSON_GetObjectItem(root, "tokens")->valuedouble == 3);
    CHECK(same_bits(json_num(cJSON_GetObjectItem(root, "lm_ppl")), sweep_lm_ppl(s)));
    const cJSON *knn = cJSON_GetObjectItem(root, "knn_ppl");
    CHECK(cJSON_IsObject(knn) && cJSON_GetArraySize(knn) == 2);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(knn, "1"))); /* infinite: the string "inf" */
    CHECK_STR(cJSON_GetObjectItem(knn, "1")->valuestring, "inf");
    CHECK(same_bits(json_num(cJSON_GetObjectItem(knn, "3")), sweep_knn_ppl(s, 1, 0)));
    const cJSON *sw = cJSON_GetObjectItem(root, "sweep");
    CHECK(cJSON_IsArray(sw) && cJSON_GetArraySize(sw) == 6);
    /* Ordered by λ, then k, then T; every point round-trips exactly. */
    static const double want_l[] = {0, 0, 0.25, 0.25, 1, 1};
    static const int want_k[] = {1, 3, 1, 3, 1, 3};
    for (int i = 0; i < 6 && i < cJSON_GetArraySize(sw); i++) {
        const cJSON *p = cJSON_GetArrayItem(sw, i);
        CHECK(cJSON_GetArraySize(p) == 4);
        CHECK(json_num(cJSON_GetObjectItem(p, "lambda")) == want_l[i]);
        CHECK(json_num(cJSON_GetObjectItem(p, "k")) == want_k[i]);
        CHECK(json_num(cJSON_GetObjectItem(p, "temperature")) == 1.0);
        CHECK(same_bits(json_num(cJSON_GetObjectItem(p, "ppl")), sweep_ppl(s, i / 2, i % 2, 0)));
    }
    const cJSON *best = cJSON_GetObjectItem(root, "best");
    CHECK(json_num(cJSON_GetObjectItem(best, "lambda")) == 1.0);
    CHECK(json_num(cJSON_GetObjectItem(best, "k")) == 3);
    CHECK(json_num(cJSON_GetObjectItem(best, "temperature")) == 1.0);
    CHECK(same_bits(json_num(cJSON_GetObjectItem(best, "ppl")), sweep_ppl(s, 2, 1, 0)));
    CHECK_STR(cJSON_GetObjectItem(root, "distance")->valuestring, "l2sq");
    CHECK(json_num(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "hit_rate"), "3")) == 1.0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(root, "knn")) == 2);
    cJSON_Delete(root);
    free(text);

    /* The file form parses too (and with Python's json, a strict parser, when python3 is there). */
    char path[] = "/tmp/test_knn_sweep_XXXXXX.json";
    CHECK(make_temp(path, 5));
    CHECK_OK(sweep_write_json(s, path));
    char *back;
    size_t len;
    CHECK_OK(file_read_all(path, &back, &len));
    root = cJSON_Parse(back);
    CHECK(root && cJSON_GetArraySize(cJSON_GetObjectItem(root, "sweep")) == 6);
    CHECK(len > 0 && back[len - 1] == '\n');
    cJSON_Delete(root);
    free(back);
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json,sys; d=json.load(open(sys.argv[1]), parse_constant=lambda c: 1/0); "
                 "assert d[\"knn_ppl\"][\"1\"] == \"inf\" and len(d[\"sweep\"]) == 6' %s",
                 path);
        CHECK_MSG(system(cmd) == 0, "%s", cmd);
    }
    unlink(path);
    sweep_free(s);
}

static void test_json_empty_sweep_writes_null(void) {
    double lam[] = {0.5}, t[] = {1};
    int ks[] = {4};
    SweepConfig c = {lam, 1, ks, 1, t, 1, KNN_DIST_L2, 0};
    Sweep *s;
    CHECK_OK(sweep_create(&s, &c));
    CHECK(isnan(sweep_lm_ppl(s)));
    char *text;
    CHECK_OK(sweep_json(s, &text));
    cJSON *root = cJSON_Parse(text);
    CHECK(root && cJSON_IsNull(cJSON_GetObjectItem(root, "lm_ppl")));
    CHECK(root && cJSON_GetObjectItem(root, "tokens")->valuedouble == 0);
    CHECK_STR(cJSON_GetObjectItem(root, "distance")->valuestring, "l2");
    cJSON_Delete(root);
    free(text);
    sweep_free(s);
}

static void test_table_and_csv(void) {
    Sweep *s;
    CHECK_OK(tiny_sweep(&s));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK_OK(sweep_write_table(s, f, "table"));
    fclose(f);
    CHECK(strstr(text, "3 tokens") != NULL);
    CHECK(strstr(text, "LM alone: 4.0000") != NULL);
    CHECK(strstr(text, "inf") != NULL);
    CHECK(strstr(text, "2.7464*") != NULL); /* the best cell, marked */
    CHECK(strstr(text, "best (*): lambda 1, k 3, temperature 1: perplexity 2.7464") != NULL);
    CHECK(strstr(text, "nan") == NULL);
    free(text);

    char path[] = "/tmp/test_knn_sweep_XXXXXX.csv";
    CHECK(make_temp(path, 4));
    CHECK_OK(sweep_write_csv(s, path));
    CHECK_OK(file_read_all(path, &text, &len));
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    CHECK_EQ_INT(lines, 1 + 6);
    static const char header[] = "lambda,k,temperature,ppl,hit_rate,knn_ppl,lm_ppl,tokens\n";
    CHECK(strncmp(text, header, strlen(header)) == 0);
    /* Each row as the writer must print it: the shortest digits that read back to the same double. */
    char row[256], l[32], p[32], h[32], kp[32], lm[32];
    shortest(lm, sweep_lm_ppl(s));
    const SweepConfig *c = sweep_config(s);
    for (int li = 0; li < 3; li++)
        for (int ki = 0; ki < 2; ki++) {
            snprintf(row, sizeof row, "\n%s,%d,1,%s,%s,%s,%s,3\n", shortest(l, c->lambdas[li]), c->ks[ki],
                     shortest(p, sweep_ppl(s, li, ki, 0)), shortest(h, sweep_hit_rate(s, ki)),
                     shortest(kp, sweep_knn_ppl(s, ki, 0)), lm);
            CHECK_MSG(strstr(text, row) != NULL, "missing row %s in:\n%s", row + 1, text);
        }
    CHECK(strstr(text, "\n1,1,1,inf,") != NULL);
    free(text);
    unlink(path);
    CHECK(sweep_write_csv(s, "/nonexistent-dir/x.csv") != KN_OK);
    CHECK(strstr(kn_errmsg(), "/nonexistent-dir/x.csv") != NULL);
    sweep_free(s);
}

/* The retrieval gate's curve (sweep_gate_curve) on the three tokens of test_sweep_matches_numpy, with the LM's
 * largest probabilities 0.5, 0.30 and 0.125 (bins 10, 6 and 2 of 20), at λ = 0.25, k = 3, T = 1: each point
 * recomputed here in plain probabilities, and a sweep in which a gate at 0.3 really skipped the searches of
 * the first two tokens gives, to the bit, the curve's point at 0.30. */
static double gate_interp(const double *d, const int32_t *v, int32_t label, double p_lm) {
    double num = 0, den = 0;
    for (int i = 0; i < 3; i++) {
        den += exp(-d[i]);
        num += v[i] == label ? exp(-d[i]) : 0;
    }
    return -log(0.25 * num / den + 0.75 * p_lm);
}

static void test_retrieval_gate_curve(void) {
    const double lambdas[] = {0, 0.25, 1}, temps[] = {1};
    const int ks[] = {1, 3};
    const SweepConfig cfg = {lambdas, 3, ks, 2, temps, 1, KNN_DIST_L2SQ, 3};
    const float d[3][3] = {{1, 2, 3}, {0.5f, 1.5f, 4}, {2, 2.5f, 3}};
    const double dd[3][3] = {{1, 2, 3}, {0.5, 1.5, 4}, {2, 2.5, 3}};
    const int32_t v[3][3] = {{7, 7, 9}, {3, 4, 4}, {1, 2, 3}}, label[3] = {7, 4, 3};
    const double p_lm[3] = {0.5, 0.25, 0.125}, p_max[3] = {0.5, 0.30, 0.125};
    Sweep *s, *gated;
    CHECK_OK(sweep_create(&s, &cfg));
    CHECK_OK(sweep_create(&gated, &cfg));
    for (int t = 0; t < 3; t++) {
        CHECK_OK(sweep_add_scored(s, log(p_lm[t]), p_max[t], d[t], v[t], 3, label[t]));
        const int skip = p_max[t] >= 0.3;
        CHECK_OK(sweep_add_scored(gated, log(p_lm[t]), p_max[t], skip ? NULL : d[t], skip ? NULL : v[t], skip ? 0 : 3, label[t]));
    }
    SweepGatePoint c[SWEEP_GATE_STEPS + 1];
    CHECK_EQ_INT(sweep_gate_curve(s, 1, 1, 0, c), SWEEP_GATE_STEPS + 1);
    double nll_knnlm[3], nll_lm[3];
    for (int t = 0; t < 3; t++) {
        nll_knnlm[t] = gate_interp(dd[t], v[t], label[t], p_lm[t]);
        nll_lm[t] = -log(p_lm[t]);
    }
    const int bin[3] = {10, 6, 2};
    for (int j = 0; j <= SWEEP_GATE_STEPS; j++) {
        double sum = 0;
        int skipped = 0;
        for (int t = 0; t < 3; t++) {
            sum += bin[t] >= j ? nll_lm[t] : nll_knnlm[t];
            skipped += bin[t] >= j;
        }
        CHECK_MSG(c[j].threshold == j / 20.0, "threshold %d: %.17g", j, c[j].threshold);
        CHECK_MSG(c[j].skipped == skipped / 3.0, "threshold %d: skipped %.17g, expected %d/3", j, c[j].skipped, skipped);
        CHECK_MSG(fabs(c[j].ppl - exp(sum / 3)) < 1e-13 * c[j].ppl, "threshold %d: ppl %.17g, expected %.17g", j, c[j].ppl, exp(sum / 3));
    }
    CHECK(same_bits(c[0].ppl, sweep_lm_ppl(s)));                      /* every search skipped: the LM */
    CHECK(same_bits(c[SWEEP_GATE_STEPS].ppl, sweep_ppl(s, 1, 1, 0))); /* none: the sweep's own point */
    CHECK_NEAR(c[SWEEP_GATE_STEPS].ppl, 3.5758209110405272, 1e-14);   /* numpy's, above */

    /* The gate at 0.3 skipped tokens 0 and 1: the curve stops at 0.30, where it is what the gate gave. */
    CHECK_EQ_INT(sweep_searched(gated), 1);
    CHECK_EQ_INT(sweep_tokens(gated), 3);
    SweepGatePoint g[SWEEP_GATE_STEPS + 1];
    CHECK_EQ_INT(sweep_gate_curve(gated, 1, 1, 0, g), 7);
    CHECK(same_bits(sweep_ppl(gated, 1, 1, 0), c[6].ppl));
    CHECK(same_bits(g[6].ppl, c[6].ppl));
    CHECK(same_bits(sweep_ppl(gated, 0, 0, 0), sweep_lm_ppl(s)));
    /* the kNN alone and the hit rate are over the one searched token (label 3 is its third neighbour) */
    CHECK_NEAR(sweep_knn_ppl(gated, 1, 0), exp(-log(exp(-3.0) / (exp(-2.0) + exp(-2.5) + exp(-3.0)))), 1e-13);
    CHECK(sweep_hit_rate(gated, 0) == 0 && sweep_hit_rate(gated, 1) == 1);

    /* no p_max, no curve; a p_max outside [0, 1] is refused */
    CHECK_OK(sweep_add_token(s, log(0.5), d[0], v[0], 3, 7));
    CHECK_EQ_INT(sweep_gate_curve(s, 1, 1, 0, c), 0);
    CHECK_EQ_INT(sweep_add_scored(gated, log(0.5), 1.5, d[0], v[0], 3, 7), KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "largest probability") != NULL);
    sweep_free(s);
    sweep_free(gated);
}

int main(void) {
    RUN(test_grid_parsing);
    RUN(test_create_rejects_bad_config);
    RUN(test_sweep_matches_numpy);
    RUN(test_sweep_best_ties_to_smaller_lambda);
    RUN(test_sweep_rejects_bad_tokens);
    RUN(test_sweep_equals_direct_recomputation);
    RUN(test_merge_equals_one_pass);
    RUN(test_json_round_trip);
    RUN(test_json_empty_sweep_writes_null);
    RUN(test_table_and_csv);
    RUN(test_retrieval_gate_curve);
    return TEST_EXIT();
}
