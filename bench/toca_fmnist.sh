#!/bin/sh
# toca_fmnist.sh — ToCa on the shipped model (data/dit_fmnist.safetensors), DDPM 50 steps, guidance 1.5:
# the FLOP fraction each table executes and what the recordings say about exposure bias, next to FORA.
# usage: bench/toca_fmnist.sh [EBCACHE [N_SAMPLES]]      (default build/opt/ebcache, 32)
# The shipped model has 7x7 tokens, which ToCa's 2x2 uniformity patches do not tile (ToCa's own code
# asserts they do), so its tables use --grid 1 (no spatial bonus). Prints one markdown row per table:
# the executed MAC fraction, and over the 50 steps the mean of (trajectory SNR / uncached trajectory
# SNR − 1) and of (cached − uncached) /exposure/snr_ratio, and the last step's relative x deviation.
set -eu
bin=${1:-build/opt/ebcache}
n=${2:-32}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" schedule toca --interval 4 --grid 1 --steps 50 --output "$dir/toca4" 2>/dev/null
"$bin" schedule toca --interval 8 --grid 1 --steps 50 --output "$dir/toca8" 2>/dev/null
"$bin" schedule fora --interval 4 --steps 50 --output "$dir/fora4" 2>/dev/null
echo "| table | executed MACs | FLOP speedup | mean SNR shift | mean snr_ratio shift | final x deviation |"
echo "|---|---|---|---|---|---|"
for t in toca4 toca8 fora4; do
  "$bin" record --sampler ddpm --steps 50 --cfg-scale 1.5 --n "$n" --seed 0 --schedule "$dir/$t" \
    --output "$dir/$t.h5" 2>"$dir/$t.log"
  frac=$(sed -n 's/.*schedule at \([0-9.]*\)% of the uncached MACs.*/\1/p' "$dir/$t.log")
  /usr/bin/python3 - "$dir/$t.h5" "$t" "$frac" <<'PY'
import sys
import h5py
f = h5py.File(sys.argv[1], "r")
snr = f["snr/trajectory"][:] / f["reference/snr/trajectory"][:] - 1
ratio = f["exposure/snr_ratio"][:] - f["reference/exposure/snr_ratio"][:]
frac = float(sys.argv[3]) / 100
print(f"| {sys.argv[2]} | {frac:.3f} | {1 / frac:.2f}x | {snr.mean():+.4f} | {ratio.mean():+.4f} | {f['deviation/x'][-1]:.4f} |")
PY
done
