#!/usr/bin/env bash
# test_scale.sh — bench/run_scale.sh and bench/scale.c on a small run: the exact neighbours it streams are
# Faiss' exact ones (Python's faiss.IndexFlatL2 over the same keys, dumped), its recall figures are what
# Python's Faiss measures on the merged index, a run split over two processes and resumed after losing a shard
# gives the same result, and bad settings get one-line errors.
source "$(dirname "$0")/lib.sh"
SCALE=${SCALE:-$(dirname "$KNNLM")/bench/scale}
export SCALE SCALE_NO_BUILD=1
RUN=bench/run_scale.sh
opts=(--entries 12000 --dim 32 --factory IVF16,PQ8 --shard-entries 5000 --queries 50 --nprobe 1,4,16)

expect_ok "a run over 3 shards in 2 processes" -- $RUN "${opts[@]}" --out "$T/a" --ranks 2
expect_ok "the keys and queries dumped" -- "$SCALE" "${opts[@]}" --out "$T/a" --phase dump
/usr/bin/python3 - "$T/a" >"$T/py" 2>&1 <<'PY' || fail "python check: $(cat "$T/py")"
import json, sys
import faiss, numpy as np
d = sys.argv[1]
x, q, truth = np.load(d + "/keys.npy"), np.load(d + "/queries.npy"), np.load(d + "/truth.npy")
s = json.load(open(d + "/scale.json"))
assert x.shape == (12000, 32) and q.shape == (50, 32) and truth.shape == (50, 8), (x.shape, q.shape, truth.shape)
assert s["entries"] == 12000 and s["dim"] == 32 and s["factory"] == "IVF16,PQ8" and s["shards"] == 3
for key in ("train_seconds", "add_seconds", "peak_rss_mb", "index_bytes"):
    assert s[key] > 0, key
flat = faiss.IndexFlatL2(32)
flat.add(x)
_, exact = flat.search(q, 8)
assert (exact == truth).all(), "streamed exact neighbours differ from faiss.IndexFlatL2"
ix = faiss.read_index(d + "/index.faiss")
assert ix.ntotal == 12000
assert [r["nprobe"] for r in s["search"]] == [1, 4, 16]
for r in s["search"]:
    ix.nprobe = r["nprobe"]
    _, got = ix.search(q, 8)
    recall = np.mean([len(set(a) & set(b)) / 8 for a, b in zip(got, truth)])
    assert abs(recall - r["recall_at_8"]) < 1e-12, (r, recall)
    assert r["queries"] == 50 and r["ms_per_query"] > 0 and r["ms_per_query_batch"] > 0
assert s["search"][-1]["recall_at_8"] > s["search"][0]["recall_at_8"]
print("ok")
PY
checks=$((checks + 1))

# one process, then a lost shard rebuilt by running the same command again: the same index and figures
expect_ok "the same run in one process" -- $RUN "${opts[@]}" --out "$T/b"
rm "$T/b"/shards/s00001.* "$T/b/index.faiss" "$T/b/index.faiss.ivfdata"
expect_ok "the run resumed" -- $RUN "${opts[@]}" --out "$T/b"
expect_eq "only the lost shard was rebuilt" "$(grep -c 'shard ' "$T/err")" 1
expect_eq "... and nothing trained again" "$(grep -c 'training' "$T/err")" 0
recall() { grep -o '"recall_at_8":[^,]*' "$1/scale.json" | tr -d ' \t' | tr '\n' ' '; }
expect_eq "two processes and one give the same recall" "$(recall "$T/b")" "$(recall "$T/a")"
cmp -s "$T/a/truth.npy" "$T/b/truth.npy" || fail "two processes and one give other exact neighbours"
checks=$((checks + 1))

rm "$T/b"/shards/s00002.faiss
expect_error "finish with a shard missing" 1 "s00002.faiss: shard 3 of 3 is not built yet" -- "$SCALE" "${opts[@]}" --out "$T/b" --phase finish
expect_error "other settings in the same folder" 1 "config.json: this folder holds a run with other settings" -- \
    "$SCALE" --entries 12000 --dim 48 --out "$T/b"
expect_error "ranks 0" 2 "ranks '0' is not a positive integer" -- $RUN "${opts[@]}" --out "$T/c" --ranks 0
expect_error "a bad number" 2 "--entries: 'ten' is not an integer" -- "$SCALE" --entries ten --dim 8 --out "$T/c"
finish
