/* fuzz_tensors.h — checks on what a checkpoint reader (safetensors, torch zip) accepted: every tensor lies
 * inside the file image, its byte count matches its shape, and its bytes can all be read (ASan catches a
 * pointer past the fuzzer's buffer). */
#ifndef KN_FUZZ_TENSORS_H
#define KN_FUZZ_TENSORS_H

#include "fuzz.h"
#include "model/tensorfile.h"

static inline void fuzz_check_tensors(const TensorList *list, const uint8_t *data, size_t size) {
    for (size_t i = 0; i < list->count; i++) {
        const TensorInfo *t = &list->items[i];
        FUZZ_ASSERT(t->name != NULL);
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= TENSOR_MAX_DIMS);
        uint64_t numel, nbytes;
        FUZZ_ASSERT(tensor_shape_bytes(t->dtype, t->ndim, t->shape, &numel, &nbytes) == 0);
        FUZZ_ASSERT(nbytes == t->nbytes);
        FUZZ_ASSERT(tensor_numel(t) == (int64_t)numel);
        const uint8_t *p = t->data;
        if (t->nbytes == 0) continue;
        FUZZ_ASSERT(p >= data && t->nbytes <= size && (size_t)(p - data) <= size - t->nbytes);
        volatile uint8_t sink = 0;
        for (size_t b = 0; b < t->nbytes; b++) sink ^= p[b];
        (void)sink;
        if ((t->dtype == DTYPE_F32 || t->dtype == DTYPE_F16 || t->dtype == DTYPE_BF16) && numel <= (1u << 16)) {
            float *f = malloc(numel * sizeof *f);
            FUZZ_ASSERT(f != NULL);
            FUZZ_ASSERT(tensor_to_f32(t, f) == KN_OK);
            free(f);
        }
    }
}

#endif
