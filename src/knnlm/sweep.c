/* sweep.c — the λ/k/T perplexity sweep behind sweep.h: grid parsing, exact accumulation, and the writers. */
#include "knnlm/sweep.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "knnlm/exactsum.h"
#include "util/error.h"
#include "util/file.h"

/* Ranges with more values than this are a typo (a step of 1e-9), not a sweep. */
#define GRID_MAX_VALUES 100000

struct Sweep {
    SweepConfig cfg; /* its arrays point at the sorted copies below */
    double *lambdas;
    int *ks;
    double *temps;
    uint64_t n_tokens;
    ExactSum lm;
    ExactSum *knn;     /* [n_temperatures][n_ks]: -log p_kNN */
    ExactSum *interp;  /* [n_lambdas][n_temperatures][n_ks]: -log p */
    uint64_t *hits;    /* [n_ks] */
    double *log_p_knn; /* [n_ks]: one token's log p_kNN at one temperature (scratch) */
    /* The retrieval gate (sweep_gate_curve): tokens binned by b = floor(GATE_STEPS p_max) of the LM's largest
     * probability p_max, in [0, GATE_STEPS]. */
    uint64_t n_searched;                      /* tokens with neighbours (not skipped by a gate) */
    ExactSum *gate;                           /* [n_lambdas][n_temperatures][n_ks][GATE_BINS]: -log p per bin */
    ExactSum gate_lm[SWEEP_GATE_STEPS + 1];   /* -log p_LM per bin */
    uint64_t gate_count[SWEEP_GATE_STEPS + 1];
    uint64_t n_gate_unknown;                  /* tokens added without p_max: then there is no curve */
    double skipped_min;                       /* the smallest p_max of a skipped token (2: none skipped) */
};

enum { GATE_BINS = SWEEP_GATE_STEPS + 1 };

/* ------------------------------------------------------------------ grids from option strings */

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* Parses one number of a spec: the whole of str[0..len) but for blanks around it. *decimals receives the
 * number of digits written after the point, or -1 when the number has an exponent (then nothing is rounded). */
static int parse_number(const char *str, size_t len, const char *option, const char *spec, double *value,
                        int *decimals) {
    char buf[64];
    while (len && (*str == ' ' || *str == '\t'))
        str++, len--;
    while (len && (str[len - 1] == ' ' || str[len - 1] == '\t'))
        len--;
    if (len == 0)
        return kn_error(KN_EINVAL, "%s: empty value in \"%s\"", option, spec);
    if (len >= sizeof buf)
        return kn_error(KN_EINVAL, "%s: value too long in \"%s\"", option, spec);
    memcpy(buf, str, len);
    buf[len] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v))
        return kn_error(KN_EINVAL, "%s: \"%s\" is not a finite number (in \"%s\")", option, buf, spec);
    const char *point = strchr(buf, '.');
    *decimals = strpbrk(buf, "eE") ? -1 : point ? (int)strlen(point + 1) : 0;
    *value = v;
    return KN_OK;
}

