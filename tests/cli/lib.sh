# lib.sh — helpers for the command-line tests: run knnlm, check exit codes and one-line errors.
# Each test script sources this, calls its checks, and ends with `finish`.
set -u
KNNLM=${KNNLM:-build/asan/knnlm}
T=$(mktemp -d /tmp/knnlm-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
checks=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_ok DESCRIPTION -- command...: the command must exit 0.
expect_ok() {
    local what=$1; shift; shift
    checks=$((checks + 1))
    if ! "$@" >"$T/out" 2>"$T/err"; then fail "$what: exit $? : $(head -c 600 "$T/err")"; fi
}

# expect_error DESCRIPTION CODE PATTERN -- command...: exit code CODE, stderr one line matching PATTERN
# (extended regex), no sanitizer report.
expect_error() {
    local what=$1 code=$2 pattern=$3; shift 4
    checks=$((checks + 1))
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" != "$code" ]; then fail "$what: exit $rc, expected $code: $(head -c 600 "$T/err")"; return; fi
    if grep -q -E "Sanitizer|runtime error" "$T/err"; then fail "$what: sanitizer report: $(head -c 600 "$T/err")"; return; fi
    local lines
    lines=$(grep -c . "$T/err")
    if [ "$lines" != 1 ]; then fail "$what: expected one line of error, got $lines: $(head -c 600 "$T/err")"; return; fi
    if ! grep -q -E -e "$pattern" "$T/err"; then fail "$what: error does not match /$pattern/: $(cat "$T/err")"; fi
}

# expect_eq DESCRIPTION ACTUAL EXPECTED
expect_eq() {
    checks=$((checks + 1))
    [ "$2" = "$3" ] || fail "$1: got [$2], expected [$3]"
}

finish() {
    echo "$(basename "$0"): $checks checks, $fails failed"
    [ "$fails" = 0 ]
}
