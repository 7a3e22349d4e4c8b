/* cmd_plot.c — `knnlm plot`: redraws the λ-sweep plot from the JSON that `knnlm eval --json` wrote, so that a
 * plot can be made again (another scale, a newer knnlm) without the datastore and the hours of evaluation. */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/outpath.h"
#include "knnlm/plot.h"
#include "util/error.h"

#include <string.h>

static int parse_scale(const char *s, PlotScale *out) {
    if (!strcmp(s, "auto")) *out = PLOT_SCALE_AUTO;
    else if (!strcmp(s, "linear")) *out = PLOT_SCALE_LINEAR;
    else if (!strcmp(s, "log")) *out = PLOT_SCALE_LOG;
    else return kn_error(KN_EINVAL, "--scale %s: must be auto, linear or log", s);
    return KN_OK;
}

int cmd_plot(int argc, char **argv) {
    const char *json = NULL, *out = NULL, *scale = "auto";
    int force = 0;
    const ArgOpt opts[] = {
        {"--json", ARG_STR, &json, "FILE", "the sweep's JSON, as knnlm eval --json wrote it", 1},
        {"--out", ARG_STR, &out, "FILE.svg", "the plot to write (SVG)", 1},
        {"--scale", ARG_STR, &scale, "SCALE", "the y axis: auto (default: log when the LM is above 1.5x the best), linear or log", 0},
        {"--force", ARG_FLAG, &force, NULL, "replace an existing --out file that knnlm did not write", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm plot", "Draws the plot of perplexity against λ from a sweep's JSON (knnlm eval --json), as eval --plot does.",
                          "--json sweep.json --out ppl.svg [--scale auto|linear|log]",
                          "One line per k, one panel per temperature; the y range is centred on the LM's perplexity and\n"
                          "values far above it are drawn as triangles on the top edge.",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, NULL);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    PlotScale ps = PLOT_SCALE_AUTO;
    int rc = parse_scale(scale, &ps);
    OutPlan *plan = NULL;
    if (rc == KN_OK) rc = outplan_create(&plan, force);
    if (rc == KN_OK) rc = outplan_input(plan, "--json", json);
    if (rc == KN_OK) rc = outplan_output(plan, "--out", out, OUT_MARK_PLOT_SVG, NULL);
    if (rc == KN_OK) rc = outplan_check(plan);
    outplan_free(plan);
    SweepGrid g = {0};
    if (rc == KN_OK) rc = sweep_grid_read_json(&g, json);
    if (rc == KN_OK) rc = plot_sweep_grid_svg(&g, out, ps);
    sweep_grid_free(&g);
    return rc == KN_OK ? EXIT_OK : cli_fail("plot", rc);
}