/* start:stop:step (inclusive, see sweep.h) or a comma list, sorted, without duplicates. */
static int parse_grid(const char *spec, const char *option, double **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!spec || !*spec)
        return kn_error(KN_EINVAL, "%s: empty list", option);
    double *v = NULL;
    int count = 0, rc;
    if (strchr(spec, ':')) {
        const char *c1 = strchr(spec, ':'), *c2 = strchr(c1 + 1, ':');
        if (!c2 || strchr(c2 + 1, ':'))
            return kn_error(KN_EINVAL, "%s: \"%s\" is not start:stop:step", option, spec);
        double start, stop, step;
        int d0, d1, d2;
        if ((rc = parse_number(spec, (size_t)(c1 - spec), option, spec, &start, &d0)) ||
            (rc = parse_number(c1 + 1, (size_t)(c2 - c1 - 1), option, spec, &stop, &d1)) ||
            (rc = parse_number(c2 + 1, strlen(c2 + 1), option, spec, &step, &d2)))
            return rc;
        if (!(step > 0))
            return kn_error(KN_EINVAL, "%s: step must be > 0 in \"%s\"", option, spec);
        if (stop < start)
            return kn_error(KN_EINVAL, "%s: stop is below start in \"%s\"", option, spec);
        /* The tolerance lets (1 - 0) / 0.05 = 19.999999999999996 count 21 values, not 20. */
        double steps = floor((stop - start) / step + 1e-9);
        if (steps + 1 > GRID_MAX_VALUES)
            return kn_error(KN_EINVAL, "%s: \"%s\" gives more than %d values", option, spec, GRID_MAX_VALUES);
        count = (int)steps + 1;
        int decimals = d0 < 0 || d1 < 0 || d2 < 0 ? -1 : d0 > d1 ? (d0 > d2 ? d0 : d2) : (d1 > d2 ? d1 : d2);
        double scale = decimals >= 0 && decimals <= 15 ? pow(10, decimals) : 0;
        if (!(v = malloc((size_t)count * sizeof *v)))
            return kn_error(KN_ENOMEM, "%s: out of memory for %d values", option, count);
        for (int i = 0; i < count; i++) {
            double x = start + i * step;
            /* round(x · 10^d) is an exact integer and its quotient by the exact 10^d is correctly rounded,
             * so the value is the double that its decimal spelling parses to (0.15, not 0.15000000000000002). */
            if (scale)
                x = round(x * scale) / scale;
            if (x > stop || (i == count - 1 && fabs(x - stop) <= 1e-9 * step))
                x = stop;
            v[i] = x;
        }
    } else {
        for (const char *p = spec; p; p = strchr(p, ','), p = p ? p + 1 : NULL)
            count++;
        if (count > GRID_MAX_VALUES)
            return kn_error(KN_EINVAL, "%s: more than %d values", option, GRID_MAX_VALUES);
        if (!(v = malloc((size_t)count * sizeof *v)))
            return kn_error(KN_ENOMEM, "%s: out of memory for %d values", option, count);
        const char *p = spec;
        for (int i = 0; i < count; i++) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            int decimals;
            if ((rc = parse_number(p, len, option, spec, &v[i], &decimals))) {
                free(v);
                return rc;
            }
            p = comma ? comma + 1 : p + len;
        }
    }
    for (int i = 0; i < count; i++)
        v[i] += 0.0; /* "-0" becomes 0, so that no "-0" is printed */
    qsort(v, (size_t)count, sizeof *v, cmp_double);
    for (int i = 1; i < count; i++)
        if (v[i] == v[i - 1]) {
            rc = kn_error(KN_EINVAL, "%s: %.17g appears twice in \"%s\"", option, v[i], spec);
            free(v);
            return rc;
        }
    *out = v;
    *n = count;
    return KN_OK;
}

/* Range checks shared by the parsers (which know the option name) and sweep_create (which does not). */
static int check_lambda(double l, const char *what) {
    if (!(l >= 0 && l <= 1))
        return kn_error(KN_EINVAL, "%s: lambda %.17g is outside [0, 1]", what, l);
    return KN_OK;
}

static int check_k(double k, const char *what) {
    if (!(k >= 1 && k <= INT_MAX / 2 && k == floor(k)))
        return kn_error(KN_EINVAL, "%s: k %.17g is not a positive integer", what, k);
    return KN_OK;
}

static int check_temperature(double t, const char *what) {
    if (!(t > 0 && isfinite(t)))
        return kn_error(KN_EINVAL, "%s: temperature %.17g is not finite and > 0", what, t);
    return KN_OK;
}

