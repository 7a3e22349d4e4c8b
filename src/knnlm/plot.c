/* plot.c — the SVG line chart behind plot.h. */
#include "knnlm/plot.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/file.h"

/* Canvas and plot area, in SVG user units (px). The legend lives in the right margin. */
#define WIDTH 1000
#define HEIGHT 560 /* at least: a long legend makes the canvas taller */
#define LEGEND_ROW 22
#define PLOT_LEFT 90
#define PLOT_RIGHT 690
#define PLOT_TOP 60
#define PLOT_BOTTOM 480
#define OFFCHART_CAP 100.0 /* values above this many times the smallest shown one are drawn off the chart */

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_COLORS (int)(sizeof PALETTE / sizeof PALETTE[0])
/* After the colours run out (11 k × 3 T is 33 series), the lines are told apart by their dashes. */
static const char *const DASHES[] = {"", " stroke-dasharray=\"8 3\"", " stroke-dasharray=\"2 3\""};
#define N_DASHES (int)(sizeof DASHES / sizeof DASHES[0])

/* The data-to-pixel mapping of one chart. */
typedef struct {
    double x_lo, x_hi; /* axis range */
    double y_lo, y_hi; /* axis range (of the values, not of their logarithms) */
    double y_cap;      /* larger values are off the chart */
    int log_y;
} Axes;

/* Coordinates are printed through here, and only finite ones exist: a NaN in an SVG attribute makes the
 * browser drop the element (or the whole document). */
static void put_coord(FILE *f, double v) {
    assert(isfinite(v));
    fprintf(f, "%.2f", isfinite(v) ? v : 0.0); /* the fallback only for a bug the assert would catch */
}

static void put_escaped(FILE *f, const char *text) {
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*p, f);
        }
    }
}

static double px_x(const Axes *a, double x) {
    return PLOT_LEFT + (x - a->x_lo) / (a->x_hi - a->x_lo) * (PLOT_RIGHT - PLOT_LEFT);
}

/* Off-chart values (above the cap, +inf) map above the top edge, where the clip path cuts their line. */
static double px_y(const Axes *a, double y) {
    if (!(y <= a->y_cap))
        return PLOT_TOP - 14;
    double t = a->log_y ? (log10(y) - log10(a->y_lo)) / (log10(a->y_hi) - log10(a->y_lo))
                        : (y - a->y_lo) / (a->y_hi - a->y_lo);
    return PLOT_BOTTOM - t * (PLOT_BOTTOM - PLOT_TOP);
}

/* 1, 2 or 5 × 10^n: a tick step that gives about `want` ticks over range. */
static double nice_step(double range, int want) {
    double raw = range / want, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

/* The range of the x values of all drawn points (off-chart ones included, so that their markers fall inside
 * the plot), or of the finite y values. */
static void range_of_finite(const PlotChart *c, int want_x, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->series[s].n; i++) {
            double x = c->series[s].x[i], y = c->series[s].y[i];
            if (!isfinite(x) || !(want_x ? y > -INFINITY : isfinite(y)))
                continue;
            double v = want_x ? x : y;
            *lo = fmin(*lo, v);
            *hi = fmax(*hi, v);
        }
}

