#!/bin/sh
# bench_eval.sh — end-to-end evaluation speed: tokens/s of `knnlm eval` with a Flat and an IVF-PQ index (and
# IVF-PQ with a retrieval gate) against the LM alone (`knnlm ppl`, the same windows, the same lm_head and
# softmax), for models/tiny-kogpt2 and a KoGPT2-shaped random model (bench/make_random_model), over a datastore
# built here from the bundled kowiki sample. Prints where eval's time goes (model, lm_head+softmax, search,
# values/exact distances, sweep) and eval's tokens/s as a share of the LM's.
#
#   bench/bench_eval.sh [THREADS] [EVAL_TOKENS] [DATASTORE_TOKENS] [GATE]
#
# Defaults: 2 threads, 5000 held-out tokens, a datastore of the train text's first 100000 tokens (window 512,
# stride 256, keys in bf16 arithmetic: this measures speed, not quality), k 8, nprobe 8, gate 0.1. Written
# under /tmp/bench_eval (kept for the next run). Run from the repository root; each figure is the best of 2.
set -eu
THREADS=${1:-2}
EVAL_TOKENS=${2:-5000}
DS_TOKENS=${3:-100000}
GATE=${4:-0.1}
W=/tmp/bench_eval
. bench/common.sh
bench_setup "$W"
K=build/release/knnlm
TEXT=data/kowiki-sample/valid.txt

# best_of2 CMD...: the line "time: ..." (eval) or the ppl line with the higher tokens/s of two runs
best_of2() {
    a=$("$@" 2>/dev/null | grep -E 'tokens/s' | tail -n 1)
    b=$("$@" 2>/dev/null | grep -E 'tokens/s' | tail -n 1)
    ra=$(echo "$a" | sed -E 's/.* ([0-9]+) tokens\/s.*/\1/')
    rb=$(echo "$b" | sed -E 's/.* ([0-9]+) tokens\/s.*/\1/')
    if [ "$ra" -ge "$rb" ]; then echo "$a"; else echo "$b"; fi
}

echo "== $(bench_machine); --threads $THREADS, $EVAL_TOKENS tokens, datastore $DS_TOKENS tokens"
printf '%-14s %-16s %9s %7s %8s %8s %8s %8s %8s\n' model run tokens/s "% LM" model_s logits_s search_s exact_s sweep_s
for spec in "tiny-kogpt2 models/tiny-kogpt2 IVF256,PQ16" "kogpt2-random $W/kogpt2-random IVF256,PQ48"; do
    set -- $spec
    name=$1 model=$2 factory=$3
    ds="$W/$name-ds"
    if [ ! -f "$ds/manifest.json" ]; then
        rm -rf "$ds"
        $K datastore build --model "$model" --corpus data/kowiki-sample/train.txt --out "$ds" --window 512 --stride 256 \
            --max-tokens "$DS_TOKENS" --precision bf16 --quiet --threads "$THREADS"
    fi
    [ -f "$ds/flat.faiss" ] || $K index build --dstore "$ds" --out "$ds/flat.faiss" --quiet --threads "$THREADS"
    [ -f "$ds/ivfpq.faiss" ] || $K index build --dstore "$ds" --out "$ds/ivfpq.faiss" --factory "$factory" --quiet --threads "$THREADS"
    lm=$(best_of2 $K ppl --model "$model" --text $TEXT --window 512 --stride 256 --max-tokens "$EVAL_TOKENS" --quiet --threads "$THREADS")
    lm_rate=$(echo "$lm" | sed -E 's/.* ([0-9]+) tokens\/s.*/\1/')
    printf '%-14s %-16s %9s %7s\n' "$name" "LM alone (ppl)" "$lm_rate" 100
    for run in flat ivfpq ivfpq+gate; do
        ix=${run%+gate}
        extra=""
        [ "$run" = "ivfpq+gate" ] && extra="--retrieval-gate $GATE"
        # shellcheck disable=SC2086
        line=$(best_of2 $K eval --model "$model" --dstore "$ds" --index "$ds/$ix.faiss" --text $TEXT --max-tokens "$EVAL_TOKENS" \
            --nprobe 8 --k 8 --ks 8 --lambda 0:1:0.25 --quiet --threads "$THREADS" $extra)
        # "time: T s, R tokens/s (model a s, lm_head+softmax b s, search c s, values/exact distances d s, sweep e s)"
        echo "$line" | sed -E 's/time: [0-9.]+ s, ([0-9]+) tokens\/s \(model ([0-9.]+) s, lm_head\+softmax ([0-9.]+) s, search ([0-9.]+) s, values\/exact distances ([0-9.]+) s, sweep ([0-9.]+) s\)/\1 \2 \3 \4 \5 \6/' |
            awk -v m="$name" -v r="$run" -v lm="$lm_rate" '{ printf "%-14s %-16s %9d %7.1f %8.2f %8.2f %8.2f %8.2f %8.2f\n", m, r, $1, 100 * $1 / lm, $2, $3, $4, $5, $6 }'
    done
done
