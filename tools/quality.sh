#!/usr/bin/env bash
# make quality: the default model's quality bar (issue: 10k samples, cfg 1.5,
# DDIM-50 and DDPM-250). Samples in shards of 1000 (seed = shard index, labels
# cycling over the ten classes), each written atomically by `ebcache sample`,
# so an interrupted run resumes at the first missing shard; then scores all
# shards as one set with `ebcache eval` into results/default_model_NAME.txt.
# Shards go to results/quality/<model sha256, 12 hex>_<spec>/seedK.h5, which
# is tracked: a run longer than one session (DDPM-250 on two cores) continues
# from the shards a previous session committed, and the reported numbers can
# be re-scored from the committed samples.
#   QUALITY_SAMPLERS="ddim-50 ddpm-250" QUALITY_SHARDS=10 tools/quality.sh
# On a GPU machine (bench/gpu.sh quality): EBCACHE_BIN names the CUDA build,
# QUALITY_SAMPLE_ARGS="--device cuda --batch 1000" is added to each sample
# command (each shard records its device), and QUALITY_SCORE=0 stops after the
# shards, which are scored where the real-feature cache and the data are.
# QUALITY_CFG_CHANNELS (default official) is passed as --cfg-channels and names
# the shard folder: shards of another guidance rule are never mixed in (the
# DDPM-250 shards of ebcache 0.1.0 guided ε alone: folder ..._ddpm-250_cfg-eps).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${EBCACHE_MODEL:-data/dit_fmnist.safetensors}
shards=${QUALITY_SHARDS:-10}
per_shard=1000
dir=results/quality
bin=${EBCACHE_BIN:-bin/ebcache}
read -r -a sample_args <<<"${QUALITY_SAMPLE_ARGS:-}"
guidance=${QUALITY_CFG_CHANNELS:-official}
mkdir -p "$dir" build
for spec in ${QUALITY_SAMPLERS:-ddim-50 ddpm-250}; do
  sampler=${spec%-*} steps=${spec#*-}
  case "$sampler" in ddpm|ddim) ;; *) echo "quality: '$spec' is not ddpm-N or ddim-N" >&2; exit 2 ;; esac
  # the model's bytes name the folder: shards of another model are never mixed in
  run="$dir/$(sha256sum "$model" | cut -c1-12)_${spec}_cfg-$guidance"
  mkdir -p "$run"
  files=()
  for ((k = 0; k < shards; k++)); do
    shard="$run/seed$k.h5"
    files+=("$shard")
    [ -f "$shard" ] && continue
    begin=$(date +%s)
    "$bin" sample --model "$model" --sampler "$sampler" --steps "$steps" --cfg-scale 1.5 --cfg-channels "$guidance" --seed "$k" \
      --n "$per_shard" ${sample_args[@]+"${sample_args[@]}"} --output "$shard"
    echo "quality: $spec shard $((k + 1))/$shards in $(($(date +%s) - begin)) s" >&2
  done
  [ "${QUALITY_SCORE:-1}" = 0 ] && continue
  list=$(IFS=,; echo "${files[*]}")
  report="results/default_model_${spec/-/}$([ "$guidance" = official ] || echo "_cfg-$guidance").txt"
  "$bin" eval --samples "$list" --real-cache build/quality_real_test.h5 \
    --output "build/quality_${run##*/}_metrics.h5" > "$report.tmp"
  mv "$report.tmp" "$report"
  cat "$report"
done
