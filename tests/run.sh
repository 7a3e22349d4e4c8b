#!/usr/bin/env bash
# Runs every test of the suite against one build folder (default build/asan): each tests/test_* binary, then
# each tests/cli/test_*.sh script (they exercise the knnlm command: outputs, errors, exit codes). Prints a summary
# and exits non-zero if anything failed.
set -u
build=${1:-build/asan}
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export KNNLM=$PWD/$build/knnlm
export KNNLM_RELEASE=${KNNLM_RELEASE:-$PWD/build/release/knnlm}
# Debian's python3 (with numpy and faiss from apt), not a pyenv or venv one that lacks them
export PATH=/usr/bin:$PATH
passed=0
failed=()
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d|*.o) continue ;; esac
    name=$(basename "$t")
    echo "== $name"
    if "$t"; then passed=$((passed + 1)); else failed+=("$name"); fi
done
# The model again on the AVX2 kernels (the same comparisons with PyTorch), where the CPU would pick AVX-512.
for t in "$build"/tests/test_model "$build"/tests/test_kernels; do
    [ -x "$t" ] || continue
    name="$(basename "$t") (KNNLM_ISA=avx2)"
    echo "== $name"
    if KNNLM_ISA=avx2 "$t"; then passed=$((passed + 1)); else failed+=("$name"); fi
done
for s in tests/cli/test_*.sh; do
    [ -e "$s" ] || continue
    name=cli/$(basename "$s")
    echo "== $name"
    if bash "$s"; then passed=$((passed + 1)); else failed+=("$name"); fi
done
echo
echo "$passed passed, ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
