/* cmd_embed.c — `knnlm embed`: the key representations (and optionally the logits) of one token sequence. */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/outpath.h"

#include "model/gpt2.h"
#include "util/error.h"
#include "util/npy.h"

#include <stdlib.h>
#include <string.h>

int cmd_embed(int argc, char **argv) {
    const char *model_dir = NULL, *weights = NULL, *ids_path = NULL, *out = NULL, *key_name = "last_ffn_input", *logits_path = NULL;
    int force = 0, quiet;
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &model_dir, "DIR", "a Hugging Face GPT-2 folder (config.json + model.safetensors or pytorch_model.bin)", 1},
        {"--weights", ARG_STR, &weights, "FILE", "the weights file to use (default: found in --model)", 0},
        {"--ids", ARG_STR, &ids_path, "IDS.npy", "the token ids: int32 or int64, shape [T] or [1, T], T <= n_positions", 1},
        {"--out", ARG_STR, &out, "KEYS.npy", "where to write the keys: float32 [T, n_embd]", 1},
        {"--key", ARG_STR, &key_name, "TYPE", "last_ffn_input (default: the last block's ln_2 output), final_hidden (ln_f output) or last_layer_output", 0},
        {"--logits", ARG_STR, &logits_path, "FILE.npy", "also write the logits: float32 [T, vocab_size]", 0},
        {"--force", ARG_FLAG, &force, NULL, "replace --out / --logits if they exist (never an input)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm embed", "Runs the model over one token sequence (positions 0..T-1) and writes its key representations.",
                          "--model DIR --ids IDS.npy --out KEYS.npy [--key TYPE] [--logits LOGITS.npy] [--force]", NULL, opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    Gpt2KeyType key;
    int rc = gpt2_key_parse(key_name, &key);
    OutPlan *plan = NULL;
    if (rc == KN_OK) rc = outplan_create(&plan, force);
    if (rc == KN_OK) rc = outplan_input(plan, "--ids", ids_path);
    if (rc == KN_OK) rc = outplan_input(plan, "--weights", weights);
    if (rc == KN_OK) rc = outplan_input_folder(plan, "--model", model_dir);
    if (rc == KN_OK) rc = outplan_output(plan, "--out", out, NULL, NULL);
    if (rc == KN_OK) rc = outplan_output(plan, "--logits", logits_path, NULL, NULL);
    if (rc == KN_OK) rc = outplan_check(plan);
    outplan_free(plan);
    if (rc != KN_OK) return cli_fail("embed", rc);
    NpyArray arr;
    rc = npy_map(&arr, ids_path);
    if (rc != KN_OK) return cli_fail("embed", rc);
    int64_t T = arr.numel;
    int32_t *ids = NULL;
    if (!(arr.dtype == NPY_I32 || arr.dtype == NPY_I64) || !(arr.ndim == 1 || (arr.ndim == 2 && arr.shape[0] == 1)))
        rc = kn_error(KN_EINVAL, "%s: expected int32 or int64 token ids of shape [T] or [1, T]", ids_path);
    else if (T < 1)
        rc = kn_error(KN_EINVAL, "%s: holds no tokens", ids_path);
    else if (!(ids = malloc((size_t)T * sizeof *ids)))
        rc = kn_error(KN_ENOMEM, "out of memory");
    for (int64_t i = 0; rc == KN_OK && i < T; i++) {
        int64_t v = arr.dtype == NPY_I32 ? ((const int32_t *)arr.data)[i] : ((const int64_t *)arr.data)[i];
        if (v < INT32_MIN || v > INT32_MAX) rc = kn_error(KN_EINVAL, "%s: id %lld at %lld is out of range", ids_path, (long long)v, (long long)i);
        else ids[i] = (int32_t)v;
    }
    npy_unmap(&arr);
    Gpt2 *m = NULL;
    Gpt2State *st = NULL;
    if (rc == KN_OK) rc = gpt2_load(&m, model_dir, weights);
    if (rc == KN_OK && T > gpt2_config(m)->n_positions)
        rc = kn_error(KN_EINVAL, "%s: %lld tokens, but the model takes at most %d (n_positions); use ppl or datastore build for long text", ids_path,
                      (long long)T, gpt2_config(m)->n_positions);
    if (rc == KN_OK) rc = gpt2_state_create(&st, m, (int)T, 0);
    unsigned need = (1u << key) | (logits_path ? GPT2_NEED_FINAL_HIDDEN : 0);
    if (rc == KN_OK && (rc = gpt2_forward(st, ids, (int)T, need)) != KN_OK) kn_error_wrap(rc, "%s", ids_path);
    if (rc == KN_OK) {
        const int C = gpt2_config(m)->n_embd;
        int64_t shape[2] = {T, C};
        rc = npy_write(out, NPY_F32, 2, shape, gpt2_state_output(st, key));
    }
    if (rc == KN_OK && logits_path) {
        const int V = gpt2_config(m)->vocab_size;
        float *logits = malloc((size_t)T * V * sizeof(float));
        int64_t shape[2] = {T, V};
        if (!logits) rc = kn_error(KN_ENOMEM, "out of memory for %lld x %d logits", (long long)T, V);
        else {
            rc = gpt2_logits(m, gpt2_state_output(st, KEY_FINAL_HIDDEN), (int)T, logits);
            if (rc == KN_OK) rc = npy_write(logits_path, NPY_F32, 2, shape, logits);
        }
        free(logits);
    }
    gpt2_state_free(st);
    gpt2_free(m);
    free(ids);
    return rc == KN_OK ? EXIT_OK : cli_fail("embed", rc);
}
