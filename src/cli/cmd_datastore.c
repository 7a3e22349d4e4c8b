/* cmd_datastore.c — `knnlm datastore build | merge | info | verify` and `knnlm corpus split`. */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/outpath.h"

#include "dstore/build.h"
#include "dstore/dstore.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_shard(const char *s, int *index, int *count) {
    char extra;
    if (!s) return KN_OK;
    if (sscanf(s, "%d/%d%c", index, count, &extra) != 2 || *count < 1 || *index < 0 || *index >= *count)
        return kn_error(KN_EINVAL, "--shard %s: expected i/N with 0 <= i < N (e.g. 0/4)", s);
    return KN_OK;
}

static int parse_dtype(const char *s, NpyDtype *dt) {
    if (!strcmp(s, "f16") || !strcmp(s, "float16")) *dt = NPY_F16;
    else if (!strcmp(s, "f32") || !strcmp(s, "float32")) *dt = NPY_F32;
    else return kn_error(KN_EINVAL, "--dtype %s: expected f16 or f32", s);
    return KN_OK;
}

/* The window and stride of a build: a --window above the model's n_positions is clamped with a message
 * (cli_clamp_window); left out, 1024 or n_positions if smaller, and half the window. 0: not given. */
static void resolve_window(const char *model_dir, int *window, int *stride) {
    char path[4096];
    Gpt2Config cfg;
    int n_positions = 1024;
    /* an unreadable config.json is reported by the build itself, with the rest of the model */
    if (snprintf(path, sizeof path, "%s/config.json", model_dir) < (int)sizeof path && gpt2_config_load(&cfg, path) == KN_OK)
        n_positions = cfg.n_positions;
    if (*window) cli_clamp_window("datastore build", n_positions, window, stride);
    else *window = n_positions < 1024 ? n_positions : 1024;
    if (!*stride) *stride = (*window + 1) / 2;
}

