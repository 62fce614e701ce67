"""Regenerates the golden files the C tests read.

usage: make_goldens.py OUT_DIR      (make goldens: OUT_DIR = tests/golden)

Deterministic: every random tensor comes from a torch.Generator with a fixed
seed, torch runs on one thread, and the HDF5 files carry no timestamps, so a
rerun rewrites the same bytes. Each file is written to a temporary name and
renamed. reference/README.md lists what each file holds.
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusion_ref as dr  # noqa: E402
import rng_ref  # noqa: E402
import st_io  # noqa: E402
import train_ref  # noqa: E402
from diffusers_layout import diffusers_config, diffusers_state_dict  # noqa: E402
from dit_ref import (DiT, DiTConfig, guide_channels, pos_embed_2d, random_weights,  # noqa: E402
                     timestep_freq)
from h5_writer import H5  # noqa: E402

SIGMA = DiTConfig(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4, num_classes=10,
                  learn_sigma=True)
NOSIGMA = DiTConfig(input_size=12, patch_size=2, in_channels=2, hidden_size=48, depth=3, num_heads=3, num_classes=5,
                    learn_sigma=False)
# The shipped model's kind (1 channel, learn_sigma): the official guidance slice
# [:, :3] covers ε and the variance channel, so the guidance rules disagree.
SIGMA1 = DiTConfig(input_size=8, patch_size=2, in_channels=1, hidden_size=32, depth=2, num_heads=2, num_classes=4,
                   learn_sigma=True)
SCHEDULES = {"r1000": "", "r250": "250", "r50": "50", "ddim50": "ddim50", "ddim25": "ddim25", "r10_10_5": "10,10,5",
             "r7": "7"}


def gen(seed):
    return torch.Generator().manual_seed(seed)


def ints(values):
    """Timesteps or labels as the long tensor torch indexes with (stored as int32)."""
    return torch.tensor(values, dtype=torch.long)


def write_models(out, w_sigma, w_nosigma, w_sigma1):
    os.makedirs(os.path.join(out, "models", "tiny_diffusers", "transformer"), exist_ok=True)
    path = lambda *p: os.path.join(out, "models", *p)  # noqa: E731
    st_io.save(path("tiny_sigma.safetensors"), w_sigma, SIGMA.metadata())
    st_io.save(path("tiny_sigma_f16.safetensors"), {k: v.half() for k, v in w_sigma.items()}, SIGMA.metadata())
    st_io.save(path("tiny_sigma_bf16.safetensors"), {k: v.bfloat16() for k, v in w_sigma.items()}, SIGMA.metadata())
    # No metadata: the loader infers input_size from pos_embed and needs heads given.
    st_io.save(path("tiny_nosigma.safetensors"), w_nosigma)
    st_io.save(path("tiny_sigma1.safetensors"), w_sigma1, SIGMA1.metadata())
    st_io.save(path("tiny_diffusers", "transformer", "diffusion_pytorch_model.safetensors"),
               diffusers_state_dict(SIGMA, w_sigma), {"format": "pt"})
    cfg_path = path("tiny_diffusers", "transformer", "config.json")
    with open(cfg_path + ".tmp", "w") as f:
        json.dump(diffusers_config(SIGMA), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(cfg_path + ".tmp", cfg_path)


def write_components(out, sigma):
    g = gen(101)
    with H5(os.path.join(out, "components.h5")) as h:
        t = ints([0, 1, 10, 250, 500, 998, 999, 37])
        h.put("tfreq/t", t)
        h.put("tfreq/out", timestep_freq(t))
        for D, grid in ((64, 4), (48, 6), (1152, 16)):
            h.put(f"pos_embed/d{D}_g{grid}", pos_embed_2d(D, grid), compress=True)
        x = torch.randn(2, 4, 8, 8, generator=g)
        h.put("patch/x", x)
        h.put("patch/tokens", sigma.patch_embed(x))
        tokens = torch.randn(2, 16, 32, generator=g)
        h.put("unpatch/tokens", tokens)
        h.put("unpatch/out", sigma.unpatchify(tokens))
        bx, bc = torch.randn(2, 16, 64, generator=g), torch.randn(2, 64, generator=g)
        h.put("block/x", bx)
        h.put("block/c", bc)
        h.put("block/out", sigma.block(0, bx, bc))
        ct, cy = ints([0, 999, 421]), ints([0, 10, 7])
        h.put("cond/t", ct)
        h.put("cond/y", cy)
        h.put("cond/c", sigma.condition(ct, cy))


def write_forwards(out, sigma, nosigma, f16, bf16):
    g = gen(102)
    x, t, y = torch.randn(5, 4, 8, 8, generator=g), ints([0, 999, 500, 17, 250]), ints([0, 10, 3, 9, 10])
    for name, model in (("forward_sigma", sigma), ("forward_f16", f16), ("forward_bf16", bf16)):
        with H5(os.path.join(out, name + ".h5")) as h:
            h.put("x", x)
            h.put("t", t)
            h.put("y", y)
            h.put("out", model.forward(x, t, y))
    x, t, y = torch.randn(4, 2, 12, 12, generator=g), ints([0, 999, 321, 64]), ints([5, 0, 4, 2])
    with H5(os.path.join(out, "forward_nosigma.h5")) as h:
        h.put("x", x)
        h.put("t", t)
        h.put("y", y)
        h.put("out", nosigma.forward(x, t, y))


def official_cfg(model, x, t, y, scale):
    """forward_with_cfg_official on the doubled batch the official sample.py
    builds, conditional half kept (the sampler drops the null half)."""
    null = torch.full_like(y, model.cfg.num_classes)
    return model.forward_with_cfg_official(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]), scale)[:len(x)]


def guided(model, x, t, y, scale, rule):
    """ebcache's guidance under `rule`; the official rule is checked bitwise
    against the official formulation."""
    out = model.forward_cfg(x, t, y, scale, guide_channels(model.cfg, rule))
    if rule == "official" and not torch.equal(out, official_cfg(model, x, t, y, scale)):
        raise AssertionError("forward_cfg with the official channel count differs from forward_with_cfg")
    return out


def write_cfg(out, sigma):
    g = gen(103)
    x, t, y = torch.randn(3, 4, 8, 8, generator=g), ints([999, 500, 3]), ints([2, 9, 0])
    with H5(os.path.join(out, "cfg.h5")) as h:
        h.put("x", x)
        h.put("t", t)
        h.put("y", y)
        h.attrs("/", scale=np.float64(1.5))
        for name, rule in (("out", "official"), ("out_eps", "eps"), ("out_all", "all")):
            h.put(name, guided(sigma, x, t, y, 1.5, rule))
            h.attrs(name, guide_channels=np.int32(guide_channels(SIGMA, rule)), rule=rule)


def write_cfg_sigma1(out, sigma1):
    """cfg_sigma1.h5: the 1-channel learn_sigma model, where the official rule
    guides the variance channel too: forwards under each rule and DDPM loops
    (every step's variance comes from the guided output)."""
    g = gen(105)
    x, t, y = torch.randn(3, 1, 8, 8, generator=g), ints([999, 500, 3]), ints([2, 4, 0])
    s = dr.Schedule("10")
    with H5(os.path.join(out, "cfg_sigma1.h5")) as h:
        h.put("x", x)
        h.put("t", t)
        h.put("y", y)
        h.attrs("/", scale=np.float64(4.0))
        for name, rule in (("out", "official"), ("out_eps", "eps")):
            h.put(name, guided(sigma1, x, t, y, 4.0, rule))
            h.attrs(name, guide_channels=np.int32(guide_channels(SIGMA1, rule)), rule=rule)
        x_T, yl = dr.initial_noise(12, (3, 1, 8, 8)), ints([1, 3, 4])
        h.put("ddpm/xT", x_T)
        h.put("ddpm/y", yl)
        for rule in ("official", "eps"):
            fn = lambda xt, tt, rule=rule: guided(sigma1, xt, tt, yl, 4.0, rule)  # noqa: E731
            h.put(f"ddpm/{rule}/samples", dr.sample_loop(fn, s, x_T, "ddpm", dr.LEARNED_RANGE, 12))
            run_attrs(h, f"ddpm/{rule}", 12, s, 0.0, 4.0, dr.LEARNED_RANGE, "ddpm")
            h.attrs(f"ddpm/{rule}", guide_channels=np.int32(guide_channels(SIGMA1, rule)), rule=rule)


SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "dit_fmnist.safetensors")


