"""ebcache.torch.record: the statistics of `ebcache record` (docs/recording.md) from a PyTorch DiT.

The run is observed through the schedule hooks: at every model call the chain's input x̂_t, block 0's
modulated input, every block's pre-gate attention and MLP output, the raw model output and the guided,
scaled ε. Sums are float64, as the engine's.
"""
import hashlib
import time

import numpy as np
import torch

from ebcache import rng
from ebcache.recording import Recording
from ebcache.torch.hooks import ScheduleHooks, as_schedule, model_layout

DESCRIPTIONS = {
    "steps/t": "model timestep of step k (sampler index S-1-k)",
    "steps/alpha_bar": "alpha_bar of step k",
    "snr/nominal": "abar / (1 - abar)",
    "snr/trajectory": "sum abar*|x0hat|^2 / sum |xt - sqrt(abar)*x0hat|^2 over the batch",
    "exposure/snr_ratio": "(1 - abar) * n / sum |xt - sqrt(abar)*x0hat|^2: snr/trajectory over the nominal SNR at the samples' power",
    "eps/norm": "per-sample L2 norm of the guided eps along the chain (after the schedule's scale)",
    "eps/norm_q": "per-sample L2 norm of the guided eps of the uncached model on sqrt(abar)*x0 + sqrt(1-abar)*z",
    "drift/attn": "sum|F_k - F_prev| / sum|F_prev| of the pre-gate attention output",
    "drift/mlp": "sum|F_k - F_prev| / sum|F_prev| of the pre-gate MLP output",
    "drift/attn_cos": "cosine similarity of the pre-gate attention output to F_prev",
    "drift/mlp_cos": "cosine similarity of the pre-gate MLP output to F_prev",
    "drift/block0_input": "relative L1 change of block 0's modulated input (TeaCache)",
    "drift/output": "relative L1 change of the model output (both CFG halves)",
    "drift/attn_lag": "row j-1: sum|F_k - F_(k-j)| / sum|F_(k-j)| of the pre-gate attention output (row 0 = drift/attn)",
    "drift/mlp_lag": "row j-1: sum|F_k - F_(k-j)| / sum|F_(k-j)| of the pre-gate MLP output (row 0 = drift/mlp)",
    "magcache/ratio": "mean over tokens of |r_k| / |r_prev|, r = tokens after the last block - after the embedding; "
                      "columns: conditional, unconditional rows",
    "deviation/x": "|x_cached - x_uncached| / |x_uncached|",
    "deviation/eps": "|eps_cached - eps_uncached| / |eps_uncached|",
}


class _Observer:
    """What one chain's hooks see: per step x̂_t and ε (N rows), drift sums per feature."""

    def __init__(self, S, L, C, cfg_scale, guide_channels, lags=3):
        self.S, self.L, self.C = S, L, C
        self.K = min(lags, S)  # the engine's default: SmoothCache's lookahead 3, at most the steps
        self.hist = {}  # (block, module) -> F_(k-2), F_(k-3), … newest first
        self.lag = {}   # (block, module) -> (K - 1, S) lagged relative L1 change
        self.h0, self.norm_prev = None, None
        self.mag = np.full((S, 2), np.nan)
        self.cfg_scale, self.g = cfg_scale, guide_channels
        self.xs, self.eps_k = [None] * S, [None] * S
        self.t, self.y = [None] * S, None
        self.prev = {}
        self.rel = {}  # feature -> (S) relative L1 change; cos likewise
        self.cos = {}

    def rows(self, B):
        return B // 2 if self.cfg_scale != 1 else B

    def begin(self, k, args, kwargs, layout):
        x = layout.arg(args, kwargs, 0, layout.x_kw)
        N = self.rows(x.shape[0])
        self.xs[k] = x[:N].detach().double()
        t = layout.arg(args, kwargs, 1, layout.t_kw)
        self.t[k] = int(torch.as_tensor(t).reshape(-1)[0])
        if self.y is None:
            y = layout.arg(args, kwargs, 2, layout.y_kw)
            self.y = torch.as_tensor(y).reshape(-1)[:N].clone()

    def track(self, key, k, f):
        f = f.detach().double()
        p = self.prev.get(key)
        if p is not None:
            rel = self.rel.setdefault(key, np.full(self.S, np.nan))
            cos = self.cos.setdefault(key, np.full(self.S, np.nan))
            rel[k] = ((f - p).abs().sum() / p.abs().sum()).item()
            cos[k] = ((f * p).sum() / torch.sqrt((f * f).sum() * (p * p).sum())).item()
        self.prev[key] = f

    def probe(self, k, p):
        self.track("block0", k, p)

    def feature(self, k, b, mod, f):
        key, f64 = (b, mod), f.detach().double()
        hist = self.hist.setdefault(key, [])
        for j, h in enumerate(hist):  # lags 2..K, before the history takes F_(k-1)
            lag = self.lag.setdefault(key, np.full((self.K - 1, self.S), np.nan))
            lag[j, k] = ((f64 - h).abs().sum() / h.abs().sum()).item()
        if self.K > 1 and key in self.prev:
            hist.insert(0, self.prev[key])
            del hist[self.K - 1:]
        self.track(key, k, f)

    def tokens_in(self, k, x):
        self.h0 = x.detach().double()

    def tokens_out(self, k, h):
        """MagCache's ratio: ‖r‖ per token over the hidden size, r = h − h0, against the previous forward."""
        norm = (h.detach().double() - self.h0).norm(dim=-1).reshape(h.shape[0], -1)
        if self.norm_prev is not None:
            ratio = norm / self.norm_prev
            if self.cfg_scale != 1:
                n = h.shape[0] // 2
                self.mag[k] = [ratio[:n].mean().item(), ratio[n:].mean().item()]
            else:
                self.mag[k, 0] = ratio.mean().item()
        self.norm_prev = norm

    def output(self, k, out):
        self.track("output", k, out)

    def eps(self, k, out, guided):
        """out: the step's output after the ε scale; guided when it came from forward_with_cfg."""
        N = self.rows(out.shape[0])
        if self.cfg_scale != 1 and not guided:
            out = guide(out, self.cfg_scale, self.g)
        self.eps_k[k] = out[:N, :self.C].detach().double()

    def series(self, key, which):
        return (self.rel if which == "rel" else self.cos).get(key, np.full(self.S, np.nan))

    def drift(self):
        per = lambda mod, w: np.stack([self.series((b, mod), w) for b in range(self.L)], axis=1)  # noqa: E731
        nan = np.full((self.K - 1, self.S), np.nan)
        lagged = lambda mod: np.stack([np.stack([self.lag.get((b, mod), nan)[j] for b in range(self.L)], axis=1)  # noqa: E731
                                       for j in range(self.K - 1)]) if self.K > 1 else np.zeros((0, self.S, self.L))
        return {"drift/attn": per(0, "rel"), "drift/mlp": per(1, "rel"), "drift/attn_cos": per(0, "cos"),
                "drift/mlp_cos": per(1, "cos"), "drift/block0_input": self.series("block0", "rel"),
                "drift/output": self.series("output", "rel"),
                "drift/attn_lag": np.concatenate([per(0, "rel")[None], lagged(0)]),
                "drift/mlp_lag": np.concatenate([per(1, "rel")[None], lagged(1)]), "magcache/ratio": self.mag}