static int datastore_build(int argc, char **argv) {
    DstoreBuildOptions o;
    dstore_build_defaults(&o);
    const char *key = "last_ffn_input", *dtype = "f16", *shard = NULL, *format = "auto", *precision = "auto";
    int replace = 0, quiet, max_tokens = 0, window = 0, stride = 0, link = 0;
    double checkpoint = o.checkpoint_seconds;
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &o.model_dir, "DIR", "a Hugging Face GPT-2 folder (config.json, tokenizer.json, weights)", 1},
        {"--weights", ARG_STR, &o.weights_path, "FILE", "the weights file to use (default: found in --model)", 0},
        {"--corpus", ARG_STR, &o.corpus_path, "FILE", "UTF-8 text, one paragraph per line, or WikiExtractor <doc> output", 1},
        {"--format", ARG_STR, &format, "FMT", "auto (default), lines or wikiextractor", 0},
        {"--out", ARG_STR, &o.out_dir, "DSTORE", "the datastore folder (created; an unfinished build there is resumed)", 1},
        {"--window", ARG_INT, &window, "N", "tokens per window (default: 1024, or the model's n_positions if smaller; a larger one is clamped to it)", 0, 1, ARG_INT_MAX},
        {"--stride", ARG_INT, &stride, "N", "tokens between window starts, at most --window (default: half the window)", 0, 1, ARG_INT_MAX},
        {"--key", ARG_STR, &key, "TYPE", "last_ffn_input (default), final_hidden or last_layer_output", 0},
        {"--dtype", ARG_STR, &dtype, "f16|f32", "key precision on disk (default f16)", 0},
        {"--precision", ARG_STR, &precision, "P", "the forward pass' arithmetic: fp32 (exact), bf16 (about 1.8x faster, keys within ~0.5 %), auto (default: bf16 where the CPU has AVX512_BF16, else fp32)", 0},
        {"--max-tokens", ARG_INT, &max_tokens, "N", "use only the first N tokens of the corpus' stream (default: all)", 0, 1, ARG_INT_MAX},
        {"--shard", ARG_STR, &shard, "i/N", "build only part i of N (contiguous windows); join with datastore merge", 0},
        {"--checkpoint-seconds", ARG_DOUBLE, &checkpoint, "S", "seconds between checkpoints (default 60; 0: after every window)", 0, 0, 1e6},
        {"--replace-invalid-utf8", ARG_FLAG, &replace, NULL, "read invalid UTF-8 as U+FFFD (<unk>) instead of stopping", 0},
        {"--link", ARG_FLAG, &link, NULL, "knnlm-mpi under mpirun: keep the ranks' shards in DSTORE.shards/ and link DSTORE to them (datastore merge --link) instead of copying", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm datastore build", "Builds a kNN-LM datastore: keys.npy [N, D], vals.npy [N, 1] int32, tokens.npy and manifest.json.",
                          "--model DIR --corpus FILE --out DSTORE [options]",
                          "Every paragraph's tokens are followed by </s>; a sliding window (--window/--stride) gives every token of the\n"
                          "stream but the last one exactly one entry: key = the model's representation at that position, value = the next\n"
                          "token. Safe to kill at any time: run the same command again and it resumes from its last checkpoint, ending\n"
                          "with the same bytes. SIGINT/SIGTERM stop it cleanly at a checkpoint.\n"
                          "knnlm-mpi under mpirun -n R: rank r builds shard r/R into DSTORE.shards/r (resumable), rank 0 merges the\n"
                          "shards into DSTORE (the same bytes as one process) and removes them (with --link: keeps them and links).",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    o.max_tokens = max_tokens;
    o.checkpoint_seconds = checkpoint;
    /* a hook for the tests, not an option: a stop at a point that does not depend on timing */
    const char *stop_after = getenv("KNNLM_TEST_STOP_AFTER");
    if (stop_after) o.stop_after_entries = strtoll(stop_after, NULL, 10);
    o.corpus_flags = replace ? CORPUS_REPLACE_INVALID_UTF8 : 0;
    int rc = gpt2_key_parse(key, &o.key);
    if (rc == KN_OK) rc = parse_dtype(dtype, &o.dtype);
    if (rc == KN_OK) rc = cli_parse_precision(precision, &o.precision);
    if (rc == KN_OK) rc = parse_shard(shard, &o.shard_index, &o.shard_count);
    if (rc == KN_OK) rc = corpus_format_parse(format, &o.corpus_format);
    if (rc == KN_OK && link && !cli_mpi) rc = kn_error(KN_EINVAL, "--link: only for knnlm-mpi on several ranks (mpirun -n R), whose shards it links");
    if (rc == KN_OK && cli_mpi && shard) rc = kn_error(KN_EINVAL, "--shard %s: knnlm-mpi gives each rank its shard; run --shard with knnlm", shard);
    if (rc == KN_OK) resolve_window(o.model_dir, &window, &stride);
    o.window = window;
    o.stride = stride;
    OutPlan *plan = NULL;
    if (rc == KN_OK) rc = outplan_create(&plan, 0);
    if (rc == KN_OK) rc = outplan_input(plan, "--corpus", o.corpus_path);
    if (rc == KN_OK) rc = outplan_input(plan, "--weights", o.weights_path);
    if (rc == KN_OK) rc = outplan_input_folder(plan, "--model", o.model_dir);
    if (rc == KN_OK) rc = outplan_output_dstore(plan, "--out", o.out_dir);
    if (rc == KN_OK) rc = outplan_check(plan);
    outplan_free(plan);
    if (rc != KN_OK) return cli_fail("datastore build", rc);
    CliMonitor mon;
    cli_monitor_init(&mon, quiet);
    cli_catch_signals();
    DstoreBuildReport rep;
    rc = cli_mpi ? cli_mpi->dstore_build(&o, link, &mon.monitor, &rep) : dstore_build(&o, &mon.monitor, &rep);
    if (rc != KN_OK) return cli_fail("datastore build", rc);
    if (rep.already_complete)
        printf("%s: already complete (%lld entries); nothing to do\n", o.out_dir, (long long)rep.entries);
    else
        printf("%s: %lld entries from %lld tokens%s; %lld windows in %.1f s (%.0f entries/s, model %.0f tokens/s)\n", o.out_dir, (long long)rep.entries,
               (long long)rep.tokens, rep.resumed_at ? " (resumed)" : "", (long long)rep.windows, rep.seconds,
               rep.seconds > 0 ? (double)(rep.entries - rep.resumed_at) / rep.seconds : 0.0,
               rep.model_seconds > 0 ? (double)rep.forwarded_tokens / rep.model_seconds : 0.0);
    return EXIT_OK;
}