static void make_axes(const PlotChart *c, Axes *a) {
    double lo, hi;
    range_of_finite(c, 1, &lo, &hi);
    if (!(lo <= hi))
        lo = 0, hi = 1;
    if (lo == hi)
        lo -= 0.5, hi += 0.5;
    a->x_lo = lo;
    a->x_hi = hi;

    range_of_finite(c, 0, &lo, &hi);
    if (isfinite(c->reference_y))
        lo = fmin(lo, c->reference_y), hi = fmax(hi, c->reference_y);
    if (c->has_mark && isfinite(c->mark_y))
        lo = fmin(lo, c->mark_y), hi = fmax(hi, c->mark_y);
    if (!(lo <= hi))
        lo = 1, hi = 10;
    /* A kNN-only perplexity can be astronomically larger than the rest (or inf): it would flatten every
     * other line, so it goes off the chart. */
    a->y_cap = lo > 0 ? lo * OFFCHART_CAP : INFINITY;
    if (lo > 0 && hi > a->y_cap) {
        hi = -INFINITY;
        for (int s = 0; s < c->n_series; s++)
            for (int i = 0; i < c->series[s].n; i++)
                if (c->series[s].y[i] <= a->y_cap)
                    hi = fmax(hi, c->series[s].y[i]);
        if (isfinite(c->reference_y))
            hi = fmax(hi, c->reference_y);
    }
    a->log_y = lo > 0 && (c->y_scale == PLOT_SCALE_LOG || (c->y_scale == PLOT_SCALE_AUTO && hi > 10 * lo));
    if (a->log_y) {
        /* 4 % of the logarithmic range on either side, so no marker sits on an edge. */
        double pad = fmax((log10(hi) - log10(lo)) * 0.04, 0.01);
        a->y_lo = pow(10, log10(lo) - pad);
        a->y_hi = pow(10, log10(hi) + pad);
    } else {
        if (hi - lo < 1e-12 * fmax(1, fabs(hi)))
            lo -= fmax(0.5, fabs(lo) * 0.05), hi += fmax(0.5, fabs(hi) * 0.05);
        double step = nice_step(hi - lo, 6);
        a->y_lo = floor(lo / step) * step;
        a->y_hi = ceil(hi / step) * step;
        if (a->y_hi - hi < 0.02 * (a->y_hi - a->y_lo))
            a->y_hi += step;
        if (lo - a->y_lo < 0.02 * (a->y_hi - a->y_lo) && a->y_lo - step >= 0)
            a->y_lo -= step;
    }
    /* Near DBL_MAX the padding overflows: keep the axis finite so that no coordinate becomes NaN. */
    a->y_lo = fmax(a->y_lo, -DBL_MAX);
    a->y_hi = fmin(a->y_hi, DBL_MAX);
    /* Everything up to the axis top is shown; above it is off the chart. */
    a->y_cap = a->y_hi;
}

static void put_tick_label(FILE *f, double x, double y, const char *anchor, double v) {
    fprintf(f, "<text x=\"");
    put_coord(f, x);
    fprintf(f, "\" y=\"");
    put_coord(f, y);
    fprintf(f, "\" text-anchor=\"%s\" font-size=\"12\">%.6g</text>\n", anchor, fabs(v) < 1e-12 ? 0.0 : v);
}

static void put_line(FILE *f, double x1, double y1, double x2, double y2, const char *style) {
    fprintf(f, "<line x1=\"");
    put_coord(f, x1);
    fprintf(f, "\" y1=\"");
    put_coord(f, y1);
    fprintf(f, "\" x2=\"");
    put_coord(f, x2);
    fprintf(f, "\" y2=\"");
    put_coord(f, y2);
    fprintf(f, "\" %s/>\n", style);
}

