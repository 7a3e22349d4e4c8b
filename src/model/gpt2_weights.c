/* gpt2_weights.c — finding, validating and mapping a GPT-2 checkpoint's tensors (see gpt2_load in gpt2.h). */
#include "model/gpt2.h"
#include "model/gemm.h"
#include "model/gpt2_internal.h"

#include "util/error.h"
#include "util/file.h"
#include "util/hash.h"

#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Picks the weights file of a Hugging Face folder (see gpt2_load). */
static int find_weights(char *out, size_t cap, const char *dir) {
    static const char *const preferred[] = {"model.safetensors", "pytorch_model.bin"};
    for (size_t i = 0; i < sizeof preferred / sizeof preferred[0]; i++) {
        int rc = path_join(out, cap, dir, preferred[i]);
        if (rc != KN_OK) return rc;
        if (file_exists(out)) return KN_OK;
    }
    DIR *d = opendir(dir);
    if (!d) return kn_error_errno("%s: cannot open model folder", dir);
    int found = 0;
    char name[1024] = "";
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0 && n < sizeof name) {
            found++;
            memcpy(name, e->d_name, n + 1);
        }
    }
    closedir(d);
    if (found == 1) return path_join(out, cap, dir, name);
    if (found > 1)
        return kn_error(KN_ENOTFOUND, "%s: several *.safetensors files and no model.safetensors (sharded checkpoints are not supported; pass --weights FILE)", dir);
    return kn_error(KN_ENOTFOUND, "%s: no model.safetensors or pytorch_model.bin in the model folder", dir);
}

/* The tensor "name" or "transformer.name". */
static const TensorInfo *find_tensor(const TensorFile *tf, const char *name) {
    const TensorInfo *t = tensorfile_find(tf, name);
    if (t) return t;
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, "transformer.%s", name);
    return tensorfile_find(tf, prefixed);
}

/* One tensor the model needs: its name, expected shape, and where its float pointer goes. */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    const float **dst;
    const TensorInfo *info;
} WantedTensor;

static int is_aligned_f32(const TensorInfo *t) { return t->dtype == DTYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0; }

static int check_tensor(WantedTensor *w, const TensorFile *tf, const Gpt2Config *cfg) {
    const char *path = tensorfile_path(tf);
    w->info = find_tensor(tf, w->name);
    if (!w->info) return kn_error(KN_EFORMAT, "%s: tensor %s is missing", path, w->name);
    const TensorInfo *t = w->info;
    if (t->dtype != DTYPE_F32 && t->dtype != DTYPE_F16 && t->dtype != DTYPE_BF16)
        return kn_error(KN_EFORMAT, "%s: tensor %s has dtype %s (expected F32, F16 or BF16)", path, t->name, dtype_name(t->dtype));
    int same = t->ndim == w->ndim;
    for (int i = 0; same && i < w->ndim; i++) same = t->shape[i] == w->shape[i];
    if (!same) {
        char got[64] = "", want[64] = "";
        for (int i = 0; i < t->ndim && i < 4; i++) snprintf(got + strlen(got), sizeof got - strlen(got), i ? ", %lld" : "%lld", (long long)t->shape[i]);
        for (int i = 0; i < w->ndim; i++) snprintf(want + strlen(want), sizeof want - strlen(want), i ? ", %lld" : "%lld", (long long)w->shape[i]);
        return kn_error(KN_EMISMATCH, "%s: tensor %s has shape [%s] but config.json implies [%s] (n_layer %d, n_embd %d, vocab_size %d, n_positions %d)",
                        path, t->name, got, want, cfg->n_layer, cfg->n_embd, cfg->vocab_size, cfg->n_positions);
    }
    return KN_OK;
}

