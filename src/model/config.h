/* config.h — the fields of a Hugging Face GPT-2 config.json that change what the model computes. */
#ifndef KN_CONFIG_H
#define KN_CONFIG_H

#include <stdint.h>

typedef enum { ACT_GELU_NEW, ACT_GELU_ERF, ACT_RELU } Gpt2Activation;

typedef struct {
    int n_layer;             /* L */
    int n_head;              /* NH */
    int n_embd;              /* C */
    int n_inner;             /* 4C unless config.json says otherwise */
    int n_positions;         /* maxT */
    int vocab_size;          /* V */
    float ln_eps;
    Gpt2Activation activation;
    int scale_attn_weights;                /* divide scores by sqrt(head size) (default true) */
    int scale_attn_by_inverse_layer_idx;   /* also divide by layer index + 1 (default false) */
    int tie_word_embeddings;               /* lm_head = wte (default true) */
    int32_t bos_token_id, eos_token_id;    /* KoGPT2: 0 and 1 (-1 when absent) */
} Gpt2Config;

/* Parses and validates path (a config.json). Unknown keys are ignored; a model_type other than "gpt2", an
 * unsupported activation or inconsistent sizes (n_embd not divisible by n_head, ...) are errors naming
 * the file and the key. */
int gpt2_config_load(Gpt2Config *cfg, const char *path);

#endif
