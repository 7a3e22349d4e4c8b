#!/usr/bin/env bash
# Issue 12 (using the tool): one check per row of its table but the plot's.
#   - the conventions, walked over every command registered in src/cli/main.c (scripts/knnlm-commands.sh reads
#     them from `knnlm --help`): each numeric option has a range, and a value outside it, or not a number, is a
#     usage error (exit 2) naming the option; 0 is accepted only where the help says what it means; a datastore
#     folder is --dstore; every command takes --threads, --progress-seconds and --quiet;
#   - datastore info / verify take --dstore (and the folder as the one argument, as before);
#   - a --window above the model's n_positions is clamped with a message, and the run gives what the clamped
#     window gives, leaving no .lock;
#   - progress lines in a log (stderr not a terminal), with done/total, rate and ETA, and Faiss' k-means;
#   - --threads above the cores: a warning, the same result;
#   - tokenize --npy writes the int32 ids embed reads;
#   - eval on the datastore's own corpus warns, on held-out text it does not;
#   - corpus / index / datastore --help list their subcommands; knnlm help TOPIC;
#   - make install into a DESTDIR, and a C program built with pkg-config against what it installed.
. "$(dirname "$0")/lib.sh"
R=tests/data/tiny-random # n_positions 128
head -n 30 data/kowiki-sample/train.txt >"$T/train.txt"
head -n 8 data/kowiki-sample/valid.txt >"$T/valid.txt"

# ---- the option tables of every command ----
scripts/knnlm-commands.sh "$KNNLM" >"$T/commands" || fail "listing the commands"
for c in tokenize embed ppl "corpus split" "datastore build" "datastore info" "datastore verify" "index build" eval query; do
    grep -qx "$c" "$T/commands" || fail "knnlm-commands.sh does not list \"$c\""
done
while read -r cmd; do
    # shellcheck disable=SC2086
    "$KNNLM" $cmd --help-options >"$T/opts" 2>"$T/err" || { fail "$cmd --help-options: $(cat "$T/err")"; continue; }
    # shellcheck disable=SC2086
    "$KNNLM" $cmd --help >"$T/help" || fail "$cmd --help"
    for common in --threads --progress-seconds --quiet; do
        grep -q "^$common	" "$T/opts" || fail "$cmd: no $common"
        grep -q "^  $common" "$T/help" || fail "$cmd --help does not show $common"
    done
    while IFS=$'\t' read -r name type metavar min max required; do
        checks=$((checks + 1))
        # a datastore folder is --dstore (an output folder is --out)
        if [ "$metavar" = DSTORE ] && [ "$name" != --dstore ] && [ "$name" != --out ]; then fail "$cmd $name takes a DSTORE: call it --dstore"; fi
        case "$name" in
            --dstore) [ "$metavar" = DSTORE ] || fail "$cmd --dstore $metavar: DSTORE everywhere" ;;
            --model) [ "$metavar" = DIR ] || fail "$cmd --model $metavar: DIR everywhere" ;;
        esac
        grep -q -- "^  $name" "$T/help" || fail "$cmd --help does not show $name"
        [ "$type" = int ] || [ "$type" = double ] || continue
        if [ "$min" = "$max" ]; then fail "$cmd $name: no range in its option table"; continue; fi
        # 0 only where it is a real value, and then the help says so
        if /usr/bin/python3 -c "import sys; sys.exit(not (float('$min') <= 0 <= float('$max')))"; then
            grep -- "^  $name" "$T/help" | grep -q "0" || fail "$cmd $name accepts 0 but its help does not say what 0 means"
        fi
        below=$(/usr/bin/python3 -c "print(int(float('$min')) - 1 if '$type' == 'int' else float('$min') - 1)")
        # shellcheck disable=SC2086
        expect_error "$cmd $name $below" 2 "$name $below: must be" -- "$KNNLM" $cmd $name "$below"
        if /usr/bin/python3 -c "import sys; sys.exit(not float('$max') < 1e6)"; then
            above=$(/usr/bin/python3 -c "print(int(float('$max')) + 1 if '$type' == 'int' else float('$max') + 1)")
            # shellcheck disable=SC2086
            expect_error "$cmd $name $above" 2 "$name $above: must be" -- "$KNNLM" $cmd $name "$above"
        fi
        # shellcheck disable=SC2086
        expect_error "$cmd $name x" 2 "$name expects a" -- "$KNNLM" $cmd $name x
    done <"$T/opts"
