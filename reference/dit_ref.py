"""A PyTorch DiT with the semantics of facebookresearch/DiT models.py.

Weights live in a dict with the official state_dict key names; the model is a
set of plain functions over it, so every intermediate (timestep features,
patch tokens, one block) can be written to a golden file. Every operation is
the one the official code runs, in the same order and dtype (float32), so
the outputs match it to the last bit on the same machine.
"""
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

FREQ_DIM = 256
MLP_RATIO = 4
LN_EPS = 1e-6
# num_heads of the official DiT table (models.py DiT_models), by hidden size.
HEADS_FOR_HIDDEN = {1152: 16, 1024: 16, 768: 12, 384: 6}
META_KEYS = ("input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "num_classes", "learn_sigma")


@dataclass(frozen=True)
class DiTConfig:
    input_size: int
    patch_size: int
    in_channels: int
    hidden_size: int
    depth: int
    num_heads: int
    num_classes: int
    learn_sigma: bool

    @property
    def out_channels(self):
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def grid(self):
        return self.input_size // self.patch_size

    @property
    def tokens(self):
        return self.grid * self.grid

    def metadata(self):
        """The safetensors __metadata__ strings ebcache reads."""
        md = {k: str(getattr(self, k)) for k in META_KEYS}
        md["learn_sigma"] = "true" if self.learn_sigma else "false"
        return md

    @staticmethod
    def from_metadata(md):
        """Inverse of metadata(); learn_sigma also accepts "1"/"0". Raises ValueError naming the key."""
        values = {}
        for k in META_KEYS:
            if k not in md:
                raise ValueError(f"metadata key '{k}' is missing")
            v = md[k].strip().lower()
            if k == "learn_sigma":
                if v not in ("true", "false", "1", "0"):
                    raise ValueError(f"metadata key 'learn_sigma' is '{md[k]}', expected true/false/1/0")
                values[k] = v in ("true", "1")
            elif not v.isdigit() or int(v) == 0:
                raise ValueError(f"metadata key '{k}' is '{md[k]}', expected a positive integer")
            else:
                values[k] = int(v)
        return DiTConfig(**values)


def param_shapes(cfg):
    """{official key: shape} of a DiT state_dict, pos_embed included."""
    D, C, p = cfg.hidden_size, cfg.in_channels, cfg.patch_size
    shapes = {
        "pos_embed": (1, cfg.tokens, D),
        "x_embedder.proj.weight": (D, C, p, p),
        "x_embedder.proj.bias": (D,),
        "t_embedder.mlp.0.weight": (D, FREQ_DIM),
        "t_embedder.mlp.0.bias": (D,),
        "t_embedder.mlp.2.weight": (D, D),
        "t_embedder.mlp.2.bias": (D,),
        "y_embedder.embedding_table.weight": (cfg.num_classes + 1, D),
        "final_layer.adaLN_modulation.1.weight": (2 * D, D),
        "final_layer.adaLN_modulation.1.bias": (2 * D,),
        "final_layer.linear.weight": (p * p * cfg.out_channels, D),
        "final_layer.linear.bias": (p * p * cfg.out_channels,),
    }
    H = MLP_RATIO * D
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "adaLN_modulation.1.weight": (6 * D, D), b + "adaLN_modulation.1.bias": (6 * D,),
            b + "attn.qkv.weight": (3 * D, D), b + "attn.qkv.bias": (3 * D,),
            b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
            b + "mlp.fc1.weight": (H, D), b + "mlp.fc1.bias": (H,),
            b + "mlp.fc2.weight": (D, H), b + "mlp.fc2.bias": (D,),
        })
    return shapes


