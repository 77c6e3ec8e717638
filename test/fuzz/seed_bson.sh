#!/bin/sh
# seed_bson.sh DIR: write the documents of the bson vectors into DIR, one file per line, as the
# starting corpus of fuzz_bson. Run from the repository root; SKYJET_VECTORS overrides the vector
# directory (default test/vectors).
set -eu
dir=${1:?usage: seed_bson.sh DIR}
vectors=${SKYJET_VECTORS:-test/vectors}
mkdir -p "$dir"
unhex() { if command -v xxd >/dev/null; then xxd -r -p; else perl -pe 's/([0-9a-f]{2})/chr hex $1/ge'; fi; }
tab=$(printf '\t')
while IFS="$tab" read -r name desc bytes; do
    case $bytes in -|len=*|*[!0-9a-f]*) continue ;; esac
    safe=$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.-' '_')
    printf '%s' "$bytes" | unhex >"$dir/bson-$safe"
done <"$vectors/bson.txt"
