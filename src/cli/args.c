/* args.c — see args.h. */
#include "cli/args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void args_print_help(const ArgSpec *spec) {
    printf("usage: %s %s\n\n%s\n", spec->command, spec->usage, spec->summary);
    if (spec->details) printf("\n%s\n", spec->details);
    printf("\noptions:\n");
    for (const ArgOpt *o = spec->opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        printf("  %-24s %s%s\n", left, o->help, o->required ? " (required)" : "");
    }
    printf("  %-24s %s\n", "--threads N", "threads to use (default: all cores); results do not depend on it");
    printf("  %-24s %s\n", "--quiet", "no progress bar, only results and errors");
    printf("  %-24s %s\n", "-h, --help", "show this help");
}

static int parse_value(const ArgSpec *spec, const ArgOpt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->type) {
    case ARG_STR: *(const char **)o->target = v; return ARGS_OK;
    case ARG_INT: {
        long long x = strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno || x < INT_MIN || x > INT_MAX) break;
        *(int *)o->target = (int)x;
        return ARGS_OK;
    }
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno || !isfinite(x)) break;
        *(double *)o->target = x;
        return ARGS_OK;
    }
    case ARG_FLAG: break;
    }
    fprintf(stderr, "%s: %s expects %s, got \"%s\"\n", spec->command, o->name, o->type == ARG_INT ? "an integer" : "a number", v);
    return ARGS_ERROR;
}

int args_parse(const ArgSpec *spec, int argc, char **argv, char **rest, int max_rest, int *nrest, int *quiet) {
    *nrest = 0;
    int threads = 0;
    if (quiet) *quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            args_print_help(spec);
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
        if (!strcmp(a, "--quiet")) {
            if (quiet) *quiet = 1;
            continue;
        }
        const char *value = NULL;
        if (!strncmp(a, "--threads", len) && len == 9) {
            value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            char *end;
            long t = value ? strtol(value, &end, 10) : 0;
            if (!value || *end || t < 1 || t > 1024) {
                fprintf(stderr, "%s: --threads expects a whole number from 1 to 1024\n", spec->command);
                return ARGS_ERROR;
            }
            threads = (int)t;
            continue;
        }
        const ArgOpt *o = spec->opts;
        while (o && o->name && !(strlen(o->name) == len && !strncmp(o->name, a, len))) o++;
        if (!o || !o->name) {
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
        value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
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
    if (threads) omp_set_num_threads(threads);
    return ARGS_OK;
}
