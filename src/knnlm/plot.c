/* plot.c — the SVG line chart behind plot.h: the y range, the ticks, the panels and where the labels go. */
#include "knnlm/plot.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/file.h"

/* Layout, in SVG user units (px). A panel's cell: the y tick labels and title on its left, its title above,
 * the x tick labels and title below; the legend lives right of the last column. */
#define HEADER 40             /* the chart's title */
#define CELL_LEFT 90
#define CELL_RIGHT 30
#define CELL_TOP 20           /* + PANEL_TITLE when the panel has a title */
#define PANEL_TITLE 24
#define CELL_BOTTOM 60
#define ONE_W 600             /* the plot area of a lone panel */
#define ONE_H 420
#define MANY_W 430            /* ... and of each of several */
#define MANY_H 300
#define LEGEND_W 300
#define LEGEND_ROW 22
#define MIN_HEIGHT 560
#define OFFCHART_CAP 100.0    /* without a reference: values above this many times the smallest are off the chart */
#define AUTO_LOG_RATIO 1.5    /* PLOT_SCALE_AUTO: a log axis when the reference is above this many times the lowest value */
#define LINE_HEIGHT 15        /* px between the lines of a label */
#define TICK_LABEL_GAP 15     /* px: a tick label closer than this to the previous one is left out */

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_COLORS (int)(sizeof PALETTE / sizeof PALETTE[0])
/* After the colours run out, the lines are told apart by their dashes. */
static const char *const DASHES[] = {"", " stroke-dasharray=\"8 3\"", " stroke-dasharray=\"2 3\""};
#define N_DASHES (int)(sizeof DASHES / sizeof DASHES[0])

/* The y range every panel shares. */
typedef struct {
    double lo, hi; /* of the values, not of their logarithms */
    int log;
} YRange;

/* The data-to-pixel mapping of one panel. */
typedef struct {
    double x_lo, x_hi;
    YRange y;
    double left, right, top, bottom; /* the plot area */
} Axes;

/* A rectangle in px, and a line segment (a point is a segment of length 0): what labels must not cover. */
typedef struct {
    double x0, y0, x1, y1;
} Box;

typedef struct {
    Box *seg; /* x0,y0 -> x1,y1 */
    int n, cap;
} Obstacles;

/* ---- small writers ---- */

/* The document being written: a growing buffer rather than a FILE (open_memstream), so that a failed
 * allocation is never a silently dropped piece of text: it is remembered and reported at the end. */
typedef struct {
    char *data;
    size_t len, cap; /* cap > len always: data is NUL-terminated */
    int failed;
} Svg;

static void svg_printf(Svg *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void svg_printf(Svg *b, const char *fmt, ...) {
    while (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = 2 * b->cap;
        while (n >= 0 && cap - b->len <= (size_t)n)
            cap *= 2;
        char *data = n >= 0 ? realloc(b->data, cap) : NULL;
        if (!data)
            b->failed = 1;
        else
            b->data = data, b->cap = cap;
    }
}

static void svg_puts(Svg *b, const char *s) { svg_printf(b, "%s", s); }
static void svg_putc(Svg *b, char c) { svg_printf(b, "%c", c); }


/* Coordinates are printed through here, and only finite ones exist: a NaN in an SVG attribute makes the
 * browser drop the element (or the whole document). */
static void put_coord(Svg *f, double v) {
    assert(isfinite(v));
    svg_printf(f, "%.2f", isfinite(v) ? v : 0.0); /* the fallback only for a bug the assert would catch */
}

static void put_escaped(Svg *f, const char *text) {
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '&': svg_puts(f, "&amp;"); break;
        case '<': svg_puts(f, "&lt;"); break;
        case '>': svg_puts(f, "&gt;"); break;
        case '"': svg_puts(f, "&quot;"); break;
        default: svg_putc(f, *p);
        }
    }
}

static void put_line(Svg *f, double x1, double y1, double x2, double y2, const char *style) {
    svg_printf(f, "<line x1=\"");
    put_coord(f, x1);
    svg_printf(f, "\" y1=\"");
    put_coord(f, y1);
    svg_printf(f, "\" x2=\"");
    put_coord(f, x2);
    svg_printf(f, "\" y2=\"");
    put_coord(f, y2);
    svg_printf(f, "\" %s/>\n", style);
}

