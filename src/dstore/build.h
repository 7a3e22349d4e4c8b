/* build.h — building a datastore from a corpus: the token stream (tokens.npy), then for every window of the
 * sliding window (window.h) the model's key at each emitted position (keys.npy) and the next token (vals.npy).
 *
 * Built for days of work on data larger than memory:
 *  - streaming: the corpus is tokenized block by block into tokens.npy; the windows read their tokens with
 *    pread; keys are written with pwrite at their final place in a preallocated file. Memory stays flat.
 *  - crash-safe: DSTORE/build.json records the settings and a checkpoint (entries whose keys are on disk,
 *    after fdatasync). A build killed at any moment and run again with the same command resumes at its last
 *    checkpoint and ends with files byte-identical to an uninterrupted build (the forward pass is
 *    deterministic and every key is rewritten at its fixed offset). A stop request (*monitor->stop) makes it
 *    save a checkpoint and return KN_EINTR. manifest.json appears only when the build is complete.
 *  - refusing to mix: a folder that holds a datastore or a build made with other settings is refused with a
 *    message naming the setting that differs; files of unknown origin are never overwritten. A build that
 *    stopped before its first key (e.g. on invalid UTF-8) holds nothing worth keeping: a command with other
 *    settings takes that folder over. The folder's .lock exists only while a build runs.
 *  - disk space is checked before the first key is computed; a full disk later is reported as KN_ENOSPC, and
 *    the last checkpoint stays valid for a resume.
 *  - precision: GPT2_BF16 roughly doubles the speed on CPUs with AVX512_BF16 at the cost of ~0.2-0.5 % key
 *    error (98 % of 8-NN kept, bench/PERF.md); it is a setting like the key type (recorded, never mixed).
 *  - sharded: with shard_count N, only windows [i*W/N, (i+1)*W/N) of the W windows are built: a contiguous
 *    range of entries, bit for bit what the whole build gives there (dstore_merge joins the shards). */
#ifndef KN_BUILD_H
#define KN_BUILD_H

#include "dstore/corpus.h"
#include "dstore/manifest.h"
#include "model/gpt2.h"
#include "util/monitor.h"
#include "util/npy.h"

typedef struct {
    const char *model_dir;
    const char *weights_path;       /* NULL: found in model_dir */
    const char *corpus_path;
    CorpusFormat corpus_format;
    unsigned corpus_flags;          /* CORPUS_REPLACE_INVALID_UTF8 */
    const char *out_dir;
    int window, stride;
    Gpt2KeyType key;
    Gpt2Precision precision;        /* the forward pass' arithmetic (default GPT2_FP32: exact) */
    NpyDtype dtype;                 /* NPY_F16 or NPY_F32 */
    int64_t max_tokens;             /* 0: the whole corpus */
    int shard_index, shard_count;   /* 0 and 1 for a whole build */
    double checkpoint_seconds;      /* time between checkpoints (default 60) */
    int64_t stop_after_entries;     /* tests: stop as a signal would, at the first window that reaches this many
                                     * entries of the shard (0: never), for resume tests that no timing can break */
} DstoreBuildOptions;

typedef struct {
    int64_t tokens;                 /* length of the token stream */
    int64_t entries;                /* this datastore's entries */
    int64_t resumed_at;             /* entries already on disk when this run started */
    int already_complete;           /* the folder held this very datastore: nothing was done */
    int64_t windows;                /* windows computed by this run */
    int64_t forwarded_tokens;       /* tokens run through the model by this run */
    double model_seconds;           /* time in the forward pass */
    double seconds;                 /* time of the window phase */
} DstoreBuildReport;

/* The defaults: window 1024, stride 512, last_ffn_input, float16, checkpoint every 60 s, one shard. */
void dstore_build_defaults(DstoreBuildOptions *opt);

int dstore_build(const DstoreBuildOptions *opt, const KnMonitor *monitor, DstoreBuildReport *report);

/* How far the unfinished build in dir got, from its build.json: the settings (manifest fields: tokens and
 * entries are 0 until tokenization is done) and entries_done (-1: tokenization not finished). */
typedef struct {
    DstoreManifest settings;        /* free with manifest_free */
    int64_t entries_done;
    int tokens_written;             /* tokens.npy is there (tokenization finished) */
} DstoreBuildProgress;

/* KN_ENOTFOUND when dir holds no build.json (no build, or a finished one). */
int dstore_build_progress(const char *dir, DstoreBuildProgress *progress);

#endif
