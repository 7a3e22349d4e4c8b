/* npy.c — see npy.h. Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 * "\x93NUMPY", major, minor, header length (u16 for 1.0, u32 for 2.0/3.0), then a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with spaces and ended by '\n'. */
#include "util/npy.h"

#include "util/error.h"
#include "util/file.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    NpyDtype dtype;
    const char *descr;
    size_t size;
} dtypes[] = {
    {NPY_F32, "<f4", 4}, {NPY_F16, "<f2", 2}, {NPY_F64, "<f8", 8},
    {NPY_I32, "<i4", 4}, {NPY_I64, "<i8", 8}, {NPY_U8, "|u1", 1},
};

size_t npy_dtype_size(NpyDtype dtype) { return dtypes[dtype].size; }
const char *npy_dtype_descr(NpyDtype dtype) { return dtypes[dtype].descr; }

int npy_header(uint8_t out[NPY_HEADER_BYTES], NpyDtype dtype, int ndim, const int64_t *shape) {
    char dict[NPY_HEADER_BYTES];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", dtypes[dtype].descr);
    for (int i = 0; i < ndim && n < (int)sizeof dict; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, ndim == 1 ? "%lld,), }" : i + 1 < ndim ? "%lld, " : "%lld), }",
                      (long long)shape[i]);
    if (ndim == 0 && n < (int)sizeof dict) n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    const int prefix = 10; /* magic(6) + version(2) + u16 length(2) */
    if (n < 0 || prefix + n + 1 > NPY_HEADER_BYTES) return kn_error(KN_EINVAL, "npy header for this shape does not fit in %d bytes", NPY_HEADER_BYTES);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    uint16_t hlen = NPY_HEADER_BYTES - prefix;
    out[8] = (uint8_t)(hlen & 0xff);
    out[9] = (uint8_t)(hlen >> 8);
    memset(out + prefix, ' ', NPY_HEADER_BYTES - prefix);
    memcpy(out + prefix, dict, (size_t)n);
    out[NPY_HEADER_BYTES - 1] = '\n';
    return KN_OK;
}

