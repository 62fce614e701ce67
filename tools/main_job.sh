#!/usr/bin/env bash
# make run: the main job on the shipped default model.
# Until the cache, record and search stages land it samples one image per class
# with and without guidance and reports what it did and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
model=data/dit_fmnist.safetensors
if [ ! -f "$model" ]; then
  echo "note: no trained default model in data/ yet; using the small random-weight test model"
  model=tests/golden/models/tiny_sigma.safetensors
fi
out=${EBCACHE_OUT:-results/run}
mkdir -p "$out"
echo "== model"
bin/ebcache info --model "$model"
classes=$(bin/ebcache info --model "$model" | awk '/^classes/ {print $2}')
labels=$(seq -s, 0 $((classes - 1)))
echo
echo "== DDIM-50, cfg 1.5, one sample per class (seed 0)"
bin/ebcache sample --model "$model" --sampler ddim --steps 50 --cfg-scale 1.5 --seed 0 --labels "$labels" \
  --output "$out/samples_ddim50.h5"
echo
echo "== DDPM-50, cfg 1.5, same labels and seed"
bin/ebcache sample --model "$model" --sampler ddpm --steps 50 --cfg-scale 1.5 --seed 0 --labels "$labels" \
  --output "$out/samples_ddpm50.h5"
echo
echo "wrote $out/samples_ddim50.h5 and $out/samples_ddpm50.h5 (datasets samples (N,C,H,W), y (N))"
