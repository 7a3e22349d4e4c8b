/* index.h — the nearest-neighbour index over datastore keys: a Faiss index behind a C handle.
 *
 * Every index is an ordinary Faiss index with the L2 metric, so that the files we write are the files
 * Python's faiss.read_index opens, and the results are Faiss' own: distances are *squared* L2 exactly as
 * Faiss returns them, ids are datastore row numbers (int64).
 *
 * Shapes: n vectors of d floats are one row-major array x[n, d]; a search of nq queries for k neighbours
 * fills dist[nq, k] and ids[nq, k] (caller-allocated), each row sorted by increasing distance. A result slot
 * with no neighbour (k > the vectors reachable: k > ntotal for Flat, or the probed IVF lists hold fewer
 * than k entries) has id -1 and distance FLT_MAX (3.4028235e38), as Faiss fills it.
 *
 * Every call that takes vectors also takes their dimension d and checks it against the index before Faiss
 * sees the data (Faiss has no way to check a raw pointer's shape). Faiss exceptions never reach the
 * caller: each becomes a KN_E* code and a one-line message naming the index file (or the factory string).
 *
 * Large indexes: an IVF index can keep its inverted lists in a separate "ivfdata" file that is
 * memory-mapped, not loaded (Faiss' OnDiskInvertedLists): index_to_ondisk() writes one from an index in
 * memory, index_merge_ondisk() writes one from shards built independently ("Indexing 1T vectors": train
 * once, add each row range to its own shard, merge). Such an index is read-only.
 *
 * Threads: Faiss runs its loops with OpenMP and shares the pool with OpenBLAS' OpenMP build.
 * index_search() may run concurrently on one handle from several threads; every other call that takes a
 * non-const handle must not overlap with any other call on that handle. */
#ifndef KN_INDEX_H
#define KN_INDEX_H

#include "util/monitor.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KnnIndex KnnIndex;

/* ---- creating, reading, freeing ---- */

/* A new empty index from a Faiss factory string ("Flat", "IVF4096,PQ64", "OPQ64,IVF4096,PQ64", "IVF256,Flat",
 * any string faiss::index_factory accepts) for vectors of dim floats, metric L2. KN_EINVAL names a string
 * Faiss rejects. The caller frees *out with index_free().
 * One difference from Python's index_factory: a PQ is trained without polysemous codebook reordering (as
 * if "PQ64np" were written). That reordering serves only Hamming-distance filtering, which we never use;
 * L2 searches return the same ids and distances either way, and it costs hours at PQ64. */
int index_create(KnnIndex **out, int dim, const char *factory);

enum {
    /* Memory-map the IVF inverted lists of an index file instead of loading them (read-only; pages are
     * read on demand). No effect on non-IVF indexes (Flat is always loaded whole) nor on an on-disk IVF
     * index, whose ivfdata file is always mapped. */
    INDEX_READ_MMAP = 1u << 0,
};

/* Opens a Faiss index file. For an on-disk IVF index the ivfdata file is looked for at the path stored in
 * the index (resolved against the index file's folder when relative), then, if absent there, under the
 * same name beside the index file (so a folder holding both can be moved). The ivfdata file's size is
 * checked against the lists before it is mapped: a missing one is KN_ENOTFOUND, a short one KN_EFORMAT.
 * A missing index file is KN_ENOTFOUND; a truncated one or one that is not a Faiss index KN_EFORMAT.
 * An index read with INDEX_READ_MMAP, or an on-disk one, is read-only: index_add() refuses it.
 * A read that Faiss abandons half way leaks the objects Faiss 1.7.3 had built (it holds raw pointers
 * while it reads): a few hundred bytes per failed read, nothing of ours. */
int index_read(KnnIndex **out, const char *path, unsigned flags);

/* Frees the handle, its Faiss index and its mappings. NULL is allowed. */
void index_free(KnnIndex *index);

/* ---- what it is (index must not be NULL) ---- */

int index_dim(const KnnIndex *index);
int64_t index_ntotal(const KnnIndex *index);
int index_is_trained(const KnnIndex *index);
/* 1 when index_add() would be refused because the lists are memory-mapped (INDEX_READ_MMAP, on-disk). */
int index_is_read_only(const KnnIndex *index);
/* The number of IVF lists, 0 for an index that is not IVF (including IVF behind a transform such as OPQ). */
int64_t index_nlist(const KnnIndex *index);
/* The IVF nprobe in effect, 0 for an index that is not IVF. */
int index_nprobe(const KnnIndex *index);
/* One line for logs, e.g. "IndexIVFPQ d=64 ntotal=20000 nlist=64 nprobe=8 code_size=16 lists=mmap:/x.ivfdata".
 * Truncated to fit cap (cap > 0). */
void index_describe(const KnnIndex *index, char *buf, size_t cap);
/* What messages name: the index file it was read from, or "index 'FACTORY'" (valid while index lives). */
const char *index_name(const KnnIndex *index);

/* ---- building ---- */

/* The number of training points Faiss recommends for this index: 39 per IVF centroid and per PQ centroid
 * (Faiss' min_points_per_centroid), 0 for an index that needs no training. Training with fewer (but at
 * least one point per centroid) works as in Faiss; Faiss' stderr warning about it is silenced (IVF, PQ,
 * OPQ), so a caller that wants to warn compares n with this number. */
int64_t index_train_points_recommended(const KnnIndex *index);