/* A tensor h.N.* with N >= n_layer means the checkpoint has more layers than config.json says. */
static int check_no_extra_layers(const TensorFile *tf, const Gpt2Config *cfg) {
    for (size_t i = 0; i < tensorfile_count(tf); i++) {
        const char *name = tensorfile_at(tf, i)->name;
        if (strncmp(name, "transformer.", 12) == 0) name += 12;
        int layer;
        if (sscanf(name, "h.%d.", &layer) == 1 && layer >= cfg->n_layer)
            return kn_error(KN_EMISMATCH, "%s: tensor %s belongs to layer %d but config.json says n_layer %d",
                            tensorfile_path(tf), tensorfile_at(tf, i)->name, layer, cfg->n_layer);
    }
    return KN_OK;
}

static void add(WantedTensor *w, int *n, const float **dst, int64_t d0, int64_t d1, const char *fmt, int layer) {
    WantedTensor *t = &w[(*n)++];
    snprintf(t->name, sizeof t->name, fmt, layer);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->dst = dst;
    t->info = NULL;
}

/* Index of the first NaN or infinity in x[0, n), or n. Blocks of 4096 are tested with one branch-free OR
 * (vectorised), so a clean tensor costs one streaming read. */
static size_t first_nonfinite(const float *x, size_t n) {
    enum { BLOCK = 4096 };
    for (size_t b = 0; b < n; b += BLOCK) {
        const size_t e = n - b < BLOCK ? n : b + BLOCK;
        uint32_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (size_t i = b; i < e; i++) {
            uint32_t u;
            memcpy(&u, x + i, sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad)
            for (size_t i = b; i < e; i++)
                if (!isfinite(x[i])) return i;
    }
    return n;
}

/* A NaN or infinity in any weight would come out as NaN logits and keys: refused at load, naming the first such
 * tensor (the error is set after the parallel loop: messages are thread-local). */
static int check_finite(const WantedTensor *w, int n, const char *path) {
    size_t *at = malloc((size_t)n * sizeof *at);
    if (!at) return kn_error(KN_ENOMEM, "out of memory");
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) at[i] = first_nonfinite(*w[i].dst, (size_t)tensor_numel(w[i].info));
    int rc = KN_OK;
    for (int i = 0; i < n && rc == KN_OK; i++)
        if (at[i] < (size_t)tensor_numel(w[i].info))
            rc = kn_error(KN_EFORMAT, "%s: tensor %s holds a non-finite value (%g at element %zu): a damaged file?", path, w[i].name,
                          (double)(*w[i].dst)[at[i]], at[i]);
    free(at);
    return rc;
}