def write_cfg_shipped(out):
    """cfg_shipped.h5: the official forward_with_cfg of the shipped model
    (data/dit_fmnist.safetensors, whose SHA-256 it records) at cfg 1.5 and 4,
    and the ε-only rule, on a few inputs. Prints how far apart the rules are."""
    weights, meta = st_io.load(SHIPPED)
    with open(SHIPPED, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    cfg = DiTConfig.from_metadata(meta)
    model = DiT(cfg, weights)
    g = gen(106)
    S = cfg.input_size
    x, t, y = torch.randn(4, cfg.in_channels, S, S, generator=g), ints([999, 700, 250, 20]), ints([0, 3, 7, 9])
    with H5(os.path.join(out, "cfg_shipped.h5")) as h:
        h.put("x", x)
        h.put("t", t)
        h.put("y", y)
        h.attrs("/", model_sha256=sha)
        for scale in (1.5, 4.0):
            official, eps = guided(model, x, t, y, scale, "official"), guided(model, x, t, y, scale, "eps")
            h.put(f"cfg{scale:g}/out", official)
            h.put(f"cfg{scale:g}/out_eps", eps)
            h.attrs(f"cfg{scale:g}", scale=np.float64(scale))
            rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
            print(f"shipped model, cfg {scale:g}: eps-only vs official: eps channel {rel(eps[:, :1], official[:, :1]):.3g}, "
                  f"variance channel {rel(eps[:, 1:], official[:, 1:]):.3g}, full output {rel(eps, official):.3g} "
                  "(max |diff| / max |official|)")


def write_schedules(out):
    with H5(os.path.join(out, "schedules.h5")) as h:
        for group, spacing in SCHEDULES.items():
            s = dr.Schedule(spacing)
            h.put(f"{group}/timestep", s.timestep)
            for name in dr.Schedule.ARRAYS:
                h.put(f"{group}/{name}", getattr(s, name))
            h.attrs(group, respacing=spacing)


def write_pmv(out):
    g = gen(104)
    s = dr.Schedule("50")
    x, model_out = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 8, 8, 8, generator=g)
    with H5(os.path.join(out, "pmv.h5")) as h:
        h.put("x", x)
        h.put("model_out", model_out)
        h.attrs("/", respacing="50")
        for prefix, var_type, mo in (("", dr.LEARNED_RANGE, model_out), ("fixed_small/", dr.FIXED_SMALL, model_out[:, :4]),
                                     ("fixed_large/", dr.FIXED_LARGE, model_out[:, :4])):
            for i in (49, 25, 1, 0):
                res = dr.p_mean_variance(s, var_type, mo, x, torch.full((2,), i, dtype=torch.long))
                for k in ("mean", "log_variance", "pred_xstart"):
                    h.put(f"{prefix}i{i}/{k}", res[k])


