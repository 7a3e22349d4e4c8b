/* fuzz.h — what the libFuzzer harnesses (fuzz/fuzz_*.c) share.
 *
 * Each harness feeds one parser of outside data with the fuzzer's bytes and checks, besides "no sanitizer
 * report", the library's error contract: a failure returns a KN_E* code with a non-empty one-line message. */
#ifndef KN_FUZZ_H
#define KN_FUZZ_H

#include "util/error.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts (a crash the fuzzer reports and saves) when cond is false. */
#define FUZZ_ASSERT(cond)                                                                            \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                                 \
        }                                                                                            \
    } while (0)

/* A failed call must leave one line saying what was wrong (never an empty message, never two lines). */
static inline void fuzz_check_error(int rc) {
    if (rc == KN_OK) return;
    const char *msg = kn_errmsg();
    if (rc > 0 || msg[0] == '\0' || strchr(msg, '\n')) {
        fprintf(stderr, "fuzz: bad error (rc %d): \"%s\"\n", rc, msg);
        abort();
    }
}

/* Writes data[0..size) into *fd (a memfd, created on first use) and returns its name /proc/self/fd/N: a regular
 * file to open, fstat, read and mmap, and nothing touches the disk. */
static inline const char *fuzz_memfd(int *fd, char path[64], const uint8_t *data, size_t size) {
    if (*fd < 0) {
        *fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        FUZZ_ASSERT(*fd >= 0);
        snprintf(path, 64, "/proc/self/fd/%d", *fd);
    }
    FUZZ_ASSERT(ftruncate(*fd, 0) == 0);
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(*fd, data + done, size - done, (off_t)done);
        FUZZ_ASSERT(w > 0);
        done += (size_t)w;
    }
    return path;
}

/* The input as a file, for parsers that only take a path (one memfd, rewritten for every input). */
static inline const char *fuzz_as_file(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    return fuzz_memfd(&fd, path, data, size);
}

#endif
