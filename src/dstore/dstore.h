/* dstore.h — reading a datastore: DSTORE/manifest.json, keys.npy [N, D] (float16 or float32) and vals.npy
 * [N, 1] int32, memory-mapped (N can be 10^8: nothing is read until asked for). A datastore merged without
 * copying lists its parts (shard folders) in its manifest; it reads as one. Rows are numbered 0..N-1; row r is
 * entry entry_begin + r of the token stream (its key is the model's representation at that position, its value
 * the next token). */
#ifndef KN_DSTORE_H
#define KN_DSTORE_H

#include "dstore/manifest.h"
#include "util/monitor.h"

#include <stdint.h>

typedef struct Dstore Dstore;

/* Opens dir (its manifest.json must exist: a build in progress is not a datastore yet) and maps its files,
 * checking that their dtype and shapes agree with the manifest and that every value is a token id in
 * [0, vocab_size) (one pass over vals.npy). Errors name the file (and the first bad row). */
int dstore_open(Dstore **out, const char *dir);
void dstore_close(Dstore *ds);

const DstoreManifest *dstore_manifest(const Dstore *ds);
int64_t dstore_size(const Dstore *ds);  /* N */
int dstore_dim(const Dstore *ds);       /* D */

/* Keys of rows [begin, begin + n) as float32 into out[n, D]. Rows must be in range (assert). */
void dstore_keys(const Dstore *ds, int64_t begin, int64_t n, float *out);
/* Unmaps from this process the pages of the keys of rows [begin, end), from the page that holds row begin to
 * the one that holds row end, which stays (madvise DONTNEED on the read-only file map: the pages stay in the
 * page cache, and a later read maps them again). A pass over a datastore larger than
 * RAM (index build, verify) calls it after each block: otherwise every page it read counts in its resident set
 * (22.9 GB of a 24 GiB machine for a 20 M x 768 index build) until the kernel takes them back. */
void dstore_release_keys(const Dstore *ds, int64_t begin, int64_t end);
/* Keys of arbitrary rows (the k neighbours of a query) into out[n, D]; a row < 0 (Faiss' "no neighbour")
 * gives a row of NaN. */
void dstore_key_rows(const Dstore *ds, const int64_t *rows, int n, float *out);
/* Asks the kernel to start reading the pages that hold the keys and values of rows[n] (madvise WILLNEED on
 * each distinct page range, in ascending order, coalescing neighbours), and returns without waiting: the
 * reads of k neighbours' keys from a cold disk then overlap instead of faulting one page at a time. Rows < 0
 * are skipped. Only an optimisation: what the rows read is the same with or without it. */
void dstore_prefetch_rows(const Dstore *ds, const int64_t *rows, int64_t n);
/* The value (next token) of a row, in [0, vocab_size) (dstore_open checked). The row must be in [0, N): a
 * caller with rows from an index relies on index_search, which refuses ids outside [0, ntotal). */
int32_t dstore_value(const Dstore *ds, int64_t row);

/* Tells the kernel how the keys will be read: DSTORE_RANDOM for neighbours' exact distances (no read-ahead
 * of pages that will not be used), DSTORE_SEQUENTIAL for a scan (index building, verify). */
typedef enum { DSTORE_RANDOM, DSTORE_SEQUENTIAL } DstoreAccess;
void dstore_advise(const Dstore *ds, DstoreAccess access);

typedef struct {
    int64_t entries;
    int64_t nonfinite_keys;       /* rows with a NaN or Inf */
    int64_t bad_values;           /* values outside [0, vocab_size) */
    int64_t value_mismatches;     /* values that disagree with tokens.npy (when present) */
    int hashes_checked;           /* 1 if keys_hash/vals_hash were recomputed and compared */
    int hashes_match;
} DstoreVerifyReport;

/* Reads everything once: counts, dtype and shapes (already at open), every key finite, every value below the
 * vocabulary size and equal to the next token of tokens.npy, and the files' hashes against the manifest's.
 * KN_OK only if all hold; otherwise KN_EFORMAT whose message names the first problem (the report has counts). */
int dstore_verify(const Dstore *ds, const KnMonitor *monitor, DstoreVerifyReport *report);

/* Joins shard datastores (folders built with --shard i/N, given in any order) into out_dir: copying keys and
 * values into one datastore (byte-identical to an unsharded build), or with link_only writing only a manifest
 * whose parts point at the shard folders (nothing copied; the shards must stay where they are). */
int dstore_merge(const char *out_dir, const char *const *shard_dirs, int nshards, int link_only, const KnMonitor *monitor);

#endif
