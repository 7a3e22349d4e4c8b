/* manifest.h — the JSON manifest of a datastore (DSTORE/manifest.json) and of a build in progress
 * (DSTORE/build.json): what made the keys (model, weights hash, key type, window, stride, dtype, corpus hash)
 * and what the files hold (entries, dimension, token count, shard range, parts of a merged datastore). */
#ifndef KN_MANIFEST_H
#define KN_MANIFEST_H

#include "util/hash.h"
#include "util/npy.h"

#include <stdint.h>

#define MANIFEST_FORMAT "knnlm-datastore"
#define MANIFEST_VERSION 1
#define MANIFEST_PATH_MAX 1024

/* One part of a datastore merged without copying: a shard folder and the entries it holds. */
typedef struct {
    char path[MANIFEST_PATH_MAX];   /* as written in the manifest: relative to the merged folder, or absolute */
    int64_t entry_begin, entries;
} DstorePart;

typedef struct {
    /* what made it (the "settings": a resumed build must match them exactly) */
    char model[MANIFEST_PATH_MAX];        /* the model folder as given */
    char weights_hash[HASH_HEX_LEN];      /* XXH3-128 of the weights file */
    char key[32];                         /* last_ffn_input | final_hidden | last_layer_output */
    char precision[8];                    /* the forward pass' arithmetic: "fp32" or "bf16" (gpt2.h) */
    int window, stride;
    NpyDtype dtype;                       /* NPY_F16 or NPY_F32 */
    char corpus[MANIFEST_PATH_MAX];
    char corpus_format[16];
    char corpus_hash[HASH_HEX_LEN];
    int64_t max_tokens;                   /* 0: the whole corpus */
    int32_t eos_id;
    int replace_invalid_utf8;
    int shard_index, shard_count;         /* 0 / 1 when not sharded */
    /* what it holds */
    int64_t tokens;                       /* length of the token stream */
    int64_t entry_begin, entries;         /* this datastore's entries: [entry_begin, entry_begin + entries) of the stream */
    int dim, vocab_size, n_layer;
    char tool_version[32];
    char keys_hash[HASH_HEX_LEN];         /* XXH3-128 of keys.npy and vals.npy ("" in a build in progress and */
    char vals_hash[HASH_HEX_LEN];         /* in a merged manifest whose parts carry their own) */
    char tokens_hash[HASH_HEX_LEN];       /* XXH3-128 of tokens.npy ("" where there is none, and in manifests
                                             written before it was recorded) */
    int nparts;                           /* > 0: a merged datastore whose keys live in the parts' folders */
    DstorePart *parts;
} DstoreManifest;

/* Reads and validates path; errors name the file and the field (an unknown key type too: every reader would
 * otherwise have to check it). Free with manifest_free. */
int manifest_read(DstoreManifest *m, const char *path);
/* Writes atomically (path.tmp, fsync, rename). extra may be NULL, else "key": number pairs to add (progress). */
int manifest_write(const DstoreManifest *m, const char *path, const char *extra_key, int64_t extra_value);
void manifest_free(DstoreManifest *m);

/* Compares the settings of a and b (everything that decides the bytes of the keys). KN_OK when equal, else
 * KN_EMISMATCH with a message naming the first setting that differs and both values. what names the other
 * side in the message ("the existing datastore"). */
int manifest_same_settings(const DstoreManifest *existing, const DstoreManifest *wanted, const char *where);

/* Reads an integer field `key` (>= -1) written by manifest_write's extra pair; KN_ENOTFOUND if absent. */
int manifest_read_extra(const char *path, const char *key, int64_t *value);

#endif
