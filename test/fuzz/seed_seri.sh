#!/bin/sh
# seed_seri.sh DIR: write the byte strings of the seri vectors (the lines with plain hex) into
# DIR, one file per line, as the starting corpus of fuzz_seri. Run from the repository root;
# SKYJET_VECTORS overrides the vector directory (default test/vectors).
set -eu
dir=${1:?usage: seed_seri.sh DIR}
vectors=${SKYJET_VECTORS:-test/vectors}
mkdir -p "$dir"
unhex() { if command -v xxd >/dev/null; then xxd -r -p; else perl -pe 's/([0-9a-f]{2})/chr hex $1/ge'; fi; }
tab=$(printf '\t')
for file in seri-pack.txt seri-pack-errors.txt seri-unpack.txt; do
    while IFS="$tab" read -r name desc bytes; do
        case $bytes in -|len=*|*[!0-9a-f]*) continue ;; esac
        safe=$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.-' '_')
        printf '%s' "$bytes" | unhex >"$dir/${file%.txt}-$safe"
    done <"$vectors/$file"
done
