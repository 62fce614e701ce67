#!/usr/bin/env bash
# make run: the main job on the shipped default model (docs/ablation.md).
# Record a calibration run, fit the exposure-bias model, search an EB-Cache
# schedule for a 1.5x FLOP speedup, sample with and without it (and with the
# baselines of data/ablation/main.spec), evaluate, print the comparison, and
# draw the SNR, drift and Pareto figures. Everything lands in results/run/.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${EBCACHE_MODEL:-data/dit_fmnist.safetensors}
out=${EBCACHE_OUT:-results/run}
if [ ! -f "$model" ]; then
  echo "ebcache run: $model is missing; make train-default makes it" >&2
  exit 2
fi
mkdir -p "$out"
start=$(date +%s)
echo "== The model"
bin/ebcache info --model "$model"
echo
echo "== 1. Calibrate, fit, search, sample and evaluate (ebcache ablate data/ablation/main.spec)"
echo "   Cells are cached in build/ablate-cells: a second make run reuses them."
bin/ebcache ablate data/ablation/main.spec --model "$model" --results "$out" \
  2> >(tee "$out/ablate.log" | grep --line-buffered -E "^ablate" | sed -u 's/^/   /' >&2) ||
  { tail -20 "$out/ablate.log" >&2; exit 1; }
table="$out/main_tables/ddpm-50_eb-cache_1.5.schedule"
echo
echo "== 2. Exposure bias: the EB-Cache schedule against the uncached chain, both from pure noise"
bin/ebcache record --model "$model" --sampler ddpm --steps 50 --cfg-scale 1.5 --n 32 --seed 7 \
  --schedule "$table" --output "$out/record_eb-cache.h5" 2> "$out/record.log" || { cat "$out/record.log" >&2; exit 1; }
bin/ebcache plot "$out/record_eb-cache.h5" --out "$out/figures"
echo
echo "== 3. Results"
cat "$out/main.md"
cat <<TXT

What this shows:
- none: the uncached 50-step DDPM run; every other row uses the same seeds and labels.
- FLOP speedup counts the multiply-accumulates a schedule skips; measured speedup is wall-clock time.
- FD compares classifier features of the samples with real test images (lower is better; the floor
  of real data against real data is about 0.2 at this sample size); ΔFD is the difference to the
  uncached run; PSNR/SSIM say how close each image stays to its uncached twin.
- eb-cache-table is EB-Cache's Algorithm 1 alone; eb-cache adds the fitted noise scaling, which
  corrects the exposure bias plotted in $out/figures/ (chains from pure noise, as sampling runs):
  exposure.png divides each step's SNR by the schedule's SNR for data of the samples' own power
  (1 - alpha_bar over the noise power x_t carries): 1 = no bias, above 1 = x_t is less noisy than
  the schedule says, below 1 = noisier. caching.png shows cached / uncached SNR and eps-norm ratios
  and how far the cached chain drifts from the uncached one; drift.png marks the reused features.
- The full study with confidence intervals over seeds: ebcache ablate data/ablation/default.spec.

Files: $out/main.md, main.csv, main_pareto_ddpm-50.png, main_tables/, figures/{snr,exposure,drift,eps,caching}.png
TXT
echo "main job: $(( $(date +%s) - start )) s"
