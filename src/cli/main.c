/* main.c — `knnlm <command> ...`: dispatch to the subcommands, and what they share (see cli.h). The process'
 * main() is knnlm.c's (knnlm) or mpi_run.c's (knnlm-mpi). */
#include "cli/cli.h"

#include "model/gemm.h"
#include "model/gpt2.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/version.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

volatile sig_atomic_t cli_stop_requested = 0;
const CliMpi *cli_mpi = NULL;

/* Records which signal arrived (the first one), so that the exit code can say it: 128 + its number. */
static void on_signal(int sig) {
    if (!cli_stop_requested) cli_stop_requested = sig;
}

void cli_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_load_model(const char *model_dir, const char *weights, Gpt2 **model, Tokenizer **tk) {
    char path[PATH_MAX];
    *model = NULL;
    *tk = NULL;
    int rc = gpt2_load(model, model_dir, weights);
    if (rc == KN_OK) rc = path_join(path, sizeof path, model_dir, "tokenizer.json");
    if (rc == KN_OK) rc = tokenizer_load(tk, path);
    if (rc != KN_OK) {
        gpt2_free(*model);
        *model = NULL;
    }
    return rc;
}

int cli_fail(const char *command, int rc) {
    if (cli_mpi) return cli_mpi->fail(command, rc);
    fprintf(stderr, "knnlm %s: %s\n", command, kn_errmsg());
    return cli_exit_code(rc);
}

int cli_exit_code(int rc) {
    if (rc == KN_OK) return EXIT_OK;
    if (rc != KN_EINTR) return EXIT_FAIL;
    /* the shell's convention: 128 + the signal that stopped us (SIGINT 130, SIGTERM 143) */
    return cli_stop_requested > 0 ? 128 + cli_stop_requested : EXIT_STOPPED;
}

static void on_begin(void *ctx, const char *what, const char *unit, uint64_t total, uint64_t done) {
    CliMonitor *m = ctx;
    progress_start(&m->bar, what, unit, total, done, m->quiet);
}

static void on_progress(void *ctx, uint64_t done, uint64_t bytes) { progress_update(&((CliMonitor *)ctx)->bar, done, bytes); }
static void on_end(void *ctx, uint64_t done, uint64_t bytes) { progress_finish(&((CliMonitor *)ctx)->bar, done, bytes); }

void cli_monitor_init(CliMonitor *m, int quiet) {
    memset(m, 0, sizeof *m);
    m->quiet = quiet;
    m->monitor.begin = on_begin;
    m->monitor.progress = on_progress;
    m->monitor.end = on_end;
    m->monitor.ctx = m;
    m->monitor.stop = &cli_stop_requested;
    progress_start(&m->bar, "", "", 0, 0, 1);
}

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"tokenize", cmd_tokenize, "text to KoGPT2 token ids and back (exactly as Hugging Face tokenizers)"},
    {"embed", cmd_embed, "key representations (and logits) of one token sequence, as .npy"},
    {"ppl", cmd_ppl, "LM-only perplexity of a text file with a sliding window"},
    {"corpus", cmd_corpus, "split a corpus into train / held-out parts by whole documents"},
    {"datastore", cmd_datastore, "build, merge, inspect and verify a kNN datastore (keys.npy, vals.npy)"},
    {"index", cmd_index, "build a Faiss index over a datastore's keys"},
    {"eval", cmd_eval, "kNN-LM perplexity: LM, kNN and interpolation sweep, plot, case analysis"},
    {"plot", cmd_plot, "redraw the λ-sweep plot (SVG) from the JSON eval --json wrote"},
    {"query", cmd_query, "case analysis of one context: the LM's and the kNN's predictions token by token"},
    {"generate", cmd_generate, "generate text with the kNN-LM (or the LM alone), streamed token by token"},
    {"serve", cmd_serve, "HTTP service: case analysis with passages, OpenAI-style completions, a viewer page"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: knnlm <command> [options]   (knnlm <command> --help or knnlm help <command> for its options)\n\n"
               "Ko-kNN-LM %s: a nearest-neighbour language model on KoGPT2, in C.\n\ncommands:\n", KNNLM_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int cli_main(int argc, char **argv) {
    /* Our loops, Faiss and OpenBLAS share one OpenMP pool (we link OpenBLAS's OpenMP build). A pthreads
     * OpenBLAS would run its own threads beside OpenMP's and oversubscribe the cores: then pin it to one. */
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);
    const char *isa = getenv("KNNLM_ISA");
    if (isa && *isa && strcmp(isa, "auto") != 0 && gemm_set_isa(isa) != KN_OK) {
        fprintf(stderr, "knnlm: %s\n", kn_errmsg());
        return EXIT_USAGE;
    }
    /* knnlm help TOPIC [SUB]: the --help of that command (the man page, `man knnlm`, is made of the same texts) */
    char help_flag[] = "--help";
    char *topic[4] = {argv[0], argc >= 3 ? argv[2] : NULL, argc >= 4 ? argv[3] : help_flag, help_flag};
    if (argc >= 3 && !strcmp(argv[1], "help")) {
        argc = argc >= 4 ? 4 : 3;
        argv = topic;
    }
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("knnlm %s\n", KNNLM_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "knnlm: unknown command \"%s\" (knnlm --help lists the commands)\n", argv[1]);
    return EXIT_USAGE;
}
