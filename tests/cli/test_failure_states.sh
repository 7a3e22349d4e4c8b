#!/usr/bin/env bash
# What a new user runs into when an input or a run goes wrong (issue 8, items 4 and 5): each case must end in a
# one-line error naming the file and the problem (or, for a stopped build, a state a corrected command can use),
# never a crash, a silent wrong number or a folder that has to be deleted by hand.
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-random
PY=/usr/bin/python3
head -n 40 data/kowiki-sample/train.txt >"$T/train.txt"
head -n 8 data/kowiki-sample/valid.txt >"$T/valid.txt"
BUILD=("$KNNLM" datastore build --model $M --window 64 --stride 32 --checkpoint-seconds 0 --quiet)
expect_ok "datastore" -- "${BUILD[@]}" --corpus "$T/train.txt" --out "$T/ds"
expect_ok "index" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/flat.faiss" --quiet
N=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['entries'])" "$T/ds/manifest.json")
EVAL=("$KNNLM" eval --model $M --text "$T/valid.txt" --k 8 --ks 8 --lambda 0,0.25 --quiet)

# ---- item 4: values outside the vocabulary are refused when the datastore is opened ----
cp -r "$T/ds" "$T/badval"
$PY - "$T/badval/vals.npy" <<'PY'
import sys, numpy as np
v = np.load(sys.argv[1], mmap_mode="r+"); v[5, 0] = 2147483647; v.flush()
PY
expect_error "eval --cases, a value >= vocab" 1 "badval/vals.npy: row 5 holds the value 2147483647, outside the vocabulary \[0, 51200\)" -- \
    "${EVAL[@]}" --dstore "$T/badval" --index "$T/flat.faiss" --cases "$T/cases.jsonl"
expect_error "eval without --cases, a value >= vocab" 1 "badval/vals.npy: row 5 holds the value 2147483647" -- \
    "${EVAL[@]}" --dstore "$T/badval" --index "$T/flat.faiss"
expect_error "query, a value >= vocab" 1 "badval/vals.npy: row 5" -- \
    "$KNNLM" query --model $M --dstore "$T/badval" --index "$T/flat.faiss" --context "대한민국의 수도는" --k 4
$PY - "$T/badval/vals.npy" <<'PY'
import sys, numpy as np
v = np.load(sys.argv[1], mmap_mode="r+"); v[5, 0] = -3; v.flush()
PY
expect_error "a negative value" 1 "badval/vals.npy: row 5 holds the value -3" -- "$KNNLM" datastore info "$T/badval"

# ---- item 4: an index whose ids point past the datastore is an error, not an out-of-bounds read ----
# an IDMap index with as many vectors as the datastore but ids shifted past its end, and the real index's sidecar
$PY - "$T/ds/keys.npy" "$T/shifted.faiss" <<'PY'
import sys, faiss, numpy as np
k = np.load(sys.argv[1]).astype(np.float32)
ix = faiss.IndexIDMap(faiss.IndexFlatL2(k.shape[1]))
ix.add_with_ids(k, np.arange(len(k), dtype=np.int64) + len(k))
faiss.write_index(ix, sys.argv[2])
PY
cp "$T/flat.faiss.meta.json" "$T/shifted.faiss.meta.json"
expect_error "eval, index ids past the datastore" 1 "shifted.faiss: search returned id [0-9]+, outside the datastore.s $N entries" -- \
    "${EVAL[@]}" --dstore "$T/ds" --index "$T/shifted.faiss"
expect_error "query, index ids past the datastore" 1 "shifted.faiss: search returned id" -- \
    "$KNNLM" query --model $M --dstore "$T/ds" --index "$T/shifted.faiss" --context "대한민국의 수도는" --k 4

# ---- item 4: an unknown key type in the manifest ----
cp -r "$T/ds" "$T/badkey"
sed -i 's/"key":\t"last_ffn_input"/"key":\t"bogus_layer"/' "$T/badkey/manifest.json"
grep -q bogus_layer "$T/badkey/manifest.json" || fail "could not edit the manifest's key"
expect_error "eval, unknown key in the manifest" 1 "badkey/manifest.json: key \"bogus_layer\" is not one of" -- \
    "${EVAL[@]}" --dstore "$T/badkey" --index "$T/flat.faiss"

