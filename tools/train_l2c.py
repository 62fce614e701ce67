#!/usr/bin/python3
"""Trains a Learning-to-Cache router (Ma et al., 2024) for an ebcache DiT model, in the format
of the published routers, so `convert_l2c.py` (and so `ebcache schedule|search --method l2c`)
reads it like DiT/ckpt/DDIM50_router.pt.

usage: train_l2c.py MODEL.safetensors --respacing SPEC --output ROUTER.pt [--scores SCORES.h5]
                    [--data fmnist|noise] [--fmnist DIR] [--iters N] [--batch B] [--lr X] [--l1 X]
                    [--seed N] [--threads N]

The semantics are those of horseee/learning-to-cache DiT/train_router.py with its
router_training_losses (gaussian_diffusion.py) and router_models.py:
  - one router per respaced index i, a parameter vector prob of 2·depth values drawn from
    N(0, 1); the score of block l's attention is sigmoid(prob[2l]), of its MLP sigmoid(prob[2l+1]);
  - an iteration draws one odd index ts = 2u + 1 (u uniform in [0, S/2)) for the whole batch,
    x_t = q_sample(x0, ts), drops each label to the null class with probability 0.1, runs the
    full model at ts (its per-block attention and MLP outputs become the cache), takes the
    DDIM (eta 0) step to x at index ts − 1, and there compares the full model's output with the
    routed one, where each module's output is w·fresh + (1 − w)·cached with w its score;
  - loss = mean over the batch of the mean squared difference over every output channel
    + l1 · Σ scores of that router; AdamW (weight decay 0) on the routers alone, the gradients
    reset to None between iterations (torch >= 2.0, which the official code runs on), so a
    router moves only in the iterations that draw it; after each step every prob is clamped
    to [−5, 5].
Defaults are the published training command's (--lr 0.001 --l1 5e-6, batch 64 over 8 GPUs);
the shipped model's router (make l2c-router) states its own. The data: Fashion-MNIST training
images (the model's input side, centered on −1 as ebcache's trainer pads them) with their
labels, or pure N(0, 1) images with uniform labels for a model without data (a random
benchmark model). The same seed and thread count give the same router. Files are written under
a temporary name and renamed. Exit 2 on bad input, 1 on a failure to write.
"""
import argparse
import gzip
import io
import math
import os
import struct
import sys
import time
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import convert_l2c  # noqa: E402
import diffusion_ref as dr  # noqa: E402
import dit_ref  # noqa: E402
import st_io  # noqa: E402
from dit_ref import layer_norm, modulate  # noqa: E402

LABEL_DROPOUT = 0.1  # router_training_losses' dropout_prob
PROB_CLAMP = 5.0
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


class InputError(Exception):
    """Bad input: the message names the file or option; exit status 2."""


def load_model(path):
    try:
        weights, md = st_io.load(path)
    except (OSError, st_io.SafetensorsError) as e:
        raise InputError(f"{path}: {e}")
    try:
        cfg = dit_ref.DiTConfig.from_metadata(md)
    except ValueError as e:
        raise InputError(f"{path}: {e}")
    return dit_ref.DiT(cfg, weights)


