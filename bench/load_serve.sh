#!/usr/bin/env bash
# Load test of `knnlm serve` (issue 10), on loopback only, bounded in clients and time: CLIENTS concurrent
# clients (default 32) for DURATION seconds (default 60), each sending, one after the other, a mix of
# POST /v1/analyze (2 of 3) and POST /v1/completions (1 of 3, half of them streamed). Prints requests/s, the
# p50/p99 latency per kind, the errors (any status but 200, or a broken answer: must be 0) and the server's
# RSS before and after (after a 10 s warm-up with every client, so that their first allocations do not count as
# growth), and after 10 s more.
#
#   bench/load_serve.sh [OUT_DIR]      (release build: make MODE=release; default OUT_DIR /tmp/knnlm-load)
set -euo pipefail
cd "$(dirname "$0")/.."
K=${KNNLM:-build/release/knnlm}
M=models/tiny-kogpt2
OUT=${1:-/tmp/knnlm-load}
CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-60}
mkdir -p "$OUT"
[ -x "$K" ] || { echo "load_serve.sh: $K: build it first (make MODE=release)" >&2; exit 1; }
if [ ! -e "$OUT/ds/manifest.json" ]; then
    head -n 200 data/kowiki-sample/train.txt >"$OUT/train.txt"
    "$K" datastore build --model $M --corpus "$OUT/train.txt" --out "$OUT/ds" --window 256 --stride 128 --quiet
    "$K" index build --dstore "$OUT/ds" --out "$OUT/ds/flat.faiss" --quiet
fi
"$K" serve --model $M --dstore "$OUT/ds" --index "$OUT/ds/flat.faiss" --port 0 --queue 64 2>"$OUT/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do grep -q "listening on" "$OUT/serve.err" && break; sleep 0.5; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$OUT/serve.err")
rss() { awk '/^VmRSS/ {print $2}' /proc/$pid/status; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; server: $(head -1 "$OUT/serve.err")"
run_load() { # URL CLIENTS SECONDS
/usr/bin/python3 - "$@" <<'PY'
import http.client, json, random, sys, threading, time, urllib.parse
url, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host = urllib.parse.urlparse(url)
texts = ["대한민국의 수도는 서울이다.", "야요이 시대는 일본열도의 시대구분 중 하나이다.",
         "조몬 시대에 주로 한반도나 중국 남부로부터 일본으로 도래한 야요이인들은 기원전 10세기 경부터 일본 열도 각지에 퍼졌다.",
         "서울은 한강을 끼고 있는 도시이다. 인구는 약 천만 명이다."]
lat = {"analyze": [], "completions": [], "stream": []}
errors, lock = [], threading.Lock()
stop_at = time.time() + seconds
def client(i):
    rnd = random.Random(i)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    n = 0
    while time.time() < stop_at:
        n += 1
        kind = "analyze" if n % 3 else ("stream" if rnd.random() < 0.5 else "completions")
        if kind == "analyze":
            path, body = "/v1/analyze", {"text": rnd.choice(texts), "k": rnd.choice([4, 8, 16]), "lambda": 0.25}
        else:
            path, body = "/v1/completions", {"prompt": rnd.choice(texts), "max_tokens": 16, "temperature": 0.8,
                                             "seed": rnd.randrange(1000), "stream": kind == "stream"}
        t0 = time.time()
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            ok = r.status == 200
            if ok and kind == "analyze": ok = len(json.loads(data)["tokens"]) > 0
            if ok and kind == "completions": ok = json.loads(data)["usage"]["completion_tokens"] > 0
            if ok and kind == "stream": ok = data.rstrip().endswith(b"data: [DONE]")
            if not ok: raise RuntimeError(f"{kind}: status {r.status}: {data[:200]!r}")
        except Exception as e:
            with lock: errors.append(str(e))
            conn.close()
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
            continue
        with lock: lat[kind].append(time.time() - t0)
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
t0 = time.time()
for t in threads: t.start()
for t in threads: t.join()
wall = time.time() - t0
total = sum(len(v) for v in lat.values())
def pct(v, p): return sorted(v)[min(len(v) - 1, int(p * len(v)))] * 1000 if v else float("nan")
print(f"{clients} clients, {wall:.1f} s: {total} requests, {total / wall:.1f} requests/s, errors {len(errors)}")
for k, v in lat.items():
    print(f"  {k:12s} {len(v):6d} requests   p50 {pct(v, 0.5):8.1f} ms   p99 {pct(v, 0.99):8.1f} ms")
for e in errors[:5]: print("  error:", e)
sys.exit(1 if errors else 0)
PY
}
run_load "$url" "$CLIENTS" 10 >/dev/null # warm-up with every client: their threads and buffers exist once
before=$(rss)
set +e
run_load "$url" "$CLIENTS" "$DURATION"
rc=$?
set -e
after=$(rss)
run_load "$url" "$CLIENTS" 10 >/dev/null || rc=1
again=$(rss)
echo "server RSS: $before KiB before, $after KiB after the load, $again KiB after 10 s more"
kill -TERM $pid
wait $pid || rc=1
trap - EXIT
tail -1 "$OUT/serve.err"
exit $rc
