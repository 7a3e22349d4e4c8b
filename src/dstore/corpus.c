/* corpus.c — see corpus.h. The file is read in blocks of whole lines; the paragraphs of a block are tokenized
 * in parallel, then passed to the sink in file order. */
#include "dstore/corpus.h"

#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/file.h"
#include "util/rng.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { BLOCK_BYTES = 4 << 20 };

typedef struct {
    const char *text;
    size_t len;
    int64_t line;        /* 1-based, for error messages */
} Paragraph;

/* What the line classifier remembers between lines (WikiExtractor blocks span blocks of the file). */
typedef struct {
    CorpusFormat format;
    int64_t doc_line;    /* the line of the <doc> that is open, 0 when none is */
    int expect_title;    /* the next non-blank line may repeat the title */
    char title[512];
} LineState;

int32_t corpus_eos_id(int32_t config_eos, const Tokenizer *tk) { return config_eos >= 0 ? config_eos : tokenizer_token_to_id(tk, "</s>"); }

int corpus_format_parse(const char *name, CorpusFormat *fmt) {
    if (!strcmp(name, "auto")) *fmt = CORPUS_AUTO;
    else if (!strcmp(name, "lines")) *fmt = CORPUS_LINES;
    else if (!strcmp(name, "wikiextractor")) *fmt = CORPUS_WIKIEXTRACTOR;
    else return kn_error(KN_EINVAL, "--format %s: expected auto, lines or wikiextractor", name);
    return KN_OK;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

static int starts_with(const char *s, size_t n, const char *prefix) {
    size_t m = strlen(prefix);
    return n >= m && memcmp(s, prefix, m) == 0;
}

/* The value of title="..." in a <doc ...> line. */
static void doc_title(const char *s, size_t n, char *out, size_t cap) {
    out[0] = '\0';
    const char *end = s + n;
    for (const char *p = s; p + 7 <= end; p++) {
        if (memcmp(p, "title=\"", 7) != 0) continue;
        p += 7;
        const char *q = memchr(p, '"', (size_t)(end - p));
        size_t len = q ? (size_t)(q - p) : 0;
        if (len >= cap) len = cap - 1;
        memcpy(out, p, len);
        out[len] = '\0';
        return;
    }
}

/* Returns 1 if the line is a paragraph to tokenize. */
static int classify_line(LineState *st, int64_t line, const char *s, size_t n) {
    if (is_blank(s, n)) return 0;
    if (st->format == CORPUS_AUTO) st->format = starts_with(s, n, "<doc ") ? CORPUS_WIKIEXTRACTOR : CORPUS_LINES;
    if (st->format == CORPUS_LINES) return 1;
    if (starts_with(s, n, "<doc ") && s[n - 1] == '>') {
        st->doc_line = line;
        st->expect_title = 1;
        doc_title(s, n, st->title, sizeof st->title);
        return 0;
    }
    if (n == 6 && memcmp(s, "</doc>", 6) == 0) {
        st->doc_line = 0;
        return 0;
    }
    if (st->expect_title) {
        st->expect_title = 0;
        if (strlen(st->title) == n && memcmp(s, st->title, n) == 0) return 0;
    }
    return 1;
}

/* Every reader of a corpus (tokenizing it for build and ppl, splitting it) goes through this, so that they
 * all refuse the same input. Classifies line number `line` (s[0..n), without its "\n" or "\r") as
 * classify_line does, after checking it: a NUL byte means a binary file, not text; a <doc> opened while
 * another is still open means a missing </doc>; invalid UTF-8 in a paragraph is an error unless flags has
 * CORPUS_REPLACE_INVALID_UTF8. Returns 1 (a paragraph), 0 (a line to skip) or a KN_E* code naming path:line. */
static int read_line(LineState *st, const char *path, int64_t line, const char *s, size_t n, unsigned flags) {
    const char *nul = memchr(s, '\0', n);
    if (nul) return kn_error(KN_EFORMAT, "%s:%lld: a NUL byte at byte offset %td: a binary file, not UTF-8 text", path, (long long)line, nul - s);
    int64_t open_doc = st->doc_line;
    int r = classify_line(st, line, s, n);
    if (open_doc && st->doc_line == line)
        return kn_error(KN_EFORMAT, "%s:%lld: a <doc> opens while the <doc> of line %lld is still open (a </doc> is missing)", path, (long long)line,
                        (long long)open_doc);
    if (r == 1 && !(flags & CORPUS_REPLACE_INVALID_UTF8)) {
        size_t bad = utf8_find_invalid(s, n);
        if (bad < n)
            return kn_error(KN_EFORMAT, "%s:%lld: invalid UTF-8 at byte offset %zu (byte 0x%02X) (pass --replace-invalid-utf8 to read it as U+FFFD, i.e. <unk>)", path,
                            (long long)line, bad, (unsigned)(uint8_t)s[bad]);
    }
    return r;
}

/* At the end of the whole file (not of a stream cut by max_tokens): a <doc> that never closes is a truncated
 * WikiExtractor file. */
static int read_end(const LineState *st, const char *path) {
    if (st->doc_line)
        return kn_error(KN_EFORMAT, "%s: the <doc> of line %lld is never closed (no </doc> before the end of the file: truncated?)", path, (long long)st->doc_line);
    return KN_OK;
}

/* Tokenizes the block's paragraphs in parallel into out[i]; on failure returns the error of the earliest
 * failing paragraph (its message copied from the worker thread that made it). */
static int tokenize_paragraphs(const Tokenizer *tk, const char *path, const Paragraph *pars, size_t n, unsigned flags, IdVec *out) {
    int first_bad = -1, first_rc = KN_OK;
    char msg[1024] = "";
    unsigned tflags = flags & CORPUS_REPLACE_INVALID_UTF8 ? TOKENIZER_REPLACE_INVALID_UTF8 : 0;
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = 0; i < n; i++) {
        int rc = tokenizer_encode(tk, pars[i].text, pars[i].len, tflags, &out[i]);
        if (rc != KN_OK) {
#pragma omp critical(corpus_error)
            if (first_bad < 0 || (int)i < first_bad) {
                first_bad = (int)i;
                first_rc = rc;
                snprintf(msg, sizeof msg, "%s", kn_errmsg());
            }
        }
    }
    if (first_bad < 0) return KN_OK;
    const char *hint = first_rc == KN_EFORMAT ? " (pass --replace-invalid-utf8 to read it as U+FFFD, i.e. <unk>)" : "";
    return kn_error(first_rc, "%s:%lld: %s%s", path, (long long)pars[first_bad].line, msg, strstr(msg, "UTF-8") ? hint : "");
}

