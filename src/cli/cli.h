/* cli.h — what the subcommands of `knnlm` share: their entry points, the bridge from the library's progress
 * hooks to the progress bar, the SIGINT/SIGTERM flag, and how an error is reported. */
#ifndef KN_CLI_H
#define KN_CLI_H

#include "cli/progress.h"
#include "model/gpt2.h"
#include "tokenizer/tokenizer.h"
#include "util/monitor.h"

#include <signal.h>

/* Exit codes: 0 ok, 1 failure (the message says why), 2 bad usage, 128 + N stopped by signal N (SIGINT 130,
 * SIGTERM 143, as a shell reports a process the signal killed); EXIT_STOPPED when the signal is unknown. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_STOPPED = 130 };

int cmd_tokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_datastore(int argc, char **argv);
int cmd_corpus(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_query(int argc, char **argv);

/* Loads model_dir (weights: the file to use, or NULL to find it) and model_dir/tokenizer.json. */
int cli_load_model(const char *model_dir, const char *weights, Gpt2 **model, Tokenizer **tk);

/* Prints "knnlm <command>: <the library's message>" on stderr and returns the exit code for rc. */
int cli_fail(const char *command, int rc);

/* A KnMonitor that draws a progress bar per phase on stderr (nothing with quiet), and whose stop flag is set
 * by SIGINT/SIGTERM once cli_catch_signals() has been called. */
typedef struct {
    KnMonitor monitor;
    Progress bar;
    int quiet;
} CliMonitor;

void cli_monitor_init(CliMonitor *m, int quiet);
void cli_catch_signals(void);
/* 0, or the number of the first SIGINT/SIGTERM that arrived (cli_fail turns it into the exit code). */
extern volatile sig_atomic_t cli_stop_requested;

#endif
