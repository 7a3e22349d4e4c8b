/* bpe.c — see bpe.h.
 *
 * Memory: the token strings live in one block (strings, offsets); the vocabulary and the merges are
 * open-addressing hash tables of at most half load. Merging gives what tokenizers' Word::merge_all
 * gives (lowest rank first, leftmost first among equal ranks): short words by scanning their pairs,
 * long ones with its min-heap of (rank, position) candidates. */
#include "tokenizer/bpe.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tokenizer/utf8.h"
#include "util/error.h"

/* The word cache: one 64-byte line per word, so that a lookup costs one cache miss. A line is written
 * once (EMPTY -> WRITING -> READY) and never changes after; readers only read READY lines, which makes
 * it lock-free and race-free. When both lines of a word's bucket are taken the word is not cached:
 * words met early (the frequent ones, mostly) stay. */
#define CACHE_LINES (1u << 16)  /* 4 MiB */
#define CACHE_WORD_MAX 28
#define CACHE_IDS_MAX 7
enum { CACHE_EMPTY, CACHE_WRITING, CACHE_READY };

typedef struct {
    _Atomic uint32_t state;
    uint8_t word_len, n_ids;
    uint16_t tag;               /* bits of the hash not used to pick the bucket */
    int32_t ids[CACHE_IDS_MAX];
    char word[CACHE_WORD_MAX];
} CacheLine;

_Static_assert(sizeof(CacheLine) == 64, "a cache entry is one cache line");

typedef struct {
    uint64_t pair;      /* left id << 32 | right id; EMPTY_PAIR when the slot is free */
    uint32_t rank;      /* position in the merge list: lower merges first */
    int32_t new_id;     /* the id of left + right */
} MergeSlot;

#define EMPTY_PAIR UINT64_MAX

struct BpeSymbol {
    int32_t id;
    int32_t prev, next;         /* neighbours among the live symbols, -1 at the ends */
    uint32_t len;               /* bytes of the word it covers; 0 once merged into its left neighbour */
    const MergeSlot *merge;     /* merge_by_scan(): the merge of this symbol and the next, or NULL */
};

/* Words of up to this many characters are merged by scanning, longer ones with a heap. */
#define SCAN_MAX_SYMBOLS 48

struct Bpe {
    int32_t n_vocab;
    char *strings;              /* every token, NUL-terminated, one after the other */
    size_t *offsets;            /* [n_vocab + 1]: token id starts at strings + offsets[id] */
    int32_t *vocab_slots;       /* [vocab_mask + 1]: id or -1 */
    size_t vocab_mask;
    MergeSlot *merge_slots;     /* [merge_mask + 1] */
    size_t merge_mask;
    int32_t *bmp_ids;           /* [0x10000]: id of the one-character token U+0000..U+FFFF, or -1 */
    int32_t unk_id;
    CacheLine *cache;           /* [CACHE_LINES], 64-byte aligned */
};

/* ---- vocabulary ---- */

static uint64_t hash_bytes(const char *s, size_t len) { return XXH3_64bits(s, len); }

static size_t token_len(const Bpe *bpe, int32_t id) { return bpe->offsets[id + 1] - bpe->offsets[id] - 1; }

int32_t bpe_token_to_id(const Bpe *bpe, const char *s, size_t len) {
    for (size_t i = hash_bytes(s, len) & bpe->vocab_mask;; i = (i + 1) & bpe->vocab_mask) {
        int32_t id = bpe->vocab_slots[i];
        if (id < 0) return -1;
        if (token_len(bpe, id) == len && memcmp(bpe->strings + bpe->offsets[id], s, len) == 0) return id;
    }
}

int32_t bpe_vocab_size(const Bpe *bpe) { return bpe->n_vocab; }

const char *bpe_token(const Bpe *bpe, int32_t id, size_t *len) {
    if (id < 0 || id >= bpe->n_vocab) return NULL;
    if (len) *len = token_len(bpe, id);
    return bpe->strings + bpe->offsets[id];
}

static size_t table_size_for(size_t n) {
    size_t size = 16;
    while (size < 2 * n) size *= 2;
    return size;
}