/* A tick value with `decimals` decimals and thousands separators: 2,400 or 0.25. */
static void format_tick(char *buf, size_t cap, double v, int decimals) {
    char digits[400];
    snprintf(digits, sizeof digits, "%.*f", decimals, fabs(v) < 1e-12 ? 0.0 : v);
    const char *p = digits;
    size_t o = 0;
    if (*p == '-')
        buf[o++] = *p++;
    size_t int_len = strcspn(p, ".");
    for (size_t i = 0; p[i] && o + 2 < cap; i++) {
        if (i > 0 && i < int_len && (int_len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = p[i];
    }
    buf[o] = '\0';
}

/* The decimals that show a multiple of step (1, 2 or 5 × 10^n) exactly. */
static int step_decimals(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 12 ? 12 : d;
}

/* An estimate of a label's width in px (of its longest line), on the wide side for DejaVu Sans, the usual
 * sans-serif on Linux: Hangul and other wide characters a full em, everything else about two thirds. */
static double text_width(const char *s, double font_size, int bold) {
    double em = 0, widest = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        int len = *p < 0x80 ? 1 : *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;
        if (*p == '\n')
            em = 0;
        else
            em += *p == ' ' ? 0.34 : len >= 3 ? 1.0 : bold ? 0.7 : 0.62;
        widest = fmax(widest, em);
        for (int i = 0; i < len && *p; i++)
            p++;
    }
    return widest * font_size;
}

static int text_lines(const char *s) {
    int n = 1;
    for (const char *p = s ? s : ""; *p; p++)
        n += *p == '\n';
    return n;
}

/* ---- the y range and the ticks ---- */

/* 1, 2 or 5 × 10^n: a tick step that gives about `want` ticks over range. */
static double nice_step(double range, int want) {
    double raw = range / want, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

/* Over every panel: the range of the finite y values (want_x 0), or of the x values of all drawn points
 * (want_x 1: off-chart ones included, so that their markers fall inside the plot). */
static void range_of(const PlotChart *c, int want_x, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int p = 0; p < c->n_panels; p++)
        for (int s = 0; s < c->panels[p].n_series; s++) {
            const PlotSeries *ser = &c->panels[p].series[s];
            for (int i = 0; i < ser->n; i++) {
                double x = ser->x[i], y = ser->y[i];
                if (!isfinite(x) || !(want_x ? y > -INFINITY : isfinite(y)))
                    continue;
                double v = want_x ? x : y;
                *lo = fmin(*lo, v);
                *hi = fmax(*hi, v);
            }
        }
}

/* Centred on the reference (see plot.h): ref is exactly half way up. */
static YRange centred_range(double ref, double lowest, PlotScale scale) {
    YRange r;
    double ratio = ref / lowest;
    r.log = scale == PLOT_SCALE_LOG || (scale == PLOT_SCALE_AUTO && ratio > AUTO_LOG_RATIO);
    if (r.log) {
        double f = fmax(pow(ratio, 1.15), 1.05); /* 15 % of the log distance below the lowest value */
        r.lo = ref / f;
        r.hi = ref * f;
    } else {
        double half = fmax(1.15 * (ref - lowest), 0.05 * ref), step = nice_step(2 * half, 6);
        r.lo = fmax(floor((ref - half) / step) * step, 0); /* a tick on the bottom edge */
        r.hi = 2 * ref - r.lo;
    }
    return r;
}

/* Without a reference: the finite values' range, capped at OFFCHART_CAP × the smallest, padded. */
static YRange data_range(double lo, double hi, const PlotChart *c) {
    YRange r;
    if (!(lo <= hi))
        lo = 1, hi = 10;
    if (lo > 0 && hi > lo * OFFCHART_CAP) {
        double cap = lo * OFFCHART_CAP;
        hi = lo;
        for (int p = 0; p < c->n_panels; p++)
            for (int s = 0; s < c->panels[p].n_series; s++)
                for (int i = 0; i < c->panels[p].series[s].n; i++)
                    if (c->panels[p].series[s].y[i] <= cap)
                        hi = fmax(hi, c->panels[p].series[s].y[i]);
    }
    r.log = lo > 0 && (c->y_scale == PLOT_SCALE_LOG || (c->y_scale == PLOT_SCALE_AUTO && hi > 10 * lo));
    if (r.log) {
        double pad = fmax((log10(hi) - log10(lo)) * 0.04, 0.01); /* no marker on an edge */
        r.lo = pow(10, log10(lo) - pad);
        r.hi = pow(10, log10(hi) + pad);
    } else {
        if (hi - lo < 1e-12 * fmax(1, fabs(hi)))
            lo -= fmax(0.5, fabs(lo) * 0.05), hi += fmax(0.5, fabs(hi) * 0.05);
        double step = nice_step(hi - lo, 6);
        r.lo = floor(lo / step) * step;
        r.hi = ceil(hi / step) * step;
        if (r.hi - hi < 0.02 * (r.hi - r.lo))
            r.hi += step;
        if (lo - r.lo < 0.02 * (r.hi - r.lo) && r.lo - step >= 0)
            r.lo -= step;
    }
    return r;
}

static YRange make_y_range(const PlotChart *c) {
    double lo, hi;
    range_of(c, 0, &lo, &hi);
    for (int p = 0; p < c->n_panels; p++)
        if (c->panels[p].has_mark && isfinite(c->panels[p].mark_y))
            lo = fmin(lo, c->panels[p].mark_y), hi = fmax(hi, c->panels[p].mark_y);
    double ref = c->reference_y;
    YRange r;
    if (isfinite(ref) && ref > 0 && !(lo <= 0))
        r = centred_range(ref, fmin(isfinite(lo) ? lo : ref, ref), c->y_scale);
    else {
        if (isfinite(ref))
            lo = fmin(lo, ref), hi = fmax(hi, ref);
        r = data_range(lo, hi, c);
    }
    /* Near DBL_MAX the padding overflows: keep the axis finite so that no coordinate becomes NaN. */
    r.lo = fmax(r.lo, -DBL_MAX);
    r.hi = fmin(r.hi, DBL_MAX);
    if (!(r.lo < r.hi)) /* a range that rounding collapsed */
        r.hi = r.lo + fmax(fabs(r.lo), 1);
    if (r.log && !(r.lo > 0))
        r.log = 0;
    return r;
}

static double px_x(const Axes *a, double x) {
    return a->left + (x - a->x_lo) / (a->x_hi - a->x_lo) * (a->right - a->left);
}

static int off_chart(const Axes *a, double y) { return !(y <= a->y.hi); }

/* Off-chart values (above the top, +inf) map above the top edge, where the clip path cuts their line. */
static double px_y(const Axes *a, double y) {
    if (off_chart(a, y))
        return a->top - 14;
    double t = a->y.log ? (log10(y) - log10(a->y.lo)) / (log10(a->y.hi) - log10(a->y.lo))
                        : (y - a->y.lo) / (a->y.hi - a->y.lo);
    return a->bottom - t * (a->bottom - a->top);
}

/* The y tick values, ascending, and the decimals their labels need. */
static int y_ticks(const YRange *r, double *ticks, int cap, int *decimals) {
    int n = 0;
    *decimals = 0;
    double decades = r->log ? log10(r->hi) - log10(r->lo) : 0;
    if (r->log && decades >= 1) {
        static const double mantissas[] = {1, 2, 5};
        int many = decades > 4;
        for (int e = (int)floor(log10(r->lo)); e <= (int)ceil(log10(r->hi)); e++)
            for (int m = 0; m < (many ? 1 : 3) && n < cap; m++) {
                double v = mantissas[m] * pow(10, e);
                if (v >= r->lo * (1 - 1e-12) && v <= r->hi * (1 + 1e-12)) {
                    ticks[n++] = v;
                    if (e < 0 && -e > *decimals)
                        *decimals = -e;
                }
            }
    }
    if (n < 3) { /* a linear axis, or a log axis over less than a decade: evenly spaced round values */
        n = 0;
        double step = nice_step(r->hi - r->lo, r->log ? 8 : 6); /* log: denser, as the top ticks crowd */
        *decimals = step_decimals(step);
        for (double i = ceil(r->lo / step - 1e-9); i * step <= r->hi + 1e-9 * step && n < cap; i++)
            if (!r->log || i * step > 0)
                ticks[n++] = i * step;
    }
    return n;
}

/* ---- label placement ---- */

static int obstacles_add(Obstacles *o, double x0, double y0, double x1, double y1) {
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 256;
        Box *seg = realloc(o->seg, (size_t)cap * sizeof *seg);
        if (!seg)
            return KN_ENOMEM;
        o->seg = seg;
        o->cap = cap;
    }
    o->seg[o->n++] = (Box){x0, y0, x1, y1};
    return KN_OK;
}

