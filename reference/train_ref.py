"""One DiT training step in PyTorch: the golden of ebcache's trainer.

The objective is the official DiT one (diffusion/gaussian_diffusion.py
training_losses with create_diffusion(timestep_respacing=""): 1000 steps,
LEARNED_RANGE variance, loss type MSE): mean over the batch of
mean_flat((noise − ε)²) + vb, where vb is KL(q(x_{t−1}|x_t,x0) ‖ p(x_{t−1}|x_t))
in bits per dimension for t > 0 and the discretized Gaussian decoder NLL for
t = 0, computed with the model's ε detached. Autograd gives every gradient.

usage: train_ref.py OUT_DIR     writes OUT_DIR/train_step.h5

train_step.h5 holds
  /weights/<official key>   the random model (adaLN and final layer non-zero)
  /x0 (N,C,H,W) /t (N) /noise (N,C,H,W) /y (N)   the batch (y = num_classes: a dropped label)
  /loss (scalar) /mse (N) /vb (N)                  the objective and its per-sample terms
  /out (N,2C,H,W) /d_out (N,2C,H,W)                the model output and d loss / d out
  /grads/<official key>     d loss / d parameter
  /adamw/p0 /adamw/g{1,2,3} /adamw/p{1,2,3} /adamw/m3 /adamw/v3   torch.optim.AdamW, three steps
  attributes on /: the configuration, and adamw_{lr,weight_decay,beta1,beta2,eps}
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusion_ref as dr  # noqa: E402
from dit_ref import DiT, DiTConfig, random_weights  # noqa: E402
from h5_writer import H5  # noqa: E402

CONFIG = DiTConfig(input_size=8, patch_size=2, in_channels=1, hidden_size=32, depth=2, num_heads=2, num_classes=10,
                   learn_sigma=True)
# Both ends of the schedule (t = 0 takes the decoder NLL) and values between.
TIMESTEPS = [0, 999, 1, 500, 0, 250, 37]
LABELS = [3, 10, 0, 9, 10, 5, 1]
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + ((mean1 - mean2) ** 2) * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """The tanh approximation of Φ the official code uses."""
    return 0.5 * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log P(x) of 8-bit data in [−1, 1]: the Gaussian mass of x's 2/255-wide bin,
    the outer bins reaching to ±∞ (edges at ±0.999), probabilities clamped at 1e-12."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def mean_flat(x):
    return x.mean(dim=list(range(1, x.dim())))


def training_losses(model, s, x0, t, noise, y):
    """dict loss, mse, vb, each (N), of the official objective for model(x_t, t, y)."""
    sqrt_ac, sqrt_1m_ac = np.sqrt(s.alphas_cumprod), np.sqrt(1.0 - s.alphas_cumprod)
    x_t = dr.extract(sqrt_ac, t, x0.shape) * x0 + dr.extract(sqrt_1m_ac, t, x0.shape) * noise
    out = model(x_t, t, y)
    C = x0.shape[1]
    eps, var_values = torch.split(out, C, dim=1)
    # The variance learns through vb only: the mean there uses ε detached.
    frozen = torch.cat([eps.detach(), var_values], dim=1)
    p = dr.p_mean_variance(s, dr.LEARNED_RANGE, frozen, x_t, t)
    coef1, coef2 = dr.extract(s.posterior_mean_coef1, t, x0.shape), dr.extract(s.posterior_mean_coef2, t, x0.shape)
    true_mean = coef1 * x0 + coef2 * x_t
    true_log_var = dr.extract(s.posterior_log_var_clipped, t, x0.shape)
    kl = mean_flat(normal_kl(true_mean, true_log_var, p["mean"], p["log_variance"])) / np.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, p["mean"], 0.5 * p["log_variance"])
    nll = mean_flat(nll) / np.log(2.0)
    vb = torch.where(t == 0, nll, kl)
    mse = mean_flat((noise - eps) ** 2)
    return {"loss": mse + vb, "mse": mse, "vb": vb}


def write_train_step(out):
    g = torch.Generator().manual_seed(401)
    cfg = CONFIG
    weights = random_weights(cfg, g)
    # In float32 the t = 0 decoder NLL is ill-conditioned where |x0 − mean| is more
    # than ~4σ (both CDFs round towards 1): there PyTorch's and any other float32
    # gradient agree only to ~1e-3. A small ε keeps |x0 − mean| ≈ 0.01·|noise − ε|
    # inside that range, so the golden measures the implementation.
    for k in ("final_layer.linear.weight", "final_layer.linear.bias"):
        weights[k] = weights[k] * 0.25
    params = {k: v.clone().requires_grad_(True) for k, v in weights.items() if k != "pos_embed"}
    model = DiT(cfg, params)
    N, side = len(TIMESTEPS), cfg.input_size
    # 8-bit images in [−1, 1] as the data loader makes them, with both extremes present.
    pixels = torch.randint(0, 256, (N, cfg.in_channels, side, side), generator=g)
    pixels[:, :, 0, :2] = torch.tensor([0, 255])
    x0 = pixels.float() / 127.5 - 1.0
    noise = torch.randn(N, cfg.in_channels, side, side, generator=g).clamp(-2.5, 2.5)
    t, y = torch.tensor(TIMESTEPS), torch.tensor(LABELS)
    kept = {}

    def model_fn(x, t_, y_):
        kept["out"] = model.forward(x, t_, y_)
        kept["out"].retain_grad()
        return kept["out"]

    terms = training_losses(model_fn, dr.Schedule(""), x0, t, noise, y)
    loss = terms["loss"].mean()
    loss.backward()

    with H5(os.path.join(out, "train_step.h5")) as h:
        for k, v in cfg.metadata().items():
            h.f.attrs[k] = v
        for k, v in weights.items():
            if k != "pos_embed":
                h.put(f"weights/{k}", v)
        h.put("x0", x0)
        h.put("t", t)
        h.put("noise", noise)
        h.put("y", y)
        h.put("loss", loss.detach())
        h.put("mse", terms["mse"].detach())
        h.put("vb", terms["vb"].detach())
        h.put("out", kept["out"].detach())
        h.put("d_out", kept["out"].grad)
        for k, v in params.items():
            h.put(f"grads/{k}", v.grad)
        write_adamw(h, g)


def write_adamw(h, g):
    """Three torch.optim.AdamW steps on one tensor (bias corrections past step 1)."""
    p = torch.randn(1000, generator=g).requires_grad_(True)
    h.put("adamw/p0", p.detach())
    opt = torch.optim.AdamW([p], **ADAMW)
    for step in (1, 2, 3):
        p.grad = torch.randn(1000, generator=g) * 10.0 ** (step - 2)
        h.put(f"adamw/g{step}", p.grad)
        opt.step()
        h.put(f"adamw/p{step}", p.detach())
    state = opt.state[p]
    h.put("adamw/m3", state["exp_avg"])
    h.put("adamw/v3", state["exp_avg_sq"])
    h.attrs("/", adamw_lr=ADAMW["lr"], adamw_weight_decay=ADAMW["weight_decay"], adamw_beta1=ADAMW["betas"][0],
            adamw_beta2=ADAMW["betas"][1], adamw_eps=ADAMW["eps"])


def main(argv):
    if len(argv) != 2:
        print("usage: train_ref.py OUT_DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    write_train_step(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
