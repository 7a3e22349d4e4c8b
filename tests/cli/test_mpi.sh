#!/usr/bin/env bash
# knnlm-mpi on two ranks of this machine (mpirun --oversubscribe -n 2): the datastore, built as one shard per
# rank and merged, is byte-identical to a one-process build; a rerun resumes after a rank is killed; the
# index built --ondisk with the ranks sharing the shards gives the same lists and the same search results
# (ids and distances) as a one-process build; a failure on one rank is one line naming it and every rank
# exits non-zero; without mpirun knnlm-mpi is knnlm. Skipped (with a note) where knnlm-mpi is not built: the
# Makefile builds it only where Open MPI's development files are installed.
. "$(dirname "$0")/lib.sh"
KNNLM_MPI=${KNNLM_MPI:-$(dirname "$KNNLM")/knnlm-mpi}
if [ ! -x "$KNNLM_MPI" ] || ! command -v mpirun >/dev/null; then
    echo "note: $KNNLM_MPI or mpirun is missing (no Open MPI here); skipping" >&2
    finish
    exit
fi
# One thread per rank (two ranks share this machine's cores). Open MPI as root needs --allow-run-as-root;
# -q keeps mpirun's own banners out of stderr, where a failure must be one line. Open MPI frees little of
# what it allocates before exit (much of it in plugins it has unloaded, which no suppression can name):
# leak checking is off for knnlm-mpi; the same library paths run leak-checked through knnlm in the other
# tests.
export OMP_NUM_THREADS=1
NOLEAKS=(env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0)
# No single-copy shared memory (it needs ptrace rights that containers often withhold, and says so on stderr).
MPIRUN=("${NOLEAKS[@]}" OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun --allow-run-as-root --oversubscribe -q -n 2)
M=models/tiny-kogpt2
head -n 40 data/kowiki-sample/train.txt >"$T/corpus.txt"
OPTS=(--model $M --corpus "$T/corpus.txt" --window 128 --stride 64 --checkpoint-seconds 0 --quiet)
same_datastore() { # same_datastore WHAT DIR: keys, values and tokens byte-identical to the reference
    for f in keys.npy vals.npy tokens.npy; do cmp -s "$T/ref/$f" "$2/$f" || fail "$1: $f differs from the one-process build"; done
}

expect_ok "one-process build (reference)" -- "$KNNLM" datastore build "${OPTS[@]}" --out "$T/ref"
entries=$(/usr/bin/python3 -c "import json; print(json.load(open('$T/ref/manifest.json'))['entries'])")
[ "$entries" -gt 2000 ] || fail "the reference holds $entries entries; expected a few thousand"

# two ranks, copied into one folder: the same bytes, the shards removed
expect_ok "mpirun -n 2 datastore build" -- "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/ds"
same_datastore "two ranks" "$T/ds"
expect_eq "one summary line (rank 0's)" "$(grep -c . "$T/out")" 1
grep -q "^$T/ds: $entries entries from $((entries + 1)) tokens" "$T/out" || fail "summary: $(cat "$T/out")"
[ ! -e "$T/ds.shards" ] || fail "the shards were copied, yet $T/ds.shards is left"
expect_ok "merged datastore verifies" -- "$KNNLM" datastore verify "$T/ds" --quiet
expect_ok "rerun: already complete" -- "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/ds"
grep -q "already complete ($entries entries)" "$T/out" || fail "rerun: $(cat "$T/out")"
expect_error "rerun with another stride is refused" 1 "rank 0 of 2: .*--stride 64, not 32" -- "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/ds" --stride 32

# --link: the shards stay, one per rank, each the reference's rows of its half of the windows
expect_ok "mpirun -n 2 datastore build --link" -- "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/linked" --link
expect_ok "linked datastore verifies" -- "$KNNLM" datastore verify "$T/linked" --quiet
expect_ok "linked rerun: already complete" -- "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/linked" --link
grep -q "already complete ($entries entries)" "$T/out" || fail "linked rerun: $(cat "$T/out")"
/usr/bin/python3 - "$T" <<'PY' || fail "the linked shards do not hold the reference's rows"
import json, sys, numpy as np
t = sys.argv[1]
m = json.load(open(t + "/linked/manifest.json"))
assert [p["path"].split("/")[-2:] for p in m["parts"]] == [["linked.shards", "0"], ["linked.shards", "1"]], m["parts"]
ref = np.load(t + "/ref/keys.npy"); refv = np.load(t + "/ref/vals.npy")
k = np.concatenate([np.load(p["path"] + "/keys.npy") for p in m["parts"]])
v = np.concatenate([np.load(p["path"] + "/vals.npy") for p in m["parts"]])
assert m["parts"][0]["entries"] > 0 and m["parts"][1]["entries"] > 0
assert k.tobytes() == ref.tobytes() and v.tobytes() == refv.tobytes()
PY

