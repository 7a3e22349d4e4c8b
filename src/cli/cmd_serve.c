/* cmd_serve.c — `knnlm serve`: loads the model (and a datastore with its index), checks that they belong
 * together, and serves them over HTTP until SIGTERM (src/serve/server.h). */
#include "cli/args.h"
#include "cli/cli.h"

#include "serve/server.h"
#include "util/error.h"
#include "util/file.h"
#include "util/npy.h"

#include <limits.h>
#include <malloc.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The datastore's token stream, for the neighbours' passages; absent is allowed (no passages). */
static int open_stream(NpyArray *tokens, const char *dstore_dir, const DstoreManifest *m, int *present) {
    char path[PATH_MAX];
    *present = 0;
    int rc = path_join(path, sizeof path, dstore_dir, "tokens.npy");
    if (rc != KN_OK || !file_exists(path)) return rc;
    if ((rc = npy_map(tokens, path)) != KN_OK) return rc;
    if (tokens->dtype != NPY_I32 || tokens->ndim != 1 || tokens->shape[0] != m->tokens) {
        npy_unmap(tokens);
        return kn_error(KN_EFORMAT, "%s: does not hold the %lld-token stream the manifest describes", path, (long long)m->tokens);
    }
    *present = 1;
    return KN_OK;
}

int cmd_serve(int argc, char **argv) {
    const char *model_dir = NULL, *weights = NULL, *dstore = NULL, *index = NULL, *host = "127.0.0.1";
    int port = 8080, slots = 1, queue = 64, max_body_kib = 1024, max_tokens = 512, nprobe = 32, exact = 0, quiet;
    const ArgOpt opts[] = {
        {"--model", ARG_STR, &model_dir, "DIR", "the Hugging Face GPT-2 folder", 1},
        {"--weights", ARG_STR, &weights, "FILE", "the weights file to use (default: found in --model)", 0},
        {"--dstore", ARG_STR, &dstore, "DSTORE", "the datastore folder (without it: the LM alone)", 0},
        {"--index", ARG_STR, &index, "INDEX", "its index (knnlm index build); required with --dstore", 0},
        {"--host", ARG_STR, &host, "ADDR", "the address to listen on (default 127.0.0.1: this machine only)", 0},
        {"--port", ARG_INT, &port, "N", "the TCP port (default 8080; 0: any free port, printed at start)", 0, 0, 65535},
        {"--slots", ARG_INT, &slots, "N", "requests computing at once, each with threads/N threads (default 1)", 0, 1, 64},
        {"--queue", ARG_INT, &queue, "N", "requests waiting for a slot; more get 503 (default 64)", 0, 0, 4096},
        {"--max-body", ARG_INT, &max_body_kib, "KIB", "largest request body in KiB; larger get 413 (default 1024)", 0, 1, 1 << 20},
        {"--max-tokens", ARG_INT, &max_tokens, "N", "largest max_tokens a completion may ask for (default 512)", 0, 1, ARG_INT_MAX},
        {"--nprobe", ARG_INT, &nprobe, "N", "IVF lists visited per search (default 32; no effect on Flat)", 0, 1, ARG_INT_MAX},
        {"--exact-distances", ARG_FLAG, &exact, NULL, "recompute the neighbours' distances from the keys (always done for an exact index)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm serve", "An HTTP service: the case analysis with the neighbours' passages, OpenAI-style completions, and a viewer page.",
                          "--model DIR [--dstore DSTORE --index INDEX] [--host 127.0.0.1] [--port 8080] [--threads N]",
                          "Endpoints (JSON in and out; errors are {\"error\": \"...\"} with status 400, 404, 405, 413, 500 or 503):\n"
                          "  GET  /health           {\"status\": \"ok\", \"model\", \"datastore\", \"index\", ...}\n"
                          "  POST /v1/analyze       {\"text\", \"k\": 8, \"lambda\": 0.25, \"context\": 16, \"temperature\": 1}\n"
                          "  POST /v1/completions   OpenAI's completions (prompt, max_tokens, temperature, top_p, seed, stream)\n"
                          "                         plus knn_lambda and knn_k\n"
                          "  GET  /                 the viewer; /?text=... analyses that text when the page opens\n"
                          "SIGTERM or Ctrl-C stops accepting, lets the requests in flight finish, and exits 0.",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc, argv, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    int rc = KN_OK;
    /* the numbers' ranges are in the option table: args_parse has checked them */
    if (!!dstore != !!index) rc = kn_error(KN_EINVAL, "give --dstore and --index together (or neither, for the LM alone)");
    if (rc != KN_OK) return cli_fail("serve", rc);
    CliKnn k = {0};
    NpyArray stream = {0};
    int have_stream = 0;
    char desc[256] = "";
    rc = cli_knn_open(&k, model_dir, weights, dstore, index, nprobe, 1);
    Gpt2 *model = k.model;
    Tokenizer *tk = k.tk;
    Dstore *ds = k.ds;
    KnnIndex *ix = k.index;
    /* one request's searches probe few lists, soon in the page cache: reader threads per search (Faiss' prefetch
     * on mapped lists) would cost more than they save, as in generate */
    if (rc == KN_OK && ix) rc = index_set_prefetch_threads(ix, 0);
    if (rc == KN_OK && ds) rc = open_stream(&stream, dstore, dstore_manifest(ds), &have_stream);
    if (rc == KN_OK && ds) index_describe(ix, desc, sizeof desc);
    ServerConfig cfg = {host, port, slots, queue, omp_get_max_threads(), (size_t)max_body_kib * 1024, max_tokens};
    cfg.model = (AnalyzeModel){model, tk, ds, ix, have_stream ? stream.data : NULL, have_stream ? stream.numel : 0,
                               ds ? dstore_manifest(ds)->eos_id : 1, ix && (exact || index_nlist(ix) == 0)};
    if (rc == KN_OK && !ds) {
        int32_t eos = tokenizer_token_to_id(tk, "</s>");
        cfg.model.eos_id = eos >= 0 ? eos : 0;
    }
    cfg.model_dir = model_dir;
    cfg.dstore_dir = dstore;
    cfg.index_path = index;
    cfg.index_desc = desc;
    /* one analysis before listening: a model, datastore and index that do not belong together (weights hash,
     * dimensions, key type) fail here, not on the first request; and the weights hash is cached for all */
    if (rc == KN_OK) {
        AnalyzeOptions o;
        analyze_defaults(&o);
        if (ds && o.k > dstore_size(ds)) o.k = (int)dstore_size(ds);
        char *json = NULL;
        rc = analyze_text(&cfg.model, "가", strlen("가"), &o, &json);
        free(json);
    }
    if (rc == KN_OK) {
        /* every thread the server starts inherits this mask: the signals wait for server_run's sigwait */
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
        signal(SIGPIPE, SIG_IGN);
        /* A request's large buffers (an analysis holds 128 rows of logits: 26 MB at KoGPT2's vocabulary) are
         * mapped and unmapped each time: with glibc's adaptive threshold they would stay in the malloc arenas of
         * the threads that once held them, and a long-running server would keep their peak for ever. */
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
        rc = server_run(&cfg);
    }
    if (have_stream) npy_unmap(&stream);
    cli_knn_close(&k);
    return rc == KN_OK ? EXIT_OK : cli_fail("serve", rc);
}