/* Whether the segment s meets the box b (Liang–Barsky clipping). */
static int segment_meets_box(const Box *s, const Box *b) {
    double t0 = 0, t1 = 1, dx = s->x1 - s->x0, dy = s->y1 - s->y0;
    const double p[4] = {-dx, dx, -dy, dy}, q[4] = {s->x0 - b->x0, b->x1 - s->x0, s->y0 - b->y0, b->y1 - s->y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0)
                return 0;
        } else {
            double t = q[i] / p[i];
            if (p[i] < 0)
                t0 = fmax(t0, t);
            else
                t1 = fmin(t1, t);
        }
    }
    return t0 <= t1;
}

/* How many obstacles the box (grown by margin px) covers. */
static int box_hits(const Obstacles *o, Box b, double margin) {
    b.x0 -= margin, b.y0 -= margin, b.x1 += margin, b.y1 += margin;
    int hits = 0;
    for (int i = 0; i < o->n; i++)
        hits += segment_meets_box(&o->seg[i], &b);
    return hits;
}

static int box_inside(const Box *b, const Axes *a) {
    return b->x0 >= a->left + 2 && b->x1 <= a->right - 2 && b->y0 >= a->top + 2 && b->y1 <= a->bottom - 2;
}

/* Where a w × h label goes: the first of the preferred candidate boxes that lies inside the plot and covers
 * nothing; else, with search_far, the free box nearest to (px, py) on a 6 px grid over the whole plot; else
 * the candidate that covers least. */
