/* nfkc.h — NFKC exactly as Hugging Face tokenizers computes it.
 *
 * tokenizers normalises with the unicode-normalization-alignments crate, whose tables are Unicode 9.0;
 * libutf8proc 2.8 has Unicode 15.0. The two differ only on the 245 characters assigned since 9.0 that
 * 15.0 decomposes, reorders or composes (e.g. U+1FBF0 SEGMENTED DIGIT ZERO stays as it is under 9.0
 * but becomes "0" under 15.0); those are passed through unchanged, as 9.0 does (nfkc_post9.h). So is
 * U+11A7, which utf8proc 2.8 drops after a Hangul LV syllable (a bug of its Hangul composition).
 *
 * ASCII, Hangul syllables and CJK unified ideographs are copied without calling utf8proc (they never
 * change and never compose with what precedes them), so Korean text costs little more than a memcpy. */
#ifndef KN_TOKENIZER_NFKC_H
#define KN_TOKENIZER_NFKC_H

#include <stddef.h>

#include "tokenizer/utf8.h"

/* Appends NFKC(s[0..len)) to out. s must be well-formed UTF-8 (utf8_find_invalid() == len).
 * KN_OK, or KN_ENOMEM / KN_EINVAL (utf8proc failed) with a message. */
int nfkc_append(ByteBuf *out, const char *s, size_t len);

/* 1 if cp is one of the characters that Unicode 15.0 NFKC changes and Unicode 9.0 does not know. */
int nfkc_is_post9(uint32_t cp);

#endif
