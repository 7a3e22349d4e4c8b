#!/usr/bin/env bash
# gen-man.sh KNNLM > knnlm.1 — the man page of knnlm, made of its own --help texts (the option tables of
# src/cli/*.c, through the same printer as --help), one section per command. `make install` runs it.
set -euo pipefail
K=${1:?usage: gen-man.sh KNNLM}
here=$(dirname "$0")
version=$("$K" --version | awk '{print $2}')
# roff: a backslash is written \e; a line starting with . or ' would be a request
esc() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }
cat <<HEAD
.TH KNNLM 1 "" "knnlm $version" "Ko-kNN-LM"
.SH NAME
knnlm \- a nearest-neighbour language model (kNN-LM) on Korean GPT-2 models
.SH SYNOPSIS
.B knnlm
.I command
[\fIoptions\fR]
.br
.B knnlm help
.I command
.SH DESCRIPTION
.nf
HEAD
"$K" --help | esc
echo ".fi"
echo ".SH COMMANDS"
"$here/knnlm-commands.sh" "$K" | while read -r cmd; do
    echo ".SS \"knnlm $cmd\""
    echo ".nf"
    # shellcheck disable=SC2086
    "$K" $cmd --help | esc
    echo ".fi"
done
cat <<TAIL
.SH EXIT STATUS
0 success; 1 failure (the one-line message on stderr names the file or option and the problem); 2 bad usage;
128 + N when stopped by signal N (130 for SIGINT, 143 for SIGTERM), after saving what can be resumed.
.SH SEE ALSO
The README of Ko-kNN-LM; \fBpkg-config --cflags --libs knnlm\fR for the C library (\fIknnlm.h\fR).
TAIL
