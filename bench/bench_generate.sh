#!/bin/sh
# bench_generate.sh — milliseconds per generated token, split into LM (forward + lm_head + softmax), kNN search
# (index search + values + exact distances) and sampling, for models/tiny-kogpt2 and a KoGPT2-shaped random
# model (bench/make_random_model), each as the plain LM and with a Flat and an IVF-PQ index over a small
# datastore built here from the bundled kowiki sample.
#
#   bench/bench_generate.sh [THREADS] [TOKENS] [DATASTORE_TOKENS]
#
# Defaults: 2 threads, 64 generated tokens (sampling τ 0.8, top-p 0.9, λ 0.25, k 8, nprobe 8; --ignore-eos, so
# every run makes all of them), a datastore of the corpus' first 20000 tokens. Everything is written under
# /tmp/bench_generate (the random model is ~500 MB; the datastores are kept for the next run). Run from the
# repository root. The machine may be shared: each figure is the best of 3 runs, and the load is printed.
set -eu
THREADS=${1:-2}
TOKENS=${2:-64}
DS_TOKENS=${3:-20000}
W=/tmp/bench_generate
. bench/common.sh
bench_setup "$W"
K=build/release/knnlm

echo "== $(bench_machine); --threads $THREADS, $TOKENS tokens"
printf '%-14s %-10s %9s %8s %8s %8s %8s\n' model index first_ms lm_ms search_ms sample_ms total_ms
for spec in "tiny-kogpt2 models/tiny-kogpt2 IVF64,PQ16" "kogpt2-random $W/kogpt2-random IVF64,PQ32"; do
    set -- $spec
    name=$1 model=$2 factory=$3
    ds="$W/$name-ds"
    if [ ! -f "$ds/manifest.json" ]; then
        rm -rf "$ds"
        $K datastore build --model "$model" --corpus data/kowiki-sample/train.txt --out "$ds" --window 512 --stride 256 \
            --max-tokens "$DS_TOKENS" --precision fp32 --quiet --threads "$THREADS"
    fi
    [ -f "$W/$name-flat.faiss" ] || $K index build --dstore "$ds" --out "$W/$name-flat.faiss" --quiet --threads "$THREADS"
    [ -f "$W/$name-ivfpq.faiss" ] || $K index build --dstore "$ds" --out "$W/$name-ivfpq.faiss" --factory "$factory" --quiet --threads "$THREADS"
    for ix in none flat ivfpq; do
        knn=""
        [ "$ix" = none ] || knn="--dstore $ds --index $W/$name-$ix.faiss --nprobe 8"
        best=""
        for r in 1 2 3; do
            # shellcheck disable=SC2086
            line=$($K generate --model "$model" $knn --prompt "대한민국의 수도는 서울이다. 서울은" --max-new-tokens "$TOKENS" \
                --temperature 0.8 --top-p 0.9 --seed $r --ignore-eos --threads "$THREADS" 2>&1 >/dev/null | tail -n 1)
            # "... first token F ms, then per token: LM a ms, search b ms, sampling c ms"
            row=$(echo "$line" | sed -E 's/.*first token ([0-9.]+) ms, then per token: LM ([0-9.]+) ms, search ([0-9.]+) ms, sampling ([0-9.]+) ms.*/\1 \2 \3 \4/')
            total=$(echo "$row" | awk '{printf "%.2f", $2 + $3 + $4}')
            if [ -z "$best" ] || awk -v a="$total" -v b="$(echo "$best" | cut -d' ' -f5)" 'BEGIN { exit !(a < b) }'; then best="$row $total"; fi
        done
        echo "$best" | awk -v m="$name" -v i="$ix" '{ printf "%-14s %-10s %9.1f %8.2f %8.2f %8.2f %8.2f\n", m, i, $1, $2, $3, $4, $5 }'
    done
done
