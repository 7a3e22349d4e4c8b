/* cmd_generate.c — `knnlm generate`: text from a prompt with the kNN-LM (or the LM alone), streamed to stdout
 * token by token, or one case-analysis object per generated token with --json. */
#include "cli/args.h"
#include "cli/cli.h"

#include "knnlm/cases.h"
#include "knnlm/generate.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int json;
    CaseOptions case_opt;
    double first;                 /* seconds of the first token (the prompt's prefill and the lm_head's packing) */
    double lm, search, sample;    /* seconds of the tokens after it: the decoding rate */
} GenerateOutput;

static int write_token(void *ctx, const GeneratedToken *t) {
    GenerateOutput *out = ctx;
    int rc = KN_OK;
    if (t->index == 0) out->first = t->t_lm + t->t_search + t->t_sample;
    else out->lm += t->t_lm, out->search += t->t_search, out->sample += t->t_sample;
    if (out->json) rc = case_write(stdout, &t->scored, t->token, &out->case_opt);
    else if (t->text_len && fwrite(t->text, 1, t->text_len, stdout) != t->text_len) rc = kn_error_errno("<stdout>: write failed");
    /* streamed: each token shows as soon as it is chosen */
    if (rc == KN_OK && fflush(stdout) != 0) rc = kn_error_errno("<stdout>: write failed");
    if (rc == KN_OK && cli_stop_requested) rc = kn_error(KN_EINTR, "generation interrupted");
    return rc;
}

