#!/usr/bin/env bash
# knnlm tokenize / embed / ppl from the command line: results and errors.
. "$(dirname "$0")/lib.sh"
M=models/tiny-kogpt2
R=tests/data/tiny-random

# tokenize: the SKT model card example (tests/data/tokenizer/SOURCE.md), decode back, JSON lines
expect_ok "tokenize" -- "$KNNLM" tokenize --model $M --text <(printf '안녕하세요. 한국어 GPT-2 입니다.😤:)l^o\n')
expect_eq "tokenize ids" "$(cat "$T/out")" "25906 8702 7801 25856 34407 10528 422 426 18258 9241 12521 254 110 162"
expect_ok "decode" -- "$KNNLM" tokenize --model $M --decode --text <(echo "25906 8702 7801 25856 34407 10528 422 426 18258 9241 12521 254 110 162")
expect_eq "decode text" "$(cat "$T/out")" "안녕하세요. 한국어 GPT-2 입니다.😤:)l^o"
expect_ok "decode skip special" -- "$KNNLM" tokenize --model $M --decode --skip-special --text <(echo "0 25906 1")
expect_eq "decode skip special text" "$(cat "$T/out")" "안녕"
printf '{"text": "첫 줄\\n둘째 줄"}\n' >"$T/in.jsonl"
expect_ok "tokenize jsonl" -- "$KNNLM" tokenize --tokenizer tests/data/tokenizer/tokenizer.json --jsonl --text "$T/in.jsonl"
grep -q '"ids":\[' "$T/out" && grep -q '375\|"\\n"' "$T/out" || fail "jsonl output: $(cat "$T/out")"
printf 'ok line\nbad \xff byte\n' >"$T/bad.txt"
expect_error "invalid utf-8" 1 "bad.txt:2: .*invalid UTF-8 at byte offset 4" -- "$KNNLM" tokenize --model $M --text "$T/bad.txt"
expect_ok "invalid utf-8 replaced" -- "$KNNLM" tokenize --model $M --text "$T/bad.txt" --replace-invalid-utf8
expect_eq "replaced line has <unk>" "$(sed -n 2p "$T/out" | tr ' ' '\n' | grep -c '^5$')" "1"
expect_error "decode bad id" 1 "51200" -- "$KNNLM" tokenize --model $M --decode --text <(echo "1 51200")
expect_error "decode not ids" 1 "expected token ids" -- "$KNNLM" tokenize --model $M --decode --text <(echo "1 x")
expect_error "no model" 1 "nonexistent.*tokenizer.json" -- "$KNNLM" tokenize --model /nonexistent
printf '{"model": {"type": "BPE", "vocab": [1]}}' >"$T/tokenizer.json"
expect_error "malformed tokenizer.json" 1 "tokenizer.json" -- "$KNNLM" tokenize --tokenizer "$T/tokenizer.json"
expect_error "unknown option" 2 "unknown option --frobnicate" -- "$KNNLM" tokenize --frobnicate
expect_error "unknown command" 2 "unknown command" -- "$KNNLM" frobnicate
expect_ok "help" -- "$KNNLM" tokenize --help
grep -q "usage: knnlm tokenize" "$T/out" || fail "tokenize --help"

# embed: case1 of the PyTorch references, in both weight formats
/usr/bin/python3 - "$R" "$T" <<'PY' || fail "python reference check setup"
import numpy as np, sys
r, t = sys.argv[1], sys.argv[2]
np.save(t + "/ids64.npy", np.load(r + "/case1.ids.npy").astype(np.int64).reshape(1, -1))
PY
# (--force: the second weights format replaces the first one's outputs, which embed refuses without it)
for w in model.safetensors pytorch_model.bin; do
    expect_ok "embed $w" -- "$KNNLM" embed --model $R --weights $R/$w --ids $R/case1.ids.npy --out "$T/keys.npy" --key final_hidden --logits "$T/logits.npy" --force
    /usr/bin/python3 - "$R" "$T" <<'PY' || fail "embed $w differs from the PyTorch reference"