static int bind_weights(Gpt2 *m) {
    const Gpt2Config *c = &m->cfg;
    const int64_t C = c->n_embd, I = c->n_inner, V = c->vocab_size;
    int max = 5 + 12 * c->n_layer + 1, n = 0;
    WantedTensor *w = calloc((size_t)max, sizeof *w);
    if (!w) return kn_error(KN_ENOMEM, "out of memory");
    add(w, &n, &m->wte, V, C, "wte.weight", 0);
    add(w, &n, &m->wpe, c->n_positions, C, "wpe.weight", 0);
    for (int l = 0; l < c->n_layer; l++) {
        Gpt2Layer *y = &m->layers[l];
        add(w, &n, &y->ln1_w, C, 0, "h.%d.ln_1.weight", l);
        add(w, &n, &y->ln1_b, C, 0, "h.%d.ln_1.bias", l);
        add(w, &n, &y->qkv_w, C, 3 * C, "h.%d.attn.c_attn.weight", l);
        add(w, &n, &y->qkv_b, 3 * C, 0, "h.%d.attn.c_attn.bias", l);
        add(w, &n, &y->proj_w, C, C, "h.%d.attn.c_proj.weight", l);
        add(w, &n, &y->proj_b, C, 0, "h.%d.attn.c_proj.bias", l);
        add(w, &n, &y->ln2_w, C, 0, "h.%d.ln_2.weight", l);
        add(w, &n, &y->ln2_b, C, 0, "h.%d.ln_2.bias", l);
        add(w, &n, &y->fc_w, C, I, "h.%d.mlp.c_fc.weight", l);
        add(w, &n, &y->fc_b, I, 0, "h.%d.mlp.c_fc.bias", l);
        add(w, &n, &y->fcproj_w, I, C, "h.%d.mlp.c_proj.weight", l);
        add(w, &n, &y->fcproj_b, C, 0, "h.%d.mlp.c_proj.bias", l);
    }
    add(w, &n, &m->lnf_w, C, 0, "ln_f.weight", 0);
    add(w, &n, &m->lnf_b, C, 0, "ln_f.bias", 0);
    if (!c->tie_word_embeddings) add(w, &n, &m->lm_head, V, C, "lm_head.weight", 0);

    int rc = check_no_extra_layers(m->file, c);
    size_t convert_floats = 0;
    for (int i = 0; i < n && rc == KN_OK; i++) {
        rc = check_tensor(&w[i], m->file, c);
        if (rc == KN_OK && !is_aligned_f32(w[i].info)) convert_floats += (size_t)tensor_numel(w[i].info);
    }
    if (rc == KN_OK && convert_floats) {
        m->converted = malloc(convert_floats * sizeof(float));
        m->converted_floats = convert_floats;
        if (!m->converted) rc = kn_error(KN_ENOMEM, "%s: out of memory converting %zu weights to float32", tensorfile_path(m->file), convert_floats);
    }
    float *next = m->converted;
    for (int i = 0; i < n && rc == KN_OK; i++) {
        if (is_aligned_f32(w[i].info)) {
            *w[i].dst = w[i].info->data;
        } else {
            rc = tensor_to_f32(w[i].info, next);
            *w[i].dst = next;
            next += tensor_numel(w[i].info);
        }
    }
    if (rc == KN_OK) rc = check_finite(w, n, tensorfile_path(m->file));
    if (c->tie_word_embeddings) m->lm_head = m->wte;
    free(w);
    return rc;
}

int gpt2_load(Gpt2 **out, const char *model_dir, const char *weights_path) {
    *out = NULL;
    Gpt2 *m = calloc(1, sizeof *m);
    char path[4096];
    if (!m) return kn_error(KN_ENOMEM, "out of memory");
    pthread_mutex_init(&m->lm_head_lock, NULL);
    int rc = path_join(path, sizeof path, model_dir, "config.json");
    if (rc == KN_OK && !file_exists(path)) rc = kn_error(KN_ENOTFOUND, "%s: no config.json in the model folder", model_dir);
    if (rc == KN_OK) rc = gpt2_config_load(&m->cfg, path);
    if (rc == KN_OK) {
        if (weights_path) rc = snprintf(path, sizeof path, "%s", weights_path) < (int)sizeof path ? KN_OK : kn_error(KN_EINVAL, "weights path too long");
        else rc = find_weights(path, sizeof path, model_dir);
    }
    if (rc == KN_OK) rc = tensorfile_open(&m->file, path);
    if (rc == KN_OK) {
        m->weights_path = strdup(path);
        m->layers = calloc((size_t)m->cfg.n_layer, sizeof *m->layers);
        if (!m->weights_path || !m->layers) rc = kn_error(KN_ENOMEM, "out of memory");
    }
    if (rc == KN_OK) rc = bind_weights(m);
    if (rc != KN_OK) {
        gpt2_free(m);
        return rc;
    }
    *out = m;
    return KN_OK;
}

void gpt2_free(Gpt2 *m) {
    if (!m) return;
    if (m->file) tensorfile_close(m->file);
    free(m->converted);
    free(m->packed);
    free(m->lm_head_packed);
    free(m->lm_head_bf16);
    pthread_mutex_destroy(&m->lm_head_lock);
    free(m->layers);
    free(m->weights_path);
    free(m);
}

const Gpt2Config *gpt2_config(const Gpt2 *m) { return &m->cfg; }

