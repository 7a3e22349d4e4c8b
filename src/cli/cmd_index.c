/* cmd_index.c — `knnlm index build`: a Faiss index over a datastore's keys. */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/outpath.h"

#include "index/dstore_index.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

int cmd_index(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "build") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            static const ArgSubcommand subs[] = {{"build", "build a Faiss index over a datastore's keys (exact Flat, or IVF/PQ for large ones)"}, {0}};
            args_print_subcommands("knnlm index", "The Faiss index eval and query search a datastore's keys with.", subs);
            return EXIT_OK;
        }
        fprintf(stderr, "usage: knnlm index build --dstore DSTORE --out INDEX [options]   (knnlm index build --help)\n");
        return EXIT_USAGE;
    }
    IndexBuildOptions o;
    index_build_defaults(&o);
    const char *dstore = NULL, *out = NULL;
    int train_size = 0, batch = (int)o.batch, shard_rows = (int)o.shard_rows, seed = (int)o.seed, force = 0, quiet;
    const ArgOpt opts[] = {
        {"--dstore", ARG_STR, &dstore, "DSTORE", "the datastore folder (knnlm datastore build)", 1},
        {"--out", ARG_STR, &out, "INDEX", "the index file to write (plus INDEX.meta.json, and INDEX.ivfdata with --ondisk)", 1},
        {"--factory", ARG_STR, &o.factory, "STRING", "Faiss index factory string, L2 metric: \"Flat\" (default, exact) for small datastores, \"IVF4096,PQ64\" for large ones, or any other", 0},
        {"--train-size", ARG_INT, &train_size, "N", "keys in the training sample (default: Faiss' recommendation, at least 65536)", 0, 1, ARG_INT_MAX},
        {"--batch", ARG_INT, &batch, "N", "keys added per batch (default 65536)", 0, 1, ARG_INT_MAX},
        {"--seed", ARG_INT, &seed, "S", "seed of the training sample, 0 or more (default 1)", 0, 0, ARG_INT_MAX},
        {"--ondisk", ARG_FLAG, &o.ondisk, NULL, "keep the inverted lists in a memory-mapped INDEX.ivfdata (IVF only): built as shards and merged, for indexes larger than memory", 0},
        {"--shard-rows", ARG_INT, &shard_rows, "N", "with --ondisk: keys per shard held in memory at once (default 4194304); under knnlm-mpi the ranks share out the shards, so give at least one per rank", 0, 1, ARG_INT_MAX},
        {"--force", ARG_FLAG, &force, NULL, "replace INDEX even if it is not an index knnlm built (never a datastore's own file)", 0},
        {0},
    };
    const ArgSpec spec = {"knnlm index build", "Builds a Faiss index (L2) over a datastore's keys; its ids are the datastore's rows.",
                          "--dstore DSTORE --out INDEX [--factory \"IVF4096,PQ64\"] [--train-size N] [--ondisk]",
                          "The file is an ordinary Faiss index: Python's faiss.read_index opens it. An index built before (its\n"
                          "INDEX.meta.json says so) is rebuilt in place; any other existing file needs --force.",
                          opts};
    char *rest[1];
    int nrest;
    int a = args_parse(&spec, argc - 1, argv + 1, rest, 0, &nrest, &quiet);
    if (a != ARGS_OK) return a == ARGS_HELP ? EXIT_OK : EXIT_USAGE;
    o.train_size = train_size;
    o.batch = batch;
    o.shard_rows = shard_rows;
    o.seed = (uint64_t)seed;
    o.group = cli_mpi ? &cli_mpi->group : NULL; /* knnlm-mpi under mpirun: the ranks share the work */
    OutPlan *plan = NULL;
    int rc = outplan_create(&plan, force);
    if (rc == KN_OK) rc = outplan_input_dstore(plan, "--dstore", dstore);
    if (rc == KN_OK) rc = outplan_output_index(plan, "--out", out, o.ondisk);
    if (rc == KN_OK) rc = outplan_check(plan);
    outplan_free(plan);
    if (rc != KN_OK) return cli_fail("index build", rc);
    Dstore *ds;
    rc = dstore_open(&ds, dstore);
    if (rc != KN_OK) return cli_fail("index build", rc);
    CliMonitor mon;
    cli_monitor_init(&mon, quiet);
    cli_catch_signals();
    IndexBuildReport rep;
    rc = dstore_index_build(ds, out, &o, &mon.monitor, &rep);
    dstore_close(ds);
    if (rc != KN_OK) return cli_fail("index build", rc);
    printf("%s: %s over %lld keys%s", out, o.factory, (long long)rep.added, o.ondisk ? " (inverted lists on disk)" : "");
    if (rep.trained_on) printf("; trained on %lld keys in %.1f s", (long long)rep.trained_on, rep.train_seconds);
    printf("; added in %.1f s\n", rep.add_seconds);
    return EXIT_OK;
}
