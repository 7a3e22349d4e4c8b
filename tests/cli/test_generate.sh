#!/usr/bin/env bash
# knnlm generate: the text and --json outputs agree with each other and with the library's guarantees (greedy
# text is the decode of the --json labels; λ = 1, k = 1 greedy emits the nearest neighbour's value; the same
# seed gives the same bytes for --threads 1 and 2, another seed other text); bad options are one-line errors
# naming the flag. Model: tests/data/tiny-random (random weights, the KoGPT2 tokenizer, n_positions 128).
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-random
head -n 12 data/kowiki-sample/train.txt >"$T/train.txt"
P="대한민국의 수도는"
expect_ok "datastore" -- "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out "$T/ds" --window 64 --stride 32 --quiet
expect_ok "index" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/flat.faiss" --quiet
KNN=(--dstore "$T/ds" --index "$T/flat.faiss")

expect_ok "--help" -- "$KNNLM" generate --help
grep -q -- "--top-p" "$T/out" || fail "--help does not list --top-p"

# greedy, plain LM: 12 tokens of text, then the same run as JSON: 12 objects whose labels spell the text
expect_ok "greedy text" -- "$KNNLM" generate --model $M --prompt "$P" --max-new-tokens 12 --temperature 0
cp "$T/out" "$T/greedy.txt"
grep -q "12 tokens after a 2-token prompt" "$T/err" || fail "summary: $(cat "$T/err")"
expect_ok "greedy json" -- "$KNNLM" generate --model $M --prompt "$P" --max-new-tokens 12 --temperature 0 --json --quiet
expect_eq "json lines" "$(wc -l <"$T/out")" 12
labels=$(/usr/bin/python3 -c "
import json, sys
rows = [json.loads(l) for l in open('$T/out')]
# greedy with the LM alone: every label is the LM's top token and the interpolation's
assert all(r['label'] == r['lm'] == r['lm+knn'] for r in rows), rows
assert all(r['labels'] == [] and r['knn_probability'] == 0 for r in rows)
print(''.join(r['label'] for r in rows), end='')")
expect_eq "greedy text = json labels" "$(head -c -1 "$T/greedy.txt")" "$labels"

# λ = 1, k = 1, greedy: every token is its single neighbour's value, with all the probability
expect_ok "knn greedy" -- "$KNNLM" generate --model $M "${KNN[@]}" --prompt "$P" --max-new-tokens 10 --temperature 0 --lambda 1 --k 1 --json --quiet
/usr/bin/python3 -c "
import json
rows = [json.loads(l) for l in open('$T/out')]
assert len(rows) == 10, len(rows)
for r in rows:
    assert r['labels'] == [r['label']] and r['knn'] == r['label'] == r['lm+knn'], r
    assert r['knn_probability'] == 1 and r['knn_lm_percent'] == 100 and r['softmax'] == [1], r
" || fail "λ = 1, k = 1: tokens are not the neighbours' values"
checks=$((checks + 1))

# sampling: the same seed gives the same bytes with 1 and 2 threads (text and JSON), another seed other text
for n in 1 2; do
    expect_ok "sample, $n threads" -- "$KNNLM" generate --model $M "${KNN[@]}" --prompt "$P" --max-new-tokens 20 --seed 11 --top-p 0.9 --threads $n --quiet
    cp "$T/out" "$T/s11.$n"
    expect_ok "sample json, $n threads" -- "$KNNLM" generate --model $M "${KNN[@]}" --prompt "$P" --max-new-tokens 20 --seed 11 --top-p 0.9 --threads $n --json --quiet
    cp "$T/out" "$T/s11j.$n"
done
checks=$((checks + 2))
cmp -s "$T/s11.1" "$T/s11.2" || fail "seed 11: text differs between --threads 1 and 2"
cmp -s "$T/s11j.1" "$T/s11j.2" || fail "seed 11: JSON differs between --threads 1 and 2"
expect_ok "sample, seed 12" -- "$KNNLM" generate --model $M "${KNN[@]}" --prompt "$P" --max-new-tokens 20 --seed 12 --top-p 0.9 --quiet
checks=$((checks + 1))
cmp -s "$T/s11.1" "$T/out" && fail "seeds 11 and 12 gave the same text"
# top-k 1 is greedy
expect_ok "top-k 1" -- "$KNNLM" generate --model $M --prompt "$P" --max-new-tokens 12 --top-k 1 --seed 5 --quiet
checks=$((checks + 1))
cmp -s "$T/out" "$T/greedy.txt" || fail "--top-k 1 differs from --temperature 0"
# past n_positions (128): the window slides
expect_ok "slide" -- "$KNNLM" generate --model $M --prompt "$P" --max-new-tokens 140 --temperature 0
grep -q "the window slid" "$T/err" || fail "140 tokens after 3 did not slide the window: $(cat "$T/err")"

G=("$KNNLM" generate --model $M --prompt "$P")
expect_error "no --prompt" 1 "give exactly one of --prompt" -- "$KNNLM" generate --model $M
expect_error "empty prompt" 1 "--prompt: the text is empty" -- "${G[@]}" --prompt ""
expect_error "--dstore alone" 1 "--dstore: needs --index" -- "${G[@]}" --dstore "$T/ds"
expect_error "--index alone" 1 "--index: needs --dstore" -- "${G[@]}" --index "$T/flat.faiss"
expect_error "--max-new-tokens" 2 "--max-new-tokens -1" -- "${G[@]}" --max-new-tokens -1
expect_error "--max-new-tokens x" 2 "--max-new-tokens expects a whole number" -- "${G[@]}" --max-new-tokens x
expect_error "--lambda" 2 "--lambda 1.5" -- "${G[@]}" --lambda 1.5
expect_error "--knn-temperature" 1 "--knn-temperature 0" -- "${G[@]}" --knn-temperature 0
expect_error "--temperature" 2 "--temperature -1" -- "${G[@]}" --temperature -1
expect_error "--top-k" 2 "--top-k -3" -- "${G[@]}" --top-k -3
expect_error "--top-p" 1 "--top-p 0" -- "${G[@]}" --top-p 0
expect_error "--top-p 2" 2 "--top-p 2" -- "${G[@]}" --top-p 2
expect_error "--seed" 1 "--seed -4" -- "${G[@]}" --seed -4
expect_error "--seed x" 1 "--seed x1" -- "${G[@]}" --seed x1
expect_error "--distance" 1 "--distance l1" -- "${G[@]}" --distance l1
expect_error "--k" 2 "--k 0" -- "${G[@]}" "${KNN[@]}" --k 0
expect_error "--k too big" 1 "--k 100000: larger than the datastore" -- "${G[@]}" "${KNN[@]}" --k 100000
expect_error "--nprobe" 2 "--nprobe 0" -- "${G[@]}" "${KNN[@]}" --nprobe 0
expect_error "missing model" 1 "nope" -- "$KNNLM" generate --model "$T/nope" --prompt "$P"
expect_error "unknown option" 2 "--frobnicate" -- "${G[@]}" --frobnicate
finish
