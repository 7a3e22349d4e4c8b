/* test_plot.c — the SVG chart (plot.h): well-formed XML, the right number of markers, no NaN or inf in any
 * attribute, off-chart handling, the y range centred on the reference, round tick labels at their true
 * linear or logarithmic positions, labels that cover no curve, one panel per temperature, and the sweep's
 * chart from a Sweep and from its JSON. Well-formedness is checked with Python's xml.dom.minidom when python3
 * is on the PATH (the other checks run regardless). The positions are read back from the SVG text. */
#include <float.h>
#include <math.h>
#include <unistd.h>

#include "knnlm/plot.h"
#include "test.h"
#include "util/error.h"
#include "util/file.h"

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* 1 when no attribute value (="...") holds "nan" or "inf" in any case: a browser drops such an element. */
static int attributes_finite(const char *svg) {
    for (const char *p = strstr(svg, "=\""); p; p = strstr(p + 2, "=\"")) {
        const char *end = strchr(p + 2, '"');
        if (!end)
            return 0;
        for (const char *q = p + 2; q + 3 <= end; q++)
            if (strncasecmp(q, "nan", 3) == 0 || strncasecmp(q, "inf", 3) == 0)
                return 0;
        p = end - 1;
    }
    return 1;
}

/* Runs python3's XML parser over the text; 1 when it parses or when python3 is absent. */
static int well_formed(const char *svg, size_t len) {
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return 1;
    char path[] = "/tmp/test_plot_XXXXXX.svg";
    int fd = mkstemps(path, 4);
    if (fd < 0)
        return 0;
    close(fd);
    if (file_write_atomic(path, svg, len) != KN_OK)
        return 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' %s", path);
    int ok = system(cmd) == 0;
    unlink(path);
    return ok;
}

/* The number of M commands in the d attribute of the element that starts at element. */
static int moves_in_path(const char *element) {
    const char *d = strstr(element, " d=\"");
    int n = 0;
    for (const char *p = d ? d + 4 : ""; *p && *p != '"'; p++)
        n += *p == 'M';
    return n;
}

/* ---- reading the SVG back ---- */

/* The start ('<') of the n-th element (from 0) whose class is cls, or NULL. */
static const char *nth(const char *svg, const char *cls, int n) {
    char key[64];
    snprintf(key, sizeof key, "class=\"%s\"", cls);
    int i = 0;
    for (const char *p = strstr(svg, key); p; p = strstr(p + 1, key), i++)
        if (i == n) {
            while (p > svg && *p != '<')
                p--;
            return p;
        }
    return NULL;
}

/* The numeric attribute name of the element at el; NAN when it has none. */
static double attr(const char *el, const char *name) {
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *p = el ? strstr(el, key) : NULL, *end = el ? strchr(el, '>') : NULL;
    return p && end && p < end ? strtod(p + strlen(key), NULL) : NAN;
}

/* The text content of the element at el, without its thousands separators. */
static void text_of(const char *el, char *out, size_t cap) {
    const char *p = el ? strchr(el, '>') : NULL;
    size_t o = 0;
    for (p = p ? p + 1 : ""; *p && *p != '<' && o + 1 < cap; p++)
        if (*p != ',')
            out[o++] = *p;
    out[o] = '\0';
}

typedef struct {
    double v, py;
} Tick;

/* The y tick labels: their values and the y of the tick each stands for (the text's baseline is 4 below). */
static int read_yticks(const char *svg, Tick *t, int cap) {
    int n = 0;
    for (const char *el; n < cap && (el = nth(svg, "ytick", n)); n++) {
        char text[64];
        text_of(el, text, sizeof text);
        t[n] = (Tick){strtod(text, NULL), attr(el, "y") - 4};
    }
    return n;
}

/* A round number: at most two significant digits (2,000, 2,200, 0.25, 50). */
static int is_round(double v) {
    if (v == 0)
        return 1;
    double m = fabs(v) / pow(10, floor(log10(fabs(v))) - 1);
    return fabs(m - round(m)) < 1e-6;
}

/* Where value v sits on the axis the ticks define (linear in v, or in log10 v): fitted on the first and
 * last tick, so that every other tick, the reference line and the ring can be checked against it. */
