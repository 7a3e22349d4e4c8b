/* sweep.h — the one-pass perplexity sweep over λ, k and the temperature T, and its outputs.
 *
 * An evaluation feeds every held-out token once, with log p_LM(label) and the k_searched neighbours of its
 * query; the sweep accumulates, for every configured (λ, k, T), the sum of -log p where
 *   p_kNN uses the first k of the neighbours at temperature T      (knn.h)
 *   p     = λ p_kNN + (1 − λ) p_LM                                  (knn_interpolate)
 * plus the LM-only sum, the kNN-only sums per (k, T) and the hit counts per k (label among the first k
 * neighbours' values). Perplexity = exp(sum / N).
 *
 * Sums are exact (exactsum.h): the result depends only on the set of tokens added, not on their order nor
 * on how the evaluation was cut into chunks that were merged with sweep_merge — bit for bit. The λ = 0
 * perplexity is therefore exactly the LM's and the λ = 1 perplexity exactly the kNN's.
 *
 * Infinity: a token whose p_kNN is 0 (label among no neighbour) makes the kNN-only and λ = 1 sums +inf, and
 * that perplexity is reported as infinity, not clipped (the references floor log p_kNN at -10000 instead).
 * The table and CSV print it "inf"; JSON, which has no Infinity literal, writes the string "inf" (Python's
 * float("inf") reads it; strict JSON parsers accept it); an undefined value (no token yet: 0/0) is null.
 *
 * Not thread-safe: give each thread its own Sweep (same SweepConfig) and merge them. */
#ifndef KN_SWEEP_H
#define KN_SWEEP_H

#include <stdint.h>
#include <stdio.h>

#include "knnlm/knn.h"

typedef struct Sweep Sweep;

/* What to sweep. sweep_create copies the arrays and sorts each ascending; duplicates are rejected. */
typedef struct {
    const double *lambdas;      /* [n_lambdas], each in [0, 1] */
    int n_lambdas;
    const int *ks;              /* [n_ks], each >= 1 (and <= k_searched when that is given) */
    int n_ks;
    const double *temperatures; /* [n_temperatures], each finite and > 0 */
    int n_temperatures;
    KnnDistance distance;
    int k_searched;             /* neighbours per query the search returns; 0 = not known yet */
} SweepConfig;

/* One point of the sweep. */
typedef struct {
    double lambda;
    int k;
    double temperature;
    double ppl;
} SweepPoint;

/* ---- grids from option strings ----
 * A spec is "start:stop:step" (inclusive: every start + i·step up to stop, with a tolerance of 1e-9 steps so
 * that 0:1:0.05 ends on exactly 1.0; each value is rounded to the decimals written in the spec, so 0.15 is
 * the double that "0.15" parses to, not 3 × 0.05) or a comma list "0,0.1,0.25". The result is sorted
 * ascending, duplicates rejected. option names the command-line option in error messages. The caller frees
 * *out. */

/* λ values: each in [0, 1]. */
int sweep_parse_lambdas(const char *spec, const char *option, double **out, int *n);
/* k values: integers >= 1. */
int sweep_parse_ks(const char *spec, const char *option, int **out, int *n);
/* Temperatures: finite, > 0. */
int sweep_parse_temperatures(const char *spec, const char *option, double **out, int *n);

/* ---- accumulation ---- */

/* Validates cfg (KN_EINVAL naming the bad value) and creates an empty sweep; free with sweep_free. */
int sweep_create(Sweep **out, const SweepConfig *cfg);
void sweep_free(Sweep *s);

/* The sweep's grid, sorted (the copy sweep_create made; valid while s lives). */
const SweepConfig *sweep_config(const Sweep *s);

/* Adds one predicted token: log_p_lm = log p_LM(label), dist[k_searched]/vals[k_searched] its neighbours as
 * knn.h describes them, label >= 0. KN_EINVAL (naming the token's index in this sweep) when k_searched is
 * below the largest k, or log_p_lm is NaN or +inf (which would poison every sum silently), or label < 0;
 * nothing is added then. A log_p_lm of -inf is accepted (that perplexity becomes inf). */
int sweep_add_token(Sweep *s, double log_p_lm, const float *dist, const int32_t *vals, int k_searched,
                    int32_t label);

/* ---- the retrieval gate (adaptive retrieval, He et al. 2021) ----
 * A search pays only where the memory changes the prediction; where the LM is already sure, it can be
 * skipped (p = p_LM). The gate's signal is the LM's largest probability p_max: tokens are binned by
 * floor(SWEEP_GATE_STEPS · p_max), and for each threshold τ_j = j / SWEEP_GATE_STEPS (j = 0..SWEEP_GATE_STEPS)
 * the sweep knows, exactly, the perplexity when every token whose bin is >= j skips the search, at every grid
 * point, and the share of tokens that skips it. */
