/* test_corpus.c — the corpus as a token stream: paragraphs + </s>, WikiExtractor blocks, blank lines, CRLF,
 * --max-tokens, invalid UTF-8, long lines; and the document split. */
#include "dstore/corpus.h"
#include "util/error.h"
#include "util/file.h"
#include "test.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static Tokenizer *tk;
static char dir[64];

static const char *write_tmp(const char *name, const char *text, size_t len) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (file_write_atomic(path, text, len) != KN_OK) fprintf(stderr, "cannot write %s\n", path);
    return path;
}

/* The expected stream: the tokens of each paragraph followed by 1 (</s>). */
static void expect_stream(const char **paragraphs, int n, IdVec *out) {
    out->len = 0;
    for (int i = 0; i < n; i++) {
        tokenizer_encode(tk, paragraphs[i], strlen(paragraphs[i]), 0, out);
        idvec_reserve(out, 1);
        out->data[out->len++] = 1;
    }
}

static void check_stream(const char *path, CorpusFormat fmt, const char **paragraphs, int n) {
    CorpusOptions o = {fmt, 1, 0, 0};
    int32_t *ids = NULL;
    int64_t got = 0;
    IdVec want = {0};
    expect_stream(paragraphs, n, &want);
    int rc = corpus_tokenize_all(tk, path, &o, &ids, &got, NULL);
    CHECK_MSG(rc == KN_OK, "%s", kn_errmsg());
    CHECK_EQ_INT(got, (int64_t)want.len);
    CHECK(rc != KN_OK || (got == (int64_t)want.len && memcmp(ids, want.data, want.len * sizeof *ids) == 0));
    free(ids);
    idvec_free(&want);
}

static void test_lines(void) {
    const char *text = "첫째 문단이다.\n\n  \r\n둘째 문단.\r\n셋째, 끝에 줄바꿈 없음";
    const char *pars[] = {"첫째 문단이다.", "둘째 문단.", "셋째, 끝에 줄바꿈 없음"};
    check_stream(write_tmp("lines.txt", text, strlen(text)), CORPUS_AUTO, pars, 3);
}

static void test_wikiextractor(void) {
    const char *text = "<doc id=\"5\" url=\"https://ko.wikipedia.org/wiki?curid=5\" title=\"지미 카터\">\n지미 카터\n\n"
                       "제임스 얼 카터 주니어는 미국의 제39대 대통령이다.\n</doc>\n"
                       "<doc id=\"9\" url=\"https://ko.wikipedia.org/wiki?curid=9\" title=\"수학\">\n"
                       "수학은 양, 구조, 공간, 변화 등의 개념을 다루는 학문이다.\n둘째 문단.\n</doc>\n";
    const char *pars[] = {"제임스 얼 카터 주니어는 미국의 제39대 대통령이다.", "수학은 양, 구조, 공간, 변화 등의 개념을 다루는 학문이다.", "둘째 문단."};
    check_stream(write_tmp("wiki.txt", text, strlen(text)), CORPUS_AUTO, pars, 3);
    /* read as plain lines, the tags are text */
    const char *as_lines[] = {"<doc id=\"9\" url=\"https://ko.wikipedia.org/wiki?curid=9\" title=\"수학\">", "수학은 양, 구조, 공간, 변화 등의 개념을 다루는 학문이다.", "둘째 문단.", "</doc>"};
    const char *second = strstr(text, "<doc id=\"9\"");
    check_stream(write_tmp("wiki2.txt", second, strlen(second)), CORPUS_LINES, as_lines, 4);
}

static void test_max_tokens(void) {
    const char *text = "하나 둘 셋 넷 다섯\n여섯 일곱\n";
    CorpusOptions all = {CORPUS_AUTO, 1, 0, 0}, cut = {CORPUS_AUTO, 1, 4, 0};
    int32_t *a = NULL, *b = NULL;
    int64_t na = 0, nb = 0;
    const char *path = write_tmp("max.txt", text, strlen(text));
    CHECK_OK(corpus_tokenize_all(tk, path, &all, &a, &na, NULL));
    CHECK_OK(corpus_tokenize_all(tk, path, &cut, &b, &nb, NULL));
    CHECK_EQ_INT(nb, 4);
    CHECK(na > 4 && memcmp(a, b, 4 * sizeof *a) == 0);
    free(a);
    free(b);
}

