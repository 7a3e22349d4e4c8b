/* fault.c — fault injection for the tests, as SQLite does it: make the Nth allocation, write, fsync or rename
 * of the process fail, and check that the program ends with a one-line error and leaves its files whole.
 *
 * Built only in the test builds (MODE=asan and MODE=debug define KN_FAULT_INJECTION), where the Makefile links
 * with -Wl,--wrap=malloc,... : every call our objects (and Faiss's, linked statically) make to these functions
 * comes here first, while libc's own and the sanitizer's calls do not. Nothing changes unless the environment
 * says so:
 *
 *   KNNLM_FAULT=write:7          the 7th write of the process fails (alloc, write, fsync or rename)
 *   KNNLM_FAULT_REPORT=path      appends "write 7" to path when it happened, so a driver knows that N was
 *                                reached (an N past the last call is the run without a failure)
 *   KNNLM_FAULT_COUNT=path       appends the number of calls of each kind at exit: how far to drive N
 *
 * "write" counts write, pwrite, fwrite, fflush, fclose, fallocate and ftruncate on files (never on stdout or
 * stderr: the error message itself must get out); a failed write says ENOSPC (a full disk), a failed fsync
 * or rename EIO, a failed allocation ENOMEM. Counters are atomic, so threads may race for the Nth call, but a
 * single-threaded path (all of the writing is) is deterministic. */
#ifdef KN_FAULT_INJECTION
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { F_ALLOC, F_WRITE, F_FSYNC, F_RENAME, F_KINDS };
static const char *const kind_names[F_KINDS] = {"alloc", "write", "fsync", "rename"};

static unsigned long counts[F_KINDS];
static int target_kind = -1;
static unsigned long target_n;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int in_setup; /* getenv/atexit below may allocate: those calls are not counted */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
size_t __real_fwrite(const void *p, size_t size, size_t n, FILE *f);
int __real_fflush(FILE *f);
int __real_fclose(FILE *f);
int __real_fallocate(int fd, int mode, off_t off, off_t len);
int __real_ftruncate(int fd, off_t len);
int __real_fsync(int fd);
int __real_fdatasync(int fd);
int __real_rename(const char *from, const char *to);

static void append_line(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (__real_write(fd, line, strlen(line)) < 0) { /* nothing to do: a test driver will see the line missing */
    }
    close(fd);
}

static void report_counts(void) {
    const char *path = getenv("KNNLM_FAULT_COUNT");
    if (!path) return;
    char line[160];
    snprintf(line, sizeof line, "alloc %lu write %lu fsync %lu rename %lu\n", __atomic_load_n(&counts[F_ALLOC], __ATOMIC_RELAXED),
             __atomic_load_n(&counts[F_WRITE], __ATOMIC_RELAXED), __atomic_load_n(&counts[F_FSYNC], __ATOMIC_RELAXED),
             __atomic_load_n(&counts[F_RENAME], __ATOMIC_RELAXED));
    append_line(path, line);
}

static void setup(void) {
    in_setup = 1;
    const char *spec = getenv("KNNLM_FAULT");
    if (spec) {
        for (int k = 0; k < F_KINDS; k++) {
            size_t len = strlen(kind_names[k]);
            if (strncmp(spec, kind_names[k], len) == 0 && spec[len] == ':') {
                target_kind = k;
                target_n = strtoul(spec + len + 1, NULL, 10);
            }
        }
    }
    if (getenv("KNNLM_FAULT_COUNT")) atexit(report_counts);
    in_setup = 0;
}

/* 1 if this call of `kind` is the one to fail. */
static int hit(int kind) {
    if (in_setup) return 0; /* before pthread_once: a call from inside setup must not wait for itself */
    pthread_once(&once, setup);
    unsigned long n = __atomic_add_fetch(&counts[kind], 1, __ATOMIC_RELAXED);
    if (kind != target_kind || n != target_n) return 0;
    const char *path = getenv("KNNLM_FAULT_REPORT");
    if (path) {
        char line[64];
        snprintf(line, sizeof line, "%s %lu\n", kind_names[kind], n);
        append_line(path, line);
    }
    return 1;
}

static int std_fd(int fd) { return fd == STDOUT_FILENO || fd == STDERR_FILENO; }
/* a stream we write to a file: not stdout or stderr, nor one opened for reading (closing it cannot fail) */
static int file_stream(FILE *f) { return f != stdout && f != stderr && __fwritable(f); }

#define FAIL_WITH(err, value) \
    do { \
        errno = (err); \
        return (value); \
    } while (0)

void *__wrap_malloc(size_t n) {
    if (hit(F_ALLOC)) FAIL_WITH(ENOMEM, NULL);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
    if (hit(F_ALLOC)) FAIL_WITH(ENOMEM, NULL);
    return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
    if (hit(F_ALLOC)) FAIL_WITH(ENOMEM, NULL);
    return __real_realloc(p, n);
}
char *__wrap_strdup(const char *s) {
    if (hit(F_ALLOC)) FAIL_WITH(ENOMEM, NULL);
    return __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n) {
    if (hit(F_ALLOC)) FAIL_WITH(ENOMEM, NULL);
    return __real_strndup(s, n);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n) {
    if (!std_fd(fd) && hit(F_WRITE)) FAIL_WITH(ENOSPC, -1);
    return __real_write(fd, buf, n);
}
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off) {
    if (!std_fd(fd) && hit(F_WRITE)) FAIL_WITH(ENOSPC, -1);
    return __real_pwrite(fd, buf, n, off);
}
size_t __wrap_fwrite(const void *p, size_t size, size_t n, FILE *f) {
    if (file_stream(f) && hit(F_WRITE)) FAIL_WITH(ENOSPC, 0);
    return __real_fwrite(p, size, n, f);
}
int __wrap_fflush(FILE *f) {
    if (f && file_stream(f) && hit(F_WRITE)) FAIL_WITH(ENOSPC, EOF);
    return __real_fflush(f);
}
int __wrap_fclose(FILE *f) {
    /* the stream is closed either way, as a real failing fclose does */
    if (file_stream(f) && hit(F_WRITE)) {
        __real_fclose(f);
        FAIL_WITH(ENOSPC, EOF);
    }
    return __real_fclose(f);
}
int __wrap_fallocate(int fd, int mode, off_t off, off_t len) {
    if (hit(F_WRITE)) FAIL_WITH(ENOSPC, -1);
    return __real_fallocate(fd, mode, off, len);
}
int __wrap_ftruncate(int fd, off_t len) {
    if (hit(F_WRITE)) FAIL_WITH(ENOSPC, -1);
    return __real_ftruncate(fd, len);
}

int __wrap_fsync(int fd) {
    if (hit(F_FSYNC)) FAIL_WITH(EIO, -1);
    return __real_fsync(fd);
}
int __wrap_fdatasync(int fd) {
    if (hit(F_FSYNC)) FAIL_WITH(EIO, -1);
    return __real_fdatasync(fd);
}

int __wrap_rename(const char *from, const char *to) {
    if (hit(F_RENAME)) FAIL_WITH(EIO, -1);
    return __real_rename(from, to);
}
#else
typedef int kn_fault_injection_unused; /* ISO C: a translation unit is not empty */
#endif
