#!/bin/sh
# fuzz/run.sh TARGET SECONDS — runs build/fuzz/fuzz_TARGET (make -C fuzz) for SECONDS on one core.
#
# Inputs: the committed seeds fuzz/seeds/TARGET/ and the corpus grown by earlier runs,
# build/fuzz/corpus/TARGET/ (not committed), with the dictionary fuzz/dict/TARGET.dict.
# A finding (crash, sanitizer report, leak, timeout, out-of-memory) is saved under
# build/fuzz/findings/TARGET/ and makes the script exit non-zero.
set -eu
t=$1
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
corpus=$root/build/fuzz/corpus/$t
findings=$root/build/fuzz/findings/$t
mkdir -p "$corpus" "$findings"
echo "fuzz_$t: ${seconds} s"
exec "$root/build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$root/fuzz/dict/$t.dict" -artifact_prefix="$findings/" "$corpus" "$root/fuzz/seeds/$t"