static double axis_py(const Tick *t, int n, int log_axis, double v) {
    double f0 = log_axis ? log10(t[0].v) : t[0].v, f1 = log_axis ? log10(t[n - 1].v) : t[n - 1].v;
    double f = log_axis ? log10(v) : v;
    return t[0].py + (t[n - 1].py - t[0].py) * (f - f0) / (f1 - f0);
}

/* Checks the y ticks of svg: at least three, round, ascending upwards, each at its position on the scale. */
static int check_ticks(const char *svg, int log_axis, Tick *t, int cap) {
    int n = read_yticks(svg, t, cap);
    CHECK(n >= 3);
    if (n < 3)
        return n;
    for (int i = 0; i < n; i++) {
        CHECK_MSG(is_round(t[i].v), "tick %g is not a round number", t[i].v);
        CHECK_MSG(fabs(axis_py(t, n, log_axis, t[i].v) - t[i].py) < 0.02, "tick %g at y %.2f, not at its %s position %.2f",
                  t[i].v, t[i].py, log_axis ? "log" : "linear", axis_py(t, n, log_axis, t[i].v));
        if (i > 0)
            CHECK(t[i].v > t[i - 1].v && t[i].py < t[i - 1].py);
    }
    return n;
}

/* The segments of every series' line, in px: [x0 y0 x1 y1] each; the caller frees. */
static int read_segments(const char *svg, double **out) {
    int n = 0, cap = 0;
    double *seg = NULL;
    for (int s = 0; nth(svg, "series", s); s++) {
        const char *d = strstr(nth(svg, "series", s), " d=\"") + 4;
        double px = 0, py = 0;
        while (*d == 'M' || *d == 'L') {
            char cmd = *d;
            char *end;
            double x = strtod(d + 1, &end), y = strtod(end + 1, &end);
            if (cmd == 'L') {
                if (n == cap)
                    seg = realloc(seg, (size_t)(cap = cap ? 2 * cap : 64) * 4 * sizeof *seg);
                memcpy(&seg[4 * n++], (double[]){px, py, x, y}, 4 * sizeof *seg);
            }
            px = x, py = y;
            d = end + 1;
        }
    }
    *out = seg;
    return n;
}

/* Whether any series segment passes through the box of the label-box element at el: points every 0.25 px
 * along each segment, tested against the box. */
static int box_covers_a_line(const char *svg, const char *el) {
    double x0 = attr(el, "x"), y0 = attr(el, "y"), x1 = x0 + attr(el, "width"), y1 = y0 + attr(el, "height");
    double *seg;
    int n = read_segments(svg, &seg), hit = 0;
    for (int i = 0; i < n && !hit; i++) {
        const double *s = &seg[4 * i];
        int steps = 1 + (int)(hypot(s[2] - s[0], s[3] - s[1]) * 4);
        for (int j = 0; j <= steps && !hit; j++) {
            double x = s[0] + (s[2] - s[0]) * j / steps, y = s[1] + (s[3] - s[1]) * j / steps;
            hit = x > x0 && x < x1 && y > y0 && y < y1;
        }
    }
    free(seg);
    return hit;
}

static const double X5[] = {0, 0.25, 0.5, 0.75, 1};

static PlotChart one_panel(const PlotPanel *p) {
    return (PlotChart){.title = "t", .x_title = "x", .y_title = "y", .panels = p, .n_panels = 1, .reference_y = NAN};
}

