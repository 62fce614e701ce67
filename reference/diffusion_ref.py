"""The official DiT diffusion/ semantics: linear betas, timestep respacing,
p_mean_variance, DDPM and DDIM steps, and the sampling loops with ebcache's
counter-based noise (rng_ref) instead of torch.randn.

Schedules are float64 numpy arrays. Each coefficient is rounded to float32
before it multiplies a float32 tensor, as official _extract_into_tensor does,
and every expression keeps the official order of operations.
"""
import numpy as np
import torch

import rng_ref

NUM_STEPS = 1000
LEARNED_RANGE, FIXED_SMALL, FIXED_LARGE = "learned_range", "fixed_small", "fixed_large"


def linear_betas(steps=NUM_STEPS):
    """(steps) float64: np.linspace(1e-4·s, 0.02·s, steps), s = 1000/steps."""
    scale = 1000 / steps
    return np.linspace(scale * 0.0001, scale * 0.02, steps, dtype=np.float64)


def space_timesteps(num_timesteps, spacing):
    """The kept original timesteps, sorted. spacing: "ddimN" (the fixed integer
    stride giving exactly N steps) or comma-separated counts, one per equal
    section of the schedule. Raises ValueError when it cannot be met."""
    if spacing.startswith("ddim"):
        desired = int(spacing[len("ddim"):])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == desired:
                return list(range(0, num_timesteps, stride))
        raise ValueError(f"cannot create exactly {desired} steps with an integer stride")
    counts = [int(s) for s in spacing.split(",")]
    size_per, extra = divmod(num_timesteps, len(counts))
    start, steps = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        frac_stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            steps.append(start + round(cur))
            cur += frac_stride
        start += size
    return sorted(set(steps))


class Schedule:
    """The respaced diffusion's arrays (official SpacedDiffusion + GaussianDiffusion).
    Index i in [0, S) is a kept step; timestep[i] is what the model is fed."""

    def __init__(self, respacing=""):
        base_betas = linear_betas()
        keep = space_timesteps(NUM_STEPS, respacing or str(NUM_STEPS))
        base_ac = np.cumprod(1.0 - base_betas, axis=0)
        betas, last = [], 1.0
        for t in keep:
            betas.append(1 - base_ac[t] / last)
            last = base_ac[t]
        self.respacing = respacing
        self.timestep = np.array(keep, dtype=np.int64)
        self.betas = np.array(betas, dtype=np.float64)
        alphas = 1.0 - self.betas
        ac = np.cumprod(alphas, axis=0)
        prev = np.append(1.0, ac[:-1])
        self.alphas_cumprod = ac
        self.alphas_cumprod_prev = prev
        self.sqrt_recip_ac = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_ac = np.sqrt(1.0 / ac - 1)
        self.posterior_variance = self.betas * (1.0 - prev) / (1.0 - ac)
        # Clipped: the posterior variance is 0 at i = 0, so index 1 stands in
        # (empty for S = 1, where the official code cannot sample either).
        pv = self.posterior_variance
        self.posterior_log_var_clipped = np.log(np.append(pv[1], pv[1:])) if len(pv) > 1 else np.array([])
        self.posterior_mean_coef1 = self.betas * np.sqrt(prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - prev) * np.sqrt(alphas) / (1.0 - ac)

    @property
    def S(self):
        return len(self.timestep)

    ARRAYS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_recip_ac", "sqrt_recipm1_ac", "posterior_variance",
              "posterior_log_var_clipped", "posterior_mean_coef1", "posterior_mean_coef2")


def extract(arr, i, shape):
    """arr[i] of a float64 array, rounded to float32, broadcast to shape (N, ...); i (N) long."""
    res = torch.from_numpy(arr)[i].float()
    return res.view(-1, *([1] * (len(shape) - 1))).expand(shape)


