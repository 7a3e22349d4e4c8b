/* gpt2.h — the GPT-2 forward pass (Hugging Face GPT2LMHeadModel semantics) in fp32 on the CPU.
 *
 * Dimension names used in shape comments: L layers, NH heads, C = n_embd, HS = C / NH, I = n_inner (4C),
 * V vocabulary, maxT = n_positions, T tokens of one call.
 *
 * A Gpt2 holds the configuration and the weights (memory-mapped where the file allows, read-only, shared by
 * any number of threads). A Gpt2State holds the activations of one forward call of up to max_tokens tokens and,
 * optionally, the key/value cache for incremental decoding; one state per concurrent forward. */
#ifndef KN_GPT2_H
#define KN_GPT2_H

#include "model/config.h"

#include <stdint.h>

/* The representation the datastore stores as its key (SPEC.md). */
typedef enum {
    KEY_LAST_FFN_INPUT,      /* output of the last block's ln_2: the input to its feed-forward block (default) */
    KEY_FINAL_HIDDEN,        /* output of ln_f: what the lm_head multiplies */
    KEY_LAST_LAYER_OUTPUT,   /* the residual stream after the last block, before ln_f */
} Gpt2KeyType;

const char *gpt2_key_name(Gpt2KeyType key);
/* "last_ffn_input" | "final_hidden" | "last_layer_output" -> KN_OK, else KN_EINVAL naming the string. */
int gpt2_key_parse(const char *name, Gpt2KeyType *key);

typedef struct Gpt2 Gpt2;
typedef struct Gpt2State Gpt2State;

/* Loads model_dir/config.json and the weights: weights_path if not NULL, else model_dir/model.safetensors,
 * else model_dir/pytorch_model.bin, else the only *.safetensors file of the folder. Tensor names may carry the
 * "transformer." prefix or not; attn.bias / attn.masked_bias buffers are ignored; lm_head.weight is used only
 * when tie_word_embeddings is false. Dtypes F32, F16 and BF16 are read (computation is fp32); aligned F32 data
 * is used in place from the memory map. Errors name the file and the tensor (missing, wrong shape, ...). */
int gpt2_load(Gpt2 **out, const char *model_dir, const char *weights_path);
void gpt2_free(Gpt2 *model);

const Gpt2Config *gpt2_config(const Gpt2 *model);
/* The weights file that was loaded. */
const char *gpt2_weights_path(const Gpt2 *model);

/* A state for forward calls of up to max_tokens tokens (<= n_positions). With kv_cache, it also keeps every
 * layer's keys and values of the tokens seen so far (L * 2 * maxT * C floats), for incremental decoding. */
int gpt2_state_create(Gpt2State **out, const Gpt2 *model, int max_tokens, int kv_cache);
void gpt2_state_free(Gpt2State *state);

/* What a forward call must produce; less is faster (the datastore needs only its key). */
enum {
    GPT2_NEED_LAST_FFN_INPUT = 1 << KEY_LAST_FFN_INPUT,
    GPT2_NEED_FINAL_HIDDEN = 1 << KEY_FINAL_HIDDEN,
    GPT2_NEED_LAST_LAYER_OUTPUT = 1 << KEY_LAST_LAYER_OUTPUT,
};

/* Runs T tokens ids[0..T). Without a KV cache the tokens sit at positions 0..T-1 (a fresh window). With one,
 * they continue the cached sequence at positions n..n+T-1 (n = gpt2_state_cached(state)) and are appended to
 * the cache: a whole window at once (prefill) or one token at a time give the same outputs. need is a mask of
 * GPT2_NEED_*. Threads: OpenMP, as many as omp_get_max_threads(); outputs do not depend on the thread count. */
int gpt2_forward(Gpt2State *state, const int32_t *ids, int T, unsigned need);

/* gpt2_forward when only rows [first, T) of the outputs are wanted (a datastore window's emitted positions):
 * the last block computes its queries, attention, projection, ln_2 and MLP for those rows alone (every row
 * still gets its keys and values, and the KV cache, if any, all T tokens). The rows before `first` of
 * gpt2_state_output are then undefined. Those rows' values equal gpt2_forward's. 0 <= first < T. */
int gpt2_forward_rows(Gpt2State *state, const int32_t *ids, int T, int first, unsigned need);

/* After gpt2_forward: the representation `key` of the call's T tokens, [T, C] row-major, owned by the state and
 * valid until its next forward. NULL if that output was not in `need`. */
const float *gpt2_state_output(const Gpt2State *state, Gpt2KeyType key);

/* Tokens in the KV cache (0 without a cache); gpt2_state_reset empties it. */
int gpt2_state_cached(const Gpt2State *state);
void gpt2_state_reset(Gpt2State *state);

/* The XXH3-128 of the weights file, as 32 hex digits into hex[33]: computed on the first call (a read of the
 * whole file), then remembered. What a datastore records as the weights it was built with. Thread-safe. */
int gpt2_weights_hash(const Gpt2 *model, char hex[33]);

/* logits[n, V] = hidden[n, C] (ln_f outputs) times the lm_head (wte, when tied) transposed, on our own
 * product: the same bits for any thread count. fp32, or with GPT2_BF16 the hidden rows and the lm_head
 * rounded to bf16 and accumulated in fp32 (with the bf16 blocks, the kowiki valid split's perplexity moves by
 * 0.0014% for models/tiny-kogpt2: README). The first call packs the lm_head (V x C, kept until gpt2_free);
 * KN_ENOMEM if that copy cannot be allocated. Safe to call from several threads. */
int gpt2_logits(const Gpt2 *model, const float *hidden, int n, float *logits);

/* The arithmetic of the transformer blocks' matrix products. GPT2_FP32 (the default) is exact to the
 * PyTorch reference. GPT2_BF16 rounds the inputs of the four linear layers (weights and activations) and, in
 * a state without a KV cache, of attention's Q K^T and P V to bfloat16, and accumulates in fp32 (VDPBF16PS
 * where the CPU has AVX512_BF16; elsewhere an fp32 emulation in the same order: the same bits, slower).
 * Embeddings, layer norms, softmax and the residual stream stay fp32; gpt2_logits goes bf16 too. About 1.8x faster for a
 * window; keys move by ~0.1-0.5% (relative L2) and 98.7% of their 8 nearest neighbours stay the same on a
 * real datastore (bench/PERF.md). */
typedef enum { GPT2_FP32, GPT2_BF16 } Gpt2Precision;

/* Switches precision: GPT2_BF16 packs the blocks' weights once (half the fp32 size, on the heap; the mapped
 * fp32 pages they came from are released), GPT2_FP32 frees them. Not while another thread runs a forward of
 * this model; states created before keep working. KN_ENOMEM if the packed copy cannot be allocated. */
int gpt2_set_precision(Gpt2 *model, Gpt2Precision precision);
Gpt2Precision gpt2_precision(const Gpt2 *model);
/* 1 if GPT2_BF16 runs on VDPBF16PS here, 0 if it is emulated. */
int gpt2_bf16_native(void);

/* Where a state's forward calls spend their time, summed over the calls since profiling was switched on.
 * Off by default; when off the forward pass reads no clock. */
typedef struct {
    double matmul;    /* the blocks' four linear layers, their bias/GELU/residual (fused) and bf16 conversions */
    double attention; /* key transposition, scores, softmax, weighted values, KV-cache appends */
    double other;     /* embeddings and layer norms */
    long calls;
} Gpt2Profile;
void gpt2_state_set_profiling(Gpt2State *state, int on); /* on: counters restart from zero */
Gpt2Profile gpt2_state_profile(const Gpt2State *state);

#endif
