#!/usr/bin/env bash
# knnlm index build / eval / query from the command line: the outputs (table, CSV, JSON in the issue's shape,
# SVG plot, cases with exactly SPEC.md's fields), Python opening the index, and every bad input of issue 5.
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-random
head -n 120 data/kowiki-sample/train.txt >"$T/train.txt"
head -n 30 data/kowiki-sample/valid.txt >"$T/valid.txt"
expect_ok "datastore" -- "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out "$T/ds" --window 64 --stride 32 --quiet
expect_ok "index Flat" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/flat.faiss" --quiet
expect_ok "index IVF,PQ on disk" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/ivfpq.faiss" --factory "IVF32,PQ16" --ondisk --shard-rows 5000 --quiet
[ -s "$T/ivfpq.faiss.ivfdata" ] || fail "no ivfdata file"
expect_ok "eval" -- "$KNNLM" eval --model $M --dstore "$T/ds" --index "$T/flat.faiss" --text "$T/valid.txt" --k 16 --ks 4,16 \
    --lambda 0:1:0.25 --temperature 1,2 --json "$T/r.json" --csv "$T/r.csv" --plot "$T/r.svg" --cases "$T/cases.jsonl" --case-k 4 --quiet
grep -q "LM alone" "$T/out" || fail "eval table: $(head -c 500 "$T/out")"
# the plot redrawn from the JSON alone (knnlm plot) is the plot eval drew: two panels, one per temperature
expect_ok "plot from eval's JSON" -- "$KNNLM" plot --json "$T/r.json" --out "$T/redrawn.svg"
cmp -s "$T/r.svg" "$T/redrawn.svg" || fail "knnlm plot --json draws another plot than eval --plot"
expect_eq "a panel per temperature" "$(grep -o 'class="frame"' "$T/r.svg" | wc -l)" 2
/usr/bin/python3 - "$T" "$M" <<'PY' || fail "eval outputs are not what the issue asks"
import json, sys, math, csv, xml.dom.minidom, numpy as np
t = sys.argv[1]
r = json.load(open(t + "/r.json"))
for key in ("tokens", "lm_ppl", "knn_ppl", "sweep", "best"):
    assert key in r, key
assert set(r["knn_ppl"]) == {"4", "16"}, r["knn_ppl"]
assert len(r["sweep"]) == 5 * 2 * 2
for p in r["sweep"]:
    assert set(p) == {"lambda", "k", "temperature", "ppl"}, p
    if p["lambda"] == 0: assert p["ppl"] == r["lm_ppl"]
assert set(r["best"]) == {"lambda", "k", "temperature", "ppl"}
assert r["best"]["ppl"] == min(float(p["ppl"]) for p in r["sweep"])
rows = list(csv.DictReader(open(t + "/r.csv")))
assert len(rows) == 20 and {"lambda", "k", "temperature", "ppl"} <= set(rows[0])
xml.dom.minidom.parse(t + "/r.svg")
fields = ["label", "lm", "knn", "lm+knn", "lm_probability", "knn_probability", "knn_lm_percent", "labels", "values", "distance", "softmax"]
lines = [json.loads(l) for l in open(t + "/cases.jsonl")]
assert len(lines) == r["tokens"], (len(lines), r["tokens"])
for c in lines:
    assert list(c) == fields, list(c)
    assert len(c["values"]) == len(c["labels"]) == len(c["distance"]) == len(c["softmax"]) == 4
    assert abs(sum(c["softmax"]) - 1) < 1e-9
    assert c["distance"] == sorted(c["distance"])
    assert 0 <= c["knn_lm_percent"] <= 100
PY
# Python's faiss opens our index files, and finds the same neighbours
/usr/bin/python3 - "$T" <<'PY' || fail "python faiss cannot read our index"
import sys, faiss, numpy as np
t = sys.argv[1]
keys = np.load(t + "/ds/keys.npy").astype(np.float32)
for name in ("flat.faiss", "ivfpq.faiss"):
    ix = faiss.read_index(t + "/" + name)
    assert ix.ntotal == len(keys) and ix.d == keys.shape[1], (name, ix.ntotal, ix.d)
