/* fuzz_torchzip.c — the zip directory reader (src/model/torchzip.c) on arbitrary archive images: every entry
 * it lists must lie inside the image, be found again by name, and be readable to its last byte. */
#include "fuzz.h"
#include "model/torchzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    TorchZip zip;
    int rc = torchzip_open(&zip, data, size, "fuzz.zip");
    fuzz_check_error(rc);
    if (rc != KN_OK) return 0;
    for (size_t i = 0; i < zip.count; i++) {
        const ZipEntry *e = &zip.entries[i];
        FUZZ_ASSERT(e->name != NULL);
        FUZZ_ASSERT(torchzip_find(&zip, e->name) == e);
        if (i > 0) FUZZ_ASSERT(strcmp(zip.entries[i - 1].name, e->name) < 0);
        if (e->size > 0) {
            FUZZ_ASSERT(e->data >= data && e->size <= size && (size_t)(e->data - data) <= size - e->size);
            volatile uint8_t sink = e->data[0] ^ e->data[e->size - 1];
            (void)sink;
        }
        const ZipEntry *got;
        rc = torchzip_get(&zip, e->name, 1, &got);
        fuzz_check_error(rc);
        if (rc == KN_OK) FUZZ_ASSERT(got == e);
    }
    torchzip_close(&zip);
    return 0;
}
