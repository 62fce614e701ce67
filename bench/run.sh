#!/usr/bin/env bash
# make bench: ebcache against the PyTorch reference, in one run, same threads.
# Prints a table and writes results/bench.md. Ratios are what to compare: the
# machines are shared and absolute numbers move from run to run.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${BENCH_THREADS:-$(nproc)}
iters=${BENCH_ITERS:-3}
rounds=${BENCH_ROUNDS:-3}
out=results/bench.md
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
rate() { sed -E 's/.*: ([0-9.]+) images\/s.*/\1/'; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }
{
  echo "# make bench — $(date -u +%Y-%m-%d), $(nproc) cores, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo
  echo "Forward of DiT with random weights, 32×32×4 latents, batch 8, no guidance. ebcache and PyTorch run"
  echo "alternately, $rounds rounds of $iters forwards each; the table keeps each side's best round."
  echo
  echo "| model | ebcache images/s | PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') images/s | ratio |"
  echo "|---|---|---|---|"
  for cfg in S/2 B/2; do
    cs=() ps=()
    for _ in $(seq "$rounds"); do
      cs+=("$(OMP_NUM_THREADS=$threads build/opt/bench_forward "$cfg" 8 "$iters" | rate)")
      ps+=("$(/usr/bin/python3 bench/bench_ref.py "$cfg" 8 "$iters" "$threads" | rate)")
    done
    c=$(best "${cs[@]}") p=$(best "${ps[@]}")
    echo "| DiT-$cfg | $c | $p | $(echo "$c / $p" | bc -l | xargs printf '%.2f')× |"
  done
  echo
  echo "DiT-XL/2, batch 1, one forward (ebcache):"
  echo
  echo '```'
  OMP_NUM_THREADS=$threads build/opt/bench_forward XL/2 1 1
  echo '```'
  echo
  OMP_NUM_THREADS=$threads nice -n 10 build/opt/bench_cache B/2 10 "$iters"
  echo
  OMP_NUM_THREADS=$threads nice -n 10 build/opt/bench_record "$iters"
} | tee "$tmp"
mkdir -p results && mv "$tmp" "$out" && trap - EXIT
echo "wrote $out"
