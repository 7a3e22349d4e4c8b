/* fuzz_npy.c — the .npy header reader (src/util/npy.c) on arbitrary files: an array it maps must hold exactly
 * numel elements of its dtype after the header, all of them readable. */
#include "fuzz.h"
#include "util/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    NpyArray a;
    int rc = npy_map(&a, fuzz_as_file(data, size));
    fuzz_check_error(rc);
    if (rc != KN_OK) return 0;
    FUZZ_ASSERT(a.ndim >= 0 && a.ndim <= NPY_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < a.ndim; i++) {
        FUZZ_ASSERT(a.shape[i] >= 0);
        FUZZ_ASSERT(!__builtin_mul_overflow(numel, a.shape[i], &numel));
    }
    FUZZ_ASSERT(numel == a.numel);
    uint64_t nbytes;
    FUZZ_ASSERT(!__builtin_mul_overflow((uint64_t)numel, (uint64_t)npy_dtype_size(a.dtype), &nbytes));
    FUZZ_ASSERT(a.data_offset <= size && nbytes == size - a.data_offset);
    FUZZ_ASSERT(memcmp(a.data, data + a.data_offset, nbytes) == 0);
    npy_unmap(&a);
    return 0;
}
