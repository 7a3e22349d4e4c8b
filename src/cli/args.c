/* args.c — see args.h. */
#include "cli/args.h"

#include "cli/progress.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The options every command takes, after its own (their targets are set per call in args_parse). */
static int common_threads, common_quiet;
static double common_progress_seconds;
static const ArgOpt common_opts[] = {
    {"--threads", ARG_INT, &common_threads, "N", "threads to use (default: all cores); results do not depend on it", 0, 1, 1024},
    {"--progress-seconds", ARG_DOUBLE, &common_progress_seconds, "S",
     "when stderr is not a terminal (a log), one progress line every S seconds (default 30)", 0, 0.01, 1e6},
    {"--quiet", ARG_FLAG, &common_quiet, NULL, "no progress bar or log lines, only results and errors", 0},
    {0},
};

static const char *type_name(ArgType t) {
    static const char *const names[] = {"flag", "str", "int", "double"};
    return names[t];
}

static void print_options(const ArgOpt *opts) {
    for (const ArgOpt *o = opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        printf("  %-24s %s%s\n", left, o->help, o->required ? " (required)" : "");
    }
}

static void args_print_help(const ArgSpec *spec) {
    printf("usage: %s %s\n\n%s\n", spec->command, spec->usage, spec->summary);
    if (spec->details) printf("\n%s\n", spec->details);
    printf("\noptions:\n");
    print_options(spec->opts);
    print_options(common_opts);
    printf("  %-24s %s\n", "-h, --help", "show this help");
}

/* One line per option, tab-separated: name, type, metavar, min, max, required. */
static void print_option_table(const ArgOpt *opts) {
    for (const ArgOpt *o = opts; o && o->name; o++)
        printf("%s\t%s\t%s\t%.17g\t%.17g\t%d\n", o->name, type_name(o->type), o->metavar ? o->metavar : "-", o->min, o->max, o->required);
}

void args_print_subcommands(const char *command, const char *summary, const ArgSubcommand *subs) {
    printf("usage: %s <subcommand> [options]   (%s <subcommand> --help for its options)\n\n%s\n\nsubcommands:\n", command, command, summary);
    for (const ArgSubcommand *s = subs; s->name; s++) printf("  %-10s %s\n", s->name, s->summary);
}

static int out_of_range(const ArgSpec *spec, const ArgOpt *o, const char *v, double x) {
    if (o->min >= o->max || (x >= o->min && x <= o->max)) return 0;
    if (o->max >= ARG_INT_MAX || (o->type == ARG_DOUBLE && o->max >= 1e6))
        fprintf(stderr, "%s: %s %s: must be at least %g\n", spec->command, o->name, v, o->min);
    else
        fprintf(stderr, "%s: %s %s: must be from %g to %g\n", spec->command, o->name, v, o->min, o->max);
    return 1;
}

static int parse_value(const ArgSpec *spec, const ArgOpt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->type) {
    case ARG_STR: *(const char **)o->target = v; return ARGS_OK;
    case ARG_INT: {
        long long x = strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno || x < INT_MIN || x > INT_MAX) break;
        if (out_of_range(spec, o, v, (double)x)) return ARGS_ERROR;
        *(int *)o->target = (int)x;
        return ARGS_OK;
    }
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno || !isfinite(x)) break;
        if (out_of_range(spec, o, v, x)) return ARGS_ERROR;
        *(double *)o->target = x;
        return ARGS_OK;
    }
    case ARG_FLAG: break;
    }
    fprintf(stderr, "%s: %s expects %s, got \"%s\"\n", spec->command, o->name, o->type == ARG_INT ? "a whole number" : "a number", v);
    return ARGS_ERROR;
}

static const ArgOpt *find_option(const ArgOpt *opts, const char *a, size_t len) {
    for (const ArgOpt *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, a, len)) return o;
    return NULL;
}

int args_parse(const ArgSpec *spec, int argc, char **argv, char **rest, int max_rest, int *nrest, int *quiet) {
    *nrest = 0;
    common_threads = 0;
    common_quiet = 0;
    common_progress_seconds = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            args_print_help(spec);
            return ARGS_HELP;
        }
        if (!strcmp(a, "--help-options")) {
            print_option_table(spec->opts);
            print_option_table(common_opts);
            return ARGS_HELP;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*nrest >= max_rest) {
                fprintf(stderr, "%s: unexpected argument \"%s\" (see %s --help)\n", spec->command, a, spec->command);
                return ARGS_ERROR;
            }
            rest[(*nrest)++] = argv[i];
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const ArgOpt *o = find_option(spec->opts, a, len);
        if (!o) o = find_option(common_opts, a, len);
        if (!o) {
            fprintf(stderr, "%s: unknown option %.*s (see %s --help)\n", spec->command, (int)len, a, spec->command);
            return ARGS_ERROR;
        }
        if (o->type == ARG_FLAG) {
            if (eq) {
                fprintf(stderr, "%s: %s takes no value\n", spec->command, o->name);
                return ARGS_ERROR;
            }
            *(int *)o->target = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!value) {
            fprintf(stderr, "%s: %s needs a value (%s)\n", spec->command, o->name, o->metavar ? o->metavar : "value");
            return ARGS_ERROR;
        }
        if (parse_value(spec, o, value) != ARGS_OK) return ARGS_ERROR;
    }
    for (const ArgOpt *o = spec->opts; o && o->name; o++) {
        if (o->required && o->type == ARG_STR && *(const char **)o->target == NULL) {
            fprintf(stderr, "%s: %s %s is required (see %s --help)\n", spec->command, o->name, o->metavar, spec->command);
            return ARGS_ERROR;
        }
    }
    if (quiet) *quiet = common_quiet;
    progress_set_log_interval(common_progress_seconds);
    if (common_threads) {
        /* more threads than cores only slows OpenMP down (they wait on each other at every barrier) */
        int cores = omp_get_num_procs();
        if (common_threads > cores)
            fprintf(stderr, "%s: warning: --threads %d is more than the %d cores here; expect it to run slower, not faster\n", spec->command,
                    common_threads, cores);
        omp_set_num_threads(common_threads);
    }
    return ARGS_OK;
}