/* A line longer than the 4 MiB read block is one paragraph, not two. */
static void test_long_line(void) {
    size_t n = (5u << 20) / 3; /* '가' is 3 bytes */
    char *text = malloc(n * 3 + 2);
    for (size_t i = 0; i < n; i++) memcpy(text + 3 * i, "가", 3);
    text[3 * n] = '\n';
    CorpusOptions o = {CORPUS_AUTO, 1, 0, 0};
    int32_t *ids = NULL;
    int64_t got = 0;
    const char *path = write_tmp("long.txt", text, 3 * n + 1);
    CHECK_OK(corpus_tokenize_all(tk, path, &o, &ids, &got, NULL));
    int eos = 0;
    for (int64_t i = 0; i < got; i++) eos += ids[i] == 1;
    CHECK_EQ_INT(eos, 1);
    CHECK_EQ_INT(ids[got - 1], 1);
    free(ids);
    free(text);
}

static void test_invalid_utf8(void) {
    const char text[] = "좋은 줄\n둘째 줄\n셋째 \xff 줄\n";
    const char *path = write_tmp("bad.txt", text, sizeof text - 1);
    CorpusOptions o = {CORPUS_AUTO, 1, 0, 0};
    int32_t *ids = NULL;
    int64_t n = 0;
    CHECK_EQ_INT(corpus_tokenize_all(tk, path, &o, &ids, &n, NULL), KN_EFORMAT);
    CHECK_MSG(strstr(kn_errmsg(), "bad.txt:3:") != NULL, "%s", kn_errmsg());
    CHECK(strstr(kn_errmsg(), "--replace-invalid-utf8") != NULL);
    o.flags = CORPUS_REPLACE_INVALID_UTF8;
    CHECK_OK(corpus_tokenize_all(tk, path, &o, &ids, &n, NULL));
    int unk = 0;
    for (int64_t i = 0; i < n; i++) unk += ids[i] == 5;
    CHECK_EQ_INT(unk, 1);
    free(ids);
    CHECK_EQ_INT(corpus_tokenize_all(tk, "/nonexistent/corpus.txt", &o, &ids, &n, NULL), KN_ENOTFOUND);
    CHECK(strstr(kn_errmsg(), "/nonexistent/corpus.txt") != NULL);
}

static int64_t count_lines(const char *path) {
    char *t;
    size_t len;
    if (file_read_all(path, &t, &len) != KN_OK) return -1;
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) n += t[i] == '\n';
    free(t);
    return n;
}

static void test_split(void) {
    char text[20000] = "";
    for (int i = 0; i < 1000; i++) snprintf(text + strlen(text), sizeof text - strlen(text), "문서 %d\n", i);
    const char *src = write_tmp("docs.txt", text, strlen(text));
    char in[256], tr[256], ho[256], tr2[256], ho2[256];
    snprintf(in, sizeof in, "%s", src);
    snprintf(tr, sizeof tr, "%s/train.txt", dir);
    snprintf(ho, sizeof ho, "%s/heldout.txt", dir);
    snprintf(tr2, sizeof tr2, "%s/train2.txt", dir);
    snprintf(ho2, sizeof ho2, "%s/heldout2.txt", dir);
    int64_t a, b;
    CHECK_OK(corpus_split(in, CORPUS_AUTO, 0, 0.8, 42, tr, ho, &a, &b));
    CHECK_EQ_INT(a + b, 1000);
    CHECK(a > 740 && a < 860); /* binomial(1000, 0.8): 6 sigma */
    CHECK_EQ_INT(count_lines(tr), a);
    CHECK_EQ_INT(count_lines(ho), b);
    /* the same seed gives the same split */
    CHECK_OK(corpus_split(in, CORPUS_AUTO, 0, 0.8, 42, tr2, ho2, &a, &b));
    char *x, *y;
    size_t lx, ly;
    CHECK_OK(file_read_all(tr, &x, &lx));
    CHECK_OK(file_read_all(tr2, &y, &ly));
    CHECK(lx == ly && memcmp(x, y, lx) == 0);
    free(x);
    free(y);
    CHECK_EQ_INT(corpus_split(in, CORPUS_AUTO, 0, 1.5, 1, tr, ho, &a, &b), KN_EINVAL);
    /* WikiExtractor documents move whole */
    const char *wiki = "<doc id=\"1\" title=\"가\">\n가\n첫 문단.\n둘째 문단.\n</doc>\n<doc id=\"2\" title=\"나\">\n나\n셋째 문단.\n</doc>\n";
    CHECK_OK(corpus_split(write_tmp("w.txt", wiki, strlen(wiki)), CORPUS_AUTO, 0, 0.5, 7, tr, ho, &a, &b));
    CHECK_EQ_INT(a + b, 2);
    CHECK_EQ_INT(count_lines(tr) + count_lines(ho), 9);
}