/* Reads "vocab": {token: id, ...}. The ids must be exactly 0..n-1, each token valid UTF-8 and distinct. */
static int load_vocab(Bpe *bpe, const cJSON *vocab, const char *path) {
    if (!cJSON_IsObject(vocab)) return kn_error(KN_EFORMAT, "%s: model.vocab is missing or not an object", path);
    int n = cJSON_GetArraySize(vocab);
    if (n <= 0) return kn_error(KN_EFORMAT, "%s: model.vocab is empty", path);
    const char **by_id = calloc((size_t)n, sizeof *by_id);
    bpe->offsets = malloc(((size_t)n + 1) * sizeof *bpe->offsets);
    if (!by_id || !bpe->offsets) {
        free(by_id);
        return kn_error(KN_ENOMEM, "%s: out of memory for a vocab of %d tokens", path, n);
    }
    size_t total = 0;
    int rc = KN_OK;
    const cJSON *item;
    cJSON_ArrayForEach(item, vocab) {
        const char *token = item->string;
        double v = cJSON_IsNumber(item) ? item->valuedouble : -1;
        size_t len = strlen(token);
        char quoted[80], other[80];
        if (!cJSON_IsNumber(item) || v != floor(v) || v < 0 || v >= n) {
            rc = kn_error(KN_EFORMAT, "%s: model.vocab[%s] is not an id in [0, %d) (the vocab has %d tokens)", path,
                          utf8_quote(quoted, sizeof quoted, token), n, n);
            break;
        }
        int id = (int)v;
        if (by_id[id]) {
            rc = kn_error(KN_EFORMAT, "%s: model.vocab gives id %d to both %s and %s", path, id,
                          utf8_quote(other, sizeof other, by_id[id]), utf8_quote(quoted, sizeof quoted, token));
            break;
        }
        if (utf8_find_invalid(token, len) != len) {
            rc = kn_error(KN_EFORMAT, "%s: model.vocab token of id %d is not valid UTF-8", path, id);
            break;
        }
        by_id[id] = token;
        total += len + 1;
    }
    /* n distinct ids in [0, n): every id is taken, so there is no gap. */
    if (rc == KN_OK) {
        bpe->n_vocab = n;
        bpe->strings = malloc(total);
        bpe->vocab_mask = table_size_for((size_t)n) - 1;
        bpe->vocab_slots = malloc((bpe->vocab_mask + 1) * sizeof *bpe->vocab_slots);
        if (!bpe->strings || !bpe->vocab_slots) rc = kn_error(KN_ENOMEM, "%s: out of memory for the vocab", path);
    }
    if (rc == KN_OK) {
        memset(bpe->vocab_slots, 0xFF, (bpe->vocab_mask + 1) * sizeof *bpe->vocab_slots);
        size_t at = 0;
        for (int id = 0; id < n && rc == KN_OK; id++) {
            size_t len = strlen(by_id[id]);
            char quoted[80];
            if (bpe_token_to_id(bpe, by_id[id], len) >= 0)
                rc = kn_error(KN_EFORMAT, "%s: model.vocab has the token %s twice", path,
                              utf8_quote(quoted, sizeof quoted, by_id[id]));
            bpe->offsets[id] = at;
            memcpy(bpe->strings + at, by_id[id], len + 1);
            at += len + 1;
            bpe->offsets[id + 1] = at;
            size_t i = hash_bytes(by_id[id], len) & bpe->vocab_mask;
            while (bpe->vocab_slots[i] >= 0) i = (i + 1) & bpe->vocab_mask;
            bpe->vocab_slots[i] = id;
        }
    }
    free(by_id);
    return rc;
}

/* One-character tokens of the BMP in a direct table, so most characters of a word need no hashing. */
static int index_characters(Bpe *bpe, const char *path) {
    bpe->bmp_ids = malloc(0x10000 * sizeof *bpe->bmp_ids);
    if (!bpe->bmp_ids) return kn_error(KN_ENOMEM, "%s: out of memory", path);
    memset(bpe->bmp_ids, 0xFF, 0x10000 * sizeof *bpe->bmp_ids);
    for (int32_t id = 0; id < bpe->n_vocab; id++) {
        size_t len = token_len(bpe, id);
        uint32_t cp;
        if (len > 0 && utf8_decode((const uint8_t *)bpe->strings + bpe->offsets[id], len, &cp) == len && cp < 0x10000)
            bpe->bmp_ids[cp] = id;
    }
    return KN_OK;
}

