/* test_plot.c — the SVG chart (plot.h): well-formed XML, the right number of markers, no NaN or inf in any
 * attribute, off-chart handling, the y scale choice, and the sweep's chart. Well-formedness is checked with
 * Python's xml.dom.minidom when python3 is on the PATH (the counts and attribute checks run regardless). */
#include <float.h>
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

static const double X5[] = {0, 0.25, 0.5, 0.75, 1};

static void test_points_offchart_and_nan(void) {
    /* A: four shown points and +inf. B: a NaN (skipped, breaks the line) and 1e30, far above 100 × the
     * smallest value 12 (off the chart). So 4 + 3 shown points and 2 off the chart. */
    const double ya[] = {20, 15, 12, 14, INFINITY}, yb[] = {20, 18, NAN, 16, 1e30};
    const PlotSeries series[] = {{"k = 8", X5, ya, 5}, {"k = 16 <&>", X5, yb, 5}};
    PlotChart c = {.title = "t \"quoted\" & <tagged>", .x_title = "\xCE\xBB (kNN weight)", .y_title = "perplexity",
                   .series = series, .n_series = 2, .reference_y = 20, .reference_label = "LM alone",
                   .has_mark = 1, .mark_x = 0.5, .mark_y = 12, .mark_label = "best"};
    char *svg;
    size_t len;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK_EQ_INT(len, strlen(svg));
    CHECK_EQ_INT(count(svg, "class=\"point\""), 7);
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 2);
    CHECK_EQ_INT(count(svg, "class=\"best\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"reference\""), 1);
    CHECK_EQ_INT(count(svg, "stroke-dasharray"), 2); /* the reference line and its legend swatch */
    CHECK(strstr(svg, "above the chart") != NULL);  /* the legend explains the triangles */
    CHECK(attributes_finite(svg));
    CHECK(strstr(svg, "nan") == NULL && strstr(svg, "NaN") == NULL);
    /* The NaN breaks B's line: its path (the second) has two M (move) commands, A's one. */
    const char *path_a = strstr(svg, "<path clip-path"), *path_b = path_a ? strstr(path_a + 1, "<path clip-path") : NULL;
    CHECK(path_a && path_b);
    if (path_a && path_b) {
        CHECK_EQ_INT(moves_in_path(path_a), 1);
        CHECK_EQ_INT(moves_in_path(path_b), 2);
    }
    CHECK(strstr(svg, "k = 16 &lt;&amp;&gt;") != NULL);
    CHECK(strstr(svg, "t &quot;quoted&quot; &amp; &lt;tagged&gt;") != NULL);
    /* 12 .. 20 spans less than 10×: linear. */
    CHECK(strstr(svg, "(log scale)") == NULL);
    CHECK(well_formed(svg, len));
    free(svg);
}

static void test_scale_choice(void) {
    const double wide[] = {10, 30, 200, 50, 12}, narrow[] = {20, 21, 22, 24, 25};
    PlotSeries s = {"k = 8", X5, wide, 5};
    PlotChart c = {.title = "t", .x_title = "x", .y_title = "y", .series = &s, .n_series = 1, .reference_y = NAN};
    char *svg;
    size_t len;
    /* 10 .. 200 spans more than 10×: logarithmic, all five shown. */
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(strstr(svg, "perplexity") == NULL && strstr(svg, "y (log scale)") != NULL);
    CHECK_EQ_INT(count(svg, "class=\"point\""), 5);
    CHECK_EQ_INT(count(svg, "class=\"reference\""), 0);
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
    /* Forced linear. */
    c.y_scale = PLOT_SCALE_LINEAR;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(strstr(svg, "(log scale)") == NULL);
    free(svg);
    /* Forced log over a narrow range: still at least two labelled y ticks (text-anchor end). */
    s.y = narrow;
    c.y_scale = PLOT_SCALE_LOG;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(strstr(svg, "(log scale)") != NULL);
    CHECK(count(svg, "text-anchor=\"end\" font-size=\"12\">") >= 2);
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
}

