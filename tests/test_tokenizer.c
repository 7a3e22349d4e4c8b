/* test_tokenizer.c — the C tokenizer against Hugging Face tokenizers.
 *
 * The references are tests/data/tokenizer/reference_tokenizations.jsonl (363 rows made with tokenizers
 * 0.23.2, see SOURCE.md there) and, for the cases those rows do not reach (Unicode 9.0 NFKC, ids to
 * decode that encoding never produces, other Metaspace settings, merge order), values that tokenizers
 * 0.23.2 (npm package, Tokenizer.fromFile / fromString) printed, quoted below where they are used.
 * Bad input (invalid UTF-8, malformed tokenizer.json files) must give an error with a useful message. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "test.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"

#define TOKENIZER_JSON "tests/data/tokenizer/tokenizer.json"
#define REFERENCE_JSONL "tests/data/tokenizer/reference_tokenizations.jsonl"

static Tokenizer *kogpt2;

/* ---- the reference rows ---- */

typedef struct {
    char *name;
    char *text;             /* may hold NUL bytes ("ctrl_nul"), hence text_len */
    size_t text_len;
    int32_t *ids;
    size_t n_ids;
    cJSON *row;             /* tokens, decoded, decoded_skip_special */
} RefRow;

static RefRow *rows;
static size_t n_rows;

/* cJSON stops strings at "\u0000", so the text is unescaped here from the raw line. p points after the
 * opening quote; returns a malloc'd buffer of *len bytes. */
static char *json_string_bytes(const char *p, size_t *len) {
    char *out = malloc(strlen(p) + 1);
    size_t n = 0;
    while (*p && *p != '"') {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        p++;
        char c = *p++;
        if (c != 'u') {
            out[n++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
            continue;
        }
        unsigned cp = (unsigned)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
            unsigned lo = (unsigned)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 63));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | cp >> 12);
            out[n++] = (char)(0x80 | (cp >> 6 & 63));
            out[n++] = (char)(0x80 | (cp & 63));
        } else {
            out[n++] = (char)(0xF0 | cp >> 18);
            out[n++] = (char)(0x80 | (cp >> 12 & 63));
            out[n++] = (char)(0x80 | (cp >> 6 & 63));
            out[n++] = (char)(0x80 | (cp & 63));
        }
    }
    *len = n;
    return out;
}

static int load_rows(void) {
    char *data;
    size_t len;
    if (file_read_all(REFERENCE_JSONL, &data, &len)) return -1;
    size_t cap = 512;
    rows = calloc(cap, sizeof *rows);
    for (char *line = data, *next; line < data + len && *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : data + len;
        if (nl) *nl = '\0';
        if (n_rows == cap) rows = realloc(rows, (cap *= 2) * sizeof *rows);
        RefRow *r = &rows[n_rows++];
        r->row = cJSON_Parse(line);
        const char *text = strstr(line, "\"text\":\"");
        if (!r->row || !text) return -1;
        r->name = cJSON_GetObjectItem(r->row, "case")->valuestring;
        r->text = json_string_bytes(text + 8, &r->text_len);
        const cJSON *ids = cJSON_GetObjectItem(r->row, "ids"), *id;
        r->n_ids = (size_t)cJSON_GetArraySize(ids);
        r->ids = malloc((r->n_ids + 1) * sizeof *r->ids);
        size_t k = 0;
        cJSON_ArrayForEach(id, ids) r->ids[k++] = (int32_t)id->valueint;
    }
    free(data);
    return 0;
}

static void free_rows(void) {
    for (size_t i = 0; i < n_rows; i++) {
        free(rows[i].text);
        free(rows[i].ids);
        cJSON_Delete(rows[i].row);
    }
    free(rows);
}

static int same_ids(const IdVec *v, const int32_t *ids, size_t n) {
    return v->len == n && (n == 0 || memcmp(v->data, ids, n * sizeof *ids) == 0);
}

static void test_reference_rows(void) {
    CHECK_EQ_INT(n_rows, 363);
    size_t ok = 0;
    for (size_t i = 0; i < n_rows; i++) {
        RefRow *r = &rows[i];
        IdVec v = {0};
        int rc = tokenizer_encode(kogpt2, r->text, r->text_len, 0, &v);
        int good = rc == KN_OK && same_ids(&v, r->ids, r->n_ids);
        if (good) {
            const cJSON *tokens = cJSON_GetObjectItem(r->row, "tokens"), *t;
            size_t k = 0;
            cJSON_ArrayForEach(t, tokens) good &= tokenizer_token(kogpt2, r->ids[k++]) &&
                                                  strcmp(tokenizer_token(kogpt2, r->ids[k - 1]), t->valuestring) == 0;
        }
        char *decoded = NULL, *decoded_skip = NULL;
        if (tokenizer_decode(kogpt2, r->ids, r->n_ids, 0, &decoded) ||
            tokenizer_decode(kogpt2, r->ids, r->n_ids, 1, &decoded_skip))
            good = 0;
        else
            good &= strcmp(decoded, cJSON_GetObjectItem(r->row, "decoded")->valuestring) == 0 &&
                    strcmp(decoded_skip, cJSON_GetObjectItem(r->row, "decoded_skip_special")->valuestring) == 0;
        if (good) ok++;
        else fprintf(stderr, "  reference row %zu (%s) differs (rc %d: %s)\n", i + 1, r->name, rc, rc ? kn_errmsg() : "");
        free(decoded);
        free(decoded_skip);
        idvec_free(&v);
    }
    fprintf(stderr, "  reference rows: %zu/%zu identical\n", ok, n_rows);
    CHECK_EQ_INT(ok, n_rows);
}