/* A split whose write fails half way (the file size limit, as a full disk would) names the file, leaves no
 * temporary, and leaves the files of an earlier split as they were: both parts are renamed only at the end. */
static void test_split_write_fails(void) {
    char text[40000] = "";
    for (int i = 0; i < 2000; i++) snprintf(text + strlen(text), sizeof text - strlen(text), "문서 번호 %d\n", i);
    char in[256], tr[256], ho[256], tmp[300];
    snprintf(in, sizeof in, "%s", write_tmp("big.txt", text, strlen(text)));
    snprintf(tr, sizeof tr, "%s/old-train.txt", dir);
    snprintf(ho, sizeof ho, "%s/old-heldout.txt", dir);
    CHECK_OK(file_write_atomic(tr, "old train\n", 10));
    CHECK_OK(file_write_atomic(ho, "old heldout\n", 12));
    int64_t a, b;
    struct rlimit old, limited;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    limited = old;
    limited.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit then fails with EFBIG instead of killing us */
    CHECK(setrlimit(RLIMIT_FSIZE, &limited) == 0);
    int rc = corpus_split(in, CORPUS_AUTO, 0, 0.5, 3, tr, ho, &a, &b);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_DFL);
    CHECK_EQ_INT(rc, KN_EIO);
    CHECK_MSG(strstr(kn_errmsg(), "old-") && strstr(kn_errmsg(), ".txt: write failed: File too large"), "%s", kn_errmsg());
    CHECK_EQ_INT(count_lines(tr), 1);
    CHECK_EQ_INT(count_lines(ho), 1);
    CHECK_OK(file_temp_path(tmp, sizeof tmp, tr));
    CHECK(!file_exists(tmp));
    CHECK_OK(file_temp_path(tmp, sizeof tmp, ho));
    CHECK(!file_exists(tmp));
    /* and the temporary name is hidden, in the output's folder, with the process id */
    char want[300];
    snprintf(want, sizeof want, "%s/.old-train.txt.tmp.%ld", dir, (long)getpid());
    CHECK_OK(file_temp_path(tmp, sizeof tmp, tr));
    CHECK_MSG(!strcmp(tmp, want), "%s", tmp);
    CHECK_OK(file_temp_path(tmp, sizeof tmp, "plain.txt"));
    snprintf(want, sizeof want, ".plain.txt.tmp.%ld", (long)getpid());
    CHECK_MSG(!strcmp(tmp, want), "%s", tmp);
    CHECK_EQ_INT(file_temp_path(tmp, sizeof tmp, "folder/"), KN_EINVAL);
}

