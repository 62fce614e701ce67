"""cache_ref.py — an independent PyTorch implementation of ebcache's cache semantics.

Written from the published methods and their public code, not from the C engine:
each method keeps its state the way its own code does (FORA / EB-Cache per-block
attention and MLP outputs, TaylorSeer's dictionary of divided differences, Δ-DiT
residuals of block ranges, TeaCache's accumulated rescaled distance, first-block
cache's residual comparison). The C engine (runtime/cache.c) must match it.

    table = Table.parse(open("fora.schedule").read())
    model = CachedDiT(cfg, weights, table)       # a dit_ref.DiT whose forward caches
    out = model.forward(x, t, y)                 # one call per sampling step, in order

Steps count in sampling order (step 0 is the first, noisiest model call).
"""
import math

import numpy as np
import torch

from dit_ref import DiT, layer_norm, modulate

VERSION_LINE = "# ebcache schedule v1"


class Table:
    """A schedule table (docs/schedule.md) expanded per step and block."""

    def __init__(self, meta, rows):
        self.meta = meta
        self.steps = int(meta["steps"])
        self.rows = rows
        self.policy = meta.get("policy", "none").split()

    @staticmethod
    def parse(text):
        lines = text.splitlines()
        assert lines[0].strip() == VERSION_LINE, "not an ebcache v1 schedule"
        meta = dict((k.strip(), v.strip()) for k, v in (l[3:].split(":", 1) for l in lines if l.startswith("## ")))
        rows = [l.split() for l in lines[1:] if l.strip() and not l.startswith("#")]
        return Table(meta, rows)

    def expand(self, depth):
        """acts[step][block] = [attn, mlp] action strings; scale[step]; t[step]."""
        acts = [[None] * depth for _ in range(self.steps)]
        scale, t = [None] * self.steps, [None] * self.steps
        for step, tt, blocks, attn, mlp, s in self.rows:
            step = int(step)
            if blocks == "*":
                lo, hi = 0, depth - 1
            else:
                lo, _, hi = blocks.partition("-")
                lo, hi = int(lo), int(hi or lo)
            for b in range(lo, hi + 1):
                acts[step][b] = [attn, mlp]
            scale[step], t[step] = float(s), int(tt)
        return acts, scale, t

    def policy_args(self):
        kind = self.policy[0] if self.policy else "none"
        args = dict(kv.split("=", 1) for kv in self.policy[1:])
        return kind, args


def rel_l1(a, b):
    """mean|a − b| / mean|b|, summed in float64 (ebcache's definition)."""
    return ((a - b).abs().double().sum() / b.abs().double().sum()).item()


