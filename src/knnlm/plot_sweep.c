/* plot_sweep.c — the sweep's perplexity-vs-λ chart (plot.h), from a Sweep or from the JSON it wrote, so that
 * a plot can be redrawn without the datastore that produced the numbers. */
#include "knnlm/plot.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/file.h"

static size_t grid_at(const SweepGrid *g, int li, int ki, int ti) {
    return ((size_t)li * (size_t)g->n_ks + (size_t)ki) * (size_t)g->n_temperatures + (size_t)ti;
}

static int grid_alloc(SweepGrid *g) {
    size_t cells = (size_t)g->n_lambdas * (size_t)g->n_ks * (size_t)g->n_temperatures;
    g->lambdas = malloc((size_t)g->n_lambdas * sizeof *g->lambdas);
    g->ks = malloc((size_t)g->n_ks * sizeof *g->ks);
    g->temperatures = malloc((size_t)g->n_temperatures * sizeof *g->temperatures);
    g->ppl = malloc(cells * sizeof *g->ppl);
    if (!g->lambdas || !g->ks || !g->temperatures || !g->ppl) {
        sweep_grid_free(g);
        return KN_ENOMEM;
    }
    return KN_OK;
}

void sweep_grid_free(SweepGrid *g) {
    free(g->lambdas), free(g->ks), free(g->temperatures), free(g->ppl);
    memset(g, 0, sizeof *g);
}

int sweep_grid_from_sweep(SweepGrid *g, const Sweep *s) {
    const SweepConfig *c = sweep_config(s);
    memset(g, 0, sizeof *g);
    g->tokens = sweep_tokens(s);
    g->lm_ppl = sweep_lm_ppl(s);
    g->n_lambdas = c->n_lambdas, g->n_ks = c->n_ks, g->n_temperatures = c->n_temperatures;
    if (grid_alloc(g) != KN_OK)
        return kn_error(KN_ENOMEM, "out of memory for the plot");
    memcpy(g->lambdas, c->lambdas, (size_t)c->n_lambdas * sizeof *g->lambdas);
    memcpy(g->ks, c->ks, (size_t)c->n_ks * sizeof *g->ks);
    memcpy(g->temperatures, c->temperatures, (size_t)c->n_temperatures * sizeof *g->temperatures);
    for (int li = 0; li < g->n_lambdas; li++)
        for (int ki = 0; ki < g->n_ks; ki++)
            for (int ti = 0; ti < g->n_temperatures; ti++)
                g->ppl[grid_at(g, li, ki, ti)] = sweep_ppl(s, li, ki, ti);
    return KN_OK;
}

SweepPoint sweep_grid_best(const SweepGrid *g) {
    SweepPoint best = {NAN, 0, NAN, NAN};
    for (int li = 0; li < g->n_lambdas; li++)
        for (int ki = 0; ki < g->n_ks; ki++)
            for (int ti = 0; ti < g->n_temperatures; ti++) {
                double v = g->ppl[grid_at(g, li, ki, ti)];
                if (!isnan(v) && (isnan(best.ppl) || v < best.ppl))
                    best = (SweepPoint){g->lambdas[li], g->ks[ki], g->temperatures[ti], v};
            }
    return best;
}

/* ---- reading the JSON ---- */

