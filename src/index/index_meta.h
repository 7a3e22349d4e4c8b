/* index_meta.h — the sidecar INDEX.meta.json that ties an index to the datastore it was built from.
 *
 * It records the datastore's entries, dimension, key type, model weights hash and keys hash (and, for the
 * record, the factory string, the training sample size and seed). A search through an index made for another
 * datastore, model or key type is refused instead of returning neighbours that mean nothing. Apart from
 * dstore_index.c (and without Faiss) so that the sidecar's parser can be tested and fuzzed on its own. */
#ifndef KN_INDEX_META_H
#define KN_INDEX_META_H

#include "dstore/manifest.h"

#include <stddef.h>
#include <stdint.h>

/* What the sidecar records besides the datastore's own fields. */
typedef struct {
    const char *factory;
    int ondisk;
    int64_t train_size;    /* the training sample (0: no training) */
    uint64_t seed;
} IndexMetaBuild;

/* Writes meta_path (atomically) for a datastore of manifest m, entries rows of dimension dim. */
int index_meta_write(const char *meta_path, const DstoreManifest *m, int64_t entries, int dim, const IndexMetaBuild *b);

/* Checks the sidecar text[0..len) (read from meta_path) against a datastore of manifest m, entries rows of
 * dimension dim: KN_EFORMAT naming meta_path when it is malformed, KN_EMISMATCH naming index_path and what
 * differs when it was made for another datastore. */
int index_meta_check(const char *text, size_t len, const char *meta_path, const char *index_path, const DstoreManifest *m,
                     int64_t entries, int dim);

#endif
