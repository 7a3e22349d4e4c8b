/* npy.h — NumPy .npy files (format 1.0/2.0/3.0), so that numpy.load(path, mmap_mode="r") opens what we write
 * and we open what NumPy writes.
 *
 * Files we write have a header of a fixed size (NPY_HEADER_BYTES, a multiple of 64 as NumPy aligns it), so a
 * file that grows (the datastore) can have its shape rewritten in place without moving the data. Reading
 * memory-maps the data: nothing is copied. */
#ifndef KN_NPY_H
#define KN_NPY_H

#include <stddef.h>
#include <stdint.h>

typedef enum { NPY_F32, NPY_F16, NPY_F64, NPY_I32, NPY_I64, NPY_U8 } NpyDtype;

#define NPY_MAX_DIMS 4
#define NPY_HEADER_BYTES 128

typedef struct {
    NpyDtype dtype;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;              /* product of shape (1 for a 0-d array) */
    const void *data;           /* first element; 16-byte aligned for our files and NumPy's */
    size_t data_offset;         /* bytes before the data (the header) */
    /* private */
    void *map_;
    size_t map_len_;
} NpyArray;

/* Maps path read-only and validates the header: magic, version, little-endian descr of a supported dtype,
 * C order, shape, and a file size that holds exactly the data. Errors name the file. */
int npy_map(NpyArray *arr, const char *path);
void npy_unmap(NpyArray *arr);

/* Writes a whole array at once (path.tmp, fsync, rename). */
int npy_write(const char *path, NpyDtype dtype, int ndim, const int64_t *shape, const void *data);

/* Formats the NPY_HEADER_BYTES-byte header (magic, version 1.0, dict, space padding, '\n') into out. */
int npy_header(uint8_t out[NPY_HEADER_BYTES], NpyDtype dtype, int ndim, const int64_t *shape);

size_t npy_dtype_size(NpyDtype dtype);
/* "<f4"-style descr. */
const char *npy_dtype_descr(NpyDtype dtype);

#endif
