/* fuzz_index_meta.c — the index sidecar reader (src/index/index_meta.c) on arbitrary INDEX.meta.json text,
 * checked against a fixed datastore (the seeds are sidecars written for it, so mutations reach every check). */
#include "fuzz.h"
#include "index/index_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static DstoreManifest m;
    if (!m.key[0]) {
        strcpy(m.key, "last_ffn_input");
        strcpy(m.weights_hash, "0123456789abcdef0123456789abcdef");
        strcpy(m.keys_hash, "fedcba9876543210fedcba9876543210");
    }
    /* NUL-terminated, as file_read_all gives it to dstore_index_open */
    char *text = malloc(size + 1);
    FUZZ_ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    int rc = index_meta_check(text, size, "INDEX.meta.json", "INDEX", &m, 1000, 768);
    free(text);
    fuzz_check_error(rc);
    FUZZ_ASSERT(rc == KN_OK || rc == KN_EFORMAT || rc == KN_EMISMATCH);
    return 0;
}
