/* cmd_eval.c — `knnlm eval` (perplexity of held-out text: LM, kNN, the λ/k/T sweep, plot, cases) and
 * `knnlm query` (the case analysis of one context). */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/outpath.h"

#include "dstore/corpus.h"
#include "index/dstore_index.h"
#include "knnlm/cases.h"
#include "knnlm/evaluate.h"
#include "knnlm/overlap.h"
#include "knnlm/plot.h"
#include "knnlm/sweep.h"
#include "util/error.h"
#include "util/file.h"
#include "util/hash.h"
#include "util/npy.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Sweep *sweep;
    FileOut *cases;            /* NULL: no --cases */
    CaseOptions case_opt;
    int case_k;
} EvalConsumer;

static int consume(void *ctx, const ScoredToken *t, int n) {
    EvalConsumer *c = ctx;
    for (int i = 0; i < n; i++) {
        int rc = sweep_add_scored(c->sweep, t[i].lm_log_prob, lm_norm_max_prob(&t[i].norm), t[i].dist, t[i].vals, t[i].k, t[i].label);
        if (rc == KN_OK && c->cases) {
            ScoredToken shown = t[i];
            shown.k = t[i].k ? c->case_k : 0; /* 0: the retrieval gate skipped its search */
            rc = case_write(c->cases->f, &shown, t[i].label, &c->case_opt);
            if (rc == KN_EIO || rc == KN_ENOSPC) rc = file_out_write_error(c->cases);
        }
        if (rc != KN_OK) return rc;
    }
    return KN_OK;
}

/* "8,16,...,k": the default k values of the sweep (powers of two from 8, and k itself). */
static void default_ks(char *buf, size_t cap, int k) {
    buf[0] = '\0';
    for (int x = 8; x < k; x *= 2) snprintf(buf + strlen(buf), cap - strlen(buf), "%d,", x);
    snprintf(buf + strlen(buf), cap - strlen(buf), "%d", k);
}

/* One line on stderr when much of the text occurs verbatim in the datastore's corpus (its tokens.npy; a
 * datastore without one is not checked): the kNN would then copy the answers, and the perplexity would not
 * measure what it should. Windows of 32 tokens: shorter ones also match shared boilerplate. */
static void warn_overlap(const char *dstore, const char *text, const int32_t *ids, int64_t n) {
    enum { GRAM = 32 };
    char path[PATH_MAX];
    NpyArray tokens;
    if (path_join(path, sizeof path, dstore, "tokens.npy") != KN_OK || !file_exists(path) || npy_map(&tokens, path) != KN_OK) return;
    OverlapReport r;
    if (tokens.dtype == NPY_I32 && overlap_measure(ids, n, tokens.data, tokens.numel, GRAM, &r) == KN_OK && r.windows > 0 &&
        r.found * 20 >= r.windows)
        fprintf(stderr,
                "knnlm eval: warning: %.0f %% of %s's %d-token windows occur verbatim in the datastore's corpus (%s): the kNN can copy "
                "them, so this perplexity says little about new text\n",
                100.0 * (double)r.found / (double)r.windows, text, GRAM, path);
    npy_unmap(&tokens);
}