/* A number as sweep_write_json writes it: a JSON number, "inf" (or "-inf", "nan") or null (undefined). */
static int json_value(const cJSON *item, double *out) {
    if (cJSON_IsNumber(item)) {
        *out = item->valuedouble;
        return 1;
    }
    if (cJSON_IsNull(item)) {
        *out = NAN;
        return 1;
    }
    if (cJSON_IsString(item)) {
        const char *s = item->valuestring;
        if (!strcmp(s, "inf") || !strcmp(s, "Infinity"))
            *out = INFINITY;
        else if (!strcmp(s, "-inf") || !strcmp(s, "-Infinity"))
            *out = -INFINITY;
        else if (!strcmp(s, "nan") || !strcmp(s, "NaN"))
            *out = NAN;
        else
            return 0;
        return 1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[n] and drops repeats; returns the new count. */
static int sort_unique(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || v[i] != v[m - 1])
            v[m++] = v[i];
    return m;
}

static int index_of(const double *v, int n, double x) {
    const double *p = bsearch(&x, v, (size_t)n, sizeof *v, cmp_double);
    return p ? (int)(p - v) : -1;
}

/* The three coordinates of sweep[i] (checked: numbers; λ in [0, 1], k a whole number >= 1, T > 0). */
static int point_coords(const cJSON *pt, const char *path, int i, double xyz[3], double *ppl) {
    static const char *const keys[] = {"lambda", "k", "temperature"};
    if (!cJSON_IsObject(pt))
        return kn_error(KN_EFORMAT, "%s: sweep[%d] is not an object", path, i);
    for (int j = 0; j < 3; j++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(pt, keys[j]);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return kn_error(KN_EFORMAT, "%s: sweep[%d]: \"%s\" is missing or not a number", path, i, keys[j]);
        xyz[j] = v->valuedouble;
    }
    if (!(xyz[0] >= 0 && xyz[0] <= 1) || !(xyz[1] >= 1 && xyz[1] <= 1e9 && xyz[1] == floor(xyz[1])) || !(xyz[2] > 0))
        return kn_error(KN_EFORMAT, "%s: sweep[%d]: λ = %g, k = %g, T = %g is not a sweep point (λ in [0, 1], k >= 1, T > 0)",
                        path, i, xyz[0], xyz[1], xyz[2]);
    if (!json_value(cJSON_GetObjectItemCaseSensitive(pt, "ppl"), ppl))
        return kn_error(KN_EFORMAT, "%s: sweep[%d]: \"ppl\" is missing or not a number", path, i);
    return KN_OK;
}

/* The grid of the parsed document. */
static int grid_from_json(SweepGrid *g, const cJSON *root, const char *path) {
    const cJSON *sweep = cJSON_GetObjectItemCaseSensitive(root, "sweep");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(sweep) || cJSON_GetArraySize(sweep) == 0)
        return kn_error(KN_EFORMAT, "%s: no \"sweep\" array of points (is it the JSON of knnlm eval --json?)", path);
    if (!json_value(cJSON_GetObjectItemCaseSensitive(root, "lm_ppl"), &g->lm_ppl))
        return kn_error(KN_EFORMAT, "%s: \"lm_ppl\" is missing or not a number", path);
    if (!cJSON_IsNumber(tokens) || !(tokens->valuedouble >= 0 && tokens->valuedouble < 1.8e19))
        return kn_error(KN_EFORMAT, "%s: \"tokens\" is missing or not a count", path);
    g->tokens = (uint64_t)tokens->valuedouble;
    int n = cJSON_GetArraySize(sweep);
    double *coord = malloc((size_t)n * 3 * sizeof *coord), *ppl = malloc((size_t)n * sizeof *ppl);
    double *axis[3] = {malloc((size_t)n * sizeof(double)), malloc((size_t)n * sizeof(double)), malloc((size_t)n * sizeof(double))};
    int rc = coord && ppl && axis[0] && axis[1] && axis[2] ? KN_OK : kn_error(KN_ENOMEM, "%s: out of memory", path);
    int i = 0;
    for (const cJSON *pt = sweep->child; pt && rc == KN_OK; pt = pt->next, i++) {
        rc = point_coords(pt, path, i, &coord[3 * i], &ppl[i]);
        for (int j = 0; j < 3 && rc == KN_OK; j++)
            axis[j][i] = coord[3 * i + j];
    }
    int count[3] = {0};
    for (int j = 0; j < 3 && rc == KN_OK; j++)
        count[j] = sort_unique(axis[j], n);
    if (rc == KN_OK && (size_t)count[0] * count[1] * count[2] != (size_t)n)
        rc = kn_error(KN_EFORMAT, "%s: the sweep's %d points do not fill its grid of %d λ × %d k × %d T once each",
                      path, n, count[0], count[1], count[2]);
    if (rc == KN_OK) {
        g->n_lambdas = count[0], g->n_ks = count[1], g->n_temperatures = count[2];
        if (grid_alloc(g) != KN_OK)
            rc = kn_error(KN_ENOMEM, "%s: out of memory", path);
    }
    if (rc == KN_OK) {
        memcpy(g->lambdas, axis[0], (size_t)count[0] * sizeof *g->lambdas);
        for (int k = 0; k < count[1]; k++)
            g->ks[k] = (int)axis[1][k];
        memcpy(g->temperatures, axis[2], (size_t)count[2] * sizeof *g->temperatures);
        size_t cells = (size_t)n;
        for (size_t c = 0; c < cells; c++)
            g->ppl[c] = -1; /* no perplexity is negative: marks a cell not filled yet */
        for (i = 0; i < n && rc == KN_OK; i++) {
            size_t at = grid_at(g, index_of(axis[0], count[0], coord[3 * i]), index_of(axis[1], count[1], coord[3 * i + 1]),
                                index_of(axis[2], count[2], coord[3 * i + 2]));
            if (g->ppl[at] != -1)
                rc = kn_error(KN_EFORMAT, "%s: sweep[%d]: λ = %g, k = %g, T = %g appears twice", path, i, coord[3 * i],
                              coord[3 * i + 1], coord[3 * i + 2]);
            g->ppl[at] = ppl[i];
        }
        if (rc != KN_OK)
            sweep_grid_free(g);
    }
    free(coord), free(ppl), free(axis[0]), free(axis[1]), free(axis[2]);
    return rc;
}

