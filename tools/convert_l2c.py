#!/usr/bin/python3
"""Converts a Learning-to-Cache DiT router (horseee/learning-to-cache, DiT/ckpt/DDIM50_router.pt)
into the router scores ebcache reads, and optionally the schedule table at a threshold.

usage: convert_l2c.py ROUTER.pt --respacing SPEC --scores SCORES.h5 [--threshold X --output TABLE]
                      [--model NAME] [--unsafe-pickle]

ROUTER.pt holds {"routers": state_dict of a ModuleList of S routers}, key "i.prob" a
(2·depth,) tensor for the sampler's respaced index i (attention of block l at 2l, its MLP
at 2l + 1); a score is sigmoid(prob). SCORES.h5 gets /l2c/scores (S, depth, 2) float64 in
sampling-step order (step k = index S−1−k) and /l2c/t (S) int32, the model timestep of each
step, for `ebcache schedule l2c` and `ebcache search --method l2c --router SCORES.h5`.
With --threshold and --output the table of that threshold is written too (docs/schedule.md):
at odd indices every module computes; at even ones a module computes where its score is above
the threshold and reuses its previous output otherwise (the official dynamic_models.py; its
sample.py default is --thres 0.1); step 0 computes. The published files also pickle the training
run's argparse Namespace, which torch's safe loader refuses: --unsafe-pickle loads them (only
for files from a source you trust). Files are written under a temporary name
and renamed. Exit 2 on bad input, 1 on a failure to write.
"""
import argparse
import os
import pickle
import re
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import diffusion_ref as dr  # noqa: E402


class InputError(Exception):
    """Bad input: the message names the file and key; exit status 2."""


def router_scores(path, steps, unsafe_pickle=False):
    """(S, depth, 2) float64 scores in step order from the router file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except pickle.UnpicklingError as e:
        raise InputError(f"{path}: it pickles more than tensors ({str(e).splitlines()[-1][:120]}); "
                         "--unsafe-pickle loads it if you trust its source")
    except (OSError, RuntimeError, EOFError) as e:
        raise InputError(f"{path}: not a readable torch file ({e})")
    if not isinstance(ckpt, dict) or "routers" not in ckpt:
        raise InputError(f"{path}: no 'routers' entry (a Learning-to-Cache router file holds {{'routers': ...}})")
    routers = ckpt["routers"]
    keys = {}
    for k, v in routers.items():
        m = re.fullmatch(r"(\d+)\.prob", k)
        if not m or not torch.is_tensor(v) or v.dim() != 1 or v.numel() % 2:
            raise InputError(f"{path}: routers key '{k}' is not 'i.prob' with an even-length vector")
        keys[int(m.group(1))] = v.double()
    if sorted(keys) != list(range(len(keys))):
        raise InputError(f"{path}: router indices {sorted(keys)} are not 0..{len(keys) - 1}")
    if len(keys) != steps:
        raise InputError(f"{path}: {len(keys)} routers, but the sampler has {steps} steps")
    n = {v.numel() for v in keys.values()}
    if len(n) != 1:
        raise InputError(f"{path}: routers of different lengths {sorted(n)}")
    depth = n.pop() // 2
    scores = np.empty((steps, depth, 2))
    for i, v in keys.items():
        s = torch.sigmoid(v).numpy()
        if not np.all(np.isfinite(s)):
            raise InputError(f"{path}: router {i} holds non-finite values")
        scores[steps - 1 - i] = s.reshape(depth, 2)
    return scores


def table_text(scores, timesteps, threshold, model, spacing):
    """The schedule table of the router at `threshold`: rows of step, t, blocks, attn, mlp, scale."""
    S, depth = scores.shape[:2]
    lines = ["# ebcache schedule v1", "## method: l2c", f"## params: threshold={threshold:.6g}"]
    if model:
        lines.append(f"## model: {model}")
    lines += [f"## sampler: respacing={spacing}", f"## steps: {S}", "# step t blocks attn mlp scale"]
    for k in range(S):
        t = int(timesteps[k])
        lines.append(f"{k} {t} * C C 1")
        if k == 0 or (S - 1 - k) % 2:
            continue
        for b in range(depth):
            a, m = ("C" if scores[k, b, j] > threshold else "R" for j in range(2))
            if a != "C" or m != "C":
                lines.append(f"{k} {t} {b} {a} {m} 1")
    return "\n".join(lines) + "\n"


def atomic_write(path, write):
    """write(tmp) fills a temporary file next to `path`, renamed to it when complete."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_scores(tmp, scores, timesteps, source):
    with h5py.File(tmp, "w") as f:
        f.create_dataset("l2c/scores", data=scores.astype("<f8"), track_times=False)
        f.create_dataset("l2c/t", data=np.asarray(timesteps, dtype="<i4"), track_times=False)
        f["l2c/scores"].attrs["description"] = "sigmoid(router prob), step order, (attention, MLP) per block"
        f.attrs["source"] = os.path.basename(source)


def write_text(tmp, text):
    with open(tmp, "w") as f:
        f.write(text)


def step_timesteps(spacing):
    s = dr.Schedule(spacing)
    return [int(s.timestep[s.S - 1 - k]) for k in range(s.S)], s.S


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("router")
    p.add_argument("--respacing", required=True, help='the sampler\'s respacing ("ddim50" for DDIM50_router.pt)')
    p.add_argument("--scores", required=True, help="router scores file to write (HDF5)")
    p.add_argument("--threshold", type=float, help="also write the table at this threshold (needs --output)")
    p.add_argument("--output", help="the schedule table to write")
    p.add_argument("--model", default="", help="the ## model: line of the table (e.g. DiT-XL/2)")
    p.add_argument("--unsafe-pickle", action="store_true", help="load a file that pickles more than tensors")
    a = p.parse_args(argv)
    try:
        if (a.threshold is None) != (a.output is None):
            raise InputError("--threshold and --output go together")
        if a.threshold is not None and not (a.threshold >= 0):
            raise InputError(f"--threshold {a.threshold} is not >= 0")
        try:
            timesteps, S = step_timesteps(a.respacing)
        except (ValueError, AssertionError) as e:
            raise InputError(f"--respacing '{a.respacing}': {e}")
        scores = router_scores(a.router, S, a.unsafe_pickle)
    except InputError as e:
        print(f"convert_l2c.py: {e}", file=sys.stderr)
        return 2
    try:
        atomic_write(a.scores, lambda tmp: write_scores(tmp, scores, timesteps, a.router))
        if a.output:
            text = table_text(scores, timesteps, a.threshold, a.model, a.respacing)
            atomic_write(a.output, lambda tmp: write_text(tmp, text))
    except OSError as e:
        print(f"convert_l2c.py: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.scores}: {S} steps x {scores.shape[1]} blocks" + (f", {a.output}" if a.output else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
