/* dstore_fixture.h — the small datastore the kNN tests run on: DIR/ds built by MODEL from the bundled kowiki
 * sample (windows of 64 moved by 32, its first max_tokens tokens), with an exact index DIR/flat.faiss and, when
 * factory is not NULL, DIR/pq.faiss made with it. Header-only (static inline): each user is one program. */
#ifndef KN_DSTORE_FIXTURE_H
#define KN_DSTORE_FIXTURE_H

#include "dstore/build.h"
#include "dstore/dstore.h"
#include "index/dstore_index.h"
#include "util/error.h"

#include <stdio.h>

static inline int fixture_dstore(const char *dir, const char *model, int64_t max_tokens, const char *factory) {
    char out[256], path[256];
    snprintf(out, sizeof out, "%s/ds", dir);
    DstoreBuildOptions bo;
    dstore_build_defaults(&bo);
    bo.model_dir = model;
    bo.corpus_path = "data/kowiki-sample/train.txt";
    bo.out_dir = out;
    bo.window = 64;
    bo.stride = 32;
    bo.max_tokens = max_tokens;
    DstoreBuildReport br;
    Dstore *ds;
    int rc = dstore_build(&bo, NULL, &br);
    if (rc == KN_OK) rc = dstore_open(&ds, out);
    if (rc != KN_OK) return rc;
    IndexBuildOptions io;
    IndexBuildReport ir;
    index_build_defaults(&io);
    snprintf(path, sizeof path, "%s/flat.faiss", dir);
    rc = dstore_index_build(ds, path, &io, NULL, &ir);
    if (rc == KN_OK && factory) {
        io.factory = factory;
        snprintf(path, sizeof path, "%s/pq.faiss", dir);
        rc = dstore_index_build(ds, path, &io, NULL, &ir);
    }
    dstore_close(ds);
    return rc;
}

#endif