int sweep_grid_read_json(SweepGrid *g, const char *path) {
    memset(g, 0, sizeof *g);
    char *text;
    size_t len;
    int rc = file_read_all(path, &text, &len);
    if (rc != KN_OK)
        return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        rc = kn_error(KN_EFORMAT, "%s: not valid JSON (at byte %lld)", path,
                      at && at >= text && at <= text + len ? (long long)(at - text) : -1LL);
    } else
        rc = grid_from_json(g, root, path);
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ---- the chart ---- */

/* "best: λ = 0.3, k = 1024 (2126.41, −25.4 %)", the change against the LM alone; with sep "\n" instead of
 * " (" the numbers go on a second line: "2126.41 (−25.4 %)". */
static void best_label(char *buf, size_t cap, const char *prefix, SweepPoint b, double lm, const char *sep) {
    int two_lines = sep[0] == '\n';
    int o = snprintf(buf, cap, "%s\xCE\xBB = %g, k = %d%s%.2f", prefix, b.lambda, b.k, sep, b.ppl);
    double change = 100 * (b.ppl / lm - 1);
    if (isfinite(change) && fabs(change) >= 0.05)
        snprintf(buf + o, cap - (size_t)o, "%s%s%.1f %%%s", two_lines ? " (" : ", ", change < 0 ? "\xE2\x88\x92" : "+",
                 fabs(change), two_lines ? " vs LM)" : ")");
    else if (!two_lines)
        snprintf(buf + o, cap - (size_t)o, ")");
}

int plot_sweep_grid_svg(const SweepGrid *g, const char *path, PlotScale y_scale) {
    int nk = g->n_ks, nt = g->n_temperatures, nl = g->n_lambdas;
    PlotSeries *series = calloc((size_t)nk * nt, sizeof *series);
    PlotPanel *panels = calloc((size_t)nt, sizeof *panels);
    double *y = malloc((size_t)nk * nt * nl * sizeof *y);
    char (*labels)[32] = malloc((size_t)nk * sizeof *labels), (*titles)[48] = malloc((size_t)nt * sizeof *titles);
    char (*marks)[128] = malloc((size_t)nt * sizeof *marks);
    if (!series || !panels || !y || !labels || !titles || !marks) {
        free(series), free(panels), free(y), free(labels), free(titles), free(marks);
        return kn_error(KN_ENOMEM, "%s: out of memory for the plot", path);
    }
    SweepPoint best = sweep_grid_best(g);
    for (int ki = 0; ki < nk; ki++)
        snprintf(labels[ki], sizeof labels[ki], "k = %d", g->ks[ki]);
    for (int ti = 0; ti < nt; ti++) {
        /* the panel's own best point: the sub-grid at this T */
        SweepPoint pb = {NAN, 0, g->temperatures[ti], NAN};
        for (int li = 0; li < nl; li++)
            for (int ki = 0; ki < nk; ki++) {
                double v = g->ppl[grid_at(g, li, ki, ti)];
                if (!isnan(v) && (isnan(pb.ppl) || v < pb.ppl))
                    pb = (SweepPoint){g->lambdas[li], g->ks[ki], g->temperatures[ti], v};
            }
        for (int ki = 0; ki < nk; ki++) {
            double *ys = &y[((size_t)ti * nk + ki) * nl];
            for (int li = 0; li < nl; li++)
                ys[li] = g->ppl[grid_at(g, li, ki, ti)];
            series[(size_t)ti * nk + ki] = (PlotSeries){labels[ki], g->lambdas, ys, nl};
        }
        int is_best = nt > 1 && pb.temperature == best.temperature;
        snprintf(titles[ti], sizeof titles[ti], "T = %g%s", g->temperatures[ti], is_best ? " (best)" : "");
        best_label(marks[ti], sizeof marks[ti], nt > 1 && !is_best ? "lowest: " : "best: ", pb, g->lm_ppl, "\n");
        panels[ti] = (PlotPanel){nt > 1 ? titles[ti] : NULL, &series[(size_t)ti * nk], nk, !isnan(pb.ppl),
                                 pb.lambda, pb.ppl, marks[ti]};
    }
    char title[128], ref_label[64], legend[160];
    snprintf(title, sizeof title, "kNN-LM perplexity against \xCE\xBB (%llu tokens)", (unsigned long long)g->tokens);
    snprintf(ref_label, sizeof ref_label, "LM alone (%.2f)", g->lm_ppl);
    if (nt > 1)
        snprintf(legend, sizeof legend, "the lowest of each panel");
    else
        best_label(legend, sizeof legend, "best: ", best, g->lm_ppl, " (");
    PlotChart chart = {
        .title = title,
        .x_title = "\xCE\xBB (kNN weight)",
        .y_title = "perplexity",
        .panels = panels,
        .n_panels = nt,
        .reference_y = g->lm_ppl,
        .reference_label = ref_label,
        .mark_legend = legend,
        .y_scale = y_scale,
    };
    int rc = plot_write_svg(&chart, path);
    free(series), free(panels), free(y), free(labels), free(titles), free(marks);
    return rc;
}

