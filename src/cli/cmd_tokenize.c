/* cmd_tokenize.c — `knnlm tokenize`: text to ids (one line of ids per input line), ids to text (--decode),
 * or JSON lines both ways (--jsonl) so that texts holding newlines pass too. */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/outpath.h"

#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/npy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_tokenizer(Tokenizer **tk, const char *model, const char *file) {
    char path[PATH_MAX];
    if (!file) {
        if (!model) return kn_error(KN_EINVAL, "give --model DIR (its tokenizer.json) or --tokenizer FILE");
        int rc = path_join(path, sizeof path, model, "tokenizer.json");
        if (rc != KN_OK) return rc;
        file = path;
    }
    return tokenizer_load(tk, file);
}

static void print_ids(const IdVec *ids) {
    for (size_t i = 0; i < ids->len; i++) printf(i ? " %d" : "%d", ids->data[i]);
    putchar('\n');
}

/* Parses whitespace-separated ids; KN_EINVAL naming the line on anything else. */
static int parse_ids(const char *line, IdVec *ids, const char *src, long lineno) {
    ids->len = 0;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0') return KN_OK;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX || (*end && *end != ' ' && *end != '\t'))
            return kn_error(KN_EINVAL, "%s:%ld: expected token ids separated by spaces, found \"%.20s\"", src, lineno, p);
        int rc = idvec_reserve(ids, 1);
        if (rc != KN_OK) return rc;
        ids->data[ids->len++] = (int32_t)v;
        p = end;
    }
}