/* Finds 'key': in the dict text and returns a pointer just past the colon and spaces, or NULL. */
static const char *dict_value(const char *dict, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(dict, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int parse_header(NpyArray *arr, const char *dict, const char *path) {
    const char *v = dict_value(dict, "descr");
    if (!v || *v != '\'') return kn_error(KN_EFORMAT, "%s: npy header has no 'descr'", path);
    v++;
    const char *end = strchr(v, '\'');
    if (!end) return kn_error(KN_EFORMAT, "%s: npy header 'descr' is not terminated", path);
    int found = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        size_t len = strlen(dtypes[i].descr);
        /* '|u1' and '<u1' are the same thing; NumPy writes '|' for single bytes */
        if ((size_t)(end - v) == len && (strncmp(v, dtypes[i].descr, len) == 0 || (len == 3 && dtypes[i].size == 1 && strncmp(v + 1, dtypes[i].descr + 1, 2) == 0))) {
            arr->dtype = dtypes[i].dtype;
            found = 1;
        }
    }
    if (!found) return kn_error(KN_EFORMAT, "%s: unsupported npy dtype '%.*s' (expected one of <f4 <f2 <f8 <i4 <i8 |u1, little-endian)", path, (int)(end - v), v);
    v = dict_value(dict, "fortran_order");
    if (!v) return kn_error(KN_EFORMAT, "%s: npy header has no 'fortran_order'", path);
    if (strncmp(v, "False", 5) != 0) return kn_error(KN_EFORMAT, "%s: Fortran-ordered arrays are not supported (save with C order)", path);
    v = dict_value(dict, "shape");
    if (!v || *v != '(') return kn_error(KN_EFORMAT, "%s: npy header has no 'shape' tuple", path);
    v++;
    arr->ndim = 0;
    arr->numel = 1;
    for (;;) {
        while (*v == ' ') v++;
        if (*v == ')') break;
        if (!isdigit((unsigned char)*v)) return kn_error(KN_EFORMAT, "%s: malformed npy shape", path);
        if (arr->ndim == NPY_MAX_DIMS) return kn_error(KN_EFORMAT, "%s: npy array has more than %d dimensions", path, NPY_MAX_DIMS);
        char *after;
        long long d = strtoll(v, &after, 10);
        if (d < 0 || d > ((int64_t)1 << 48)) return kn_error(KN_EFORMAT, "%s: npy shape %lld out of range", path, d);
        arr->shape[arr->ndim++] = d;
        if (d != 0 && arr->numel > INT64_MAX / d) return kn_error(KN_EFORMAT, "%s: npy shape overflows", path);
        arr->numel *= d;
        v = after;
        while (*v == ' ') v++;
        if (*v == ',') v++;
        else if (*v != ')') return kn_error(KN_EFORMAT, "%s: malformed npy shape", path);
    }
    return KN_OK;
}

int npy_map(NpyArray *arr, const char *path) {
    memset(arr, 0, sizeof *arr);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kn_error_errno("%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kn_error(KN_EINVAL, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    uint8_t pre[12];
    if (size < 10 || file_pread_full(fd, pre, 10, 0, path) != KN_OK || memcmp(pre, "\x93NUMPY", 6) != 0) {
        close(fd);
        return kn_error(KN_EFORMAT, "%s: not a .npy file (bad magic)", path);
    }
    size_t hlen, prefix;
    if (pre[6] == 1) {
        prefix = 10;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (size < 12 || file_pread_full(fd, pre, 12, 0, path) != KN_OK) {
            close(fd);
            return kn_error(KN_EFORMAT, "%s: truncated .npy header", path);
        }
        prefix = 12;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        close(fd);
        return kn_error(KN_EFORMAT, "%s: unsupported .npy version %d.%d", path, pre[6], pre[7]);
    }
    if (hlen > 1 << 20 || prefix + hlen > size) {
        close(fd);
        return kn_error(KN_EFORMAT, "%s: truncated .npy header (%zu bytes declared, file has %zu)", path, hlen, size);
    }
    char *dict = malloc(hlen + 1);
    if (!dict) {
        close(fd);
        return kn_error(KN_ENOMEM, "%s: out of memory", path);
    }
    int rc = file_pread_full(fd, dict, hlen, prefix, path);
    if (rc == KN_OK) {
        dict[hlen] = '\0';
        rc = parse_header(arr, dict, path);
    }
    free(dict);
    if (rc != KN_OK) {
        close(fd);
        return rc;
    }
    arr->data_offset = prefix + hlen;
    /* numel fits in int64 but its byte count may not: (2^48, 2^13) of <f8 would wrap to 0 bytes */
    if ((uint64_t)arr->numel > SIZE_MAX / dtypes[arr->dtype].size) {
        close(fd);
        return kn_error(KN_EFORMAT, "%s: npy shape overflows", path);
    }
    size_t want = (size_t)arr->numel * dtypes[arr->dtype].size;
    if (size - arr->data_offset != want) {
        close(fd);
        return kn_error(KN_EFORMAT, "%s: holds %zu data bytes but its shape needs %zu (truncated or corrupt)", path,
                        size - arr->data_offset, want);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return kn_error_errno("%s: mmap failed", path);
    arr->map_ = map;
    arr->map_len_ = size;
    arr->data = (const uint8_t *)map + arr->data_offset;
    return KN_OK;
}

void npy_unmap(NpyArray *arr) {
    if (arr->map_) munmap(arr->map_, arr->map_len_);
    memset(arr, 0, sizeof *arr);
}

int npy_write(const char *path, NpyDtype dtype, int ndim, const int64_t *shape, const void *data) {
    uint8_t header[NPY_HEADER_BYTES];
    int rc = npy_header(header, dtype, ndim, shape);
    if (rc != KN_OK) return kn_error_wrap(rc, "%s", path);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    FileOut o;
    rc = file_out_open(&o, path);
    if (rc != KN_OK) return rc;
    size_t bytes = numel * dtypes[dtype].size;
    if (fwrite(header, 1, sizeof header, o.f) != sizeof header || (bytes > 0 && fwrite(data, 1, bytes, o.f) != bytes)) {
        rc = file_out_write_error(&o);
        file_out_abort(&o);
        return rc;
    }
    return file_out_commit(&o);
}
