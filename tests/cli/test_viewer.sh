#!/usr/bin/env bash
# The viewer page in a real browser: Debian's chromium, headless, driven by puppeteer-core (tests/browser/
# test_viewer.js) against `knnlm serve` on a free loopback port with a tiny datastore; then OpenAI's client library
# against its /v1/completions. The npm packages are installed by scripts/install-deps.sh (npm ci); if they are
# missing, npm ci is tried here from npm's cache.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"
if [ ! -x /usr/bin/chromium ] || ! command -v node >/dev/null; then
    fail "chromium (/usr/bin/chromium) and node are needed: run scripts/install-deps.sh"
    finish
    exit 1
fi
if [ ! -d tests/browser/node_modules/puppeteer-core ] || [ ! -d tests/browser/node_modules/openai ]; then
    (cd tests/browser && npm ci --prefer-offline --no-audit --no-fund >"$T/npm.log" 2>&1) ||
        { fail "tests/browser: npm ci failed (run scripts/install-deps.sh): $(tail -c 400 "$T/npm.log")"; finish; exit 1; }
fi
serve_datastore || fail "datastore and index"
serve_start V --model $M --dstore "$T/ds" --index "$T/flat.faiss" --threads 2 || { finish; exit 1; }
checks=$((checks + 1))
# SCREENSHOTS=DIR keeps the page's screenshots (docs/ holds the README's)
node tests/browser/test_viewer.js "$SERVE_URL_V" ${SCREENSHOTS:-} >"$T/node.out" 2>&1 || fail "browser: $(tail -c 2000 "$T/node.out")"
tail -1 "$T/node.out"
# and OpenAI's own client library (npm `openai`) against /v1/completions
checks=$((checks + 1))
node tests/browser/test_openai_client.js "$SERVE_URL_V" >"$T/openai.out" 2>&1 || fail "openai client: $(tail -c 2000 "$T/openai.out")"
tail -1 "$T/openai.out"
serve_stop V
expect_eq "serve exit" "$SERVE_RC" 0
finish
