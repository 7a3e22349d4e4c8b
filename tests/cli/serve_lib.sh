# serve_lib.sh — for the tests of `knnlm serve` (sourced after lib.sh): a tiny datastore and its Flat index built
# from the bundled model and corpus, and servers started on free loopback ports.
M=models/tiny-kogpt2
TEXT="대한민국의 수도는 서울이다. 서울은 한강을 끼고 있다."

# serve_datastore: $T/ds and $T/flat.faiss from the first lines of the bundled corpus.
serve_datastore() {
    head -n 20 data/kowiki-sample/train.txt >"$T/train.txt"
    "$KNNLM" datastore build --model $M --corpus "$T/train.txt" --out "$T/ds" --window 64 --stride 32 --quiet >/dev/null &&
        "$KNNLM" index build --dstore "$T/ds" --out "$T/flat.faiss" --quiet >/dev/null
}

# serve_start NAME ARGS...: starts `knnlm serve ARGS --port 0` in the background; sets SERVE_PID_<NAME> and
# SERVE_URL_<NAME> once it listens (the port it chose is in its first line). Fails after 120 s.
serve_start() {
    local name=$1; shift
    "$KNNLM" serve "$@" --port 0 >"$T/$name.out" 2>"$T/$name.err" &
    local pid=$! i
    eval "SERVE_PID_$name=$pid"
    for i in $(seq 1 240); do
        local port
        port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$T/$name.err" 2>/dev/null | grep -o '[0-9]*$')
        if [ -n "$port" ]; then eval "SERVE_URL_$name=http://127.0.0.1:$port"; return 0; fi
        kill -0 $pid 2>/dev/null || { fail "serve $name did not start: $(head -c 600 "$T/$name.err")"; return 1; }
        sleep 0.5
    done
    fail "serve $name: no 'listening' line after 120 s"
    kill $pid
    return 1
}

# serve_stop NAME: SIGTERM, then its exit code in SERVE_RC (124 if it did not exit within 60 s).
serve_stop() {
    local pid
    eval "pid=\$SERVE_PID_$1"
    kill -TERM "$pid"
    local i
    for i in $(seq 1 120); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    local stuck=0
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; stuck=1; fi
    wait "$pid"
    SERVE_RC=$?
    [ $stuck = 0 ] || SERVE_RC=124
}

# post URL JSON: the body in $T/body, the status code on stdout.
post() { curl -s -o "$T/body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "$2" "$1"; }
