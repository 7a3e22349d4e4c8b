#!/usr/bin/env bash
# Installs what Ko-kNN-LM needs on Debian 12 (run as root): the compiler and the libraries it links
# (OpenBLAS in its OpenMP build, Faiss, cJSON, utf8proc, xxHash, zlib), and what the tests use
# (python3 with numpy and faiss, to check that Python opens our .npy and Faiss files; clang with its
# sanitizer and libFuzzer runtimes, for the fuzzers of make fuzz), libmicrohttpd for `knnlm serve`, and for the
# viewer's browser test Debian's chromium (driven by puppeteer-core from npm, which never downloads a browser),
# a Korean font for its screenshots, and node/npm where the machine has no node yet; Open MPI (mpirun, and the
# headers and library knnlm-mpi, the build on many machines, is made with).
# With --bench it also installs python3-torch, for the PyTorch side of the benchmarks.
set -euo pipefail
pkgs=(build-essential make libopenblas-openmp-dev libfaiss-dev libcjson-dev libutf8proc-dev libxxhash-dev
      zlib1g-dev python3 python3-numpy python3-faiss clang libclang-rt-dev libmicrohttpd-dev chromium fonts-nanum curl
      openmpi-bin libopenmpi-dev)
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
[ "${1:-}" = "--bench" ] && pkgs+=(python3-torch linux-perf)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# the browser test's npm package, as tests/browser/package-lock.json pins it (again only when the lock changed)
cd "$(dirname "$0")/../tests/browser"
[ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error
