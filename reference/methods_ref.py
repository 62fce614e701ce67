"""methods_ref.py — MagCache, SmoothCache's lookahead and Learning-to-Cache, written from the
methods' semantics (docs/search.md, docs/recording.md), not from search/ or analyze/.

usage: methods_ref.py OUT_DIR      (make goldens: OUT_DIR = tests/golden)

Writes OUT_DIR/methods.h5 and OUT_DIR/l2c_router.pt (a synthetic router in the official
{"routers": state_dict} format, and OUT_DIR/l2c_scores.h5 converted from it by
tools/convert_l2c.py). One uncached calibration run of the tiny_sigma golden model (DDPM
"10", guidance 1.5, learned variance) is kept whole; its statistics sit at the root of
methods.h5 under their recording names, so the file reads as a recording:
`magcache/ratio` (S, 2), `drift/attn`, `drift/mlp` (S, L), `drift/attn_lag`,
`drift/mlp_lag` (3, S, L), `steps/t`; `calib/xT`, `calib/y` and attributes are its inputs.
Groups `magcache`, `smoothcache`, `l2c` hold each method's parameter (attributes), its table
(`table`, the schedule text) and, for magcache and l2c, the samples of its run (`samples`,
`out`: the guided output per step).
"""
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import convert_l2c  # noqa: E402
import diffusion_ref as dr  # noqa: E402
import st_io  # noqa: E402
from cache_ref import CachedDiT, Table  # noqa: E402
from dit_ref import default_guide_channels, layer_norm, modulate  # noqa: E402
from h5_writer import H5  # noqa: E402
from make_cache_goldens import fora, sample, table_text  # noqa: E402
from make_goldens import SIGMA, gen, ints  # noqa: E402
from record_ref import MODELS, put  # noqa: E402

SPACING, KIND, VAR, SEED, CFG, LABELS = "10", "ddpm", dr.LEARNED_RANGE, 5, 1.5, [3, 8]
L2C_SPACING, L2C_KIND, L2C_SEED = "ddim10", "ddim", 11
LAGS = 3
MAG_K, MAG_RETENTION = 2, 0.2
MARGIN = 1e-3  # every value a rule compares stays this far (relative) from its threshold


class Calibrated(CachedDiT):
    """An uncached model that keeps, per forward, each block's pre-gate attention and MLP
    outputs and the blocks' total residual (tokens after the last block − after the embedding)."""

    def __init__(self, cfg, weights, spacing):
        super().__init__(cfg, weights, Table.parse(table_text(spacing, fora(dr.Schedule(spacing).S, 1), method="none")))
        self.seen = []

    def forward(self, x, t, y):
        tokens, c = self.patch_embed(x), self.condition(t, y)
        h, kept = tokens, {}
        for i in range(self.cfg.depth):
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(i, c)
            a = self.attention(i, modulate(layer_norm(h), shift_msa, scale_msa))
            h = h + gate_msa.unsqueeze(1) * a
            m = self.mlp(i, modulate(layer_norm(h), shift_mlp, scale_mlp))
            h = h + gate_mlp.unsqueeze(1) * m
            kept[(i, 0)], kept[(i, 1)] = a.double(), m.double()
        kept["residual"] = (h - tokens).double()
        self.seen.append(kept)
        return self.unpatchify(self.final_layer(h, c))


def calibrate(cfg, w):
    s = dr.Schedule(SPACING)
    y = ints(LABELS)
    x_T = dr.initial_noise(SEED, (len(LABELS), cfg.in_channels, cfg.input_size, cfg.input_size))
    model = Calibrated(cfg, w, SPACING)
    dr.sample_loop(lambda x, t: model.forward_cfg(x, t, y, CFG, default_guide_channels(cfg)), s, x_T, KIND, VAR, SEED)
    S, L, N = s.S, cfg.depth, len(LABELS)
    ratio = np.full((S, 2), np.nan)
    for k in range(1, S):
        norm = model.seen[k]["residual"].norm(dim=-1)          # (2N, T): per token over the hidden size
        prev = model.seen[k - 1]["residual"].norm(dim=-1)
        q = norm / prev
        ratio[k] = [q[:N].mean().item(), q[N:].mean().item()]  # conditional rows, then the null class
    lag = np.full((2, LAGS, S, L), np.nan)
    for m in range(2):
        for j in range(1, LAGS + 1):
            for k in range(j, S):
                for b in range(L):
                    f, p = model.seen[k][(b, m)], model.seen[k - j][(b, m)]
                    lag[m, j - 1, k, b] = ((f - p).abs().sum() / p.abs().sum()).item()
    t = np.array([s.timestep[S - 1 - k] for k in range(S)], dtype=np.float64)
    return dict(ratio=ratio, attn_lag=lag[0], mlp_lag=lag[1], t=t, x_T=x_T, y=y)