static void test_points_offchart_and_nan(void) {
    /* A: four shown points and +inf. B: a NaN (skipped, breaks the line) and 1e30, far above the range centred
     * on the reference 20 (off the chart). So 4 + 3 shown points and 2 off the chart. */
    const double ya[] = {20, 15, 12, 14, INFINITY}, yb[] = {20, 18, NAN, 16, 1e30};
    const PlotSeries series[] = {{"k = 8", X5, ya, 5}, {"k = 16 <&>", X5, yb, 5}};
    PlotPanel panel = {NULL, series, 2, 1, 0.5, 12, "best"};
    PlotChart c = {.title = "t \"quoted\" & <tagged>", .x_title = "\xCE\xBB (kNN weight)", .y_title = "perplexity",
                   .panels = &panel, .n_panels = 1, .reference_y = 20, .reference_label = "LM alone"};
    char *svg;
    size_t len;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK_EQ_INT(len, strlen(svg));
    CHECK_EQ_INT(count(svg, "class=\"point\""), 7);
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 2);
    CHECK_EQ_INT(count(svg, "class=\"best\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"reference\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"reference-label\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"frame\""), 1);
    CHECK_EQ_INT(count(svg, "stroke-dasharray"), 2); /* the reference line and its legend swatch */
    CHECK(strstr(svg, "above the chart") != NULL);  /* the legend explains the triangles */
    CHECK(strstr(svg, "<clipPath id=\"plot-area\">") != NULL); /* what outpath.h recognises a plot by */
    CHECK(attributes_finite(svg));
    CHECK(strstr(svg, "nan") == NULL && strstr(svg, "NaN") == NULL);
    /* The NaN breaks B's line: its path (the second) has two M (move) commands, A's one. */
    const char *path_a = nth(svg, "series", 0), *path_b = nth(svg, "series", 1);
    CHECK(path_a && path_b);
    if (path_a && path_b) {
        CHECK_EQ_INT(moves_in_path(path_a), 1);
        CHECK_EQ_INT(moves_in_path(path_b), 2);
    }
    CHECK(strstr(svg, "k = 16 &lt;&amp;&gt;") != NULL);
    CHECK(strstr(svg, "t &quot;quoted&quot; &amp; &lt;tagged&gt;") != NULL);
    /* The reference 20 is 1.67× the lowest value 12 (more than 1.5×): logarithmic. */
    CHECK(strstr(svg, "(log scale)") != NULL);
    CHECK(well_formed(svg, len));
    free(svg);
}

static void test_scale_choice(void) {
    const double wide[] = {10, 30, 200, 50, 12}, narrow[] = {20, 21, 22, 24, 25};
    PlotSeries s = {"k = 8", X5, wide, 5};
    PlotPanel p = {NULL, &s, 1};
    PlotChart c = one_panel(&p);
    char *svg;
    size_t len;
    Tick t[64];
    /* No reference; 10 .. 200 spans more than 10×: logarithmic, all five shown, ticks 10, 20, 50, 100, 200. */
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(strstr(svg, "perplexity") == NULL && strstr(svg, "y (log scale)") != NULL);
    CHECK_EQ_INT(count(svg, "class=\"point\""), 5);
    CHECK_EQ_INT(count(svg, "class=\"reference\""), 0);
    CHECK_EQ_INT(check_ticks(svg, 1, t, 64), 5);
    CHECK(t[0].v == 10 && t[1].v == 20 && t[2].v == 50 && t[3].v == 100 && t[4].v == 200);
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
    /* Forced linear. */
    c.y_scale = PLOT_SCALE_LINEAR;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(strstr(svg, "(log scale)") == NULL);
    check_ticks(svg, 0, t, 64);
    free(svg);
    /* Forced log over a narrow range (less than a decade): evenly spaced round values, at log positions. */
    s.y = narrow;
    c.y_scale = PLOT_SCALE_LOG;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(strstr(svg, "(log scale)") != NULL);
    check_ticks(svg, 1, t, 64);
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
}

/* The lines of the full-kowiki sweep (docs/results/kowiki-full, k = 8, 64, 1024, λ = 0, 0.1, ..., 1): the LM
 * 2851.41, the best 2126.41 at λ = 0.3, k = 1024, values up to 17,646 and inf at λ = 1. */
static const double X11[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1};
static const double K8[] = {2851.4134, 2743.6997, 2945.7247, 3248.9239, 3671.9914, 4271.7134,
                            5167.9212, 6638.7152, 9498.4588, 17646.257, INFINITY};
static const double K64[] = {2851.4134, 2465.8158, 2502.4364, 2635.8520, 2854.6539, 3181.9139,
                             3677.1964, 4480.7313, 5991.4495, 10007.535, INFINITY};
static const double K1024[] = {2851.4134, 2283.4981, 2158.4981, 2126.4086, 2152.0596, 2231.0199,
                               2375.3616, 2621.0644, 3068.2397, 4115.9500, INFINITY};

