#!/usr/bin/env bash
# The README's first command: installs what is missing (Debian packages), builds, and runs the main job on
# the bundled sample -- the whole kNN-LM pipeline with the bundled small Korean GPT-2 (models/tiny-kogpt2):
#   1. tokenize a sentence and the LM's own perplexity on held-out text,
#   2. a datastore of the model's keys over the sample's train part,
#   3. a Faiss index over it,
#   4. the λ sweep on the sample's held-out part: the table, a CSV, JSON and the plot,
#   5. one case analysis: what the LM and the kNN predict, token by token.
# Everything it writes goes to out/quickstart/ (set OUT to change it). Run again: finished steps are reused.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-out/quickstart}
MODEL=models/tiny-kogpt2
TRAIN=data/kowiki-sample/train.txt
VALID=data/kowiki-sample/valid.txt

scripts/install-deps.sh
make -j"$(nproc)"
K=build/release/knnlm
mkdir -p "$OUT"

echo; echo "== 1. the tokenizer and the LM alone"
SENTENCE="대한민국의 수도는 서울특별시이다."
echo "$SENTENCE"
echo "$SENTENCE" | $K tokenize --model $MODEL
$K ppl --model $MODEL --text $VALID --window 512 --stride 256 --max-tokens 30000 --quiet

echo; echo "== 2. datastore: keys of the first 300,000 tokens of the train sample"
$K datastore build --model $MODEL --corpus $TRAIN --out "$OUT/dstore" --window 512 --stride 256 --max-tokens 300000
$K datastore verify --dstore "$OUT/dstore" --quiet

echo; echo "== 3. index (exact search)"
[ -e "$OUT/dstore/flat.faiss" ] || $K index build --dstore "$OUT/dstore" --out "$OUT/dstore/flat.faiss"

echo; echo "== 4. kNN-LM perplexity on the first 30,000 tokens of the held-out sample"
$K eval --model $MODEL --dstore "$OUT/dstore" --index "$OUT/dstore/flat.faiss" --text $VALID --max-tokens 30000 \
    --k 256 --ks 8,16,32,64,128,256 --lambda 0:1:0.05 \
    --csv "$OUT/sweep.csv" --json "$OUT/sweep.json" --plot "$OUT/ppl_vs_lambda.svg" --gate-plot "$OUT/gate.svg" \
    --cases "$OUT/cases.jsonl" --case-k 8

echo; echo "== 5. case analysis of one sentence (k = 8, λ = 0.25): $OUT/query.jsonl"
$K query --model $MODEL --dstore "$OUT/dstore" --index "$OUT/dstore/flat.faiss" --k 8 --lambda 0.25 \
    --context "$SENTENCE" >"$OUT/query.jsonl"
head -n 3 "$OUT/query.jsonl"
echo "..."
echo; echo "Outputs in $OUT: sweep.csv, sweep.json, ppl_vs_lambda.svg and gate.svg (open them in a browser), cases.jsonl, query.jsonl"

# knnlm on the PATH: installed under PREFIX (default /usr/local) when we may write there (root, as in the README)
PREFIX=${PREFIX:-/usr/local}
echo
if [ -w "$PREFIX" ] || { [ ! -e "$PREFIX" ] && [ -w "$(dirname "$PREFIX")" ]; }; then
    make -s install PREFIX="$PREFIX"
    case ":$PATH:" in
        *":$PREFIX/bin:"*) echo "knnlm is now on your PATH ($PREFIX/bin/knnlm): try knnlm --help, or man knnlm" ;;
        *) echo "knnlm is installed as $PREFIX/bin/knnlm (add $PREFIX/bin to your PATH)" ;;
    esac
else
    echo "The program is $PWD/$K; to put it on your PATH: sudo make install (or make install PREFIX=\$HOME/.local)"
fi
echo
echo "Talk to it: the HTTP service and the viewer on this datastore (then open http://127.0.0.1:8080/):"
echo "  $K serve --model $MODEL --dstore $OUT/dstore --index $OUT/dstore/flat.faiss"
