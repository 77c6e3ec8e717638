#!/bin/sh
# Writes the libFuzzer seed corpus of fuzz_cluster into <dir>: one file per hex body of the
# cluster vectors (cluster-unpack.txt bodies as they are; cluster-pack.txt and cluster-live.txt
# frames without their 2-byte length), plus one stream per live scenario and direction (its
# frames back to back, length prefixes included). Vectors: $SKYJET_VECTORS or test/vectors.
# Usage: test/fuzz/seed_cluster.sh <dir>
set -eu
dir=${1:?usage: seed_cluster.sh <dir>}
vectors=${SKYJET_VECTORS:-$(dirname "$0")/../vectors}
mkdir -p "$dir"

# awk turns each hex string into a shell `printf` of octal escapes (NUL-safe, no xxd needed).
for f in cluster-unpack cluster-pack cluster-live; do
    awk -F '\t' -v file="$f" -v dir="$dir" '
    BEGIN { for (i = 0; i < 256; i++) hexval[sprintf("%02x", i)] = i }
    function octal(hex,   i, s) {
        s = ""
        for (i = 1; i < length(hex); i += 2) s = s sprintf("\\%03o", hexval[substr(hex, i, 2)])
        return s
    }
    function emit(name, hex, append) {
        gsub(/[^A-Za-z0-9._-]/, "_", name)
        printf "printf '\''%s'\'' %s \"%s/%s\"\n", octal(hex), append ? ">>" : ">", dir, name
    }
    NF == 3 && $3 != "-" && $3 !~ /^len=/ {
        if (file == "cluster-unpack") { emit("unpack-" $1, $3, 0); next }
        emit(substr(file, 9) "-" $1, substr($3, 5), 0)
        if (file == "cluster-live") {
            scenario = $1; sub(/\..*/, "", scenario)
            side = ($1 ~ /\.(wire|send)[0-9]+$/) ? "req" : "resp"
            key = scenario "-" side
            emit("stream-" key, $3, seen[key]++ > 0)
        }
    }' "$vectors/$f.txt" | sh
done
echo "seed_cluster.sh: $(find "$dir" -type f | wc -l) seeds in $dir"