static void test_centred_linear(void) {
    const PlotSeries s[] = {{"k = 8", X11, K8, 11}, {"k = 64", X11, K64, 11}, {"k = 1024", X11, K1024, 11}};
    PlotPanel p = {NULL, s, 3, 1, 0.3, 2126.4086, "best: \xCE\xBB = 0.3, k = 1024 (2126.41, \xE2\x88\x92" "25.4 %)"};
    PlotChart c = one_panel(&p);
    c.reference_y = 2851.4134;
    c.reference_label = "LM alone (2851.41)";
    char *svg;
    size_t len;
    CHECK_OK(plot_svg(&c, &svg, &len));
    /* 2851 / 2126 = 1.34 (< 1.5): linear. Half range 1.15 × (2851.41 − 2126.41) = 834: the bottom is the
     * 200-step below 2851.41 − 834 = 2017, i.e. 2000, and the top its mirror image 2 × 2851.41 − 2000 =
     * 3702.83. Ticks every 200 from 2,000 to 3,600. */
    CHECK(strstr(svg, "(log scale)") == NULL);
    Tick t[64];
    int n = check_ticks(svg, 0, t, 64);
    CHECK_EQ_INT(n, 9);
    for (int i = 0; i < n && i < 9; i++)
        CHECK_NEAR(t[i].v, 2000 + 200 * i, 1e-9);
    CHECK(strstr(svg, ">2,000</text>") != NULL && strstr(svg, ">3,600</text>") != NULL);
    const char *frame = nth(svg, "frame", 0), *ref = nth(svg, "reference", 0), *best = nth(svg, "best", 0);
    double top = attr(frame, "y"), bottom = top + attr(frame, "height");
    /* 2,000 is the bottom edge, the LM line exactly half way up, the ring at the best's position. */
    CHECK_NEAR(t[0].py, bottom, 0.01);
    CHECK_NEAR(attr(ref, "y1"), (top + bottom) / 2, 0.01);
    CHECK_NEAR(attr(ref, "y1"), axis_py(t, n, 0, 2851.4134), 0.02);
    CHECK_NEAR(attr(best, "cy"), axis_py(t, n, 0, 2126.4086), 0.02);
    CHECK(attr(best, "cy") > top && attr(best, "cy") < bottom);
    CHECK_NEAR(axis_py(t, n, 0, 3702.8268), top, 0.02);
    /* Above 3702.83: k = 8 from λ = 0.5 (5 values + inf), k = 64 from λ = 0.7 (3 + inf), k = 1024 at 0.9
     * and inf: 6 + 4 + 2 = 12 triangles; 33 − 12 = 21 points shown. */
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 12);
    CHECK_EQ_INT(count(svg, "class=\"point\""), 21);
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
}

static void test_centred_log(void) {
    /* Reference 100, lowest 20: 5× (> 1.5×), a log axis from 100 / 5^1.15 = 15.7 to 100 × 5^1.15 = 636,
     * centred geometrically: ticks 20, 50, 100, 200, 500; 1e4 and inf off the chart. */
    const double y[] = {100, 40, 20, 1e4, INFINITY};
    PlotSeries s = {"k = 8", X5, y, 5};
    PlotPanel p = {NULL, &s, 1, 1, 0.5, 20, "best"};
    PlotChart c = one_panel(&p);
    c.reference_y = 100;
    c.reference_label = "LM alone (100.00)";
    char *svg;
    size_t len;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(strstr(svg, "(log scale)") != NULL);
    Tick t[64];
    int n = check_ticks(svg, 1, t, 64);
    CHECK_EQ_INT(n, 5);
    CHECK(n == 5 && t[0].v == 20 && t[1].v == 50 && t[2].v == 100 && t[3].v == 200 && t[4].v == 500);
    const char *frame = nth(svg, "frame", 0), *ref = nth(svg, "reference", 0);
    double top = attr(frame, "y"), bottom = top + attr(frame, "height");
    CHECK_NEAR(attr(ref, "y1"), (top + bottom) / 2, 0.01);
    CHECK_NEAR(axis_py(t, n, 1, 100 / pow(5, 1.15)), bottom, 0.02);
    CHECK_NEAR(axis_py(t, n, 1, 100 * pow(5, 1.15)), top, 0.02);
    CHECK_NEAR(attr(nth(svg, "best", 0), "cy"), axis_py(t, n, 1, 20), 0.02);
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 2);
    CHECK_EQ_INT(count(svg, "class=\"point\""), 3);
    free(svg);
}