/* ---- KoGPT2's vocabulary ---- */

static void test_model_card_example(void) {
    /* SOURCE.md: the example of SKT's model card. */
    const char *text = "안녕하세요. 한국어 GPT-2 입니다.😤:)l^o";
    static const int32_t want[] = {25906, 8702, 7801, 25856, 34407, 10528, 422, 426, 18258, 9241, 12521, 254, 110, 162};
    IdVec v = {0};
    CHECK_OK(tokenizer_encode(kogpt2, text, strlen(text), 0, &v));
    CHECK(same_ids(&v, want, sizeof want / sizeof want[0]));
    CHECK_STR(tokenizer_token(kogpt2, v.data[0]), "▁안녕");
    CHECK_STR(tokenizer_token(kogpt2, v.data[13]), "l^o");
    char *back = NULL;
    CHECK_OK(tokenizer_decode(kogpt2, v.data, v.len, 0, &back));
    CHECK_STR(back, text);
    free(back);
    idvec_free(&v);
}

static void test_vocab(void) {
    CHECK_EQ_INT(tokenizer_vocab_size(kogpt2), 51200);
    CHECK_STR(tokenizer_token(kogpt2, 0), "<s>");
    CHECK_STR(tokenizer_token(kogpt2, 1), "</s>");
    CHECK_STR(tokenizer_token(kogpt2, 5), "<unk>");
    CHECK_STR(tokenizer_token(kogpt2, 375), "\n");
    CHECK_STR(tokenizer_token(kogpt2, 739), "▁");
    CHECK(tokenizer_token(kogpt2, -1) == NULL);
    CHECK(tokenizer_token(kogpt2, 51200) == NULL);
    CHECK_EQ_INT(tokenizer_token_to_id(kogpt2, "▁안녕"), 25906);
    CHECK_EQ_INT(tokenizer_token_to_id(kogpt2, "<unused99>"), 108);
    CHECK_EQ_INT(tokenizer_token_to_id(kogpt2, "😤"), 254);
    CHECK_EQ_INT(tokenizer_token_to_id(kogpt2, "<unused100>"), -1);
    CHECK_EQ_INT(tokenizer_token_to_id(kogpt2, ""), -1);
    /* Every id round-trips through its string. */
    int round_trips = 0;
    for (int32_t id = 0; id < 51200; id++) round_trips += tokenizer_token_to_id(kogpt2, tokenizer_token(kogpt2, id)) == id;
    CHECK_EQ_INT(round_trips, 51200);
    int specials = 0;
    for (int32_t id = -2; id < 51202; id++) specials += tokenizer_is_special(kogpt2, id);
    CHECK_EQ_INT(specials, 375);
    CHECK(tokenizer_is_special(kogpt2, 374));
    CHECK(!tokenizer_is_special(kogpt2, 375));
}

static void test_round_trip(void) {
    /* Text that is NFKC already, starts with no space and holds no added token decodes to itself. */
    static const char *const texts[] = {
        "대한민국의 수도는 서울특별시이다.",
        "1443년 훈민정음(訓民正音)을 창제하였다.\n둘째 줄  두 칸 띄어쓰기",
        "KoGPT2는 SK텔레콤이 공개한 한국어 GPT-2 모델이다.",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        IdVec v = {0};
        char *back = NULL;
        CHECK_OK(tokenizer_encode(kogpt2, texts[i], strlen(texts[i]), 0, &v));
        CHECK_OK(tokenizer_decode(kogpt2, v.data, v.len, 0, &back));
        CHECK_STR(back, texts[i]);
        free(back);
        idvec_free(&v);
    }
    /* Appending: encode adds after what the vector holds. */
    IdVec v = {0};
    CHECK_OK(tokenizer_encode(kogpt2, "안녕", 6, 0, &v));
    CHECK_OK(tokenizer_encode(kogpt2, "안녕", 6, 0, &v));
    CHECK_EQ_INT(v.len, 2);
    CHECK_EQ_INT(v.data[0], 25906);
    CHECK_EQ_INT(v.data[1], 25906);
    CHECK_OK(tokenizer_encode(kogpt2, "", 0, 0, &v));
    CHECK_EQ_INT(v.len, 2);
    CHECK_OK(tokenizer_encode(kogpt2, NULL, 0, 0, &v));
    CHECK_EQ_INT(v.len, 2);
    CHECK_EQ_INT(tokenizer_encode(kogpt2, "a", 1, 0x100, &v), KN_EINVAL);
    CHECK_EQ_INT(v.len, 2);
    idvec_free(&v);
}