int gpt2_weights_hash(const Gpt2 *cm, char hex[HASH_HEX_LEN]) {
    Gpt2 *m = (Gpt2 *)cm; /* the hash is a cache: the model is logically const */
    pthread_mutex_lock(&m->lm_head_lock);
    int rc = m->weights_hash[0] ? KN_OK : hash_file(m->weights_path, m->weights_hash);
    if (rc == KN_OK) memcpy(hex, m->weights_hash, HASH_HEX_LEN);
    else m->weights_hash[0] = '\0';
    pthread_mutex_unlock(&m->lm_head_lock);
    return rc;
}
const char *gpt2_weights_path(const Gpt2 *m) { return m->weights_path; }

/* Drops the pages of a weight that is read in place from the file map (PROT_READ, MAP_SHARED) from this
 * process: they stay in the page cache and come back on the next read. Weights in `converted` (heap memory,
 * which MADV_DONTNEED would zero) are left alone. Only whole pages inside the weight. */
static void release_mapped(const Gpt2 *m, const float *w, size_t n) {
    if (m->converted && w >= m->converted && w < m->converted + m->converted_floats) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), begin = ((uintptr_t)w + page - 1) / page * page,
                    end = ((uintptr_t)(w + n)) / page * page;
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

int gpt2_set_precision(Gpt2 *m, Gpt2Precision precision) {
    const Gpt2Config *c = &m->cfg;
    const int C = c->n_embd, I = c->n_inner, L = c->n_layer;
    if (precision != GPT2_FP32 && precision != GPT2_BF16) return kn_error(KN_EINVAL, "precision %d is not GPT2_FP32 or GPT2_BF16", (int)precision);
    if (precision == m->precision) return KN_OK;
    if (precision == GPT2_FP32) {
        for (int l = 0; l < L; l++) m->layers[l].qkv_p = m->layers[l].proj_p = m->layers[l].fc_p = m->layers[l].fcproj_p = NULL;
        free(m->packed);
        m->packed = NULL;
        m->precision = GPT2_FP32;
        return KN_OK;
    }
    const size_t n_qkv = gemm_bf16_packed_size(C, 3 * C), n_proj = gemm_bf16_packed_size(C, C), n_fc = gemm_bf16_packed_size(C, I),
                 n_fcproj = gemm_bf16_packed_size(I, C), per_layer = n_qkv + n_proj + n_fc + n_fcproj;
    m->packed = malloc((size_t)L * per_layer * sizeof(uint16_t));
    if (!m->packed)
        return kn_error(KN_ENOMEM, "%s: out of memory packing the weights in bf16 (%.1f MB)", m->weights_path, (double)L * per_layer * 2 / 1e6);
    const int nthreads = omp_get_max_threads();
    for (int l = 0; l < L; l++) {
        Gpt2Layer *y = &m->layers[l];
        uint16_t *p = m->packed + (size_t)l * per_layer;
        gemm_pack_bf16(p, y->qkv_w, 3 * (size_t)C, C, 3 * C, 0, nthreads);
        gemm_pack_bf16(p + n_qkv, y->proj_w, (size_t)C, C, C, 0, nthreads);
        gemm_pack_bf16(p + n_qkv + n_proj, y->fc_w, (size_t)I, C, I, 0, nthreads);
        gemm_pack_bf16(p + n_qkv + n_proj + n_fc, y->fcproj_w, (size_t)C, I, C, 0, nthreads);
        y->qkv_p = p;
        y->proj_p = p + n_qkv;
        y->fc_p = p + n_qkv + n_proj;
        y->fcproj_p = p + n_qkv + n_proj + n_fc;
        release_mapped(m, y->qkv_w, (size_t)C * 3 * C);
        release_mapped(m, y->proj_w, (size_t)C * C);
        release_mapped(m, y->fc_w, (size_t)C * I);
        release_mapped(m, y->fcproj_w, (size_t)I * C);
    }
    m->precision = GPT2_BF16;
    return KN_OK;
}

Gpt2Precision gpt2_precision(const Gpt2 *m) { return m->precision; }

int gpt2_bf16_native(void) { return gemm_bf16_native(); }