done <"$T/commands"
# the issue's cases, by name
expect_error "ppl --window 0" 2 "^knnlm ppl: --window 0: must be at least 1$" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --window 0
expect_error "ppl --stride 0" 2 "^knnlm ppl: --stride 0: must be at least 1$" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --stride 0
expect_error "ppl --max-tokens -1" 2 "^knnlm ppl: --max-tokens -1: must be at least 1$" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --max-tokens -1
expect_error "ppl --max-tokens 0" 2 "^knnlm ppl: --max-tokens 0: must be at least 1$" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --max-tokens 0
expect_error "threads 0" 2 "^knnlm ppl: --threads 0: must be from 1 to 1024$" -- "$KNNLM" ppl --threads 0
expect_error "index --train-size 0" 2 "--train-size 0: must be at least 1" -- "$KNNLM" index build --train-size 0

# ---- help: subcommands listed with their purpose; knnlm help TOPIC is --help ----
for c in corpus index datastore; do
    expect_ok "$c --help" -- "$KNNLM" $c --help
    grep -q "^subcommands:" "$T/out" || fail "$c --help lists no subcommands: $(cat "$T/out")"
done
expect_ok "corpus --help" -- "$KNNLM" corpus --help
grep -q "^  split .*train / held-out" "$T/out" || fail "corpus --help: $(cat "$T/out")"
expect_ok "index --help" -- "$KNNLM" index --help
grep -q "^  build .*Faiss index" "$T/out" || fail "index --help: $(cat "$T/out")"
"$KNNLM" datastore info --help >"$T/h1"
expect_ok "help datastore info" -- "$KNNLM" help datastore info
cmp -s "$T/out" "$T/h1" || fail "knnlm help datastore info differs from knnlm datastore info --help"
"$KNNLM" ppl --help >"$T/h1"
expect_ok "help ppl" -- "$KNNLM" help ppl
cmp -s "$T/out" "$T/h1" || fail "knnlm help ppl differs from knnlm ppl --help"
expect_error "help of nothing" 2 "unknown command \"frobnicate\"" -- "$KNNLM" help frobnicate

# ---- a --window above n_positions: clamped, with a message; the same as the clamped window; no .lock ----
expect_ok "ppl window 128" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --window 128 --stride 64 --json
sed 's/"seconds": [0-9.]*//' "$T/out" >"$T/ppl128"
expect_ok "ppl window 1024" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --window 1024 --stride 512 --json
sed 's/"seconds": [0-9.]*//' "$T/out" >"$T/ppl1024"
cmp -s "$T/ppl128" "$T/ppl1024" || fail "ppl --window 1024 is not ppl --window 128 --stride 64: $(cat "$T/ppl1024")"
expect_eq "ppl clamp message" "$(cat "$T/err")" \
    "knnlm ppl: --window 1024 --stride 512: the model takes at most 128 tokens (n_positions); using --window 128 --stride 64"
expect_ok "build window 1024" -- "$KNNLM" datastore build --model $R --corpus "$T/train.txt" --out "$T/ds" --window 1024 --stride 512 --quiet
grep -q "using --window 128 --stride 64" "$T/err" || fail "datastore build clamp message: $(cat "$T/err")"
grep -E -q '"window":\s*128,' "$T/ds/manifest.json" && grep -E -q '"stride":\s*64,' "$T/ds/manifest.json" || fail "manifest window: $(cat "$T/ds/manifest.json")"
[ ! -e "$T/ds/.lock" ] || fail "datastore build left $T/ds/.lock"
expect_ok "build default window" -- "$KNNLM" datastore build --model $R --corpus "$T/train.txt" --out "$T/ds-default" --quiet
expect_eq "default window: n_positions, silently" "$(cat "$T/err")" ""
cmp -s "$T/ds/keys.npy" "$T/ds-default/keys.npy" || fail "the default window (128, 64) gives other keys than the clamped one"

# ---- datastore info / verify: --dstore, or the folder as the one argument ----
expect_ok "info positional" -- "$KNNLM" datastore info "$T/ds"
cp "$T/out" "$T/info1"
expect_ok "info --dstore" -- "$KNNLM" datastore info --dstore "$T/ds"
cmp -s "$T/out" "$T/info1" || fail "datastore info --dstore differs from the positional form"
grep -q "^window      128, stride 64" "$T/out" || fail "datastore info: $(cat "$T/out")"
expect_ok "verify --dstore" -- "$KNNLM" datastore verify --dstore "$T/ds" --quiet
grep -q "ok: " "$T/out" || fail "verify: $(cat "$T/out")"
expect_error "info both" 2 "give one datastore folder" -- "$KNNLM" datastore info --dstore "$T/ds" "$T/ds"
expect_error "verify none" 2 "give one datastore folder" -- "$KNNLM" datastore verify