/* Outputs of tokenizers 0.23.2 that the reference rows do not reach. */
static void test_beyond_reference_rows(void) {
    static const struct {
        const char *text;
        int32_t ids[8];
        size_t n;
    } cases[] = {
        /* Characters that Unicode 15.0 NFKC changes but tokenizers' Unicode 9.0 tables do not know:
         * U+1FBF0 SEGMENTED DIGIT ZERO (13.0), U+32FF SQUARE ERA NAME REIWA (12.0), U+A7F2 MODIFIER
         * LETTER CAPITAL C (14.0), and U+11930 after U+11935 (a 13.0 canonical composition). */
        {"\xF0\x9F\xAF\xB0", {739, 5}, 2},
        {"\xE3\x8B\xBF", {739, 5}, 2},
        {"a\xEA\x9F\xB2" "b", {13612, 5, 440}, 3},
        {"\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0", {739, 5, 5}, 3},
        /* ... while Unicode 9.0 characters next to them are still normalised: "①" -> "1", e + U+0301 -> é. */
        {"\xE2\x91\xA0\xF0\x9F\xAF\xB0" "e\xCC\x81", {9020, 5, 498}, 3},
        /* U+11A7 is no trailing consonant: it stays after "서" (utf8proc 2.8 alone would drop it), while
         * U+11A8 after "가" composes into "각"; conjoining L V U+11A7 gives "가" and the U+11A7. */
        {"서\xE1\x86\xA7", {9071, 5}, 2},
        {"가\xE1\x86\xA8", {9188}, 1},
        {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA7", {9028, 5}, 2},
        /* Leftmost-longest among overlapping emoticons: ":-)8<" (136) rather than ":-)" (109). */
        {":-)8<:-)", {136, 109}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IdVec v = {0};
        CHECK_OK(tokenizer_encode(kogpt2, cases[i].text, strlen(cases[i].text), 0, &v));
        CHECK_MSG(same_ids(&v, cases[i].ids, cases[i].n), "case %zu: %zu ids, first %d", i, v.len, v.len ? v.data[0] : -1);
        idvec_free(&v);
    }
    /* Decoding: only the first token loses its '▁' (a skipped special token is not counted as first). */
    static const struct {
        int32_t ids[4];
        size_t n;
        int skip;
        const char *text;
    } decodes[] = {
        {{739, 739, 25906}, 3, 0, "  안녕"},
        {{0, 739, 25906}, 3, 0, "<s>  안녕"},
        {{0, 739, 25906}, 3, 1, " 안녕"},
        {{375, 375}, 2, 0, "\n\n"},
        {{0}, 0, 0, ""},
    };
    for (size_t i = 0; i < sizeof decodes / sizeof decodes[0]; i++) {
        char *text = NULL;
        CHECK_OK(tokenizer_decode(kogpt2, decodes[i].ids, decodes[i].n, decodes[i].skip, &text));
        CHECK_STR(text, decodes[i].text);
        free(text);
    }
}

static void test_decode_out_of_range(void) {
    static const int32_t ids[] = {25906, 51200};
    char *text = (char *)"untouched";
    CHECK_EQ_INT(tokenizer_decode(kogpt2, ids, 2, 0, &text), KN_EINVAL);
    CHECK(text == NULL);
    CHECK(strstr(kn_errmsg(), "ids[1]") && strstr(kn_errmsg(), "51200"));
    static const int32_t negative[] = {-1};
    CHECK_EQ_INT(tokenizer_decode(kogpt2, negative, 1, 1, &text), KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "ids[0]") && strstr(kn_errmsg(), "-1"));
}

/* ---- invalid UTF-8 ---- */

static void test_invalid_utf8(void) {
    /* Each text, the byte offset of its first bad byte, and the text Python's
     * bytes.decode("utf-8", errors="replace") gives (one U+FFFD per maximal invalid subsequence). */
    static const struct {
        const char *what, *text;
        size_t offset;
        const char *replaced;
    } cases[] = {
        {"truncated sequence", "가나\xEB\x8B", 6, "가나\xEF\xBF\xBD"},
        {"truncated then ASCII", "\xE2\x82" "a", 0, "\xEF\xBF\xBD" "a"},
        {"overlong encoding", "a\xC0\xAF" "b", 1, "a\xEF\xBF\xBD\xEF\xBF\xBD" "b"},
        {"overlong 3 bytes", "\xE0\x80\x80", 0, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"surrogate encoding", "한\xED\xA0\x80글", 3, "한\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD글"},
        {"stray continuation byte", "ab\x80" "cd", 2, "ab\xEF\xBF\xBD" "cd"},
        {"0xFF", "\xFF", 0, "\xEF\xBF\xBD"},
        {"above U+10FFFF", "\xF4\x90\x80\x80", 0, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"truncated emoji before an emoji", "\xF0\x9F\x98\xF0\x9F\x98\x80", 0, "\xEF\xBF\xBD\xF0\x9F\x98\x80"},
        {"bad byte after an added token", "</s>\xF5", 4, "</s>\xEF\xBF\xBD"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IdVec v = {0};
        CHECK_OK(tokenizer_encode(kogpt2, "앞", 3, 0, &v)); /* must stay as it is */
        int rc = tokenizer_encode(kogpt2, cases[i].text, strlen(cases[i].text), 0, &v);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", cases[i].offset);
        CHECK_MSG(rc == KN_EFORMAT && strstr(kn_errmsg(), want), "%s: rc %d, \"%s\"", cases[i].what, rc, kn_errmsg());
        CHECK_EQ_INT(v.len, 1);

        IdVec replaced = {0}, expected = {0};
        CHECK_OK(tokenizer_encode(kogpt2, cases[i].text, strlen(cases[i].text), TOKENIZER_REPLACE_INVALID_UTF8, &replaced));
        CHECK_OK(tokenizer_encode(kogpt2, cases[i].replaced, strlen(cases[i].replaced), 0, &expected));
        CHECK_MSG(replaced.len == expected.len && memcmp(replaced.data, expected.data, expected.len * 4) == 0, "%s",
                  cases[i].what);
        /* U+FFFD is not in the vocab: <unk>. */
        int unks = 0;
        for (size_t k = 0; k < replaced.len; k++) unks += replaced.data[k] == 5;
        CHECK_MSG(unks > 0, "%s", cases[i].what);
        idvec_free(&v);
        idvec_free(&replaced);
        idvec_free(&expected);
    }
}

/* ---- a small tokenizer.json, and broken ones ---- */

/* Vocab and merges small enough to follow by hand. Merge ranks: a+▁ 0, b+c 1, a+b 2, ▁+a 3, a+bc 4, a+a 5. */
#define MINI_VOCAB "{\"<unk>\":0,\"▁\":1,\"a\":2,\"b\":3,\"c\":4,\"ab\":5,\"bc\":6,\"▁a\":7,\"abc\":8,\"aa\":9,\"a▁\":10}"
#define MINI_MERGES "[\"a ▁\",\"b c\",\"a b\",\"▁ a\",\"a bc\",\"a a\"]"
#define MINI_MODEL_WITH(type, vocab, merges)                                                                 \
    "{\"type\":\"" type "\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"      \
    "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":" vocab ",\"merges\":" merges "}"
#define MINI_MODEL MINI_MODEL_WITH("BPE", MINI_VOCAB, MINI_MERGES)
#define ADDED(id, content, special, extra)                                                                    \
    "{\"id\":" #id ",\"content\":\"" content "\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"   \
    "\"normalized\":false,\"special\":" special extra "}"
/* <x> is outside the vocab (which ends at 10): tokenizers gives it the next id, 11. */
#define MINI_ADDED "[" ADDED(0, "<unk>", "true", "") "," ADDED(11, "<x>", "false", "") "]"
#define METASPACE(options) "{\"type\":\"Metaspace\",\"replacement\":\"▁\"" options "}"
#define MINI_PRE METASPACE(",\"add_prefix_space\":true")

typedef struct {
    const char *added, *normalizer, *pre, *decoder, *model;     /* NULL: the MINI_ default */
    const char *truncation;                                     /* NULL: null */
} MiniParts;

static char temp_dir[64];

/* Writes a tokenizer.json made of parts into the temp folder; returns its path (static buffer). */
static const char *write_mini(const char *name, MiniParts p) {
    static char path[160];
    static char json[4096];
    snprintf(json, sizeof json,
             "{\"version\":\"1.0\",\"truncation\":%s,\"padding\":null,\"added_tokens\":%s,\"normalizer\":%s,"
             "\"pre_tokenizer\":%s,\"post_processor\":null,\"decoder\":%s,\"model\":%s}",
             p.truncation ? p.truncation : "null", p.added ? p.added : MINI_ADDED, p.normalizer ? p.normalizer : "{\"type\":\"NFKC\"}",
             p.pre ? p.pre : MINI_PRE, p.decoder ? p.decoder : MINI_PRE, p.model ? p.model : MINI_MODEL);
    snprintf(path, sizeof path, "%s/%s.json", temp_dir, name);
    if (file_write_atomic(path, json, strlen(json))) fprintf(stderr, "cannot write %s: %s\n", path, kn_errmsg());
    return path;
}

static const char *write_raw(const char *name, const char *data, size_t len) {
    static char path[160];
    snprintf(path, sizeof path, "%s/%s.json", temp_dir, name);
    if (file_write_atomic(path, data, len)) fprintf(stderr, "cannot write %s: %s\n", path, kn_errmsg());
    return path;
}

static void check_encodes(const Tokenizer *tk, const char *what, const char *text, const int32_t *want, size_t n) {
    IdVec v = {0};
    int rc = tokenizer_encode(tk, text, strlen(text), 0, &v);
    CHECK_MSG(rc == KN_OK && same_ids(&v, want, n), "%s: \"%s\" gives %zu ids (%d %d %d ...)", what, text, v.len,
              v.len > 0 ? v.data[0] : -1, v.len > 1 ? v.data[1] : -1, v.len > 2 ? v.data[2] : -1);
    idvec_free(&v);
}

static void check_decodes(const Tokenizer *tk, const char *what, const int32_t *ids, size_t n, int skip, const char *want) {
    char *text = NULL;
    int rc = tokenizer_decode(tk, ids, n, skip, &text);
    CHECK_MSG(rc == KN_OK && strcmp(text, want) == 0, "%s: decode gives \"%s\", want \"%s\"", what, text ? text : "",
              want);
    free(text);
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

/* Each expected value below was also printed by tokenizers 0.23.2 for the same tokenizer.json. */
static void test_mini_bpe(void) {
    Tokenizer *tk;
    CHECK_OK(tokenizer_load(&tk, write_mini("mini", (MiniParts){0})));
    CHECK_EQ_INT(tokenizer_vocab_size(tk), 12);
    CHECK_STR(tokenizer_token(tk, 11), "<x>");
    CHECK_EQ_INT(tokenizer_token_to_id(tk, "<x>"), 11);
    CHECK(tokenizer_is_special(tk, 0) && !tokenizer_is_special(tk, 11));
    /* "▁abc": b+c (rank 1) first, so a+b (rank 2) is gone; then ▁+a (3); a+bc (4) no longer applies. */
    check_encodes(tk, "rank order", "abc", IDS(7, 6));
    /* "▁baaa": two a+a candidates of equal rank; the leftmost wins. */
    check_encodes(tk, "leftmost first", "baaa", IDS(1, 3, 9, 2));
    check_encodes(tk, "unknown character", "xa", IDS(1, 0, 2));
    check_encodes(tk, "added token outside the vocab", "a<x>a", IDS(7, 11, 7));
    check_encodes(tk, "split at every ▁", "a a", IDS(7, 7));
    check_encodes(tk, "leading space", " a", IDS(7));
    check_decodes(tk, "skip_special keeps non-special", IDS(7, 11, 2), 1, "a<x>a");
    check_decodes(tk, "skip_special drops special", IDS(7, 0, 2), 1, "aa");
    /* The first token loses every ▁ it has, not only a leading one. */
    check_decodes(tk, "first token", IDS(10, 10), 0, "aa ");
    tokenizer_free(tk);

    /* Merges as ["left", "right"] pairs, and with a "#version" line, rank the same. */
    static const char *const variants[] = {
        "[[\"a\",\"▁\"],[\"b\",\"c\"],[\"a\",\"b\"],[\"▁\",\"a\"],[\"a\",\"bc\"],[\"a\",\"a\"]]",
        "[\"#version: 0.2\",\"a ▁\",\"b c\",\"a b\",\"▁ a\",\"a bc\",\"a a\"]",
    };
    char model[1024];
    for (size_t i = 0; i < 2; i++) {
        snprintf(model, sizeof model, MINI_MODEL_WITH("BPE", MINI_VOCAB, "%s"), variants[i]);
        CHECK_OK(tokenizer_load(&tk, write_mini("merges", (MiniParts){.model = model})));
        check_encodes(tk, variants[i], "abc", IDS(7, 6));
        check_encodes(tk, variants[i], "baaa", IDS(1, 3, 9, 2));
        tokenizer_free(tk);
    }
    /* A pair listed twice keeps its later rank: b+c now comes after a+b. */
    snprintf(model, sizeof model, MINI_MODEL_WITH("BPE", MINI_VOCAB, "%s"),
             "[\"a ▁\",\"b c\",\"a b\",\"▁ a\",\"a bc\",\"a a\",\"b c\"]");
    CHECK_OK(tokenizer_load(&tk, write_mini("dup_merge", (MiniParts){.model = model})));
    check_encodes(tk, "repeated merge", "abc", IDS(1, 5, 4));
    tokenizer_free(tk);
}

static void test_mini_metaspace(void) {
    Tokenizer *tk;
    /* prepend_scheme "first": only a piece at the start of the text gets its ▁. */
    const char *first = METASPACE(",\"prepend_scheme\":\"first\",\"split\":true");
    CHECK_OK(tokenizer_load(&tk, write_mini("first", (MiniParts){.pre = first, .decoder = first})));
    check_encodes(tk, "first", "a<x>a", IDS(7, 11, 2));
    check_encodes(tk, "first", "abc", IDS(7, 6));
    tokenizer_free(tk);
    /* "never": no ▁ is prepended, and the decoder keeps the first token's ▁ as a space. */
    const char *never = METASPACE(",\"prepend_scheme\":\"never\"");
    CHECK_OK(tokenizer_load(&tk, write_mini("never", (MiniParts){.pre = never, .decoder = never})));
    check_encodes(tk, "never", "abc", IDS(8));
    check_encodes(tk, "never", "a<x>a", IDS(2, 11, 2));
    check_encodes(tk, "never", "a a", IDS(2, 7));
    check_decodes(tk, "never", IDS(1, 7), 0, "  a");
    tokenizer_free(tk);
    /* split false: the piece is one word, so a+▁ (rank 0) can merge across the space. */
    const char *whole = METASPACE(",\"prepend_scheme\":\"always\",\"split\":false");
    CHECK_OK(tokenizer_load(&tk, write_mini("nosplit", (MiniParts){.pre = whole, .decoder = whole})));
    check_encodes(tk, "no split", "a a", IDS(1, 10, 2));
    check_encodes(tk, "no split", "ab a", IDS(1, 5, 7));
    tokenizer_free(tk);
    /* A Sequence of no-op BertNormalizers around NFKC, and a Sequence holding the Metaspace. */
    CHECK_OK(tokenizer_load(&tk, write_mini("sequences", (MiniParts){
        .normalizer = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"BertNormalizer\","
                      "\"clean_text\":false,\"handle_chinese_chars\":false,\"strip_accents\":null,\"lowercase\":false}]}",
        .pre = "{\"type\":\"Sequence\",\"pretokenizers\":[" MINI_PRE "]}"})));
    check_encodes(tk, "sequences", "\xEF\xBD\x81" "bc", IDS(7, 6)); /* full-width ａ is NFKC "a" */
    tokenizer_free(tk);
}

typedef struct {
    const char *name;
    MiniParts parts;
    const char *raw;        /* the whole file instead of parts, when not NULL */
    size_t raw_len;         /* 0: strlen(raw) */
    const char *message;    /* what the error message must say */
} BadFile;

static void test_malformed_files(void) {
    char valid[4096];
    snprintf(valid, sizeof valid, "%s", write_mini("valid", (MiniParts){0}));
    char *valid_json;
    size_t valid_len;
    CHECK_OK(file_read_all(valid, &valid_json, &valid_len));
    static char with_nul[4200];
    memcpy(with_nul, valid_json, valid_len);
    memcpy(with_nul + valid_len, "\0{}", 3);
    const char *vocab_dup = "{\"<unk>\":0,\"▁\":1,\"a\":1}";
    const char *vocab_gap = "{\"<unk>\":0,\"▁\":1,\"a\":5}";
    const char *vocab_frac = "{\"<unk>\":0,\"▁\":1,\"a\":1.5}";
    const char *vocab_bad_utf8 = "{\"<unk>\":0,\"\xFF\":1}";
    const BadFile cases[] = {
        {"not_json", {0}, "this is not JSON", 0, "not valid JSON"},
        {"truncated_json", {0}, valid_json, valid_len / 2, "not valid JSON"},
        {"empty", {0}, "", 0, "not valid JSON"},
        {"trailing_garbage", {0}, "{\"model\":{}} }", 0, "not valid JSON"},
        {"nul_byte", {0}, with_nul, valid_len + 3, "not valid JSON"},
        {"not_an_object", {0}, "[1, 2, 3]", 0, "not a JSON object"},
        {"missing_model", {0}, "{\"version\":\"1.0\",\"added_tokens\":[]}", 0, "no \"model\""},
        {"vocab_not_object", {.model = MINI_MODEL_WITH("BPE", "[\"a\",\"b\"]", MINI_MERGES)}, NULL, 0,
         "model.vocab is missing or not an object"},
        {"merge_unknown_token", {.model = MINI_MODEL_WITH("BPE", MINI_VOCAB, "[\"a z\"]")}, NULL, 0,
         "model.merges[0] names the token \"z\", which is not in the vocab"},
        {"merge_without_space", {.model = MINI_MODEL_WITH("BPE", MINI_VOCAB, "[\"a b\",\"ab\"]")}, NULL, 0,
         "model.merges[1] \"ab\" is not two tokens separated by one space"},
        {"merge_two_spaces", {.model = MINI_MODEL_WITH("BPE", MINI_VOCAB, "[\"a b c\"]")}, NULL, 0,
         "is not two tokens separated by one space"},
        {"merge_result_unknown", {.model = MINI_MODEL_WITH("BPE", MINI_VOCAB, "[\"c a\"]")}, NULL, 0,
         "model.merges[0] makes \"ca\", which is not in the vocab"},
        {"merges_not_array", {.model = MINI_MODEL_WITH("BPE", MINI_VOCAB, "\"a b\"")}, NULL, 0,
         "model.merges is missing or not an array"},
        {"duplicate_ids", {.added = "[]", .model = NULL}, NULL, 0, "gives id 1 to both \"▁\" and \"a\""},
        {"id_out_of_range", {.added = "[]"}, NULL, 0, "model.vocab[\"a\"] is not an id in [0, 3)"},
        {"fractional_id", {.added = "[]"}, NULL, 0, "model.vocab[\"a\"] is not an id in [0, 3)"},
        {"token_not_utf8", {.added = "[]"}, NULL, 0, "model.vocab token of id 1 is not valid UTF-8"},
        {"added_id_disagrees", {.added = "[" ADDED(3, "<unk>", "true", "") "]"}, NULL, 0,
         "added_tokens[0] \"<unk>\" has id 3 but the vocab gives it id 0"},
        {"added_id_not_next", {.added = "[" ADDED(20, "<x>", "true", "") "]"}, NULL, 0,
         "added_tokens[0] \"<x>\" is not in the vocab and has id 20, not the next free id 11"},
        {"added_twice", {.added = "[" ADDED(0, "<unk>", "true", "") "," ADDED(0, "<unk>", "true", "") "]"}, NULL, 0,
         "added_tokens[1] \"<unk>\" is listed twice"},
        {"added_lstrip", {.added = "[{\"id\":0,\"content\":\"<unk>\",\"lstrip\":true,\"special\":true}]"}, NULL, 0,
         "added_tokens[0] with lstrip = true is not supported"},
        {"added_normalized", {.added = "[{\"id\":0,\"content\":\"<unk>\",\"normalized\":true}]"}, NULL, 0,
         "added_tokens[0] with normalized = true is not supported"},
        {"added_no_content", {.added = "[{\"id\":0,\"content\":\"\"}]"}, NULL, 0, "added_tokens[0] has no content"},
        {"model_wordpiece", {.model = MINI_MODEL_WITH("WordPiece", MINI_VOCAB, MINI_MERGES)}, NULL, 0,
         "model type WordPiece is not supported (only BPE)"},
        {"model_without_type", {.model = "{\"vocab\":" MINI_VOCAB ",\"merges\":[]}"}, NULL, 0, "model has no \"type\""},
        {"byte_fallback", {.model = "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"vocab\":" MINI_VOCAB
                                    ",\"merges\":[]}"}, NULL, 0, "model.byte_fallback is set, which is not supported"},
        {"dropout", {.model = "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"dropout\":0.1,\"vocab\":" MINI_VOCAB
                              ",\"merges\":[]}"}, NULL, 0, "model.dropout is set, which is not supported"},
        {"unk_not_in_vocab", {.added = "[]", .model = "{\"type\":\"BPE\",\"unk_token\":\"<oov>\",\"vocab\":" MINI_VOCAB
                                                      ",\"merges\":[]}"}, NULL, 0,
         "model.unk_token \"<oov>\" is not in the vocab"},
        {"unk_null", {.model = "{\"type\":\"BPE\",\"unk_token\":null,\"vocab\":" MINI_VOCAB ",\"merges\":[]}"}, NULL, 0,
         "model.unk_token is missing"},
        {"pre_tokenizer_bytelevel", {.pre = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}"}, NULL, 0,
         "pre_tokenizer type ByteLevel is not supported (only Metaspace)"},
        {"pre_tokenizer_two", {.pre = "{\"type\":\"Sequence\",\"pretokenizers\":[" MINI_PRE "," MINI_PRE "]}"}, NULL, 0,
         "pre_tokenizer Sequence must hold exactly one Metaspace"},
        {"pre_tokenizer_null", {.pre = "null"}, NULL, 0, "pre_tokenizer is null; only Metaspace is supported"},
        {"replacement_two_chars", {.pre = "{\"type\":\"Metaspace\",\"replacement\":\"__\"}"}, NULL, 0,
         "pre_tokenizer Metaspace replacement is not one character"},
        {"prefix_contradiction", {.pre = METASPACE(",\"add_prefix_space\":false,\"prepend_scheme\":\"always\"")}, NULL, 0,
         "add_prefix_space false contradicts its prepend_scheme"},
        {"normalizer_lowercase", {.normalizer = "{\"type\":\"Lowercase\"}"}, NULL, 0,
         "normalizer type Lowercase is not supported (only NFKC)"},
        {"bert_lowercase", {.normalizer = "{\"type\":\"BertNormalizer\",\"clean_text\":false,\"handle_chinese_chars\":"
                                          "false,\"strip_accents\":null,\"lowercase\":true}"}, NULL, 0,
         "normalizer BertNormalizer with lowercase not false is not supported"},
        {"decoder_bytelevel", {.decoder = "{\"type\":\"ByteLevel\"}"}, NULL, 0,
         "decoder type ByteLevel is not supported (only Metaspace)"},
        {"truncation", {.truncation = "{\"max_length\":512}"}, NULL, 0, "truncation is set"},
        {"escaped_nul", {.added = "[]", .model = MINI_MODEL_WITH("BPE", "{\"<unk>\":0,\"\\u0000\":1}", "[]")}, NULL, 0,
         "a string holds \\u0000"},
    };
    /* The vocab cases need their own models. */
    char models[4][512];
    const char *vocabs[4] = {vocab_dup, vocab_gap, vocab_frac, vocab_bad_utf8};
    for (int i = 0; i < 4; i++) snprintf(models[i], sizeof models[i], MINI_MODEL_WITH("BPE", "%s", "[]"), vocabs[i]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        BadFile c = cases[i];
        if (strcmp(c.name, "duplicate_ids") == 0) c.parts.model = models[0];
        if (strcmp(c.name, "id_out_of_range") == 0) c.parts.model = models[1];
        if (strcmp(c.name, "fractional_id") == 0) c.parts.model = models[2];
        if (strcmp(c.name, "token_not_utf8") == 0) c.parts.model = models[3];
        char path[160];
        snprintf(path, sizeof path, "%s",
                 c.raw ? write_raw(c.name, c.raw, c.raw_len ? c.raw_len : strlen(c.raw)) : write_mini(c.name, c.parts));
        Tokenizer *tk = (Tokenizer *)&tk;
        int rc = tokenizer_load(&tk, path);
        const char *msg = kn_errmsg();
        if (getenv("SHOW_MESSAGES")) fprintf(stderr, "    %s\n", msg); /* to read them all */
        CHECK_MSG(rc == KN_EFORMAT && tk == NULL, "%s: rc %d", c.name, rc);
        CHECK_MSG(strncmp(msg, path, strlen(path)) == 0 && strstr(msg, c.message) && !strchr(msg, '\n'),
                  "%s: message \"%s\" should name the file and say \"%s\"", c.name, msg, c.message);
        if (rc == KN_OK) tokenizer_free(tk);
        unlink(path);
    }
    Tokenizer *tk;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no_such_file.json", temp_dir);
    CHECK_EQ_INT(tokenizer_load(&tk, missing), KN_ENOTFOUND);
    CHECK(strstr(kn_errmsg(), missing) != NULL);
    free(valid_json);
    unlink(valid);
}

/* ---- many threads on one tokenizer ---- */

typedef struct {
    const Tokenizer *tk;
    size_t first;
    size_t mismatches;
} ThreadJob;

static void *encode_rows(void *arg) {
    ThreadJob *job = arg;
    for (size_t k = 0; k < n_rows; k++) {
        const RefRow *r = &rows[(job->first + k) % n_rows];
        IdVec v = {0};
        if (tokenizer_encode(job->tk, r->text, r->text_len, 0, &v) || !same_ids(&v, r->ids, r->n_ids))
            job->mismatches++;
        idvec_free(&v);
    }
    return NULL;
}

/* A fresh tokenizer, so that the threads also race to fill its word cache. */
static void test_threads(void) {
    enum { THREADS = 4 };
    Tokenizer *tk;
    CHECK_OK(tokenizer_load(&tk, TOKENIZER_JSON));
    pthread_t threads[THREADS];
    ThreadJob jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (ThreadJob){tk, (size_t)t * n_rows / THREADS, 0};
        CHECK(pthread_create(&threads[t], NULL, encode_rows, &jobs[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK_EQ_INT(jobs[t].mismatches, 0);
    }
    tokenizer_free(tk);
}

int main(void) {
    if (tokenizer_load(&kogpt2, TOKENIZER_JSON)) {
        fprintf(stderr, "cannot load %s: %s\n", TOKENIZER_JSON, kn_errmsg());
        return 1;
    }
    if (load_rows()) {
        fprintf(stderr, "cannot read %s\n", REFERENCE_JSONL);
        return 1;
    }
    RUN(test_reference_rows);
    RUN(test_model_card_example);
    RUN(test_vocab);
    RUN(test_round_trip);
    RUN(test_beyond_reference_rows);
    RUN(test_decode_out_of_range);
    RUN(test_invalid_utf8);
    RUN(test_threads);
    snprintf(temp_dir, sizeof temp_dir, "/tmp/test_tokenizer.XXXXXX");
    if (!mkdtemp(temp_dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_mini_bpe);
    RUN(test_mini_metaspace);
    RUN(test_malformed_files);
    const char *left[] = {"mini", "merges", "dup_merge", "first", "never", "nosplit", "sequences"};
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s.json", temp_dir, left[i]);
        unlink(path);
    }
    if (rmdir(temp_dir)) fprintf(stderr, "rmdir %s: %s\n", temp_dir, strerror(errno));
    free_rows();
    tokenizer_free(kogpt2);
    return TEST_EXIT();
}
