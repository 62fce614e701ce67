"""record_ref.py — an independent PyTorch computation of `ebcache record`'s statistics.

Written from docs/recording.md, not from analyze/record.c: the chains run through
dit_ref / cache_ref / diffusion_ref, every pre-gate branch output, block 0's
modulated input and model output is kept whole, and the statistics are computed
afterwards in float64 from the kept tensors.

usage: record_ref.py OUT_DIR      (make goldens: OUT_DIR = tests/golden)
writes OUT_DIR/record_goldens.h5: one group per case with the inputs (`xT`, `y`,
`x0`, attributes `table`, `spacing`, `sampler`, `var_type`, `seed`, `eta`, `cfg`,
`start_step`, `model`, `heads`) and every statistic under its recording name
(`snr/trajectory`, `drift/attn`, `reference/eps/norm`, `deviation/x`, ...).
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusion_ref as dr  # noqa: E402
import rng_ref  # noqa: E402
import st_io  # noqa: E402
from cache_ref import CachedDiT, Table, scale_eps  # noqa: E402
from dit_ref import DiT, default_guide_channels, layer_norm, modulate  # noqa: E402
from h5_writer import H5  # noqa: E402
from make_cache_goldens import EBCACHE_ROWS, delta_dit, fora, table_text  # noqa: E402
from make_goldens import NOSIGMA, SIGMA, gen, ints  # noqa: E402

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "models")


def stream_q(n, i):
    """The q(x_t | x0) noise of sample n at respaced index i (docs/recording.md)."""
    return (n << 20) | (1 << 19) | i


class Head:
    """The first S' indices of a schedule: the steps from start_step on."""

    def __init__(self, s, S):
        self.s, self.S = s, S

    def __getattr__(self, name):
        return getattr(self.s, name)


class Watched(CachedDiT):
    """A CachedDiT that keeps, per forward, every branch output it adds, block 0's
    modulated input and the model output (whole model batch)."""

    def __init__(self, cfg, weights, table, first_step):
        super().__init__(cfg, weights, table)
        self.step = first_step  # steps before it never run; the table keeps its numbering
        self.seen = []          # per forward: {(block, "attn"|"mlp"): f, "block0": ..., "output": ...}

    def branch(self, i, name, action, compute):
        out = super().branch(i, name, action, compute)
        self.seen[-1][(i, name)] = out.double()
        return out

    def forward(self, x, t, y):
        tokens, c = self.patch_embed(x), self.condition(t, y)
        shift, scale = self.modulation(0, c)[:2]
        self.seen.append({"block0": modulate(layer_norm(tokens), shift, scale).double()})
        out = super().forward(x, t, y)
        self.seen[-1]["output"] = out.double()
        return out


def all_compute(spacing):
    return table_text(spacing, fora(dr.Schedule(spacing).S, 1), method="none")


def chain(cfg, weights, text, s, k0, x_start, y, kind, var_type, seed, eta, cfg_scale):
    """One chain from x_start at step k0: (x_t per step, ε per step, final sample, Watched model)."""
    model = Watched(cfg, weights, Table.parse(text), k0)
    xs, eps = [], []

    def fn(x, t):
        xs.append(x.clone())
        if cfg_scale == 1:
            out = model.forward(x, t, y)
        else:
            out = model.forward_cfg(x, t, y, cfg_scale, default_guide_channels(cfg))
        out = scale_eps(out, model.scale[model.step - 1], cfg.in_channels)
        eps.append(out[:, :cfg.in_channels].clone())
        return out

    final = dr.sample_loop(fn, Head(s, s.S - k0), x_start, kind, var_type, seed, eta)
    return xs, eps, final, model


