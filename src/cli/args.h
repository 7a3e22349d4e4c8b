/* args.h — a table-driven option parser for the subcommands, which also writes their --help.
 *
 * Each command declares its options as an array of ArgOpt ending with {0}; args_parse() fills the targets,
 * leaves positional arguments in order in *rest, and prints a one-line error naming the option on bad input. */
#ifndef KN_ARGS_H
#define KN_ARGS_H

typedef enum { ARG_FLAG, ARG_STR, ARG_INT, ARG_DOUBLE } ArgType;

typedef struct {
    const char *name;      /* "--model" */
    ArgType type;
    void *target;          /* int* for FLAG and INT, const char** for STR, double* for DOUBLE */
    const char *metavar;   /* "DIR" (NULL for flags) */
    const char *help;      /* one line; the default is given here in words */
    int required;
} ArgOpt;

typedef struct {
    const char *command;   /* "knnlm ppl" */
    const char *summary;   /* one line under the usage */
    const char *usage;     /* "--model DIR --text FILE [options]" */
    const char *details;   /* more paragraphs for --help, or NULL */
    const ArgOpt *opts;
} ArgSpec;

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_ERROR = 2 };

/* Parses argv[1..argc). "--name value" and "--name=value" both work; "-h"/"--help" prints the help to stdout
 * and returns ARGS_HELP. Every command also accepts --threads N (sets OpenMP threads; default all cores) and
 * --quiet (stored in *quiet, may be NULL). Positional arguments go to rest (up to max_rest). */
int args_parse(const ArgSpec *spec, int argc, char **argv, char **rest, int max_rest, int *nrest, int *quiet);

#endif
