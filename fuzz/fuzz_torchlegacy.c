/* fuzz_torchlegacy.c — the legacy (pre-1.6, non-zip) PyTorch checkpoint reader (src/model/torchlegacy.c: the
 * magic number, protocol and sys_info pickles, the state dict's pickle, the storage key list, then each
 * storage's count and bytes) on arbitrary file images. Seeds: tests/data/legacy's p2.bin and p4.bin. */
#include "fuzz_tensors.h"
#include "model/torchlegacy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    TensorList list = {0};
    int rc = torchlegacy_read(&list, data, size, "fuzz.bin");
    fuzz_check_error(rc);
    if (rc == KN_OK) fuzz_check_tensors(&list, data, size);
    tensorlist_free(&list);
    return 0;
}