static void put_axes(FILE *f, const PlotChart *c, const Axes *a) {
    /* Grid lines and tick labels, then the frame on top. */
    double step = nice_step(a->x_hi - a->x_lo, 10);
    for (double i = ceil(a->x_lo / step - 1e-9); i * step <= a->x_hi + 1e-9 * step; i++) {
        double px = px_x(a, i * step);
        put_line(f, px, PLOT_TOP, px, PLOT_BOTTOM, "stroke=\"#e6e6e6\"");
        put_line(f, px, PLOT_BOTTOM, px, PLOT_BOTTOM + 5, "stroke=\"black\"");
        put_tick_label(f, px, PLOT_BOTTOM + 20, "middle", i * step);
    }
    /* y ticks: on a log axis 1, 2, 5 × 10^n (only the powers of ten over many decades); a log axis over less
     * than one such step, and a linear axis, get evenly spaced nice values. */
    double ticks[64];
    int n_ticks = 0;
    if (a->log_y) {
        static const double mantissas[] = {1, 2, 5};
        int many = log10(a->y_hi) - log10(a->y_lo) > 4;
        for (int e = (int)floor(log10(a->y_lo)); e <= (int)ceil(log10(a->y_hi)); e++)
            for (int m = 0; m < (many ? 1 : 3) && n_ticks < 64; m++) {
                double v = mantissas[m] * pow(10, e);
                if (v >= a->y_lo && v <= a->y_hi)
                    ticks[n_ticks++] = v;
            }
    }
    if (n_ticks < 2) {
        n_ticks = 0;
        double ystep = nice_step(a->y_hi - a->y_lo, 6);
        for (double i = ceil(a->y_lo / ystep - 1e-9); i * ystep <= a->y_hi + 1e-9 * ystep && n_ticks < 64; i++)
            ticks[n_ticks++] = i * ystep;
    }
    for (int t = 0; t < n_ticks; t++) {
        if (a->log_y && !(ticks[t] > 0))
            continue;
        double py = px_y(a, ticks[t]);
        put_line(f, PLOT_LEFT, py, PLOT_RIGHT, py, "stroke=\"#e6e6e6\"");
        put_line(f, PLOT_LEFT - 5, py, PLOT_LEFT, py, "stroke=\"black\"");
        put_tick_label(f, PLOT_LEFT - 8, py + 4, "end", ticks[t]);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", PLOT_LEFT,
            PLOT_TOP, PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\">", (PLOT_LEFT + PLOT_RIGHT) / 2,
            PLOT_BOTTOM + 45);
    put_escaped(f, c->x_title);
    fprintf(f, "</text>\n<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">",
            PLOT_LEFT - 60, (PLOT_TOP + PLOT_BOTTOM) / 2);
    put_escaped(f, c->y_title);
    if (a->log_y)
        fputs(" (log scale)", f);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"30\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">",
            WIDTH / 2);
    put_escaped(f, c->title);
    fputs("</text>\n", f);
}

/* The point's tooltip: "label: x = .., y = ..", with the exact y (inf included). */
static void put_tooltip(FILE *f, const char *label, double x, double y, const char *note) {
    fputs("<title>", f);
    put_escaped(f, label);
    fprintf(f, ": x = %.6g, y = %.10g%s</title>", x, y, note);
}

static void put_series(FILE *f, const PlotSeries *s, const char *color, const char *dash, const Axes *a,
                       int *n_offchart) {
    /* The line: a path that starts again (M) after a NaN point, inside the clip path. */
    fprintf(f, "<path clip-path=\"url(#plot-area)\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", color,
            dash);
    int pen_down = 0;
    for (int i = 0; i < s->n; i++) {
        if (!(s->y[i] > -INFINITY) || !isfinite(s->x[i])) { /* NaN, or -inf (no place on any axis) */
            pen_down = 0;
            continue;
        }
        fputc(pen_down ? 'L' : 'M', f);
        put_coord(f, px_x(a, s->x[i]));
        fputc(',', f);
        put_coord(f, px_y(a, s->y[i]));
        fputc(' ', f);
        pen_down = 1;
    }
    fputs("\"/>\n", f);
    for (int i = 0; i < s->n; i++) {
        double x = s->x[i], y = s->y[i];
        if (!(y > -INFINITY) || !isfinite(x))
            continue;
        double px = px_x(a, x);
        if (y <= a->y_cap) {
            fprintf(f, "<circle class=\"point\" cx=\"");
            put_coord(f, px);
            fprintf(f, "\" cy=\"");
            put_coord(f, px_y(a, y));
            fprintf(f, "\" r=\"3.5\" fill=\"%s\">", color);
            put_tooltip(f, s->label, x, y, "");
        } else {
            fprintf(f, "<path class=\"offchart\" d=\"M");
            put_coord(f, px);
            fprintf(f, ",%d l-6,10 l12,0 z\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\">", PLOT_TOP - 2, color);
            put_tooltip(f, s->label, x, y, " (off the chart)");
            ++*n_offchart;
        }
        fputs(y <= a->y_cap ? "</circle>\n" : "</path>\n", f);
    }
}

