#!/bin/sh
# run_forward.sh — the forward-pass benchmark in one command: our C forward pass and PyTorch on the same
# KoGPT2-shaped random weights and the same 1024-token window, one after the other, then a table side by side.
#
#   bench/run_forward.sh [MODEL_DIR] [THREADS] [REPEATS]
#
# MODEL_DIR (default /tmp/kogpt2-random) is made by bench/make_random_model if it has no model.safetensors
# (~500 MB: keep it out of the repository). Run from the repository root. Timings on a shared machine are
# noisy: every figure is the best of REPEATS (default 3), and the load average is printed with the table.
set -eu

MODEL=${1:-/tmp/kogpt2-random}
THREADS=${2:-2}
REPEATS=${3:-3}
PYTHON=${PYTHON:-/usr/bin/python3} # Debian's, with python3-torch
OUT=$(mktemp -d /tmp/run_forward.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

make -s MODE=release build/release/bench/make_random_model build/release/bench/bench_forward >/dev/null
[ -f "$MODEL/model.safetensors" ] || build/release/bench/make_random_model "$MODEL"

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== PyTorch ($PYTHON bench/bench_torch.py)"
if "$PYTHON" -c 'import torch' 2>/dev/null; then
    "$PYTHON" bench/bench_torch.py "$MODEL" --threads "$THREADS" --repeats "$REPEATS" --dump "$OUT/torch_hidden.npy" | tee "$OUT/torch.txt"
    CHECK="--check $OUT/torch_hidden.npy"
else
    echo "(no torch for $PYTHON: PyTorch column left empty)"
    : >"$OUT/torch.txt"
    CHECK=""
fi
echo "== ours (build/release/bench/bench_forward)"
# shellcheck disable=SC2086
build/release/bench/bench_forward "$MODEL" --threads "$THREADS" --repeats "$REPEATS" $CHECK | tee "$OUT/ours.txt"
if grep -q "avx512 kernels" "$OUT/ours.txt"; then
    echo "== ours with KNNLM_ISA=avx2 (the kernels a CPU without AVX-512 gets)"
    KNNLM_ISA=avx2 build/release/bench/bench_forward "$MODEL" --threads "$THREADS" --repeats "$REPEATS" | grep -E "^(ours|bf16):|decode"
fi

echo
echo "== one 1024-token window, $THREADS threads, load now $(cut -d' ' -f1-3 /proc/loadavg)"
awk '
    # bench_forward prints a 34-character label, then tokens/s, ms/window, GFLOP/s and % of bound
    function num(line, i,   f) { split(substr(line, 35), f, " "); return f[i] }
    FNR == 1 { file++ }
    file == 1 && /^torch hidden/      { th = $3 }
    file == 1 && /^torch with logits/ { tl = $4 }
    file == 2 && /^ours: hidden/             { oh = num($0, 1); ohb = num($0, 4); ohp = num($0, 5) }
    file == 2 && /^ours: with logits/        { ol = num($0, 1); olb = num($0, 4); olp = num($0, 5) }
    file == 2 && /^ours: key \(last/         { ok = num($0, 1) }
    file == 2 && /^sgemm bound: hidden/      { bh = num($0, 1) }
    file == 2 && /^sgemm bound: with logits/ { bl = num($0, 1) }
    file == 2 && /^bf16: hidden/             { fh = num($0, 1); fhp = num($0, 4) }
    file == 2 && /^bf16: with logits/        { fl = num($0, 1) }
    file == 2 && /^bf16: key \(last/         { fk = num($0, 1) }
    function x(a) { return (th > 0 && a > 0) ? sprintf("%.2fx", a / th) : "-" }
    function y(a) { return (tl > 0 && a > 0) ? sprintf("%.2fx", a / tl) : "-" }
    END {
        printf "%-30s %12s %9s %12s %9s %10s\n", "tokens/s", "hidden", "vs torch", "with logits", "vs torch", "key only"
        printf "%-30s %12.1f %9s %12.1f %9s %10s\n", "PyTorch 1.13 (fp32)", th, x(th), tl, y(tl), "-"
        printf "%-30s %12.1f %9s %12.1f %9s %10.1f\n", "ours fp32", oh, x(oh), ol, y(ol), ok
        printf "%-30s %12.1f %9s %12.1f %9s %10.1f\n", "ours bf16 (GPT2_BF16)", fh, x(fh), fl, y(fl), fk
        printf "%-30s %12.1f %9s %12.1f %9s %10s\n", "sgemm bound (OpenBLAS alone)", bh, x(bh), bl, y(bl), "-"
        printf "ours fp32 as %% of the sgemm bound: hidden %s%%, with logits %s%%\n", ohb, olb
        printf "as %% of the machine'"'"'s peak: fp32 hidden %s%%, fp32 with logits %s%% (FMA peak), bf16 hidden %s%% (VDPBF16PS peak)\n", ohp, olp, fhp
    }' "$OUT/torch.txt" "$OUT/ours.txt"
grep -E "^machine bounds|bandwidth bound" "$OUT/ours.txt"
