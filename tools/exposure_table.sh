#!/bin/sh
# exposure_table.sh — what recordings say about each cache table's exposure bias (README's table):
# `ebcache record --schedule` of each table on the shipped model (DDPM-50, guidance 1.5, 16 chains,
# seed 7; an uncached chain with the same noise runs alongside), then per table one markdown row: the
# FLOP speedup it executed, the mean over steps 0-47 and over the late steps 38-47 of the cached
# /exposure/snr_ratio over the uncached one, minus 1 (the last two steps' ratio is unstable), and the
# final relative deviation of x from the uncached chain. Rows in the order given.
# usage: tools/exposure_table.sh [--bin EBCACHE] TABLE...     e.g. results/default_tables/ddpm-50_fora_2.schedule
set -eu
bin=bin/ebcache
if [ "${1:-}" = --bin ]; then bin=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: tools/exposure_table.sh [--bin EBCACHE] TABLE..." >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "| table | FLOP speedup | SNR-ratio shift, steps 0–47 | steps 38–47 | final ‖Δx‖/‖x‖ |"
echo "|---|---|---|---|---|"
for t in "$@"; do
  name=$(basename "$t" .schedule)
  if ! "$bin" record --sampler ddpm --steps 50 --cfg-scale 1.5 --n 16 --seed 7 --schedule "$t" \
      --output "$dir/rec.h5" 2>"$dir/log"; then
    echo "exposure_table.sh: recording $t failed:" >&2; cat "$dir/log" >&2; exit 1
  fi
  pct=$(sed -n 's/.*schedule at \([0-9.]*\)% of the uncached MACs.*/\1/p' "$dir/log")
  /usr/bin/python3 - "$dir/rec.h5" "$name" "$pct" <<'PY'
import sys
import h5py
f = h5py.File(sys.argv[1], "r")
shift = f["exposure/snr_ratio"][:] / f["reference/exposure/snr_ratio"][:] - 1
print(f"| {sys.argv[2]} | {100 / float(sys.argv[3]):.2f}× | {100 * shift[:48].mean():+.1f}% | "
      f"{100 * shift[38:48].mean():+.1f}% | {f['deviation/x'][-1]:.3f} |")
PY
done
