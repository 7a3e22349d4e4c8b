#!/usr/bin/env bash
# knnlm serve: /health, /v1/analyze against `knnlm query` (the same numbers) and the datastore's stream (the
# passages), /v1/completions (OpenAI's shape, streamed and not, deterministic per seed), every bad request of
# issue 10 (400, 404, 405, 413, 503), a client leaving mid-stream, SIGTERM draining, and bad command lines.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"
serve_datastore || fail "datastore and index"
serve_start A --model $M --dstore "$T/ds" --index "$T/flat.faiss" --threads 2 || { finish; exit 1; }
U=$SERVE_URL_A
grep -q "listening on http://127.0.0.1:" "$T/A.err" || fail "not on 127.0.0.1 by default: $(cat "$T/A.err")"

# /health names what it serves
curl -s "$U/health" >"$T/health.json"
/usr/bin/python3 - "$T" <<'PY' || fail "health: $(cat "$T/health.json")"
import json, sys
t = sys.argv[1]
h = json.load(open(t + "/health.json"))
m = json.load(open(t + "/ds/manifest.json"))
assert h["status"] == "ok" and h["model"] == "models/tiny-kogpt2", h
assert h["datastore"] == t + "/ds" and h["index"] == t + "/flat.faiss" and h["entries"] == m["entries"], h
assert h["passages"] is True and h["in_flight"] == 0 and h["computing"] == 0, h
PY

# /v1/analyze: the 11 case fields exactly as `knnlm query` prints them, the perplexities from them, and each
# neighbour's passage: the `context` tokens of tokens.npy before the value (decoded by `knnlm tokenize`)
expect_eq "analyze status" "$(post "$U/v1/analyze" "{\"text\": \"$TEXT\", \"k\": 4, \"lambda\": 0.3, \"context\": 6}")" 200
cp "$T/body" "$T/analyze.json"
expect_ok "query" -- "$KNNLM" query --model $M --dstore "$T/ds" --index "$T/flat.faiss" --context "$TEXT" --k 4 --lambda 0.3
cp "$T/out" "$T/query.jsonl"
/usr/bin/python3 - "$T" >"$T/passages.jsonl" <<'PY' || fail "analyze differs from knnlm query"
import json, math, sys
import numpy as np
t = sys.argv[1]
a = json.load(open(t + "/analyze.json"))
q = [json.loads(l) for l in open(t + "/query.jsonl")]
fields = ["label", "lm", "knn", "lm+knn", "lm_probability", "knn_probability", "knn_lm_percent", "labels", "values", "distance", "softmax"]
assert len(a["tokens"]) == len(q) - 1 >= 5, (len(a["tokens"]), len(q))
for got, want in zip(a["tokens"] + [a["next"]], q):
    assert list(got)[:11] == fields, list(got)
    for f in fields:
        assert got[f] == want[f], (f, got[f], want[f])
    assert len(got["neighbors"]) == 4
    for nb, d, v in zip(got["neighbors"], got["distance"], got["labels"]):
        assert nb["distance"] == d and nb["value"] == v, (nb, d, v)
lm = math.exp(-sum(math.log(x["lm_probability"]) for x in a["tokens"]) / len(a["tokens"]))
kl = math.exp(-sum(math.log(0.3 * x["knn_probability"] + 0.7 * x["lm_probability"]) for x in a["tokens"]) / len(a["tokens"]))
assert abs(a["lm_ppl"] - lm) < 1e-9 * lm and abs(a["knnlm_ppl"] - kl) < 1e-9 * kl, (a["lm_ppl"], lm, a["knnlm_ppl"], kl)
assert a["k"] == 4 and a["lambda"] == 0.3 and a["context"] == 6
# the stream: row r is entry entry_begin + r, its value the next token
stream = np.load(t + "/ds/tokens.npy")
begin = json.load(open(t + "/ds/manifest.json"))["entry_begin"]
for x in a["tokens"]:
    for nb, v in zip(x["neighbors"], x["values"]):
        e = begin + nb["id"] + 1
        assert stream[e] == v, (nb, v, stream[e])
        print(json.dumps({"ids": [int(i) for i in stream[max(0, e - 6):e]], "want": nb["context"]}, ensure_ascii=False))