static Box place_label(const Box *cand, int n, double w, double h, double px, double py, int search_far,
                       const Obstacles *o, const Axes *a) {
    int best = -1, best_hits = 0;
    for (int i = 0; i < n; i++) {
        if (!box_inside(&cand[i], a))
            continue;
        int hits = box_hits(o, cand[i], 2);
        if (hits == 0)
            return cand[i];
        if (best < 0 || hits < best_hits)
            best = i, best_hits = hits;
    }
    Box found = {0};
    double found_d = INFINITY;
    for (double y0 = a->top + 3; search_far && y0 + h <= a->bottom - 3; y0 += 6)
        for (double x0 = a->left + 3; x0 + w <= a->right - 3; x0 += 6) {
            Box b = {x0, y0, x0 + w, y0 + h};
            double dx = fmax(fmax(b.x0 - px, px - b.x1), 0), dy = fmax(fmax(b.y0 - py, py - b.y1), 0);
            double d = hypot(dx, dy);
            if (d < found_d && box_hits(o, b, 2) == 0)
                found = b, found_d = d;
        }
    if (isfinite(found_d))
        return found;
    return cand[best < 0 ? 0 : best];
}

/* A label in a white box: the box (class label-box) then the text (class cls), centred in it, one tspan
 * per line ('\n' separates them). */
static void put_boxed_label(Svg *f, const Box *b, const char *cls, const char *text, int bold) {
    svg_printf(f, "<rect class=\"label-box\" x=\"");
    put_coord(f, b->x0);
    svg_printf(f, "\" y=\"");
    put_coord(f, b->y0);
    svg_printf(f, "\" width=\"");
    put_coord(f, b->x1 - b->x0);
    svg_printf(f, "\" height=\"");
    put_coord(f, b->y1 - b->y0);
    svg_printf(f, "\" rx=\"3\" fill=\"white\" fill-opacity=\"0.9\" stroke=\"#bbb\" stroke-width=\"0.5\"/>\n"
               "<text class=\"%s\" x=\"", cls);
    double cx = (b->x0 + b->x1) / 2;
    put_coord(f, cx);
    svg_printf(f, "\" y=\"");
    put_coord(f, b->y0 + 13);
    svg_printf(f, "\" text-anchor=\"middle\" font-size=\"12\"%s>", bold ? " font-weight=\"bold\"" : "");
    char line[256];
    for (const char *p = text ? text : "", *end; *p || p == text; p = *end ? end + 1 : end) {
        end = p + strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(end - p), p);
        svg_printf(f, "<tspan x=\"");
        put_coord(f, cx);
        svg_printf(f, "\" dy=\"%d\">", p == text ? 0 : LINE_HEIGHT);
        put_escaped(f, line);
        svg_puts(f, "</tspan>");
        if (!*end)
            break;
    }
    svg_puts(f, "</text>\n");
}