/* Tokenizing (build, ppl) and splitting refuse the same inputs, with the same message. */
static void test_readers_refuse_the_same(void) {
    static const struct {
        const char *name, *text;
        size_t len;
        const char *message;
    } bad[] = {
        {"nul.txt", "첫 줄\n둘\0째 줄\n", 20, "nul.txt:2: a NUL byte at byte offset 3: a binary file, not UTF-8 text"},
        {"unclosed.txt", "<doc id=\"1\" title=\"가\">\n가\n본문.\n</doc>\n<doc id=\"2\" title=\"나\">\n나\n잘린 본문.\n", 0,
         "unclosed.txt: the <doc> of line 5 is never closed"},
        {"nested.txt", "<doc id=\"1\" title=\"가\">\n본문.\n<doc id=\"2\" title=\"나\">\n본문.\n</doc>\n", 0,
         "nested.txt:3: a <doc> opens while the <doc> of line 1 is still open"},
        {"utf8.txt", "좋은 줄\n셋째 \xff 줄\n", 0, "utf8.txt:2: invalid UTF-8 at byte offset 7 (byte 0xFF)"},
    };
    char tr[256], ho[256];
    snprintf(tr, sizeof tr, "%s/t.txt", dir);
    snprintf(ho, sizeof ho, "%s/h.txt", dir);
    CorpusOptions o = {CORPUS_AUTO, 1, 0, 0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = write_tmp(bad[i].name, bad[i].text, bad[i].len ? bad[i].len : strlen(bad[i].text));
        int32_t *ids = NULL;
        int64_t n = 0, a, b;
        CHECK_EQ_INT(corpus_tokenize_all(tk, path, &o, &ids, &n, NULL), KN_EFORMAT);
        CHECK_MSG(strstr(kn_errmsg(), bad[i].message) != NULL, "tokenize: %s", kn_errmsg());
        CHECK_EQ_INT(corpus_split(path, CORPUS_AUTO, 0, 0.5, 1, tr, ho, &a, &b), KN_EFORMAT);
        CHECK_MSG(strstr(kn_errmsg(), bad[i].message) != NULL, "split: %s", kn_errmsg());
    }
    /* invalid UTF-8 passes both with the flag; a NUL byte passes neither */
    const char *path = write_tmp("utf8.txt", bad[3].text, strlen(bad[3].text));
    int32_t *ids = NULL;
    int64_t n = 0, a, b;
    o.flags = CORPUS_REPLACE_INVALID_UTF8;
    CHECK_OK(corpus_tokenize_all(tk, path, &o, &ids, &n, NULL));
    free(ids);
    CHECK_OK(corpus_split(path, CORPUS_AUTO, CORPUS_REPLACE_INVALID_UTF8, 0.5, 1, tr, ho, &a, &b));
    CHECK_EQ_INT(a + b, 2);
    path = write_tmp("nul.txt", bad[0].text, bad[0].len);
    CHECK_EQ_INT(corpus_tokenize_all(tk, path, &o, &ids, &n, NULL), KN_EFORMAT);
    CHECK_EQ_INT(corpus_split(path, CORPUS_AUTO, CORPUS_REPLACE_INVALID_UTF8, 0.5, 1, tr, ho, &a, &b), KN_EFORMAT);
    /* a stream cut by max_tokens inside a <doc> is not an unclosed <doc> */
    path = write_tmp("unclosed.txt", bad[1].text, strlen(bad[1].text));
    o.max_tokens = 3;
    CHECK_OK(corpus_tokenize_all(tk, path, &o, &ids, &n, NULL));
    CHECK_EQ_INT(n, 3);
    free(ids);
    /* no document at all: the split has nothing to split (tokenizing gives 0 tokens, which build refuses) */
    path = write_tmp("blank.txt", "\n  \n\t\n", 6);
    CHECK_EQ_INT(corpus_split(path, CORPUS_AUTO, 0, 0.5, 1, tr, ho, &a, &b), KN_EINVAL);
    CHECK_MSG(strstr(kn_errmsg(), "blank.txt: holds no documents") != NULL, "%s", kn_errmsg());
}

int main(void) {
    strcpy(dir, "/tmp/knnlm-test-corpus-XXXXXX");
    if (!mkdtemp(dir) || tokenizer_load(&tk, "tests/data/tokenizer/tokenizer.json") != KN_OK) {
        fprintf(stderr, "setup failed: %s\n", kn_errmsg());
        return 1;
    }
    RUN(test_lines);
    RUN(test_wikiextractor);
    RUN(test_max_tokens);
    RUN(test_long_line);
    RUN(test_invalid_utf8);
    RUN(test_split);
    RUN(test_split_write_fails);
    RUN(test_readers_refuse_the_same);
    tokenizer_free(tk);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return TEST_EXIT();
}
