/* cli.h — what the subcommands of `knnlm` share: their entry points, the bridge from the library's progress
 * hooks to the progress bar, the SIGINT/SIGTERM flag, and how an error is reported. */
#ifndef KN_CLI_H
#define KN_CLI_H

#include "cli/progress.h"
#include "dstore/build.h"
#include "dstore/dstore.h"
#include "index/index.h"
#include "knnlm/knn.h"
#include "model/gpt2.h"
#include "tokenizer/tokenizer.h"
#include "util/group.h"
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
int cmd_plot(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Loads model_dir (weights: the file to use, or NULL to find it) and model_dir/tokenizer.json. */
int cli_load_model(const char *model_dir, const char *weights, Gpt2 **model, Tokenizer **tk);

/* What eval, query and generate open: the model and its tokenizer, and (unless dstore and index are both NULL)
 * a datastore and its index, checked against nprobe and k (knn_setup.c). */
typedef struct {
    Gpt2 *model;
    Tokenizer *tk;
    Dstore *ds;       /* NULL: the plain LM */
    KnnIndex *index;
} CliKnn;

int cli_knn_open(CliKnn *s, const char *model_dir, const char *weights, const char *dstore, const char *index, int nprobe, int k);
void cli_knn_close(CliKnn *s);
/* "l2sq" | "l2" for --distance. One-line errors naming the flag. */
int cli_parse_distance(const char *s, KnnDistance *d);
/* "fp32" | "bf16" | "auto" (bf16 where the CPU has AVX512_BF16) for --precision. */
int cli_parse_precision(const char *s, Gpt2Precision *p);
/* The text given by exactly one of `text_flag TEXT` and `file_flag FILE`: *out points to it (into *owned, the
 * file's contents, which the caller frees, for a file) and *len is its length; empty is an error naming it. */
int cli_text_option(const char *text, const char *file, const char *text_flag, const char *file_flag, char **owned, const char **out, size_t *len);
/* Appends the ids of text (no BOS/EOS) to ids; an error, or no tokens at all, names `name` (the flag or file). */
int cli_encode_text(const Tokenizer *tk, const char *text, size_t len, const char *name, IdVec *ids);
/* A --window above the model's n_positions becomes n_positions, and a given --stride (0: not given) shrinks by
 * the same factor; one line on stderr says so. */
void cli_clamp_window(const char *command, int n_positions, int *window, int *stride);

/* Prints "knnlm <command>: <the library's message>" on stderr and returns the exit code for rc. */
int cli_fail(const char *command, int rc);
/* The exit code for a library result: EXIT_OK, EXIT_FAIL, or 128 + the signal for KN_EINTR. */
int cli_exit_code(int rc);

/* The process' entry point after main(): knnlm.c calls it, and mpi_run.c once MPI is started. */
int cli_main(int argc, char **argv);

/* knnlm-mpi under mpirun with more than one process (src/cli/mpi_run.c): the ranks, and the hooks through
 * which datastore build and index build share the work among them. NULL in knnlm and in a knnlm-mpi of one
 * process, which then run exactly as knnlm. */
typedef struct {
    KnGroup group;
    /* datastore build on every rank: rank r builds shard r/size into OUT.shards/r, then rank 0 merges them
     * into o->out_dir (link_only: dstore_merge's --link). rep: the whole build's figures, on rank 0. */
    int (*dstore_build)(const DstoreBuildOptions *o, int link_only, const KnMonitor *monitor, DstoreBuildReport *rep);
    /* cli_fail under MPI: one line for the whole run, from the first rank that failed, naming it. */
    int (*fail)(const char *command, int rc);
} CliMpi;
extern const CliMpi *cli_mpi;

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