# ---- progress in a log: stderr is a file here ----
expect_ok "build, logged" -- "$KNNLM" datastore build --model $R --corpus "$T/train.txt" --out "$T/ds-log" --window 64 --stride 32 --progress-seconds 0.01 --threads 1
grep -E -q "^[a-z ]+: [0-9]+/[0-9]+ [a-z]+ \([0-9.]+%\), [0-9]+ [a-z]+/s, [0-9:]+ elapsed, ETA [0-9:]+" "$T/err" ||
    fail "no progress line with done/total, rate and ETA: $(head -c 800 "$T/err")"
grep -q "Sanitizer\|runtime error" "$T/err" && fail "build, logged: $(cat "$T/err")"
expect_ok "build, default interval" -- "$KNNLM" datastore build --model $R --corpus "$T/train.txt" --out "$T/ds-log2" --window 64 --stride 32
expect_eq "a short build logs nothing at 30 s" "$(cat "$T/err")" ""
expect_ok "build, quiet" -- "$KNNLM" datastore build --model $R --corpus "$T/train.txt" --out "$T/ds-log3" --window 64 --stride 32 --progress-seconds 0.01 --quiet
expect_eq "quiet logs nothing" "$(cat "$T/err")" ""
# index training: Faiss' k-means iterations, IVF (10) + 2 PQ sub-quantizers (25 each), to the last
expect_ok "index IVF,PQ logged" -- "$KNNLM" index build --dstore "$T/ds-log" --out "$T/ivf.faiss" --factory "IVF8,PQ2x4" --progress-seconds 0.01
grep -q "^index k-means: [0-9]*/60 iterations" "$T/err" || fail "no k-means progress: $(head -c 800 "$T/err")"
grep -q "^index k-means: 60/60 iterations (100.0%).*, done$" "$T/err" || fail "k-means does not end at 60/60: $(grep k-means "$T/err" | tail -2)"
expect_eq "k-means counts one by one" "$(grep -c "^index k-means:" "$T/err")" "$(grep "^index k-means:" "$T/err" | sort -u | wc -l)"

# ---- --threads above the cores: one warning, the same result ----
cores=$(nproc)
expect_ok "ppl 1 thread" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --window 64 --stride 32 --json --threads 1
sed 's/"seconds": [0-9.]*//' "$T/out" >"$T/ppl1"
expect_eq "no warning at 1 thread" "$(cat "$T/err")" ""
expect_ok "ppl too many threads" -- "$KNNLM" ppl --model $R --text "$T/valid.txt" --window 64 --stride 32 --json --threads $((cores + 1))
sed 's/"seconds": [0-9.]*//' "$T/out" >"$T/pplN"
expect_eq "threads warning" "$(cat "$T/err")" \
    "knnlm ppl: warning: --threads $((cores + 1)) is more than the $cores cores here; expect it to run slower, not faster"
cmp -s "$T/ppl1" "$T/pplN" || fail "--threads $((cores + 1)) changed the result"

# ---- tokenize --npy: the ids embed --ids reads ----
printf '안녕하세요. 한국어 GPT-2 입니다.\n😤:)l^o\n' >"$T/two.txt"
expect_ok "tokenize --npy" -- "$KNNLM" tokenize --model $R --text "$T/two.txt" --npy "$T/ids.npy"
expect_eq "tokenize --npy says" "$(cat "$T/out")" "$T/ids.npy: 14 token ids from 2 lines (int32 [14])"
/usr/bin/python3 - "$T/ids.npy" <<'PY' || fail "tokenize --npy: not the model card's ids as int32 [14]"
import numpy as np, sys
a = np.load(sys.argv[1])
# tests/data/tokenizer/SOURCE.md: Hugging Face's ids of the two lines, one after the other
assert a.dtype == np.int32 and a.shape == (14,), (a.dtype, a.shape)
assert a.tolist() == [25906, 8702, 7801, 25856, 34407, 10528, 422, 426, 18258, 9241, 12521, 254, 110, 162], a.tolist()
np.save(sys.argv[1].replace("ids.npy", "ids64.npy"), a.astype(np.int64))
PY
expect_ok "embed the --npy ids" -- "$KNNLM" embed --model $R --ids "$T/ids.npy" --out "$T/k32.npy"
expect_ok "embed numpy's int64 ids" -- "$KNNLM" embed --model $R --ids "$T/ids64.npy" --out "$T/k64.npy"
cmp -s "$T/k32.npy" "$T/k64.npy" || fail "embed of tokenize --npy's ids differs from numpy's"
expect_error "--npy exists" 1 "--npy .*ids.npy.*exists|--force" -- "$KNNLM" tokenize --model $R --text "$T/two.txt" --npy "$T/ids.npy"
expect_ok "--npy --force" -- "$KNNLM" tokenize --model $R --text "$T/two.txt" --npy "$T/ids.npy" --force
expect_error "--npy --decode" 1 "--npy .*does not go with --decode" -- "$KNNLM" tokenize --model $R --decode --npy "$T/x.npy"