/* ---- one panel ---- */

static void put_axes(Svg *f, const PlotChart *c, const PlotPanel *panel, const Axes *a) {
    char label[64];
    /* Grid lines and tick labels, then the frame on top. */
    double step = nice_step(a->x_hi - a->x_lo, 10);
    for (double i = ceil(a->x_lo / step - 1e-9); i * step <= a->x_hi + 1e-9 * step; i++) {
        double px = px_x(a, i * step);
        put_line(f, px, a->top, px, a->bottom, "stroke=\"#e6e6e6\"");
        put_line(f, px, a->bottom, px, a->bottom + 5, "stroke=\"black\"");
        format_tick(label, sizeof label, i * step, step_decimals(step));
        svg_printf(f, "<text class=\"xtick\" x=\"");
        put_coord(f, px);
        svg_printf(f, "\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n", a->bottom + 20, label);
    }
    double ticks[64];
    int decimals, n_ticks = y_ticks(&a->y, ticks, 64, &decimals);
    double last_label_py = INFINITY;
    for (int t = 0; t < n_ticks; t++) {
        double py = px_y(a, ticks[t]);
        put_line(f, a->left, py, a->right, py, "stroke=\"#e6e6e6\"");
        put_line(f, a->left - 5, py, a->left, py, "stroke=\"black\"");
        if (last_label_py - py < TICK_LABEL_GAP)
            continue;
        last_label_py = py;
        format_tick(label, sizeof label, ticks[t], decimals);
        svg_printf(f, "<text class=\"ytick\" x=\"%.2f\" y=\"", a->left - 8);
        put_coord(f, py + 4);
        svg_printf(f, "\" text-anchor=\"end\" font-size=\"12\">%s</text>\n", label);
    }
    svg_printf(f, "<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
               "stroke=\"black\"/>\n", a->left, a->top, a->right - a->left, a->bottom - a->top);
    svg_printf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"14\">", (a->left + a->right) / 2,
            a->bottom + 45);
    put_escaped(f, c->x_title);
    svg_printf(f, "</text>\n<text transform=\"translate(%.2f,%.2f) rotate(-90)\" text-anchor=\"middle\" "
               "font-size=\"14\">", a->left - 66, (a->top + a->bottom) / 2);
    put_escaped(f, c->y_title);
    if (a->y.log)
        svg_puts(f, " (log scale)");
    svg_puts(f, "</text>\n");
    if (panel->title) {
        svg_printf(f, "<text class=\"panel-title\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"14\" "
                   "font-weight=\"bold\">", (a->left + a->right) / 2, a->top - 16);
        put_escaped(f, panel->title);
        svg_puts(f, "</text>\n");
    }
}

/* The point's tooltip: "label: x = .., y = ..", with the exact y (inf included). */
static void put_tooltip(Svg *f, const char *label, double x, double y, const char *note) {
    svg_puts(f, "<title>");
    put_escaped(f, label);
    svg_printf(f, ": x = %.6g, y = %.10g%s</title>", x, y, note);
}

static int drawn(double x, double y) { return isfinite(x) && y > -INFINITY; } /* NaN and -inf have no place */

/* One series: the line (a path that starts again, M, after a NaN point, inside the clip path), its markers,
 * and its segments and points added to the obstacles the labels avoid. */