/* parse_grid, then check every value; on failure nothing is returned. */
static int parse_checked(const char *spec, const char *option, double **out, int *n,
                         int (*check)(double, const char *)) {
    int rc = parse_grid(spec, option, out, n);
    for (int i = 0; rc == KN_OK && i < *n; i++)
        rc = check((*out)[i], option);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int sweep_parse_lambdas(const char *spec, const char *option, double **out, int *n) {
    return parse_checked(spec, option, out, n, check_lambda);
}

int sweep_parse_temperatures(const char *spec, const char *option, double **out, int *n) {
    return parse_checked(spec, option, out, n, check_temperature);
}

int sweep_parse_ks(const char *spec, const char *option, int **out, int *n) {
    double *v;
    int count;
    *out = NULL;
    *n = 0;
    int rc = parse_checked(spec, option, &v, &count, check_k);
    if (rc)
        return rc;
    int *ks = malloc((size_t)count * sizeof *ks);
    if (!ks) {
        free(v);
        return kn_error(KN_ENOMEM, "%s: out of memory", option);
    }
    for (int i = 0; i < count; i++)
        ks[i] = (int)v[i];
    free(v);
    *out = ks;
    *n = count;
    return KN_OK;
}

/* ------------------------------------------------------------------ creation */

static int cmp_int(const void *pa, const void *pb) {
    int a = *(const int *)pa, b = *(const int *)pb;
    return (a > b) - (a < b);
}

void sweep_free(Sweep *s) {
    if (!s)
        return;
    free(s->lambdas);
    free(s->ks);
    free(s->temps);
    free(s->knn);
    free(s->interp);
    free(s->hits);
    free(s->log_p_knn);
    free(s->gate);
    free(s);
}

static int validate_config(const SweepConfig *c) {
    if (c->n_lambdas < 1 || c->n_ks < 1 || c->n_temperatures < 1)
        return kn_error(KN_EINVAL, "sweep: needs at least one lambda, one k and one temperature (got %d, %d, %d)",
                        c->n_lambdas, c->n_ks, c->n_temperatures);
    if (c->distance != KNN_DIST_L2SQ && c->distance != KNN_DIST_L2)
        return kn_error(KN_EINVAL, "sweep: unknown distance kind %d", (int)c->distance);
    int rc = KN_OK;
    for (int i = 0; rc == KN_OK && i < c->n_lambdas; i++)
        rc = check_lambda(c->lambdas[i], "sweep");
    for (int i = 0; rc == KN_OK && i < c->n_ks; i++) {
        rc = check_k(c->ks[i], "sweep");
        if (rc == KN_OK && c->k_searched > 0 && c->ks[i] > c->k_searched)
            rc = kn_error(KN_EINVAL, "sweep: k %d exceeds the %d neighbours searched", c->ks[i], c->k_searched);
    }
    for (int i = 0; rc == KN_OK && i < c->n_temperatures; i++)
        rc = check_temperature(c->temperatures[i], "sweep");
    return rc;
}

int sweep_create(Sweep **out, const SweepConfig *cfg) {
    *out = NULL;
    int rc = validate_config(cfg);
    if (rc)
        return rc;
    size_t nl = (size_t)cfg->n_lambdas, nk = (size_t)cfg->n_ks, nt = (size_t)cfg->n_temperatures;
    Sweep *s = calloc(1, sizeof *s);
    if (!s)
        return kn_error(KN_ENOMEM, "sweep: out of memory");
    s->lambdas = malloc(nl * sizeof *s->lambdas);
    s->ks = malloc(nk * sizeof *s->ks);
    s->temps = malloc(nt * sizeof *s->temps);
    /* calloc: a zero-filled ExactSum is zero. */
    s->knn = calloc(nk * nt, sizeof *s->knn);
    s->interp = calloc(nl * nk * nt, sizeof *s->interp);
    s->hits = calloc(nk, sizeof *s->hits);
    s->log_p_knn = malloc(nk * sizeof *s->log_p_knn);
    s->gate = calloc(nl * nk * nt * GATE_BINS, sizeof *s->gate);
    s->skipped_min = 2;
    if (!s->lambdas || !s->ks || !s->temps || !s->knn || !s->interp || !s->hits || !s->log_p_knn || !s->gate) {
        sweep_free(s);
        return kn_error(KN_ENOMEM, "sweep: out of memory for %zu x %zu x %zu sums", nl, nk, nt);
    }
    memcpy(s->lambdas, cfg->lambdas, nl * sizeof *s->lambdas);
    memcpy(s->ks, cfg->ks, nk * sizeof *s->ks);
    memcpy(s->temps, cfg->temperatures, nt * sizeof *s->temps);
    qsort(s->lambdas, nl, sizeof *s->lambdas, cmp_double);
    qsort(s->ks, nk, sizeof *s->ks, cmp_int);
    qsort(s->temps, nt, sizeof *s->temps, cmp_double);
    for (size_t i = 1; rc == KN_OK && i < nl; i++)
        if (s->lambdas[i] == s->lambdas[i - 1])
            rc = kn_error(KN_EINVAL, "sweep: lambda %.17g appears twice", s->lambdas[i]);
    for (size_t i = 1; rc == KN_OK && i < nk; i++)
        if (s->ks[i] == s->ks[i - 1])
            rc = kn_error(KN_EINVAL, "sweep: k %d appears twice", s->ks[i]);
    for (size_t i = 1; rc == KN_OK && i < nt; i++)
        if (s->temps[i] == s->temps[i - 1])
            rc = kn_error(KN_EINVAL, "sweep: temperature %.17g appears twice", s->temps[i]);
    if (rc) {
        sweep_free(s);
        return rc;
    }
    s->cfg = *cfg;
    s->cfg.lambdas = s->lambdas;
    s->cfg.ks = s->ks;
    s->cfg.temperatures = s->temps;
    *out = s;
    return KN_OK;
}

const SweepConfig *sweep_config(const Sweep *s) { return &s->cfg; }

/* ------------------------------------------------------------------ accumulation */

static ExactSum *knn_sum(const Sweep *s, int ki, int ti) { return &s->knn[(size_t)ti * s->cfg.n_ks + ki]; }

static ExactSum *interp_sum(const Sweep *s, int li, int ki, int ti) {
    return &s->interp[((size_t)li * s->cfg.n_temperatures + ti) * s->cfg.n_ks + ki];
}

static size_t point_index(const Sweep *s, int li, int ki, int ti) {
    return ((size_t)li * s->cfg.n_temperatures + ti) * s->cfg.n_ks + ki;
}

/* The gate's bin of a token, or -1 when p_max is not known (NaN). */
static int gate_bin(double p_max) {
    if (isnan(p_max))
        return -1;
    double b = floor(p_max * SWEEP_GATE_STEPS);
    return b < 0 ? 0 : b > SWEEP_GATE_STEPS ? SWEEP_GATE_STEPS : (int)b;
}

int sweep_add_token(Sweep *s, double log_p_lm, const float *dist, const int32_t *vals, int k_searched,
                    int32_t label) {
    return sweep_add_scored(s, log_p_lm, NAN, dist, vals, k_searched, label);
}

int sweep_add_scored(Sweep *s, double log_p_lm, double lm_max_prob, const float *dist, const int32_t *vals,
                     int k_searched, int32_t label) {
    const SweepConfig *c = &s->cfg;
    int k_max = c->ks[c->n_ks - 1];
    unsigned long long token = (unsigned long long)s->n_tokens;
    if (k_searched != 0 && k_searched < k_max)
        return kn_error(KN_EINVAL, "sweep: token %llu: %d neighbours given, fewer than the largest k (%d)", token,
                        k_searched, k_max);
    if (isnan(log_p_lm) || log_p_lm == INFINITY)
        return kn_error(KN_EINVAL, "sweep: token %llu: log p_LM is %g", token, log_p_lm);
    if (label < 0)
        return kn_error(KN_EINVAL, "sweep: token %llu: label %d is negative", token, (int)label);
    if (!isnan(lm_max_prob) && !(lm_max_prob >= 0 && lm_max_prob <= 1))
        return kn_error(KN_EINVAL, "sweep: token %llu: the LM's largest probability %g is outside [0, 1]", token,
                        lm_max_prob);
    const int bin = gate_bin(lm_max_prob);

    if (k_searched == 0) { /* skipped by the retrieval gate: p = p_LM at every point, and no kNN term */
        for (size_t i = 0; i < (size_t)c->n_lambdas * c->n_ks * c->n_temperatures; i++) {
            exactsum_add(&s->interp[i], -log_p_lm);
            if (bin >= 0)
                exactsum_add(&s->gate[i * GATE_BINS + bin], -log_p_lm);
        }
        if (!(lm_max_prob >= s->skipped_min))
            s->skipped_min = isnan(lm_max_prob) ? 0 : lm_max_prob;
    } else {
        int first = k_max; /* index of the nearest neighbour whose value is the label */
        for (int i = 0; i < k_max; i++)
            if (vals[i] == label) {
                first = i;
                break;
            }
        for (int ki = 0; ki < c->n_ks; ki++)
            s->hits[ki] += first < c->ks[ki];

        for (int ti = 0; ti < c->n_temperatures; ti++) {
            knn_log_prob_prefixes(s->log_p_knn, dist, vals, k_max, c->ks, c->n_ks, label, c->temperatures[ti],
                                  c->distance);
            for (int ki = 0; ki < c->n_ks; ki++) {
                double lp_knn = s->log_p_knn[ki];
                exactsum_add(knn_sum(s, ki, ti), -lp_knn);
                for (int li = 0; li < c->n_lambdas; li++) {
                    const double nll = -knn_interpolate(log_p_lm, lp_knn, c->lambdas[li]);
                    exactsum_add(interp_sum(s, li, ki, ti), nll);
                    if (bin >= 0)
                        exactsum_add(&s->gate[point_index(s, li, ki, ti) * GATE_BINS + bin], nll);
                }
            }
        }
        s->n_searched++;
    }
    if (bin >= 0) {
        exactsum_add(&s->gate_lm[bin], -log_p_lm);
        s->gate_count[bin]++;
    } else {
        s->n_gate_unknown++;
    }
    exactsum_add(&s->lm, -log_p_lm);
    s->n_tokens++;
    return KN_OK;
}

int sweep_merge(Sweep *dst, const Sweep *src) {
    const SweepConfig *a = &dst->cfg, *b = &src->cfg;
    int same = a->n_lambdas == b->n_lambdas && a->n_ks == b->n_ks && a->n_temperatures == b->n_temperatures &&
               a->distance == b->distance;
    for (int i = 0; same && i < a->n_lambdas; i++)
        same = a->lambdas[i] == b->lambdas[i];
    for (int i = 0; same && i < a->n_ks; i++)
        same = a->ks[i] == b->ks[i];
    for (int i = 0; same && i < a->n_temperatures; i++)
        same = a->temperatures[i] == b->temperatures[i];
    if (!same)
        return kn_error(KN_EMISMATCH, "sweep: cannot merge sweeps over different lambda/k/temperature grids");
    size_t nk = (size_t)a->n_ks, nt = (size_t)a->n_temperatures, nl = (size_t)a->n_lambdas;
    exactsum_merge(&dst->lm, &src->lm);
    for (size_t i = 0; i < nk * nt; i++)
        exactsum_merge(&dst->knn[i], &src->knn[i]);
    for (size_t i = 0; i < nl * nk * nt; i++)
        exactsum_merge(&dst->interp[i], &src->interp[i]);
    for (size_t i = 0; i < nk; i++)
        dst->hits[i] += src->hits[i];
    for (size_t i = 0; i < nl * nk * nt * GATE_BINS; i++)
        exactsum_merge(&dst->gate[i], &src->gate[i]);
    for (int bin = 0; bin < GATE_BINS; bin++) {
        exactsum_merge(&dst->gate_lm[bin], &src->gate_lm[bin]);
        dst->gate_count[bin] += src->gate_count[bin];
    }
    dst->n_gate_unknown += src->n_gate_unknown;
    dst->skipped_min = src->skipped_min < dst->skipped_min ? src->skipped_min : dst->skipped_min;
    dst->n_searched += src->n_searched;
    dst->n_tokens += src->n_tokens;
    return KN_OK;
}

/* ------------------------------------------------------------------ results */

static double ppl_of(const Sweep *s, const ExactSum *sum) {
    return s->n_tokens ? exp(exactsum_value(sum) / (double)s->n_tokens) : NAN;
}

uint64_t sweep_tokens(const Sweep *s) { return s->n_tokens; }
uint64_t sweep_searched(const Sweep *s) { return s->n_searched; }
double sweep_lm_ppl(const Sweep *s) { return ppl_of(s, &s->lm); }
double sweep_ppl(const Sweep *s, int li, int ki, int ti) { return ppl_of(s, interp_sum(s, li, ki, ti)); }

double sweep_knn_ppl(const Sweep *s, int ki, int ti) {
    return s->n_searched ? exp(exactsum_value(knn_sum(s, ki, ti)) / (double)s->n_searched) : NAN;
}

double sweep_hit_rate(const Sweep *s, int ki) {
    return s->n_searched ? (double)s->hits[ki] / (double)s->n_searched : NAN;
}

int sweep_gate_curve(const Sweep *s, int li, int ki, int ti, SweepGatePoint out[SWEEP_GATE_STEPS + 1]) {
    if (!s->n_tokens || s->n_gate_unknown)
        return 0;
    const ExactSum *g = &s->gate[point_index(s, li, ki, ti) * GATE_BINS];
    int n = 0;
    for (int j = 0; j <= SWEEP_GATE_STEPS; j++) {
        const double threshold = (double)j / SWEEP_GATE_STEPS;
        if (threshold > s->skipped_min) /* some token below it was not searched: its kNN term is unknown */
            break;
        ExactSum sum = {0};
        uint64_t skipped = 0;
        for (int b = 0; b < GATE_BINS; b++) {
            exactsum_merge(&sum, b < j ? &g[b] : &s->gate_lm[b]);
            skipped += b >= j ? s->gate_count[b] : 0;
        }
        out[n++] = (SweepGatePoint){threshold, (double)skipped / (double)s->n_tokens,
                                    exp(exactsum_value(&sum) / (double)s->n_tokens)};
    }
    return n;
}

/* The best point's indices (sweep_best's tie-break). */
static void best_indices(const Sweep *s, int *out_l, int *out_k, int *out_t) {
    const SweepConfig *c = &s->cfg;
    int bl = 0, bk = 0, bt = 0;
    double best = exactsum_value(interp_sum(s, 0, 0, 0));
    /* Visiting λ, then k, then T in ascending order and replacing only on a strictly smaller sum gives the
     * documented tie-break. Sums, not perplexities, are compared: exp() could round two sums to one value. */
    for (int li = 0; li < c->n_lambdas; li++)
        for (int ki = 0; ki < c->n_ks; ki++)
            for (int ti = 0; ti < c->n_temperatures; ti++) {
                double v = exactsum_value(interp_sum(s, li, ki, ti));
                if (v < best || (isnan(best) && !isnan(v))) {
                    best = v;
                    bl = li, bk = ki, bt = ti;
                }
            }
    *out_l = bl, *out_k = bk, *out_t = bt;
}

int sweep_best_gate_curve(const Sweep *s, SweepGatePoint out[SWEEP_GATE_STEPS + 1]) {
    int bl, bk, bt;
    best_indices(s, &bl, &bk, &bt);
    return sweep_gate_curve(s, bl, bk, bt, out);
}

SweepPoint sweep_best(const Sweep *s) {
    const SweepConfig *c = &s->cfg;
    int bl, bk, bt;
    best_indices(s, &bl, &bk, &bt);
    return (SweepPoint){c->lambdas[bl], c->ks[bk], c->temperatures[bt], sweep_ppl(s, bl, bk, bt)};
}

/* ------------------------------------------------------------------ writers */

/* The shortest of %.15g/%.16g/%.17g that reads back to v; "inf", "-inf", "nan" for the others. cJSON's own
 * printer is not used for numbers: it accepts a 15-digit form that is only within an epsilon of v. */
static const char *fmt_exact(char buf[32], double v) {
    if (isnan(v))
        return "nan";
    if (isinf(v))
        return v > 0 ? "inf" : "-inf";
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, 32, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* Perplexity for people: 4 decimals, exponent form when large. */
static const char *fmt_ppl(char buf[32], double v) {
    if (isnan(v))
        return "n/a";
    if (isinf(v))
        return "inf";
    snprintf(buf, 32, v < 1e7 ? "%.4f" : "%.4e", v);
    return buf;
}

static const char *distance_name(KnnDistance d) { return d == KNN_DIST_L2 ? "l2" : "l2sq"; }

int sweep_write_table(const Sweep *s, FILE *f, const char *name) {
    const SweepConfig *c = &s->cfg;
    SweepPoint best = sweep_best(s);
    char a[32], b[32];
    fprintf(f, "kNN-LM perplexity: %llu tokens, distance %s\n", (unsigned long long)s->n_tokens,
            distance_name(c->distance));
    if (s->n_searched != s->n_tokens)
        fprintf(f, "searched: %llu tokens (the retrieval gate skipped the other %llu; kNN alone and hit rates are over "
                   "the searched ones)\n",
                (unsigned long long)s->n_searched, (unsigned long long)(s->n_tokens - s->n_searched));
    fprintf(f, "LM alone: %s\n", fmt_ppl(a, sweep_lm_ppl(s)));
    for (int ti = 0; ti < c->n_temperatures; ti++) {
        fprintf(f, "\ntemperature %s\n%-12s", fmt_exact(a, c->temperatures[ti]), "");
        for (int ki = 0; ki < c->n_ks; ki++) {
            snprintf(b, sizeof b, "k=%d", c->ks[ki]);
            fprintf(f, " %14s", b);
        }
        fprintf(f, "\n%-12s", "kNN alone");
        for (int ki = 0; ki < c->n_ks; ki++)
            fprintf(f, " %14s", fmt_ppl(a, sweep_knn_ppl(s, ki, ti)));
        fprintf(f, "\n%-12s", "hit rate");
        for (int ki = 0; ki < c->n_ks; ki++) {
            double r = sweep_hit_rate(s, ki);
            if (isnan(r))
                snprintf(a, sizeof a, "n/a");
            else
                snprintf(a, sizeof a, "%.4f", r);
            fprintf(f, " %14s", a);
        }
        fprintf(f, "\nlambda\n");
        for (int li = 0; li < c->n_lambdas; li++) {
            fprintf(f, "%-12s", fmt_exact(b, c->lambdas[li]));
            for (int ki = 0; ki < c->n_ks; ki++) {
                int is_best = c->lambdas[li] == best.lambda && c->ks[ki] == best.k &&
                              c->temperatures[ti] == best.temperature;
                fprintf(f, " %13s%c", fmt_ppl(a, sweep_ppl(s, li, ki, ti)), is_best ? '*' : ' ');
            }
            fputc('\n', f);
        }
    }
    fprintf(f, "\nbest (*): lambda %s, k %d, temperature %s: perplexity %s\n", fmt_exact(a, best.lambda), best.k,
            fmt_exact(b, best.temperature), fmt_ppl((char[32]){0}, best.ppl));
    SweepGatePoint curve[SWEEP_GATE_STEPS + 1];
    const int n = sweep_best_gate_curve(s, curve);
    if (n > 0) {
        fprintf(f, "\nretrieval gate at the best point: no search where the LM's largest probability >= threshold\n");
        fprintf(f, "%-12s %10s %14s\n", "threshold", "skipped", "perplexity");
        for (int i = 0; i < n; i++)
            fprintf(f, "%-12.2f %9.1f%% %14s\n", curve[i].threshold, 100 * curve[i].skipped, fmt_ppl(a, curve[i].ppl));
    }
    if (fflush(f) != 0 || ferror(f))
        return kn_error_errno("%s: writing the sweep table failed", name);
    return KN_OK;
}

int sweep_write_csv(const Sweep *s, const char *path) {
    const SweepConfig *c = &s->cfg;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return kn_error(KN_ENOMEM, "%s: out of memory for the CSV", path);
    char l[32], k[32], t[32], p[32], h[32], kp[32], lm[32];
    fprintf(f, "lambda,k,temperature,ppl,hit_rate,knn_ppl,lm_ppl,tokens\n");
    fmt_exact(lm, sweep_lm_ppl(s));
    for (int li = 0; li < c->n_lambdas; li++)
        for (int ki = 0; ki < c->n_ks; ki++)
            for (int ti = 0; ti < c->n_temperatures; ti++) {
                snprintf(k, sizeof k, "%d", c->ks[ki]);
                fprintf(f, "%s,%s,%s,%s,%s,%s,%s,%llu\n", fmt_exact(l, c->lambdas[li]), k,
                        fmt_exact(t, c->temperatures[ti]), fmt_exact(p, sweep_ppl(s, li, ki, ti)),
                        fmt_exact(h, sweep_hit_rate(s, ki)), fmt_exact(kp, sweep_knn_ppl(s, ki, ti)), lm,
                        (unsigned long long)s->n_tokens);
            }
    if (fclose(f) != 0) {
        free(text);
        return kn_error(KN_ENOMEM, "%s: out of memory for the CSV", path);
    }
    int rc = file_write_atomic(path, text, len);
    free(text);
    return rc;
}

/* A JSON value for a double: the exact shortest number, the string "inf"/"-inf", or null for NaN. */
static cJSON *json_number(double v) {
    char buf[32];
    if (isnan(v))
        return cJSON_CreateNull();
    if (isinf(v))
        return cJSON_CreateString(v > 0 ? "inf" : "-inf");
    return cJSON_CreateRaw(fmt_exact(buf, v));
}

static cJSON *json_int(long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return cJSON_CreateRaw(buf);
}

/* Adds item under key (or to an array when key is NULL); returns 0 and frees item when that fails, so a
 * build can be written as `ok = ok && put(...)`. */
static int put(cJSON *parent, const char *key, cJSON *item) {
    if (!item)
        return 0;
    cJSON_bool added = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!added)
        cJSON_Delete(item);
    return added != 0;
}

static cJSON *json_point(double lambda, int k, double temperature, double ppl) {
    cJSON *o = cJSON_CreateObject();
    int ok = o && put(o, "lambda", json_number(lambda)) && put(o, "k", json_int(k)) &&
             put(o, "temperature", json_number(temperature)) && put(o, "ppl", json_number(ppl));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *json_build(const Sweep *s) {
    const SweepConfig *c = &s->cfg;
    SweepPoint best = sweep_best(s);
    int bt = 0;
    while (c->temperatures[bt] != best.temperature)
        bt++;
    /* Each container is put under root as soon as it is made (put() frees it if that fails), so that
     * deleting root frees everything whatever step failed. */
    cJSON *root = cJSON_CreateObject(), *knn_ppl, *sweep, *hit, *knn, *lambdas, *ks, *temps;
    int ok = root && put(root, "tokens", json_int((long long)s->n_tokens)) &&
             put(root, "lm_ppl", json_number(sweep_lm_ppl(s))) &&
             put(root, "knn_ppl", knn_ppl = cJSON_CreateObject()) && put(root, "sweep", sweep = cJSON_CreateArray()) &&
             put(root, "best", json_point(best.lambda, best.k, best.temperature, best.ppl)) &&
             put(root, "knn_temperature", json_number(best.temperature)) &&
             put(root, "hit_rate", hit = cJSON_CreateObject()) && put(root, "knn", knn = cJSON_CreateArray()) &&
             put(root, "distance", cJSON_CreateString(distance_name(c->distance))) &&
             put(root, "lambdas", lambdas = cJSON_CreateArray()) && put(root, "ks", ks = cJSON_CreateArray()) &&
             put(root, "temperatures", temps = cJSON_CreateArray());
    char key[16];
    for (int ki = 0; ok && ki < c->n_ks; ki++) {
        snprintf(key, sizeof key, "%d", c->ks[ki]);
        ok = put(knn_ppl, key, json_number(sweep_knn_ppl(s, ki, bt))) &&
             put(hit, key, json_number(sweep_hit_rate(s, ki))) && put(ks, NULL, json_int(c->ks[ki]));
    }
    for (int li = 0; ok && li < c->n_lambdas; li++) {
        ok = put(lambdas, NULL, json_number(c->lambdas[li]));
        for (int ki = 0; ok && ki < c->n_ks; ki++)
            for (int ti = 0; ok && ti < c->n_temperatures; ti++)
                ok = put(sweep, NULL, json_point(c->lambdas[li], c->ks[ki], c->temperatures[ti],
                                                 sweep_ppl(s, li, ki, ti)));
    }
    for (int ti = 0; ok && ti < c->n_temperatures; ti++)
        ok = put(temps, NULL, json_number(c->temperatures[ti]));
    for (int ki = 0; ok && ki < c->n_ks; ki++)
        for (int ti = 0; ok && ti < c->n_temperatures; ti++) {
            cJSON *o;
            ok = put(knn, NULL, o = cJSON_CreateObject()) && put(o, "k", json_int(c->ks[ki])) &&
                 put(o, "temperature", json_number(c->temperatures[ti])) &&
                 put(o, "ppl", json_number(sweep_knn_ppl(s, ki, ti))) &&
                 put(o, "hit_rate", json_number(sweep_hit_rate(s, ki)));
        }
    ok = ok && put(root, "searched", json_int((long long)s->n_searched));
    SweepGatePoint curve[SWEEP_GATE_STEPS + 1];
    const int n = ok ? sweep_best_gate_curve(s, curve) : 0;
    cJSON *gate, *points;
    if (n > 0)
        ok = put(root, "retrieval_gate", gate = cJSON_CreateObject()) &&
             put(gate, "signal", cJSON_CreateString("lm_max_prob")) &&
             put(gate, "at", json_point(best.lambda, best.k, best.temperature, best.ppl)) &&
             put(gate, "curve", points = cJSON_CreateArray());
    for (int i = 0; ok && i < n; i++) {
        cJSON *o;
        ok = put(points, NULL, o = cJSON_CreateObject()) && put(o, "threshold", json_number(curve[i].threshold)) &&
             put(o, "skipped", json_number(curve[i].skipped)) && put(o, "ppl", json_number(curve[i].ppl));
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int sweep_json(const Sweep *s, char **out) {
    *out = NULL;
    cJSON *root = json_build(s);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return kn_error(KN_ENOMEM, "sweep: out of memory for the JSON");
    *out = text;
    return KN_OK;
}

int sweep_write_json(const Sweep *s, const char *path) {
    char *text;
    int rc = sweep_json(s, &text);
    if (rc)
        return kn_error_wrap(rc, "%s", path);
    size_t len = strlen(text);
    /* cJSON_Print leaves no final newline; files end with one. */
    char *withnl = realloc(text, len + 2);
    if (!withnl) {
        free(text);
        return kn_error(KN_ENOMEM, "%s: out of memory for the JSON", path);
    }
    withnl[len] = '\n';
    withnl[len + 1] = 0;
    rc = file_write_atomic(path, withnl, len + 1);
    free(withnl);
    return rc;
}
