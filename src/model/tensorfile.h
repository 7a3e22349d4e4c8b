/* tensorfile.h — named tensors of a checkpoint file, read in place from a memory map.
 *
 * Two formats, told apart by content (not by file name):
 *  - safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 *    then the raw little-endian data (safetensors.h says what is checked);
 *  - the PyTorch zip checkpoint that torch.save writes since 1.6: a zip (entries stored, not deflated)
 *    holding <archive>/data.pkl (a pickle of the state dict whose tensors refer to storages by key) and
 *    <archive>/data/<key> (the raw bytes of each storage) (torchckpt.h says what is checked).
 *  - the legacy PyTorch checkpoint (torch.save before 1.6, or with _use_new_zipfile_serialization=False):
 *    pickles and raw storages in a row (torchlegacy.h says what is checked), told apart from safetensors by
 *    its first bytes, a pickle's PROTO opcode.
 * Tensor data is never copied: TensorInfo.data points into the map and stays valid until
 * tensorfile_close(). It may be unaligned; use tensor_to_f32() to read it as floats. */
#ifndef KN_TENSORFILE_H
#define KN_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/half.h"

typedef enum {
    DTYPE_F32,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_F64,
    DTYPE_I64,
    DTYPE_I32,
    DTYPE_I16,
    DTYPE_I8,
    DTYPE_U8,
    DTYPE_BOOL,
} DType;

#define TENSOR_MAX_DIMS 8

typedef struct {
    const char *name;                 /* as stored, e.g. "transformer.h.0.attn.c_attn.weight" */
    DType dtype;
    int ndim;                         /* 0 for a scalar (numel 1) */
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;                 /* the first element, row-major and contiguous; may be unaligned */
    size_t nbytes;                    /* product(shape) * dtype_size(dtype) */
} TensorInfo;

typedef struct TensorFile TensorFile;

/* Opens and validates path: every tensor's bytes must lie inside the file, shapes must agree with byte
 * counts, names must be unique. Errors name the file and the problem (truncated header, offsets past the
 * end, a zip that is not a PyTorch checkpoint, a pickle without torch's magic number, ...). On success the caller
 * owns *out and frees it with tensorfile_close(); on failure *out is NULL. */
int tensorfile_open(TensorFile **out, const char *path);
/* Unmaps the file: every TensorInfo and data pointer of tf dies with it. NULL is a no-op. */
void tensorfile_close(TensorFile *tf);

/* The tensors in file order (safetensors: header order; pytorch: state-dict order). */
size_t tensorfile_count(const TensorFile *tf);
const TensorInfo *tensorfile_at(const TensorFile *tf, size_t i);
/* Exact-name lookup (binary search); NULL when absent. The "transformer." prefix is not guessed here:
 * a caller that accepts both spellings asks for both. */
const TensorInfo *tensorfile_find(const TensorFile *tf, const char *name);
const char *tensorfile_path(const TensorFile *tf);
/* "safetensors" or "pytorch" (zip or legacy). */
const char *tensorfile_format(const TensorFile *tf);

/* Bytes per element; "F32"-style name (the safetensors spelling). */
size_t dtype_size(DType dt);
const char *dtype_name(DType dt);

int64_t tensor_numel(const TensorInfo *t);

/* Converts all elements of a F32, F16 or BF16 tensor to float (exact widening); out holds numel floats.
 * KN_EINVAL (naming the tensor) for other dtypes. */
int tensor_to_f32(const TensorInfo *t, float *out);


/* ---- For the format readers (safetensors.c, torchckpt.c, torchlegacy.c), not for users of TensorFile. ---- */

/* The tensors a reader found, in file order; each name is a malloc'd copy owned by the list. */
typedef struct {
    TensorInfo *items;
    size_t count, cap;
} TensorList;

/* Appends info with a copy of name[0..name_len) (which must hold no NUL byte; the reader checks). */
int tensorlist_add(TensorList *list, const char *name, size_t name_len, const TensorInfo *info,
                   const char *path);
void tensorlist_free(TensorList *list);

/* product(shape) and product(shape) * dtype_size(dt), or -1 when either overflows (or a dimension is
 * negative), so that a reader never trusts a size it could not compute. */
int tensor_shape_bytes(DType dt, int ndim, const int64_t *shape, uint64_t *numel, uint64_t *nbytes);

#endif