import numpy as np, sys
r, t = sys.argv[1], sys.argv[2]
assert np.abs(np.load(t + "/keys.npy") - np.load(r + "/case1.final_hidden.npy")).max() <= 1e-4
assert np.abs(np.load(t + "/logits.npy")[-4:] - np.load(r + "/case1.logits_tail.npy")).max() <= 1e-3
PY
done
expect_ok "embed int64 [1,T] ids" -- "$KNNLM" embed --model $R --ids "$T/ids64.npy" --out "$T/k2.npy"
expect_error "embed key type" 1 "key type \"middle\"" -- "$KNNLM" embed --model $R --ids $R/case1.ids.npy --out "$T/k.npy" --key middle
expect_error "embed float ids" 1 "case1.last_ffn_input.npy: expected int32 or int64" -- "$KNNLM" embed --model $R --ids $R/case1.last_ffn_input.npy --out "$T/k.npy"
expect_error "embed missing --out" 2 "--out KEYS.npy is required" -- "$KNNLM" embed --model $R --ids $R/case1.ids.npy
head -c 100 $R/model.safetensors >"$T/trunc.safetensors"
expect_error "truncated weights" 1 "trunc.safetensors" -- "$KNNLM" embed --model $R --weights "$T/trunc.safetensors" --ids $R/case1.ids.npy --out "$T/k.npy"
head -c 1000 tests/data/legacy/p2.bin >"$T/trunc-legacy.bin"   # cut inside the state-dict pickle
expect_error "truncated legacy weights" 1 "trunc-legacy.bin: state-dict pickle at byte [0-9]+ .*truncated" -- "$KNNLM" embed --model $R --weights "$T/trunc-legacy.bin" --ids $R/case1.ids.npy --out "$T/k.npy"
printf '\x80\x02N.' >"$T/none.pkl"
expect_error "pickle without torch's magic" 1 "none.pkl: a pickle, but not a PyTorch checkpoint" -- "$KNNLM" embed --model $R --weights "$T/none.pkl" --ids $R/case1.ids.npy --out "$T/k.npy"

# ppl: sane, deterministic, independent of threads; errors
head -n 20 data/kowiki-sample/valid.txt >"$T/valid.txt"
expect_ok "ppl" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --window 128 --stride 64 --json --threads 1
one=$(cat "$T/out")
expect_ok "ppl 2 threads" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --window 128 --stride 64 --json --threads 2
expect_eq "ppl independent of threads" "$(sed 's/, "seconds".*//' "$T/out")" "$(echo "$one" | sed 's/, "seconds".*//')"
/usr/bin/python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert 100 < d['ppl'] < 20000, d" "$one" || fail "ppl out of range: $one"
: >"$T/empty.txt"
expect_ok "ppl --precision bf16 (blocks and lm_head)" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --window 128 --stride 64 --json --precision bf16
/usr/bin/python3 -c "
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert b['precision'] == 'bf16' and a['precision'] == 'fp32', (a, b)
assert a['ppl'] != b['ppl'] and abs(b['ppl'] / a['ppl'] - 1) < 1e-3, (a['ppl'], b['ppl'])" "$one" "$(cat "$T/out")" || fail "ppl bf16 not within 0.1% of fp32: $one / $(cat "$T/out")"
checks=$((checks + 1))
expect_error "ppl --precision fp16" 1 "^knnlm ppl: --precision fp16: expected fp32, bf16 or auto$" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --precision fp16
expect_error "ppl empty text" 1 "empty.txt: gives 0 tokens" -- "$KNNLM" ppl --model $M --text "$T/empty.txt"
expect_ok "ppl window too big: clamped" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --window 1024 --max-tokens 600
grep -q "^knnlm ppl: --window 1024: the model takes at most 512 tokens (n_positions); using --window 512$" "$T/err" || fail "ppl clamp: $(cat "$T/err")"
grep -q "window 512, stride 256" "$T/out" || fail "ppl clamped window: $(cat "$T/out")"
expect_error "ppl stride" 1 "--stride 300" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --window 256 --stride 300
expect_error "ppl threads" 2 "--threads" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --threads 0
# A safetensors file with a valid header and random tensor bytes (issue 8): refused at load, naming a tensor,
# instead of "perplexity nan" with exit 0 or NaN keys in a datastore.
mkdir -p "$T/randw"
cp $R/config.json $R/tokenizer.json "$T/randw/"
python3 - "$R/model.safetensors" "$T/randw/model.safetensors" <<'PY'
import json, random, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
random.seed(8)
body = random.randbytes(len(data) - 8 - n)
open(sys.argv[2], "wb").write(data[:8 + n] + body)
PY
printf '대한민국의 수도는 서울이다.\n' >"$T/short.txt"
expect_error "random weights: ppl" 1 "randw/model.safetensors: tensor .* holds a non-finite value" -- "$KNNLM" ppl --model "$T/randw" --text "$T/short.txt"
expect_error "random weights: datastore build" 1 "randw/model.safetensors: tensor .* holds a non-finite value" -- \
    "$KNNLM" datastore build --model "$T/randw" --corpus "$T/short.txt" --out "$T/randw-ds" --quiet
[ -e "$T/randw-ds/keys.npy" ] && fail "random weights: a keys file was written"
finish