static void test_labels_cover_no_line(void) {
    /* The full run's lines crowd the bottom left, where the best point is: its label, and the LM line's,
     * must find a place that no line crosses, inside the plot. */
    const PlotSeries s[] = {{"k = 8", X11, K8, 11}, {"k = 64", X11, K64, 11}, {"k = 1024", X11, K1024, 11}};
    PlotPanel p = {NULL, s, 3, 1, 0.3, 2126.4086, "best: \xCE\xBB = 0.3, k = 1024 (2126.41, \xE2\x88\x92" "25.4 %)"};
    for (int scale = PLOT_SCALE_AUTO; scale <= PLOT_SCALE_LOG; scale++) {
        PlotChart c = one_panel(&p);
        c.reference_y = 2851.4134;
        c.reference_label = "LM alone (2851.41)";
        c.y_scale = (PlotScale)scale;
        char *svg;
        size_t len;
        CHECK_OK(plot_svg(&c, &svg, &len));
        CHECK_EQ_INT(count(svg, "class=\"label-box\""), 2);
        const char *frame = nth(svg, "frame", 0);
        double fx = attr(frame, "x"), fy = attr(frame, "y"), fw = attr(frame, "width"), fh = attr(frame, "height");
        for (int i = 0; i < 2; i++) {
            const char *box = nth(svg, "label-box", i);
            CHECK_MSG(!box_covers_a_line(svg, box), "scale %d: label %d covers a line", scale, i);
            CHECK(attr(box, "x") > fx && attr(box, "x") + attr(box, "width") < fx + fw);
            CHECK(attr(box, "y") > fy && attr(box, "y") + attr(box, "height") < fy + fh);
            /* its text is centred in it */
            const char *text = strstr(box, "<text");
            CHECK_NEAR(attr(text, "x"), attr(box, "x") + attr(box, "width") / 2, 0.01);
        }
        CHECK(strstr(nth(svg, "best-label", 0), "best: \xCE\xBB = 0.3, k = 1024") != NULL);
        CHECK(strstr(nth(svg, "reference-label", 0), ">LM alone (2851.41)<") != NULL);
        /* the two labels do not overlap */
        const char *a = nth(svg, "label-box", 0), *b = nth(svg, "label-box", 1);
        CHECK(attr(a, "x") + attr(a, "width") <= attr(b, "x") || attr(b, "x") + attr(b, "width") <= attr(a, "x") ||
              attr(a, "y") + attr(a, "height") <= attr(b, "y") || attr(b, "y") + attr(b, "height") <= attr(a, "y"));
        free(svg);
    }
}