static int parse_seed(const char *s, uint64_t *seed) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *end || errno) return kn_error(KN_EINVAL, "--seed %s: expected a whole number from 0 to 18446744073709551615", s);
    *seed = x;
    return KN_OK;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *weights = NULL, *dstore = NULL, *index = NULL, *prompt = NULL, *prompt_file = NULL, *distance = "l2sq", *seed_s = "0";
    int k = 8, nprobe = 32, exact = 0, json = 0, ignore_eos = 0, quiet;
    GenerateOptions go;
    generate_defaults(&go);
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &model_dir, "DIR", "the Hugging Face GPT-2 folder (with its tokenizer.json)", 1},
        {"--weights", ARG_STR, &weights, "FILE", "the weights file to use (default: found in --model)", 0},
        {"--dstore", ARG_STR, &dstore, "DSTORE", "the datastore folder (without it and --index: the plain LM)", 0},
        {"--index", ARG_STR, &index, "INDEX", "its index", 0},
        {"--prompt", ARG_STR, &prompt, "TEXT", "the text to continue", 0},
        {"--prompt-file", ARG_STR, &prompt_file, "FILE", "read the prompt from a file instead", 0},
        {"--max-new-tokens", ARG_INT, &go.max_new_tokens, "N", "stop after N generated tokens (default 64), or at </s>", 0, 1, ARG_INT_MAX},
        {"--lambda", ARG_DOUBLE, &go.lambda, "L", "interpolation weight of the kNN side (default 0.25)", 0, 0, 1},
        {"--k", ARG_INT, &k, "N", "neighbours per token (default 8)", 0, 1, ARG_INT_MAX},
        {"--knn-temperature", ARG_DOUBLE, &go.knn_temperature, "T", "kNN softmax temperature of exp(-d/T), above 0 (default 1)", 0, 0, 1e300},
        {"--distance", ARG_STR, &distance, "KIND", "l2sq (default: squared L2, as Faiss returns it) or l2", 0},
        {"--temperature", ARG_DOUBLE, &go.temperature, "T", "sampling temperature (default 1); 0 = greedy", 0, 0, 1e300},
        {"--top-k", ARG_INT, &go.top_k, "N", "sample among the N most probable tokens only (default 0: all)", 0, 0, ARG_INT_MAX},
        {"--top-p", ARG_DOUBLE, &go.top_p, "P", "sample within the smallest set of most probable tokens holding P, in (0, 1] (default 1: all)", 0, 0, 1},
        {"--seed", ARG_STR, &seed_s, "S", "seed of the sampling (default 0); the same seed gives the same text", 0},
        {"--ignore-eos", ARG_FLAG, &ignore_eos, NULL, "do not stop at </s>: always --max-new-tokens tokens (for benchmarks)", 0},
        {"--json", ARG_FLAG, &json, NULL, "print one case-analysis object per generated token instead of the text", 0},
        {"--nprobe", ARG_INT, &nprobe, "N", "IVF lists visited per search (default 32; no effect on Flat)", 0, 1, ARG_INT_MAX},
        {"--exact-distances", ARG_FLAG, &exact, NULL, "recompute distances from the datastore's keys (always done for an exact index)", 0},
        {"--retrieval-gate", ARG_DOUBLE, &go.retrieval_gate, "P", "adaptive retrieval: no search where the LM's largest probability is >= P, from 0.001 to 1 (default: search every token)", 0, 0.001, 1},
        {0},
    };
    const ArgSpec spec = {"knnlm generate", "Generate text after a prompt with the kNN-LM: one kNN search per token, sampling from λ p_kNN + (1 - λ) p_LM.",
                          "--model DIR [--dstore DSTORE --index INDEX] --prompt \"...\" [--max-new-tokens 64] [--temperature 0]",
                          "The continuation streams to stdout as it is generated (the prompt is not repeated), then a newline; a summary\n"
                          "with the time per token (LM, search, sampling) goes to stderr unless --quiet. --json prints instead, per\n"
                          "generated token, the case-analysis fields of `knnlm query` with label = the sampled token. Decoding uses\n"
                          "the KV cache; when the text outgrows the model's n_positions the window slides (the cache is recomputed\n"
                          "over the last half). The same --seed gives the same text for any --threads.",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    char *file_text = NULL;
    size_t len = 0;
    int rc = cli_parse_distance(distance, &go.distance);
    if (rc == KN_OK) rc = parse_seed(seed_s, &go.seed);
    if (rc == KN_OK && !!dstore != !!index) rc = kn_error(KN_EINVAL, "%s: needs %s too (or neither, for the plain LM)", dstore ? "--dstore" : "--index", dstore ? "--index" : "--dstore");
    if (rc == KN_OK) rc = cli_text_option(prompt, prompt_file, "--prompt", "--prompt-file", &file_text, &prompt, &len);
    /* ranges are in the option table (checked by args_parse); what it cannot say is an open bound at 0 */
    if (rc == KN_OK && !(go.knn_temperature > 0)) rc = kn_error(KN_EINVAL, "--knn-temperature %g: must be positive", go.knn_temperature);
    if (rc == KN_OK && !(go.top_p > 0)) rc = kn_error(KN_EINVAL, "--top-p %g: must be in (0, 1]", go.top_p);
    CliKnn s = {0};
    if (rc == KN_OK) rc = cli_knn_open(&s, model_dir, weights, dstore, index, nprobe, k);
    if (rc != KN_OK) {
        free(file_text);
        return cli_fail("generate", rc);
    }
    IdVec ids = {0};
    rc = cli_encode_text(s.tk, prompt, len, prompt_file ? prompt_file : "--prompt", &ids);
    go.eos_id = tokenizer_token_to_id(s.tk, "</s>");
    if (s.ds) {
        /* one query per search: starting reader threads for every search of a mapped index's lists would cost
         * more than they save (the lists a token probes are few and soon in the page cache) */
        if (rc == KN_OK) rc = index_set_prefetch_threads(s.index, 0);
        const DstoreManifest *m = dstore_manifest(s.ds);
        go.eos_id = m->eos_id;
        gpt2_key_parse(m->key, &go.key);
        go.index = s.index;
        go.dstore = s.ds;
        go.k = k;
        /* an exact index's distances come from Faiss' sgemm, whose last bits depend on the threads: recomputed
         * from the keys (k rows a query), they do not */
        go.exact_distances = exact || index_nlist(s.index) == 0;
    }
    if (ignore_eos) go.eos_id = -1;
    GenerateOutput out = {json, {s.tk, s.ds ? go.lambda : 0, go.knn_temperature, go.distance}, 0, 0, 0, 0};
    GenerateStats st = {0};
    cli_catch_signals();
    if (rc == KN_OK) rc = generate(s.model, json ? NULL : s.tk, ids.data, (int)ids.len, &go, write_token, &out, &st);
    if (!json && st.generated > 0) putchar('\n');
    if (rc == KN_OK && fflush(stdout) != 0) rc = kn_error_errno("<stdout>: write failed");
    if (rc == KN_OK && !quiet) {
        const double n = st.generated > 1 ? st.generated - 1 : 1;
        fprintf(stderr, "knnlm generate: %d tokens after a %d-token prompt in %.2f s, stopped by %s%s; first token %.1f ms, then per token: LM %.2f ms, search %.2f ms, sampling %.2f ms\n",
                st.generated, st.prompt_tokens, st.total, st.stop == GENERATE_STOP_EOS ? "</s>" : "--max-new-tokens", st.slides ? " (the window slid)" : "",
                1e3 * out.first, 1e3 * out.lm / n, 1e3 * out.search / n, 1e3 * out.sample / n);
        if (go.retrieval_gate > 0 && s.ds)
            fprintf(stderr, "knnlm generate: retrieval gate %g: %d of %d tokens searched\n", go.retrieval_gate, st.searched, st.generated);
    }
    idvec_free(&ids);
    free(file_text);
    cli_knn_close(&s);
    return rc == KN_OK ? EXIT_OK : cli_fail("generate", rc);
}