# -- MagCache -----------------------------------------------------------------------------------

def magcache_skips(ratio, delta, K, retention, compared=None):
    """MagCache per CFG half, its model calls counted cond, uncond, cond, … as the official
    Wan script does; a step skips when both halves' rules skip, and computing resets both."""
    S = ratio.shape[0]
    first = int(2 * S * retention)
    acc = [[1.0, 0.0, 0] for _ in range(2)]   # accumulated ratio, error, steps per half
    skips = []
    for k in range(S):
        wants = []
        for h in range(2):
            cnt = 2 * k + h
            if k == 0 or cnt < first:
                wants.append(False)
                continue
            a = acc[h]
            a[0] *= ratio[k, h]
            a[2] += 1
            a[1] += abs(1 - a[0])
            if compared is not None:
                compared.append(a[1])
            wants.append(a[1] < delta and a[2] <= K)
        skip = all(wants)
        if not skip:
            acc = [[1.0, 0.0, 0] for _ in range(2)]
        skips.append(skip)
    return skips


def magcache_case(cal):
    for delta in [0.02, 0.03, 0.05, 0.015, 0.08]:
        compared = []
        skips = magcache_skips(cal["ratio"], delta, MAG_K, MAG_RETENTION, compared)
        if all(abs(v - delta) > MARGIN * delta for v in compared) and 2 <= sum(skips) <= len(skips) - 4:
            rows = [(k, "*", *(("S", "S") if sk else ("C", "C")), 1) for k, sk in enumerate(skips)]
            return delta, table_text(SPACING, rows, method="magcache", params=f"delta={delta}")
    raise RuntimeError("no MagCache threshold with a clear mix of skips")


# -- SmoothCache --------------------------------------------------------------------------------

def smoothcache_table(err, alpha, compared):
    """SmoothCache's n-row scan (its calibration helper): err[j][i] is the error from step i to
    step i + j + 1 (mean over blocks); at i the longest lag within α serves the next j + 1 steps."""
    K, S = len(err), len(err[0]) + 1
    sched = [None] * S
    i = 0
    while i < S:
        for j in range(K - 1, -1, -1):
            if i >= len(err[j]):
                continue
            compared.append(err[j][i])
            if err[j][i] <= alpha:
                sched[i] = 1
                for s_ in range(1, j + 2):
                    if i + s_ < S:
                        sched[i + s_] = 0
                i += j + 2
                break
        else:
            sched[i] = 1
            i += 1
    sched[0] = sched[-1] = 1
    return [1 if v is None else v for v in sched]


def smoothcache_case(cal):
    S = cal["ratio"].shape[0]
    # row j of SmoothCache's errors for one module type: entries i = 0 .. S − j − 2
    errs = [[[float(np.mean(cal[key][j, i + j + 1])) for i in range(S - j - 1)] for j in range(LAGS)]
            for key in ("attn_lag", "mlp_lag")]
    for alpha in [0.3, 0.4, 0.5, 0.6, 0.25, 0.7, 0.8]:
        compared = []
        sched = [smoothcache_table(e, alpha, compared) for e in errs]
        long_lag = any(sc[k] == 0 and sc[k - 1] == 0 for sc in sched for k in range(1, S))
        if all(abs(v - alpha) > MARGIN * alpha for v in compared) and long_lag:
            rows = [(k, "*", "C" if sched[0][k] else "R", "C" if sched[1][k] else "R", 1) for k in range(S)]
            return alpha, table_text(SPACING, rows, method="smoothcache", params=f"alpha={alpha} lookahead={LAGS}")
    raise RuntimeError("no SmoothCache threshold whose table uses a lag above 1")


# -- Learning-to-Cache --------------------------------------------------------------------------

