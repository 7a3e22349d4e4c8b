/* group.h — processes that do one job together (the ranks of an MPI run), as the library sees them: without
 * MPI, which only knnlm-mpi links (src/cli/mpi_run.c fills this in).
 *
 * Work is split by rank. Wherever a rank needs what another wrote (files, on a file system every rank
 * sees), all ranks call group_agree() with their own status, in the same order: it returns KN_OK only when
 * every rank succeeded, so that all of them go on or all of them stop, and none waits forever for one that
 * gave up. After a failure no rank calls it again. A NULL group is a process alone. */
#ifndef KN_GROUP_H
#define KN_GROUP_H

typedef struct {
    int rank, size;
    /* Every rank's status in, the group's out: KN_OK, this rank's own rc (its message intact) when it is
     * the first that failed, or another failure code when a lower rank failed (the caller stays quiet). */
    int (*agree)(void *ctx, int rc);
    void *ctx;
} KnGroup;

static inline int group_rank(const KnGroup *g) { return g ? g->rank : 0; }
static inline int group_size(const KnGroup *g) { return g ? g->size : 1; }
static inline int group_agree(const KnGroup *g, int rc) { return g && g->size > 1 ? g->agree(g->ctx, rc) : rc; }

#endif
