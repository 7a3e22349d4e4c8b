/* test_public_api.c — libknnlm.a as another program sees it: only src/api/knnlm.h, linked against the public
 * archive (every symbol but the kn_ ones made local). This file defines names the library uses inside
 * (evaluate, layernorm_forward, index_search, file_exists, gemm_f32, tokenizer_load): were they global in the
 * archive, it would not link. Then the interface against references: the tokenizer against Hugging Face's
 * ids, the kNN-LM at lambda 0 against the LM alone, and the errors. */
#include "api/knnlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, fails;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        checks++;                                                             \
        if (!(cond)) {                                                        \
            fails++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

/* the program's own functions, named as the library's internal ones */
int evaluate(void) { return 1; }
void layernorm_forward(void) {}
int index_search(void) { return 2; }
int file_exists(const char *p) { return p != NULL; }
void gemm_f32(void) {}
int tokenizer_load(void) { return 3; }

#define MODEL "tests/data/tiny-random"

int main(void) {
    KnModel *m = NULL;
    CHECK(kn_model_open(&m, "/nonexistent-model") < 0 && strstr(kn_errmsg(), "/nonexistent-model"), "%s", kn_errmsg());
    CHECK(kn_model_open(&m, MODEL) == 0, "%s", kn_errmsg());
    if (!m) return 1;
    /* Hugging Face tokenizers' ids for the model card's example (tests/data/tokenizer/SOURCE.md) */
    const char *text = "안녕하세요. 한국어 GPT-2 입니다.😤:)l^o";
    const int32_t want[] = {25906, 8702, 7801, 25856, 34407, 10528, 422, 426, 18258, 9241, 12521, 254, 110, 162};
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(kn_tokenize(m, text, strlen(text), &ids, &n) == 0, "%s", kn_errmsg());
    CHECK(n == sizeof want / sizeof want[0] && ids && memcmp(ids, want, sizeof want) == 0, "%zu ids", n);
    kn_free(ids);
    CHECK(kn_tokenize(m, "\xff", 1, &ids, &n) < 0 && strstr(kn_errmsg(), "UTF-8"), "%s", kn_errmsg());

    /* a paragraph of the sample corpus, and a datastore of the first lines built by the command */
    FILE *f = fopen("data/kowiki-sample/valid.txt", "rb");
    char line[8192];
    CHECK(f && fgets(line, sizeof line, f), "data/kowiki-sample/valid.txt");
    if (f) fclose(f);
    line[strcspn(line, "\n")] = '\0';
    CHECK(kn_tokenize(m, line, strlen(line), &ids, &n) == 0 && n > 40, "%s", kn_errmsg());
    double lm = 0, lm2 = 0, knn = 0;
    CHECK(kn_lm_perplexity(m, ids, n, 64, 32, &lm) == 0 && isfinite(lm) && lm > 1, "%s", kn_errmsg());
    CHECK(kn_lm_perplexity(m, ids, 1, 64, 32, &lm2) < 0, "one token has nothing to predict");

    const char *knnlm = getenv("KNNLM"); /* tests/run.sh sets it */
    char cmd[1024], dir[] = "/tmp/knnlm-public-XXXXXX";
    CHECK(knnlm && mkdtemp(dir), "KNNLM not set or no temp dir");
    if (knnlm) {
        snprintf(cmd, sizeof cmd,
                 "head -n 12 data/kowiki-sample/train.txt > %s/train.txt && %s datastore build --model %s --corpus %s/train.txt --out %s/ds "
                 "--window 64 --stride 32 --quiet && %s index build --dstore %s/ds --out %s/flat.faiss --quiet",
                 dir, knnlm, MODEL, dir, dir, knnlm, dir, dir);
        CHECK(system(cmd) == 0, "%s", cmd);
        KnMemory *mem = NULL;
        char ds[256], ix[256];
        snprintf(ds, sizeof ds, "%s/ds", dir);
        snprintf(ix, sizeof ix, "%s/flat.faiss", dir);
        CHECK(kn_memory_open(&mem, m, ds, ix) == 0, "%s", kn_errmsg());
        if (mem) {
            CHECK(kn_knnlm_perplexity(m, mem, ids, n, 8, 0.0, 1.0, &knn, &lm2) == 0, "%s", kn_errmsg());
            CHECK(knn == lm2 && lm2 == lm, "lambda 0: %.17g, LM %.17g, LM alone %.17g", knn, lm2, lm);
            CHECK(kn_knnlm_perplexity(m, mem, ids, n, 8, 0.25, 1.0, &knn, NULL) == 0 && isfinite(knn) && knn != lm, "%.17g", knn);
            CHECK(kn_knnlm_perplexity(m, mem, ids, n, 0, 0.25, 1.0, &knn, NULL) < 0 && strstr(kn_errmsg(), "k"), "%s", kn_errmsg());
            kn_memory_close(mem);
        }
        /* the same datastore with a model built from other weights: refused, naming them */
        KnModel *other = NULL;
        snprintf(cmd, sizeof cmd, "mkdir -p %s/f16 && cp %s/config.json %s/tokenizer.json %s/f16/ && cp %s/model-f16.safetensors %s/f16/model.safetensors",
                 dir, MODEL, MODEL, dir, MODEL, dir);
        CHECK(system(cmd) == 0, "%s", cmd);
        snprintf(cmd, sizeof cmd, "%s/f16", dir);
        CHECK(kn_model_open(&other, cmd) == 0, "%s", kn_errmsg());
        if (other && kn_memory_open(&mem, other, ds, ix) == 0) {
            CHECK(kn_knnlm_perplexity(other, mem, ids, n, 8, 0.25, 1.0, &knn, NULL) == -6 && strstr(kn_errmsg(), "other model weights"), "%s",
                  kn_errmsg());
            kn_memory_close(mem);
        }
        kn_model_close(other);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    }
    kn_free(ids);
    kn_model_close(m);
    /* the program's functions are its own */
    CHECK(evaluate() == 1 && index_search() == 2 && tokenizer_load() == 3, "a library function answered");
    printf("tests/test_public_api.c: %d checks, %d failed\n", checks, fails);
    return fails ? 1 : 0;
}
