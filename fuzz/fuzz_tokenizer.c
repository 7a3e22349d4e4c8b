/* fuzz_tokenizer.c — the tokenizer.json reader (src/tokenizer/tokenizer.c, bpe.c) on arbitrary files. A
 * tokenizer it accepts then encodes a fixed text (added tokens, Hangul, NFKC forms, spaces, invalid UTF-8)
 * and decodes the ids back: every id must be inside the vocabulary, and every call must succeed. */
#include "fuzz.h"
#include "tokenizer/tokenizer.h"

static const char sample[] = "<s>안녕하세요 world</s>  ﬁ Ａ①  x\t<unk>\xe2\x96\x81\xe2\x96\x81 ab\xff\xc3";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Tokenizer *tk = NULL;
    int rc = tokenizer_load(&tk, fuzz_as_file(data, size));
    fuzz_check_error(rc);
    if (rc != KN_OK) {
        FUZZ_ASSERT(tk == NULL);
        return 0;
    }
    const int32_t n = tokenizer_vocab_size(tk);
    FUZZ_ASSERT(n > 0);
    IdVec ids = {0};
    rc = tokenizer_encode(tk, sample, sizeof sample - 1, TOKENIZER_REPLACE_INVALID_UTF8, &ids);
    fuzz_check_error(rc);
    FUZZ_ASSERT(rc == KN_OK);
    rc = tokenizer_encode(tk, sample, sizeof sample - 1, 0, &ids); /* invalid UTF-8: refused, ids untouched */
    FUZZ_ASSERT(rc == KN_EFORMAT);
    fuzz_check_error(rc);
    for (size_t i = 0; i < ids.len; i++) {
        FUZZ_ASSERT(ids.data[i] >= 0 && ids.data[i] < n);
        const char *s = tokenizer_token(tk, ids.data[i]);
        FUZZ_ASSERT(s != NULL);
        (void)tokenizer_is_special(tk, ids.data[i]);
    }
    for (int skip = 0; skip <= 1; skip++) {
        char *text = NULL;
        rc = tokenizer_decode(tk, ids.data, ids.len, skip, &text);
        fuzz_check_error(rc);
        FUZZ_ASSERT(rc == KN_OK && text != NULL);
        free(text);
    }
    (void)tokenizer_token_to_id(tk, "</s>");
    idvec_free(&ids);
    tokenizer_free(tk);
    return 0;
}