static int jsonl_line(const Tokenizer *tk, const char *line, size_t len, int decode, int skip_special, unsigned flags, IdVec *ids,
                      const char *src, long lineno) {
    cJSON *in = cJSON_ParseWithLength(line, len);
    if (!in || !cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return kn_error(KN_EINVAL, "%s:%ld: not a JSON object", src, lineno);
    }
    int rc = KN_OK;
    cJSON *out = cJSON_CreateObject();
    if (!decode) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(in, "text");
        if (!cJSON_IsString(text)) rc = kn_error(KN_EINVAL, "%s:%ld: no \"text\" string", src, lineno);
        ids->len = 0;
        if (rc == KN_OK) rc = tokenizer_encode(tk, text->valuestring, strlen(text->valuestring), flags, ids);
        if (rc != KN_OK && rc != KN_EINVAL) rc = kn_error_wrap(rc, "%s:%ld", src, lineno);
        if (rc == KN_OK) {
            cJSON *a = cJSON_AddArrayToObject(out, "ids"), *t = cJSON_AddArrayToObject(out, "tokens");
            for (size_t i = 0; i < ids->len; i++) {
                cJSON_AddItemToArray(a, cJSON_CreateNumber(ids->data[i]));
                cJSON_AddItemToArray(t, cJSON_CreateString(tokenizer_token(tk, ids->data[i])));
            }
        }
    } else {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(in, "ids");
        if (!cJSON_IsArray(a)) rc = kn_error(KN_EINVAL, "%s:%ld: no \"ids\" array", src, lineno);
        ids->len = 0;
        for (const cJSON *v = a ? a->child : NULL; rc == KN_OK && v; v = v->next) {
            if (!cJSON_IsNumber(v) || v->valuedouble != (int32_t)v->valuedouble) rc = kn_error(KN_EINVAL, "%s:%ld: ids must be integers", src, lineno);
            else if ((rc = idvec_reserve(ids, 1)) == KN_OK) ids->data[ids->len++] = (int32_t)v->valuedouble;
        }
        char *text = NULL;
        if (rc == KN_OK) rc = tokenizer_decode(tk, ids->data, ids->len, skip_special, &text);
        if (rc == KN_OK) cJSON_AddStringToObject(out, "text", text);
        else if (rc == KN_EINVAL) rc = kn_error_wrap(rc, "%s:%ld", src, lineno);
        free(text);
    }
    if (rc == KN_OK) {
        char *s = cJSON_PrintUnformatted(out);
        puts(s);
        free(s);
    }
    cJSON_Delete(out);
    cJSON_Delete(in);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokenizer = NULL, *text = NULL, *npy = NULL;
    int decode = 0, jsonl = 0, skip_special = 0, replace = 0, force = 0, quiet;
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &model, "DIR", "a Hugging Face model folder (uses its tokenizer.json)", 0},
        {"--tokenizer", ARG_STR, &tokenizer, "FILE", "a tokenizer.json, instead of --model", 0},
        {"--text", ARG_STR, &text, "FILE", "read this file instead of standard input", 0},
        {"--decode", ARG_FLAG, &decode, NULL, "ids to text: each input line holds ids separated by spaces", 0},
        {"--skip-special", ARG_FLAG, &skip_special, NULL, "with --decode: drop special tokens (all added tokens)", 0},
        {"--jsonl", ARG_FLAG, &jsonl, NULL, "JSON lines: {\"text\": ...} in, {\"ids\": [...], \"tokens\": [...]} out (with --decode: {\"ids\": [...]} in, {\"text\": ...} out)", 0},
        {"--replace-invalid-utf8", ARG_FLAG, &replace, NULL, "read invalid UTF-8 as U+FFFD (<unk>) instead of stopping with an error", 0},
        {"--npy", ARG_STR, &npy, "IDS.npy", "write the ids as int32 [T] (every line's, one after the other) for embed --ids, instead of printing them", 0},
        {"--force", ARG_FLAG, &force, NULL, "replace --npy if it exists (never an input)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm tokenize", "Text to KoGPT2 token ids, exactly as Hugging Face tokenizers encodes it (no BOS/EOS added).",
                          "(--model DIR | --tokenizer FILE) [--text FILE] [--decode] [--jsonl] [--npy IDS.npy]",
                          "Each input line is one text (its \"\\n\" or \"\\r\\n\" is not part of it) and gives one line of ids.\n"
                          "Use --jsonl for texts that hold newlines. Invalid UTF-8 stops with an error naming the line.",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    int rc = KN_OK;
    if (npy && (decode || jsonl)) rc = kn_error(KN_EINVAL, "--npy writes the ids of text: it does not go with --decode or --jsonl");
    OutPlan *plan = NULL;
    if (rc == KN_OK && npy && (rc = outplan_create(&plan, force)) == KN_OK) {
        rc = outplan_input(plan, "--text", text);
        if (rc == KN_OK) rc = outplan_output(plan, "--npy", npy, NULL, NULL);
        if (rc == KN_OK) rc = outplan_check(plan);
        outplan_free(plan);
    }
    Tokenizer *tk = NULL;
    if (rc == KN_OK) rc = load_tokenizer(&tk, model, tokenizer);
    if (rc != KN_OK) return cli_fail("tokenize", rc);
    FILE *in = text ? fopen(text, "rb") : stdin;
    const char *src = text ? text : "<stdin>";
    if (!in) {
        tokenizer_free(tk);
        rc = kn_error_errno("%s: cannot open", text);
        return cli_fail("tokenize", rc);
    }
    unsigned flags = replace ? TOKENIZER_REPLACE_INVALID_UTF8 : 0;
    IdVec ids = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    while (rc == KN_OK && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (len && line[len - 1] == '\n') line[--len] = '\0';
        if (len && line[len - 1] == '\r') line[--len] = '\0';
        if (jsonl) {
            rc = jsonl_line(tk, line, (size_t)len, decode, skip_special, flags, &ids, src, lineno);
        } else if (decode) {
            char *out = NULL;
            rc = parse_ids(line, &ids, src, lineno);
            if (rc == KN_OK) rc = tokenizer_decode(tk, ids.data, ids.len, skip_special, &out);
            if (rc == KN_EINVAL && out == NULL && strstr(kn_errmsg(), src) == NULL) rc = kn_error_wrap(rc, "%s:%ld", src, lineno);
            if (rc == KN_OK) puts(out);
            free(out);
        } else {
            if (!npy) ids.len = 0; /* --npy: every line's ids one after the other */
            rc = tokenizer_encode(tk, line, (size_t)len, flags, &ids);
            if (rc != KN_OK) rc = kn_error_wrap(rc, "%s:%ld", src, lineno);
            else if (!npy) print_ids(&ids);
        }
    }
    if (rc == KN_OK && npy) {
        int64_t shape[1] = {(int64_t)ids.len};
        rc = npy_write(npy, NPY_I32, 1, shape, ids.data);
        if (rc == KN_OK) printf("%s: %zu token ids from %ld lines (int32 [%zu])\n", npy, ids.len, lineno, ids.len);
    }
    if (rc == KN_OK && ferror(in)) rc = kn_error_errno("%s: read failed", src);
    free(line);
    idvec_free(&ids);
    if (text) fclose(in);
    tokenizer_free(tk);
    if (rc == KN_OK && fflush(stdout) != 0) rc = kn_error_errno("<stdout>: write failed");
    return rc == KN_OK ? EXIT_OK : cli_fail("tokenize", rc);
}