PY
"$KNNLM" tokenize --model $M --decode --jsonl --text "$T/passages.jsonl" >"$T/decoded.jsonl" 2>"$T/err" || fail "decode: $(cat "$T/err")"
/usr/bin/python3 - "$T" <<'PY' || fail "passages differ from the datastore's stream"
import json, sys
t = sys.argv[1]
want = [json.loads(l)["want"] for l in open(t + "/passages.jsonl")]
got = [json.loads(l)["text"] for l in open(t + "/decoded.jsonl")]
assert len(want) == len(got) > 0 and want == got, [(w, g) for w, g in zip(want, got) if w != g][:3]
PY

# /v1/completions: OpenAI's shape; the same seed gives the same text, streamed or not
expect_eq "completion" "$(post "$U/v1/completions" '{"prompt": "대한민국의 수도는", "max_tokens": 6, "temperature": 0.8, "seed": 7, "knn_lambda": 0.3, "knn_k": 4}')" 200
cp "$T/body" "$T/c1.json"
expect_eq "completion again" "$(post "$U/v1/completions" '{"prompt": ["대한민국의 수도는"], "max_tokens": 6, "temperature": 0.8, "seed": 7, "knn_lambda": 0.3, "knn_k": 4}')" 200
cp "$T/body" "$T/c2.json"
curl -sN -X POST "$U/v1/completions" -d '{"prompt": "대한민국의 수도는", "max_tokens": 6, "temperature": 0.8, "seed": 7, "knn_lambda": 0.3, "knn_k": 4, "stream": true}' >"$T/sse.txt"
expect_eq "greedy completion" "$(post "$U/v1/completions" '{"prompt": "대한민국의 수도는", "max_tokens": 5, "temperature": 0}')" 200
cp "$T/body" "$T/greedy.json"
/usr/bin/python3 - "$T" <<'PY' || fail "completions"
import json, sys
t = sys.argv[1]
c1, c2 = json.load(open(t + "/c1.json")), json.load(open(t + "/c2.json"))
assert c1["object"] == "text_completion" and c1["id"].startswith("cmpl-"), c1
ch = c1["choices"][0]
assert ch["index"] == 0 and ch["finish_reason"] in ("length", "stop") and ch["text"], c1
assert c1["usage"]["prompt_tokens"] == 2 and c1["usage"]["completion_tokens"] == 6 and c1["usage"]["total_tokens"] == 8, c1
assert c1["choices"][0]["text"] == c2["choices"][0]["text"], (c1, c2)
events = [l[6:] for l in open(t + "/sse.txt").read().split("\n") if l.startswith("data: ")]
assert events[-1] == "[DONE]", events[-3:]
chunks = [json.loads(e) for e in events[:-1]]
assert all(c["object"] == "text_completion" for c in chunks)
assert "".join(c["choices"][0]["text"] for c in chunks) == ch["text"], (chunks, ch)
assert chunks[-1]["choices"][0]["finish_reason"] == "length" and chunks[-1]["usage"]["completion_tokens"] == 6
assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
g = json.load(open(t + "/greedy.json"))
assert g["usage"]["completion_tokens"] == 5 and g["choices"][0]["text"], g
PY

# the same generation as `knnlm generate` (sampled with a seed, and greedy with the defaults' λ and k)
expect_ok "generate" -- "$KNNLM" generate --model $M --dstore "$T/ds" --index "$T/flat.faiss" --prompt "대한민국의 수도는" \
    --max-new-tokens 6 --temperature 0.8 --seed 7 --lambda 0.3 --k 4 --quiet
expect_eq "completion = knnlm generate" "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "$T/c1.json")" "$(cat "$T/out")"
expect_ok "generate greedy" -- "$KNNLM" generate --model $M --dstore "$T/ds" --index "$T/flat.faiss" --prompt "대한민국의 수도는" \
    --max-new-tokens 5 --temperature 0 --quiet
expect_eq "greedy completion = knnlm generate" "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "$T/greedy.json")" "$(cat "$T/out")"

