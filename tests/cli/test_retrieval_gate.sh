#!/usr/bin/env bash
# test_retrieval_gate.sh — adaptive retrieval in `knnlm eval`: the gate curve of an evaluation that searched
# every token, and an evaluation with --retrieval-gate that really skipped searches, agree to the last digit.
# The bundled trained model (models/tiny-kogpt2), whose largest probabilities spread over the gate's bins
# (a random model's are all near 1/V), on a small datastore of the bundled kowiki sample, evaluated on the
# start of that same text, so that the memory certainly helps (the best λ is above 0) and skipping costs.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

M=models/tiny-kogpt2
PY=/usr/bin/python3
expect_ok "datastore of 20,000 tokens" -- "$KNNLM" datastore build --model $M --corpus data/kowiki-sample/train.txt --out "$T/ds" \
    --window 256 --stride 128 --max-tokens 20000 --quiet
expect_ok "flat index" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/ds/flat.faiss" --quiet
EV=("$KNNLM" eval --model $M --dstore "$T/ds" --index "$T/ds/flat.faiss" --text data/kowiki-sample/train.txt --max-tokens 3000
    --window 256 --stride 128 --lambda 0:1:0.125 --ks 4,8 --k 8 --quiet)
expect_ok "eval searching every token" -- "${EV[@]}" --json "$T/all.json" --gate-plot "$T/gate.svg"
cp "$T/out" "$T/all.txt"
expect_ok "eval with --retrieval-gate 0.3" -- "${EV[@]}" --json "$T/gated.json" --retrieval-gate 0.3
cp "$T/out" "$T/gated.txt"

# The curve: 21 thresholds; 0 skips everything (the LM's perplexity), 1 nothing (the best point's); shares
# fall as the threshold rises; and the gated run's perplexity at the same (λ, k, T), its share of searched
# tokens and its own curve up to 0.3 are the ungated curve's point at 0.3, to every digit JSON holds.
check=$("$PY" - "$T/all.json" "$T/gated.json" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1])); g = json.load(open(sys.argv[2]))
out = []
c = a["retrieval_gate"]["curve"]; at = a["retrieval_gate"]["at"]
out.append(len(c) == 21 and a["retrieval_gate"]["signal"] == "lm_max_prob")
out.append(c[0]["threshold"] == 0 and c[0]["skipped"] == 1 and c[0]["ppl"] == a["lm_ppl"])
out.append(c[20]["threshold"] == 1 and c[20]["ppl"] == a["best"]["ppl"] and at == a["best"])
out.append(all(c[i]["skipped"] >= c[i + 1]["skipped"] for i in range(20)))
out.append(a["searched"] == a["tokens"])
p = c[6]
assert abs(p["threshold"] - 0.3) < 1e-12
same = [s for s in g["sweep"] if s["lambda"] == at["lambda"] and s["k"] == at["k"] and s["temperature"] == at["temperature"]]
out.append(len(same) == 1 and same[0]["ppl"] == p["ppl"])
out.append(g["tokens"] == a["tokens"] and abs(1 - g["searched"] / g["tokens"] - p["skipped"]) < 1e-12)
out.append(0 < p["skipped"] < 1 and at["lambda"] > 0)  # the test means something: some searches skipped, and the memory helps
out.append(c[20]["ppl"] < p["ppl"] < c[0]["ppl"])  # skipping the searches of confident tokens costs a little here
gc = g["retrieval_gate"]["curve"]
out.append(len(gc) == 7 and all(gc[i]["skipped"] == c[i]["skipped"] for i in range(7)))
out.append(g["lm_ppl"] == a["lm_ppl"])
print(" ".join("1" if x else "0" for x in out))
EOF
)
expect_eq "gate curve and gated evaluation agree" "$check" "1 1 1 1 1 1 1 1 1 1 1"
expect_eq "the gate plot has the curve's 21 points" "$(grep -c 'class="point"' "$T/gate.svg")" 21
expect_eq "the gate plot marks one point" "$(grep -c 'class="best"' "$T/gate.svg")" 1
expect_eq "the table shows the curve" "$(grep -c '^0\.[0-9][0-9] .*%' "$T/all.txt")" 20
searched=$("$PY" -c "import json; g = json.load(open('$T/gated.json')); print(g['searched'], g['tokens'])")
expect_eq "the gated run says how many tokens it searched" \
    "$(grep -o 'retrieval gate 0.3: [0-9]* of [0-9]* tokens searched' "$T/gated.txt" | awk '{print $4, $6}')" "$searched"

# generate: a gate at 1 changes nothing; one at 0.001 skips every search (the LM is surer than that of every
# greedy token here, as the count says), and the text is then the plain LM's
G=("$KNNLM" generate --model $M --prompt "대한민국의 수도는" --max-new-tokens 30 --temperature 0 --ignore-eos)
KG=("${G[@]}" --dstore "$T/ds" --index "$T/ds/flat.faiss" --lambda 0.5)
"${G[@]}" >"$T/lm.txt" 2>/dev/null
"${KG[@]}" >"$T/knn.txt" 2>/dev/null
"${KG[@]}" --retrieval-gate 1 >"$T/g1.txt" 2>"$T/g1.err"
"${KG[@]}" --retrieval-gate 0.001 >"$T/g0.txt" 2>"$T/g0.err"
expect_eq "the kNN changes the greedy text" "$(cmp -s "$T/lm.txt" "$T/knn.txt" && echo same || echo differs)" differs
expect_eq "generate --retrieval-gate 1: the kNN-LM's text" "$(cat "$T/g1.txt")" "$(cat "$T/knn.txt")"
expect_eq "generate --retrieval-gate 1: every token searched" "$(grep -o '[0-9]* of [0-9]* tokens searched' "$T/g1.err")" "30 of 30 tokens searched"
expect_eq "generate --retrieval-gate 0.001: none searched" "$(grep -o '[0-9]* of [0-9]* tokens searched' "$T/g0.err")" "0 of 30 tokens searched"
expect_eq "generate --retrieval-gate 0.001: the LM's text" "$(cat "$T/g0.txt")" "$(cat "$T/lm.txt")"
expect_error "generate --retrieval-gate 2" 2 "^knnlm generate: --retrieval-gate 2: " -- "${KG[@]}" --retrieval-gate 2

expect_error "--retrieval-gate 0 names the flag" 2 "^knnlm eval: --retrieval-gate 0: " -- "${EV[@]}" --retrieval-gate 0
expect_error "--retrieval-gate above 1" 2 "^knnlm eval: --retrieval-gate 1.5: " -- "${EV[@]}" --retrieval-gate 1.5
finish
