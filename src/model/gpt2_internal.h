/* gpt2_internal.h — the Gpt2 struct, shared by the weight loader (gpt2_weights.c) and the forward pass
 * (gpt2.c). Not part of the public API. */
#ifndef KN_GPT2_INTERNAL_H
#define KN_GPT2_INTERNAL_H

#include "model/config.h"
#include "model/gpt2.h"
#include "model/tensorfile.h"

#include <pthread.h>
#include <stdint.h>

typedef struct {
    const float *ln1_w, *ln1_b;     /* (C) */
    const float *qkv_w, *qkv_b;     /* (C, 3C), (3C): Conv1D, stored [in, out] */
    const float *proj_w, *proj_b;   /* (C, C), (C) */
    const float *ln2_w, *ln2_b;     /* (C) */
    const float *fc_w, *fc_b;       /* (C, I), (I) */
    const float *fcproj_w, *fcproj_b; /* (I, C), (C) */
    /* GPT2_BF16 only: the four weights above rounded to bf16 and packed (gemm_pack_bf16), else NULL */
    const uint16_t *qkv_p, *proj_p, *fc_p, *fcproj_p;
} Gpt2Layer;

struct Gpt2 {
    Gpt2Config cfg;
    const float *wte;       /* (V, C) */
    const float *wpe;       /* (maxT, C) */
    Gpt2Layer *layers;      /* (L) */
    const float *lnf_w, *lnf_b; /* (C) */
    const float *lm_head;   /* (V, C): wte when tied */
    TensorFile *file;       /* the memory map that aligned F32 tensors point into */
    float *converted;       /* one allocation for every tensor that had to be converted or realigned */
    size_t converted_floats;
    Gpt2Precision precision;
    uint16_t *packed;       /* GPT2_BF16: one allocation for every layer's packed weights */
    /* lm_head transposed into gemm_pack_f32's panels on the first gpt2_logits (NULL before): our own
     * product, so logits do not depend on the thread count, the BLAS or the CPU */
    void *lm_head_packed;   /* float: gemm_pack_f32's panels */
    void *lm_head_bf16;     /* uint16_t, GPT2_BF16: the lm_head in gemm_pack_bf16's panels, made by the first gpt2_logits */
    pthread_mutex_t lm_head_lock; /* also guards weights_hash */
    char weights_hash[33];        /* XXH3-128 of the weights file (HASH_HEX_LEN), "" until gpt2_weights_hash */
    char *weights_path;
};

#endif