# rank 1 killed (SIGKILL) once its first keys are on disk; mpirun stops rank 0; the same command resumes
# both shards and ends with the same bytes
"${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/killed" >"$T/killed.out" 2>&1 & run=$!
victim=
for _ in $(seq 600); do
    if grep -q '"entries_done":\s*[1-9]' "$T/killed.shards/1/build.json" 2>/dev/null; then
        # rank 1: the child of mpirun that Open MPI told it is rank 1
        for p in $(ps --ppid $run -o pid=); do
            tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
        done
        break
    fi
    sleep 0.05
done
if [ -n "$victim" ]; then
    kill -KILL "$victim" 2>/dev/null
    wait $run && fail "mpirun exited 0 after rank 1 was killed"
    [ -e "$T/killed/manifest.json" ] && fail "a merged datastore appeared although rank 1 was killed"
else
    wait $run
    echo "note: rank 1 finished before it could be killed" >&2
fi
expect_ok "rerun after the kill" -- "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/killed"
[ -z "$victim" ] || grep -q "(resumed)" "$T/out" || fail "the rerun did not resume: $(cat "$T/out")"
same_datastore "killed and resumed" "$T/killed"

# a failure on one rank: one line naming it, every rank exits non-zero, nothing merged
mkdir -p "$T/bad.shards/1" && echo junk >"$T/bad.shards/1/keys.npy"
expect_error "rank 1 fails" 1 "^knnlm-mpi datastore build: rank 1 of 2: .*bad.shards/1/keys.npy: exists without a build.json" -- \
    "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/bad"
[ ! -e "$T/bad/manifest.json" ] || fail "a datastore was merged although rank 1 failed"
[ -e "$T/bad.shards/0/manifest.json" ] || fail "rank 0's finished shard was not kept for a rerun"
expect_error "--shard under mpirun" 1 "rank 0 of 2: --shard 0/2: knnlm-mpi gives each rank its shard" -- \
    "${MPIRUN[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/x" --shard 0/2
expect_error "--link without mpirun" 1 "--link: only for knnlm-mpi on several ranks" -- "${NOLEAKS[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/x" --link
expect_error "--link with knnlm" 1 "--link: only for knnlm-mpi on several ranks" -- "$KNNLM" datastore build "${OPTS[@]}" --out "$T/x" --link

# without mpirun, knnlm-mpi is knnlm: the same datastore, built in place (no shards)
expect_ok "knnlm-mpi alone" -- "${NOLEAKS[@]}" "$KNNLM_MPI" datastore build "${OPTS[@]}" --out "$T/alone"
same_datastore "knnlm-mpi without mpirun" "$T/alone"
[ ! -e "$T/alone.shards" ] || fail "knnlm-mpi without mpirun made shards"
# other commands run on rank 0 only: printed once
expect_ok "datastore info under mpirun" -- "${MPIRUN[@]}" "$KNNLM_MPI" datastore info "$T/ds"
expect_eq "info printed once" "$(grep -c '^entries ' "$T/out")" 1

# index build --ondisk: rank 0 trains, the ranks add 2 shards each of the 4 (--shard-rows 700), rank 0
# merges: the very lists of a one-process build, and the same neighbours
IX=(index build --dstore "$T/ref" --factory IVF16,Flat --ondisk --shard-rows 700 --quiet)
expect_ok "one-process index" -- "$KNNLM" "${IX[@]}" --out "$T/one.faiss"
expect_ok "mpirun -n 2 index build" -- "${MPIRUN[@]}" "$KNNLM_MPI" "${IX[@]}" --out "$T/two.faiss"
grep -q "IVF16,Flat over $entries keys (inverted lists on disk); trained on $entries keys" "$T/out" || fail "index summary: $(cat "$T/out")"
cmp -s "$T/one.faiss.ivfdata" "$T/two.faiss.ivfdata" || fail "the inverted lists differ from the one-process build's"
expect_eq "no shard or trained file left" "$(ls "$T" | grep -c '\.tmp$')" 0
/usr/bin/python3 - "$T" <<'PY' || fail "the two indexes give different neighbours"
import sys, numpy as np, faiss
t = sys.argv[1]
q = np.load(t + "/ref/keys.npy")[::7].astype(np.float32)
res = []
for name in ("one", "two"):
    ix = faiss.read_index(t + "/" + name + ".faiss")
    assert ix.ntotal == len(np.load(t + "/ref/keys.npy", mmap_mode="r"))
    ix.nprobe = 4
    res.append(ix.search(q, 8))
(d1, i1), (d2, i2) = res
assert (i1 == i2).all() and (d1 == d2).all()
assert (i1[:, 0] >= 0).all() and (d1[:, 0] == 0).all()  # each query (a key of the datastore) finds itself first
PY
expect_error "bad factory: one line, from rank 0" 1 "^knnlm-mpi index build: rank 0 of 2: index 'IVFx': Faiss rejects" -- \
    "${MPIRUN[@]}" "$KNNLM_MPI" index build --dstore "$T/ref" --factory IVFx --ondisk --out "$T/bad.faiss"
expect_error "index on ranks needs --ondisk" 1 "rank 0 of 2: --ondisk is needed to build an index on 2 ranks" -- \
    "${MPIRUN[@]}" "$KNNLM_MPI" index build --dstore "$T/ref" --factory IVF16,Flat --out "$T/bad.faiss"
finish
