/* make_random_model.c — writes a KoGPT2-shaped GPT-2 with random weights, so the forward-pass benchmarks
 * need nothing downloaded.
 *
 *   build/release/bench/make_random_model OUT_DIR [n_layer n_embd n_head vocab n_positions]
 *
 * Defaults are KoGPT2's shape: 12 layers, n_embd 768, 12 heads, vocab 51200, 1024 positions, gelu_new,
 * tied lm_head. OUT_DIR gets config.json and model.safetensors (F32, names with the "transformer." prefix as
 * GPT2LMHeadModel saves them; ~500 MB at the default shape: put it under /tmp, not in the repository).
 *
 * Weights follow GPT-2's initialisation scale (normal, std 0.02; the two residual projections c_proj std
 * 0.02 / sqrt(2 n_layer)), with the seed fixed, so every run writes the same bytes. Layer-norm gains are
 * 1 + N(0, 0.1) and biases N(0, 0.02) rather than exactly 1 and 0, so that a kernel that drops a gain or a bias
 * shows up in a comparison. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* splitmix64: a fixed, portable stream of 64-bit values. */
static uint64_t rng_state = 0x4b6f2d6b4e4e2d4cull;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A standard normal (Box-Muller, in double so the values are the same wherever libm is correctly rounded
 * to float). */
static float rng_normal(void) {
    static int have = 0;
    static double spare;
    if (have) {
        have = 0;
        return (float)spare;
    }
    double u1 = ((double)(rng_next() >> 11) + 1.0) * 0x1.0p-53, u2 = (double)(rng_next() >> 11) * 0x1.0p-53;
    double r = sqrt(-2.0 * log(u1));
    spare = r * sin(2.0 * M_PI * u2);
    have = 1;
    return (float)(r * cos(2.0 * M_PI * u2));
}

typedef enum { INIT_NORMAL, INIT_GAIN } InitKind;

typedef struct {
    char name[96]; /* "transformer." + the longest name, "h.11.mlp.c_proj.weight" */
    int64_t shape[2];
    int ndim;
    InitKind kind;
    float std;
} Tensor;

static int64_t numel(const Tensor *t) { return t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1]; }

static void add(Tensor *ts, int *n, const char *name, int64_t d0, int64_t d1, InitKind kind, float std) {
    Tensor *t = &ts[(*n)++];
    snprintf(t->name, sizeof t->name, "transformer.%s", name);
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->ndim = d1 ? 2 : 1;
    t->kind = kind;
    t->std = std;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 7) {
        fprintf(stderr, "usage: %s OUT_DIR [n_layer n_embd n_head vocab n_positions]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int L = 12, C = 768, NH = 12, V = 51200, P = 1024;
    if (argc == 7) {
        L = atoi(argv[2]);
        C = atoi(argv[3]);
        NH = atoi(argv[4]);
        V = atoi(argv[5]);
        P = atoi(argv[6]);
    }
    if (L < 1 || C < 1 || NH < 1 || C % NH || V < 1 || P < 1) {
        fprintf(stderr, "%s: bad shape (n_embd must be a multiple of n_head)\n", argv[0]);
        return 2;
    }
    if (mkdir(dir, 0755) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            perror(dir);
            return 1;
        }
    }
    const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * (float)L);
    int n = 0;
    Tensor *ts = calloc((size_t)(4 + 12 * L), sizeof *ts);
    char name[64];
    add(ts, &n, "wte.weight", V, C, INIT_NORMAL, std);
    add(ts, &n, "wpe.weight", P, C, INIT_NORMAL, 0.01f);
    for (int l = 0; l < L; l++) {
#define ADD(suffix, d0, d1, kind, s)                                   \
    do {                                                               \
        snprintf(name, sizeof name, "h.%d.%s", l, suffix);             \
        add(ts, &n, name, d0, d1, kind, s);                            \
    } while (0)
        ADD("ln_1.weight", C, 0, INIT_GAIN, 0.1f);
        ADD("ln_1.bias", C, 0, INIT_NORMAL, std);
        ADD("attn.c_attn.weight", C, 3 * C, INIT_NORMAL, std);
        ADD("attn.c_attn.bias", 3 * C, 0, INIT_NORMAL, std);
        ADD("attn.c_proj.weight", C, C, INIT_NORMAL, proj_std);
        ADD("attn.c_proj.bias", C, 0, INIT_NORMAL, std);
        ADD("ln_2.weight", C, 0, INIT_GAIN, 0.1f);
        ADD("ln_2.bias", C, 0, INIT_NORMAL, std);
        ADD("mlp.c_fc.weight", C, 4 * C, INIT_NORMAL, std);
        ADD("mlp.c_fc.bias", 4 * C, 0, INIT_NORMAL, std);
        ADD("mlp.c_proj.weight", 4 * C, C, INIT_NORMAL, proj_std);
        ADD("mlp.c_proj.bias", C, 0, INIT_NORMAL, std);
#undef ADD
    }
    add(ts, &n, "ln_f.weight", C, 0, INIT_GAIN, 0.1f);
    add(ts, &n, "ln_f.bias", C, 0, INIT_NORMAL, std);

    /* The safetensors header: JSON, padded with spaces so the data starts 64-byte aligned in the file. */
    size_t cap = (size_t)n * 160 + 256, len = 0;
    char *json = malloc(cap);
    len += (size_t)snprintf(json + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)numel(&ts[i]) * 4;
        if (ts[i].ndim == 1)
            len += (size_t)snprintf(json + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}", ts[i].name,
                                    (long long)ts[i].shape[0], (unsigned long long)offset, (unsigned long long)(offset + bytes));
        else
            len += (size_t)snprintf(json + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}", ts[i].name,
                                    (long long)ts[i].shape[0], (long long)ts[i].shape[1], (unsigned long long)offset, (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    len += (size_t)snprintf(json + len, cap - len, "}");
    while ((8 + len) % 64) json[len++] = ' ';

    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    uint64_t hlen = len; /* little-endian on x86 */
    int ok = fwrite(&hlen, 8, 1, f) == 1 && fwrite(json, 1, len, f) == len;
    float *buf = malloc((size_t)1 << 22);
    for (int i = 0; ok && i < n; i++) {
        int64_t total = numel(&ts[i]);
        for (int64_t at = 0; ok && at < total; at += 1 << 20) {
            int64_t m = total - at < (1 << 20) ? total - at : (1 << 20);
            for (int64_t j = 0; j < m; j++) buf[j] = (ts[i].kind == INIT_GAIN ? 1.0f : 0.0f) + ts[i].std * rng_normal();
            ok = fwrite(buf, 4, (size_t)m, f) == (size_t)m;
        }
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "%s: write failed\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fprintf(f,
            "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n  \"activation_function\": \"gelu_new\",\n"
            "  \"n_layer\": %d,\n  \"n_head\": %d,\n  \"n_embd\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"vocab_size\": %d,\n"
            "  \"layer_norm_epsilon\": 1e-05,\n  \"bos_token_id\": 0,\n  \"eos_token_id\": 1,\n  \"pad_token_id\": 3,\n"
            "  \"tie_word_embeddings\": true\n}\n",
            L, NH, C, P, P, V);
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: write failed\n", path);
        return 1;
    }
    printf("%s: %d layers, n_embd %d, %d heads, vocab %d, %d positions; %.1f MB of F32 weights\n", dir, L, C, NH, V, P, (double)offset / 1e6);
    free(buf);
    free(json);
    free(ts);
    return 0;
}
