#!/usr/bin/env bash
# No command ever destroys data (issue 8, item 3): every output path is checked before any work starts (not an
# input, not through a symbolic link or "..", not a datastore's own file, not another output of the same
# command, its folder exists), an existing file is replaced only if knnlm wrote it or with --force, and a write
# that fails names the file and leaves neither a partial file nor a temporary behind.
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-random
sums() { sha256sum "$@" | awk '{print $1}' | tr '\n' ' '; }
# no ".NAME.tmp.PID" left in a folder
no_temps() { local n; n=$(find "$2" -maxdepth 1 -name '.*.tmp.*' | wc -l); expect_eq "$1: no temporary left" "$n" 0; }

# ---- corpus split
head -n 50 data/kowiki-sample/train.txt >"$T/v.txt"
before=$(sums "$T/v.txt")
SPLIT=("$KNNLM" corpus split --corpus "$T/v.txt")
expect_error "split onto its input" 1 "--train-out .*v.txt: is the same file as --corpus .*v.txt \(an input\)" -- "${SPLIT[@]}" --train-out "$T/v.txt" --heldout-out "$T/h.txt"
expect_error "held-out onto the input" 1 "--heldout-out .*: is the same file as --corpus" -- "${SPLIT[@]}" --train-out "$T/t.txt" --heldout-out "$T/v.txt"
ln -s v.txt "$T/link.txt"
expect_error "split onto a symlink to its input" 1 "--train-out .*link.txt: is the same file as --corpus" -- "${SPLIT[@]}" --train-out "$T/link.txt" --heldout-out "$T/h.txt"
mkdir "$T/sub"
expect_error "split onto its input through .." 1 "--train-out .*sub/../v.txt: is the same file as --corpus" -- "${SPLIT[@]}" --train-out "$T/sub/../v.txt" --heldout-out "$T/h.txt"
ln "$T/v.txt" "$T/hard.txt"
expect_error "split onto a hard link of its input" 1 "is the same file as --corpus" -- "${SPLIT[@]}" --train-out "$T/hard.txt" --heldout-out "$T/h.txt" --force
expect_error "--force never overrides an input" 1 "is the same file as --corpus" -- "${SPLIT[@]}" --train-out "$T/v.txt" --heldout-out "$T/h.txt" --force
expect_eq "the corpus is unchanged" "$(sums "$T/v.txt")" "$before"
expect_error "train-out equal to heldout-out" 1 "--heldout-out .*t.txt: is the same file as --train-out .*t.txt" -- "${SPLIT[@]}" --train-out "$T/t.txt" --heldout-out "$T/t.txt"
expect_error "the same output through .." 1 "--heldout-out .*: is the same file as --train-out" -- "${SPLIT[@]}" --train-out "$T/t.txt" --heldout-out "$T/sub/../t.txt"
[ -e "$T/t.txt" ] && fail "a refused split wrote t.txt"
expect_error "output in a missing folder" 1 "--train-out /nonexistent/t.txt: the folder /nonexistent does not exist" -- "${SPLIT[@]}" --train-out /nonexistent/t.txt --heldout-out "$T/h.txt"
expect_error "output is a folder" 1 "--train-out .*sub: is a folder" -- "${SPLIT[@]}" --train-out "$T/sub" --heldout-out "$T/h.txt"
expect_error "output is a device" 1 "--train-out /dev/full: exists and is not a regular file" -- "${SPLIT[@]}" --train-out /dev/full --heldout-out "$T/h.txt" --force
ln -s "$T/nowhere.txt" "$T/dangling.txt"
expect_error "output is a dangling link" 1 "dangling.txt: is a symbolic link to a file that does not exist" -- "${SPLIT[@]}" --train-out "$T/dangling.txt" --heldout-out "$T/h.txt"
expect_ok "split" -- "${SPLIT[@]}" --train-out "$T/t.txt" --heldout-out "$T/h.txt" --seed 1
split1=$(sums "$T/t.txt" "$T/h.txt")
expect_error "an existing output needs --force" 1 "--train-out .*t.txt: exists; add --force to replace it" -- "${SPLIT[@]}" --train-out "$T/t.txt" --heldout-out "$T/h.txt" --seed 2
expect_eq "refused split left both files" "$(sums "$T/t.txt" "$T/h.txt")" "$split1"
expect_ok "split --force" -- "${SPLIT[@]}" --train-out "$T/t.txt" --heldout-out "$T/h.txt" --seed 2 --force
[ "$(sums "$T/t.txt" "$T/h.txt")" != "$split1" ] || fail "--force did not replace the split"
expect_eq "split keeps every document" "$(cat "$T/t.txt" "$T/h.txt" | sort | md5sum)" "$(sort "$T/v.txt" | md5sum)"
# a write that fails (RLIMIT_FSIZE: EFBIG, with SIGXFSZ ignored) names the file and leaves no partial file
mkdir "$T/w"
(fails=0; trap '' XFSZ; ulimit -f 8; expect_error "split write error" 1 "corpus split: .*w/t2.txt: write failed: File too large" -- \
    "${SPLIT[@]}" --train-out "$T/w/t2.txt" --heldout-out "$T/w/h2.txt"; exit $fails) || fails=$((fails + 1))