static int put_series(Svg *f, const PlotSeries *s, int index, const char *clip, const Axes *a, Obstacles *obst,
                      int *n_offchart) {
    const char *color = PALETTE[index % N_COLORS], *dash = DASHES[(index / N_COLORS) % N_DASHES];
    svg_printf(f, "<path class=\"series\" clip-path=\"url(#%s)\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"",
            clip, color, dash);
    int pen_down = 0, rc = KN_OK;
    double last_x = 0, last_y = 0;
    for (int i = 0; i < s->n; i++) {
        if (!drawn(s->x[i], s->y[i])) {
            pen_down = 0;
            continue;
        }
        double px = px_x(a, s->x[i]), py = px_y(a, s->y[i]);
        svg_putc(f, pen_down ? 'L' : 'M');
        put_coord(f, px);
        svg_putc(f, ',');
        put_coord(f, py);
        svg_putc(f, ' ');
        if (rc == KN_OK)
            rc = obstacles_add(obst, pen_down ? last_x : px, pen_down ? last_y : py, px, py);
        pen_down = 1;
        last_x = px, last_y = py;
    }
    svg_puts(f, "\"/>\n");
    for (int i = 0; i < s->n; i++) {
        double x = s->x[i], y = s->y[i];
        if (!drawn(x, y))
            continue;
        double px = px_x(a, x);
        if (!off_chart(a, y)) {
            svg_printf(f, "<circle class=\"point\" cx=\"");
            put_coord(f, px);
            svg_printf(f, "\" cy=\"");
            put_coord(f, px_y(a, y));
            svg_printf(f, "\" r=\"3.5\" fill=\"%s\">", color);
            put_tooltip(f, s->label, x, y, "");
            svg_puts(f, "</circle>\n");
        } else {
            svg_printf(f, "<path class=\"offchart\" d=\"M");
            put_coord(f, px);
            svg_printf(f, ",%.2f l-6,10 l12,0 z\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\">", a->top - 2, color);
            put_tooltip(f, s->label, x, y, " (off the chart)");
            svg_puts(f, "</path>\n");
            ++*n_offchart;
        }
    }
    return rc;
}

/* The reference line and its label, on the side of the line (ends first, then the middle) that covers no
 * curve; the label's box becomes an obstacle for the mark's label. */
static int put_reference(Svg *f, const PlotChart *c, const Axes *a, Obstacles *obst) {
    double py = px_y(a, c->reference_y);
    svg_printf(f, "<line class=\"reference\" x1=\"%.2f\" y1=\"", a->left);
    put_coord(f, py);
    svg_printf(f, "\" x2=\"%.2f\" y2=\"", a->right);
    put_coord(f, py);
    svg_puts(f, "\" stroke=\"black\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n");
    double w = text_width(c->reference_label, 12, 0) + 10, h = 18;
    const double xs[] = {a->right - 6 - w, a->left + 6, (a->left + a->right - w) / 2, a->left + (a->right - a->left) * 0.25,
                         a->left + (a->right - a->left) * 0.75 - w};
    Box cand[10];
    int n = 0;
    for (int i = 0; i < 5; i++) {
        cand[n++] = (Box){xs[i], py - 3 - h, xs[i] + w, py - 3};
        cand[n++] = (Box){xs[i], py + 3, xs[i] + w, py + 3 + h};
    }
    Box b = place_label(cand, n, w, h, a->right, py, 0, obst, a);
    put_boxed_label(f, &b, "reference-label", c->reference_label, 0);
    int rc = obstacles_add(obst, a->left, py, a->right, py);
    if (rc == KN_OK) rc = obstacles_add(obst, b.x0, b.y0, b.x1, b.y1); /* its diagonal: a box meets it iff it overlaps */
    if (rc == KN_OK) rc = obstacles_add(obst, b.x0, b.y1, b.x1, b.y0);
    return rc;
}

/* The ring around the best point and its label: next to it if some place there covers no line, else
 * further up or down with a leader line. */
static void put_mark(Svg *f, const PlotPanel *p, const Axes *a, const Obstacles *obst) {
    double px = px_x(a, p->mark_x), py = px_y(a, p->mark_y);
    svg_printf(f, "<circle class=\"best\" cx=\"");
    put_coord(f, px);
    svg_printf(f, "\" cy=\"");
    put_coord(f, py);
    svg_printf(f, "\" r=\"8\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/>\n");
    double w = text_width(p->mark_label, 12, 1) + 10, h = 5 + LINE_HEIGHT * text_lines(p->mark_label);
    Box cand[64];
    int n = 0;
    const double dys[] = {12, 40, 70, 100, 140, 180};
    for (int d = 0; d < 6; d++)
        for (int below = 1; below >= 0; below--) {
            double y0 = below ? py + dys[d] : py - dys[d] - h;
            cand[n++] = (Box){px + 10, y0, px + 10 + w, y0 + h};
            cand[n++] = (Box){px - 10 - w, y0, px - 10, y0 + h};
            cand[n++] = (Box){px - w / 2, y0, px + w / 2, y0 + h};
        }
    cand[n++] = (Box){px + 14, py - h / 2, px + 14 + w, py + h / 2};
    cand[n++] = (Box){px - 14 - w, py - h / 2, px - 14, py + h / 2};
    Box b = place_label(cand, n, w, h, px, py, 1, obst, a);
    /* Far from its point, a leader line from the ring to the nearest point of the box says which point it
     * names. */
    double cx = fmin(fmax(px, b.x0), b.x1), cy = fmin(fmax(py, b.y0), b.y1), d = hypot(cx - px, cy - py);
    if (d > 20)
        put_line(f, px + 8 * (cx - px) / d, py + 8 * (cy - py) / d, cx, cy, "stroke=\"black\" stroke-width=\"1\"");
    put_boxed_label(f, &b, "best-label", p->mark_label, 1);
}

