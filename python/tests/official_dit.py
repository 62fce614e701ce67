"""A torch.nn DiT with the module tree and state_dict keys of facebookresearch/DiT's `DiT` class
(x_embedder.proj, t_embedder.mlp, y_embedder.embedding_table, blocks[i].{norm1, attn.qkv, attn.proj,
norm2, mlp.fc1, mlp.fc2, adaLN_modulation}, final_layer), `forward(x, t, y)` and
`forward_with_cfg(x, t, y, cfg_scale)` with the official semantics (reference/dit_ref.py states them).

The tests and the bench hook this model the way a user hooks the official one; it is written here from
those semantics because the official models.py (which needs timm) is not vendored.
"""
import math
import os
import sys

import torch
import torch.nn as nn

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "reference"))
import dit_ref  # noqa: E402
import st_io  # noqa: E402


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):
    def __init__(self, p, C, D):
        super().__init__()
        self.proj = nn.Conv2d(C, D, kernel_size=p, stride=p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, D):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dit_ref.FREQ_DIM, D), nn.SiLU(), nn.Linear(D, D))

    def forward(self, t):
        return self.mlp(dit_ref.timestep_freq(t))


class LabelEmbedder(nn.Module):
    def __init__(self, classes, D):
        super().__init__()
        self.embedding_table = nn.Embedding(classes + 1, D)

    def forward(self, y):
        return self.embedding_table(y)


class Attention(nn.Module):
    def __init__(self, D, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)

    def forward(self, x):
        N, T, D = x.shape
        qkv = self.qkv(x).reshape(N, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = ((q @ k.transpose(-2, -1)) * (D // self.heads) ** -0.5).softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(N, T, D))


class Mlp(nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.fc1 = nn.Linear(D, H)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(H, D)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DiTBlock(nn.Module):
    def __init__(self, D, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=dit_ref.LN_EPS)
        self.attn = Attention(D, heads)
        self.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=dit_ref.LN_EPS)
        self.mlp = Mlp(D, dit_ref.MLP_RATIO * D)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))

    def forward(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, D, p, Co):
        super().__init__()
        self.norm_final = nn.LayerNorm(D, elementwise_affine=False, eps=dit_ref.LN_EPS)
        self.linear = nn.Linear(D, p * p * Co)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg.hidden_size
        self.cfg = cfg
        self.in_channels, self.out_channels = cfg.in_channels, cfg.out_channels
        self.patch_size, self.num_heads = cfg.patch_size, cfg.num_heads
        self.x_embedder = PatchEmbed(cfg.patch_size, cfg.in_channels, D)
        self.t_embedder = TimestepEmbedder(D)
        self.y_embedder = LabelEmbedder(cfg.num_classes, D)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.tokens, D), requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(D, cfg.num_heads) for _ in range(cfg.depth)])
        self.final_layer = FinalLayer(D, cfg.patch_size, cfg.out_channels)

    def unpatchify(self, x):
        c, p = self.out_channels, self.patch_size
        h = math.isqrt(x.shape[1])
        x = torch.einsum("nhwpqc->nchpwq", x.reshape(x.shape[0], h, h, p, p, c))
        return x.reshape(x.shape[0], c, h * p, h * p)

    def forward(self, x, t, y):
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        return self.unpatchify(self.final_layer(x, c))

    def forward_with_cfg(self, x, t, y, cfg_scale):
        """The official guidance: the first half of x twice, channels [:3] guided in both halves."""
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half], dim=0), t, y)
        eps, rest = out[:, :3], out[:, 3:]
        cond, uncond = torch.split(eps, len(eps) // 2, dim=0)
        guided = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([guided, guided], dim=0), rest], dim=1)


def load(path, heads=None):
    """The official DiT of a safetensors file (official keys), float32, eval mode."""
    weights, meta = st_io.load(path)
    try:
        cfg = dit_ref.DiTConfig.from_metadata(meta or {})
    except ValueError:
        cfg = dit_ref.infer_config({k: tuple(v.shape) for k, v in weights.items()}, heads=heads)
    model = DiT(cfg)
    state = {k: v.float() for k, v in weights.items()}
    if "pos_embed" not in state:
        state["pos_embed"] = torch.from_numpy(dit_ref.pos_embed_2d(cfg.hidden_size, cfg.grid)).unsqueeze(0)
    model.load_state_dict(state)
    return model.eval()


def random(cfg, seed=0):
    """A DiT of `cfg` with dit_ref's random weights (every parameter O(1), not the zero init)."""
    model = DiT(cfg)
    w = dit_ref.random_weights(cfg, torch.Generator().manual_seed(seed))
    model.load_state_dict(w)
    return model.eval()
