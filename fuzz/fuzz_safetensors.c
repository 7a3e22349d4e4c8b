/* fuzz_safetensors.c — the safetensors reader (src/model/safetensors.c) on arbitrary file images. */
#include "fuzz_tensors.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    TensorList list = {0};
    int rc = safetensors_read(&list, data, size, "fuzz.safetensors");
    fuzz_check_error(rc);
    if (rc == KN_OK) fuzz_check_tensors(&list, data, size);
    tensorlist_free(&list);
    return 0;
}