static void test_degenerate_charts(void) {
    /* No series; a series of one constant point; a series only of infinities: no NaN, still well-formed. */
    PlotChart c = {.title = "empty", .x_title = "x", .y_title = "y", .reference_y = NAN};
    char *svg;
    size_t len;
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    CHECK_EQ_INT(count(svg, "class=\"point\""), 0);
    free(svg);

    const double one_x[] = {0.5}, one_y[] = {7}, inf_y[] = {INFINITY, INFINITY};
    PlotSeries s[] = {{"one", one_x, one_y, 1}, {"infinite", X5, inf_y, 2}};
    c.series = s;
    c.n_series = 2;
    c.has_mark = 1;
    c.mark_x = 0;
    c.mark_y = INFINITY; /* an infinite best is not drawn */
    CHECK_OK(plot_svg(&c, &svg, &len));
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    CHECK_EQ_INT(count(svg, "class=\"point\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 2);
    CHECK_EQ_INT(count(svg, "class=\"best\""), 0);
    free(svg);

    /* A last point that is infinite still sets the x range: its triangle sits on the right edge (x = 690),
     * not beyond the plot. */
    const double x3[] = {0, 0.5, 1}, y3[] = {10, 12, INFINITY};
    PlotSeries last_inf = {"last inf", x3, y3, 3};
    PlotChart cl = {.title = "t", .x_title = "x", .y_title = "y", .series = &last_inf, .n_series = 1,
                    .reference_y = NAN};
    CHECK_OK(plot_svg(&cl, &svg, &len));
    const char *tri = strstr(svg, "class=\"offchart\" d=\"M");
    CHECK(tri && strtod(tri + strlen("class=\"offchart\" d=\"M"), NULL) == 690.0);
    free(svg);

    /* Values near the top of the double range (linear and log): the axis stays finite, nothing is NaN. */
    const double huge[] = {1e300, 1e307, DBL_MAX, 1e306, 1e305};
    PlotSeries h = {"huge", X5, huge, 5};
    PlotChart ch = {.title = "huge", .x_title = "x", .y_title = "y", .series = &h, .n_series = 1,
                    .reference_y = NAN};
    for (int scale = PLOT_SCALE_AUTO; scale <= PLOT_SCALE_LOG; scale++) {
        ch.y_scale = (PlotScale)scale;
        CHECK_OK(plot_svg(&ch, &svg, &len));
        CHECK(attributes_finite(svg) && well_formed(svg, len));
        CHECK_EQ_INT(count(svg, "class=\"point\"") + count(svg, "class=\"offchart\""), 5);
        free(svg);
    }
}

static void test_sweep_chart(void) {
    /* Two tokens; k = 2 finds both labels, k = 1 misses the second: λ = 1 at k = 1 is inf (off the chart).
     * 4 λ × 2 k = 8 values: 7 shown, 1 off the chart. */
    static const double lam[] = {0, 0.3, 0.6, 1}, t[] = {1};
    static const int ks[] = {1, 2};
    SweepConfig cfg = {lam, 4, ks, 2, t, 1, KNN_DIST_L2, 2};
    Sweep *s;
    CHECK_OK(sweep_create(&s, &cfg));
    const float d0[] = {4, 9}, d1[] = {1, 16};
    const int32_t v0[] = {11, 12}, v1[] = {13, 14};
    CHECK_OK(sweep_add_token(s, log(0.2), d0, v0, 2, 11));
    CHECK_OK(sweep_add_token(s, log(0.1), d1, v1, 2, 14));
    char path[] = "/tmp/test_plot_sweep_XXXXXX.svg";
    int fd = mkstemps(path, 4);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(plot_sweep_svg(s, path, PLOT_SCALE_AUTO));
    char *svg;
    size_t len;
    CHECK_OK(file_read_all(path, &svg, &len));
    CHECK_EQ_INT(count(svg, "class=\"point\""), 7);
    CHECK_EQ_INT(count(svg, "class=\"offchart\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"best\""), 1);
    CHECK(strstr(svg, "\xCE\xBB (kNN weight)") != NULL);
    CHECK(strstr(svg, ">perplexity") != NULL);
    CHECK(strstr(svg, "(2 tokens)") != NULL);
    CHECK(strstr(svg, "k = 1") != NULL && strstr(svg, "k = 2") != NULL);
    char lm[64];
    snprintf(lm, sizeof lm, "LM alone (%.2f)", sweep_lm_ppl(s)); /* sqrt(1/(0.2·0.1)) = 7.07 */
    CHECK(strstr(svg, lm) != NULL && strstr(svg, "LM alone (7.07)") != NULL);
    CHECK(attributes_finite(svg) && well_formed(svg, len));
    free(svg);
    unlink(path);
    CHECK(plot_sweep_svg(s, "/nonexistent-dir/p.svg", PLOT_SCALE_AUTO) != KN_OK);
    CHECK(strstr(kn_errmsg(), "/nonexistent-dir/p.svg") != NULL);
    sweep_free(s);
}

int main(void) {
    RUN(test_points_offchart_and_nan);
    RUN(test_scale_choice);
    RUN(test_degenerate_charts);
    RUN(test_sweep_chart);
    return TEST_EXIT();
}