/* Trains on x[n, d] (Faiss' k-means with its fixed seed: the same data gives the same index as Python's
 * index.train). Refused with KN_EINVAL when the index is already trained (Flat always is: check
 * index_is_trained() first), or n is smaller than the number of IVF lists (a centroid per point at least);
 * any other minimum Faiss enforces (e.g. 256 points for 8-bit PQ) is KN_EINVAL with Faiss' reason.
 * d != index_dim() is KN_EMISMATCH. */
int index_train(KnnIndex *index, int64_t n, int d, const float *x);
/* index_train, reporting Faiss' k-means iterations to monitor (may be NULL) as a phase "index k-means" counted in
 * iterations: the IVF's coarse quantizer (cp.niter x cp.nredo), then each PQ sub-quantizer's (IVFPQ, PQ), so that
 * a long training shows its progress instead of sitting still. */
int index_train_monitored(KnnIndex *index, int64_t n, int d, const float *x, const KnMonitor *monitor);

/* Appends x[n, d] with ids ntotal .. ntotal+n-1, i.e. index_add_range(index, index_ntotal(index), ...). */
int index_add(KnnIndex *index, int64_t n, int d, const float *x);

/* Adds x[n, d] with ids first_id .. first_id+n-1 (global datastore row numbers), for building a shard
 * that holds one row range. Ids other than ntotal.. need an index that stores ids (IVF, IDMap): Flat keeps
 * rows in order and refuses them (KN_EINVAL). The index must be trained and not read-only. n == 0 does
 * nothing. Faiss encodes each batch as a whole: a vector whose two nearest IVF centroids are equal within
 * float rounding may land in either list depending on the batch shape, exactly as in Faiss itself. */
int index_add_range(KnnIndex *index, int64_t first_id, int64_t n, int d, const float *x);

/* ---- searching ---- */

/* Sets the number of IVF lists a search visits (Faiss clamps it to nlist). nprobe <= 0 is KN_EINVAL. For
 * an index that is not IVF it does nothing and returns KN_OK: an exact index already visits everything. */
int index_set_nprobe(KnnIndex *index, int nprobe);

/* The k nearest neighbours of each query q[nq, d]: dist[nq, k] squared L2, ids[nq, k] (-1 for an empty
 * slot, see above). k <= 0 is KN_EINVAL; k > ntotal is allowed (the tail is empty). An untrained or empty
 * index is KN_EINVAL (a search there is a bug upstream, not a result). Ids are returned as stored: an index
 * that stores ids (IVF, IDMap) may return any int64, so a caller that uses them as rows checks them against
 * its datastore (evaluate() does). nq may be large (tens of
 * thousands): Faiss works through it in blocks; the memory for dist and ids is the caller's. */
int index_search(const KnnIndex *index, int64_t nq, int d, const float *q, int k, float *dist, int64_t *ids);

/* Mapped lists (INDEX_READ_MMAP, on-disk): how many threads read the lists a search will probe ahead of
 * it, so that a cold disk sees many requests at once (Faiss' OnDiskInvertedLists prefetch; Faiss starts up
 * to 32 per search call, our default too). 0 turns it off: best when the lists sit in the page cache, where
 * it only costs thread starts. No effect on lists held in memory. n < 0 is KN_EINVAL. */
int index_set_prefetch_threads(KnnIndex *index, int n);

/* Sets the number of OpenMP threads for Faiss and OpenBLAS on the calling thread (omp_set_num_threads).
 * n <= 0 is KN_EINVAL. */
int index_set_threads(int n);

/* ---- writing ---- */

/* Writes an ordinary Faiss index file (faiss.read_index opens it) through path.tmp + fsync + rename. For
 * an on-disk index this writes the small index file only; it keeps referring to the same ivfdata file. */
int index_write(const KnnIndex *index, const char *path);

/* Writes the inverted lists of an IVF index held in memory to ivfdata_path (NULL: "<index_path>.ivfdata"),
 * compact, in Faiss' OnDiskInvertedLists layout, and index_path: the same index with lists that refer to
 * that file by its absolute path. index_read(index_path) then maps the lists; so does faiss.read_index.
 * The handle itself is left as it was (still in memory). KN_EINVAL for an index that is not IVF. */
int index_to_ondisk(KnnIndex *index, const char *index_path, const char *ivfdata_path);

/* KN_OK if the index's inverted lists can live on disk (index_to_ondisk, index_merge_ondisk): an IVF index
 * whose lists are plain arrays of codes. KN_EINVAL naming the index otherwise (not IVF; fast-scan "x4fs"
 * codes, which Faiss reads in aligned blocks). Cheap: check before training. */
int index_check_ondisk(const KnnIndex *index);

/* Merges shard indexes into one on-disk index ("Indexing 1T vectors"): trained_path is the trained, empty
 * index every shard was built from; shard_paths[nshards] are the shards, in row order (shard i holds rows
 * before shard i+1's). Each shard must have the trained index's exact quantizers (KN_EMISMATCH
 * otherwise), and together they must hold each id 0 .. N-1 exactly once, ascending in every list
 * (KN_EMISMATCH naming the shard otherwise), so that every list of the result is, entry for entry, the list
 * an index built in memory by adding the same rows in the same order would hold: searches give the same
 * ids and distances. Writes out_ivfdata (NULL: "<out_index>.ivfdata") then out_index. Shards are read
 * memory-mapped, so the merge needs little memory: it streams every list once. */
int index_merge_ondisk(const char *trained_path, const char *const *shard_paths, int nshards, const char *out_index,
                       const char *out_ivfdata);

#ifdef __cplusplus
}
#endif

#endif