int plot_sweep_svg(const Sweep *s, const char *path, PlotScale y_scale) {
    SweepGrid g;
    int rc = sweep_grid_from_sweep(&g, s);
    if (rc != KN_OK)
        return kn_error_wrap(rc, "%s", path);
    rc = plot_sweep_grid_svg(&g, path, y_scale);
    sweep_grid_free(&g);
    return rc;
}

int plot_gate_svg(const Sweep *s, const char *path) {
    SweepGatePoint c[SWEEP_GATE_STEPS + 1];
    const int n = sweep_best_gate_curve(s, c);
    if (n == 0)
        return kn_error(KN_EINVAL, "%s: no retrieval-gate curve (no token was scored with the LM's largest probability)", path);
    const SweepPoint best = sweep_best(s);
    /* the points by share skipped, ascending: the curve from the highest threshold down */
    double x[SWEEP_GATE_STEPS + 1], y[SWEEP_GATE_STEPS + 1];
    for (int i = 0; i < n; i++) {
        x[i] = 100 * c[n - 1 - i].skipped;
        y[i] = c[n - 1 - i].ppl;
    }
    /* the mark: the most searches skipped for at most 1% more perplexity than searching them all */
    int m = 0;
    for (int i = 0; i < n; i++)
        if (y[i] <= 1.01 * y[0] && x[i] >= x[m])
            m = i;
    char series_label[160], mark[160], title[160], ref_label[64];
    snprintf(series_label, sizeof series_label, "kNN-LM at \xCE\xBB = %g, k = %d, T = %g", best.lambda, best.k, best.temperature);
    snprintf(mark, sizeof mark, "skip %.1f%%: %.2f (threshold %.2f)", x[m], y[m], c[n - 1 - m].threshold);
    snprintf(title, sizeof title, "kNN-LM perplexity with a retrieval gate (%llu tokens)", (unsigned long long)sweep_tokens(s));
    snprintf(ref_label, sizeof ref_label, "LM alone (%.2f)", sweep_lm_ppl(s));
    const PlotSeries series = {series_label, x, y, n};
    const PlotPanel panel = {NULL, &series, 1, 1, x[m], y[m], mark};
    PlotChart chart = {
        .title = title,
        .x_title = "searches skipped (%): none where the LM's largest probability \xE2\x89\xA5 the threshold",
        .y_title = "perplexity",
        .panels = &panel,
        .n_panels = 1,
        .reference_y = sweep_lm_ppl(s),
        .reference_label = ref_label,
        .y_scale = PLOT_SCALE_AUTO,
    };
    return plot_write_svg(&chart, path);
}