int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *weights = NULL, *dstore = NULL, *index = NULL, *text = NULL, *format = "auto";
    const char *lambdas = "0:1:0.05", *ks_spec = NULL, *temps = "1", *distance = "l2sq";
    const char *csv = NULL, *json = NULL, *plot = NULL, *cases = NULL, *gate_plot = NULL;
    int k = 8, nprobe = 32, exact = 0, window = 0, stride = 0, max_tokens = 0, replace = 0, case_k = 8, force = 0, quiet;
    double case_lambda = 0.25, gate = 0;
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &model_dir, "DIR", "the Hugging Face GPT-2 folder the datastore was built with", 1},
        {"--weights", ARG_STR, &weights, "FILE", "the weights file to use (default: found in --model)", 0},
        {"--dstore", ARG_STR, &dstore, "DSTORE", "the datastore folder", 1},
        {"--index", ARG_STR, &index, "INDEX", "its index (knnlm index build)", 1},
        {"--text", ARG_STR, &text, "FILE", "held-out text, one paragraph per line (or WikiExtractor output)", 1},
        {"--format", ARG_STR, &format, "FMT", "auto (default), lines or wikiextractor", 0},
        {"--k", ARG_INT, &k, "N", "neighbours searched per token (default 8)", 0, 1, ARG_INT_MAX},
        {"--ks", ARG_STR, &ks_spec, "LIST", "k values evaluated from that one search, each <= --k (default: 8, 16, ... and --k)", 0},
        {"--lambda", ARG_STR, &lambdas, "GRID", "λ values: start:stop:step or a list (default 0:1:0.05)", 0},
        {"--temperature", ARG_STR, &temps, "LIST", "kNN softmax temperatures (default 1)", 0},
        {"--distance", ARG_STR, &distance, "KIND", "l2sq (default: squared L2, as Faiss returns it) or l2", 0},
        {"--nprobe", ARG_INT, &nprobe, "N", "IVF lists visited per search (default 32; no effect on Flat)", 0, 1, ARG_INT_MAX},
        {"--exact-distances", ARG_FLAG, &exact, NULL, "recompute the neighbours' distances from the datastore's keys (always done for an exact index)", 0},
        {"--retrieval-gate", ARG_DOUBLE, &gate, "P", "adaptive retrieval: no search where the LM's largest probability is >= P, from 0.001 to 1 (default: search every token)", 0, 0.001, 1},
        {"--window", ARG_INT, &window, "N", "tokens per window (default: the datastore's; one above the model's n_positions is clamped to it)", 0, 1, ARG_INT_MAX},
        {"--stride", ARG_INT, &stride, "N", "tokens between window starts, at most --window (default: the datastore's, or half of --window)", 0, 1, ARG_INT_MAX},
        {"--max-tokens", ARG_INT, &max_tokens, "N", "evaluate only the first N tokens of the text's stream (default: all)", 0, 1, ARG_INT_MAX},
        {"--csv", ARG_STR, &csv, "FILE", "write every (λ, k, T) point as CSV", 0},
        {"--json", ARG_STR, &json, "FILE", "write the results as JSON ({\"tokens\", \"lm_ppl\", \"knn_ppl\", \"sweep\", \"best\", ...})", 0},
        {"--plot", ARG_STR, &plot, "FILE.svg", "write the plot of perplexity against λ (SVG)", 0},
        {"--gate-plot", ARG_STR, &gate_plot, "FILE.svg", "write the plot of perplexity against the share of searches a retrieval gate skips (SVG)", 0},
        {"--cases", ARG_STR, &cases, "FILE.jsonl", "write the case analysis, one JSON object per token", 0},
        {"--case-lambda", ARG_DOUBLE, &case_lambda, "L", "the λ the case analysis describes, from 0 to 1 (default 0.25)", 0, 0, 1},
        {"--case-k", ARG_INT, &case_k, "N", "neighbours shown per token in the case analysis (default 8, at most --k)", 0, 1, ARG_INT_MAX},
        {"--replace-invalid-utf8", ARG_FLAG, &replace, NULL, "read invalid UTF-8 as U+FFFD (<unk>) instead of stopping", 0},
        {"--force", ARG_FLAG, &force, NULL, "replace existing --csv/--json/--plot/--cases files that eval did not write (never an input)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm eval", "kNN-LM perplexity of held-out text: the LM alone, the kNN alone and their interpolation for every λ, k and T, in one pass.",
                          "--model DIR --dstore DSTORE --index INDEX --text FILE [--k 8] [--lambda 0:1:0.05] [--plot ppl.svg]",
                          "p(y) = λ p_kNN(y) + (1 - λ) p_LM(y), p_kNN from the k nearest keys weighted by exp(-d/T). A token whose value\n"
                          "is among none of its neighbours has p_kNN = 0, so the kNN alone (and λ = 1) can have infinite perplexity:\n"
                          "reported as inf, never clipped.",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    SweepConfig sc = {0};
    double *lam = NULL, *tem = NULL;
    int *kv = NULL;
    char ks_default[256];
    default_ks(ks_default, sizeof ks_default, k > 0 ? k : 1);
    CorpusFormat fmt;
    int rc = corpus_format_parse(format, &fmt);
    if (rc == KN_OK) rc = cli_parse_distance(distance, &sc.distance);
    if (rc == KN_OK) rc = sweep_parse_lambdas(lambdas, "--lambda", &lam, &sc.n_lambdas);
    if (rc == KN_OK) rc = sweep_parse_ks(ks_spec ? ks_spec : ks_default, "--ks", &kv, &sc.n_ks);
    if (rc == KN_OK) rc = sweep_parse_temperatures(temps, "--temperature", &tem, &sc.n_temperatures);
    if (rc == KN_OK && (case_k < 1 || case_k > k)) rc = kn_error(KN_EINVAL, "--case-k %d: must be between 1 and --k (%d)", case_k, k);
    for (int i = 0; rc == KN_OK && i < sc.n_ks; i++)
        if (kv[i] > k) rc = kn_error(KN_EINVAL, "--ks: %d is larger than --k %d (the neighbours searched)", kv[i], k);
    sc.lambdas = lam;
    sc.ks = kv;
    sc.temperatures = tem;
    sc.k_searched = k;
    /* Every output is checked before anything is loaded: a bad path fails at once, not after the evaluation. */
    OutPlan *plan = NULL;
    if (rc == KN_OK) rc = outplan_create(&plan, force);
    if (rc == KN_OK) rc = outplan_input(plan, "--text", text);
    if (rc == KN_OK) rc = outplan_input(plan, "--weights", weights);
    if (rc == KN_OK) rc = outplan_input_folder(plan, "--model", model_dir);
    if (rc == KN_OK) rc = outplan_input_dstore(plan, "--dstore", dstore);
    if (rc == KN_OK) rc = outplan_input_index(plan, "--index", index);
    if (rc == KN_OK) rc = outplan_output(plan, "--csv", csv, OUT_MARK_EVAL_CSV, NULL);
    if (rc == KN_OK) rc = outplan_output(plan, "--json", json, OUT_MARK_EVAL_JSON, NULL);
    if (rc == KN_OK) rc = outplan_output(plan, "--plot", plot, OUT_MARK_PLOT_SVG, NULL);
    if (rc == KN_OK) rc = outplan_output(plan, "--gate-plot", gate_plot, OUT_MARK_PLOT_SVG, NULL);
    if (rc == KN_OK) rc = outplan_output(plan, "--cases", cases, OUT_MARK_CASES, NULL);
    if (rc == KN_OK) rc = outplan_check(plan);
    outplan_free(plan);
    CliKnn s = {0};
    Sweep *sweep = NULL;
    if (rc == KN_OK) rc = sweep_create(&sweep, &sc);
    if (rc == KN_OK) rc = cli_knn_open(&s, model_dir, weights, dstore, index, nprobe, k);
    if (rc != KN_OK) {
        sweep_free(sweep);
        free(lam), free(kv), free(tem);
        return cli_fail("eval", rc);
    }
    const DstoreManifest *m = dstore_manifest(s.ds);
    EvalOptions eo;
    evaluate_defaults(&eo);
    /* 0: not given (the parser accepts only >= 1) */
    if (window) cli_clamp_window("eval", gpt2_config(s.model)->n_positions, &window, &stride);
    eo.window = window ? window : m->window;
    eo.stride = stride ? stride : (window ? (eo.window + 1) / 2 : m->stride);
    gpt2_key_parse(m->key, &eo.key);
    eo.index = s.index;
    eo.dstore = s.ds;
    eo.k = k;
    /* an exact index's distances come from Faiss' sgemm, whose last bits change with the number of queries a
     * call holds, hence with --threads: recomputed from the keys (k rows a query), they do not */
    eo.exact_distances = exact || index_nlist(s.index) == 0;
    eo.retrieval_gate = gate;
    CorpusOptions co = {fmt, m->eos_id, max_tokens, replace ? CORPUS_REPLACE_INVALID_UTF8 : 0};
    int32_t *ids = NULL;
    int64_t n = 0;
    rc = corpus_tokenize_all(s.tk, text, &co, &ids, &n, NULL);
    if (rc == KN_OK && n < 2) rc = kn_error(KN_EINVAL, "%s: gives %lld tokens; there is nothing to predict", text, (long long)n);
    if (rc == KN_OK) warn_overlap(dstore, text, ids, n);
    EvalConsumer c = {sweep, NULL, {s.tk, case_lambda, sweep_config(sweep)->temperatures[0], sc.distance}, case_k};
    FileOut cases_out = {0};
    if (rc == KN_OK && cases && (rc = file_out_open(&cases_out, cases)) == KN_OK) c.cases = &cases_out;
    CliMonitor mon;
    cli_monitor_init(&mon, quiet);
    cli_catch_signals();
    EvalStats st;
    if (rc == KN_OK) rc = evaluate(s.model, ids, n, &eo, consume, &c, &mon.monitor, &st);
    if (rc == KN_OK) {
        char desc[256];
        index_describe(s.index, desc, sizeof desc);
        printf("datastore %s: %lld entries (%s keys); index: %s\n", dstore, (long long)dstore_size(s.ds), m->key, desc);
        printf("text %s: window %d, stride %d%s", text, eo.window, eo.stride, exact ? ", exact distances" : "");
        if (gate > 0) printf("; retrieval gate %g: %lld of %lld tokens searched", gate, (long long)st.searched, (long long)sweep_tokens(sweep));
        printf("\n\n");
        rc = sweep_write_table(sweep, stdout, "<stdout>");
        printf("\ntime: %.1f s, %.0f tokens/s (model %.1f s, lm_head+softmax %.1f s, search %.1f s, values/exact distances %.1f s, sweep %.1f s)\n",
               st.total, (double)sweep_tokens(sweep) / st.total, st.model, st.logits, st.search, st.exact, st.consumer);
    }
    if (rc == KN_OK && csv) rc = sweep_write_csv(sweep, csv);
    if (rc == KN_OK && json) rc = sweep_write_json(sweep, json);
    if (rc == KN_OK && plot) rc = plot_sweep_svg(sweep, plot, PLOT_SCALE_AUTO);
    if (rc == KN_OK && gate_plot) rc = plot_gate_svg(sweep, gate_plot);
    if (c.cases && rc == KN_OK) rc = file_out_commit(c.cases); /* last, so that a failure before leaves no cases file */
    else if (c.cases) file_out_abort(c.cases);
    free(ids);
    sweep_free(sweep);
    free(lam), free(kv), free(tem);
    cli_knn_close(&s);
    return rc == KN_OK ? EXIT_OK : cli_fail("eval", rc);
}