class CachedDiT(DiT):
    """dit_ref.DiT whose forward follows a cache schedule; forward_cfg is inherited,
    so with guidance the cache holds both halves of the model batch."""

    def __init__(self, cfg, weights, table):
        super().__init__(cfg, weights)
        self.table = table
        self.acts, self.scale, _ = table.expand(cfg.depth)
        self.step = 0
        # FORA / EB-Cache / TaylorSeer: per block and module, TaylorSeer's factor dict
        # {0: last output, 1: first divided difference, ...} and the step it was computed.
        self.factors = [{"attn": {}, "mlp": {}} for _ in range(cfg.depth)]
        self.activated = [{"attn": None, "mlp": None} for _ in range(cfg.depth)]
        self.residual = {}  # (lo, hi) -> output − input of blocks lo..hi-1 at the last step that ran them
        kind, args = table.policy_args()
        self.policy = kind
        self.threshold = float(args.get("threshold", 0))
        self.poly = np.poly1d([float(c) for c in args.get("poly", "1,0").split(",")])
        self.fb_blocks = int(args.get("blocks", 0))
        self.accumulated = 0.0
        self.previous_modulated_input = None
        self.previous_first_residual = None
        self.previous_residual = None
        self.skipped = []

    # -- modules ----------------------------------------------------------
    def derivative_approximation(self, i, name, feature):
        """TaylorSeer: new factor k+1 = (new factor k − old factor k) / distance."""
        old, last = self.factors[i][name], self.activated[i][name]
        new = {0: feature}
        for k in range(4):
            if k not in old:
                break
            new[k + 1] = (new[k] - old[k]) / (self.step - last)
        self.factors[i][name], self.activated[i][name] = new, self.step

    def taylor_formula(self, i, name, order):
        x = self.step - self.activated[i][name]
        f = self.factors[i][name]
        out = 0
        for k in range(min(order + 1, len(f))):
            out = out + (1 / math.factorial(k)) * f[k] * (x ** k)
        return out

    def branch(self, i, name, action, compute):
        if action == "C":
            out = compute()
            self.derivative_approximation(i, name, out)
            return out
        if action == "R":
            return self.factors[i][name][0]
        assert action[0] == "T"
        return self.taylor_formula(i, name, int(action[1:]))

    def cached_block(self, i, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(i, c)
        attn_action, mlp_action = self.acts[self.step][i]
        a = self.branch(i, "attn", attn_action,
                        lambda: self.attention(i, modulate(layer_norm(x), shift_msa, scale_msa)))
        x = x + gate_msa.unsqueeze(1) * a
        m = self.branch(i, "mlp", mlp_action, lambda: self.mlp(i, modulate(layer_norm(x), shift_mlp, scale_mlp)))
        return x + gate_mlp.unsqueeze(1) * m

    # -- Δ-DiT: runs of skipped blocks -----------------------------------
    def blocks_with_residuals(self, x, c, lo, hi):
        """Blocks lo..hi-1; S-runs add their residual; every run of blocks that all
        ran records its residual for later steps (the latest one is used)."""
        acts = self.acts[self.step]
        inputs = {lo: x}
        i = lo
        while i < hi:
            if acts[i][0] == "S":
                j = i
                while j < hi and acts[j][0] == "S":
                    j += 1
                x = x + self.residual[(i, j)]
                i = j
            else:
                x = self.cached_block(i, x, c)
                i += 1
            inputs[i] = x
        ran = [acts[b][0] != "S" for b in range(self.cfg.depth)]
        for (a, b) in self.runs_used():
            if a >= lo and b <= hi and all(ran[a:b]):
                self.residual[(a, b)] = inputs[b] - inputs[a]
        return x

    def runs_used(self):
        runs = set()
        for step_acts in self.acts:
            b = 0
            while b < len(step_acts):
                if step_acts[b][0] == "S":
                    e = b
                    while e < len(step_acts) and step_acts[e][0] == "S":
                        e += 1
                    runs.add((b, e))
                    b = e
                else:
                    b += 1
        return runs

    # -- dynamic policies -------------------------------------------------
    def teacache_forward(self, x, c):
        shift_msa, scale_msa = self.modulation(0, c)[:2]
        modulated_inp = modulate(layer_norm(x), shift_msa, scale_msa)
        if self.step == 0 or self.step == self.table.steps - 1 or self.previous_modulated_input is None:
            should_calc = True
            self.accumulated = 0.0
        else:
            self.accumulated += self.poly(rel_l1(modulated_inp, self.previous_modulated_input))
            if self.accumulated < self.threshold:
                should_calc = False
            else:
                should_calc = True
                self.accumulated = 0.0
        self.previous_modulated_input = modulated_inp
        if not should_calc:
            self.skipped.append(1)
            return x + self.previous_residual
        self.skipped.append(0)
        ori = x
        for i in range(self.cfg.depth):
            x = self.cached_block(i, x, c)
        self.previous_residual = x - ori
        return x

    def fbcache_forward(self, x, c):
        ori = x
        for i in range(self.fb_blocks):
            x = self.cached_block(i, x, c)
        first_residual = x - ori
        prev = self.previous_first_residual
        if prev is not None and rel_l1(first_residual, prev) < self.threshold:
            self.skipped.append(1)
            return x + self.previous_residual
        self.skipped.append(0)
        self.previous_first_residual = first_residual
        start = x
        for i in range(self.fb_blocks, self.cfg.depth):
            x = self.cached_block(i, x, c)
        self.previous_residual = x - start
        return x

    # -- the model --------------------------------------------------------
    def forward(self, x, t, y):
        tokens = self.patch_embed(x)
        c = self.condition(t, y)
        if self.policy == "teacache":
            tokens = self.teacache_forward(tokens, c)
        elif self.policy == "fbcache":
            tokens = self.fbcache_forward(tokens, c)
        else:
            self.skipped.append(0)
            tokens = self.blocks_with_residuals(tokens, c, 0, self.cfg.depth)
        self.step += 1
        return self.unpatchify(self.final_layer(tokens, c))


def scale_eps(out, scale, channels):
    """ε (the first `channels` output channels) divided by the step's scale, after guidance."""
    return torch.cat([out[:, :channels] / scale, out[:, channels:]], dim=1)
