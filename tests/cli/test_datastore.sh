#!/usr/bin/env bash
# knnlm datastore build / info / verify / merge and corpus split from the command line: stops at several
# points and a SIGKILL, each resumed (byte-identical), refusal of other settings, a full disk, shards, numpy
# opening the files.
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-random
head -n 300 data/kowiki-sample/valid.txt >"$T/corpus.txt"
BUILD=("$KNNLM" datastore build --model $M --corpus "$T/corpus.txt" --window 64 --stride 32 --checkpoint-seconds 0 --quiet)
build() { "${BUILD[@]}" "$@"; }

expect_ok "reference build" -- build --out "$T/ref"
expect_ok "verify" -- "$KNNLM" datastore verify "$T/ref" --quiet
grep -q "ok:" "$T/out" || fail "verify output: $(cat "$T/out")"
expect_ok "info" -- "$KNNLM" datastore info "$T/ref"
grep -q "key         last_ffn_input" "$T/out" || fail "info output: $(cat "$T/out")"
/usr/bin/python3 - "$T/ref" <<'PY' || fail "numpy cannot open the datastore as SPEC.md says"
import json, sys, numpy as np
d = sys.argv[1]
k = np.load(d + "/keys.npy", mmap_mode="r"); v = np.load(d + "/vals.npy", mmap_mode="r"); t = np.load(d + "/tokens.npy", mmap_mode="r")
m = json.load(open(d + "/manifest.json"))
assert k.dtype == np.float16 and k.shape == (m["entries"], 64), (k.dtype, k.shape)
assert v.dtype == np.int32 and v.shape == (m["entries"], 1)
assert m["entries"] == m["tokens"] - 1 == len(t) - 1
assert (v[:, 0] == t[1:]).all()
assert np.isfinite(k.astype(np.float32)).all()
PY

# Stopped at several points (KNNLM_TEST_STOP_AFTER: as a signal would, at the first window that reaches N
# entries; no timing involved), each time resumed by the same command: the same bytes as the reference.
total=$(/usr/bin/python3 -c "import json; print(json.load(open('$T/ref/manifest.json'))['entries'])")
for n in 1 100 $((total / 2)) $((total - 1)); do
    expect_error "stop after $n entries" 130 "stopped at a checkpoint after [0-9]+ of $total entries" -- \
        env KNNLM_TEST_STOP_AFTER=$n "${BUILD[@]}" --out "$T/stopped"
    grep -q "\"entries_done\"" "$T/stopped/build.json" || fail "stop after $n: no build.json"
    [ ! -e "$T/stopped/.lock" ] || fail "stop after $n: the .lock stayed"
done
expect_ok "resume after four stops" -- build --out "$T/stopped"
for f in keys.npy vals.npy tokens.npy manifest.json; do
    cmp -s "$T/ref/$f" "$T/stopped/$f" || fail "$f differs after stops and resume"
done
[ ! -e "$T/stopped/build.json" ] || fail "build.json left behind"

# One real SIGKILL, once the first keys are on disk (the process gets no chance to tidy up), then resume.
"${BUILD[@]}" --out "$T/killed" >/dev/null 2>&1 & pid=$!
for _ in $(seq 600); do
    grep -q '"entries_done":\s*[1-9]' "$T/killed/build.json" 2>/dev/null && break
    sleep 0.05
done
kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
[ -e "$T/killed/manifest.json" ] && echo "note: the build finished before SIGKILL" >&2
expect_ok "resume after SIGKILL" -- build --out "$T/killed"
for f in keys.npy vals.npy tokens.npy manifest.json; do
    cmp -s "$T/ref/$f" "$T/killed/$f" || fail "$f differs after SIGKILL and resume"
done
[ ! -e "$T/killed/build.json" ] || fail "build.json left behind"
# (SIGINT and SIGTERM: tests/cli/test_failure_states.sh)