# ---- eval on the datastore's own corpus: a warning; on held-out text: none ----
expect_ok "index" -- "$KNNLM" index build --dstore "$T/ds-log" --out "$T/flat.faiss" --quiet
expect_ok "eval on the corpus" -- "$KNNLM" eval --model $R --dstore "$T/ds-log" --index "$T/flat.faiss" --text "$T/train.txt" --k 8 --quiet
expect_eq "overlap warning" "$(cat "$T/err")" \
    "knnlm eval: warning: 100 % of $T/train.txt's 32-token windows occur verbatim in the datastore's corpus ($T/ds-log/tokens.npy): the kNN can copy them, so this perplexity says little about new text"
expect_ok "eval on held-out text" -- "$KNNLM" eval --model $R --dstore "$T/ds-log" --index "$T/flat.faiss" --text "$T/valid.txt" --k 8 --quiet
expect_eq "no overlap warning" "$(cat "$T/err")" ""

# ---- make install into a DESTDIR; a C program built with pkg-config against it ----
root="$T/root"
if make -s MODE=release install DESTDIR="$root" PREFIX=/usr/local >"$T/install.log" 2>&1; then
    for f in bin/knnlm lib/libknnlm.a include/knnlm.h lib/pkgconfig/knnlm.pc share/man/man1/knnlm.1; do
        checks=$((checks + 1))
        [ -s "$root/usr/local/$f" ] || fail "make install did not write $f"
    done
    expect_eq "knnlm.pc prefix" "$(grep '^prefix=' "$root/usr/local/lib/pkgconfig/knnlm.pc")" "prefix=/usr/local"
    expect_ok "installed knnlm runs from another folder" -- bash -c "cd / && '$root/usr/local/bin/knnlm' --version"
    grep -q "^knnlm " "$T/out" || fail "installed knnlm --version: $(cat "$T/out")"
    for c in "datastore build" "index build" eval; do
        grep -q "^\.SS \"knnlm $c\"" "$root/usr/local/share/man/man1/knnlm.1" || fail "man page has no section for $c"
    done
    grep -q -- "--progress-seconds" "$root/usr/local/share/man/man1/knnlm.1" || fail "man page lacks the common options"
    cat >"$T/prog.c" <<'C'
#include <knnlm.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    KnModel *m;
    int32_t *ids;
    size_t n;
    const char *text = "안녕하세요. 한국어 GPT-2 입니다.";
    if (kn_model_open(&m, argv[1]) != 0 || kn_tokenize(m, text, strlen(text), &ids, &n) != 0) {
        fprintf(stderr, "%s\n", kn_errmsg());
        return 1;
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    kn_free(ids);
    kn_model_close(m);
    return argc == 2 ? 0 : 1;
}
C
    export PKG_CONFIG_PATH="$root/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root"
    if cc "$T/prog.c" -o "$T/prog" $(pkg-config --cflags --libs knnlm) 2>"$T/cc.err"; then
        expect_ok "the pkg-config program runs" -- "$T/prog" $R
        expect_eq "its ids (Hugging Face's)" "$(cat "$T/out")" "25906 8702 7801 25856 34407 10528 422 426 18258 9241 12521"
    else
        fail "cc \$(pkg-config --cflags --libs knnlm): $(head -c 800 "$T/cc.err")"
    fi
    unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
else
    fail "make install DESTDIR=$root: $(tail -c 800 "$T/install.log")"
fi

finish