static void test_degenerate_charts(void) {
    /* No panel; a series of one constant point; a series only of infinities: no NaN, still well-formed. */
    PlotChart c = {.title = "empty", .x_title = "x", .y_title = "y", .reference_y = NAN};
    char *svg;
    size_t len;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    CHECK_EQ_INT(count(svg, "class=\"point\""), 0);
    free(svg);

    const double one_x[] = {0.5}, one_y[] = {7}, inf_y[] = {INFINITY, INFINITY};
    PlotSeries s[] = {{"one", one_x, one_y, 1}, {"infinite", X5, inf_y, 2}};
    PlotPanel p = {NULL, s, 2, 1, 0, INFINITY, "best"}; /* an infinite best is not drawn */
    c = one_panel(&p);
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    CHECK_EQ_INT(count(svg, "class=\"point\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 2);
    CHECK_EQ_INT(count(svg, "class=\"best\""), 0);
    free(svg);

    /* A reference and every value equal (the kNN changes nothing): a range of ±5 % around it. */
    const double flat[] = {50, 50, 50, 50, 50};
    PlotSeries fs = {"flat", X5, flat, 5};
    PlotPanel fp = {NULL, &fs, 1, 1, 0, 50, "best"};
    c = one_panel(&fp);
    c.reference_y = 50;
    c.reference_label = "LM";
    CHECK_OK(plot_svg(&c, &svg, &len));
    Tick t[64];
    check_ticks(svg, 0, t, 64);
    CHECK_EQ_INT(count(svg, "class=\"point\""), 5);
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);

    /* More panels than the layout holds: refused, nothing returned. */
    static PlotPanel many[65];
    c = (PlotChart){.title = "many", .x_title = "x", .y_title = "y", .panels = many, .n_panels = 65, .reference_y = NAN};
    CHECK_EQ_INT(plot_svg(&c, &svg, &len), KN_EINVAL);
    CHECK(svg == NULL && strstr(kn_errmsg(), "65 panels") != NULL);

    /* A last point that is infinite still sets the x range: its triangle sits on the right edge (x = 690),
     * not beyond the plot. */
    const double x3[] = {0, 0.5, 1}, y3[] = {10, 12, INFINITY};
    PlotSeries last_inf = {"last inf", x3, y3, 3};
    PlotPanel lp = {NULL, &last_inf, 1};
    PlotChart cl = one_panel(&lp);
    CHECK_OK(plot_svg(&cl, &svg, &len));
    const char *tri = strstr(svg, "class=\"offchart\" d=\"M");
    CHECK(tri && strtod(tri + strlen("class=\"offchart\" d=\"M"), NULL) == 690.0);
    free(svg);

    /* Values near the top of the double range (linear and log): the axis stays finite, nothing is NaN. */
    const double huge[] = {1e300, 1e307, DBL_MAX, 1e306, 1e305};
    PlotSeries h = {"huge", X5, huge, 5};
    PlotPanel hp = {NULL, &h, 1};
    PlotChart ch = one_panel(&hp);
    for (int scale = PLOT_SCALE_AUTO; scale <= PLOT_SCALE_LOG; scale++) {
        ch.y_scale = (PlotScale)scale;
        CHECK_OK(plot_svg(&ch, &svg, &len));
        CHECK(attributes_finite(svg) && well_formed(svg, len));
        CHECK_EQ_INT(count(svg, "class=\"point\"") + count(svg, "class=\"offchart\""), 5);
        free(svg);
    }
}

/* Two tokens; k = 2 finds both labels, k = 1 misses the second (see test_sweep_chart). */
static Sweep *two_token_sweep(const double *temps, int n_temps) {
    static const double lam[] = {0, 0.3, 0.6, 1};
    static const int ks[] = {1, 2};
    SweepConfig cfg = {lam, 4, ks, 2, temps, n_temps, KNN_DIST_L2, 2};
    Sweep *s = NULL;
    CHECK(sweep_create(&s, &cfg) == KN_OK);
    const float d0[] = {4, 9}, d1[] = {1, 16};
    const int32_t v0[] = {11, 12}, v1[] = {13, 14};
    CHECK(s && sweep_add_token(s, log(0.2), d0, v0, 2, 11) == KN_OK);
    CHECK(s && sweep_add_token(s, log(0.1), d1, v1, 2, 14) == KN_OK);
    return s;
}

/* A new empty file /tmp/test_plot_XXXXXX<suffix>, its name in path[64]. */
static void temp_path(char *path, const char *suffix) {
    snprintf(path, 64, "/tmp/test_plot_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    CHECK(fd >= 0);
    close(fd);
}

/* The sweep's chart as plot_sweep_svg writes it to a file, read back (the file removed); the caller frees. */
static char *sweep_chart_text(const Sweep *s, size_t *len) {
    char path[64];
    temp_path(path, ".svg");
    char *svg = NULL;
    CHECK(plot_sweep_svg(s, path, PLOT_SCALE_AUTO) == KN_OK && file_read_all(path, &svg, len) == KN_OK);
    unlink(path);
    return svg;
}

static void test_sweep_chart(void) {
    /* LM sqrt(1/(0.2·0.1)) = 7.07; with l2 distances (the square roots) the lowest is 5.307 at λ = 0.6, k = 2
     * (p_kNN = 0.731 and 0.0474): 1.33×, linear, from 5.0 (the 0.5-step below 7.071 − 1.15 × 1.764) to
     * 9.14. Off it: λ = 1 at k = 1 (inf); 7 shown. */
    static const double t1[] = {1};
    Sweep *s = two_token_sweep(t1, 1);
    size_t len;
    char *svg = sweep_chart_text(s, &len);
    if (!svg)
        return;
    CHECK_EQ_INT(count(svg, "class=\"point\""), 7);
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"best\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"frame\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"panel-title\""), 0);
    CHECK(strstr(svg, "\xCE\xBB (kNN weight)") != NULL);
    CHECK(strstr(svg, ">perplexity") != NULL && strstr(svg, "(log scale)") == NULL);
    CHECK(strstr(svg, "(2 tokens)") != NULL);
    CHECK(strstr(svg, "k = 1") != NULL && strstr(svg, "k = 2") != NULL);
    CHECK(strstr(svg, ">LM alone (7.07)<") != NULL); /* on the line, and in the legend */
    CHECK_EQ_INT(count(svg, "LM alone (7.07)"), 2);
    /* 5.3072 / 7.0711 − 1 = −24.9 % */
    CHECK(strstr(svg, "best: \xCE\xBB = 0.6, k = 2 (5.31, \xE2\x88\x92" "24.9 %)") != NULL);
    Tick t[64];
    int n = check_ticks(svg, 0, t, 64);
    CHECK(n >= 3 && t[0].v == 5);
    CHECK(strstr(svg, ">5.0</text>") && strstr(svg, ">5.5</text>") && strstr(svg, ">9.0</text>"));
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
    CHECK(plot_sweep_svg(s, "/nonexistent-dir/p.svg", PLOT_SCALE_AUTO) != KN_OK);
    CHECK(strstr(kn_errmsg(), "/nonexistent-dir/p.svg") != NULL);
    sweep_free(s);
}

