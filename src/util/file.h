/* file.h — whole-file reads, read-only memory maps and atomic writes, with errors that name the file. */
#ifndef KN_FILE_H
#define KN_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* Writes len bytes to path through a temporary file + fsync + rename (see FileOut), so that readers see the
 * old file or the new one, never a half-written one. */
int file_write_atomic(const char *path, const void *data, size_t len);

/* The temporary name an output is written under before it is renamed into place: ".NAME.tmp.PID" in the
 * output's own folder (the same file system, so the rename is atomic; hidden, and with the process id so
 * that no two writers, and no file of the user's, ever share it). */
int file_temp_path(char *out, size_t cap, const char *path);

/* An output file written under file_temp_path() and renamed into place by file_out_commit() only when all
 * of it was written; file_out_abort() (or a failed commit) removes the temporary, so a failure never leaves
 * a partial file behind and never touches the file already at path. Errors name path, not the temporary. */
typedef struct {
    FILE *f;
    const char *path;          /* the caller's string; must outlive the FileOut */
    char tmp[4096];
} FileOut;

/* Creates the temporary (O_EXCL: it never replaces anything). */
int file_out_open(FileOut *o, const char *path);
/* Flushes, fsyncs and closes the temporary, then renames it to path. On any failure the temporary is removed
 * and the error ("PATH: write failed: No space left on device (disk full)") names path. */
int file_out_commit(FileOut *o);
/* Closes and removes the temporary (after a failure elsewhere). Safe on a FileOut that was never opened. */
void file_out_abort(FileOut *o);
/* After a failed fwrite/fputs on o->f: the error naming path, with errno's reason. */
int file_out_write_error(const FileOut *o);

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
