#!/usr/bin/env bash
# bench_dstore.sh — how fast a datastore is built, and that its memory stays flat as it grows.
#
#   bench/bench_dstore.sh [WORKDIR]      (default /tmp/knnlm-bench; needs ~4 GB free there)
#
# 1. A 1-layer, 768-wide GPT-2 (KoGPT2's width and vocabulary, random weights) builds a datastore of
#    2,000,000+ entries (float16 keys: 3 GB) from the bundled sample repeated: entries/s, and the process'
#    resident memory sampled as the build goes (it must not grow with the datastore).
# 2. The KoGPT2-shaped model (12 x 768) builds 20,000 entries, in fp32 and in bf16: entries/s next to the forward
#    pass' own rate for the same work (bench_forward's "key, last T/2 rows only": the 512 rows a window emits),
#    in the same run. The build's writing, conversion to float16 and checkpoints must cost next to nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/knnlm-bench}
mkdir -p "$W"
make -s MODE=release all build/release/bench/make_random_model build/release/bench/bench_forward
K=build/release/knnlm
[ -e "$W/wide1/model.safetensors" ] || build/release/bench/make_random_model "$W/wide1" 1 768 12 51200 1024 >/dev/null
[ -e "$W/kogpt2/model.safetensors" ] || build/release/bench/make_random_model "$W/kogpt2" >/dev/null
cp models/tiny-kogpt2/tokenizer.json "$W/wide1/" && cp models/tiny-kogpt2/tokenizer.json "$W/kogpt2/"
# the sample's train part is 336,568 tokens: 7 copies give 2.36 million
[ -e "$W/corpus.txt" ] || for i in 1 2 3 4 5 6 7; do cat data/kowiki-sample/train.txt; done >"$W/corpus.txt"

echo "== 1. memory: 1-layer 768-wide model, window 1024 / stride 512, float16 keys"
rm -rf "$W/ds-wide1"
$K datastore build --model "$W/wide1" --corpus "$W/corpus.txt" --out "$W/ds-wide1" --checkpoint-seconds 5 --quiet >"$W/wide1.out" & pid=$!
peak=0; start=$(date +%s); samples=()
while kill -0 $pid 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    done_entries=$(grep -o '"entries_done":[^,}]*' "$W/ds-wide1/build.json" 2>/dev/null | grep -o -- '-\?[0-9]*$' || echo "-")
    samples+=("$(( $(date +%s) - start )) s: checkpoint at $done_entries entries, resident $((rss / 1024)) MiB")
    sleep 10
done
wait $pid
cat "$W/wide1.out"
echo "resident memory as the build goes (every 10 s):"
printf '  %s\n' "${samples[@]}"
echo "peak resident memory: $((peak / 1024)) MiB; keys on disk: $(du -m "$W/ds-wide1/keys.npy" | cut -f1) MiB"

echo; echo "== 2. speed: KoGPT2-shaped model (12 x 768), 20,000 entries, against the forward pass alone"
for p in fp32 bf16; do
    rm -rf "$W/ds-kogpt2"
    $K datastore build --model "$W/kogpt2" --corpus "$W/corpus.txt" --out "$W/ds-kogpt2" --max-tokens 20001 --precision $p --quiet
done
build/release/bench/bench_forward "$W/kogpt2" --repeats 3 2>&1 | grep -E "key, last T/2"