int corpus_tokenize(const Tokenizer *tk, const char *path, const CorpusOptions *opt, TokenSink sink, void *sink_ctx,
                    const KnMonitor *monitor) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kn_error_errno("%s: cannot open corpus", path);
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return kn_error(KN_EINVAL, "%s: is a directory, expected a text file", path);
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t cap = BLOCK_BYTES, max_pars = 0;
    char *buf = malloc(cap);
    Paragraph *pars = NULL;
    IdVec *ids = NULL;
    int rc = buf ? KN_OK : kn_error(KN_ENOMEM, "%s: out of memory", path);
    LineState ls = {.format = opt->format};
    size_t have = 0;          /* bytes in buf */
    int64_t line = 0, tokens = 0;
    uint64_t bytes_read = 0;
    int eof = 0, cut = 0;     /* cut: stopped at max_tokens, before the end of the file */
    while (rc == KN_OK && !eof) {
        if (have == cap) { /* a line longer than the buffer: grow it rather than cut the line */
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                rc = kn_error(KN_ENOMEM, "%s:%lld: out of memory for a line of over %zu bytes", path, (long long)line + 1, cap);
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + have, cap - have);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = kn_error_errno("%s: read failed", path);
            break;
        }
        bytes_read += (uint64_t)r;
        have += (size_t)r;
        eof = r == 0;
        /* complete lines only, unless at the end of the file */
        size_t usable = have;
        if (!eof) {
            char *last = memrchr(buf, '\n', have);
            if (!last) continue;
            usable = (size_t)(last - buf) + 1;
        }
        size_t npars = 0;
        for (size_t at = 0; at < usable && rc == KN_OK;) {
            char *nl = memchr(buf + at, '\n', usable - at);
            size_t end = nl ? (size_t)(nl - buf) : usable, len = end - at;
            line++;
            if (len && buf[at + len - 1] == '\r') len--;
            int is_paragraph = read_line(&ls, path, line, buf + at, len, opt->flags);
            if (is_paragraph < 0) {
                rc = is_paragraph;
                break;
            }
            if (is_paragraph) {
                if (npars == max_pars) {
                    size_t more = max_pars ? max_pars * 2 : 4096;
                    Paragraph *p2 = realloc(pars, more * sizeof *pars);
                    if (p2) pars = p2;
                    IdVec *i2 = p2 ? realloc(ids, more * sizeof *ids) : NULL;
                    if (i2) {
                        ids = i2;
                        memset(ids + max_pars, 0, (more - max_pars) * sizeof *ids);
                        max_pars = more;
                    } else {
                        rc = kn_error(KN_ENOMEM, "%s: out of memory", path);
                        break;
                    }
                }
                pars[npars++] = (Paragraph){buf + at, len, line};
            }
            at = end + 1;
        }
        for (size_t i = 0; i < npars; i++) ids[i].len = 0;
        if (rc == KN_OK) rc = tokenize_paragraphs(tk, path, pars, npars, opt->flags, ids);
        for (size_t i = 0; i < npars && rc == KN_OK; i++) {
            rc = idvec_reserve(&ids[i], 1);
            if (rc != KN_OK) break;
            ids[i].data[ids[i].len++] = opt->eos_id;
            size_t n = ids[i].len;
            if (opt->max_tokens > 0 && tokens + (int64_t)n >= opt->max_tokens) {
                n = (size_t)(opt->max_tokens - tokens);
                eof = cut = 1;
            }
            rc = sink(sink_ctx, ids[i].data, n);
            tokens += (int64_t)n;
            if (eof) break;
        }
        monitor_progress(monitor, bytes_read, (uint64_t)tokens);
        if (rc == KN_OK && monitor_stopped(monitor)) rc = kn_error(KN_EINTR, "%s: tokenization interrupted (run the same command again to resume)", path);
        memmove(buf, buf + usable, have - usable);
        have -= usable;
    }
    if (rc == KN_OK && !cut) rc = read_end(&ls, path);
    for (size_t i = 0; i < max_pars; i++) idvec_free(&ids[i]);
    free(ids);
    free(pars);
    free(buf);
    close(fd);
    return rc;
}