static void test_panel_per_temperature(void) {
    static const double temps[] = {0.5, 1, 4};
    Sweep *s = two_token_sweep(temps, 3);
    SweepPoint best = sweep_best(s);
    size_t len;
    char *svg = sweep_chart_text(s, &len);
    if (!svg)
        return;
    CHECK_EQ_INT(count(svg, "class=\"frame\""), 3);
    CHECK_EQ_INT(count(svg, "class=\"panel-title\""), 3);
    CHECK_EQ_INT(count(svg, "<clipPath id="), 3);
    CHECK(strstr(svg, ">T = 0.5") && strstr(svg, ">T = 1") && strstr(svg, ">T = 4"));
    char want[64];
    snprintf(want, sizeof want, ">T = %g (best)<", best.temperature);
    CHECK(strstr(svg, want) != NULL);
    CHECK_EQ_INT(count(svg, "(best)"), 1);
    CHECK_EQ_INT(count(svg, "class=\"best\""), 3);          /* each panel's lowest point */
    CHECK_EQ_INT(count(svg, "class=\"reference\""), 3);
    CHECK_EQ_INT(count(svg, "class=\"point\"") + count(svg, "class=\"offchart\""), 3 * 8);
    CHECK_EQ_INT(count(svg, "<g transform"), 1 + 2 + 1 + 1); /* one legend: LM, k = 1, k = 2, ring, triangle */
    /* One y range for all: the LM line sits at the same height within every frame, half way up. */
    for (int p = 0; p < 3; p++) {
        const char *frame = nth(svg, "frame", p);
        CHECK_NEAR(attr(nth(svg, "reference", p), "y1"), attr(frame, "y") + attr(frame, "height") / 2, 0.01);
        CHECK_NEAR(attr(frame, "height"), attr(nth(svg, "frame", 0), "height"), 1e-9);
    }
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
    sweep_free(s);
}

static void test_grid_from_json(void) {
    /* What eval --json writes reads back to the same grid: every perplexity (inf included) bit for bit, the
     * same best point, and the same chart. */
    static const double temps[] = {0.5, 1};
    Sweep *s = two_token_sweep(temps, 2);
    char path[64];
    temp_path(path, ".json");
    CHECK_OK(sweep_write_json(s, path));
    SweepGrid g;
    CHECK_OK(sweep_grid_read_json(&g, path));
    CHECK_EQ_INT(g.n_lambdas, 4);
    CHECK_EQ_INT(g.n_ks, 2);
    CHECK_EQ_INT(g.n_temperatures, 2);
    CHECK(g.tokens == 2 && g.lm_ppl == sweep_lm_ppl(s));
    int same = 1;
    for (int li = 0; li < 4; li++)
        for (int ki = 0; ki < 2; ki++)
            for (int ti = 0; ti < 2; ti++) {
                double a = g.ppl[(li * 2 + ki) * 2 + ti], b = sweep_ppl(s, li, ki, ti);
                same &= a == b;
            }
    CHECK(same);
    CHECK(isinf(g.ppl[(3 * 2 + 0) * 2 + 0])); /* λ = 1, k = 1 */
    SweepPoint a = sweep_grid_best(&g), b = sweep_best(s);
    CHECK(a.lambda == b.lambda && a.k == b.k && a.temperature == b.temperature && a.ppl == b.ppl);
    SweepGrid direct;
    CHECK_OK(sweep_grid_from_sweep(&direct, s));
    char svg_json[64], svg_sweep[64];
    temp_path(svg_json, ".svg");
    temp_path(svg_sweep, ".svg");
    CHECK_OK(plot_sweep_grid_svg(&g, svg_json, PLOT_SCALE_AUTO));
    CHECK_OK(plot_sweep_svg(s, svg_sweep, PLOT_SCALE_AUTO));
    char *x, *y;
    size_t nx, ny;
    CHECK_OK(file_read_all(svg_json, &x, &nx));
    CHECK_OK(file_read_all(svg_sweep, &y, &ny));
    CHECK(nx == ny && memcmp(x, y, nx) == 0);
    free(x), free(y);
    unlink(svg_json), unlink(svg_sweep), unlink(path);
    sweep_grid_free(&direct);
    sweep_grid_free(&g);
    sweep_free(s);
}