def infer_config(shapes, heads=None, input_size=None):
    """A DiTConfig from {key: shape} of an official state_dict. num_heads comes from
    `heads` or the DiT table; input_size from `input_size` or pos_embed's token count.
    Checks every key and shape; raises ValueError naming the key."""
    def need(key, rank):
        if key not in shapes:
            raise ValueError(f"key '{key}' is missing: not an official DiT state_dict")
        if len(shapes[key]) != rank:
            raise ValueError(f"key '{key}' has shape {tuple(shapes[key])}, expected rank {rank}")
        return tuple(shapes[key])

    D, C, p, p2 = need("x_embedder.proj.weight", 4)
    if p != p2:
        raise ValueError(f"key 'x_embedder.proj.weight' has a non-square kernel {p}x{p2}")
    num_classes = need("y_embedder.embedding_table.weight", 2)[0] - 1
    out_rows = need("final_layer.linear.weight", 2)[0]
    if out_rows == p * p * 2 * C:
        learn_sigma = True
    elif out_rows == p * p * C:
        learn_sigma = False
    else:
        raise ValueError(f"key 'final_layer.linear.weight' has {out_rows} rows, expected {p * p * C} or {p * p * 2 * C}")
    blocks = {int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k))}
    depth = len(blocks)
    if blocks != set(range(depth)) or depth == 0:
        raise ValueError(f"block indices {sorted(blocks)} are not 0..L-1")
    if heads is None:
        heads = HEADS_FOR_HIDDEN.get(D)
        if heads is None:
            raise ValueError(f"hidden size {D} is not in the DiT table (1152, 1024, 768, 384): give the head count")
    if D % heads:
        raise ValueError(f"hidden size {D} is not divisible by {heads} heads")
    if input_size is None:
        if "pos_embed" not in shapes:
            raise ValueError("key 'pos_embed' is missing: give the input size")
        T = need("pos_embed", 3)[1]
        grid = math.isqrt(T)
        if grid * grid != T:
            raise ValueError(f"key 'pos_embed' has {T} tokens, not a square grid")
        input_size = grid * p
    if input_size % p:
        raise ValueError(f"input size {input_size} is not a multiple of the patch size {p}")
    cfg = DiTConfig(input_size, p, C, D, depth, heads, num_classes, learn_sigma)
    expected = param_shapes(cfg)
    for key, shape in shapes.items():
        if key not in expected:
            raise ValueError(f"key '{key}' is not a DiT parameter")
        if tuple(shape) != expected[key]:
            raise ValueError(f"key '{key}' has shape {tuple(shape)}, expected {expected[key]}")
    missing = [k for k in expected if k not in shapes and k != "pos_embed"]
    if missing:
        raise ValueError(f"key '{missing[0]}' is missing")
    return cfg


def random_weights(cfg, generator):
    """Every parameter random (not DiT's zero init), scaled so that gates, the
    final layer and the output are O(0.1-1). pos_embed is the fixed sin-cos table."""
    w = {}
    for key, shape in param_shapes(cfg).items():
        if key == "pos_embed":
            w[key] = torch.from_numpy(pos_embed_2d(cfg.hidden_size, cfg.grid)).unsqueeze(0)
        elif key.endswith("embedding_table.weight"):
            w[key] = torch.randn(shape, generator=generator) * 0.5
        elif key.endswith("weight"):
            fan_in = int(np.prod(shape[1:]))
            w[key] = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        else:
            w[key] = torch.randn(shape, generator=generator) * 0.1
    return w


