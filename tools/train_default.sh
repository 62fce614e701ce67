#!/usr/bin/env bash
# make train-default: trains (or resumes) the shipped default model.
# The run lives in data/default-run/ (checkpoint + log, committed so that any
# machine can continue it); when the run reaches its last step, its EMA weights
# become data/dit_fmnist.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
run=data/default-run
steps=${STEPS:-15000}
mkdir -p "$run"
# The model and the recipe are fixed at the start; a resumed run takes them from the checkpoint.
if [ -f "$run/ckpt.safetensors" ]; then
  start=(--resume "$run/ckpt.safetensors")
else
  start=(--input-size 28 --patch-size 4 --hidden 128 --depth 6 --heads 4 --batch 128 --lr 3e-4 --warmup 500 --seed 0)
fi
bin/ebcache train --out "$run" "${start[@]}" --steps "$steps" --ckpt-every 250 --log-every 50
# Only a finished run becomes the shipped model (an interrupted one exits 0 at an earlier step).
last=$(tail -n 1 "$run/train_log.csv" | cut -d, -f1)
if [ "$last" -ge "$steps" ]; then
  bin/ebcache train --out "$run" --resume "$run/ckpt.safetensors" --steps "$steps" \
    --export-ema data/dit_fmnist.safetensors
  echo "wrote data/dit_fmnist.safetensors (EMA at step $last)"
fi