# every bad request: 400 with {"error": ...} naming the field
bad() { # DESCRIPTION PATH BODY PATTERN
    local code
    code=$(post "$U$2" "$3")
    expect_eq "$1: status" "$code" 400
    grep -q -E "^\{\"error\":\".*$4" "$T/body" || fail "$1: body $(head -c 300 "$T/body")"
}
bad "malformed JSON" /v1/analyze '{"text": "가' "malformed JSON"
bad "trailing garbage" /v1/analyze '{"text": "가"} x' "malformed JSON"
bad "not an object" /v1/analyze '["가"]' "expected a JSON object"
bad "empty body" /v1/analyze '' "empty body"
bad "text missing" /v1/analyze '{"k": 4}' "text: missing"
bad "text not a string" /v1/analyze '{"text": 5}' "text: expected a string"
bad "empty text" /v1/analyze '{"text": ""}' "text: empty"
bad "k zero" /v1/analyze '{"text": "가", "k": 0}' "k: expected an integer"
bad "k above the datastore" /v1/analyze '{"text": "가", "k": 100000}' "k: expected an integer"
bad "k fractional" /v1/analyze '{"text": "가", "k": 2.5}' "k: expected an integer"
bad "k a string" /v1/analyze '{"text": "가", "k": "8"}' "k: expected an integer"
bad "lambda above 1" /v1/analyze '{"text": "가", "lambda": 1.5}' "lambda: expected a number from 0 to 1"
bad "lambda a string" /v1/analyze '{"text": "가", "lambda": "0.5"}' "lambda: expected a number"
bad "context negative" /v1/analyze '{"text": "가", "context": -1}' "context: expected an integer"
bad "temperature zero" /v1/analyze '{"text": "가", "temperature": 0}' "temperature: expected a number"
long=$(printf "대한민국의 수도는 서울이다. %.0s" $(seq 1 250))
bad "text longer than the model's window" /v1/analyze "{\"text\": \"$long\"}" "text: [0-9]+ tokens; at most 511"
bad "prompt missing" /v1/completions '{"max_tokens": 3}' "prompt: missing"
bad "prompt not a string" /v1/completions '{"prompt": 3}' "prompt: expected a string"
bad "prompt empty" /v1/completions '{"prompt": ""}' "prompt: gives no tokens"
bad "max_tokens over the limit" /v1/completions '{"prompt": "가", "max_tokens": 100000}' "max_tokens: expected an integer from 0 to 512"
bad "temperature negative" /v1/completions '{"prompt": "가", "temperature": -1}' "temperature: expected a number"
bad "top_p zero" /v1/completions '{"prompt": "가", "top_p": 0}' "top_p: expected a number"
bad "stream not a boolean" /v1/completions '{"prompt": "가", "stream": "yes"}' "stream: expected true or false"
bad "seed negative" /v1/completions '{"prompt": "가", "seed": -1}' "seed: expected a number"
bad "seed fractional" /v1/completions '{"prompt": "가", "seed": 1.5}' "seed: expected a whole number"
bad "knn_lambda above 1" /v1/completions '{"prompt": "가", "knn_lambda": 2}' "knn_lambda: expected a number from 0 to 1"
bad "knn_k zero" /v1/completions '{"prompt": "가", "knn_k": 0}' "knn_k: expected an integer"
bad "n of 2" /v1/completions '{"prompt": "가", "n": 2}' "n: expected an integer from 1 to 1"
# 404, 405, 413 (announced by Content-Length, and chunked)
expect_eq "unknown path" "$(curl -s -o "$T/body" -w '%{http_code}' "$U/v2/nothing")" 404
grep -q '"error"' "$T/body" || fail "404 body: $(cat "$T/body")"
expect_eq "wrong method" "$(curl -s -o "$T/body" -w '%{http_code}' -X DELETE "$U/v1/analyze")" 405
expect_eq "GET analyze" "$(curl -s -o "$T/body" -w '%{http_code}' "$U/v1/analyze")" 405
head -c 1100000 /dev/zero | tr '\0' 'a' >"$T/big"
expect_eq "body over the limit" "$(curl -s -o "$T/body" -w '%{http_code}' -X POST --data-binary @"$T/big" "$U/v1/analyze")" 413
grep -q "at most 1048576" "$T/body" || fail "413 body: $(cat "$T/body")"
expect_eq "chunked body over the limit" "$(curl -s -o "$T/body" -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" "$U/v1/completions")" 413
# the viewer page, from the binary
expect_eq "viewer" "$(curl -s -o "$T/page.html" -w '%{http_code}' "$U/?text=%EA%B0%80")" 200
cmp -s "$T/page.html" web/index.html || fail "GET / is not web/index.html"
expect_eq "health after all that" "$(curl -s "$U/health" | /usr/bin/python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["in_flight"], h["computing"])')" "0 0"
serve_stop A
expect_eq "SIGTERM exit code" "$SERVE_RC" 0
grep -q "SIGTERM: draining" "$T/A.err" || fail "no drain message: $(cat "$T/A.err")"
grep -q -E "Sanitizer|runtime error" "$T/A.err" && fail "sanitizer report: $(head -c 2000 "$T/A.err")"

