/* file.c — see file.h. */
#include "util/file.h"

#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kn_error_errno("%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = kn_error_errno("%s: cannot stat", path);
        close(fd);
        return rc;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return kn_error(KN_EINVAL, "%s: is a directory, expected a file", path);
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return kn_error(KN_ENOMEM, "%s: out of memory reading %zu bytes", path, cap);
    }
    for (;;) {
        if (n + 1 >= cap) { /* a pipe, or a file that grew: double */
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                close(fd);
                return kn_error(KN_ENOMEM, "%s: out of memory reading", path);
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int rc = kn_error_errno("%s: read failed", path);
            free(buf);
            close(fd);
            return rc;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return KN_OK;
}

int file_map(FileMap *map, const char *path) {
    map->data = NULL;
    map->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kn_error_errno("%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = kn_error_errno("%s: cannot stat", path);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return kn_error(KN_EINVAL, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int rc = kn_error_errno("%s: mmap failed", path);
            close(fd);
            return rc;
        }
        map->data = p;
        map->size = (size_t)st.st_size;
    }
    close(fd);
    return KN_OK;
}

void file_unmap(FileMap *map) {
    if (map->data) munmap((void *)map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

int file_write_full(int fd, const void *data, size_t len, const char *path) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return kn_error_errno("%s: write failed", path);
        p += w;
        len -= (size_t)w;
    }
    return KN_OK;
}

int file_pread_full(int fd, void *data, size_t len, uint64_t offset, const char *path) {
    char *p = data;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return kn_error_errno("%s: read failed", path);
        if (r == 0) return kn_error(KN_EFORMAT, "%s: truncated (ends before byte %llu)", path, (unsigned long long)offset);
        p += r;
        len -= (size_t)r;
        offset += (uint64_t)r;
    }
    return KN_OK;
}

int file_temp_path(char *out, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    if (*base == '\0') return kn_error(KN_EINVAL, "%s: not a file name", path);
    int n = snprintf(out, cap, "%.*s.%s.tmp.%ld", dirlen, path, base, (long)getpid());
    if (n < 0 || (size_t)n >= cap) return kn_error(KN_EINVAL, "%s: path too long", path);
    return KN_OK;
}

int file_out_open(FileOut *o, const char *path) {
    o->f = NULL;
    o->path = path;
    o->tmp[0] = '\0';
    int rc = file_temp_path(o->tmp, sizeof o->tmp, path);
    if (rc != KN_OK) return rc;
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = kn_error_errno("%s: cannot create (as %s)", path, o->tmp);
        o->tmp[0] = '\0';
        return rc;
    }
    if (!(o->f = fdopen(fd, "wb"))) {
        rc = kn_error_errno("%s: cannot create", path);
        close(fd);
        unlink(o->tmp);
        o->tmp[0] = '\0';
    }
    return rc;
}

int file_out_write_error(const FileOut *o) { return kn_error_errno("%s: write failed", o->path); }

int file_out_commit(FileOut *o) {
    int rc = KN_OK;
    if (!o->f) return kn_error(KN_EINVAL, "%s: not open for writing", o->path);
    if (fflush(o->f) != 0 || ferror(o->f)) rc = file_out_write_error(o);
    if (rc == KN_OK && fsync(fileno(o->f)) != 0) rc = kn_error_errno("%s: fsync failed", o->path);
    if (fclose(o->f) != 0 && rc == KN_OK) rc = file_out_write_error(o);
    o->f = NULL;
    if (rc == KN_OK && rename(o->tmp, o->path) != 0) rc = kn_error_errno("%s: cannot rename %s into place", o->path, o->tmp);
    if (rc != KN_OK) unlink(o->tmp);
    o->tmp[0] = '\0';
    return rc;
}

void file_out_abort(FileOut *o) {
    if (o->f) fclose(o->f);
    o->f = NULL;
    if (o->tmp[0]) unlink(o->tmp);
    o->tmp[0] = '\0';
}

int file_write_atomic(const char *path, const void *data, size_t len) {
    FileOut o;
    int rc = file_out_open(&o, path);
    if (rc != KN_OK) return rc;
    if (len > 0 && fwrite(data, 1, len, o.f) != len) {
        rc = file_out_write_error(&o);
        file_out_abort(&o);
        return rc;
    }
    return file_out_commit(&o);
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int file_mkdirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return kn_error(KN_EINVAL, "%s: bad directory path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return kn_error_errno("%s: cannot create directory", buf);
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return kn_error(KN_EINVAL, "%s: exists and is not a directory", path);
    return KN_OK;
}

int path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return kn_error(KN_EINVAL, "%s/%s: path too long", dir, name);
    return KN_OK;
}