checks=$((checks + 1))
expect_eq "failed split left no file" "$(ls -A "$T/w" | wc -l)" 0
expect_eq "the corpus is still unchanged" "$(sums "$T/v.txt")" "$before"

# ---- a small datastore and its index
head -n 40 data/kowiki-sample/train.txt >"$T/train.txt"
head -n 8 data/kowiki-sample/valid.txt >"$T/valid.txt"
expect_ok "datastore" -- "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out "$T/ds" --window 64 --stride 32 --quiet
DS_FILES=("$T"/ds/keys.npy "$T"/ds/vals.npy "$T"/ds/tokens.npy "$T"/ds/manifest.json)
ds_sums=$(sums "${DS_FILES[@]}")
expect_error "index onto the datastore's keys" 1 "--out .*ds/keys.npy: is the datastore's own keys.npy" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/ds/keys.npy"
expect_error "index onto the keys, --force" 1 "is the datastore's own keys.npy" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/ds/keys.npy" --force
expect_error "index onto vals through .." 1 "is the datastore's own vals.npy" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/sub/../ds/vals.npy"
ln -s ds/manifest.json "$T/mlink"
expect_error "index onto a link to the manifest" 1 "--out .*mlink: is the datastore's own manifest.json" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/mlink"
expect_eq "the datastore is unchanged" "$(sums "${DS_FILES[@]}")" "$ds_sums"
expect_ok "index inside the datastore folder" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/ds/flat.faiss" --quiet
expect_ok "an index is rebuilt in place without --force" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/ds/flat.faiss" --quiet
echo "my notes" >"$T/notes.faiss"
expect_error "index over a file knnlm did not write" 1 "--out .*notes.faiss: exists and is not a file this option wrote; add --force" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/notes.faiss"
expect_eq "the notes are unchanged" "$(cat "$T/notes.faiss")" "my notes"
expect_ok "index --force" -- "$KNNLM" index build --dstore "$T/ds" --out "$T/notes.faiss" --force --quiet
expect_eq "the datastore is still unchanged" "$(sums "${DS_FILES[@]}")" "$ds_sums"
(fails=0; trap '' XFSZ; ulimit -f 300; expect_error "index write error" 1 "index build: .*w/f2.faiss: write failed: File too large" -- \
    "$KNNLM" index build --dstore "$T/ds" --out "$T/w/f2.faiss"; exit $fails) || fails=$((fails + 1))
checks=$((checks + 1))
expect_eq "failed index build left no file" "$(ls -A "$T/w" | wc -l)" 0

