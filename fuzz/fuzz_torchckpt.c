/* fuzz_torchckpt.c — the PyTorch zip checkpoint reader (src/model/torchckpt.c: zip, then the data.pkl pickle,
 * then the state dict's tensors against their storages) on arbitrary file images. The fuzz build skips the
 * CRC-32 check of data.pkl (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION in torchzip.c), or almost every mutation
 * of the pickle would stop at the checksum. */
#include "fuzz_tensors.h"
#include "model/torchckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    TensorList list = {0};
    int rc = torchckpt_read(&list, data, size, "fuzz.bin");
    fuzz_check_error(rc);
    if (rc == KN_OK) fuzz_check_tensors(&list, data, size);
    tensorlist_free(&list);
    return 0;
}