def drift(seen, S, k0, depth):
    """Relative L1 change and cosine against the last value each quantity had (NaN when absent)."""
    names = [(b, m) for b in range(depth) for m in ("attn", "mlp")] + ["block0", "output"]
    rel = {n: np.full(S, np.nan) for n in names}
    cos = {n: np.full(S, np.nan) for n in names}
    last = {}
    for k, forward in zip(range(k0, S), seen):
        for n in names:
            if n not in forward:
                continue
            f = forward[n]
            if n in last:
                p = last[n]
                rel[n][k] = ((f - p).abs().sum() / p.abs().sum()).item()
                cos[n][k] = ((f * p).sum() / torch.sqrt((f * f).sum() * (p * p).sum())).item()
            last[n] = f
    attn = lambda d: np.stack([d[(b, "attn")] for b in range(depth)], axis=1)  # noqa: E731
    mlp = lambda d: np.stack([d[(b, "mlp")] for b in range(depth)], axis=1)  # noqa: E731
    return {"drift/attn": attn(rel), "drift/mlp": mlp(rel), "drift/attn_cos": attn(cos), "drift/mlp_cos": mlp(cos),
            "drift/block0_input": rel["block0"], "drift/output": rel["output"]}


def chain_stats(xs, eps, final, model, s, k0, x0, depth):
    S = s.S
    out = drift(model.seen, S, k0, depth)
    N = final.shape[0]
    traj, data, var = np.full(S, np.nan), np.full(S, np.nan), np.full(S, np.nan)
    traj_ratio, data_ratio = np.full(S, np.nan), np.full(S, np.nan)
    # the signal powers the nominal SNR is scaled by: mean square of the final samples, of the data
    power = (final.double() ** 2).mean().item()
    power0 = (x0.double() ** 2).mean().item() if x0 is not None else np.nan
    norm = np.full((S, N), np.nan)
    for k, x, e in zip(range(k0, S), xs, eps):
        ab = s.alphas_cumprod[S - 1 - k]
        x, f = x.double(), final.double()
        traj[k] = (ab * (f ** 2).sum() / ((x - ab ** 0.5 * f) ** 2).sum()).item()
        traj_ratio[k] = traj[k] / (power * ab / (1 - ab))
        if x0 is not None:
            d = x - ab ** 0.5 * x0.double()
            data[k] = (ab * (x0.double() ** 2).sum() / (d ** 2).sum()).item()
            data_ratio[k] = data[k] / (power0 * ab / (1 - ab))
            var[k] = (d.var(unbiased=False) / (1 - ab)).item()
        norm[k] = e.double().flatten(1).norm(dim=1).numpy()
    out.update({"snr/trajectory": traj, "eps/norm": norm, "exposure/snr_ratio": traj_ratio,
                "signal_power": np.array([power])})
    if x0 is not None:
        out.update({"snr/data": data, "exposure/var_ratio": var, "exposure/snr_data_ratio": data_ratio,
                    "data_power": np.array([power0])})
    return out


def eps_q(cfg, weights, s, k0, x0, y, seed, cfg_scale):
    """‖ε‖ per sample on x_t = √ᾱ x0 + √(1−ᾱ) z, z from the q streams, uncached."""
    model = DiT(cfg, weights)
    S, N = s.S, x0.shape[0]
    norm = np.full((S, N), np.nan)
    for k in range(k0, S):
        i = S - 1 - k
        ab = s.alphas_cumprod[i]
        z = torch.from_numpy(rng_ref.batch_normals(seed, [stream_q(n, i) for n in range(N)], x0.shape[1:]))
        xq = (ab ** 0.5 * x0.double() + (1 - ab) ** 0.5 * z.double()).float()
        t = torch.full((N,), int(s.timestep[i]), dtype=torch.long)
        out = model.forward(xq, t, y) if cfg_scale == 1 else model.forward_cfg(xq, t, y, cfg_scale,
                                                                                default_guide_channels(cfg))
        norm[k] = out[:, :cfg.in_channels].double().flatten(1).norm(dim=1).numpy()
    return norm


