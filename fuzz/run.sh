#!/usr/bin/env bash
# Runs the libFuzzer harnesses (make fuzz builds them into build/fuzz/).
#
#   fuzz/run.sh [SECONDS] [NAME...]     each harness (default: all) for SECONDS (default 3): first it replays
#                                       fuzz/regress/NAME/* (inputs that once crashed), then it fuzzes from
#                                       fuzz/corpus/NAME. Fails if any input crashes, leaks or times out.
#   fuzz/run.sh --merge NAME [DIR...]   minimizes fuzz/corpus/NAME together with DIRs (e.g. a long run's
#                                       corpus) into the smallest set with the same coverage, in place.
#
# The committed corpus is only read: new inputs go to a temporary folder (the first corpus folder libFuzzer
# is given is the one it writes), deleted at the end unless KEEP=1; crashing inputs are written to
# ${ARTIFACTS:-build/fuzz/artifacts}/NAME-crash-*. Each run's total executions and corpus size are printed
# (from libFuzzer's final stats).
set -u
cd "$(dirname "$0")/.."
B=build/fuzz
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1

all_names() { for f in fuzz/fuzz_*.c; do n=${f#fuzz/fuzz_}; echo "${n%.c}"; done; }

if [ "${1:-}" = "--merge" ]; then
    name=${2:?usage: fuzz/run.sh --merge NAME [DIR...]}
    shift 2
    T=$(mktemp -d)
    mkdir -p "$T/min"
    "$B/fuzz_$name" -merge=1 "$T/min" "fuzz/corpus/$name" "$@" >"$T/log" 2>&1 || { tail -20 "$T/log"; rm -rf "$T"; exit 1; }
    rm -rf "fuzz/corpus/$name"
    mv "$T/min" "fuzz/corpus/$name"
    rm -rf "$T"
    echo "fuzz/corpus/$name: $(ls "fuzz/corpus/$name" | wc -l) inputs, $(du -sb "fuzz/corpus/$name" | cut -f1) bytes"
    exit 0
fi

secs=3
case "${1:-}" in [0-9]*) secs=$1; shift ;; esac
names=("$@")
[ ${#names[@]} -gt 0 ] || mapfile -t names < <(all_names)
art=${ARTIFACTS:-$B/artifacts}
mkdir -p "$art"
T=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$T"' EXIT
failed=()
for name in "${names[@]}"; do
    bin=$B/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "fuzz_$name: $bin is missing (make fuzz)"
        failed+=("$name")
        continue
    fi
    # the inputs that once crashed, each run once
    if compgen -G "fuzz/regress/$name/*" >/dev/null; then
        if ! "$bin" -runs=1 fuzz/regress/"$name"/* >"$T/$name.regress.log" 2>&1; then
            echo "fuzz_$name: a regression input crashes again"
            tail -30 "$T/$name.regress.log"
            failed+=("$name")
            continue
        fi
    fi
    mkdir -p "$T/$name"
    "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/$name-" "$T/$name" "fuzz/corpus/$name" >"$T/$name.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/$name.log")
    cov=$(grep -o 'cov: [0-9]*' "$T/$name.log" | tail -1)
    if [ $rc -ne 0 ]; then
        echo "fuzz_$name: FAILED (exit $rc) after ${execs:-?} executions; the input is in $art/"
        grep -m1 -A25 "ERROR: \|runtime error\|fuzz check failed\|bad error" "$T/$name.log" | head -40
        failed+=("$name")
    else
        echo "fuzz_$name: ok, ${secs}s, ${execs:-?} executions, $cov, $(ls "fuzz/corpus/$name" | wc -l) seeds + $(ls "$T/$name" | wc -l) new inputs"
    fi
done
[ "${KEEP:-0}" = 1 ] && echo "new inputs kept in $T"
[ ${#failed[@]} -eq 0 ] || { echo "fuzzers failed: ${failed[*]}"; exit 1; }