/* ---- merges ---- */

static size_t pair_slot(uint64_t pair, size_t mask) { return (size_t)((pair * 0x9E3779B97F4A7C15ull) >> 20) & mask; }

static const MergeSlot *find_merge(const Bpe *bpe, int32_t left, int32_t right) {
    uint64_t pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = pair_slot(pair, bpe->merge_mask);; i = (i + 1) & bpe->merge_mask) {
        const MergeSlot *slot = &bpe->merge_slots[i];
        if (slot->pair == pair) return slot;
        if (slot->pair == EMPTY_PAIR) return NULL;
    }
}

/* The two sides of merges[index]: either "left right" (exactly one space, the format of KoGPT2's file)
 * or ["left", "right"] (the format newer tokenizers writes). */
static int merge_sides(const cJSON *merge, int index, const char *path, char *buf, size_t buf_cap,
                       const char **left, const char **right) {
    if (cJSON_IsArray(merge)) {
        const cJSON *a = cJSON_GetArrayItem(merge, 0), *b = cJSON_GetArrayItem(merge, 1);
        if (cJSON_GetArraySize(merge) != 2 || !cJSON_IsString(a) || !cJSON_IsString(b))
            return kn_error(KN_EFORMAT, "%s: model.merges[%d] is not a pair of strings", path, index);
        *left = a->valuestring;
        *right = b->valuestring;
        return KN_OK;
    }
    if (!cJSON_IsString(merge))
        return kn_error(KN_EFORMAT, "%s: model.merges[%d] is neither a string nor a pair of strings", path, index);
    const char *s = merge->valuestring, *space = strchr(s, ' ');
    char quoted[80];
    if (!space || strchr(space + 1, ' '))
        return kn_error(KN_EFORMAT, "%s: model.merges[%d] %s is not two tokens separated by one space", path, index,
                        utf8_quote(quoted, sizeof quoted, s));
    size_t len = strlen(s);
    if (len + 1 > buf_cap) return kn_error(KN_EFORMAT, "%s: model.merges[%d] is too long", path, index);
    memcpy(buf, s, len + 1);
    buf[space - s] = '\0';
    *left = buf;
    *right = buf + (space - s) + 1;
    return KN_OK;
}

static int load_merges(Bpe *bpe, const cJSON *merges, const char *path) {
    if (!cJSON_IsArray(merges)) return kn_error(KN_EFORMAT, "%s: model.merges is missing or not an array", path);
    int n = cJSON_GetArraySize(merges);
    bpe->merge_mask = table_size_for((size_t)n) - 1;
    bpe->merge_slots = malloc((bpe->merge_mask + 1) * sizeof *bpe->merge_slots);
    size_t longest = 0;
    for (int32_t id = 0; id < bpe->n_vocab; id++)
        if (token_len(bpe, id) > longest) longest = token_len(bpe, id);
    /* A merge is two tokens of the vocab, so a longer line cannot be valid; 2 * longest + 2 is enough
     * to hold it for the lookup, and the joined string too. */
    size_t buf_cap = 2 * longest + 2;
    char *buf = malloc(buf_cap), *joined = malloc(buf_cap);
    int rc = KN_OK;
    if (!bpe->merge_slots || !buf || !joined) {
        rc = kn_error(KN_ENOMEM, "%s: out of memory for %d merges", path, n);
        goto done;
    }
    for (size_t i = 0; i <= bpe->merge_mask; i++) bpe->merge_slots[i].pair = EMPTY_PAIR;
    /* tokenizers skips "#version" lines of the string format and ranks the remaining merges in order. */
    uint32_t rank = 0;
    int index = 0;
    const cJSON *merge;
    cJSON_ArrayForEach(merge, merges) {
        if (cJSON_IsString(merge) && strncmp(merge->valuestring, "#version", 8) == 0) {
            index++;
            continue;
        }
        const char *left = NULL, *right = NULL;
        rc = merge_sides(merge, index, path, buf, buf_cap, &left, &right);
        if (rc) goto done;
        size_t left_len = strlen(left), right_len = strlen(right);
        int32_t left_id = bpe_token_to_id(bpe, left, left_len);
        int32_t right_id = bpe_token_to_id(bpe, right, right_len);
        int32_t new_id = -1;
        if (left_id >= 0 && right_id >= 0) {
            memcpy(joined, left, left_len);
            memcpy(joined + left_len, right, right_len);
            new_id = bpe_token_to_id(bpe, joined, left_len + right_len);
        }
        if (new_id < 0) {
            const char *missing = left_id < 0 ? left : right_id < 0 ? right : NULL;
            char quoted[80];
            if (missing) {
                rc = kn_error(KN_EFORMAT, "%s: model.merges[%d] names the token %s, which is not in the vocab", path,
                              index, utf8_quote(quoted, sizeof quoted, missing));
            } else {
                joined[left_len + right_len] = '\0';
                rc = kn_error(KN_EFORMAT, "%s: model.merges[%d] makes %s, which is not in the vocab", path, index,
                              utf8_quote(quoted, sizeof quoted, joined));
            }
            goto done;
        }
        uint64_t pair = (uint64_t)(uint32_t)left_id << 32 | (uint32_t)right_id;
        size_t i = pair_slot(pair, bpe->merge_mask);
        while (bpe->merge_slots[i].pair != EMPTY_PAIR && bpe->merge_slots[i].pair != pair)
            i = (i + 1) & bpe->merge_mask;
        /* A pair listed twice keeps its later rank, as tokenizers' HashMap does. */
        bpe->merge_slots[i] = (MergeSlot){pair, rank, new_id};
        rank++;
        index++;
    }
done:
    free(buf);
    free(joined);
    return rc;
}