def sample(model, s, x_T, y, kind, var_type, seed, eta, cfg_scale):
    """The ebcache sampler: cfg 1 runs the plain conditional forward (no null pass)."""
    if cfg_scale == 1:
        fn = lambda x, t: model.forward(x, t, y)  # noqa: E731
    else:
        fn = lambda x, t: guided(model, x, t, y, cfg_scale, "official")  # noqa: E731
    return dr.sample_loop(fn, s, x_T, kind, var_type, seed, eta)


def run_attrs(h, group, seed, s, eta, cfg_scale, var_type, kind):
    h.attrs(group, seed=np.int64(seed), steps=np.int32(s.S), respacing=s.respacing, eta=np.float64(eta),
            cfg=np.float64(cfg_scale), sampler=kind, var_type=var_type)


def write_loops(out, sigma, nosigma):
    s = dr.Schedule("ddim10")
    x_T, y = dr.initial_noise(11, (3, 4, 8, 8)), ints([1, 7, 3])
    with H5(os.path.join(out, "loop_ddim.h5")) as h:
        h.put("xT", x_T)
        h.put("y", y)
        for group, eta, cfg_scale in (("eta0_cfg1.5", 0.0, 1.5), ("eta0_cfg1", 0.0, 1.0), ("eta0.5_cfg1.5", 0.5, 1.5)):
            h.put(f"{group}/samples", sample(sigma, s, x_T, y, "ddim", dr.LEARNED_RANGE, 11, eta, cfg_scale))
            run_attrs(h, group, 11, s, eta, cfg_scale, dr.LEARNED_RANGE, "ddim")
    s = dr.Schedule("10")
    with H5(os.path.join(out, "loop_ddpm.h5")) as h:
        x_T, y = dr.initial_noise(5, (3, 4, 8, 8)), ints([1, 7, 3])
        h.put("xT", x_T)
        h.put("y", y)
        h.put("samples", sample(sigma, s, x_T, y, "ddpm", dr.LEARNED_RANGE, 5, 0.0, 1.5))
        run_attrs(h, "/", 5, s, 0.0, 1.5, dr.LEARNED_RANGE, "ddpm")
        x_T, y = dr.initial_noise(6, (2, 2, 12, 12)), ints([4, 0])
        h.put("nosigma/xT", x_T)
        h.put("nosigma/y", y)
        h.put("nosigma/samples", sample(nosigma, s, x_T, y, "ddpm", dr.FIXED_SMALL, 6, 0.0, 1.0))
        run_attrs(h, "nosigma", 6, s, 0.0, 1.0, dr.FIXED_SMALL, "ddpm")
        h.put("nosigma_large/samples", sample(nosigma, s, x_T, y, "ddpm", dr.FIXED_LARGE, 6, 0.0, 1.0))
        run_attrs(h, "nosigma_large", 6, s, 0.0, 1.0, dr.FIXED_LARGE, "ddpm")