def guide(out, scale, g):
    """Classifier-free guidance on a (2N, C_out, H, W) batch [conditional; unconditional]: the first g
    channels become u + s·(c − u), the rest come from the conditional rows. Returns (N, C_out, H, W)."""
    N = out.shape[0] // 2
    cond, uncond = out[:N], out[N:]
    return torch.cat([uncond[:, :g] + scale * (cond[:, :g] - uncond[:, :g]), cond[:, g:]], dim=1)


def _chain(model, sampler_loop, schedule, S, obs):
    hooks = ScheduleHooks(model, schedule, observer=obs, steps=S)
    with hooks:
        final = sampler_loop()
    if hooks.step != S:
        raise RuntimeError(f"the sampler loop called the model {hooks.step} times, the run has {S} steps")
    N = obs.xs[0].shape[0]
    return torch.as_tensor(final)[:N].detach(), hooks


def _chain_stats(obs, final, alpha_bar):
    """SNR, exposure and ε norms of one chain (docs/recording.md formulas)."""
    S = obs.S
    f = final.double()
    power = (f ** 2).mean().item()
    traj, ratio, norm = np.full(S, np.nan), np.full(S, np.nan), np.full((S, f.shape[0]), np.nan)
    for k in range(S):
        ab = alpha_bar[k]
        noise = ((obs.xs[k] - ab ** 0.5 * f) ** 2).sum().item()
        traj[k] = ab * (f ** 2).sum().item() / noise
        ratio[k] = (1 - ab) * f.numel() / noise
        norm[k] = obs.eps_k[k].flatten(1).norm(dim=1).numpy()
    out = {"snr/trajectory": traj, "exposure/snr_ratio": ratio, "eps/norm": norm}
    out.update(obs.drift())
    return out, power


def _eps_q(model, layout, x0, y, t, alpha_bar, seed, cfg_scale, g):
    """(S, N) ‖ε‖ of the uncached model on √ᾱ x0 + √(1−ᾱ) z, z the q streams (eb_stream_q) of `seed`."""
    S, N = len(t), x0.shape[0]
    null = torch.full_like(y, layout.null_class)
    norm = np.full((S, N), np.nan)
    for k in range(S):
        i = S - 1 - k
        z = torch.from_numpy(rng.batch(seed, [rng.stream_q(n, i) for n in range(N)], tuple(x0.shape[1:])))
        xq = (alpha_bar[k] ** 0.5 * x0.double() + (1 - alpha_bar[k]) ** 0.5 * z.double()).float()
        tt = torch.full((N,), t[k], dtype=torch.long)
        if cfg_scale != 1:
            out = guide(layout.call(model, torch.cat([xq, xq]), torch.cat([tt, tt]), torch.cat([y, null])),
                        cfg_scale, g)
        else:
            out = layout.call(model, xq, tt, y)
        norm[k] = out[:, :layout.in_channels].double().flatten(1).norm(dim=1).numpy()
    return norm