static int put_panel(Svg *f, const PlotChart *c, int pi, const Axes *a, int *n_offchart) {
    const PlotPanel *p = &c->panels[pi];
    char clip[32];
    snprintf(clip, sizeof clip, pi == 0 ? "plot-area" : "plot-area-%d", pi + 1);
    put_axes(f, c, p, a);
    Obstacles obst = {0};
    int rc = KN_OK;
    for (int s = 0; s < p->n_series && rc == KN_OK; s++)
        rc = put_series(f, &p->series[s], s, clip, a, &obst, n_offchart);
    /* The ring is an obstacle for the reference's label too. */
    int has_mark = p->has_mark && isfinite(p->mark_x) && isfinite(p->mark_y) && !off_chart(a, p->mark_y);
    if (rc == KN_OK && has_mark) {
        double px = px_x(a, p->mark_x), py = px_y(a, p->mark_y);
        rc = obstacles_add(&obst, px - 9, py - 9, px + 9, py + 9);
        if (rc == KN_OK) rc = obstacles_add(&obst, px - 9, py + 9, px + 9, py - 9);
    }
    if (rc == KN_OK && isfinite(c->reference_y) && !off_chart(a, c->reference_y) && c->reference_y >= a->y.lo)
        rc = put_reference(f, c, a, &obst);
    if (rc == KN_OK && has_mark)
        put_mark(f, p, a, &obst);
    free(obst.seg);
    return rc;
}

/* ---- the chart ---- */

static void put_legend_entry(Svg *f, double x, double y, const char *swatch, const char *label) {
    svg_printf(f, "<g transform=\"translate(%.2f,%.2f)\">%s<text x=\"34\" y=\"4\" font-size=\"12\">", x, y, swatch);
    put_escaped(f, label);
    svg_puts(f, "</text></g>\n");
}

/* The legend, right of the panels: the reference, the series (of the first panel), the ring, the
 * off-chart note. */
static void put_legend(Svg *f, const PlotChart *c, const Axes *axes, int n_offchart, double x, double top) {
    int row = 0, n_legend = c->n_panels ? c->panels[0].n_series : 0;
    char swatch[256];
    if (isfinite(c->reference_y))
        put_legend_entry(f, x, top + LEGEND_ROW * row++,
                         "<line x1=\"0\" y1=\"0\" x2=\"26\" y2=\"0\" stroke=\"black\" stroke-width=\"1.5\" "
                         "stroke-dasharray=\"6 4\"/>", c->reference_label);
    for (int s = 0; s < n_legend; s++) {
        const char *color = PALETTE[s % N_COLORS], *dash = DASHES[(s / N_COLORS) % N_DASHES];
        snprintf(swatch, sizeof swatch,
                 "<line x1=\"0\" y1=\"0\" x2=\"26\" y2=\"0\" stroke=\"%s\" stroke-width=\"2\"%s/>"
                 "<circle cx=\"13\" cy=\"0\" r=\"3.5\" fill=\"%s\"/>", color, dash, color);
        put_legend_entry(f, x, top + LEGEND_ROW * row++, swatch, c->panels[0].series[s].label);
    }
    int any_mark = 0;
    for (int p = 0; p < c->n_panels; p++)
        any_mark |= c->panels[p].has_mark && isfinite(c->panels[p].mark_x) && isfinite(c->panels[p].mark_y) &&
                    !off_chart(&axes[p], c->panels[p].mark_y);
    if (any_mark)
        put_legend_entry(f, x, top + LEGEND_ROW * row++,
                         "<circle cx=\"13\" cy=\"0\" r=\"7\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/>",
                         c->mark_legend ? c->mark_legend : c->panels[0].mark_label);
    if (n_offchart)
        put_legend_entry(f, x, top + LEGEND_ROW * row++,
                         "<path d=\"M13,-6 l-6,10 l12,0 z\" fill=\"#999\" stroke=\"black\" stroke-width=\"0.5\"/>",
                         "above the chart (or inf)");
}