static int datastore_merge(int argc, char **argv) {
    const char *out = NULL;
    int link = 0, quiet;
    const ArgOpt opts[] = {
        {"--out", ARG_STR, &out, "DSTORE", "the merged datastore folder (new)", 1},
        {"--link", ARG_FLAG, &link, NULL, "copy nothing: write a manifest that lists the shard folders (they must stay in place)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm datastore merge", "Joins the shards of a datastore built with --shard i/N into one datastore.",
                          "--out DSTORE [--link] SHARD_DIR...", NULL, opts};
    char *rest[4096];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 4096, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    if (nrest < 1) {
        fprintf(stderr, "knnlm datastore merge: give the shard folders (see --help)\n");
        return EXIT_USAGE;
    }
    OutPlan *plan = NULL;
    int rc = outplan_create(&plan, 0);
    for (int i = 0; rc == KN_OK && i < nrest; i++) rc = outplan_input_dstore(plan, "shard", rest[i]);
    if (rc == KN_OK) rc = outplan_output_dstore(plan, "--out", out);
    if (rc == KN_OK) rc = outplan_check(plan);
    outplan_free(plan);
    if (rc != KN_OK) return cli_fail("datastore merge", rc);
    CliMonitor mon;
    cli_monitor_init(&mon, quiet);
    rc = dstore_merge(out, (const char *const *)rest, nrest, link, &mon.monitor);
    if (rc != KN_OK) return cli_fail("datastore merge", rc);
    printf("%s: merged %d shards%s\n", out, nrest, link ? " (linked, nothing copied)" : "");
    return EXIT_OK;
}

static void print_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    for (int c; f && (c = fgetc(f)) != EOF;) putchar(c);
    if (f) fclose(f);
}

/* `datastore info` on a folder whose build has not finished: how far it got (from build.json). Returns 0,
 * leaving the caller's error message alone, when the folder holds no build in progress. */
static int show_unfinished(const char *dir, int json) {
    char why[1024];
    snprintf(why, sizeof why, "%s", kn_errmsg());
    DstoreBuildProgress p;
    if (dstore_build_progress(dir, &p) != KN_OK) {
        kn_error(KN_EINVAL, "%s", why); /* the reason dstore_open gave is the one to report */
        return 0;
    }
    const DstoreManifest *m = &p.settings;
    if (json) {
        print_file(dir, "build.json");
    } else {
        printf("datastore   %s: unfinished build (run the same datastore build command to resume it)\n", dir);
        if (p.entries_done >= 0)
            printf("progress    %lld of %lld entries (%.1f %%) from %lld tokens\n", (long long)p.entries_done, (long long)m->entries,
                   m->entries ? 100.0 * (double)p.entries_done / (double)m->entries : 100.0, (long long)m->tokens);
        else
            printf("progress    %s\n", p.tokens_written ? "corpus tokenized; no keys yet" : "tokenization not finished; no keys yet");
        printf("key         %s (%s forward pass), dtype %s\nwindow      %d, stride %d\nmodel       %s (weights %s, %d layers, vocab %d)\n"
               "corpus      %s (%s, hash %s)\n",
               m->key, m->precision, m->dtype == NPY_F16 ? "float16" : "float32", m->window, m->stride, m->model, m->weights_hash, m->n_layer,
               m->vocab_size, m->corpus, m->corpus_format, m->corpus_hash);
        if (m->shard_count > 1) printf("shard       %d of %d\n", m->shard_index, m->shard_count);
    }
    manifest_free(&p.settings);
    return 1;
}

