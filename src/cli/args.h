/* args.h — a table-driven option parser for the subcommands, which also writes their --help.
 *
 * Each command declares its options as an array of ArgOpt ending with {0}; args_parse() fills the targets,
 * leaves positional arguments in order in *rest, and prints a one-line error naming the option on bad input. */
#ifndef KN_ARGS_H
#define KN_ARGS_H

typedef enum { ARG_FLAG, ARG_STR, ARG_INT, ARG_DOUBLE } ArgType;

/* An option. INT and DOUBLE options give the range they accept, [min, max] (inclusive): a value outside it is
 * an error that names the option; min == max means no range, which tests/cli/test_ux.sh reports as a missing
 * check. 0 is accepted only where it is a real value (a seed, λ = 0), never as a hidden "default": an option
 * left out keeps its target's initial value, and the help says in words what that means. */
typedef struct {
    const char *name;      /* "--model" */
    ArgType type;
    void *target;          /* int* for FLAG and INT, const char** for STR, double* for DOUBLE */
    const char *metavar;   /* "DIR" (NULL for flags) */
    const char *help;      /* one line; the default is given here in words */
    int required;
    double min, max;       /* INT and DOUBLE: the accepted range */
} ArgOpt;

/* The largest value an INT option can take: for ranges open above. */
#define ARG_INT_MAX 2147483647.0

typedef struct {
    const char *command;   /* "knnlm ppl" */
    const char *summary;   /* one line under the usage */
    const char *usage;     /* "--model DIR --text FILE [options]" */
    const char *details;   /* more paragraphs for --help, or NULL */
    const ArgOpt *opts;
} ArgSpec;

/* A subcommand, for the help of a command that has several (knnlm datastore build|merge|info|verify). */
typedef struct {
    const char *name;
    const char *summary;
} ArgSubcommand;

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_ERROR = 2 };

/* Parses argv[1..argc). "--name value" and "--name=value" both work; "-h"/"--help" prints the help to stdout
 * and returns ARGS_HELP, as does --help-options, which prints the option table as tab-separated lines
 * (name, type, metavar, min, max, required; tests/cli/test_ux.sh walks them). Every command also accepts
 * --threads N (OpenMP threads; default all cores; more than the machine's cores is warned about),
 * --progress-seconds S (the interval of the progress log lines written when stderr is not a terminal) and
 * --quiet (stored in *quiet, may be NULL). Positional arguments go to rest (up to max_rest). */
int args_parse(const ArgSpec *spec, int argc, char **argv, char **rest, int max_rest, int *nrest, int *quiet);

/* The help of a command made of subcommands: the usage line, then each subcommand with its purpose, under
 * "subcommands:" (the heading tests/cli/test_ux.sh looks for to walk into them). */
void args_print_subcommands(const char *command, const char *summary, const ArgSubcommand *subs);

#endif
