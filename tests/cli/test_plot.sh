#!/usr/bin/env bash
# knnlm plot (issue 12, item 6): redraws the λ-sweep plot from the JSON eval --json wrote, without the
# datastore: the chart's numbers come from the JSON (hand-made here: LM 100, best 80 at λ = 0.5, k = 16), one
# panel per temperature, and every bad input or output is one line naming the flag and the file.
. "$(dirname "$0")/lib.sh"

# λ ∈ {0, 0.5, 1} × k ∈ {8, 16} × T ∈ {1}; λ = 1 is inf for k = 8 (a label among no neighbour).
cat >"$T/s.json" <<'JSON'
{"tokens": 1234, "lm_ppl": 100, "sweep": [
 {"lambda": 0, "k": 8, "temperature": 1, "ppl": 100}, {"lambda": 0, "k": 16, "temperature": 1, "ppl": 100},
 {"lambda": 0.5, "k": 8, "temperature": 1, "ppl": 90}, {"lambda": 0.5, "k": 16, "temperature": 1, "ppl": 80},
 {"lambda": 1, "k": 8, "temperature": 1, "ppl": "inf"}, {"lambda": 1, "k": 16, "temperature": 1, "ppl": 400}]}
JSON
expect_ok "plot from a sweep's JSON" -- "$KNNLM" plot --json "$T/s.json" --out "$T/p.svg"
svg=$(cat "$T/p.svg")
expect_eq "title with the token count" "$(grep -c '(1234 tokens)' "$T/p.svg")" 1
expect_eq "one panel" "$(grep -o 'class="frame"' "$T/p.svg" | wc -l)" 1
expect_eq "LM line labelled" "$(grep -o 'class="reference-label"[^<]*<tspan[^>]*>LM alone (100.00)<' "$T/p.svg" | wc -l)" 1
expect_eq "best labelled: λ = 0.5, k = 16, −20 %" \
    "$(grep -o '<tspan[^>]*>best: λ = 0.5, k = 16</tspan><tspan[^>]*>80.00 (−20.0 % vs LM)<' "$T/p.svg" | wc -l)" 1
# 100 / 80 = 1.25: linear, centred: 100 ± 1.15 × 20 → from 70 (the 10-step below 77) to 130; inf and 400 above
expect_eq "linear axis" "$(grep -c 'log scale' "$T/p.svg")" 0
expect_eq "bottom tick 70" "$(grep -o 'class="ytick"[^>]*>[^<]*' "$T/p.svg" | head -1 | sed 's/.*>//')" 70
expect_eq "two points off the chart" "$(grep -o 'class="offchart"' "$T/p.svg" | wc -l)" 2
expect_eq "four points shown" "$(grep -o 'class="point"' "$T/p.svg" | wc -l)" 4
expect_ok "forced log scale, replacing its own plot" -- "$KNNLM" plot --json "$T/s.json" --out "$T/p.svg" --scale log
expect_eq "log axis" "$(grep -c 'perplexity (log scale)' "$T/p.svg")" 1

# two temperatures: two panels, one y range
sed 's/"temperature": 1/"temperature": 2/g' "$T/s.json" | python3 -c '
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(sys.stdin)
a["sweep"] += b["sweep"]; json.dump(a, sys.stdout)' "$T/s.json" >"$T/s2.json"
expect_ok "two temperatures" -- "$KNNLM" plot --json "$T/s2.json" --out "$T/p2.svg"
expect_eq "two panels" "$(grep -o 'class="frame"' "$T/p2.svg" | wc -l)" 2
expect_eq "panel titles" "$(grep -o 'class="panel-title"[^>]*>[^<]*' "$T/p2.svg" | sed 's/.*>//' | tr '\n' '|')" "T = 1 (best)|T = 2|"

# errors: one line naming the flag or the file
expect_error "no --json" 2 "--json" -- "$KNNLM" plot --out "$T/x.svg"
expect_error "no --out" 2 "--out" -- "$KNNLM" plot --json "$T/s.json"
expect_error "bad --scale" 1 "--scale cubic: must be auto, linear or log" -- "$KNNLM" plot --json "$T/s.json" --out "$T/x.svg" --scale cubic
expect_error "missing JSON" 1 "nope.json: cannot open" -- "$KNNLM" plot --json "$T/nope.json" --out "$T/x.svg"
echo '{"tokens": 3' >"$T/bad.json"
expect_error "not JSON" 1 "bad.json: not valid JSON" -- "$KNNLM" plot --json "$T/bad.json" --out "$T/x.svg"
echo '{"tokens": 3, "lm_ppl": 5}' >"$T/nosweep.json"
expect_error "not a sweep" 1 "nosweep.json: no \"sweep\" array" -- "$KNNLM" plot --json "$T/nosweep.json" --out "$T/x.svg"
expect_eq "nothing written on failure" "$(ls "$T"/x.svg 2>/dev/null | wc -l)" 0
echo "my notes" >"$T/notes.svg"
expect_error "not our file" 1 "--out .*notes.svg" -- "$KNNLM" plot --json "$T/s.json" --out "$T/notes.svg"
expect_eq "notes kept" "$(cat "$T/notes.svg")" "my notes"
expect_ok "--force replaces it" -- "$KNNLM" plot --json "$T/s.json" --out "$T/notes.svg" --force
expect_error "onto its input" 1 "--out .*s.json: is the same file as --json" -- "$KNNLM" plot --json "$T/s.json" --out "$T/s.json" --force
# fault injection (src/util/fault.c): the Nth allocation, write, fsync or rename fails, for every N the command
# reaches; each failure is exit 1 with one line and leaves no plot and no temporary, a success the same bytes
expect_ok "reference plot" -- "$KNNLM" plot --json "$T/s2.json" --out "$T/ref.svg"
rm -f "$T/count"
KNNLM_FAULT_COUNT="$T/count" "$KNNLM" plot --json "$T/s2.json" --out "$T/f.svg" >/dev/null 2>&1
for kind in alloc write fsync rename; do
    total=$(awk -v k=$kind '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' "$T/count")
    [ -n "$total" ] && [ "$total" -ge 1 ] || { fail "no $kind count"; continue; }
    for n in $(seq 1 "$total"); do
        checks=$((checks + 1))
        rm -f "$T/f.svg"
        KNNLM_FAULT="$kind:$n" "$KNNLM" plot --json "$T/s2.json" --out "$T/f.svg" >/dev/null 2>"$T/err"
        rc=$?
        if grep -q -E "Sanitizer|runtime error" "$T/err"; then fail "$kind $n: sanitizer report: $(head -c 600 "$T/err")"
        elif [ $rc = 0 ]; then cmp -s "$T/f.svg" "$T/ref.svg" || fail "$kind $n: exit 0 with another plot"
        elif [ $rc != 1 ] || [ "$(grep -c . "$T/err")" != 1 ]; then fail "$kind $n: exit $rc: $(head -c 300 "$T/err")"
        elif [ -e "$T/f.svg" ] || ls -a "$T" | grep -q '\.tmp\.'; then fail "$kind $n: a plot or a temporary left behind"
        fi
    done
done
expect_ok "--help" -- "$KNNLM" plot --help
expect_eq "help explains --scale" "$(grep -c -- '--scale SCALE .*auto.*linear or log' "$T/out")" 1
finish