static int datastore_info(int argc, char **argv, int verify) {
    int quiet, json = 0;
    const char *dstore = NULL;
    const ArgOpt opts[] = {
        {"--dstore", ARG_STR, &dstore, "DSTORE", "the datastore folder (or give it as the one argument)", 0},
        {"--json", ARG_FLAG, &json, NULL, "print the manifest as JSON", 0},
        {0},
    };
    const ArgOpt verify_opts[] = {opts[0], {0}};
    const ArgSpec info = {"knnlm datastore info", "Shows what a datastore holds and how it was made.", "--dstore DSTORE [--json]   (or: DSTORE [--json])", NULL, opts};
    const ArgSpec check = {"knnlm datastore verify",
                           "Reads a whole datastore and checks it: shapes and dtype against the manifest, every key finite, every value\n"
                           "a token id below the vocabulary size and equal to the next token of tokens.npy, and the files' hashes.",
                           "--dstore DSTORE   (or: DSTORE)", NULL, verify_opts};
    char *rest[1];
    int nrest;
    int a = args_parse(verify ? &check : &info, argc, argv, rest, 1, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    const char *cmd = verify ? "datastore verify" : "datastore info";
    if (nrest + (dstore != NULL) != 1) {
        fprintf(stderr, "knnlm %s: give one datastore folder: --dstore DSTORE (or as the one argument)\n", cmd);
        return EXIT_USAGE;
    }
    if (!dstore) dstore = rest[0];
    Dstore *ds;
    int rc = dstore_open(&ds, dstore);
    if (rc != KN_OK && !verify && show_unfinished(dstore, json)) return EXIT_OK;
    if (rc != KN_OK) return cli_fail(cmd, rc);
    const DstoreManifest *m = dstore_manifest(ds);
    if (!verify && json) {
        print_file(dstore, "manifest.json");
    } else if (!verify) {
        double gib = (double)m->entries * m->dim * npy_dtype_size(m->dtype) / 1073741824.0;
        printf("datastore   %s\nentries     %lld (stream entries %lld..%lld of %lld tokens)\nkeys        %s [%lld, %d], %.2f GiB\n"
               "key         %s (%s forward pass)\nwindow      %d, stride %d\nmodel       %s (weights %s, %d layers, vocab %d)\ncorpus      %s (%s, hash %s%s)\n",
               dstore, (long long)m->entries, (long long)m->entry_begin, (long long)(m->entry_begin + m->entries - 1), (long long)m->tokens,
               m->dtype == NPY_F16 ? "float16" : "float32", (long long)m->entries, m->dim, gib, m->key, m->precision, m->window, m->stride, m->model,
               m->weights_hash, m->n_layer, m->vocab_size, m->corpus, m->corpus_format, m->corpus_hash, m->max_tokens ? ", truncated by --max-tokens" : "");
        if (m->shard_count > 1) printf("shard       %d of %d\n", m->shard_index, m->shard_count);
        if (m->nparts) printf("parts       %d (linked shard folders)\n", m->nparts);
    } else {
        CliMonitor mon;
        cli_monitor_init(&mon, quiet);
        cli_catch_signals();
        DstoreVerifyReport rep;
        rc = dstore_verify(ds, &mon.monitor, &rep);
        if (rc == KN_OK)
            printf("%s: ok: %lld entries, keys finite, values in [0, %d)%s%s\n", dstore, (long long)rep.entries, m->vocab_size,
                   rep.value_mismatches == 0 ? ", values match tokens.npy" : "", rep.hashes_checked ? ", hashes match the manifest" : "");
    }
    dstore_close(ds);
    return rc == KN_OK ? EXIT_OK : cli_fail(cmd, rc);
}

int cmd_datastore(int argc, char **argv) {
    const char *usage = "usage: knnlm datastore build|merge|info|verify [options]   (each with --help)\n";
    static const ArgSubcommand subs[] = {
        {"build", "build a datastore from a corpus (resumable, shardable)"},
        {"merge", "join the shards of a datastore built with --shard i/N"},
        {"info", "show what a datastore holds and how it was made"},
        {"verify", "read a whole datastore and check it"},
        {0},
    };
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        args_print_subcommands("knnlm datastore", "A kNN datastore: keys.npy [N, D], vals.npy [N, 1], tokens.npy and manifest.json in one folder.", subs);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "build")) return datastore_build(argc - 1, argv + 1);
    if (!strcmp(argv[1], "merge")) return datastore_merge(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return datastore_info(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "verify")) return datastore_info(argc - 1, argv + 1, 1);
    fprintf(stderr, "knnlm datastore: unknown subcommand \"%s\"\n%s", argv[1], usage);
    return EXIT_USAGE;
}

