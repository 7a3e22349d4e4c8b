/* mpi_run.c — the main() of knnlm-mpi: the knnlm commands on the ranks of an MPI run (Open MPI's mpirun,
 * Slurm's srun). Only this file includes mpi.h; the Makefile builds knnlm-mpi from it wherever Open MPI's
 * development files are installed, and knnlm without it everywhere.
 *
 * With one process (no mpirun, or -n 1) every command runs exactly as in knnlm. With more, two commands share
 * their work (cli.h, CliMpi): `datastore build` (mpi_dstore_build below) and `index build --ondisk`
 * (dstore_index.c, through the KnGroup of group.h). Every other command runs on rank 0 alone, the other
 * ranks waiting for it (knnlm is the tool for them; this only keeps mpirun from running them R times).
 *
 * What the user sees is rank 0's: the other ranks' stdout and stderr go to /dev/null (their progress bars
 * and summaries would repeat rank 0's). A failure is one line from the first rank that failed, naming it
 * ("knnlm-mpi datastore build: rank 1 of 2: ..."), on that rank's own stderr; every rank then exits
 * non-zero. The ranks agree on success at each point where one needs another's files (mpi_agree: an
 * all-reduce of "the lowest rank that failed"), and once more when the command returns, so that a rank that
 * fails early meets the others at their next agreement instead of leaving them waiting. */
#include "cli/cli.h"

#include "dstore/dstore.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/file.h"

#include <mpi.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int rank, ranks;
static int failed_rank = -1;  /* the lowest rank that failed, once the ranks agreed on a failure */
static int err_fd = 2;        /* this rank's own stderr (ranks > 0 point fd 2 at /dev/null) */

/* MPI_Iallreduce and a sleeping wait rather than a blocking MPI_Allreduce: Open MPI's blocking calls spin
 * on a core, and a rank waiting for rank 0 to train an index would take that core from it. */
static int mpi_agree(void *ctx, int rc) {
    int mine = rc == KN_OK ? ranks : rank, first = ranks;
    MPI_Request req;
    MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &req);
    for (int done = 0;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    if (first == ranks) return KN_OK;
    failed_rank = first;
    return first == rank ? rc : kn_error(KN_EINVAL, "rank %d failed", first);
}

static int mpi_fail(const char *command, int rc) {
    if (failed_rank < 0) rc = mpi_agree(NULL, rc); /* this rank failed first: meet the others' agreement */
    if (failed_rank != rank) return EXIT_FAIL;      /* a lower rank failed: its line says why */
    dprintf(err_fd, "knnlm-mpi %s: rank %d of %d: %s\n", command, rank, ranks, kn_errmsg());
    return cli_exit_code(rc);
}

/* Removes a shard folder that was copied into the merged datastore (its files, then the folder). */
static void remove_shard(const char *dir) {
    static const char *const files[] = {"keys.npy", "vals.npy", "tokens.npy", "manifest.json"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (path_join(path, sizeof path, dir, files[i]) == KN_OK) unlink(path);
    rmdir(dir);
}

/* `datastore build` on every rank: rank r builds shard r/R of the windows into OUT.shards/r (resumable,
 * as any shard build), then rank 0 merges the R shards into OUT, byte for byte what one process builds. */
static int mpi_dstore_build(const DstoreBuildOptions *o, int link_only, const KnMonitor *mon, DstoreBuildReport *rep) {
    memset(rep, 0, sizeof *rep);
    const double t0 = kn_seconds();
    char out[PATH_MAX], shards[PATH_MAX + 8], mine[PATH_MAX + 32], path[PATH_MAX];
    snprintf(out, sizeof out, "%s", o->out_dir);
    for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--) out[n - 1] = '\0';
    snprintf(shards, sizeof shards, "%s.shards", out);
    snprintf(mine, sizeof mine, "%s/%d", shards, rank);
    int rc = path_join(path, sizeof path, out, "manifest.json");
    if (rc == KN_OK && file_exists(path)) {
        /* finished before: rank 0 checks that it is this very datastore ("already complete") */
        rc = rank == 0 ? dstore_build(o, mon, rep) : KN_OK;
        return mpi_agree(NULL, rc);
    }
    if (rc == KN_OK && path_join(path, sizeof path, out, "build.json") == KN_OK && file_exists(path))
        rc = kn_error(KN_EINVAL, "%s: holds a one-process build in progress; resume it with knnlm datastore build, or give another --out", out);
    DstoreBuildOptions shard = *o;
    shard.out_dir = mine;
    shard.shard_index = rank;
    shard.shard_count = ranks;
    DstoreBuildReport part;
    memset(&part, 0, sizeof part);
    if (rc == KN_OK) rc = file_mkdirs(shards);
    if (rc == KN_OK) rc = dstore_build(&shard, mon, &part);
    if ((rc = mpi_agree(NULL, rc)) != KN_OK) return rc;

    int64_t local[4] = {part.entries, part.resumed_at, part.windows, part.forwarded_tokens}, sum[4];
    double model_seconds = 0;
    MPI_Reduce(local, sum, 4, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&part.model_seconds, &model_seconds, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        enum { CAP = PATH_MAX + 32 };
        char *dirs = malloc((size_t)ranks * CAP);
        const char **list = malloc((size_t)ranks * sizeof *list);
        rc = dirs && list ? KN_OK : kn_error(KN_ENOMEM, "out of memory");
        for (int r = 0; rc == KN_OK && r < ranks; r++) {
            snprintf(dirs + (size_t)r * CAP, CAP, "%s/%d", shards, r);
            list[r] = dirs + (size_t)r * CAP;
        }
        if (rc == KN_OK) rc = dstore_merge(out, list, ranks, link_only, mon);
        if (rc == KN_OK && !link_only) {
            for (int r = 0; r < ranks; r++) remove_shard(list[r]);
            rmdir(shards);
        }
        free(list);
        free(dirs);
        *rep = (DstoreBuildReport){.tokens = part.tokens, .entries = sum[0], .resumed_at = sum[1], .windows = sum[2],
                                   .forwarded_tokens = sum[3], .model_seconds = model_seconds, .seconds = kn_seconds() - t0};
    }
    return mpi_agree(NULL, rc);
}

int main(int argc, char **argv) {
    int provided;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "knnlm-mpi: MPI_Init failed\n");
        return EXIT_FAIL;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    static CliMpi mpi;
    if (ranks > 1) {
        mpi = (CliMpi){.group = {.rank = rank, .size = ranks, .agree = mpi_agree}, .dstore_build = mpi_dstore_build, .fail = mpi_fail};
        cli_mpi = &mpi;
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (rank > 0 && null >= 0) {
            fflush(NULL);
            err_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
            if (err_fd < 0) err_fd = 2;
            dup2(null, 1);
            dup2(null, 2);
        }
        if (null >= 0) close(null);
    }
    /* the commands that share their work; the others run on rank 0 only */
    int shared = argc > 2 && ((!strcmp(argv[1], "datastore") && !strcmp(argv[2], "build")) || (!strcmp(argv[1], "index") && !strcmp(argv[2], "build")));
    int code = rank == 0 || shared ? cli_main(argc, argv) : EXIT_OK;
    fflush(NULL);
    /* the last agreement: a rank whose command failed before any meets the others here (or they it) */
    if (ranks > 1 && failed_rank < 0 && mpi_agree(NULL, code == EXIT_OK ? KN_OK : KN_EINVAL) != KN_OK && code == EXIT_OK) code = EXIT_FAIL;
    MPI_Finalize();
    return code;
}