typedef struct {
    int64_t last;      /* the position of the context's last token: its label is unknown */
    CaseOptions opt;
} QueryConsumer;

static int print_case(void *ctx, const ScoredToken *t, int n) {
    QueryConsumer *q = ctx;
    for (int i = 0; i < n; i++) {
        int rc = case_write(stdout, &t[i], t[i].position == q->last ? -1 : t[i].label, &q->opt);
        if (rc != KN_OK) return rc;
    }
    return KN_OK;
}

int cmd_query(int argc, char **argv) {
    const char *model_dir = NULL, *weights = NULL, *dstore = NULL, *index = NULL, *context = NULL, *context_file = NULL, *distance = "l2sq";
    int k = 8, nprobe = 32, exact = 0, quiet;
    double lambda = 0.25, temperature = 1;
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &model_dir, "DIR", "the Hugging Face GPT-2 folder the datastore was built with", 1},
        {"--weights", ARG_STR, &weights, "FILE", "the weights file to use (default: found in --model)", 0},
        {"--dstore", ARG_STR, &dstore, "DSTORE", "the datastore folder", 1},
        {"--index", ARG_STR, &index, "INDEX", "its index", 1},
        {"--context", ARG_STR, &context, "TEXT", "the text to analyse", 0},
        {"--context-file", ARG_STR, &context_file, "FILE", "read the text from a file instead", 0},
        {"--k", ARG_INT, &k, "N", "neighbours (default 8)", 0, 1, ARG_INT_MAX},
        {"--lambda", ARG_DOUBLE, &lambda, "L", "interpolation weight of the kNN side, from 0 to 1 (default 0.25)", 0, 0, 1},
        {"--temperature", ARG_DOUBLE, &temperature, "T", "kNN softmax temperature, above 0 (default 1)", 0, 0, 1e300},
        {"--distance", ARG_STR, &distance, "KIND", "l2sq (default) or l2", 0},
        {"--nprobe", ARG_INT, &nprobe, "N", "IVF lists visited per search (default 32)", 0, 1, ARG_INT_MAX},
        {"--exact-distances", ARG_FLAG, &exact, NULL, "recompute distances from the datastore's keys (always done for an exact index)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm query", "The case analysis of one context: for every position whose next token is known, what the LM and the kNN predict.",
                          "--model DIR --dstore DSTORE --index INDEX --context \"...\" [--k 8] [--lambda 0.25]",
                          "One JSON object per line: label, lm, knn, lm+knn, lm_probability, knn_probability, knn_lm_percent, labels,\n"
                          "values, distance, softmax. The last object is the continuation of the context (label null). The context is\n"
                          "tokenized as given (no </s> is added); only its last window (the model's n_positions) is used.",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    char *file_text = NULL;
    size_t len = 0;
    KnnDistance dk = KNN_DIST_L2SQ;
    int rc = cli_parse_distance(distance, &dk);
    if (rc == KN_OK && !(temperature > 0)) rc = kn_error(KN_EINVAL, "--temperature %g: must be positive", temperature);
    if (rc == KN_OK) rc = cli_text_option(context, context_file, "--context", "--context-file", &file_text, &context, &len);
    CliKnn s = {0};
    if (rc == KN_OK) rc = cli_knn_open(&s, model_dir, weights, dstore, index, nprobe, k);
    if (rc != KN_OK) {
        free(file_text);
        return cli_fail("query", rc);
    }
    IdVec ids = {0};
    rc = cli_encode_text(s.tk, context, len, context_file ? context_file : "--context", &ids);
    const DstoreManifest *m = dstore_manifest(s.ds);
    const int maxT = gpt2_config(s.model)->n_positions;
    /* the last maxT - 1 tokens, plus a placeholder after them so that the last position is scored too (its
     * output does not depend on the placeholder: attention is causal) */
    size_t first = ids.len > (size_t)maxT - 1 ? ids.len - ((size_t)maxT - 1) : 0;
    if (rc == KN_OK && first > 0) fprintf(stderr, "knnlm query: the context has %zu tokens; analysing its last %d\n", ids.len, maxT - 1);
    if (rc == KN_OK) rc = idvec_reserve(&ids, 1);
    if (rc == KN_OK) {
        ids.data[ids.len++] = m->eos_id;
        EvalOptions eo;
        evaluate_defaults(&eo);
        eo.window = eo.stride = (int)(ids.len - first);
        gpt2_key_parse(m->key, &eo.key);
        eo.index = s.index;
        eo.dstore = s.ds;
        eo.k = k;
        /* an exact index's distances come from Faiss' sgemm, whose last bits change with the number of queries a
     * call holds, hence with --threads: recomputed from the keys (k rows a query), they do not */
    eo.exact_distances = exact || index_nlist(s.index) == 0;
        QueryConsumer q = {(int64_t)(ids.len - first) - 2, {s.tk, lambda, temperature, dk}};
        rc = evaluate(s.model, ids.data + first, (int64_t)(ids.len - first), &eo, print_case, &q, NULL, NULL);
    }
    if (rc == KN_OK && fflush(stdout) != 0) rc = kn_error_errno("<stdout>: write failed");
    idvec_free(&ids);
    free(file_text);
    cli_knn_close(&s);
    return rc == KN_OK ? EXIT_OK : cli_fail("query", rc);
}