static void put_legend_entry(FILE *f, int row, const char *swatch, const char *label) {
    int y = PLOT_TOP + 10 + LEGEND_ROW * row;
    fprintf(f, "<g transform=\"translate(%d,%d)\">%s<text x=\"34\" y=\"4\" font-size=\"12\">", PLOT_RIGHT + 20, y,
            swatch);
    put_escaped(f, label);
    fputs("</text></g>\n", f);
}

static void write_chart(FILE *f, const PlotChart *c) {
    Axes a;
    make_axes(c, &a);
    /* Legend rows: the reference, the series, the mark, the off-chart note. */
    int legend_bottom = PLOT_TOP + 10 + LEGEND_ROW * (c->n_series + 3);
    int height = legend_bottom > HEIGHT ? legend_bottom : HEIGHT;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<defs><clipPath id=\"plot-area\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/></clipPath></defs>\n",
            WIDTH, height, WIDTH, height, PLOT_LEFT - 6, PLOT_TOP - 6, PLOT_RIGHT - PLOT_LEFT + 12,
            PLOT_BOTTOM - PLOT_TOP + 12);
    put_axes(f, c, &a);

    int row = 0, n_offchart = 0;
    char swatch[256];
    if (isfinite(c->reference_y) && c->reference_y <= a.y_cap) {
        double py = px_y(&a, c->reference_y);
        fprintf(f, "<line class=\"reference\" x1=\"%d\" y1=\"", PLOT_LEFT);
        put_coord(f, py);
        fprintf(f, "\" x2=\"%d\" y2=\"", PLOT_RIGHT);
        put_coord(f, py);
        fputs("\" stroke=\"black\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n", f);
        put_legend_entry(f, row++, "<line x1=\"0\" y1=\"0\" x2=\"26\" y2=\"0\" stroke=\"black\" stroke-width=\"1.5\" "
                                   "stroke-dasharray=\"6 4\"/>",
                         c->reference_label);
    }
    for (int s = 0; s < c->n_series; s++) {
        const char *color = PALETTE[s % N_COLORS], *dash = DASHES[(s / N_COLORS) % N_DASHES];
        put_series(f, &c->series[s], color, dash, &a, &n_offchart);
        snprintf(swatch, sizeof swatch,
                 "<line x1=\"0\" y1=\"0\" x2=\"26\" y2=\"0\" stroke=\"%s\" stroke-width=\"2\"%s/>"
                 "<circle cx=\"13\" cy=\"0\" r=\"3.5\" fill=\"%s\"/>",
                 color, dash, color);
        put_legend_entry(f, row++, swatch, c->series[s].label);
    }
    if (c->has_mark && isfinite(c->mark_x) && isfinite(c->mark_y) && c->mark_y <= a.y_cap) {
        double px = px_x(&a, c->mark_x), py = px_y(&a, c->mark_y);
        fprintf(f, "<circle class=\"best\" cx=\"");
        put_coord(f, px);
        fprintf(f, "\" cy=\"");
        put_coord(f, py);
        fprintf(f, "\" r=\"8\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/>\n<text x=\"");
        /* The label goes to the side with more room, below the ring (the best point is the lowest). */
        int right = px < (PLOT_LEFT + PLOT_RIGHT) / 2.0;
        put_coord(f, px + (right ? 12 : -12));
        fprintf(f, "\" y=\"");
        put_coord(f, py + (py > PLOT_BOTTOM - 30 ? -14 : 22));
        /* A white halo keeps the label readable where it crosses a line. */
        fprintf(f, "\" text-anchor=\"%s\" font-size=\"12\" font-weight=\"bold\" stroke=\"white\" stroke-width=\"3\" "
                   "paint-order=\"stroke\">",
                right ? "start" : "end");
        put_escaped(f, c->mark_label);
        fputs("</text>\n", f);
        put_legend_entry(f, row++, "<circle cx=\"13\" cy=\"0\" r=\"7\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/>",
                         c->mark_label);
    }
    if (n_offchart)
        put_legend_entry(f, row++, "<path d=\"M13,-6 l-6,10 l12,0 z\" fill=\"#999\" stroke=\"black\" stroke-width=\"0.5\"/>",
                         "above the chart (or inf)");
    fputs("</svg>\n", f);
}