static void test_grid_json_errors(void) {
    /* Each malformed file: KN_EFORMAT, a message naming the file and the problem, nothing left allocated. */
    static const struct {
        const char *json, *message;
    } cases[] = {
        {"{\"tokens\": 2, ", "not valid JSON"},
        {"[1, 2]", "no \"sweep\" array"},
        {"{\"tokens\": 2, \"lm_ppl\": 7, \"sweep\": []}", "no \"sweep\" array"},
        {"{\"tokens\": 2, \"sweep\": [{\"lambda\": 0, \"k\": 8, \"temperature\": 1, \"ppl\": 7}]}", "\"lm_ppl\""},
        {"{\"lm_ppl\": 7, \"sweep\": [{\"lambda\": 0, \"k\": 8, \"temperature\": 1, \"ppl\": 7}]}", "\"tokens\""},
        {"{\"tokens\": 2, \"lm_ppl\": 7, \"sweep\": [{\"lambda\": 0, \"temperature\": 1, \"ppl\": 7}]}",
         "sweep[0]: \"k\" is missing"},
        {"{\"tokens\": 2, \"lm_ppl\": 7, \"sweep\": [{\"lambda\": 1.5, \"k\": 8, \"temperature\": 1, \"ppl\": 7}]}",
         "sweep[0]: \xCE\xBB = 1.5"},
        {"{\"tokens\": 2, \"lm_ppl\": 7, \"sweep\": [{\"lambda\": 0, \"k\": 8, \"temperature\": 1, \"ppl\": \"big\"}]}",
         "sweep[0]: \"ppl\""},
        {"{\"tokens\": 2, \"lm_ppl\": 7, \"sweep\": [{\"lambda\": 0, \"k\": 8, \"temperature\": 1, \"ppl\": 7},"
         "{\"lambda\": 1, \"k\": 16, \"temperature\": 1, \"ppl\": 7}]}",
         "2 points do not fill its grid of 2 \xCE\xBB \xC3\x97 2 k \xC3\x97 1 T"},
        {"{\"tokens\": 2, \"lm_ppl\": 7, \"sweep\": [{\"lambda\": 0, \"k\": 8, \"temperature\": 1, \"ppl\": 7},"
         "{\"lambda\": 0, \"k\": 8, \"temperature\": 1, \"ppl\": 6}, {\"lambda\": 0, \"k\": 16, \"temperature\": 1, \"ppl\": 7},"
         "{\"lambda\": 1, \"k\": 16, \"temperature\": 1, \"ppl\": 7}]}",
         "sweep[1]: \xCE\xBB = 0, k = 8, T = 1 appears twice"},
    };
    char path[64];
    temp_path(path, ".json");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_OK(file_write_atomic(path, cases[i].json, strlen(cases[i].json)));
        SweepGrid g;
        CHECK_EQ_INT(sweep_grid_read_json(&g, path), KN_EFORMAT);
        CHECK_MSG(strstr(kn_errmsg(), path) && strstr(kn_errmsg(), cases[i].message), "case %zu: %s", i, kn_errmsg());
        CHECK(g.ppl == NULL && g.lambdas == NULL);
    }
    unlink(path);
    SweepGrid g;
    CHECK(sweep_grid_read_json(&g, "/nonexistent-dir/s.json") != KN_OK);
    CHECK(strstr(kn_errmsg(), "/nonexistent-dir/s.json") != NULL);
}

int main(void) {
    RUN(test_points_offchart_and_nan);
    RUN(test_scale_choice);
    RUN(test_centred_linear);
    RUN(test_centred_log);
    RUN(test_labels_cover_no_line);
    RUN(test_degenerate_charts);
    RUN(test_sweep_chart);
    RUN(test_panel_per_temperature);
    RUN(test_grid_from_json);
    RUN(test_grid_json_errors);
    return TEST_EXIT();
}