def read_idx(path, magic):
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError(f"{path}: {e}")
    if len(raw) < 8 or struct.unpack(">I", raw[:4])[0] != magic:
        raise InputError(f"{path}: not an IDX file of type {magic:#x}")
    dims = struct.unpack(f">{magic & 0xff}I", raw[4:4 + 4 * (magic & 0xff)])
    body = raw[4 + 4 * len(dims):]
    if len(body) != math.prod(dims):
        raise InputError(f"{path}: {len(body)} bytes of data for dimensions {dims}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def fmnist_data(folder, cfg):
    """(N, 1, side, side) images in [−1, 1] padded with −1 as train/fmnist.c does, (N) labels."""
    images = read_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"), 0x803)
    labels = read_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"), 0x801).long()
    n, h, w = images.shape
    side = cfg.input_size
    if cfg.in_channels != 1 or side < h or side < w or cfg.num_classes != 10 or len(labels) != n:
        raise InputError(f"{folder}: Fashion-MNIST ({n} of {h}x{w}, 10 classes) does not fit a model of "
                         f"{cfg.in_channels} channel(s), side {side}, {cfg.num_classes} classes")
    x = torch.full((n, 1, side, side), -1.0)
    top, left = (side - h) // 2, (side - w) // 2
    x[:, 0, top:top + h, left:left + w] = images.float() / 127.5 - 1.0
    return x, labels


def forward(model, x, t, y, cache=None, weights=None):
    """The model's output at x (N, C, H, W), timesteps t (N), labels y (N). With cache=None
    the per-block (attention, MLP) outputs are returned alongside; with weights (2·depth)
    each module's output is weights·fresh + (1 − weights)·cache (router_models.py)."""
    tokens, c = model.patch_embed(x), model.condition(t, y)
    kept = []
    for i in range(model.cfg.depth):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = model.modulation(i, c)
        att = model.attention(i, modulate(layer_norm(tokens), shift_msa, scale_msa))
        if weights is not None:
            att = cache[i][0] * (1 - weights[2 * i]) + att * weights[2 * i]
        tokens = tokens + gate_msa.unsqueeze(1) * att
        mlp = model.mlp(i, modulate(layer_norm(tokens), shift_mlp, scale_mlp))
        if weights is not None:
            mlp = cache[i][1] * (1 - weights[2 * i + 1]) + mlp * weights[2 * i + 1]
        tokens = tokens + gate_mlp.unsqueeze(1) * mlp
        kept.append((att, mlp))
    out = model.unpatchify(model.final_layer(tokens, c))
    return out if cache is not None else (out, kept)


def train(model, sched, data, a, progress):
    """The routers {"i.prob": (2·depth)} after a.iters iterations."""
    cfg, S = model.cfg, sched.S
    g = torch.Generator().manual_seed(a.seed)
    probs = [torch.randn(2 * cfg.depth, generator=g).requires_grad_() for _ in range(S)]
    opt = torch.optim.AdamW(probs, lr=a.lr, weight_decay=0)
    shape = (a.batch, cfg.in_channels, cfg.input_size, cfg.input_size)
    var = dr.LEARNED_RANGE if cfg.learn_sigma else dr.FIXED_SMALL
    start = time.monotonic()
    for it in range(a.iters):
        if data is None:
            x0, y = torch.randn(shape, generator=g), torch.randint(0, cfg.num_classes, (a.batch,), generator=g)
        else:
            pick = torch.randint(0, len(data[1]), (a.batch,), generator=g)
            x0, y = data[0][pick], data[1][pick]
        ts = torch.full((a.batch,), 2 * int(torch.randint(0, S // 2, (1,), generator=g)) + 1)
        drop = torch.rand(a.batch, generator=g) < LABEL_DROPOUT
        y = torch.where(drop, torch.full_like(y, cfg.num_classes), y)
        noise = torch.randn(shape, generator=g)
        with torch.no_grad():
            ac = dr.extract(sched.alphas_cumprod, ts, shape)
            x_t = ac.sqrt() * x0 + (1 - ac).sqrt() * noise
            out, cache = forward(model, x_t, torch.from_numpy(sched.timestep)[ts], y)
            x_next = dr.ddim_sample(sched, var, out, x_t, ts, 0.0, torch.zeros_like(x_t))
            t_next = torch.from_numpy(sched.timestep)[ts - 1]
            target = model.forward(x_next, t_next, y)
        scores = torch.sigmoid(probs[int(ts[0]) - 1])
        pred = forward(model, x_next, t_next, y, cache=cache, weights=scores)
        loss = ((target - pred) ** 2).flatten(1).mean(1).mean() + a.l1 * scores.sum()
        opt.zero_grad(set_to_none=True)  # torch >= 2.0's default, the official code's: other routers stay put
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p in probs:
                p.clamp_(-PROB_CLAMP, PROB_CLAMP)
        if progress and (it + 1) % 10 == 0:
            el = time.monotonic() - start
            print(f"\rtrain_l2c [{it + 1}/{a.iters}] loss {loss.item():.3e} (ETA {el / (it + 1) * (a.iters - it - 1):.0f} s)",
                  end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    return OrderedDict((f"{i}.prob", p.detach().clone()) for i, p in enumerate(probs))


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="the DiT (safetensors with ebcache's metadata)")
    p.add_argument("--respacing", required=True, help='the sampler\'s respacing ("50", "ddim50", ...)')
    p.add_argument("--output", required=True, help="the router file to write ({'routers': state_dict})")
    p.add_argument("--scores", help="also write its scores file (convert_l2c.py --scores)")
    p.add_argument("--data", choices=("fmnist", "noise"), default="fmnist")
    p.add_argument("--fmnist", default=FMNIST_DIR, help="the Fashion-MNIST folder (train-*-idx*-ubyte.gz)")
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--l1", type=float, default=5e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the router's bits depend on it)")
    a = p.parse_args(argv)
    try:
        for name, v in (("--iters", a.iters), ("--batch", a.batch), ("--threads", a.threads)):
            if v < 1:
                raise InputError(f"{name} {v} is not >= 1")
        if not (a.lr > 0) or not (a.l1 >= 0):
            raise InputError(f"--lr {a.lr} must be > 0 and --l1 {a.l1} >= 0")
        for out in (a.output, a.scores):
            if out and os.path.exists(out) and os.path.samefile(out, a.model):
                raise InputError(f"{out}: the output is the model")
        try:
            sched = dr.Schedule(a.respacing)
        except (ValueError, AssertionError) as e:
            raise InputError(f"--respacing '{a.respacing}': {e}")
        if sched.S < 2:
            raise InputError(f"--respacing '{a.respacing}': {sched.S} step; a router needs at least 2")
        model = load_model(a.model)
        data = fmnist_data(a.fmnist, model.cfg) if a.data == "fmnist" else None
    except InputError as e:
        print(f"train_l2c.py: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    routers = train(model, sched, data, a, sys.stderr.isatty())
    buf = io.BytesIO()  # saved in memory first: torch.save names its archive after the file it writes
    torch.save({"routers": routers}, buf)
    try:
        convert_l2c.atomic_write(a.output, lambda tmp: write_bytes(tmp, buf.getvalue()))
    except OSError as e:
        print(f"train_l2c.py: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.output}: {len(routers)} routers of {2 * model.cfg.depth} scores", file=sys.stderr)
    return convert_l2c.main([a.output, "--respacing", a.respacing, "--scores", a.scores]) if a.scores else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