int cmd_corpus(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "split") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            static const ArgSubcommand subs[] = {{"split", "split a corpus into train / held-out files by whole documents, reproducibly (--seed)"}, {0}};
            args_print_subcommands("knnlm corpus", "Prepares a corpus for a datastore and its evaluation.", subs);
            return EXIT_OK;
        }
        fprintf(stderr, "usage: knnlm corpus split [options]   (knnlm corpus split --help)\n");
        return EXIT_USAGE;
    }
    const char *corpus = NULL, *train_out = NULL, *heldout_out = NULL, *format = "auto";
    double train = 0.8;
    int seed = 0, force = 0, replace = 0, quiet;
    const ArgOpt opts[] = {
        {"--corpus", ARG_STR, &corpus, "FILE", "one document per line, or WikiExtractor <doc> output", 1},
        {"--train-out", ARG_STR, &train_out, "FILE", "where the training documents go (the datastore's corpus)", 1},
        {"--heldout-out", ARG_STR, &heldout_out, "FILE", "where the held-out documents go (for evaluation)", 1},
        {"--train", ARG_DOUBLE, &train, "F", "share of documents for training, between 0 and 1 (default 0.8)", 0, 0, 1},
        {"--seed", ARG_INT, &seed, "S", "random seed, 0 or more (default 0): the same seed gives the same split", 0, 0, ARG_INT_MAX},
        {"--format", ARG_STR, &format, "FMT", "auto (default), lines or wikiextractor", 0},
        {"--force", ARG_FLAG, &force, NULL, "replace --train-out / --heldout-out if they exist (never an input)", 0},
        {"--replace-invalid-utf8", ARG_FLAG, &replace, NULL, "let invalid UTF-8 through (copied as it is; build and ppl need the flag too)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm corpus split", "Splits a corpus by whole documents, each drawn to train with probability --train.",
                          "--corpus FILE --train-out FILE --heldout-out FILE [--train 0.8] [--seed S] [--force]", NULL, opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc - 1, argv + 1, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    CorpusFormat fmt;
    int64_t ntrain, nheld;
    OutPlan *plan = NULL;
    int rc = outplan_create(&plan, force);
    if (rc == KN_OK) rc = outplan_input(plan, "--corpus", corpus);
    if (rc == KN_OK) rc = outplan_output(plan, "--train-out", train_out, NULL, NULL);
    if (rc == KN_OK) rc = outplan_output(plan, "--heldout-out", heldout_out, NULL, NULL);
    if (rc == KN_OK) rc = outplan_check(plan);
    outplan_free(plan);
    if (rc == KN_OK) rc = corpus_format_parse(format, &fmt);
    if (rc == KN_OK) rc = corpus_split(corpus, fmt, replace ? CORPUS_REPLACE_INVALID_UTF8 : 0, train, (uint64_t)seed, train_out, heldout_out, &ntrain, &nheld);
    if (rc != KN_OK) return cli_fail("corpus split", rc);
    printf("%lld documents to %s, %lld to %s\n", (long long)ntrain, train_out, (long long)nheld, heldout_out);
    return EXIT_OK;
}
