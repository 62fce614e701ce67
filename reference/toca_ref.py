"""toca_ref.py — an independent PyTorch implementation of ToCa (token-wise caching)
for DiT, and the golden tests/golden/toca.h5 the C engine is checked against.

usage: toca_ref.py OUT_DIR      (make goldens: OUT_DIR = tests/golden)

Written from the semantics of the official DiT scripts (Shenyi-Z/ToCa, DiT-ToCa:
sample.py defaults cache_type='attention', ratio_scheduler='ToCa',
force_fresh='global', fresh_threshold N, soft_fresh_weight 0.25), not from the C
engine. The state is kept the way that code keeps it: per layer the cached
attention and MLP outputs, the head-mean attention map of the last full
attention and the per-token cache counter of the MLP; per call the step index i
(the sampler's respaced index, S-1 first) and a refresh period that every
force-fresh block resets. Per block, in order:

  fresh  = first call or i % period == 0; a fresh block then sets
           period = round(N / (1 + 0.4 - 0.8 i / S))   (float32 as its tensors)
  fresh: attention and MLP computed and cached, attention map kept, counters 0
  else:  attention output reused (the final version computes no attention
         tokens); the MLP recomputes topk = int(r * T) tokens, r =
         R (1.8 - 1.6 l / (L-1)) (1.4 - 0.8 i / S) 2.5, chosen by
         score = normalize(colsum of the head-mean map) + 0.25 counter / N,
         + 0.6 x score for the best token of every 2x2 patch; counters += 1,
         chosen ones 0; their outputs scattered into the cached MLP output.
  x += gate_t * cached (current gates).

The score is computed in float64 here (ToCa computes it in float32); the
golden is only written when every choice is clear: the K-th and (K+1)-th
scores and each patch's best and second-best differ by MARGIN relative, so
rounding cannot change a choice. The C engine (runtime/cache.c) must match.

Golden groups (attributes table, spacing, sampler, var_type, seed, eta, cfg,
ratio, interval): y, xT, x (S, N, C, H, W) the sampler's inputs, out (S, N, C_out,
H, W) the model outputs, samples, fresh (S, L) 1 where the block computed, and
tokens (S, L) the MLP tokens recomputed on partial blocks (T when fresh).
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusion_ref as dr  # noqa: E402
from dit_ref import DiT, default_guide_channels, layer_norm, modulate, random_weights  # noqa: E402
from h5_writer import H5  # noqa: E402
from make_goldens import NOSIGMA, SIGMA, gen, ints  # noqa: E402

MARGIN = 1e-4
SOFT_WEIGHT, BONUS, GRID = 0.25, 0.6, 2


def refresh_period(R, N, i, S):
    """force_scheduler: threshold = round(N / step_factor) with float32 tensors."""
    w = 0.0 if R == 0 else 0.4
    step_factor = torch.tensor(1 + w - 2 * w * i / S)  # float32, as torch.tensor of a Python float
    period = torch.round(N / step_factor)
    if R == 0 and 50 <= i < 100:
        period = torch.tensor(2.0)
    return period


def mlp_ratio(R, l, L, i, S):
    """fresh_ratio_scheduler 'ToCa' for the MLP module (the attention's module factor is 0)."""
    step_factor = 1 + 0.4 - 2 * 0.4 * i / S
    layer_factor = 1 + 0.8 - 2 * 0.8 * l / (L - 1 if L > 1 else 1)
    module_factor = 1 + 0.6 * 2.5
    return min(R * layer_factor * step_factor * module_factor, 1.0)


class ClearChoices:
    """Collects the closest calls of every token choice (relative gaps)."""

    def __init__(self):
        self.worst = math.inf

    def note(self, a, b):
        self.worst = min(self.worst, abs(a - b) / max(abs(a), abs(b), 1e-30))


def bonus(score, side, clear):
    """local_selection_with_bonus: the best token of each GRID x GRID patch gets BONUS x its score."""
    B = score.shape[0]
    g = GRID
    blocks = score.view(B, side // g, g, side // g, g).permute(0, 1, 3, 2, 4).reshape(B, -1, g * g)
    top2 = blocks.topk(2, dim=-1).values
    for v in top2.reshape(-1, 2).tolist():
        clear.note(v[0], v[1])
    best, where = blocks.max(dim=-1, keepdim=True)
    mask = torch.zeros_like(blocks).scatter_(-1, where, 1.0)
    blocks = blocks + mask * best * BONUS
    return blocks.view(B, side // g, side // g, g, g).permute(0, 1, 3, 2, 4).reshape(B, side * side)


class ToCaDiT(DiT):
    """dit_ref.DiT whose forward caches as ToCa; one forward per sampling step, in order."""

    def __init__(self, cfg, weights, S, R, N):
        super().__init__(cfg, weights)
        self.S, self.R, self.N = S, R, N
        self.calls = 0
        self.period = None
        L = cfg.depth
        self.attn_out, self.mlp_out = [None] * L, [None] * L
        self.attn_map, self.counter = [None] * L, [None] * L
        self.fresh_log, self.tokens_log = [], []
        self.clear = ClearChoices()

    def attention_with_map(self, i, x):
        """timm Attention, also returning the head-mean softmax map (N, T, T) as ToCa's Attention."""
        w, b = self.w, f"blocks.{i}.attn."
        Nb, T, D = x.shape
        heads = self.cfg.num_heads
        qkv = F.linear(x, w[b + "qkv.weight"], w[b + "qkv.bias"]).reshape(Nb, T, 3, heads, D // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * (D // heads) ** -0.5).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(Nb, T, D)
        return F.linear(out, w[b + "proj.weight"], w[b + "proj.bias"]), attn.double().mean(dim=1)

    def select(self, l, K):
        """cache_cutfresh: the fresh token indices (Nb, K), counters updated."""
        s1 = F.normalize(self.attn_map[l].sum(dim=1), dim=1, p=2)
        score = s1 + SOFT_WEIGHT * self.counter[l].double() / self.N
        score = bonus(score, self.cfg.grid, self.clear)
        order = torch.sort(score, dim=-1, descending=True, stable=True)
        if 0 < K < score.shape[1]:
            for row in order.values.tolist():
                self.clear.note(row[K - 1], row[K])
        fresh = order.indices[:, :K]
        self.counter[l] += 1
        self.counter[l].scatter_(1, fresh, 0)
        return fresh

    def forward(self, x, t, y):
        i = self.S - 1 - self.calls
        tokens = self.patch_embed(x)
        c = self.condition(t, y)
        L, T = self.cfg.depth, self.cfg.tokens
        fresh_row, tokens_row = [], []
        for l in range(L):
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(l, c)
            fresh = self.calls == 0 or bool(i % self.period == 0)
            if fresh:
                self.attn_out[l], self.attn_map[l] = self.attention_with_map(
                    l, modulate(layer_norm(tokens), shift_msa, scale_msa))
                self.period = refresh_period(self.R, self.N, i, self.S)
                tokens = tokens + gate_msa.unsqueeze(1) * self.attn_out[l]
                self.mlp_out[l] = self.mlp(l, modulate(layer_norm(tokens), shift_mlp, scale_mlp))
                self.counter[l] = torch.zeros(tokens.shape[0], T, dtype=torch.int32)
                tokens = tokens + gate_mlp.unsqueeze(1) * self.mlp_out[l]
                K = T
            else:
                tokens = tokens + gate_msa.unsqueeze(1) * self.attn_out[l]
                K = int(mlp_ratio(self.R, l, L, i, self.S) * T)
                idx = self.select(l, K)
                picked = torch.gather(tokens, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
                out = self.mlp(l, modulate(layer_norm(picked), shift_mlp, scale_mlp))
                self.mlp_out[l] = self.mlp_out[l].scatter(1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]), out)
                tokens = tokens + gate_mlp.unsqueeze(1) * self.mlp_out[l]
            fresh_row.append(int(fresh))
            tokens_row.append(K)
        self.fresh_log.append(fresh_row)
        self.tokens_log.append(tokens_row)
        self.calls += 1
        return self.unpatchify(self.final_layer(tokens, c))


def table_text(model, spacing, R, N):
    """The schedule table of the decisions the run made (docs/schedule.md)."""
    s = dr.Schedule(spacing)
    L, S = model.cfg.depth, s.S
    lines = ["# ebcache schedule v1", "## method: toca", f"## params: ratio={R!r} interval={N}", f"## steps: {S}",
             f"## toca: weight={SOFT_WEIGHT!r} fresh={N} bonus={BONUS!r} grid={GRID}", "# step t blocks attn mlp scale"]
    for k in range(S):
        i = S - 1 - k
        for l in range(L):
            act = "C C" if model.fresh_log[k][l] else f"R P{mlp_ratio(R, l, L, i, S)!r}"
            lines.append(f"{k} {s.timestep[i]} {'*' if l == 0 else l} {act} 1")
    return "\n".join(lines) + "\n"


def run(cfg, weights, spacing, kind, var_type, seed, eta, cfg_scale, labels, R, N):
    s = dr.Schedule(spacing)
    model = ToCaDiT(cfg, weights, s.S, R, N)
    y = ints(labels)
    x_T = dr.initial_noise(seed, (len(labels), cfg.in_channels, cfg.input_size, cfg.input_size))
    xs, outs = [], []

    def fn(x, t):
        xs.append(x.clone())
        out = model.forward(x, t, y) if cfg_scale == 1 else model.forward_cfg(x, t, y, cfg_scale,
                                                                               default_guide_channels(cfg))
        outs.append(out.clone())
        return out

    samples = dr.sample_loop(fn, s, x_T, kind, var_type, seed, eta)
    if model.clear.worst < MARGIN:
        raise RuntimeError(f"a token choice is within {model.clear.worst:.2e} of a tie (seed {seed})")
    res = dict(y=y, xT=x_T, x=torch.stack(xs), out=torch.stack(outs), samples=samples,
               fresh=torch.tensor(model.fresh_log, dtype=torch.int32),
               tokens=torch.tensor(model.tokens_log, dtype=torch.int32))
    return res, table_text(model, spacing, R, N)


def main(argv):
    if len(argv) != 2:
        print("usage: toca_ref.py OUT_DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    cases = [  # group, config, weights seed, spacing, sampler, var_type, seed, eta, cfg, labels, R, N
        ("sigma_cfg", SIGMA, 1, "20", "ddpm", dr.LEARNED_RANGE, 5, 0.0, 1.5, [3, 8], 0.07, 4),
        ("nosigma", NOSIGMA, 2, "ddim20", "ddim", dr.FIXED_SMALL, 6, 0.0, 1.0, [4, 0], 0.15, 3),
    ]
    with torch.no_grad(), H5(os.path.join(argv[1], "toca.h5")) as h:
        for group, cfg, wseed, spacing, kind, vt, seed, eta, cfg_scale, labels, R, N in cases:
            res, text = run(cfg, random_weights(cfg, gen(wseed)), spacing, kind, vt, seed, eta, cfg_scale, labels, R, N)
            for k, v in res.items():
                h.put(f"{group}/{k}", v)
            h.attrs(group, table=text, spacing=spacing, sampler=kind, var_type=vt, seed=seed, eta=float(eta),
                    cfg=float(cfg_scale), ratio=float(R), interval=float(N))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