# ---- item 4: a perplexity that is not a number is an error ----
# the model with ln_f scaled to FLT_MAX: finite weights whose logits overflow (inf - inf = NaN)
mkdir "$T/nanmodel"
cp $M/config.json $M/tokenizer.json $M/model.safetensors "$T/nanmodel/"
$PY - "$T/nanmodel/model.safetensors" <<'PY'
import sys, json, struct, numpy as np
p = sys.argv[1]
with open(p, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
    for name in ("transformer.ln_f.weight", "transformer.ln_f.bias"):
        a, b = h[name]["data_offsets"]
        f.seek(8 + n + a); f.write(np.full((b - a) // 4, 3.4e38, dtype="<f4").tobytes())
PY
expect_error "ppl of a model whose logits overflow" 1 "valid.txt: token 1: log p_LM is NaN: the model's logits are not finite numbers" -- \
    "$KNNLM" ppl --model "$T/nanmodel" --text "$T/valid.txt" --quiet
expect_ok "ppl of the model itself" -- "$KNNLM" ppl --model $M --text "$T/valid.txt" --quiet
grep -q -E "perplexity [0-9]+\.[0-9]+" "$T/out" || fail "ppl output: $(cat "$T/out")"

# ---- item 5: a build that failed before its first key does not block the corrected command ----
printf '첫 문단입니다.\n깨진 \xff\xfe 바이트\n마지막 문단.\n' >"$T/badutf8.txt"
cat "$T/train.txt" >>"$T/badutf8.txt"
expect_error "build on invalid UTF-8" 1 "badutf8.txt:2: invalid UTF-8 at byte offset 7" -- "${BUILD[@]}" --corpus "$T/badutf8.txt" --out "$T/utf"
[ ! -e "$T/utf/.lock" ] || fail "a failed build left its .lock behind"
expect_ok "info on the failed build" -- "$KNNLM" datastore info "$T/utf"
grep -q "progress    tokenization not finished; no keys yet" "$T/out" || fail "info on a build that never started: $(cat "$T/out")"
expect_ok "rerun with --replace-invalid-utf8" -- "${BUILD[@]}" --corpus "$T/badutf8.txt" --out "$T/utf" --replace-invalid-utf8
[ -e "$T/utf/manifest.json" ] && [ ! -e "$T/utf/build.json" ] || fail "the corrected build did not finish"
[ ! -e "$T/utf/.lock" ] || fail "a finished build left its .lock behind"
[ ! -e "$T/ds/.lock" ] || fail "the first build left its .lock behind"
expect_ok "the taken-over folder verifies" -- "$KNNLM" datastore verify "$T/utf" --quiet
# the same for a build stopped after tokenization, before its first key (as build.json records it then), made
# with another stride: the corrected command takes the folder over and ends with the reference's bytes
mkdir "$T/over"
cp "$T/ds/tokens.npy" "$T/over/"
$PY - "$T/ds/manifest.json" "$T/over/build.json" <<'PY'
import sys, json
m = json.load(open(sys.argv[1]))
m.update(stride=16, tokens=0, entry_begin=0, entries=0, keys_hash="", vals_hash="", entries_done=-1)
m.pop("tokens_hash", None)
json.dump(m, open(sys.argv[2], "w"))
PY
expect_ok "other settings over a build with no keys" -- "${BUILD[@]}" --corpus "$T/train.txt" --out "$T/over"
for f in keys.npy vals.npy tokens.npy manifest.json; do cmp -s "$T/ds/$f" "$T/over/$f" || fail "taken-over build: $f differs from the reference"; done
# a build with keys on disk is still protected against other settings
# SIGTERM and SIGINT: exit 143 and 130, the lock released, info shows how far it got
head -n 300 data/kowiki-sample/valid.txt >"$T/long.txt"
for sig in TERM INT; do
    want=$([ $sig = TERM ] && echo 143 || echo 130)
    rm -rf "$T/sig"
    "${BUILD[@]}" --corpus "$T/long.txt" --out "$T/sig" 2>"$T/sigerr" &
    bpid=$!
    # wait for keys to be written (the first checkpoint), so the signal lands in the window loop
    for _ in $(seq 600); do
        [ -e "$T/sig/build.json" ] && grep -q '"entries_done":\s*[1-9]' "$T/sig/build.json" 2>/dev/null && break
        sleep 0.05
    done
    kill -$sig $bpid; wait $bpid; rc=$?
    if [ $rc = 0 ]; then fail "the build finished before SIG$sig"; continue; fi
    expect_eq "exit code after SIG$sig" "$rc" "$want"
    grep -q "stopped at a checkpoint after [0-9]* of [0-9]* entries" "$T/sigerr" || fail "SIG$sig message: $(cat "$T/sigerr")"
    [ ! -e "$T/sig/.lock" ] || fail "SIG$sig left the .lock behind"
    expect_ok "info after SIG$sig" -- "$KNNLM" datastore info "$T/sig"
    grep -q -E "^progress    [1-9][0-9]* of [0-9]+ entries \([0-9.]+ %\)" "$T/out" || fail "info after SIG$sig: $(cat "$T/out")"
    expect_error "other settings after keys exist" 1 "refusing to mix a build in progress" -- "${BUILD[@]}" --corpus "$T/long.txt" --out "$T/sig" --stride 16
done

# ---- item 5: verify hashes tokens.npy too ----
cp -r "$T/ds" "$T/tok"
$PY - "$T/tok/tokens.npy" <<'PY'
import sys, numpy as np
t = np.load(sys.argv[1], mmap_mode="r+"); t[0] = (t[0] + 1) % 51200; t.flush()  # token 0 is no entry's value
PY
expect_error "verify after changing tokens.npy" 1 "tok/tokens.npy: content hash [0-9a-f]+ differs from the manifest's" -- \
    "$KNNLM" datastore verify "$T/tok" --quiet
rm "$T/tok/tokens.npy"
expect_error "verify without the tokens.npy the manifest lists" 1 "tok/tokens.npy: missing" -- "$KNNLM" datastore verify "$T/tok" --quiet
expect_ok "verify the untouched datastore" -- "$KNNLM" datastore verify "$T/ds" --quiet
grep -q "hashes match the manifest" "$T/out" || fail "verify output: $(cat "$T/out")"

# ---- item 5: corpus split refuses what build refuses ----
SPLIT=("$KNNLM" corpus split --train-out "$T/tr.txt" --heldout-out "$T/ho.txt" --seed 1 --force) # --force: each split below replaces the last one
head -c 4000 "$(command -v bash)" >"$T/binary.dat"
expect_error "build on binary input" 1 "binary.dat:1: a NUL byte at byte offset [0-9]+: a binary file" -- "${BUILD[@]}" --corpus "$T/binary.dat" --out "$T/bin" --replace-invalid-utf8
expect_error "split binary input" 1 "binary.dat:1: a NUL byte at byte offset [0-9]+: a binary file" -- "${SPLIT[@]}" --corpus "$T/binary.dat"
: >"$T/empty.txt"
expect_error "split an empty file" 1 "empty.txt: holds no documents" -- "${SPLIT[@]}" --corpus "$T/empty.txt"
printf '<doc id="1" url="u" title="가">\n가\n첫 문서.\n</doc>\n<doc id="2" url="u" title="나">\n나\n잘린 문서.\n' >"$T/unclosed.txt"
expect_error "split an unclosed <doc>" 1 "unclosed.txt: the <doc> of line 5 is never closed" -- "${SPLIT[@]}" --corpus "$T/unclosed.txt"
expect_error "build on an unclosed <doc>" 1 "unclosed.txt: the <doc> of line 5 is never closed" -- "${BUILD[@]}" --corpus "$T/unclosed.txt" --out "$T/unc"
printf '<doc id="1" url="u" title="가">\n가\n첫 문서.\n<doc id="2" url="u" title="나">\n나\n둘째.\n</doc>\n' >"$T/nested.txt"
expect_error "split a <doc> inside a <doc>" 1 "nested.txt:4: a <doc> opens while the <doc> of line 1 is still open" -- "${SPLIT[@]}" --corpus "$T/nested.txt"
expect_error "split invalid UTF-8" 1 "badutf8.txt:2: invalid UTF-8 at byte offset 7 .*--replace-invalid-utf8" -- "${SPLIT[@]}" --corpus "$T/badutf8.txt"
expect_ok "split invalid UTF-8 with --replace-invalid-utf8" -- "${SPLIT[@]}" --corpus "$T/badutf8.txt" --replace-invalid-utf8
expect_eq "split keeps every line, bytes as they were" "$(cat "$T/tr.txt" "$T/ho.txt" | sort | md5sum)" "$(sort "$T/badutf8.txt" | md5sum)"
printf '<doc id="1" url="u" title="가">\n가\n첫 문서.\n</doc>\n<doc id="2" url="u" title="나">\n나\n둘째.\n</doc>\n' >"$T/wiki.txt"
expect_ok "split a well-formed WikiExtractor file" -- "${SPLIT[@]}" --corpus "$T/wiki.txt"
grep -q "^2 documents\|^1 documents to .*, 1 to\|^0 documents to .*, 2 to" "$T/out" || fail "wiki split: $(cat "$T/out")"
finish