/* ---- settings ---- */

/* A model setting that must be absent, null, false or "": anything else is something we do not do. */
static int require_unset(const cJSON *model, const char *key, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsString(v) && v->valuestring[0] == '\0') ||
        (cJSON_IsNumber(v) && v->valuedouble == 0 && strcmp(key, "dropout") == 0))
        return KN_OK;
    return kn_error(KN_EFORMAT, "%s: model.%s is set, which is not supported (only plain BPE)", path, key);
}

int bpe_from_json(Bpe **out, const cJSON *model, const char *path) {
    *out = NULL;
    if (!cJSON_IsObject(model)) return kn_error(KN_EFORMAT, "%s: \"model\" is missing or not an object", path);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(type)) return kn_error(KN_EFORMAT, "%s: model has no \"type\"", path);
    if (strcmp(type->valuestring, "BPE") != 0)
        return kn_error(KN_EFORMAT, "%s: model type %s is not supported (only BPE)", path, type->valuestring);
    static const char *const unsupported[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix",
                                              "fuse_unk", "byte_fallback", "ignore_merges"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        int rc = require_unset(model, unsupported[i], path);
        if (rc) return rc;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (!cJSON_IsString(unk))
        return kn_error(KN_EFORMAT, "%s: model.unk_token is missing or not a string (a BPE without one is not supported)",
                        path);

    Bpe *bpe = calloc(1, sizeof *bpe);
    if (!bpe) return kn_error(KN_ENOMEM, "%s: out of memory", path);
    int rc = load_vocab(bpe, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path);
    if (rc == KN_OK) rc = index_characters(bpe, path);
    if (rc == KN_OK) rc = load_merges(bpe, cJSON_GetObjectItemCaseSensitive(model, "merges"), path);
    if (rc == KN_OK) {
        bpe->unk_id = bpe_token_to_id(bpe, unk->valuestring, strlen(unk->valuestring));
        char quoted[80];
        if (bpe->unk_id < 0)
            rc = kn_error(KN_EFORMAT, "%s: model.unk_token %s is not in the vocab", path,
                          utf8_quote(quoted, sizeof quoted, unk->valuestring));
    }
    if (rc == KN_OK) {
        bpe->cache = aligned_alloc(64, CACHE_LINES * sizeof *bpe->cache);
        if (!bpe->cache) rc = kn_error(KN_ENOMEM, "%s: out of memory", path);
        else
            for (size_t i = 0; i < CACHE_LINES; i++) atomic_init(&bpe->cache[i].state, CACHE_EMPTY);
    }
    if (rc) {
        bpe_free(bpe);
        return rc;
    }
    *out = bpe;
    return KN_OK;
}