int plot_svg(const PlotChart *chart, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return kn_error(KN_ENOMEM, "plot: out of memory");
    write_chart(f, chart);
    if (fclose(f) != 0) {
        free(text);
        return kn_error(KN_ENOMEM, "plot: out of memory");
    }
    *out = text;
    *len = n;
    return KN_OK;
}

int plot_write_svg(const PlotChart *chart, const char *path) {
    char *text;
    size_t len;
    int rc = plot_svg(chart, &text, &len);
    if (rc)
        return kn_error_wrap(rc, "%s", path);
    rc = file_write_atomic(path, text, len);
    free(text);
    return rc;
}

int plot_sweep_svg(const Sweep *s, const char *path, PlotScale y_scale) {
    const SweepConfig *c = sweep_config(s);
    int n_series = c->n_ks * c->n_temperatures, nl = c->n_lambdas;
    PlotSeries *series = calloc((size_t)n_series, sizeof *series);
    double *y = malloc((size_t)n_series * (size_t)nl * sizeof *y);
    char (*labels)[64] = malloc((size_t)n_series * sizeof *labels);
    if (!series || !y || !labels) {
        free(series), free(y), free(labels);
        return kn_error(KN_ENOMEM, "%s: out of memory for the plot", path);
    }
    for (int ki = 0; ki < c->n_ks; ki++)
        for (int ti = 0; ti < c->n_temperatures; ti++) {
            int si = ki * c->n_temperatures + ti;
            if (c->n_temperatures > 1)
                snprintf(labels[si], sizeof labels[si], "k = %d, T = %g", c->ks[ki], c->temperatures[ti]);
            else
                snprintf(labels[si], sizeof labels[si], "k = %d", c->ks[ki]);
            for (int li = 0; li < nl; li++)
                y[(size_t)si * nl + li] = sweep_ppl(s, li, ki, ti);
            series[si] = (PlotSeries){labels[si], c->lambdas, &y[(size_t)si * nl], nl};
        }
    SweepPoint best = sweep_best(s);
    double lm = sweep_lm_ppl(s);
    char title[128], ref_label[64], mark_label[96];
    snprintf(title, sizeof title, "kNN-LM perplexity against \xCE\xBB (%llu tokens)", (unsigned long long)sweep_tokens(s));
    snprintf(ref_label, sizeof ref_label, "LM alone (%.2f)", lm);
    if (c->n_temperatures > 1)
        snprintf(mark_label, sizeof mark_label, "best: \xCE\xBB = %g, k = %d, T = %g (%.2f)", best.lambda, best.k,
                 best.temperature, best.ppl);
    else
        snprintf(mark_label, sizeof mark_label, "best: \xCE\xBB = %g, k = %d (%.2f)", best.lambda, best.k, best.ppl);
    PlotChart chart = {
        .title = title,
        .x_title = "\xCE\xBB (kNN weight)",
        .y_title = "perplexity",
        .series = series,
        .n_series = n_series,
        .reference_y = lm,
        .reference_label = ref_label,
        .has_mark = 1,
        .mark_x = best.lambda,
        .mark_y = best.ppl,
        .mark_label = mark_label,
        .y_scale = y_scale,
    };
    int rc = plot_write_svg(&chart, path);
    free(series), free(y), free(labels);
    return rc;
}
