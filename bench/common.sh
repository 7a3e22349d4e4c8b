# common.sh — sourced by bench/bench_eval.sh and bench/bench_generate.sh (run from the repository root): the
# release build of knnlm, the KoGPT2-shaped random model, and the line that names the machine.

# bench_setup DIR: builds knnlm and make_random_model (release); DIR/kogpt2-random holds the random model (made
# once, ~500 MB) with the bundled KoGPT2 tokenizer beside it.
bench_setup() {
    mkdir -p "$1"
    make -s MODE=release build/release/knnlm build/release/bench/make_random_model >/dev/null
    if [ ! -f "$1/kogpt2-random/model.safetensors" ]; then
        build/release/bench/make_random_model "$1/kogpt2-random" >/dev/null
    fi
    cp models/tiny-kogpt2/tokenizer.json "$1/kogpt2-random/"
}

# bench_machine: "DATE UTC, CPU (family F), N CPUs, load L1 L5 L15", for the first line of a result.
bench_machine() {
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') (family $(grep -m1 'cpu family' /proc/cpuinfo | sed 's/.*: //')), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
}
