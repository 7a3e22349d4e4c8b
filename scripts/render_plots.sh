#!/usr/bin/env bash
# Redraws the README's λ-sweep plots from the sweep JSONs kept in docs/results (knnlm plot: no datastore
# needed) and renders each SVG to the PNG the README shows, with headless Chromium at the SVG's own size.
# A dev script: needs build/release/knnlm (make) and Debian's chromium; it downloads nothing.
#   scripts/render_plots.sh [KNNLM]
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-build/release/knnlm}
plots=(docs/results/kowiki-full/full docs/results/quickstart/sweep docs/results/quickstart/temperatures)
# the retrieval-gate plots are drawn by knnlm eval --gate-plot (quickstart.sh): rendered as they are
gates=(docs/results/quickstart/gate)
for p in "${plots[@]}" "${gates[@]}"; do
    [ -f "$p.json" ] && "$K" plot --json "$p.json" --out "$p.svg"
    size=$(sed -n 's/^<svg [^>]* width="\([0-9]*\)" height="\([0-9]*\)".*/\1,\2/p' "$p.svg" | head -n 1)
    profile=$(mktemp -d)
    chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
        --screenshot="$PWD/$p.png" --window-size="$size" "file://$PWD/$p.svg" 2>/dev/null
    rm -rf "$profile"
    echo "$p.png ($size)"
done
