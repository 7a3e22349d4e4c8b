#!/usr/bin/env bash
# knnlm-commands.sh KNNLM — every command and subcommand of a knnlm binary, one per line ("ppl",
# "datastore build"), read from its own help: the commands `knnlm --help` lists, and for each whose --help has a
# "subcommands:" list, those. Used by scripts/gen-man.sh and tests/cli/test_ux.sh, so that a command registered
# in src/cli/main.c is covered without being named anywhere else.
set -euo pipefail
K=${1:?usage: knnlm-commands.sh KNNLM}
"$K" --help | sed -n '/^commands:/,$p' | awk 'NR > 1 && /^  [a-z]/ {print $1}' | while read -r cmd; do
    subs=$("$K" "$cmd" --help | sed -n '/^subcommands:/,$p' | awk 'NR > 1 && /^  [a-z]/ {print $1}')
    if [ -n "$subs" ]; then
        for s in $subs; do echo "$cmd $s"; done
    else
        echo "$cmd"
    fi
done
