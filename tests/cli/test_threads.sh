#!/usr/bin/env bash
# --threads 1, 2 and 3 give the same bytes, for every command that computes something: embed (keys and
# logits), ppl, datastore build (fp32 and bf16), index build (Flat and IVF-PQ), eval (JSON, CSV, cases).
# Whatever OPENBLAS_CORETYPE says: nothing of ours goes through BLAS; Faiss's k-means is seeded.
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-random
head -n 12 data/kowiki-sample/train.txt >"$T/train.txt"
head -n 8 data/kowiki-sample/valid.txt >"$T/valid.txt"
/usr/bin/python3 -c "import numpy as np; np.save('$T/ids.npy', (np.arange(100, dtype=np.int32) * 7919 + 375) % 51200)"

# same NAME FILE...: FILE.1 FILE.2 FILE.3 are identical
same() {
    local name=$1; shift
    for f in "$@"; do
        for n in 2 3; do
            checks=$((checks + 1))
            cmp -s "$f.1" "$f.$n" || fail "$name: $(basename "$f") differs between --threads 1 and $n"
        done
    done
}

for n in 1 2 3; do
    expect_ok "embed, $n threads" -- "$KNNLM" embed --model $M --ids "$T/ids.npy" --out "$T/keys.npy.$n" --logits "$T/logits.npy.$n" --threads $n
    expect_ok "ppl, $n threads" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --window 64 --stride 32 --json --threads $n
    sed 's/"seconds": [0-9.]*//' "$T/out" >"$T/ppl.json.$n" # the one field that may differ
    for p in fp32 bf16; do
        expect_ok "datastore build $p, $n threads" -- "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out "$T/ds-$p-$n" \
            --window 64 --stride 32 --precision $p --threads $n --quiet
        for f in keys.npy vals.npy manifest.json; do cp "$T/ds-$p-$n/$f" "$T/$p-$f.$n"; done
    done
    expect_ok "index Flat, $n threads" -- "$KNNLM" index build --dstore "$T/ds-fp32-1" --out "$T/flat.faiss.$n" --threads $n --quiet
    expect_ok "index IVF-PQ, $n threads" -- "$KNNLM" index build --dstore "$T/ds-fp32-1" --out "$T/ivf.faiss.$n" --factory "IVF16,PQ8" \
        --threads $n --quiet
    expect_ok "eval, $n threads" -- "$KNNLM" eval --model $M --dstore "$T/ds-fp32-1" --index "$T/flat.faiss.1" --text "$T/valid.txt" \
        --k 8 --threads $n --quiet --json "$T/eval.json.$n" --csv "$T/eval.csv.$n" --cases "$T/cases.jsonl.$n"
done
same "embed" "$T/keys.npy" "$T/logits.npy"
same "ppl" "$T/ppl.json"
same "datastore build" "$T/fp32-keys.npy" "$T/fp32-vals.npy" "$T/fp32-manifest.json" "$T/bf16-keys.npy" "$T/bf16-manifest.json"
same "index build" "$T/flat.faiss" "$T/ivf.faiss"
same "eval" "$T/eval.json" "$T/eval.csv" "$T/cases.jsonl"
finish
