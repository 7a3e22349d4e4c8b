/* corpus.h — a text corpus as the token stream of SPEC.md: every paragraph's tokens followed by </s>.
 *
 * Two layouts, detected from the first non-empty line unless given:
 *  - lines: one paragraph (or document) per line, UTF-8;
 *  - WikiExtractor output: <doc id=".." url=".." title="..."> ... </doc> blocks, as made from a Wikipedia
 *    dump. Inside a block, the first line when it repeats the title is dropped (WikiExtractor writes the
 *    title as the first line) and every other line is a paragraph.
 * In both, blank lines (only spaces/tabs) are skipped rather than turned into an empty paragraph (a lone
 * </s>), and a trailing "\r" is removed, so CRLF files read like LF files. Invalid UTF-8 is an error naming
 * the file and line unless CORPUS_REPLACE_INVALID_UTF8 turns it into U+FFFD (then <unk>). Always refused: a
 * NUL byte (a binary file), and in WikiExtractor layout a <doc> that is not closed by </doc> (before the next
 * <doc>, or before the end of the file).
 *
 * Tokenization runs in parallel over blocks of lines (OpenMP), in bounded memory, and the stream comes out
 * in order, so a corpus of any size can be streamed into a file. */
#ifndef KN_CORPUS_H
#define KN_CORPUS_H

#include "tokenizer/tokenizer.h"
#include "util/hash.h"
#include "util/monitor.h"

#include <stdint.h>

typedef enum { CORPUS_AUTO, CORPUS_LINES, CORPUS_WIKIEXTRACTOR } CorpusFormat;

enum { CORPUS_REPLACE_INVALID_UTF8 = 1 };

typedef struct {
    CorpusFormat format;
    int32_t eos_id;        /* appended after each paragraph (KoGPT2: 1, "</s>") */
    int64_t max_tokens;    /* stop once the stream has this many tokens (0: no limit) */
    unsigned flags;        /* CORPUS_REPLACE_INVALID_UTF8 */
} CorpusOptions;

/* Receives the stream in order, chunk by chunk; a non-zero return stops the reading and is returned. */
typedef int (*TokenSink)(void *ctx, const int32_t *ids, size_t n);

/* Tokenizes path into sink. monitor->progress gets (bytes read, tokens so far). */
int corpus_tokenize(const Tokenizer *tk, const char *path, const CorpusOptions *opt, TokenSink sink, void *sink_ctx,
                    const KnMonitor *monitor);

/* The same into one malloc'd array (for held-out text, which is small): *ids has *n tokens. */
int corpus_tokenize_all(const Tokenizer *tk, const char *path, const CorpusOptions *opt, int32_t **ids, int64_t *n,
                        const KnMonitor *monitor);

/* The end-of-paragraph token: config.json's eos_token_id when it has one (KoGPT2: 1), else the tokenizer's
 * "</s>"; -1 when neither exists. */
int32_t corpus_eos_id(int32_t config_eos, const Tokenizer *tk);

/* "auto" | "lines" | "wikiextractor". */
int corpus_format_parse(const char *name, CorpusFormat *fmt);

/* Splits a corpus by whole documents (lines, or WikiExtractor <doc> blocks) into train_path and
 * heldout_path: each document goes to train with probability train_fraction, decided by a seeded generator,
 * so the same seed gives the same split. Counts of documents written go to *n_train / *n_heldout. It refuses
 * what corpus_tokenize refuses (flags: CORPUS_REPLACE_INVALID_UTF8 lets invalid UTF-8 through, unchanged), and
 * a corpus with no document. Both files are written under temporary names and renamed into place only when
 * all went well (see FileOut). */
int corpus_split(const char *path, CorpusFormat fmt, unsigned flags, double train_fraction, uint64_t seed, const char *train_path,
                 const char *heldout_path, int64_t *n_train, int64_t *n_heldout);

#endif