static int append_sink(void *ctx, const int32_t *ids, size_t n) {
    IdVec *v = ctx;
    int rc = idvec_reserve(v, n);
    if (rc != KN_OK) return rc;
    memcpy(v->data + v->len, ids, n * sizeof *ids);
    v->len += n;
    return KN_OK;
}

int corpus_tokenize_all(const Tokenizer *tk, const char *path, const CorpusOptions *opt, int32_t **ids, int64_t *n,
                        const KnMonitor *monitor) {
    IdVec v = {0};
    int rc = corpus_tokenize(tk, path, opt, append_sink, &v, monitor);
    if (rc != KN_OK) {
        idvec_free(&v);
        return rc;
    }
    *ids = v.data;
    *n = (int64_t)v.len;
    return KN_OK;
}

int corpus_split(const char *path, CorpusFormat fmt, unsigned flags, double train_fraction, uint64_t seed, const char *train_path,
                 const char *heldout_path, int64_t *n_train, int64_t *n_heldout) {
    *n_train = *n_heldout = 0;
    if (!(train_fraction > 0 && train_fraction < 1)) return kn_error(KN_EINVAL, "--train %g: must be between 0 and 1 (exclusive)", train_fraction);
    FILE *in = fopen(path, "rb");
    if (!in) return kn_error_errno("%s: cannot open corpus", path);
    struct stat st;
    if (fstat(fileno(in), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(in);
        return kn_error(KN_EINVAL, "%s: is a directory, expected a text file", path);
    }
    /* Both parts go to temporaries renamed into place only at the end: a failure leaves no partial file. */
    FileOut out[2] = {{0}, {0}};
    int rc = file_out_open(&out[0], train_path);
    if (rc == KN_OK) rc = file_out_open(&out[1], heldout_path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    LineState ls = {.format = fmt};
    FileOut *dst = NULL; /* the current document's file (WikiExtractor blocks span lines) */
    while (rc == KN_OK && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        size_t n = (size_t)len;
        if (n && line[n - 1] == '\n') n--;
        if (n && line[n - 1] == '\r') n--;
        int is_paragraph = read_line(&ls, path, lineno, line, n, flags);
        if (is_paragraph < 0) {
            rc = is_paragraph;
            break;
        }
        int starts_doc = ls.format == CORPUS_LINES ? is_paragraph : ls.doc_line == lineno;
        if (starts_doc) {
            int train = splitmix64_unit(&seed) < train_fraction;
            dst = &out[train ? 0 : 1];
            (*(train ? n_train : n_heldout))++;
        }
        if (!dst) continue; /* text before the first WikiExtractor document, or blank lines at the top */
        if (fwrite(line, 1, (size_t)len, dst->f) != (size_t)len) rc = file_out_write_error(dst);
        if (ls.format == CORPUS_LINES) dst = NULL;
    }
    if (rc == KN_OK && ferror(in)) rc = kn_error_errno("%s: read failed at line %lld", path, (long long)lineno);
    if (rc == KN_OK) rc = read_end(&ls, path);
    if (rc == KN_OK && *n_train + *n_heldout == 0) rc = kn_error(KN_EINVAL, "%s: holds no documents (it is empty or blank)", path);
    free(line);
    fclose(in);
    for (int i = 0; i < 2; i++) {
        if (rc == KN_OK) rc = file_out_commit(&out[i]);
        else file_out_abort(&out[i]);
    }
    return rc;
}
