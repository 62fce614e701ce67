#!/bin/sh
# fuzz/make_seeds.sh — rewrites the committed seed corpora fuzz/seeds/TARGET/ (small valid files of
# every kind each target reads) with the ebcache CLI (build/opt/ebcache) and python3's standard library.
# Run from the repository root after `make build/opt/ebcache`; takes a few seconds.
set -eu
bin=build/opt/ebcache
seeds=fuzz/seeds
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f "$seeds"/*/*

# A DiT of 4 tokens, 8 channels and 2 blocks, trained one step (F32, with __metadata__); its F16 copy.
$bin train --out "$tmp/train" --input-size 28 --patch-size 14 --hidden 8 --depth 2 --heads 2 --batch 2 --steps 1 \
    --warmup 0 --ckpt-every 0 --export-ema "$seeds/weights/tiny.safetensors" > /dev/null
cp "$seeds/weights/tiny.safetensors" "$seeds/safetensors/tiny.safetensors"
cp tests/golden/models/tiny_diffusers/transformer/config.json "$seeds/weights/config.json"

# HDF5: samples, a forward input, a recording and its fit.
$bin sample --model "$seeds/weights/tiny.safetensors" --sampler ddim --steps 2 --n 2 --output "$seeds/h5/samples.h5" > /dev/null 2>&1
cp tests/golden/forward_sigma.h5 "$seeds/h5/forward.h5"

# .npz archives: numpy's savez and savez_compressed and the C writer's (the npz goldens).
cp tests/golden/npz_savez.npz tests/golden/npz_compressed.npz tests/golden/npz_c.npz "$seeds/npz/"
$bin record --model "$seeds/weights/tiny.safetensors" --sampler ddim --steps 6 --n 2 --output "$seeds/h5/recording.h5" > /dev/null 2>&1
$bin fit "$seeds/h5/recording.h5" --output "$seeds/h5/fit.h5" > /dev/null

# Schedule tables of every generator, at 6 steps.
$bin schedule fora --interval 2 --steps 6 --output "$seeds/schedule/fora.schedule" > /dev/null
$bin schedule delta-dit --interval 2 --blocks 1 --boundary 3 --steps 6 --output "$seeds/schedule/delta_dit.schedule" > /dev/null
$bin schedule teacache --threshold 0.1 --steps 6 --output "$seeds/schedule/teacache.schedule" > /dev/null
$bin schedule fbcache --threshold 0.1 --blocks 1 --steps 6 --output "$seeds/schedule/fbcache.schedule" > /dev/null
$bin schedule taylorseer --interval 2 --order 2 --warmup 1 --steps 6 --output "$seeds/schedule/taylorseer.schedule" > /dev/null

# .npy tables (versions 1 and 2) and a safetensors file of every integer dtype, from python3's stdlib.
python3 - "$seeds" <<'PY'
import json, struct, sys
seeds = sys.argv[1]
def npy(path, major, values):
    head = "{'descr': '<i8', 'fortran_order': False, 'shape': (%d,), }" % len(values)
    pre = 10 if major == 1 else 12
    head += " " * (-(pre + len(head) + 1) % 64) + "\n"
    size = struct.pack("<H", len(head)) if major == 1 else struct.pack("<I", len(head))
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([major, 0]) + size + head.encode() + struct.pack("<%dq" % len(values), *values))
npy(seeds + "/npy/table_v1.npy", 1, [2, 1, 0, 2, 0, 0])
npy(seeds + "/npy/table_v2.npy", 2, [0])
header, data = {"__metadata__": {"format": "pt"}}, b""
for name, fmt in [("I8", "b"), ("U8", "B"), ("I16", "h"), ("U16", "H"), ("I32", "i"), ("U32", "I"),
                  ("I64", "q"), ("U64", "Q"), ("BOOL", "?"), ("F64", "d"), ("F8_E4M3", "B"), ("F8_E5M2", "B")]:
    raw = struct.pack("<2" + fmt, *((1, 0) if fmt != "d" else (0.5, -2.0)))
    header[name.lower()] = {"dtype": name, "shape": [2, 1], "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
text = json.dumps(header).encode()
with open(seeds + "/safetensors/dtypes.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + data)
PY

# Ablation specs: the shipped study, a minimal one and one with native sweeps.
cp data/ablation/default.spec "$seeds/ablate_spec/default.spec"
printf 'name = x\nsamplers = ddim-8 ddpm-10\nmethods = none fora\nseeds = 0\nspeedups = 1.5 2\n' > "$seeds/ablate_spec/small.spec"
printf 'name = x\nsamplers = ddim-8\nmethods = none fora teacache fbcache eb-cache\nseeds = 0\nspeedups = 1.5\nsweep.fora = 2 3\nsweep.fbcache = 0.1\nsweep.eb-cache = 0.5 2\n' > "$seeds/ablate_spec/sweep.spec"
ls -l "$seeds"/*
