/* file.h — whole-file reads, read-only memory maps and atomic writes, with errors that name the file. */
#ifndef KN_FILE_H
#define KN_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads the whole file into a fresh malloc'd buffer with a NUL byte after the end (not counted in *len).
 * The caller frees *out. */
int file_read_all(const char *path, char **out, size_t *len);

/* A read-only memory map of a whole file. An empty file maps to data == NULL, size == 0. */
typedef struct {
    const uint8_t *data;
    size_t size;
} FileMap;

int file_map(FileMap *map, const char *path);
void file_unmap(FileMap *map);

/* Writes len bytes to path through path.tmp + fsync + rename, so that readers see the old file or the
 * new one, never a half-written one. */
int file_write_atomic(const char *path, const void *data, size_t len);

/* write(2) of all len bytes, retrying short writes and EINTR; errors name path. */
int file_write_full(int fd, const void *data, size_t len, const char *path);

/* pread(2) of exactly len bytes at offset; a short read is a KN_EFORMAT "truncated" error naming path. */
int file_pread_full(int fd, void *data, size_t len, uint64_t offset, const char *path);

/* 1 if path exists (any type), 0 if not. */
int file_exists(const char *path);

/* mkdir -p for one directory path (parents included). */
int file_mkdirs(const char *path);

/* snprintf into a fixed buffer; KN_EINVAL when it does not fit (so no path is ever silently cut). */
int path_join(char *out, size_t cap, const char *dir, const char *name);

#endif