def p_mean_variance(s, var_type, model_out, x, i):
    """model_out (N, C or 2C, H, W) ε [and variance values], x (N, C, H, W) x_t, i (N)
    respaced indices -> dict mean, variance, log_variance, pred_xstart (all (N, C, H, W)).
    ε prediction, no clipping (clip_denoised=False)."""
    C = x.shape[1]
    if var_type == LEARNED_RANGE:
        eps, var_values = torch.split(model_out, C, dim=1)
        min_log = extract(s.posterior_log_var_clipped, i, x.shape)
        max_log = extract(np.log(s.betas), i, x.shape)
        frac = (var_values + 1) / 2  # [-1, 1] spans [posterior variance, beta]
        log_variance = frac * max_log + (1 - frac) * min_log
        variance = torch.exp(log_variance)
    else:
        eps = model_out[:, :C]
        if var_type == FIXED_LARGE:
            var = np.append(s.posterior_variance[1], s.betas[1:])
            log_var = np.log(var)
        else:
            var, log_var = s.posterior_variance, s.posterior_log_var_clipped
        variance = extract(var, i, x.shape)
        log_variance = extract(log_var, i, x.shape)
    pred_xstart = extract(s.sqrt_recip_ac, i, x.shape) * x - extract(s.sqrt_recipm1_ac, i, x.shape) * eps
    mean = extract(s.posterior_mean_coef1, i, x.shape) * pred_xstart + extract(s.posterior_mean_coef2, i, x.shape) * x
    return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}


def nonzero_mask(i, x):
    """(N, 1, ..) float32: 0 where i == 0 (the last step adds no noise)."""
    return (i != 0).float().view(-1, *([1] * (x.dim() - 1)))


def p_sample(s, var_type, model_out, x, i, noise):
    """One DDPM step: x_t (N, C, H, W) -> x_{t-1}; noise (N, C, H, W)."""
    out = p_mean_variance(s, var_type, model_out, x, i)
    return out["mean"] + nonzero_mask(i, x) * torch.exp(0.5 * out["log_variance"]) * noise


def ddim_sample(s, var_type, model_out, x, i, eta, noise):
    """One DDIM step: ε is re-derived from pred_xstart, sigma from eta."""
    out = p_mean_variance(s, var_type, model_out, x, i)
    eps = (extract(s.sqrt_recip_ac, i, x.shape) * x - out["pred_xstart"]) / extract(s.sqrt_recipm1_ac, i, x.shape)
    alpha_bar = extract(s.alphas_cumprod, i, x.shape)
    alpha_bar_prev = extract(s.alphas_cumprod_prev, i, x.shape)
    sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
    mean_pred = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
    return mean_pred + nonzero_mask(i, x) * sigma * noise


def step_noise(seed, i, shape, first_index=0):
    """(N, C, H, W) noise of the step at respaced index i: row n is stream
    step(first_index + n, i) of `seed`."""
    streams = [rng_ref.stream_step(first_index + n, i) for n in range(shape[0])]
    return torch.from_numpy(rng_ref.batch_normals(seed, streams, shape[1:]))


def initial_noise(seed, shape, first_index=0):
    """(N, C, H, W) x_T: row n is stream xT(first_index + n) of `seed`."""
    streams = [rng_ref.stream_xT(first_index + n) for n in range(shape[0])]
    return torch.from_numpy(rng_ref.batch_normals(seed, streams, shape[1:]))


def sample_loop(model_fn, s, x_T, kind, var_type, seed, eta=0.0, first_index=0):
    """The reverse process from x_T (N, C, H, W) over i = S-1 .. 0.
    model_fn(x, t) -> model output, fed the original timesteps t = timestep[i].
    kind "ddpm" draws noise at every i > 0; "ddim" only when eta > 0 (sigma is 0
    otherwise); the mask zeroes the noise at i = 0 in both."""
    x = x_T
    N = x.shape[0]
    for step in reversed(range(s.S)):
        i = torch.full((N,), step, dtype=torch.long)
        out = model_fn(x, torch.from_numpy(s.timestep)[i])
        draws = step > 0 and (kind == "ddpm" or eta > 0)
        noise = step_noise(seed, step, x.shape, first_index) if draws else torch.zeros_like(x)
        if kind == "ddpm":
            x = p_sample(s, var_type, out, x, i, noise)
        else:
            x = ddim_sample(s, var_type, out, x, i, eta, noise)
    return x
