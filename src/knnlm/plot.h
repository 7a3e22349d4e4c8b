/* plot.h — a line chart as a standalone SVG file (open it in a browser), and the sweep's perplexity-vs-λ plot.
 *
 * The chart: one polyline with round markers per series, a dashed horizontal reference line, one marked
 * point (the best), axes with ticks and numeric labels, axis titles, a legend on the right and a title.
 * Each marker carries a <title> tooltip with its exact values.
 *
 * Values that do not fit: the y range is taken from the finite values but capped at 100× the smallest of
 * them (or of the reference line): above the cap, and for +inf, a point is drawn as an up-pointing triangle
 * on the top edge ("off the chart") and its line leaves the plot there. NaN points are skipped and break
 * their line. With PLOT_SCALE_AUTO the y axis is logarithmic when the shown range spans more than 10×.
 * Nothing non-finite is ever written as a coordinate.
 *
 * Markers are tagged for programs that read the file: class="point" (a shown point), class="offchart",
 * class="best", class="reference". */
#ifndef KN_PLOT_H
#define KN_PLOT_H

#include <stddef.h>

#include "knnlm/sweep.h"

typedef struct {
    const char *label;     /* legend text (UTF-8) */
    const double *x, *y;   /* [n] */
    int n;
} PlotSeries;

typedef enum {
    PLOT_SCALE_AUTO = 0, /* logarithmic when the shown y values span more than 10×, linear otherwise */
    PLOT_SCALE_LINEAR,
    PLOT_SCALE_LOG,      /* needs positive values: falls back to linear otherwise */
} PlotScale;

typedef struct {
    const char *title, *x_title, *y_title; /* UTF-8; escaped for XML here */
    const PlotSeries *series;
    int n_series;
    double reference_y;          /* the dashed horizontal line; NAN for none */
    const char *reference_label; /* its legend text */
    int has_mark;                /* mark (mark_x, mark_y) with a ring and mark_label beside it */
    double mark_x, mark_y;
    const char *mark_label;
    PlotScale y_scale;
} PlotChart;

/* The SVG document as a malloc'd NUL-terminated string (*len bytes, without the NUL); the caller frees *out. */
int plot_svg(const PlotChart *chart, char **out, size_t *len);

/* plot_svg written atomically to path. */
int plot_write_svg(const PlotChart *chart, const char *path);

/* The sweep's chart: perplexity against λ, one series per k (per k and T when several temperatures were
 * swept), the LM alone as the reference line, the best (λ, k, T) marked. */
int plot_sweep_svg(const Sweep *s, const char *path, PlotScale y_scale);

#endif
