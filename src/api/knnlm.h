/* knnlm.h — the public interface of libknnlm: load a Hugging Face GPT-2 folder, tokenize, measure the LM's
 * perplexity, open a datastore and its index, and measure the kNN-LM's perplexity, from any C program.
 *
 * Only the kn_ symbols declared here are global in libknnlm.a (the build makes every other symbol of the
 * library local), so the library links into a program whatever that program names its own functions.
 *
 * Every fallible function returns 0 on success or a negative code (-1 I/O, -2 malformed file, -3 out of
 * memory, -4 bad argument, -5 disk full, -6 inputs that do not belong together, -7 stopped, -8 not found), and
 * kn_errmsg() then gives a one-line message that names the file and the problem. Nothing here prints or exits.
 * Objects are safe to use from one thread at a time; the computations use all cores (OpenMP) and their results
 * do not depend on how many. */
#ifndef KNNLM_H
#define KNNLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KnModel KnModel;   /* a GPT-2 and its tokenizer */
typedef struct KnMemory KnMemory; /* a datastore and its Faiss index: the kNN memory */

/* The last error of the calling thread, "" if none. */
const char *kn_errmsg(void);

/* Opens model_dir: config.json, tokenizer.json and model.safetensors or pytorch_model.bin. */
int kn_model_open(KnModel **out, const char *model_dir);
void kn_model_close(KnModel *model);

/* The token ids of text[0, len) (UTF-8; invalid UTF-8 is an error), in *ids (free with kn_free), *n of them. */
int kn_tokenize(const KnModel *model, const char *text, size_t len, int32_t **ids, size_t *n);

/* The LM's perplexity of ids[0, n) (n >= 2), sliding windows of `window` tokens moved by `stride`. */
int kn_lm_perplexity(const KnModel *model, const int32_t *ids, size_t n, int window, int stride, double *ppl);

/* Opens a datastore folder (knnlm datastore build) and its index (knnlm index build); checks that they belong
 * together and to the model (the weights they were built with, dimensions, key type). */
int kn_memory_open(KnMemory **out, const KnModel *model, const char *dstore_dir, const char *index_path);
void kn_memory_close(KnMemory *memory);

/* The kNN-LM's perplexity of ids[0, n): p = lambda p_kNN + (1 - lambda) p_LM, p_kNN from the k nearest keys
 * with weights exp(-d / temperature) (d: squared L2), windows as the datastore's. *lm_ppl (may be NULL) gets the
 * LM's alone on the same tokens. */
int kn_knnlm_perplexity(const KnModel *model, const KnMemory *memory, const int32_t *ids, size_t n, int k, double lambda,
                        double temperature, double *ppl, double *lm_ppl);

/* Frees what a kn_ function returned. */
void kn_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
