/* cmd_ppl.c — `knnlm ppl`: the LM's perplexity of a text file with the sliding window. */
#include "cli/args.h"
#include "cli/cli.h"

#include "dstore/corpus.h"
#include "knnlm/evaluate.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/file.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cmd_ppl(int argc, char **argv) {
    const char *model_dir = NULL, *weights = NULL, *text = NULL, *format = "auto", *precision = "fp32";
    int window = 0, stride = 0, json = 0, max_tokens = 0, replace = 0, quiet;
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &model_dir, "DIR", "a Hugging Face GPT-2 folder (config.json, tokenizer.json, weights)", 1},
        {"--weights", ARG_STR, &weights, "FILE", "the weights file to use (default: found in --model)", 0},
        {"--text", ARG_STR, &text, "FILE", "UTF-8 text, one paragraph per line (or WikiExtractor output)", 1},
        {"--format", ARG_STR, &format, "FMT", "auto (default), lines or wikiextractor", 0},
        {"--window", ARG_INT, &window, "N", "tokens per window (default: 1024, or the model's n_positions if smaller; a larger one is clamped to it)", 0, 1, ARG_INT_MAX},
        {"--stride", ARG_INT, &stride, "N", "tokens between window starts, at most --window (default: half the window)", 0, 1, ARG_INT_MAX},
        {"--max-tokens", ARG_INT, &max_tokens, "N", "use only the first N tokens of the text's stream (default: all)", 0, 1, ARG_INT_MAX},
        {"--precision", ARG_STR, &precision, "P", "the forward pass' and lm_head's arithmetic: fp32 (default: exact, as PyTorch), bf16 or auto (bf16 where the CPU has AVX512_BF16)", 0},
        {"--json", ARG_FLAG, &json, NULL, "print the result as one JSON object", 0},
        {"--replace-invalid-utf8", ARG_FLAG, &replace, NULL, "read invalid UTF-8 as U+FFFD (<unk>) instead of stopping", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm ppl", "The LM's perplexity of a text: every line's tokens followed by </s>, scored with a sliding window.",
                          "--model DIR --text FILE [--window 1024 --stride 512] [--json]",
                          "Each token but the first is predicted exactly once; after the first window, with at least window - stride\n"
                          "tokens of context. Perplexity = exp(mean negative log-likelihood over the predicted tokens).",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    CorpusFormat fmt;
    int rc = corpus_format_parse(format, &fmt);
    Gpt2Precision prec = GPT2_FP32;
    if (rc == KN_OK) rc = cli_parse_precision(precision, &prec);
    Gpt2 *m = NULL;
    Tokenizer *tk = NULL;
    if (rc == KN_OK) rc = cli_load_model(model_dir, weights, &m, &tk);
    if (rc == KN_OK && prec != GPT2_FP32) rc = gpt2_set_precision(m, prec);
    if (rc != KN_OK) return cli_fail("ppl", rc);
    const Gpt2Config *c = gpt2_config(m);
    EvalOptions eo;
    evaluate_defaults(&eo);
    /* 0: not given (the parser accepts only >= 1) */
    if (window) cli_clamp_window("ppl", c->n_positions, &window, &stride);
    eo.window = window ? window : (c->n_positions < 1024 ? c->n_positions : 1024);
    eo.stride = stride ? stride : (eo.window + 1) / 2;
    CliMonitor mon;
    cli_monitor_init(&mon, quiet);
    cli_catch_signals();
    int32_t eos = corpus_eos_id(c->eos_token_id, tk);
    CorpusOptions co = {fmt, eos, max_tokens, replace ? CORPUS_REPLACE_INVALID_UTF8 : 0};
    int32_t *ids = NULL;
    int64_t n = 0;
    if (eos < 0) rc = kn_error(KN_EFORMAT, "%s: config.json has no eos_token_id and the tokenizer no </s>", model_dir);
    if (rc == KN_OK) rc = corpus_tokenize_all(tk, text, &co, &ids, &n, NULL);
    if (rc == KN_OK && n < 2) rc = kn_error(KN_EINVAL, "%s: gives %lld tokens; perplexity needs at least 2", text, (long long)n);
    LmPerplexity r;
    double t0 = kn_seconds();
    if (rc == KN_OK) rc = evaluate_lm_perplexity(m, ids, n, &eo, &mon.monitor, &r);
    if (rc != KN_OK && rc != KN_EINTR) kn_error_wrap(rc, "%s", text);
    double secs = kn_seconds() - t0;
    if (rc == KN_OK) {
        if (json)
            printf("{\"tokens\": %lld, \"nll\": %.17g, \"ppl\": %.17g, \"window\": %d, \"stride\": %d, \"precision\": \"%s\", \"seconds\": %.3f}\n",
                   (long long)r.tokens, r.nll, r.ppl, eo.window, eo.stride, prec == GPT2_BF16 ? "bf16" : "fp32", secs);
        else
            printf("%s: %lld tokens predicted, window %d, stride %d: mean NLL %.6f, perplexity %.4f (%.1f s, %.0f tokens/s)\n", text,
                   (long long)r.tokens, eo.window, eo.stride, r.nll, r.ppl, secs, secs > 0 ? r.tokens / secs : 0.0);
    }
    free(ids);
    tokenizer_free(tk);
    gpt2_free(m);
    return rc == KN_OK ? EXIT_OK : cli_fail("ppl", rc);
}