def write_rng(out):
    with H5(os.path.join(out, "rng.h5")) as h:
        for name, seed, stream, n in (("s0_stream0", 0, 0, 16), ("s42_stream_3_5", 42, (3 << 20) | 5, 16),
                                      ("s7_stream0_big", 7, 0, 1000)):
            h.put(name, rng_ref.normals(seed, stream, (n,)))
            h.attrs(name, seed=np.uint64(seed), stream=np.uint64(stream), key=np.uint64(rng_ref.key(seed, stream)))
        # Raw counters of key(0, 0), for debugging the integer part alone.
        k = rng_ref.key(0, 0)
        h.put("s0_stream0_u64", np.array([rng_ref.u64(k, c) for c in range(8)], dtype=np.uint64))


def main(argv):
    if len(argv) != 2:
        print("usage: make_goldens.py OUT_DIR", file=sys.stderr)
        return 2
    out = argv[1]
    torch.set_num_threads(1)
    w_sigma, w_nosigma, w_sigma1 = random_weights(SIGMA, gen(1)), random_weights(NOSIGMA, gen(2)), \
        random_weights(SIGMA1, gen(3))
    sigma, nosigma, sigma1 = DiT(SIGMA, w_sigma), DiT(NOSIGMA, w_nosigma), DiT(SIGMA1, w_sigma1)
    # The rounded models compute in float32 from the rounded values.
    f16 = DiT(SIGMA, {k: v.half().float() for k, v in w_sigma.items()})
    bf16 = DiT(SIGMA, {k: v.bfloat16().float() for k, v in w_sigma.items()})
    write_models(out, w_sigma, w_nosigma, w_sigma1)
    with torch.no_grad():
        write_components(out, sigma)
        write_forwards(out, sigma, nosigma, f16, bf16)
        write_cfg(out, sigma)
        write_cfg_sigma1(out, sigma1)
        write_cfg_shipped(out)
        write_schedules(out)
        write_pmv(out)
        write_loops(out, sigma, nosigma)
    write_rng(out)
    train_ref.write_train_step(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