void bpe_free(Bpe *bpe) {
    if (!bpe) return;
    free(bpe->cache);
    free(bpe->strings);
    free(bpe->offsets);
    free(bpe->vocab_slots);
    free(bpe->merge_slots);
    free(bpe->bmp_ids);
    free(bpe);
}

/* ---- the word cache ---- */

/* The two lines of the bucket of a word's hash. */
static CacheLine *cache_bucket(const Bpe *bpe, uint64_t hash) { return &bpe->cache[hash & (CACHE_LINES - 2)]; }

static uint16_t cache_tag(uint64_t hash) { return (uint16_t)(hash >> 48); }

static const CacheLine *cache_find(const Bpe *bpe, const char *word, size_t len, uint64_t hash) {
    const CacheLine *bucket = cache_bucket(bpe, hash);
    for (int k = 0; k < 2; k++) {
        const CacheLine *line = &bucket[k];
        if (atomic_load_explicit(&line->state, memory_order_acquire) == CACHE_READY && line->tag == cache_tag(hash) &&
            line->word_len == len && memcmp(line->word, word, len) == 0)
            return line;
    }
    return NULL;
}

static void cache_add(const Bpe *bpe, const char *word, size_t len, uint64_t hash, const int32_t *ids, size_t n_ids) {
    if (len > CACHE_WORD_MAX || n_ids > CACHE_IDS_MAX) return;
    CacheLine *bucket = cache_bucket(bpe, hash);
    for (int k = 0; k < 2; k++) {
        CacheLine *line = &bucket[k];
        uint32_t expected = CACHE_EMPTY;
        if (!atomic_compare_exchange_strong_explicit(&line->state, &expected, CACHE_WRITING, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        line->word_len = (uint8_t)len;
        line->n_ids = (uint8_t)n_ids;
        line->tag = cache_tag(hash);
        memcpy(line->ids, ids, n_ids * sizeof *ids);
        memcpy(line->word, word, len);
        atomic_store_explicit(&line->state, CACHE_READY, memory_order_release);
        return;
    }
}

/* ---- encoding ---- */

void bpe_scratch_free(BpeScratch *scratch) {
    free(scratch->symbols);
    free(scratch->heap);
    *scratch = (BpeScratch){0};
}

static void heap_push(uint64_t *heap, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && heap[(i - 1) / 2] > v) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = v;
}

static uint64_t heap_pop(uint64_t *heap, size_t *n) {
    uint64_t top = heap[0], last = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= last) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n) heap[i] = last;
    return top;
}

/* A candidate merge at symbol pos: ordered by rank, then by position (leftmost first). */
static uint64_t candidate(uint32_t rank, int32_t pos) { return (uint64_t)rank << 32 | (uint32_t)pos; }

static int32_t char_id(const Bpe *bpe, const char *s, size_t len, uint32_t cp) {
    int32_t id = cp < 0x10000 ? bpe->bmp_ids[cp] : bpe_token_to_id(bpe, s, len);
    return id >= 0 ? id : bpe->unk_id;
}

static int reserve_scratch(BpeScratch *sc, size_t n) {
    if (n <= sc->cap) return KN_OK;
    size_t cap = sc->cap ? sc->cap : 64;
    while (cap < n) cap *= 2;
    free(sc->symbols);
    free(sc->heap);
    sc->symbols = malloc(cap * sizeof *sc->symbols);
    /* Each merge pushes at most two candidates and removes a symbol: 3n bounds the heap. */
    sc->heap = malloc(3 * cap * sizeof *sc->heap);
    if (!sc->symbols || !sc->heap) {
        bpe_scratch_free(sc);
        return kn_error(KN_ENOMEM, "bpe: out of memory for a word of %zu characters", n);
    }
    sc->cap = cap;
    return KN_OK;
}

