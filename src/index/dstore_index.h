/* dstore_index.h — a Faiss index over a datastore's keys, and the sidecar that ties the two together.
 *
 * Building: train on a seeded random sample of the keys (when the index needs training), then add every key
 * in batches, in row order, so that index ids are datastore rows. With ondisk, the "Indexing 1T vectors"
 * path: the rows are added to shard indexes of shard_rows rows each (one in memory at a time), each shard is
 * written to disk, and the shards' inverted lists are merged into one memory-mapped ivfdata file; memory
 * stays bounded by one shard whatever the datastore's size.
 *
 * With a group of ranks (MPI, group.h) and ondisk: rank 0 trains and writes the trained empty index beside
 * the output (the ranks share a file system); the shards, the very ones a single process would make, are
 * dealt out to the ranks in contiguous blocks (rank r: shards [r*S/R, (r+1)*S/R) of S); rank 0 merges them.
 * The result is the single process' result, byte for byte. Fewer shards than ranks leaves ranks idle.
 *
 * The sidecar INDEX.meta.json (index_meta.h) records which datastore the index was built from (entries, dim, key type,
 * model weights hash, keys hash), the factory string, the training sample size and seed, so that a search
 * through an index made for another datastore, model or key type is refused instead of returning neighbours
 * that mean nothing. */
#ifndef KN_DSTORE_INDEX_H
#define KN_DSTORE_INDEX_H

#include "dstore/dstore.h"
#include "index/index.h"
#include "util/group.h"
#include "util/monitor.h"

#include <stdint.h>

typedef struct {
    const char *factory;       /* Faiss factory string (default "Flat") */
    int64_t train_size;        /* training sample (0: Faiss' recommended count, at least 65536, at most N) */
    int64_t batch;             /* rows per add (default 65536) */
    uint64_t seed;             /* training sample seed (default 1) */
    int ondisk;                /* inverted lists in INDEX.ivfdata, built through shards (IVF factories only) */
    int64_t shard_rows;        /* rows per shard with ondisk (default 4194304) */
    const KnGroup *group;      /* ranks that build it together (NULL: alone); more than one needs ondisk */
} IndexBuildOptions;

void index_build_defaults(IndexBuildOptions *opt);

typedef struct {
    int64_t trained_on;        /* training sample size (0: no training needed) */
    int64_t added;
    int shards;                /* with ondisk */
    double train_seconds, add_seconds;
} IndexBuildReport;

/* Builds index_path (and index_path.ivfdata with ondisk) and index_path.meta.json from ds. */
int dstore_index_build(const Dstore *ds, const char *index_path, const IndexBuildOptions *opt, const KnMonitor *monitor,
                       IndexBuildReport *report);

/* Opens index_path for search (inverted lists memory-mapped) after checking its sidecar against ds: the same
 * number of entries and dimension, key type, model weights and keys. Errors name what differs. */
int dstore_index_open(KnnIndex **out, const char *index_path, const Dstore *ds);

#endif
