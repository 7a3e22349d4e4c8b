/* overlap.c — see overlap.h. */
#include "knnlm/overlap.h"

#include "util/error.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* A polynomial hash over the window's tokens, base B, mod 2^64: rolls in O(1) per position. */
static const uint64_t B = 0x9E3779B97F4A7C15ull;

static uint64_t token_code(int32_t t) { return (uint64_t)(uint32_t)t * 0xD6E8FEB86659FD93ull + 1; }

static uint64_t window_hash(const int32_t *t, int gram) {
    uint64_t h = 0;
    for (int i = 0; i < gram; i++) h = h * B + token_code(t[i]);
    return h;
}

typedef struct {
    uint64_t *keys;   /* 0: empty slot (a hash of 0 is stored as 1) */
    uint8_t *hit;
    uint64_t mask;
} HashSet;

static uint64_t slot_of(const HashSet *s, uint64_t h) {
    uint64_t i = (h ^ (h >> 29)) & s->mask;
    while (s->keys[i] && s->keys[i] != h) i = (i + 1) & s->mask;
    return i;
}

int overlap_measure(const int32_t *text, int64_t n, const int32_t *corpus, int64_t m, int gram, OverlapReport *report) {
    memset(report, 0, sizeof *report);
    if (gram < 1) return kn_error(KN_EINVAL, "overlap: windows of %d tokens", gram);
    if (n < gram || m < gram) return KN_OK;
    const int64_t samples = n / gram;
    uint64_t cap = 2;
    while (cap < 2 * (uint64_t)samples) cap *= 2;
    HashSet s = {calloc(cap, sizeof *s.keys), calloc(cap, 1), cap - 1};
    if (!s.keys || !s.hit) {
        free(s.keys), free(s.hit);
        return kn_error(KN_ENOMEM, "overlap: out of memory for %lld windows", (long long)samples);
    }
    for (int64_t j = 0; j < samples; j++) {
        uint64_t h = window_hash(text + j * gram, gram);
        h += !h;
        uint64_t i = slot_of(&s, h);
        if (!s.keys[i]) {
            s.keys[i] = h;
            report->windows++;
        }
    }
    uint64_t top = 1; /* B^(gram-1): the weight of the token that leaves the window */
    for (int i = 1; i < gram; i++) top *= B;
    const int64_t positions = m - gram + 1;
    /* each thread rolls over its own contiguous range of window starts */
#pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t begin = positions * t / nt, end = positions * (t + 1) / nt;
        uint64_t h = begin < end ? window_hash(corpus + begin, gram) : 0;
        for (int64_t p = begin; p < end; p++) {
            if (p > begin) h = (h - token_code(corpus[p - 1]) * top) * B + token_code(corpus[p + gram - 1]);
            uint64_t k = h + !h;
            uint64_t i = slot_of(&s, k);
            if (s.keys[i]) {
#pragma omp atomic write
                s.hit[i] = 1;
            }
        }
    }
    for (uint64_t i = 0; i <= s.mask; i++) report->found += s.hit[i];
    free(s.keys);
    free(s.hit);
    return KN_OK;
}
