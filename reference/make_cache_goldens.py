"""Writes the cache-engine goldens: tests/golden/cache_sigma.h5 and cache_nosigma.h5.

usage: make_cache_goldens.py OUT_DIR      (make goldens: OUT_DIR = tests/golden)

Each group is one sampling run of a tiny golden model under a schedule table,
computed by reference/cache_ref.py. Attributes: `table` (the schedule text, which
the C test parses), `spacing`, `sampler`, `var_type`, `seed`, `eta`, `cfg`.
Datasets: `y` (N), `xT` (N, C, H, W), `x` (S, N, C, H, W) the sampler's input at
each step, `out` (S, N, C_out, H, W) the (guided) model output before the ε scale,
`skipped` (S) 1 where a dynamic policy served the step from its residual, and
`samples` (N, C, H, W). Deterministic, like make_goldens.py.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_ref  # noqa: E402
import diffusion_ref as dr  # noqa: E402
from cache_ref import CachedDiT, Table, scale_eps  # noqa: E402
from dit_ref import default_guide_channels, random_weights  # noqa: E402
from h5_writer import H5  # noqa: E402
from make_goldens import NOSIGMA, SIGMA, gen, ints  # noqa: E402

MARGIN = 1e-3  # a dynamic policy's compared values stay this far (relative) from its threshold


def table_text(spacing, rows, policy=None, **meta):
    """rows: (step, blocks, attn, mlp, scale); t comes from the respacing."""
    s = dr.Schedule(spacing)
    lines = ["# ebcache schedule v1"] + [f"## {k}: {v}" for k, v in meta.items()] + [f"## steps: {s.S}"]
    if policy:
        lines.append(f"## policy: {policy}")
    lines.append("# step t blocks attn mlp scale")
    lines += [f"{k} {s.timestep[s.S - 1 - k]} {b} {a} {m} {sc}" for k, b, a, m, sc in rows]
    return "\n".join(lines) + "\n"


def fora(S, interval):
    return [(k, "*", *(("C", "C") if k % interval == 0 else ("R", "R")), 1) for k in range(S)]


def taylorseer(S, interval, order, warmup):
    rows = []
    for k in range(S):
        full = k < warmup or (k - (warmup - 1)) % interval == 0
        a = "C" if full else f"T{order}"
        rows.append((k, "*", a, a, 1))
    return rows


def delta_dit(S, depth, interval, blocks, boundary):
    rows = []
    for k in range(S):
        rows.append((k, "*", "C", "C", 1))
        if k % interval:
            lo = depth - blocks if k < boundary else 0
            rows.append((k, f"{lo}-{lo + blocks - 1}", "S", "S", 1))
    return rows


# EB-Cache style: compute early, then reuse attention (recompute MLP), reuse both, and
# reuse the MLP (recompute attention), with per-block overrides and the ε scale.
EBCACHE_ROWS = [
    (0, "*", "C", "C", 0.965), (1, "*", "C", "C", 0.965), (2, "*", "R", "C", 0.965), (3, "*", "C", "C", 0.965),
    (4, "*", "R", "R", 0.965), (4, "1", "C", "R", 0.965), (5, "*", "C", "R", 1), (6, "*", "C", "C", 0.98),
    (7, "*", "R", "R", 0.98), (8, "*", "R", "C", 0.98), (8, "0", "C", "C", 0.98), (9, "*", "R", "R", 0.98),
]

# Forecasts, reuse and a skipped middle block (depth 3), mixed per block.
MIXED_ROWS = [
    (0, "*", "C", "C", 1), (1, "*", "C", "C", 1), (2, "*", "T1", "R", 1), (2, "1", "S", "S", 1),
    (3, "*", "C", "C", 1), (3, "2", "R", "T1", 1), (4, "*", "T2", "T2", 1), (5, "*", "C", "C", 1),
    (5, "0", "T3", "C", 1), (6, "*", "R", "T3", 1), (6, "1-2", "S", "S", 1), (7, "*", "C", "C", 1),
    (8, "*", "T2", "R", 1), (9, "*", "C", "C", 1.01),
]


class Spy:
    """Collects the values a dynamic policy compares with its threshold."""

    def __init__(self):
        self.values = []
        self.orig = cache_ref.rel_l1

    def __enter__(self):
        cache_ref.rel_l1 = self.rel_l1
        return self

    def rel_l1(self, a, b):
        v = self.orig(a, b)
        self.values.append(v)
        return v

    def __exit__(self, *_):
        cache_ref.rel_l1 = self.orig


def sample(cfg, weights, text, spacing, kind, var_type, seed, eta, cfg_scale, labels):
    """One cached sampling run; returns everything the golden group stores."""
    table = Table.parse(text)
    model = CachedDiT(cfg, weights, table)
    s = dr.Schedule(spacing)
    y = ints(labels)
    x_T = dr.initial_noise(seed, (len(labels), cfg.in_channels, cfg.input_size, cfg.input_size))
    xs, outs = [], []

    def fn(x, t):
        xs.append(x.clone())
        if cfg_scale == 1:
            out = model.forward(x, t, y)
        else:
            out = model.forward_cfg(x, t, y, cfg_scale, default_guide_channels(cfg))
        outs.append(out.clone())
        return scale_eps(out, model.scale[model.step - 1], cfg.in_channels)

    with Spy() as spy:
        samples = dr.sample_loop(fn, s, x_T, kind, var_type, seed, eta)
    return dict(y=y, xT=x_T, x=torch.stack(xs), out=torch.stack(outs), samples=samples,
                skipped=torch.tensor(model.skipped, dtype=torch.int32)), spy.values, model


def teacache_margin_ok(values, model, threshold):
    """Replays the accumulation: every sum compared with the threshold is MARGIN away from it."""
    acc, k = 0.0, 0
    for step in range(1, model.table.steps - 1):
        acc += model.poly(values[k])
        k += 1
        if abs(acc - threshold) < MARGIN * threshold:
            return False
        acc = acc if acc < threshold else 0.0
    return True


def dynamic_case(cfg, weights, spacing, kind, var_type, seed, eta, cfg_scale, labels, policy_fmt, thresholds):
    """The first threshold whose decisions are well away from it and mix skips and computes."""
    for thr in thresholds:
        text = table_text(spacing, fora(dr.Schedule(spacing).S, 1), policy=policy_fmt.format(thr),
                          method=policy_fmt.split()[0])
        res, values, model = sample(cfg, weights, text, spacing, kind, var_type, seed, eta, cfg_scale, labels)
        if model.policy == "teacache":
            ok = teacache_margin_ok(values, model, thr)
        else:
            ok = all(abs(v - thr) >= MARGIN * thr for v in values)
        skips = int(res["skipped"].sum())
        if ok and 2 <= skips <= len(model.skipped) - 3:
            return text, res
    raise RuntimeError(f"no threshold in {thresholds} gives a clear mix of skips for {policy_fmt}")


def put_case(h, group, text, res, spacing, kind, var_type, seed, eta, cfg_scale):
    for k, v in res.items():
        h.put(f"{group}/{k}", v)
    h.attrs(group, table=text, spacing=spacing, sampler=kind, var_type=var_type, seed=seed, eta=float(eta),
            cfg=float(cfg_scale))


def write_sigma(out, w):
    """tiny_sigma (depth 2, learned variance) with guidance 1.5: both halves cached."""
    labels, cfg_scale = [3, 8], 1.5
    cases = [
        ("fora2", "ddim10", "ddim", 11, 0.0, table_text("ddim10", fora(10, 2), method="fora", params="interval=2")),
        ("ebcache", "10", "ddpm", 5, 0.0, table_text("10", EBCACHE_ROWS, method="eb-cache")),
        ("taylor", "ddim10", "ddim", 11, 0.5,
         table_text("ddim10", taylorseer(10, 3, 2, 2), method="taylorseer", params="interval=3 order=2 warmup=2")),
    ]
    with H5(os.path.join(out, "cache_sigma.h5")) as h:
        for group, spacing, kind, seed, eta, text in cases:
            res, _, _ = sample(SIGMA, w, text, spacing, kind, dr.LEARNED_RANGE, seed, eta, cfg_scale, labels)
            put_case(h, group, text, res, spacing, kind, dr.LEARNED_RANGE, seed, eta, cfg_scale)
        text, res = dynamic_case(SIGMA, w, "ddim10", "ddim", dr.LEARNED_RANGE, 11, 0.0, cfg_scale, labels,
                                 "teacache threshold={} poly=0.5,1,0", [1.0, 1.2, 1.5, 0.8, 2.0])
        put_case(h, "teacache", text, res, "ddim10", "ddim", dr.LEARNED_RANGE, 11, 0.0, cfg_scale)


def write_nosigma(out, w):
    """tiny_nosigma (depth 3, fixed small variance), no guidance."""
    labels, cfg_scale, vt = [4, 0], 1.0, dr.FIXED_SMALL
    cases = [
        ("fora3", table_text("10", fora(10, 3), method="fora", params="interval=3")),
        ("delta", table_text("10", delta_dit(10, 3, 2, 2, 5), method="delta-dit",
                             params="interval=2 blocks=2 boundary=5 depth=3")),
        ("mixed", table_text("10", MIXED_ROWS, method="mixed")),
        ("taylor4", table_text("10", taylorseer(10, 2, 4, 2), method="taylorseer",
                               params="interval=2 order=4 warmup=2")),
    ]
    with H5(os.path.join(out, "cache_nosigma.h5")) as h:
        for group, text in cases:
            res, _, _ = sample(NOSIGMA, w, text, "10", "ddpm", vt, 6, 0.0, cfg_scale, labels)
            put_case(h, group, text, res, "10", "ddpm", vt, 6, 0.0, cfg_scale)
        text, res = dynamic_case(NOSIGMA, w, "10", "ddpm", vt, 6, 0.0, cfg_scale, labels,
                                 "fbcache threshold={} blocks=1", [0.65, 0.7, 0.6, 0.75, 0.8])
        put_case(h, "fbcache", text, res, "10", "ddpm", vt, 6, 0.0, cfg_scale)


def main(argv):
    if len(argv) != 2:
        print("usage: make_cache_goldens.py OUT_DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    with torch.no_grad():
        write_sigma(argv[1], random_weights(SIGMA, gen(1)))
        write_nosigma(argv[1], random_weights(NOSIGMA, gen(2)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
