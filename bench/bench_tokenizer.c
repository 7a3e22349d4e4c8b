/* bench_tokenizer.c — how fast the tokenizer loads and encodes a corpus, line by line as the datastore
 * build does.
 *
 *   build/release/bench/bench_tokenizer [tokenizer.json] [corpus.txt] [threads]
 *
 * Defaults: tests/data/tokenizer/tokenizer.json, data/kowiki-sample/train.txt, 2 threads. Prints the load
 * time, then MB/s and tokens/s for one thread with a cold word cache (a fresh tokenizer), one thread
 * with a warm cache, and `threads` threads (OpenMP, dynamic schedule over lines). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const char **start;
    size_t *len;
    size_t n;
} Lines;

/* Encodes every line with `threads` threads; returns the number of tokens, or -1 on an error. */
static long long encode_all(const Tokenizer *tk, const Lines *lines, int threads) {
    long long tokens = 0;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(+ : tokens) reduction(| : failed)
    {
        IdVec ids = {0};
#pragma omp for schedule(dynamic, 64)
        for (size_t i = 0; i < lines->n; i++) {
            ids.len = 0;
            if (tokenizer_encode(tk, lines->start[i], lines->len[i], TOKENIZER_REPLACE_INVALID_UTF8, &ids)) failed = 1;
            tokens += (long long)ids.len;
        }
        idvec_free(&ids);
    }
    return failed ? -1 : tokens;
}

static void report(const char *what, double seconds, size_t bytes, long long tokens) {
    printf("%-28s %8.1f MB/s %12.0f tokens/s  (%.3f s, %lld tokens)\n", what, (double)bytes / seconds / 1e6,
           (double)tokens / seconds, seconds, tokens);
}

int main(int argc, char **argv) {
    const char *json = argc > 1 ? argv[1] : "tests/data/tokenizer/tokenizer.json";
    const char *corpus = argc > 2 ? argv[2] : "data/kowiki-sample/train.txt";
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    if (threads < 1) threads = 1;

    char *text;
    size_t size;
    if (file_read_all(corpus, &text, &size)) {
        fprintf(stderr, "bench_tokenizer: %s\n", kn_errmsg());
        return 1;
    }
    Lines lines = {0};
    size_t cap = 1024;
    lines.start = malloc(cap * sizeof *lines.start);
    lines.len = malloc(cap * sizeof *lines.len);
    for (char *p = text, *end = text + size; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (lines.n == cap) {
            cap *= 2;
            lines.start = realloc(lines.start, cap * sizeof *lines.start);
            lines.len = realloc(lines.len, cap * sizeof *lines.len);
        }
        lines.start[lines.n] = p;
        lines.len[lines.n++] = n;
        p += n + 1;
    }

    Tokenizer *tk;
    double t0 = now();
    if (tokenizer_load(&tk, json)) {
        fprintf(stderr, "bench_tokenizer: %s\n", kn_errmsg());
        return 1;
    }
    printf("%s: loaded in %.3f s (%d tokens)\n", json, now() - t0, tokenizer_vocab_size(tk));
    printf("%s: %.1f MB, %zu lines\n", corpus, (double)size / 1e6, lines.n);

    t0 = now();
    long long tokens = encode_all(tk, &lines, 1);
    report("1 thread, cold cache", now() - t0, size, tokens);
    t0 = now();
    tokens = encode_all(tk, &lines, 1);
    report("1 thread, warm cache", now() - t0, size, tokens);
    char what[64];
    snprintf(what, sizeof what, "%d threads, warm cache", threads);
    t0 = now();
    tokens = encode_all(tk, &lines, threads);
    report(what, now() - t0, size, tokens);

    tokenizer_free(tk);
    free(lines.start);
    free(lines.len);
    free(text);
    return tokens < 0;
}
