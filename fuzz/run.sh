#!/bin/sh
# fuzz/run.sh TARGET SECONDS — runs build/fuzz/fuzz_TARGET (make -C fuzz) for SECONDS on one core.
#
# Inputs: the committed seeds fuzz/seeds/TARGET/ and the corpus grown by earlier runs in
# $FUZZ_WORK/corpus/TARGET/ (FUZZ_WORK defaults to build/fuzz; not committed), with the dictionary
# fuzz/dict/TARGET.dict. libFuzzer's output goes to $FUZZ_WORK/logs/TARGET.log; the script prints
# one summary line (executions, coverage, features). A finding (crash, sanitizer report, leak,
# timeout, out-of-memory) is saved under $FUZZ_WORK/findings/TARGET/, the log's tail is printed
# and the script exits non-zero.
set -eu
t=$1
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=${FUZZ_WORK:-$root/build/fuzz}
bin=${FUZZ_BIN:-$root/build/fuzz}/fuzz_$t
mkdir -p "$work/corpus/$t" "$work/findings/$t" "$work/logs"
log=$work/logs/$t.log
if "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$root/fuzz/dict/$t.dict" -artifact_prefix="$work/findings/$t/" \
    "$work/corpus/$t" "$root/fuzz/seeds/$t" > "$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1, ft \2/p')
    echo "fuzz_$t: $runs executions in $seconds s, $cov: no finding"
else
    tail -n 60 "$log"
    echo "fuzz_$t: FINDING (log $log, input in $work/findings/$t/)" >&2
    exit 1
fi
