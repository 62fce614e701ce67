"""The ebcache Fashion-MNIST classifier (train/classifier.h) in PyTorch: the
golden of its forward and backward.

    x (B, 1, S, S) clipped to [-1, 1] -> Conv2d(k=p, s=p) + sin-cos pos embed -> (B, T, D)
    L blocks: x += g1 * attn(LN(x)*(1 + s1) + b1);  x += g2 * mlp(LN(x)*(1 + s2) + b2)
    features = mean over tokens of LN(x)*(1 + s) + b;  logits = head(features)
    loss = mean cross-entropy

LayerNorm eps 1e-6 without affine; (b, s) are one learned vector each, shared
by the batch; g1, g2 learned gate vectors. Attention and MLP as the DiT
reference (timm Attention, GELU tanh). Autograd gives every gradient.

usage: classifier_ref.py OUT_DIR     writes OUT_DIR/classifier_step.h5

classifier_step.h5 holds
  /weights/<key>   random weights with the C keys (blocks.N.norm1.shift, ...)
  /x (B,1,S,S) (some values outside [-1, 1]: the model clips) /y (B)
  /features (B,D) /logits (B,K) /loss (scalar)
  /grads/<key>     d loss / d weight
  attributes on /: side patch dim depth heads classes
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_ref import LN_EPS, pos_embed_2d  # noqa: E402
from h5_writer import H5  # noqa: E402

CONFIG = dict(side=12, patch=4, dim=16, depth=2, heads=2, classes=10)
BATCH = 6
MLP_RATIO = 4


def shapes(c):
    """{key: shape} of every parameter, as the C enum orders them."""
    D, H, p = c["dim"], MLP_RATIO * c["dim"], c["patch"]
    s = {"patch_embed.weight": (D, 1, p, p), "patch_embed.bias": (D,)}
    for i in range(c["depth"]):
        b = f"blocks.{i}."
        s.update({b + "norm1.shift": (D,), b + "norm1.scale": (D,), b + "attn.qkv.weight": (3 * D, D),
                  b + "attn.qkv.bias": (3 * D,), b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
                  b + "gate1": (D,), b + "norm2.shift": (D,), b + "norm2.scale": (D,), b + "mlp.fc1.weight": (H, D),
                  b + "mlp.fc1.bias": (H,), b + "mlp.fc2.weight": (D, H), b + "mlp.fc2.bias": (D,), b + "gate2": (D,)})
    s.update({"norm.shift": (D,), "norm.scale": (D,), "head.weight": (c["classes"], D), "head.bias": (c["classes"],)})
    return s


def random_weights(c, g):
    """Matrices N(0, 1/fan_in); biases, shifts and scales N(0, 0.1^2 or 0.2^2); gates 1 + N(0, 0.3^2)."""
    w = {}
    for k, shape in shapes(c).items():
        z = torch.randn(shape, generator=g)
        if k.endswith("weight"):
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            w[k] = z / fan_in**0.5
        elif "gate" in k:
            w[k] = 1.0 + 0.3 * z
        elif "norm" in k:
            w[k] = 0.2 * z
        else:
            w[k] = 0.1 * z
    return w


def layer_norm(x, shift, scale):
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS) * (1 + scale) + shift


def attention(w, b, x, heads):
    N, T, D = x.shape
    qkv = F.linear(x, w[b + "qkv.weight"], w[b + "qkv.bias"]).reshape(N, T, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    attn = ((q @ k.transpose(-2, -1)) * (D // heads) ** -0.5).softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(N, T, D)
    return F.linear(out, w[b + "proj.weight"], w[b + "proj.bias"])


def forward(c, w, x):
    """x (B, 1, S, S) -> features (B, D), logits (B, K)."""
    grid = c["side"] // c["patch"]
    pos = torch.from_numpy(pos_embed_2d(c["dim"], grid))
    h = F.conv2d(x.clamp(-1.0, 1.0), w["patch_embed.weight"], w["patch_embed.bias"], stride=c["patch"])
    h = h.flatten(2).transpose(1, 2) + pos
    for i in range(c["depth"]):
        b = f"blocks.{i}."
        h = h + w[b + "gate1"] * attention(w, b + "attn.", layer_norm(h, w[b + "norm1.shift"], w[b + "norm1.scale"]),
                                           c["heads"])
        m = layer_norm(h, w[b + "norm2.shift"], w[b + "norm2.scale"])
        m = F.gelu(F.linear(m, w[b + "mlp.fc1.weight"], w[b + "mlp.fc1.bias"]), approximate="tanh")
        h = h + w[b + "gate2"] * F.linear(m, w[b + "mlp.fc2.weight"], w[b + "mlp.fc2.bias"])
    feat = layer_norm(h, w["norm.shift"], w["norm.scale"]).mean(dim=1)
    return feat, F.linear(feat, w["head.weight"], w["head.bias"])


def write_step(out):
    g = torch.Generator().manual_seed(907)
    c = CONFIG
    weights = random_weights(c, g)
    params = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
    x = 1.2 * (2.0 * torch.rand(BATCH, 1, c["side"], c["side"], generator=g) - 1.0)
    y = torch.randint(0, c["classes"], (BATCH,), generator=g)
    feat, logits = forward(c, params, x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    with H5(os.path.join(out, "classifier_step.h5")) as h:
        h.attrs("/", **c)
        for k, v in weights.items():
            h.put(f"weights/{k}", v)
        h.put("x", x)
        h.put("y", y)
        h.put("features", feat.detach())
        h.put("logits", logits.detach())
        h.put("loss", loss.detach())
        for k, v in params.items():
            h.put(f"grads/{k}", v.grad)


def main(argv):
    if len(argv) != 2:
        print("usage: classifier_ref.py OUT_DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    write_step(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
