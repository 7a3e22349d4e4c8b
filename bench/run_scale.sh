#!/usr/bin/env bash
# run_scale.sh — the synthetic-scale run of the index: N synthetic keys (src/dstore/synth.h: a fixed-seed
# mixture of anisotropic clusters on the spectrum of real keys) indexed in shards, merged into on-disk
# inverted lists, and searched against an exact search over all N keys. Writes OUT/scale.json.
#
#   bench/run_scale.sh --entries N --dim D --out DIR [--factory F] [--ranks R] [any other option of bench/scale.c]
#
# Resumable: killed at any point, the same command goes on from the last finished shard (each phase skips the
# files it finds). --ranks R builds R shards at once in R processes (each with nproc/R threads); the training
# and the final merge and searches run once. Memory: the training sample (--train-mb, default 1024 MB), plus a
# block of 16,384 keys, one shard's codes and the coarse quantizer per process.
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=1
out=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ranks) ranks=${2:-}; shift; [ $# -gt 0 ] && shift ;;
        --out) out=${2:-}; args+=("$1" "$out"); shift; [ $# -gt 0 ] && shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "run_scale.sh: --ranks '$ranks' is not a positive integer" >&2; exit 2; }
SCALE=${SCALE:-build/release/bench/scale}
[ -n "${SCALE_NO_BUILD:-}" ] || make -s MODE=release "$SCALE" >/dev/null
cores=$(nproc)
threads=$(( cores / ranks > 0 ? cores / ranks : 1 ))
start=$(date +%s)
"$SCALE" "${args[@]}" --phase train
pids=()
for ((r = 0; r < ranks; r++)); do
    "$SCALE" "${args[@]}" --phase add --rank "$r" --ranks "$ranks" --threads "$threads" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
[ "$rc" = 0 ] || { echo "run_scale.sh: a shard process failed (exit $rc); run the same command again to go on" >&2; exit "$rc"; }
"$SCALE" "${args[@]}" --phase finish >/dev/null
echo "run_scale.sh: done in $(( $(date +%s) - start )) s: $out/scale.json"
