/* fuzz_corpus.c — the corpus reader (src/dstore/corpus.c: plain lines and WikiExtractor <doc> blocks) on
 * arbitrary files, with a small tokenizer. The first input byte picks the options (format, invalid UTF-8
 * replaced or refused, a token limit); the rest is the corpus. The stream must hold only vocabulary ids and
 * end-of-paragraph ids, and never more tokens than the limit. */
#include "fuzz.h"
#include "dstore/corpus.h"

/* A tiny KoGPT2-like tokenizer.json: NFKC, Metaspace, BPE with a few merges, three added tokens. */
static const char tokenizer_json[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":["
    "{\"id\":0,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
    "{\"id\":1,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
    "{\"id\":2,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],"
    "\"normalizer\":{\"type\":\"NFKC\"},"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"add_prefix_space\":true},"
    "\"post_processor\":null,"
    "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"add_prefix_space\":true},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
    "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,"
    "\"vocab\":{\"<s>\":0,\"</s>\":1,\"<unk>\":2,\"\\u2581\":3,\"a\":4,\"b\":5,\"c\":6,\"d\":7,\"o\":8,\"<\":9,\">\":10,"
    "\"\\uc548\":11,\"\\ub155\":12,\"\\u2581a\":13,\"ab\":14,\"\\u2581\\uc548\":15,\"\\uc548\\ub155\":16,\"do\":17,\"doc\":18},"
    "\"merges\":[\"\\u2581 a\",\"a b\",\"\\u2581 \\uc548\",\"\\uc548 \\ub155\",\"d o\",\"do c\"]}}";

#define EOS_ID 1

static Tokenizer *tk;
static int32_t vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    static int fd = -1;
    static char path[64];
    int rc = tokenizer_load(&tk, fuzz_memfd(&fd, path, (const uint8_t *)tokenizer_json, sizeof tokenizer_json - 1));
    if (rc != KN_OK) {
        fprintf(stderr, "fuzz_corpus: %s\n", kn_errmsg());
        abort();
    }
    vocab = tokenizer_vocab_size(tk);
    return 0;
}

typedef struct {
    int64_t tokens;
} Sink;

static int sink(void *ctx, const int32_t *ids, size_t n) {
    Sink *s = ctx;
    for (size_t i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab);
    s->tokens += (int64_t)n;
    return KN_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const CorpusFormat formats[] = {CORPUS_AUTO, CORPUS_LINES, CORPUS_WIKIEXTRACTOR, CORPUS_AUTO};
    CorpusOptions opt = {formats[data[0] & 3], EOS_ID, (data[0] >> 3) & 7 ? (data[0] >> 3) & 31 : 0,
                         data[0] & 4 ? CORPUS_REPLACE_INVALID_UTF8 : 0};
    Sink s = {0};
    int rc = corpus_tokenize(tk, fuzz_as_file(data + 1, size - 1), &opt, sink, &s, NULL);
    fuzz_check_error(rc);
    if (rc == KN_OK && opt.max_tokens > 0) FUZZ_ASSERT(s.tokens <= opt.max_tokens);
    /* with the flag, invalid UTF-8 is read as text; what is still refused is a format error (NUL bytes: binary
     * input; a <doc> left open or opened inside another), never anything else */
    if (opt.flags & CORPUS_REPLACE_INVALID_UTF8) FUZZ_ASSERT(rc == KN_OK || rc == KN_EFORMAT);
    return 0;
}