ix = faiss.read_index(t + "/flat.faiss")
D, I = ix.search(keys[:50], 1)
assert (I[:, 0] == np.arange(50)).mean() > 0.9   # each key finds itself (duplicates aside)
PY
expect_ok "eval IVF-PQ with exact distances" -- "$KNNLM" eval --model $M --dstore "$T/ds" --index "$T/ivfpq.faiss" --text "$T/valid.txt" --k 8 --nprobe 8 --exact-distances --quiet
expect_ok "query" -- "$KNNLM" query --model $M --dstore "$T/ds" --index "$T/flat.faiss" --context "대한민국의 수도는 서울이다." --k 4
/usr/bin/python3 - "$T/out" <<'PY' || fail "query output"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) >= 2
assert all(l["label"] is not None for l in lines[:-1]) and lines[-1]["label"] is None
assert lines[-1]["lm_probability"] is None and len(lines[-1]["values"]) == 4
PY

# bad inputs: each a one-line error and a non-zero exit
EV=("$KNNLM" eval --model $M --dstore "$T/ds" --index "$T/flat.faiss" --text "$T/valid.txt" --quiet)
expect_error "lambda above 1" 1 "--lambda: .*1.5" -- "${EV[@]}" --lambda 0,1.5
expect_error "lambda below 0" 1 "--lambda" -- "${EV[@]}" --lambda=-0.1:1:0.1
expect_error "case lambda" 2 "--case-lambda 2: must be from 0 to 1" -- "${EV[@]}" --case-lambda 2
expect_error "k larger than the datastore" 1 "--k 100000: larger than the datastore" -- "${EV[@]}" --k 100000
expect_error "ks above k" 1 "--ks: 32 is larger than --k 8" -- "${EV[@]}" --k 8 --ks 8,32
: >"$T/empty.txt"
expect_error "empty text" 1 "empty.txt: gives 0 tokens" -- "$KNNLM" eval --model $M --dstore "$T/ds" --index "$T/flat.faiss" --text "$T/empty.txt"
expect_error "bad distance" 1 "--distance cosine" -- "${EV[@]}" --distance cosine
expect_error "bad nprobe" 2 "--nprobe 0: must be at least 1" -- "${EV[@]}" --nprobe 0
expect_error "query lambda" 2 "--lambda 7: must be from 0 to 1" -- "$KNNLM" query --model $M --dstore "$T/ds" --index "$T/flat.faiss" --context "가" --lambda 7
# an index of another datastore (other size), another key type, another model
expect_ok "small datastore" -- "$KNNLM" datastore build --model $M --corpus "$T/valid.txt" --out "$T/ds2" --window 64 --stride 32 --quiet
expect_ok "its index" -- "$KNNLM" index build --dstore "$T/ds2" --out "$T/flat2.faiss" --quiet
expect_error "index of another size" 1 "built on [0-9]+ keys of dimension 64 but the datastore holds" -- "$KNNLM" eval --model $M --dstore "$T/ds" --index "$T/flat2.faiss" --text "$T/valid.txt"
expect_ok "final_hidden datastore" -- "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out "$T/ds3" --window 64 --stride 32 --key final_hidden --quiet
expect_error "index of another key type" 1 "built on last_ffn_input keys but the datastore holds final_hidden" -- "$KNNLM" eval --model $M --dstore "$T/ds3" --index "$T/flat.faiss" --text "$T/valid.txt"
mkdir -p "$T/other-model" && cp $M/config.json $M/tokenizer.json "$T/other-model/" && cp $M/model-f16.safetensors "$T/other-model/model.safetensors"
expect_error "datastore of another model" 1 "built with other model weights" -- "$KNNLM" eval --model "$T/other-model" --dstore "$T/ds" --index "$T/flat.faiss" --text "$T/valid.txt"
rm "$T/flat.faiss.meta.json"
expect_error "index without its record" 1 "meta.json: missing" -- "${EV[@]}"
head -c 200 "$T/flat2.faiss" >"$T/flat.faiss"
cp "$T/flat2.faiss.meta.json" "$T/flat.faiss.meta.json"
expect_error "truncated index" 1 "flat.faiss" -- "$KNNLM" eval --model $M --dstore "$T/ds2" --index "$T/flat.faiss" --text "$T/valid.txt"
expect_error "bad factory" 1 "IVF0,Nonsense" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/bad.faiss" --factory "IVF0,Nonsense"
expect_error "ondisk needs IVF" 1 "--ondisk needs an IVF index" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/bad.faiss" --ondisk
expect_error "ondisk refuses fast-scan codes" 1 "fast-scan IVF index \(x4fs\) cannot keep its lists on disk" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/bad.faiss" --factory "IVF16,PQ8x4fs" --ondisk
finish
