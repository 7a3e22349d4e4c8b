/* tokenizer.h — the KoGPT2 tokenizer: a Hugging Face tokenizer.json read in C, giving exactly the ids
 * that Hugging Face tokenizers gives (encode(text, add_special_tokens=False)) and the same decoded text.
 *
 * The pipeline (tests/data/tokenizer/SOURCE.md lists every behaviour):
 *   1. added tokens (<s>, </s>, <unk>, emoticons, emoji, ...) are matched on the raw text, leftmost-longest;
 *   2. each piece between them is NFKC-normalised (with Unicode 9.0 tables, as tokenizers does);
 *   3. Metaspace: every U+0020 becomes the replacement '▁' (U+2581), a '▁' is prepended to the piece
 *      unless it starts with one, and the piece is cut before every '▁' into words;
 *   4. BPE on each word; a character missing from the vocabulary becomes <unk>.
 *
 * Supported tokenizer.json: model BPE; normalizer NFKC (alone or in a Sequence, with no-op
 * BertNormalizers) or null; pre_tokenizer Metaspace (alone or the only one of a Sequence); decoder
 * Metaspace; added tokens with lstrip/rstrip/single_word false and normalized false. Anything else is
 * refused at load time with a message that says what is not supported, never tokenized approximately.
 *
 * Thread safety: a loaded Tokenizer is read-only except for an internal lock-free word cache, so
 * tokenizer_encode() and everything else here may be called from any number of threads at once. */
#ifndef KN_TOKENIZER_H
#define KN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* A growable array of token ids, owned by the caller. {0} is an empty vector; idvec_free() releases it. */
typedef struct {
    int32_t *data;
    size_t len, cap;
} IdVec;

/* Makes room for `more` ids after len. KN_OK or KN_ENOMEM. */
int idvec_reserve(IdVec *v, size_t more);
void idvec_free(IdVec *v);

typedef struct Tokenizer Tokenizer;

/* Reads and validates a tokenizer.json. On success *out is a tokenizer to release with
 * tokenizer_free(). Errors name the file: KN_ENOTFOUND/KN_EIO if it cannot be read, KN_EFORMAT if it is
 * not valid JSON, is inconsistent (a merge naming a token not in the vocab, duplicate ids, an added
 * token whose id disagrees with the vocab, ...) or asks for something not supported. */
int tokenizer_load(Tokenizer **out, const char *tokenizer_json_path);

void tokenizer_free(Tokenizer *tk);

/* Flags of tokenizer_encode(). */
enum {
    /* Replace each maximal invalid UTF-8 subsequence by U+FFFD first (as Python's
     * bytes.decode("utf-8", errors="replace") does); without it, invalid UTF-8 is an error. */
    TOKENIZER_REPLACE_INVALID_UTF8 = 1u << 0,
};

/* Appends the ids of text[0..len) to ids (no BOS/EOS is added). text need not be NUL-terminated and
 * may contain NUL bytes. Without TOKENIZER_REPLACE_INVALID_UTF8, invalid UTF-8 is KN_EFORMAT with the
 * message "text: invalid UTF-8 at byte offset N"; the caller adds the file name and line with
 * kn_error_wrap(). On any error ids->len is left as it was. Errors: KN_EFORMAT, KN_ENOMEM. */
int tokenizer_encode(const Tokenizer *tk, const char *text, size_t len, unsigned flags, IdVec *ids);

/* The text of ids[0..n) as tokenizers' decode(ids, skip_special_tokens) gives it: the Metaspace decoder
 * turns every '▁' into a space, except that the first token loses its '▁'s. skip_special != 0 drops
 * every added token marked special (all 375 of KoGPT2's). *out_text is a malloc'd NUL-terminated string
 * the caller frees. An id outside [0, vocab size) is KN_EINVAL naming its index. */
int tokenizer_decode(const Tokenizer *tk, const int32_t *ids, size_t n, int skip_special, char **out_text);

/* The vocabulary string of id, e.g. "▁안녕" (owned by tk); NULL if id is out of range. */
const char *tokenizer_token(const Tokenizer *tk, int32_t id);

/* The id of the exact token string (an added token or a vocabulary entry), or -1 if there is none. */
int32_t tokenizer_token_to_id(const Tokenizer *tk, const char *token);

/* Number of ids: the model's vocabulary plus any added token outside it (51200 for KoGPT2). */
int tokenizer_vocab_size(const Tokenizer *tk);

/* 1 if id is an added token marked special, 0 otherwise (also for ids out of range). */
int tokenizer_is_special(const Tokenizer *tk, int32_t id);

#endif