def record(cfg, weights, text, spacing, kind, var_type, seed, eta, cfg_scale, labels, x0=None, k0=0):
    """Every statistic of one `ebcache record` run (text None: uncached)."""
    s = dr.Schedule(spacing)
    y = ints(labels)
    shape = (len(labels), cfg.in_channels, cfg.input_size, cfg.input_size)
    x_T = dr.initial_noise(seed, shape)
    ab = s.alphas_cumprod[s.S - 1 - k0]
    x_start = x_T if x0 is None else (ab ** 0.5 * x0.double() + (1 - ab) ** 0.5 * x_T.double()).float()
    args = (s, k0, x_start, y, kind, var_type, seed, eta, cfg_scale)
    xs, eps, final, model = chain(cfg, weights, text or all_compute(spacing), *args)
    res = {f"{k}": v for k, v in chain_stats(xs, eps, final, model, s, k0, x0, cfg.depth).items()}
    res["eps/norm_q"] = eps_q(cfg, weights, s, k0, final if x0 is None else x0, y, seed, cfg_scale)
    res["samples"] = final
    if text:
        rxs, reps, rfinal, rmodel = chain(cfg, weights, all_compute(spacing), *args)
        for k, v in chain_stats(rxs, reps, rfinal, rmodel, s, k0, x0, cfg.depth).items():
            res[f"reference/{k}"] = v
        dev_x, dev_e = np.full(s.S, np.nan), np.full(s.S, np.nan)
        for k, a, b, ea, eb in zip(range(k0, s.S), xs, rxs, eps, reps):
            dev_x[k] = ((a.double() - b.double()).norm() / b.double().norm()).item()
            dev_e[k] = ((ea.double() - eb.double()).norm() / eb.double().norm()).item()
        res["deviation/x"], res["deviation/eps"] = dev_x, dev_e
    t = np.array([s.timestep[s.S - 1 - k] for k in range(s.S)], dtype=np.float64)
    ac = np.array([s.alphas_cumprod[s.S - 1 - k] for k in range(s.S)])
    res.update({"steps/t": t, "steps/alpha_bar": ac, "snr/nominal": ac / (1 - ac)})
    return res, x_T, y


def put(h, name, value):
    """float64 statistics keep their NaN (undefined rows); tensors go as float32 / int32."""
    a = value.detach().numpy() if torch.is_tensor(value) else np.asarray(value)
    if a.dtype.kind == "i":
        a = a.astype("<i4")
    elif a.dtype != np.float64:
        a = a.astype("<f4")
    h.f.create_dataset(name, data=a, track_times=False)


CASES = [
    # name, model file, heads, config, table (None: uncached), spacing, sampler, var_type, seed, eta, cfg,
    # labels, data seed (None: no data), start step
    ("cached", "tiny_sigma.safetensors", 0, SIGMA, ("10", EBCACHE_ROWS, "eb-cache"), "10", "ddpm", dr.LEARNED_RANGE,
     5, 0.0, 1.5, [3, 8], 21, 3),
    ("plain", "tiny_nosigma.safetensors", 3, NOSIGMA, None, "10", "ddpm", dr.FIXED_SMALL, 6, 0.0, 1.0, [4, 0, 2],
     None, 0),
    ("delta", "tiny_nosigma.safetensors", 3, NOSIGMA, ("ddim10", delta_dit(10, 3, 2, 2, 5), "delta-dit"), "ddim10",
     "ddim", dr.FIXED_SMALL, 7, 0.0, 1.0, [1, 3], None, 0),
]


def main(argv):
    if len(argv) != 2:
        print("usage: record_ref.py OUT_DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    with torch.no_grad(), H5(os.path.join(argv[1], "record_goldens.h5")) as h:
        for (name, model, heads, cfg, table, spacing, kind, vt, seed, eta, cfg_scale, labels, dseed, k0) in CASES:
            w = st_io.load(os.path.join(MODELS, model))[0]  # the weights the C test loads
            text = table_text(table[0], table[1], method=table[2]) if table else None
            shape = (len(labels), cfg.in_channels, cfg.input_size, cfg.input_size)
            x0 = None if dseed is None else 0.5 * torch.randn(shape, generator=gen(dseed))
            res, x_T, y = record(cfg, w, text, spacing, kind, vt, seed, eta, cfg_scale, labels, x0, k0)
            for k, v in res.items():
                put(h, f"{name}/{k}", v)
            put(h, f"{name}/xT", x_T)
            put(h, f"{name}/y", y)
            if x0 is not None:
                put(h, f"{name}/x0", x0)
            h.attrs(name, table=text or "", spacing=spacing, sampler=kind, var_type=vt, seed=seed, eta=float(eta),
                    cfg=float(cfg_scale), start_step=k0, model=model, heads=heads)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
