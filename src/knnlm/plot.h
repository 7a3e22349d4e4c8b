/* plot.h — a line chart as a standalone SVG file (open it in a browser), and the sweep's perplexity-vs-λ plot.
 *
 * The chart: one or more panels side by side (a grid of at most ceil(sqrt(n)) columns) that share one y
 * axis range and one legend. Each panel holds polylines with round markers (series i of every panel has the
 * same colour and legend entry), a dashed horizontal reference line labelled on the plot, one marked point
 * (the best, a ring) labelled where its label covers no line, axes with ticks and round-number labels, and a
 * title. Each marker carries a <title> tooltip with its exact values.
 *
 * The y range. With a positive reference line the range is centred on it — the reference sits exactly half
 * way up (in the axis' own scale: arithmetically on a linear axis, geometrically on a log axis) — and reaches
 * a little below the lowest value: the region where a curve beats the reference fills the lower half, and
 * its mirror image the upper half. Without a reference the range is that of the finite values, capped at
 * 100× the smallest. A value above the top, and +inf, is drawn as an up-pointing triangle on the top edge
 * ("off the chart") and its line leaves the plot there. NaN points are skipped and break their line.
 * PLOT_SCALE_AUTO is logarithmic when the shown range spans more than 2.5× (a reference more than 1.5× the
 * lowest value), linear otherwise. Tick labels are round numbers (1, 2 or 5 × 10^n steps; on a log axis
 * 1-2-5 per decade, or such linear steps when the range is less than a decade) drawn at their exact
 * positions on that scale, with thousands separators. Nothing non-finite is ever written as a coordinate.
 *
 * Elements are tagged for programs that read the file: class="point" (a shown point), class="offchart",
 * class="best", class="best-label", class="reference", class="reference-label", class="label-box" (the
 * white box behind each of those two labels: the area kept clear of lines), class="frame" (one per panel),
 * class="panel-title", class="xtick", class="ytick". */
#ifndef KN_PLOT_H
#define KN_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "knnlm/sweep.h"

typedef struct {
    const char *label;     /* legend text (UTF-8) */
    const double *x, *y;   /* [n] */
    int n;
} PlotSeries;

typedef enum {
    PLOT_SCALE_AUTO = 0, /* see above */
    PLOT_SCALE_LINEAR,
    PLOT_SCALE_LOG,      /* needs positive values: falls back to linear otherwise */
} PlotScale;

typedef struct {
    const char *title;        /* above the panel; NULL for none */
    const PlotSeries *series; /* [n_series]; the legend takes its labels from the first panel */
    int n_series;
    int has_mark;             /* mark (mark_x, mark_y) with a ring and mark_label beside it */
    double mark_x, mark_y;
    const char *mark_label;
} PlotPanel;

typedef struct {
    const char *title, *x_title, *y_title; /* UTF-8; escaped for XML here */
    const PlotPanel *panels;
    int n_panels;                /* at most 64 */
    double reference_y;          /* the dashed horizontal line in every panel; NAN for none */
    const char *reference_label; /* its label on the line and in the legend */
    const char *mark_legend;     /* the legend's text for the ring; NULL: the first panel's mark_label */
    PlotScale y_scale;
} PlotChart;

/* The SVG document as a malloc'd NUL-terminated string (*len bytes, without the NUL); the caller frees *out. */
int plot_svg(const PlotChart *chart, char **out, size_t *len);

/* plot_svg written atomically to path. */
int plot_write_svg(const PlotChart *chart, const char *path);

/* ---- the sweep's chart (plot_sweep.c) ---- */

/* A finished sweep's perplexities: what the chart needs, from a Sweep or from the JSON it wrote. */
typedef struct {
    uint64_t tokens;
    double lm_ppl;
    double *lambdas;      /* [n_lambdas], ascending */
    int n_lambdas;
    int *ks;              /* [n_ks], ascending */
    int n_ks;
    double *temperatures; /* [n_temperatures], ascending */
    int n_temperatures;
    double *ppl;          /* [n_lambdas][n_ks][n_temperatures]; +inf and NaN allowed */
} SweepGrid;

/* The grid of a sweep. Free with sweep_grid_free. */
int sweep_grid_from_sweep(SweepGrid *g, const Sweep *s);
/* The grid of a JSON file that sweep_write_json wrote (knnlm eval --json): its "tokens", "lm_ppl" and the
 * points of "sweep" (numbers, "inf" strings or null), which must fill the grid of their distinct λ, k and T
 * exactly once each. KN_EFORMAT naming the file and what is wrong otherwise. Free with sweep_grid_free. */
int sweep_grid_read_json(SweepGrid *g, const char *path);
void sweep_grid_free(SweepGrid *g);
/* The lowest perplexity of the grid; ties go to the smaller λ, then k, then T (as sweep_best). ppl is NaN
 * when no point is a number. */
SweepPoint sweep_grid_best(const SweepGrid *g);

/* The sweep's chart: perplexity against λ, one series per k, one panel per temperature, the LM alone as
 * the reference line, the best (λ, k) of each panel marked, with the overall best named in the legend. */
int plot_sweep_grid_svg(const SweepGrid *g, const char *path, PlotScale y_scale);
/* The same chart from a sweep. */
int plot_sweep_svg(const Sweep *s, const char *path, PlotScale y_scale);

/* The retrieval gate's chart: perplexity at the sweep's best point against the share of searches skipped
 * (sweep_best_gate_curve), the LM alone as the reference line, and marked the most skipped whose perplexity is within 1% of searching every token.
 * KN_EINVAL naming path when the sweep has no curve. */
int plot_gate_svg(const Sweep *s, const char *path);

#endif