# one slot, no queue: a second request while a stream runs gets 503; the streaming client leaves and its slot
# is free again; SIGTERM during a request lets it finish
serve_start B --model $M --dstore "$T/ds" --index "$T/flat.faiss" --slots 1 --queue 0 --threads 1 || { finish; exit 1; }
U=$SERVE_URL_B
curl -sN -X POST "$U/v1/completions" -d '{"prompt": "서울", "max_tokens": 500, "stream": true}' >"$T/long.txt" &
client=$!
for i in $(seq 1 120); do grep -q "data:" "$T/long.txt" && break; sleep 0.25; done
grep -q "data:" "$T/long.txt" || fail "the stream did not start"
expect_eq "busy: 503" "$(post "$U/v1/analyze" '{"text": "가"}')" 503
grep -q '"error":"busy' "$T/body" || fail "503 body: $(cat "$T/body")"
expect_eq "health while busy" "$(curl -s "$U/health" | /usr/bin/python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["in_flight"], h["computing"])')" "1 1"
kill $client; wait $client 2>/dev/null
free=""
for i in $(seq 1 80); do
    free=$(curl -s "$U/health" | /usr/bin/python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["in_flight"], h["computing"])')
    [ "$free" = "0 0" ] && break
    sleep 0.25
done
expect_eq "the slot of a client that left is free" "$free" "0 0"
grep -q "finish_reason\":\"length" "$T/long.txt" && fail "the stream ran to its end although its client left"
expect_eq "served again" "$(post "$U/v1/analyze" '{"text": "가"}')" 200
# SIGTERM while a completion computes: it is answered, then the server exits 0
post "$U/v1/completions" '{"prompt": "서울", "max_tokens": 40}' >"$T/drain.code" &
client=$!
for i in $(seq 1 80); do
    [ "$(curl -s "$U/health" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["computing"])')" = 1 ] && break
    sleep 0.1
done
serve_stop B
wait $client
expect_eq "the request in flight at SIGTERM is answered" "$(cat "$T/drain.code")" 200
expect_eq "SIGTERM exit code (draining)" "$SERVE_RC" 0
grep -q "draining 1 request" "$T/B.err" || fail "drain: $(cat "$T/B.err")"

# the LM alone: no datastore, no neighbours
serve_start C --model $M --threads 1 || { finish; exit 1; }
expect_eq "LM-only analyze" "$(post "$SERVE_URL_C/v1/analyze" "{\"text\": \"$TEXT\"}")" 200
/usr/bin/python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
assert a["k"] == 0 and a["lambda"] == 0 and a["lm_ppl"] == a["knnlm_ppl"], a
assert all(x["neighbors"] == [] and x["knn"] is None for x in a["tokens"])
' "$T/body" || fail "LM-only analyze: $(head -c 400 "$T/body")"
expect_eq "LM-only health" "$(curl -s "$SERVE_URL_C/health" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["datastore"])')" None
serve_stop C
expect_eq "LM-only exit" "$SERVE_RC" 0

# bad command lines: one line each
expect_error "dstore without index" 1 "give --dstore and --index together" -- "$KNNLM" serve --model $M --dstore "$T/ds"
expect_error "slots 0" 2 "--slots 0" -- "$KNNLM" serve --model $M --slots 0
expect_error "port out of range" 2 "--port 70000" -- "$KNNLM" serve --model $M --port 70000
expect_error "bad host" 1 "--host nowhere.invalid" -- "$KNNLM" serve --model $M --host nowhere.invalid
serve_start D --model $M --threads 1 || { finish; exit 1; }
port=${SERVE_URL_D##*:}
expect_error "port in use" 1 "cannot listen on 127.0.0.1 port $port" -- "$KNNLM" serve --model $M --port "$port"
serve_stop D
finish