/* Merging with a heap of candidates, as tokenizers' Word::merge_all does: O(n log n) for long words. */
static void merge_by_heap(const Bpe *bpe, struct BpeSymbol *sym, int32_t n, uint64_t *heap) {
    size_t heap_len = 0;
    for (int32_t i = 0; i + 1 < n; i++) {
        const MergeSlot *m = find_merge(bpe, sym[i].id, sym[i + 1].id);
        if (m) heap_push(heap, &heap_len, candidate(m->rank, i));
    }
    while (heap_len > 0) {
        uint64_t top = heap_pop(heap, &heap_len);
        int32_t pos = (int32_t)(uint32_t)top;
        uint32_t rank = (uint32_t)(top >> 32);
        int32_t right = sym[pos].next;
        if (sym[pos].len == 0 || right < 0) continue;
        /* Stale when the pair at pos is no longer the one pushed; a pair has a single rank. */
        const MergeSlot *m = find_merge(bpe, sym[pos].id, sym[right].id);
        if (!m || m->rank != rank) continue;
        sym[pos].id = m->new_id;
        sym[pos].len += sym[right].len;
        sym[pos].next = sym[right].next;
        sym[right].len = 0;
        if (sym[pos].next >= 0) sym[sym[pos].next].prev = pos;
        int32_t prev = sym[pos].prev, next = sym[pos].next;
        if (prev >= 0 && (m = find_merge(bpe, sym[prev].id, sym[pos].id)))
            heap_push(heap, &heap_len, candidate(m->rank, prev));
        if (next >= 0 && (m = find_merge(bpe, sym[pos].id, sym[next].id)))
            heap_push(heap, &heap_len, candidate(m->rank, pos));
    }
}

/* The same merges for short words: each symbol remembers the merge of the pair it starts, and the
 * lowest rank (leftmost among equals) is found by a scan. It gives what the heap gives, with fewer
 * lookups: a merge looks up only the two pairs it creates. */
static void merge_by_scan(const Bpe *bpe, struct BpeSymbol *sym, int32_t n) {
    for (int32_t i = 0; i + 1 < n; i++) sym[i].merge = find_merge(bpe, sym[i].id, sym[i + 1].id);
    for (;;) {
        int32_t best = -1;
        uint32_t best_rank = UINT32_MAX;
        for (int32_t i = 0; i >= 0; i = sym[i].next)
            if (sym[i].merge && sym[i].merge->rank < best_rank) {
                best = i;
                best_rank = sym[i].merge->rank;
            }
        if (best < 0) return;
        int32_t right = sym[best].next, next = sym[right].next, prev = sym[best].prev;
        sym[best].id = sym[best].merge->new_id;
        sym[best].len += sym[right].len;
        sym[best].next = next;
        sym[right].len = 0;
        if (next >= 0) sym[next].prev = best;
        sym[best].merge = next >= 0 ? find_merge(bpe, sym[best].id, sym[next].id) : NULL;
        if (prev >= 0) sym[prev].merge = find_merge(bpe, sym[prev].id, sym[best].id);
    }
}

int bpe_encode_word(const Bpe *bpe, const char *word, size_t len, IdVec *out, BpeScratch *sc) {
    assert(len > 0);
    uint64_t hash = 0;
    if (len <= CACHE_WORD_MAX) {
        hash = hash_bytes(word, len);
        const CacheLine *hit = cache_find(bpe, word, len, hash);
        if (hit) {
            int rc = idvec_reserve(out, hit->n_ids);
            if (rc) return rc;
            memcpy(out->data + out->len, hit->ids, hit->n_ids * sizeof *hit->ids);
            out->len += hit->n_ids;
            return KN_OK;
        }
    }
    if (len > INT32_MAX) return kn_error(KN_EINVAL, "bpe: a word of %zu bytes is too long", len);
    int rc = reserve_scratch(sc, len);
    if (rc) return rc;
    struct BpeSymbol *sym = sc->symbols;
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t clen = utf8_decode_valid((const uint8_t *)word + i, &cp);
        sym[n] = (struct BpeSymbol){char_id(bpe, word + i, clen, cp), n - 1, n + 1, (uint32_t)clen, NULL};
        n++;
        i += clen;
    }
    sym[n - 1].next = -1;
    if (n <= SCAN_MAX_SYMBOLS) merge_by_scan(bpe, sym, n);
    else merge_by_heap(bpe, sym, n, sc->heap);

    size_t start = out->len, count = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next) count++;
    rc = idvec_reserve(out, count);
    if (rc) return rc;
    for (int32_t i = 0; i >= 0; i = sym[i].next) out->data[out->len++] = sym[i].id;
    if (len <= CACHE_WORD_MAX) cache_add(bpe, word, len, hash, out->data + start, count);
    return KN_OK;
}