static int write_chart(Svg *f, const PlotChart *c) {
    int n_panels = c->n_panels > 0 ? c->n_panels : 1;
    if (n_panels > 64)
        return kn_error(KN_EINVAL, "plot: %d panels; at most 64", n_panels);
    int cols = (int)ceil(sqrt((double)n_panels) - 1e-9), rows = (n_panels + cols - 1) / cols;
    int titled = 0;
    for (int p = 0; p < c->n_panels; p++)
        titled |= c->panels[p].title != NULL;
    double pw = n_panels == 1 ? ONE_W : MANY_W, ph = n_panels == 1 ? ONE_H : MANY_H;
    double cell_w = CELL_LEFT + pw + CELL_RIGHT, cell_top = CELL_TOP + (titled ? PANEL_TITLE : 0);
    double cell_h = cell_top + ph + CELL_BOTTOM;
    const PlotSeries *series0 = c->n_panels ? c->panels[0].series : NULL;
    int n_legend = c->n_panels ? c->panels[0].n_series : 0;
    double legend_x = cols * cell_w - CELL_RIGHT + 20, legend_top = HEADER + cell_top + 10, legend_w = LEGEND_W;
    const char *legend_texts[] = {c->reference_label, c->mark_legend ? c->mark_legend : c->n_panels ? c->panels[0].mark_label : NULL};
    for (int i = 0; i < 2 + n_legend; i++)
        legend_w = fmax(legend_w, 20 + 34 + 12 + text_width(i < 2 ? legend_texts[i] : series0[i - 2].label, 12, 0));
    double legend_bottom = legend_top + LEGEND_ROW * (n_legend + 3);
    double width = cols * cell_w + legend_w - CELL_RIGHT, height = fmax(HEADER + rows * cell_h, legend_bottom);
    if (height < MIN_HEIGHT && n_panels == 1)
        height = MIN_HEIGHT;
    svg_printf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<defs>",
            width, height, width, height);
    Axes axes[64];
    double x_lo, x_hi;
    range_of(c, 1, &x_lo, &x_hi);
    if (!(x_lo <= x_hi))
        x_lo = 0, x_hi = 1;
    if (x_lo == x_hi)
        x_lo -= 0.5, x_hi += 0.5;
    YRange y = make_y_range(c);
    for (int p = 0; p < n_panels; p++) {
        double ox = (p % cols) * cell_w, oy = HEADER + (p / cols) * cell_h;
        axes[p] = (Axes){x_lo, x_hi, y, ox + CELL_LEFT, ox + CELL_LEFT + pw, oy + cell_top, oy + cell_top + ph};
        svg_printf(f, p == 0 ? "<clipPath id=\"plot-area\">" : "<clipPath id=\"plot-area-%d\">", p + 1);
        svg_printf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/></clipPath>", axes[p].left - 6,
                axes[p].top - 6, pw + 12, ph + 12);
    }
    svg_puts(f, "</defs>\n");
    svg_printf(f, "<text x=\"%.2f\" y=\"28\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">",
            (cols * cell_w) / 2);
    put_escaped(f, c->title);
    svg_puts(f, "</text>\n");

    int n_offchart = 0, rc = KN_OK;
    for (int p = 0; p < c->n_panels && rc == KN_OK; p++)
        rc = put_panel(f, c, p, &axes[p], &n_offchart);
    if (c->n_panels == 0)
        put_axes(f, c, &(PlotPanel){0}, &axes[0]);

    put_legend(f, c, axes, n_offchart, legend_x, legend_top);
    svg_puts(f, "</svg>\n");
    return rc;
}

int plot_svg(const PlotChart *chart, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    Svg b = {malloc(64 * 1024), 0, 64 * 1024, 0};
    if (!b.data)
        return kn_error(KN_ENOMEM, "plot: out of memory");
    b.data[0] = '\0';
    int rc = write_chart(&b, chart);
    if (rc == KN_OK && b.failed)
        rc = kn_error(KN_ENOMEM, "plot: out of memory");
    else if (rc == KN_ENOMEM)
        rc = kn_error(KN_ENOMEM, "plot: out of memory");
    if (rc != KN_OK) {
        free(b.data);
        return rc;
    }
    *out = b.data;
    *len = b.len;
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
