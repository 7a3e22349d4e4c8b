#!/usr/bin/env bash
# Writes the seed corpora (fuzz/corpus/<name>/): fuzz/make_seeds.py for the formats Python can write, then a
# tiny datastore built by knnlm for the manifest (manifest.json, a build.json checkpoint, a sharded and a
# linked-merge manifest) and the index sidecar (INDEX.meta.json). Usage: fuzz/make_seeds.sh [KNNLM]
set -euo pipefail
cd "$(dirname "$0")/.."
KNNLM=${1:-build/release/knnlm}
PATH=/usr/bin:$PATH python3 fuzz/make_seeds.py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head -n 40 data/kowiki-sample/valid.txt >"$T/corpus.txt"
B=("$KNNLM" datastore build --model tests/data/tiny-random --corpus "$T/corpus.txt" --window 64 --stride 32 --quiet)
"${B[@]}" --out "$T/ds" --dtype f32
for i in 0 1; do "${B[@]}" --out "$T/s$i" --shard $i/2; done
"$KNNLM" datastore merge --out "$T/linked" --link "$T/s0" "$T/s1" --quiet
"$KNNLM" index build --dstore "$T/ds" --out "$T/flat.faiss" --quiet
mkdir -p fuzz/corpus/manifest fuzz/corpus/index_meta
cp "$T/ds/manifest.json" fuzz/corpus/manifest/manifest.json
cp "$T/s1/manifest.json" fuzz/corpus/manifest/shard.json
cp "$T/linked/manifest.json" fuzz/corpus/manifest/linked.json
# a build in progress: the settings with empty hashes and the checkpoint (build.c writes it so)
python3 - "$T/ds/manifest.json" fuzz/corpus/manifest/build.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["keys_hash"] = m["vals_hash"] = ""
m["entries_done"] = 100
json.dump(m, open(sys.argv[2], "w"), indent=2)
PY
cp "$T/flat.faiss.meta.json" fuzz/corpus/index_meta/flat.meta.json
# the fixed datastore fuzz_index_meta.c checks against
python3 - fuzz/corpus/index_meta/flat.meta.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m.update(entries=1000, dim=768, key="last_ffn_input", weights_hash="0123456789abcdef0123456789abcdef",
         keys_hash="fedcba9876543210fedcba9876543210")
json.dump(m, open(sys.argv[1], "w"), indent=2)
m["keys_hash"] = ""
json.dump(m, open(sys.argv[1].replace("flat", "nokeyshash"), "w"))
PY
echo "manifest and index_meta seeds written"