# other settings into the same folder are refused, nothing is touched
before=$(md5sum <"$T/ref/keys.npy")
expect_error "other stride" 1 "--stride 32, not 16" -- build --out "$T/ref" --stride 16
expect_error "other key" 1 "--key last_ffn_input, not final_hidden" -- build --out "$T/ref" --key final_hidden
expect_error "other dtype" 1 "--dtype f16, not f32" -- build --out "$T/ref" --dtype f32
echo "extra line." >>"$T/corpus2.txt"; cat "$T/corpus.txt" >>"$T/corpus2.txt"
expect_error "other corpus" 1 "corpus of hash" -- "$KNNLM" datastore build --model $M --corpus "$T/corpus2.txt" --out "$T/ref" --window 64 --stride 32 --quiet
expect_eq "refused builds leave the keys alone" "$(md5sum <"$T/ref/keys.npy")" "$before"
expect_ok "same settings: already complete" -- build --out "$T/ref"
grep -q "already complete" "$T/out" || fail "rerun: $(cat "$T/out")"

# bad options and inputs
expect_error "bad shard" 1 "--shard 2/2" -- build --out "$T/x" --shard 2/2
expect_error "bad dtype" 1 "--dtype f8" -- build --out "$T/x" --dtype f8
expect_error "stride above the window" 1 "--stride 100" -- build --out "$T/x" --stride 100
# (a --window above n_positions is clamped with a message: tests/cli/test_ux.sh)
expect_error "missing corpus" 1 "nonexistent.txt" -- "$KNNLM" datastore build --model $M --corpus "$T/nonexistent.txt" --out "$T/x2" --window 64 --stride 32
: >"$T/empty.txt"
expect_error "empty corpus" 1 "empty.txt: gives 0 tokens" -- "$KNNLM" datastore build --model $M --corpus "$T/empty.txt" --out "$T/x3" --window 64 --stride 32 --quiet
expect_error "not a datastore" 1 "not a datastore" -- "$KNNLM" datastore info "$T"

# shards built apart and merged: the same bytes as one build
for i in 0 1 2; do expect_ok "shard $i" -- build --out "$T/s$i" --shard $i/3; done
expect_ok "merge" -- "$KNNLM" datastore merge --out "$T/merged" --quiet "$T/s2" "$T/s0" "$T/s1"
for f in keys.npy vals.npy tokens.npy; do cmp -s "$T/ref/$f" "$T/merged/$f" || fail "merged $f differs"; done
expect_ok "merged verifies" -- "$KNNLM" datastore verify "$T/merged" --quiet
expect_ok "merge --link" -- "$KNNLM" datastore merge --out "$T/linked" --link "$T/s0" "$T/s1" "$T/s2"
expect_ok "linked verifies" -- "$KNNLM" datastore verify "$T/linked" --quiet
expect_error "merge with a shard missing" 1 "2 folders were given" -- "$KNNLM" datastore merge --out "$T/m2" "$T/s0" "$T/s1"

# a full disk: reported as such before any key is computed, and the folder resumes once there is room
if mkdir -p "$T/small" && mount -t tmpfs -o size=300k tmpfs "$T/small" 2>/dev/null; then
    expect_error "disk full" 1 "disk full" -- build --out "$T/small/ds"
    umount "$T/small"; mount -t tmpfs -o size=4m tmpfs "$T/small" 2>/dev/null || fail "remount"
    expect_ok "after freeing space" -- build --out "$T/small/ds"
    cmp -s "$T/ref/keys.npy" "$T/small/ds/keys.npy" || fail "keys differ after the disk-full build"
    umount "$T/small"
else
    echo "note: cannot mount a small tmpfs here (not root?); the disk-full case is left to tests/test_dstore.c" >&2
fi

# corpus split
seq 1 500 | sed 's/^/문서 /' >"$T/docs.txt"
expect_ok "corpus split" -- "$KNNLM" corpus split --corpus "$T/docs.txt" --train-out "$T/tr.txt" --heldout-out "$T/ho.txt" --seed 3
expect_eq "split keeps every document" "$(cat "$T/tr.txt" "$T/ho.txt" | sort | md5sum)" "$(sort "$T/docs.txt" | md5sum)"
expect_error "split fraction" 2 "--train 1.5: must be from 0 to 1" -- "$KNNLM" corpus split --corpus "$T/docs.txt" --train-out "$T/a" --heldout-out "$T/b" --train 1.5
expect_error "split fraction 1" 1 "--train 1: must be between 0 and 1 \(exclusive\)" -- "$KNNLM" corpus split --corpus "$T/docs.txt" --train-out "$T/a" --heldout-out "$T/b" --train 1
finish
