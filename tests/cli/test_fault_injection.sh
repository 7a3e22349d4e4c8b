#!/usr/bin/env bash
# Fault injection (src/util/fault.c), as SQLite does it: the Nth allocation, write, fsync or rename of a
# command fails, for N = 1, 2, ... until the command no longer reaches N. Each failure must end with exit 1,
# one line of error and no sanitizer report; then the same command, run again without the fault, must finish
# and give the very bytes of an undisturbed run (the datastore resumes or starts over; an index or an
# evaluation's outputs are whole or absent). Commands: datastore build, merge, index build, eval.
#
# Every N of write, fsync and rename is driven. Allocations number in the hundreds to thousands (the tokenizer
# alone makes ~1000), so the suite takes FAULT_ALLOCS of them spread evenly over the range (default 12);
# FAULT_ALLOCS=all drives every one (minutes; run during development).
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-random
ALLOCS=${FAULT_ALLOCS:-12}
head -n 12 data/kowiki-sample/train.txt >"$T/train.txt"
head -n 8 data/kowiki-sample/valid.txt >"$T/valid.txt"
BUILD=(datastore build --model $M --corpus "$T/train.txt" --window 64 --stride 32 --threads 1 --quiet)

# references, undisturbed
expect_ok "reference build" -- "$KNNLM" "${BUILD[@]}" --out "$T/ref"
for i in 0 1; do expect_ok "reference shard $i" -- "$KNNLM" "${BUILD[@]}" --out "$T/shard$i" --shard $i/2; done
expect_ok "reference merge" -- "$KNNLM" datastore merge --out "$T/ref-merged" --quiet "$T/shard0" "$T/shard1"
expect_ok "reference index" -- "$KNNLM" index build --dstore "$T/ref" --out "$T/ref.faiss" --threads 1 --quiet
EVAL=(eval --model $M --dstore "$T/ref" --index "$T/ref.faiss" --text "$T/valid.txt" --k 8 --threads 1 --quiet)
expect_ok "reference eval" -- "$KNNLM" "${EVAL[@]}" --json "$T/ref-eval.json" --cases "$T/ref-cases.jsonl"

# same_files A B FILE...: each FILE identical in folders (or prefixes) A and B
same_files() {
    local a=$1 b=$2; shift 2
    for f in "$@"; do cmp -s "$a$f" "$b$f" || { echo "$f differs"; return 1; }; done
}

# drive NAME KIND SETUP CHECK -- command...: for each N, run SETUP (a shell function that prepares the
# output), the command with the Nth KIND failing, check the failure, rerun undisturbed and run CHECK.
drive() {
    local name=$1 kind=$2 setup=$3 check=$4; shift 5
    rm -f "$T/count"
    $setup
    KNNLM_FAULT_COUNT="$T/count" "$@" >/dev/null 2>&1
    local total
    total=$(awk -v k="$kind" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' "$T/count" 2>/dev/null)
    [ -n "$total" ] || { fail "$name: no $kind count"; return; }
    local ns
    if [ "$kind" = alloc ] && [ "$ALLOCS" != all ] && [ "$total" -gt "$ALLOCS" ]; then
        ns=$(awk -v t="$total" -v n="$ALLOCS" 'BEGIN {for (i = 0; i < n; i++) print 1 + int(i * (t - 1) / (n - 1))}' | sort -un)
    else
        ns=$(seq 1 "$total")
    fi
    local runs=0
    for n in $ns; do
        runs=$((runs + 1))
        checks=$((checks + 1))
        $setup
        rm -f "$T/report"
        KNNLM_FAULT="$kind:$n" KNNLM_FAULT_REPORT="$T/report" "$@" >"$T/out" 2>"$T/err"
        local rc=$?
        local what="$name, $kind $n of $total"
        if grep -q -E "Sanitizer|runtime error" "$T/err"; then fail "$what: sanitizer report: $(head -c 800 "$T/err")"; continue; fi
        if [ ! -s "$T/report" ]; then fail "$what: the fault was not reached"; continue; fi
        if [ $rc -ne 0 ]; then
            [ $rc -eq 1 ] || fail "$what: exit $rc (expected 1): $(head -c 300 "$T/err")"
            [ "$(grep -c . "$T/err")" = 1 ] || fail "$what: expected one line of error: $(head -c 600 "$T/err")"
            "$@" >"$T/out" 2>"$T/err" || { fail "$what: the rerun failed: $(head -c 300 "$T/err")"; continue; }
        fi
        local why
        why=$($check) || fail "$what (exit $rc): $why"
    done
    echo "  $name: $kind, $runs of $total"
}

# datastore build: a failed build resumes (or starts over) to the reference's bytes
fresh_build() { rm -rf "$T/b"; }
check_build() { same_files "$T/ref/" "$T/b/" keys.npy vals.npy tokens.npy manifest.json; }
for kind in write fsync rename alloc; do drive "datastore build" $kind fresh_build check_build -- "$KNNLM" "${BUILD[@]}" --out "$T/b"; done

# merge
fresh_merge() { rm -rf "$T/m"; }
check_merge() { same_files "$T/ref-merged/" "$T/m/" keys.npy vals.npy tokens.npy manifest.json; }
for kind in write fsync rename alloc; do
    drive "datastore merge" $kind fresh_merge check_merge -- "$KNNLM" datastore merge --out "$T/m" --quiet "$T/shard0" "$T/shard1"
done
# the shards a merge reads are never changed by it
for i in 0 1; do expect_ok "shard $i still verifies" -- "$KNNLM" datastore verify "$T/shard$i" --quiet; done

# index build
fresh_index() { rm -f "$T/i.faiss" "$T/i.faiss.meta.json"; }
check_index() { same_files "$T/ref" "$T/i" .faiss .faiss.meta.json; }
for kind in write fsync rename alloc; do
    drive "index build" $kind fresh_index check_index -- "$KNNLM" index build --dstore "$T/ref" --out "$T/i.faiss" --threads 1 --quiet
done

# eval: its outputs are whole after the rerun (and never half-written on failure: the rerun replaces them)
fresh_eval() { rm -f "$T/e.json" "$T/c.jsonl"; }
check_eval() { same_files "$T/ref-eval.json" "$T/e.json" "" && same_files "$T/ref-cases.jsonl" "$T/c.jsonl" ""; }
for kind in write fsync rename alloc; do
    drive "eval" $kind fresh_eval check_eval -- "$KNNLM" "${EVAL[@]}" --json "$T/e.json" --cases "$T/c.jsonl"
done
# the datastore and index an evaluation reads are never changed by it
expect_ok "datastore still verifies" -- "$KNNLM" datastore verify "$T/ref" --quiet
finish
