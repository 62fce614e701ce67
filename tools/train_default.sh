#!/usr/bin/env bash
# make train-default: trains (or resumes) the shipped default model.
# The run lives in data/default-run/ (checkpoint + log, committed so that any
# machine can continue it); at the end the EMA weights become data/dit_fmnist.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
run=data/default-run
steps=${STEPS:-10000}
mkdir -p "$run"
resume=()
[ -f "$run/ckpt.safetensors" ] && resume=(--resume "$run/ckpt.safetensors")
bin/ebcache train --out "$run" "${resume[@]}" --input-size 28 --patch-size 4 --hidden 128 --depth 6 --heads 4 \
  --batch 128 --lr 3e-4 --warmup 500 --seed 0 --steps "$steps" --ckpt-every 250 --log-every 50 \
  --export-ema data/dit_fmnist.safetensors