enum { SWEEP_GATE_STEPS = 20 };

/* sweep_add_token with the LM's largest probability lm_max_prob in [0, 1] (NaN: not known; then the sweep
 * has no gate curve), and k_searched = 0 for a token whose search a gate skipped (dist and vals are then not
 * read): p = p_LM at every point, and the kNN-only perplexities and hit rates leave it out. sweep_add_token
 * is this with lm_max_prob NaN. KN_EINVAL also for lm_max_prob outside [0, 1]. */
int sweep_add_scored(Sweep *s, double log_p_lm, double lm_max_prob, const float *dist, const int32_t *vals,
                     int k_searched, int32_t label);

typedef struct {
    double threshold; /* τ: the search is skipped where p_max >= τ (as its bin says) */
    double skipped;   /* the share of tokens that skip it */
    double ppl;       /* the perplexity then */
} SweepGatePoint;

/* The gate's curve at grid point (li, ki, ti), threshold ascending (τ = 0: every search skipped, the LM's
 * perplexity). Only the thresholds whose every token below was searched are given: with a gate in the
 * evaluation itself, those up to its threshold. Returns the number of points (0 when some token came without
 * p_max, or none came). */
int sweep_gate_curve(const Sweep *s, int li, int ki, int ti, SweepGatePoint out[SWEEP_GATE_STEPS + 1]);

/* sweep_gate_curve at sweep_best's point: what the table, the JSON and the plot show. */
int sweep_best_gate_curve(const Sweep *s, SweepGatePoint out[SWEEP_GATE_STEPS + 1]);

/* Tokens added with neighbours (not skipped by a gate): the kNN-only perplexities and hit rates are over these. */
uint64_t sweep_searched(const Sweep *s);

/* dst += src, exactly (see above). KN_EMISMATCH when their configurations differ. */
int sweep_merge(Sweep *dst, const Sweep *src);

/* ---- results ---- (index arguments refer to sweep_config(s)'s sorted arrays) */

uint64_t sweep_tokens(const Sweep *s);
/* exp(mean -log p_LM). NaN when no token was added. */
double sweep_lm_ppl(const Sweep *s);
/* The kNN alone (λ = 1) at ks[ki], temperatures[ti]; +inf when some token had p_kNN = 0. */
double sweep_knn_ppl(const Sweep *s, int ki, int ti);
/* Fraction of the tokens whose label is among the values of their first ks[ki] neighbours (ids -1 never
 * match). NaN when no token was added. */
double sweep_hit_rate(const Sweep *s, int ki);
/* The interpolation at lambdas[li], ks[ki], temperatures[ti]. */
double sweep_ppl(const Sweep *s, int li, int ki, int ti);
/* The lowest perplexity over the grid; ties go to the smaller λ, then the smaller k, then the smaller T. */
SweepPoint sweep_best(const Sweep *s);

/* ---- writers ---- Numbers are written with the fewest digits that read back to the same double. */

/* A readable table: the LM's perplexity, then per temperature a block of rows λ × columns k, with the
 * kNN-only perplexity and hit rate per k, and the best point (marked *). name is used in error messages. */
int sweep_write_table(const Sweep *s, FILE *f, const char *name);

/* CSV, one row per (λ, k, T): lambda,k,temperature,ppl,hit_rate,knn_ppl,lm_ppl,tokens. Written atomically. */
int sweep_write_csv(const Sweep *s, const char *path);

/* JSON (the shape below, plus more keys), written atomically:
 *   {"tokens": N, "lm_ppl": x, "knn_ppl": {"<k>": x, ...},
 *    "sweep": [{"lambda": l, "k": k, "temperature": t, "ppl": x}, ...],
 *    "best": {"lambda": l, "k": k, "temperature": t, "ppl": x},
 *    "knn_temperature": t, "hit_rate": {"<k>": r, ...},
 *    "knn": [{"k": k, "temperature": t, "ppl": x, "hit_rate": r}, ...],
 *    "distance": "l2sq" | "l2", "lambdas": [...], "ks": [...], "temperatures": [...]}
 * "knn_ppl" is given at one temperature, "knn_temperature" (the best point's T); "knn" lists every (k, T).
 * "sweep" is ordered by λ, then k, then T. "searched" counts the tokens whose neighbours were searched (fewer
 * than "tokens" with a retrieval gate), and where the sweep has a gate curve (sweep_best_gate_curve),
 *   "retrieval_gate": {"signal": "lm_max_prob", "at": {best point},
 *                      "curve": [{"threshold": τ, "skipped": share, "ppl": x}, ...]}. */
int sweep_write_json(const Sweep *s, const char *path);
/* The same JSON as a malloc'd NUL-terminated string (caller frees). */
int sweep_json(const Sweep *s, char **out);

#endif