def record(model, sampler_loop, output=None, *, alphas_cumprod, schedule=None, seed=0, cfg_scale=1.0,
           guide_channels=None, eps_q=True, sampler="", respacing="", eta=0.0, variance="", model_file="",
           attrs=None):
    """Records a run of `sampler_loop` on `model` into `output` (when given) and returns the Recording.

    sampler_loop(): runs the whole reverse process once with `model` and returns the N final samples
      (N, C, H, W); every call must draw the same x_T and noise (with a schedule it runs twice: cached,
      then the uncached reference chain). With guidance the model is called on 2N rows per step
      ([conditional; unconditional], as forward_with_cfg), through forward_with_cfg or with the
      guidance done outside the model (then `guide_channels` says how many channels it combines).
    alphas_cumprod: the sampler's respaced ᾱ, indexed by the sampler index i (step k runs at i = S−1−k).
    seed: the seed of the q(x_t | x̂0) noise of /eps/norm_q (and of x_T when the loop draws from
      ebcache.rng, so that `ebcache search` can replay the run).
    sampler, respacing, eta, variance, model_file: written as the root attributes `ebcache record` writes;
      with model_file (a file the C engine loads) the recording also carries `model_sha256` and eb-cache's
      search can replay it. attrs: more root attributes, or overrides.
    """
    alphas_cumprod = np.asarray(alphas_cumprod, dtype=np.float64)
    S = len(alphas_cumprod)
    alpha_bar = alphas_cumprod[::-1].copy()  # step order
    sched = as_schedule(schedule) if schedule is not None else None
    if sched is not None and sched.steps != S:
        raise ValueError(f"the schedule has {sched.steps} steps, alphas_cumprod {S}")
    start = time.monotonic()
    layout = model_layout(model)
    g = guide_channels if guide_channels is not None else min(3, layout.out_channels)
    config = layout.config(model)
    with torch.no_grad():
        obs = _Observer(S, layout.depth, layout.in_channels, cfg_scale, g)
        final, hooks = _chain(model, sampler_loop, sched, S, obs)
        stats, power = _chain_stats(obs, final, alpha_bar)
        arrays = dict(stats)
        t = obs.t
        if eps_q:
            arrays["eps/norm_q"] = _eps_q(model, layout, final, obs.y, t, alpha_bar, seed, cfg_scale, g)
        extra = {}
        if sched is not None:
            ref = _Observer(S, layout.depth, layout.in_channels, cfg_scale, g)
            ref_final, _ = _chain(model, sampler_loop, None, S, ref)
            ref_stats, ref_power = _chain_stats(ref, ref_final, alpha_bar)
            arrays.update({f"reference/{k}": v for k, v in ref_stats.items()})
            extra["reference_signal_power"] = ref_power
            dx, de = np.full(S, np.nan), np.full(S, np.nan)
            for k in range(S):
                dx[k] = ((obs.xs[k] - ref.xs[k]).norm() / ref.xs[k].norm()).item()
                de[k] = ((obs.eps_k[k] - ref.eps_k[k]).norm() / ref.eps_k[k].norm()).item()
            arrays["deviation/x"], arrays["deviation/eps"] = dx, de
    arrays["steps/t"] = np.array(t, dtype=np.float64)
    arrays["steps/alpha_bar"] = alpha_bar
    arrays["snr/nominal"] = alpha_bar / (1 - alpha_bar)
    arrays["samples"] = final.float().numpy()
    arrays["y"] = obs.y.numpy().astype(np.int32)
    sha = ""
    if model_file:
        with open(model_file, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
    N = final.shape[0]
    root = {"ebcache_version": "0.3.0", "model": str(model_file or type(model).__name__), "model_sha256": sha,
            "device": str(next(model.parameters()).device), **config, "cfg_scale": float(cfg_scale),
            "cfg_channels": g, "cfg_guidance": "official" if g == min(3, layout.out_channels) else "count",
            "sampler": sampler, "respacing": respacing, "steps": S, "eta": float(eta), "variance": variance,
            "seed": seed, "start": "seed", "data": "", "start_step": 0, "N": N, "batch": N,
            "schedule": "", "schedule_text": sched.text() if sched else "",
            "flop_fraction": hooks.plan.flop_fraction(config, hooks.skipped if hooks.plan.policy else None), "has_data": 0, "has_reference": int(sched is not None), "ranks": 1,
            "signal_power": power, **extra, "wall_seconds": time.monotonic() - start}
    if sched is not None and sched.method:
        root["schedule_method"] = sched.method
    root.update(attrs or {})
    rec = Recording(arrays, root, {k: v for k, v in DESCRIPTIONS.items() if k in arrays})
    rec.descriptions.update({f"reference/{k}": DESCRIPTIONS[k] for k in DESCRIPTIONS if f"reference/{k}" in arrays})
    if output is not None:
        rec.write(output)
        rec.path = str(output)
    return rec
