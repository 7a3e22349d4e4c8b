/* bpe.h — the BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): its vocabulary, its merges
 * and the encoding of one pre-tokenized word, as Hugging Face tokenizers' BPE model does it.
 *
 * A word is split into characters; a character that is not in the vocabulary becomes the unk token
 * on its own (fuse_unk false, no byte fallback). Then, as long as some adjacent pair of symbols is a
 * merge, the pair with the lowest merge rank is merged, the leftmost first among equal ranks.
 *
 * Thread safety: after bpe_from_json() returns, every function here may be called from several threads
 * at once on the same Bpe (each thread with its own BpeScratch). The word cache inside is lock-free:
 * entries are only ever written into empty lines, never replaced. */
#ifndef KN_TOKENIZER_BPE_H
#define KN_TOKENIZER_BPE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

typedef struct Bpe Bpe;

/* Builds the model from tokenizer.json's "model" object. Only what KoGPT2 needs is implemented; any
 * other setting (WordPiece, dropout, byte_fallback, fuse_unk, a subword prefix or suffix, ...) is a
 * KN_EFORMAT error naming `path`, as is a malformed vocab or merge list. */
int bpe_from_json(Bpe **out, const cJSON *model, const char *path);

void bpe_free(Bpe *bpe);

/* Number of tokens in the vocabulary; their ids are 0..size-1. */
int32_t bpe_vocab_size(const Bpe *bpe);

/* The NUL-terminated token string of id (owned by bpe), its length in *len if len is not NULL; NULL if
 * id is out of range. */
const char *bpe_token(const Bpe *bpe, int32_t id, size_t *len);

/* The id of the token s[0..len), or -1. */
int32_t bpe_token_to_id(const Bpe *bpe, const char *s, size_t len);

/* Work memory of bpe_encode_word(), reused across calls by one thread. {0} is ready to use. */
typedef struct {
    struct BpeSymbol *symbols;  /* [cap] */
    uint64_t *heap;             /* [3 * cap] */
    size_t cap;
} BpeScratch;

void bpe_scratch_free(BpeScratch *scratch);

/* Appends the ids of word[0..len) (well-formed UTF-8, len >= 1) to out. KN_OK or KN_ENOMEM. */
int bpe_encode_word(const Bpe *bpe, const char *word, size_t len, IdVec *out, BpeScratch *scratch);

#endif
