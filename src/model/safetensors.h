/* safetensors.h — the tensors of a safetensors file held in memory (https://github.com/huggingface/safetensors).
 *
 * Layout: u64 little-endian N, N bytes of UTF-8 JSON, then the data buffer. The JSON object maps each
 * tensor name to {"dtype": "F32"|"F16"|"BF16"|"F64"|"I64"|"I32"|"I16"|"I8"|"U8"|"BOOL",
 * "shape": [non-negative integers, at most TENSOR_MAX_DIMS], "data_offsets": [begin, end]}, offsets in bytes
 * from the start of the data buffer; an optional "__metadata__" maps strings to strings.
 *
 * As strict as the reference (Rust) reader, so that we accept what Hugging Face accepts and nothing it
 * refuses: N at most 100,000,000 and inside the file; the header is one JSON object (trailing spaces
 * allowed); each end - begin equals numel * dtype size (computed without overflow); and the tensors, sorted
 * by offset, tile the data buffer exactly, with no gap, no overlap and no trailing bytes. */
#ifndef KN_SAFETENSORS_H
#define KN_SAFETENSORS_H

#include "model/tensorfile.h"

#include <stddef.h>
#include <stdint.h>

/* Appends the tensors of the file image data[0..size) to list (data pointers point into data).
 * path is only for messages. On error the list may hold some tensors; the caller frees it. */
int safetensors_read(TensorList *list, const uint8_t *data, size_t size, const char *path);

/* The dtype named by a safetensors spelling ("F32", ...); -1 when unknown or unsupported. */
int safetensors_dtype(const char *name, DType *out);

#endif