class L2CDiT(CachedDiT):
    """The official dynamic_models.py DiT forward at one router threshold: at the respaced
    index i of each call, odd i drops the kept features (every block computes); at even i a
    module reuses its kept pre-gate output unless sigmoid(prob_i) is above the threshold."""

    def __init__(self, cfg, weights, routers, threshold, spacing):
        super().__init__(cfg, weights, Table.parse(table_text(spacing, fora(dr.Schedule(spacing).S, 1), method="none")))
        self.s = dr.Schedule(spacing)
        self.rank = {}
        for i, prob in routers.items():
            if i % 2 == 0:
                self.rank[i] = set(torch.nonzero(torch.sigmoid(prob) > threshold).flatten().tolist())
        self.cur = self.s.S - 1
        self.reuse = [None] * cfg.depth

    def forward(self, x, t, y):
        tokens, c = self.patch_embed(x), self.condition(t, y)
        if self.cur % 2 == 1:
            self.reuse = [None] * self.cfg.depth
        h = tokens
        for i in range(self.cfg.depth):
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(i, c)
            keep = self.reuse[i]
            if keep is not None and 2 * i not in self.rank[self.cur]:
                a = keep[0]
            else:
                a = self.attention(i, modulate(layer_norm(h), shift_msa, scale_msa))
            h = h + gate_msa.unsqueeze(1) * a
            if keep is not None and 2 * i + 1 not in self.rank[self.cur]:
                m = keep[1]
            else:
                m = self.mlp(i, modulate(layer_norm(h), shift_mlp, scale_mlp))
            h = h + gate_mlp.unsqueeze(1) * m
            self.reuse[i] = (a, m)
        self.cur -= 1
        return self.unpatchify(self.final_layer(h, c))


def l2c_case(cfg, w, out_dir):
    S = dr.Schedule(L2C_SPACING).S
    g = gen(31)
    routers = OrderedDict((f"{i}.prob", torch.randn(2 * cfg.depth, generator=g)) for i in range(S))
    router_path = os.path.join(out_dir, "l2c_router.pt")
    tmp = f"{router_path}.tmp{os.getpid()}"
    torch.save({"routers": routers}, tmp)
    os.replace(tmp, router_path)
    threshold = 0.5
    scores = torch.sigmoid(torch.stack(list(routers.values())))
    if (scores - threshold).abs().min() <= MARGIN:
        raise RuntimeError("a router score sits at the threshold")
    if convert_l2c.main([router_path, "--respacing", L2C_SPACING, "--scores", os.path.join(out_dir, "l2c_scores.h5")]):
        raise RuntimeError("convert_l2c failed")
    model = L2CDiT(cfg, w, {i: v for i, v in enumerate(routers.values())}, threshold, L2C_SPACING)
    y = ints(LABELS)
    x_T = dr.initial_noise(L2C_SEED, (len(LABELS), cfg.in_channels, cfg.input_size, cfg.input_size))
    outs = []

    def fn(x, t):
        out = model.forward_cfg(x, t, y, CFG, default_guide_channels(cfg))
        outs.append(out.clone())
        return out

    samples = dr.sample_loop(fn, dr.Schedule(L2C_SPACING), x_T, L2C_KIND, VAR, L2C_SEED)
    return threshold, dict(samples=samples, out=torch.stack(outs), xT=x_T, y=y)


def main(argv):
    if len(argv) != 2:
        print("usage: methods_ref.py OUT_DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    out_dir = argv[1]
    w = st_io.load(os.path.join(MODELS, "tiny_sigma.safetensors"))[0]  # the weights the C test loads
    with torch.no_grad(), H5(os.path.join(out_dir, "methods.h5")) as h:
        cal = calibrate(SIGMA, w)
        put(h, "magcache/ratio", cal["ratio"])
        put(h, "drift/attn", cal["attn_lag"][0])
        put(h, "drift/mlp", cal["mlp_lag"][0])
        put(h, "drift/attn_lag", cal["attn_lag"])
        put(h, "drift/mlp_lag", cal["mlp_lag"])
        put(h, "steps/t", cal["t"])
        put(h, "calib/xT", cal["x_T"])
        put(h, "calib/y", cal["y"])
        h.attrs("calib", model="tiny_sigma.safetensors", spacing=SPACING, sampler=KIND, var_type=VAR, seed=SEED,
                cfg=CFG, lags=LAGS)

        delta, text = magcache_case(cal)
        res, _, _ = sample(SIGMA, w, text, SPACING, KIND, VAR, SEED, 0.0, CFG, LABELS)
        put(h, "magcache/samples", res["samples"])
        put(h, "magcache/out", res["out"])
        h.attrs("magcache", table=text, delta=delta, max_skips=MAG_K, retention=MAG_RETENTION)

        alpha, text = smoothcache_case(cal)
        h.f.create_group("smoothcache")
        h.attrs("smoothcache", table=text, alpha=alpha, lookahead=LAGS)

        threshold, res = l2c_case(SIGMA, w, out_dir)
        for k in ("samples", "out", "xT", "y"):
            put(h, f"l2c/{k}", res[k])
        h.attrs("l2c", threshold=threshold, spacing=L2C_SPACING, sampler=L2C_KIND, seed=L2C_SEED, cfg=CFG,
                router="l2c_router.pt", scores="l2c_scores.h5")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
