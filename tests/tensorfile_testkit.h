/* tensorfile_testkit.h — what test_tensorfile.c and test_torchckpt.c share: a scratch folder, a byte
 * builder, the check that a refusal names the file, and the seeded mutations of the fuzz loops. Everything
 * is static inline so that each test program uses what it needs without unused-function warnings. */
#ifndef KN_TENSORFILE_TESTKIT_H
#define KN_TENSORFILE_TESTKIT_H

#include "model/tensorfile.h"
#include "util/error.h"
#include "util/file.h"

#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#define TINY "tests/data/tiny-random/"
#define FIX "tests/data/tensorfile/"
#define LEGACY "tests/data/legacy/"

static char tmpdir[64];

static inline int tmpdir_create(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tensorfile.XXXXXX");
    if (mkdtemp(tmpdir)) return 0;
    perror("mkdtemp");
    return -1;
}

/* The folder holds only the plain files the tests wrote. */
static inline void tmpdir_remove(void) {
    DIR *d = opendir(tmpdir);
    char path[512];
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    if (rmdir(tmpdir) != 0) fprintf(stderr, "%s: left behind\n", tmpdir);
}

/* A path in the scratch folder; the 4 buffers are reused in turn, so copy one that must live long. */
static inline const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int turn;
    char *p = buf[turn++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static inline void write_file(const char *path, const void *data, size_t len) {
    if (file_write_atomic(path, data, len) != KN_OK) {
        fprintf(stderr, "cannot write %s: %s\n", path, kn_errmsg());
        abort();
    }
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

static inline void put(Buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void put_le(Buf *b, uint64_t v, int width) {
    for (int i = 0; i < width; i++) {
        uint8_t byte = (uint8_t)(v >> (8 * i));
        put(b, &byte, 1);
    }
}

static inline void put_str(Buf *b, const char *s) { put(b, s, strlen(s)); }

/* tensorfile_open(path) must fail with code and a one-line message naming path and saying needle. */
static inline void expect_failure(const char *path, int code, const char *needle) {
    TensorFile *tf = (TensorFile *)1;
    int rc = tensorfile_open(&tf, path);
    CHECK_MSG(rc == code, "%s: got %d (%s), want %d", path, rc, kn_errmsg(), code);
    CHECK(tf == NULL);
    CHECK_MSG(strstr(kn_errmsg(), path) && strstr(kn_errmsg(), needle) && !strchr(kn_errmsg(), '\n'),
              "message \"%s\" should name %s and say \"%s\"", kn_errmsg(), path, needle);
    if (rc == KN_OK) tensorfile_close(tf);
}

/* ---- random corruption: every mutant loads or fails cleanly ---- */

static uint64_t rng_state;

static inline uint64_t rng(void) {   /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Structure sits in the first and last few KiB of a checkpoint (safetensors header; data.pkl, central
 * directory); the rest is mostly tensor bytes, where a mutation proves little. */
static inline size_t pick_position(size_t len) {
    uint64_t r = rng();
    if (len <= 16384 || r % 10 == 0) return (size_t)(rng() % len);
    return r % 2 ? (size_t)(rng() % 4096) : len - 1 - (size_t)(rng() % 4096);
}

/* Mutates buf[0..len) in place at 1-4 places; records them in at[] (returns how many). */
static inline int mutate(uint8_t *buf, size_t len, size_t *at) {
    static const uint32_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000u, 0xffffffffu, 46, 64};
    int n = 1 + (int)(rng() % 4);
    for (int i = 0; i < n; i++) {
        size_t pos = at[i] = pick_position(len);
        switch (rng() % 4) {
        case 0: buf[pos] ^= (uint8_t)(1u << (rng() % 8)); break;
        case 1: buf[pos] = (uint8_t)rng(); break;
        case 2: buf[pos] = (rng() % 2) ? 0 : 0xff; break;
        default: {
            uint32_t v = interesting[rng() % (sizeof interesting / sizeof interesting[0])];
            for (int k = 0; k < 4 && pos + (size_t)k < len; k++) buf[pos + (size_t)k] = (uint8_t)(v >> (8 * k));
        }
        }
    }
    return n;
}

/* TENSORFILE_FUZZ_ROUNDS=100000 TENSORFILE_FUZZ_SEED=n gives a deeper run than the suite's. */
static inline int fuzz_rounds(void) {
    const char *s = getenv("TENSORFILE_FUZZ_ROUNDS");
    return s && atoi(s) > 0 ? atoi(s) : 2000;
}

static inline uint64_t fuzz_seed(uint64_t n) {
    const char *s = getenv("TENSORFILE_FUZZ_SEED");
    return (s ? strtoull(s, NULL, 10) * 1000 : 0) + n;
}

#endif
