/* fuzz_manifest.c — the datastore manifest reader (src/dstore/manifest.c) on arbitrary files, as the datastore
 * reads manifest.json and as a resumed build reads build.json (build.c: the same manifest, then its
 * "entries_done" checkpoint). What it accepts must be self-consistent. */
#include "fuzz.h"
#include "dstore/manifest.h"

static void check_str(const char *s, size_t cap) { FUZZ_ASSERT(memchr(s, '\0', cap) != NULL); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_as_file(data, size);
    DstoreManifest m;
    int rc = manifest_read(&m, path);
    fuzz_check_error(rc);
    if (rc == KN_OK) {
        check_str(m.model, sizeof m.model);
        check_str(m.key, sizeof m.key);
        check_str(m.precision, sizeof m.precision);
        check_str(m.corpus, sizeof m.corpus);
        check_str(m.corpus_format, sizeof m.corpus_format);
        check_str(m.weights_hash, sizeof m.weights_hash);
        check_str(m.keys_hash, sizeof m.keys_hash);
        FUZZ_ASSERT(m.dtype == NPY_F16 || m.dtype == NPY_F32);
        FUZZ_ASSERT(m.window >= 1 && m.stride >= 1 && m.dim >= 1);
        FUZZ_ASSERT(m.shard_index >= 0 && m.shard_index < m.shard_count);
        FUZZ_ASSERT(m.entry_begin >= 0 && m.entries >= 0 && m.entry_begin + m.entries <= (m.tokens > 0 ? m.tokens - 1 : 0));
        FUZZ_ASSERT(m.nparts >= 0 && (m.nparts == 0) == (m.parts == NULL));
        int64_t next = m.entry_begin;
        for (int i = 0; i < m.nparts; i++) {
            check_str(m.parts[i].path, sizeof m.parts[i].path);
            FUZZ_ASSERT(m.parts[i].entry_begin == next && m.parts[i].entries >= 0);
            next += m.parts[i].entries;
        }
        if (m.nparts) FUZZ_ASSERT(next == m.entry_begin + m.entries);
        FUZZ_ASSERT(manifest_same_settings(&m, &m, "fuzz") == KN_OK);
        manifest_free(&m);
    }
    int64_t done = 0;
    rc = manifest_read_extra(path, "entries_done", &done);
    fuzz_check_error(rc);
    if (rc == KN_OK) FUZZ_ASSERT(done >= -1);
    return 0;
}