# ---- eval
EV=("$KNNLM" eval --model $M --dstore "$T/ds" --index "$T/ds/flat.faiss" --text "$T/valid.txt" --lambda 0:1:0.5 --quiet)
in_sums=$(sums "$T/valid.txt" "$T"/ds/* $M/config.json)
expect_error "eval --json onto its text" 1 "--json .*valid.txt: is the same file as --text" -- "${EV[@]}" --json "$T/valid.txt"
expect_error "eval --csv onto its text, --force" 1 "--csv .*valid.txt: is the same file as --text" -- "${EV[@]}" --csv "$T/valid.txt" --force
ln -s valid.txt "$T/vlink"
expect_error "eval --cases onto a link to its text" 1 "--cases .*vlink: is the same file as --text" -- "${EV[@]}" --cases "$T/vlink"
expect_error "eval --plot onto the index" 1 "--plot .*flat.faiss: is the same file as --index" -- "${EV[@]}" --plot "$T/ds/flat.faiss"
expect_error "eval --json onto the index's sidecar" 1 "is the same file as --index .*flat.faiss.meta.json" -- "${EV[@]}" --json "$T/ds/flat.faiss.meta.json"
expect_error "eval --csv onto the keys" 1 "--csv .*keys.npy: is the datastore's own keys.npy" -- "${EV[@]}" --csv "$T/ds/keys.npy" --force
expect_error "eval --json onto the model's config" 1 "--json .*config.json: is a file of the folder --model" -- "${EV[@]}" --json $M/config.json --force
expect_error "eval --json onto the model through .." 1 "is a file of the folder --model" -- "${EV[@]}" --json $M/../tiny-random/tokenizer.json
expect_error "eval --json and --csv the same file" 1 "--json .*r.out: is the same file as --csv .*r.out; give the outputs different paths" -- "${EV[@]}" --json "$T/r.out" --csv "$T/r.out"
expect_eq "eval's inputs are unchanged" "$(sums "$T/valid.txt" "$T"/ds/* $M/config.json)" "$in_sums"
expect_error "eval --json into a missing folder" 1 "^knnlm eval: --json /nonexistent/x.json: the folder /nonexistent does not exist$" -- "${EV[@]}" --json /nonexistent/x.json
# checked before anything is loaded: with a model that does not exist the output is still what fails first
expect_error "outputs checked before the model is loaded" 1 "--json /nonexistent/x.json: the folder /nonexistent does not exist" -- \
    "$KNNLM" eval --model "$T/no-model" --dstore "$T/ds" --index "$T/ds/flat.faiss" --text "$T/valid.txt" --json /nonexistent/x.json
expect_error "eval --k 0 names --k" 2 "^knnlm eval: --k 0: must be at least 1$" -- "${EV[@]}" --k 0
expect_error "eval --k -3 names --k" 2 "^knnlm eval: --k -3: must be at least 1$" -- "${EV[@]}" --k -3 --case-k 1
expect_ok "eval with every output" -- "${EV[@]}" --json "$T/r.json" --csv "$T/r.csv" --plot "$T/r.svg" --cases "$T/c.jsonl" --case-k 4
grep -q '"lm_ppl"' "$T/r.json" || fail "no JSON written"
out_sums=$(sums "$T/r.json" "$T/r.csv" "$T/r.svg" "$T/c.jsonl")
cases_sum=$(sums "$T/c.jsonl")
expect_ok "eval again over its own outputs (no --force needed)" -- "${EV[@]}" --json "$T/r.json" --csv "$T/r.csv" --plot "$T/r.svg" --cases "$T/c.jsonl" --case-k 4
expect_eq "the same outputs again" "$(sums "$T/r.json" "$T/r.csv" "$T/r.svg" "$T/c.jsonl")" "$out_sums"
expect_error "eval --json over its CSV" 1 "--json .*r.csv: exists and is not a file this option wrote; add --force" -- "${EV[@]}" --json "$T/r.csv"
echo "my notes" >"$T/notes.txt"
expect_error "eval --json over a user's file" 1 "--json .*notes.txt: exists and is not a file this option wrote; add --force" -- "${EV[@]}" --json "$T/notes.txt"
expect_eq "the user's file is unchanged" "$(cat "$T/notes.txt")" "my notes"
expect_ok "eval --json --force" -- "${EV[@]}" --json "$T/notes.txt" --force
grep -q '"lm_ppl"' "$T/notes.txt" || fail "--force did not replace notes.txt"
# a write that fails mid-way: the cases file grows past the limit while the evaluation runs
(fails=0; trap '' XFSZ; ulimit -f 100; expect_error "eval --cases write error" 1 "^knnlm eval: .*w/c.jsonl: write failed: File too large$" -- \
    "${EV[@]}" --cases "$T/w/c.jsonl" --json "$T/w/r.json"; exit $fails) || fails=$((fails + 1))
checks=$((checks + 1))
expect_eq "failed eval left no file" "$(ls -A "$T/w" | wc -l)" 0
# ... and over an earlier cases file, that file is left whole
(fails=0; trap '' XFSZ; ulimit -f 100; expect_error "eval --cases write error over an old file" 1 "c.jsonl: write failed" -- \
    "${EV[@]}" --cases "$T/c.jsonl" --case-k 8; exit $fails) || fails=$((fails + 1))
checks=$((checks + 1))
expect_eq "the earlier cases file is whole" "$(sums "$T/c.jsonl")" "$cases_sum"
no_temps "eval" "$T"
# a really full disk, where this machine lets us mount a small tmpfs
if mkdir -p "$T/small" && mount -t tmpfs -o size=64k tmpfs "$T/small" 2>/dev/null; then
    expect_error "eval --cases on a full disk" 1 "small/c.jsonl: write failed: no space left on device \(disk full\)" -- "${EV[@]}" --cases "$T/small/c.jsonl"
    expect_eq "full disk: no file left" "$(ls -A "$T/small" | wc -l)" 0
    head -c 60k /dev/zero >"$T/small/filler" 2>/dev/null
    expect_error "corpus split on a full disk" 1 "small/t.txt: write failed: no space left on device \(disk full\)" -- \
        "$KNNLM" corpus split --corpus "$T/train.txt" --train-out "$T/small/t.txt" --heldout-out "$T/small/h.txt" --train 0.99
    expect_eq "full disk: only the filler" "$(ls -A "$T/small")" "filler"
    umount "$T/small"
else
    echo "note: cannot mount a small tmpfs here; the full-disk cases rest on ulimit -f above" >&2
fi

# ---- embed
R=tests/data/tiny-random
cp $R/case1.ids.npy "$T/ids.npy"
ids_sum=$(sums "$T/ids.npy")
expect_error "embed onto its ids" 1 "--out .*ids.npy: is the same file as --ids" -- "$KNNLM" embed --model $R --ids "$T/ids.npy" --out "$T/ids.npy" --force
expect_error "embed --out equal to --logits" 1 "--logits .*k.npy: is the same file as --out" -- "$KNNLM" embed --model $R --ids "$T/ids.npy" --out "$T/k.npy" --logits "$T/k.npy"
expect_error "embed into the model folder" 1 "--out .*case0.ids.npy: is a file of the folder --model" -- "$KNNLM" embed --model $R --ids "$T/ids.npy" --out $R/case0.ids.npy --force
expect_error "embed onto its weights" 1 "--logits .*model.safetensors: is the same file as --weights" -- "$KNNLM" embed --model $R --weights $R/model.safetensors --ids "$T/ids.npy" --out "$T/k.npy" --logits $R/model.safetensors --force
expect_eq "the ids are unchanged" "$(sums "$T/ids.npy")" "$ids_sum"
expect_ok "embed" -- "$KNNLM" embed --model $R --ids "$T/ids.npy" --out "$T/k.npy"
expect_error "embed over an existing file" 1 "--out .*k.npy: exists; add --force to replace it" -- "$KNNLM" embed --model $R --ids "$T/ids.npy" --out "$T/k.npy"
expect_ok "embed --force" -- "$KNNLM" embed --model $R --ids "$T/ids.npy" --out "$T/k.npy" --force

# ---- datastore build / merge: the output folder
model_sums=$(sums $M/*)
expect_error "datastore into the model folder" 1 "--out .*tiny-random: is the folder --model" -- "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out $M --window 64 --stride 32
expect_eq "the model folder is unchanged" "$(sums $M/*)" "$model_sums"
mkdir "$T/mine" && echo "not a datastore" >"$T/mine/keys.npy"
expect_error "datastore into a folder with someone's keys.npy" 1 "--out .*mine: holds keys.npy but is not a datastore" -- "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out "$T/mine" --window 64 --stride 32
expect_error "merge into a folder with someone's keys.npy" 1 "--out .*mine: holds keys.npy but is not a datastore" -- "$KNNLM" datastore merge --out "$T/mine" "$T/ds"
expect_eq "their keys.npy is unchanged" "$(cat "$T/mine/keys.npy")" "not a datastore"
mkdir "$T/ds2" && cp "$T/train.txt" "$T/ds2/tokens.npy"
expect_error "datastore whose corpus is one of its files" 1 "--out .*ds2: would replace its tokens.npy, which is --corpus" -- "$KNNLM" datastore build --model $M --corpus "$T/ds2/tokens.npy" --out "$T/ds2" --window 64 --stride 32
expect_error "merge onto a shard" 1 "--out .*ds: is the folder shard .*ds \(an input\)" -- "$KNNLM" datastore merge --out "$T/ds" "$T/ds"
expect_eq "the datastore is unchanged at the end" "$(sums "${DS_FILES[@]}")" "$ds_sums"
finish