def pos_embed_2d(D, grid):
    """(grid*grid, D) float32: the MAE 2D sin-cos table in float64, rounded once.
    Columns [0, D/2) encode the token's column (w) index, [D/2, D) its row;
    each half is [sin(pos·ω), cos(pos·ω)] with ω_k = 10000^(-k/(D/4))."""
    assert D % 4 == 0, "hidden size must be a multiple of 4"
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32), indexing="ij")

    def axis(pos):
        omega = np.arange(D // 4, dtype=np.float64)
        omega /= D / 4.0
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([axis(cols), axis(rows)], axis=1).astype(np.float32)


def timestep_freq(t):
    """t (N) integer timesteps -> (N, 256) [cos(t·f), sin(t·f)], f_i = exp(-ln(1e4)·i/128), float32."""
    half = FREQ_DIM // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x, shift, scale):
    """x (N, T, D); shift, scale (N, D)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def layer_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS)


class DiT:
    """The official DiT forward over a dict of weights with official key names."""

    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.w = {k: v.float() for k, v in weights.items()}
        # pos_embed is a buffer of the state_dict: load_state_dict copies the
        # stored values (rounded ones in an F16/BF16 file); only a file without
        # it gets the computed sin-cos table.
        self.pos = self.w["pos_embed"] if "pos_embed" in self.w else \
            torch.from_numpy(pos_embed_2d(cfg.hidden_size, cfg.grid)).unsqueeze(0)

    def patch_embed(self, x):
        """x (N, C, H, W) -> tokens (N, T, D) = Conv2d(k=p, s=p) + pos_embed."""
        w = self.w
        y = F.conv2d(x, w["x_embedder.proj.weight"], w["x_embedder.proj.bias"], stride=self.cfg.patch_size)
        return y.flatten(2).transpose(1, 2) + self.pos

    def condition(self, t, y):
        """t (N), y (N) -> c (N, D) = t_emb + y_emb (before the SiLU of the adaLN)."""
        w = self.w
        h = F.linear(timestep_freq(t), w["t_embedder.mlp.0.weight"], w["t_embedder.mlp.0.bias"])
        t_emb = F.linear(F.silu(h), w["t_embedder.mlp.2.weight"], w["t_embedder.mlp.2.bias"])
        return t_emb + F.embedding(y, w["y_embedder.embedding_table.weight"])

    def attention(self, i, x):
        """timm Attention: x (N, T, D) -> (N, T, D)."""
        w, b = self.w, f"blocks.{i}.attn."
        N, T, D = x.shape
        heads = self.cfg.num_heads
        qkv = F.linear(x, w[b + "qkv.weight"], w[b + "qkv.bias"]).reshape(N, T, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * (D // heads) ** -0.5
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(N, T, D)
        return F.linear(out, w[b + "proj.weight"], w[b + "proj.bias"])

    def mlp(self, i, x):
        w, b = self.w, f"blocks.{i}.mlp."
        h = F.gelu(F.linear(x, w[b + "fc1.weight"], w[b + "fc1.bias"]), approximate="tanh")
        return F.linear(h, w[b + "fc2.weight"], w[b + "fc2.bias"])

    def modulation(self, i, c):
        """Block i's adaLN-Zero chunks of c (N, D): shift, scale, gate of the attention, then of the MLP."""
        w, b = self.w, f"blocks.{i}.adaLN_modulation.1."
        return F.linear(F.silu(c), w[b + "weight"], w[b + "bias"]).chunk(6, dim=1)

    def block(self, i, x, c):
        """adaLN-Zero DiT block i: x (N, T, D), c (N, D) -> (N, T, D)."""
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(i, c)
        x = x + gate_msa.unsqueeze(1) * self.attention(i, modulate(layer_norm(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(i, modulate(layer_norm(x), shift_mlp, scale_mlp))
        return x

    def final_layer(self, x, c):
        """x (N, T, D), c (N, D) -> (N, T, p*p*C_out)."""
        w = self.w
        mod = F.linear(F.silu(c), w["final_layer.adaLN_modulation.1.weight"], w["final_layer.adaLN_modulation.1.bias"])
        shift, scale = mod.chunk(2, dim=1)
        x = modulate(layer_norm(x), shift, scale)
        return F.linear(x, w["final_layer.linear.weight"], w["final_layer.linear.bias"])

    def unpatchify(self, x):
        """(N, T, p*p*C_out), channel innermost -> (N, C_out, H, W)."""
        c, p = self.cfg.out_channels, self.cfg.patch_size
        h = math.isqrt(x.shape[1])
        x = x.reshape(x.shape[0], h, h, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, h * p)

    def forward(self, x, t, y):
        """x (N, C, H, W) float32, t (N) timesteps, y (N) labels (num_classes = null) -> (N, C_out, H, W)."""
        tokens = self.patch_embed(x)
        c = self.condition(t, y)
        for i in range(self.cfg.depth):
            tokens = self.block(i, tokens, c)
        return self.unpatchify(self.final_layer(tokens, c))

    def forward_cfg(self, x, t, y, scale, guide_channels):
        """Classifier-free guidance as official forward_with_cfg, for N real rows:
        one batch of 2N rows (labels, then the null class); the first
        `guide_channels` channels are uncond + scale·(cond − uncond), the rest
        come from the conditional pass. x (N, C, H, W) -> (N, C_out, H, W)."""
        null = torch.full_like(y, self.cfg.num_classes)
        out = self.forward(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = torch.split(out, len(x), dim=0)
        g = guide_channels
        guided = uncond[:, :g] + scale * (cond[:, :g] - uncond[:, :g])
        return torch.cat([guided, cond[:, g:]], dim=1)

    def forward_with_cfg_official(self, x2, t2, y2, scale):
        """The official forward_with_cfg semantics on its own 2N-row batch (the
        sampler's x, t doubled; labels, then the null class): the model runs on
        the first N rows twice, and output channels [0, 3) — however many the
        model has — get uncond + scale·(cond − uncond) in both halves; the
        remaining channels stay per row. Returns (2N, C_out, H, W)."""
        n = x2.shape[0] // 2
        out = self.forward(x2[:n].repeat(2, 1, 1, 1), t2, y2)
        k = min(3, out.shape[1])
        cond, uncond = out[:n, :k], out[n:, :k]
        mixed = (uncond + scale * (cond - uncond)).repeat(2, 1, 1, 1)
        return torch.cat([mixed, out[:, k:]], dim=1)


def guide_channels(cfg, rule):
    """Leading output channels each ebcache guidance rule combines: official =
    forward_with_cfg's slice [:, :3] (so ε and the variance channel on a
    1-channel learn_sigma model), eps = the C ε channels, all = every output."""
    return {"official": min(3, cfg.out_channels), "eps": cfg.in_channels, "all": cfg.out_channels}[rule]


def default_guide_channels(cfg):
    return guide_channels(cfg, "official")
