"""The FID InceptionV3 (docs/inception.md) in plain PyTorch, and its golden → tests/golden/inception.h5.

A transcription from the architecture description (the TF 2015-12-05 graph as pytorch-fid ports it):
BasicConv = conv2d without bias → BatchNorm (eval, eps 1e-3) → ReLU; blocks A (Mixed_5b–d), B (6a),
C (6b–e), D (7a), E (7b with an average pool that does not count the padding, 7c with a max pool);
pool = global mean of Mixed_7c; spatial = Mixed_6d.branch1x1 channels 0–6 in NHWC order; logits =
pool · fc.weightᵀ (no bias, as the ADM evaluator's softmax input). The input path is the ADM
evaluator's: uint8 RGB NHWC as float → TF1 legacy bilinear resize to 299 → (x − 128)/128.

The weights are not stored: tensor i of the layout (the order of `tensor_specs`) is drawn from the
ebcache counter-based generator (docs/rng.md) with key(SEED, i), so the C test makes the same
23.8 M numbers without a 95 MB file. Values from the normals z: conv weights z·sqrt(2/fan_in),
bn.weight 1 + 0.1z, bn.bias 0.1z, bn.running_mean 0.1z, bn.running_var 0.75 + 0.25z², fc.weight
z/sqrt(2048). The golden holds the images (uint8) and the three outputs:

  images64 (2, 64, 64, 3) u1, images299 (1, 299, 299, 3) u1,
  {pool,spatial,logits}64 and {pool,spatial,logits}299 float32, attribute seed.

    /usr/bin/python3 reference/inception_ref.py tests/golden
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rng_ref  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from ebcache.rng import normals as rng_normals_shaped  # noqa: E402  (the package's vectorized noise)
from image_ops_ref import tf1_resize_bilinear  # noqa: E402

SEED = 20261207
BN_EPS = 1e-3
SIDE = 299
CLASSES = 1008

# ---------------------------------------------------------------------------------------------------
# The architecture: every BasicConv as (name, in, out, (kh, kw), stride, (ph, pw)), in layout order.


def conv(name, cin, cout, k, stride=1, pad=(0, 0)):
    return (name, cin, cout, k if isinstance(k, tuple) else (k, k), stride, pad)


def block_a(name, cin, pool_features):
    return [conv(f"{name}.branch1x1", cin, 64, 1),
            conv(f"{name}.branch5x5_1", cin, 48, 1),
            conv(f"{name}.branch5x5_2", 48, 64, 5, pad=(2, 2)),
            conv(f"{name}.branch3x3dbl_1", cin, 64, 1),
            conv(f"{name}.branch3x3dbl_2", 64, 96, 3, pad=(1, 1)),
            conv(f"{name}.branch3x3dbl_3", 96, 96, 3, pad=(1, 1)),
            conv(f"{name}.branch_pool", cin, pool_features, 1)]


def block_b(name, cin):
    return [conv(f"{name}.branch3x3", cin, 384, 3, stride=2),
            conv(f"{name}.branch3x3dbl_1", cin, 64, 1),
            conv(f"{name}.branch3x3dbl_2", 64, 96, 3, pad=(1, 1)),
            conv(f"{name}.branch3x3dbl_3", 96, 96, 3, stride=2)]


def block_c(name, cin, c7):
    r, c = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # a 1×7 row and a 7×1 column kernel with same padding
    return [conv(f"{name}.branch1x1", cin, 192, 1),
            conv(f"{name}.branch7x7_1", cin, c7, 1),
            conv(f"{name}.branch7x7_2", c7, c7, r[0], pad=r[1]),
            conv(f"{name}.branch7x7_3", c7, 192, c[0], pad=c[1]),
            conv(f"{name}.branch7x7dbl_1", cin, c7, 1),
            conv(f"{name}.branch7x7dbl_2", c7, c7, c[0], pad=c[1]),
            conv(f"{name}.branch7x7dbl_3", c7, c7, r[0], pad=r[1]),
            conv(f"{name}.branch7x7dbl_4", c7, c7, c[0], pad=c[1]),
            conv(f"{name}.branch7x7dbl_5", c7, 192, r[0], pad=r[1]),
            conv(f"{name}.branch_pool", cin, 192, 1)]


def block_d(name, cin):
    return [conv(f"{name}.branch3x3_1", cin, 192, 1),
            conv(f"{name}.branch3x3_2", 192, 320, 3, stride=2),
            conv(f"{name}.branch7x7x3_1", cin, 192, 1),
            conv(f"{name}.branch7x7x3_2", 192, 192, (1, 7), pad=(0, 3)),
            conv(f"{name}.branch7x7x3_3", 192, 192, (7, 1), pad=(3, 0)),
            conv(f"{name}.branch7x7x3_4", 192, 192, 3, stride=2)]


def block_e(name, cin):
    return [conv(f"{name}.branch1x1", cin, 320, 1),
            conv(f"{name}.branch3x3_1", cin, 384, 1),
            conv(f"{name}.branch3x3_2a", 384, 384, (1, 3), pad=(0, 1)),
            conv(f"{name}.branch3x3_2b", 384, 384, (3, 1), pad=(1, 0)),
            conv(f"{name}.branch3x3dbl_1", cin, 448, 1),
            conv(f"{name}.branch3x3dbl_2", 448, 384, 3, pad=(1, 1)),
            conv(f"{name}.branch3x3dbl_3a", 384, 384, (1, 3), pad=(0, 1)),
            conv(f"{name}.branch3x3dbl_3b", 384, 384, (3, 1), pad=(1, 0)),
            conv(f"{name}.branch_pool", cin, 192, 1)]


def all_convs():
    return ([conv("Conv2d_1a_3x3", 3, 32, 3, stride=2), conv("Conv2d_2a_3x3", 32, 32, 3),
             conv("Conv2d_2b_3x3", 32, 64, 3, pad=(1, 1)), conv("Conv2d_3b_1x1", 64, 80, 1),
             conv("Conv2d_4a_3x3", 80, 192, 3)]
            + block_a("Mixed_5b", 192, 32) + block_a("Mixed_5c", 256, 64) + block_a("Mixed_5d", 288, 64)
            + block_b("Mixed_6a", 288)
            + block_c("Mixed_6b", 768, 128) + block_c("Mixed_6c", 768, 160) + block_c("Mixed_6d", 768, 160)
            + block_c("Mixed_6e", 768, 192)
            + block_d("Mixed_7a", 768)
            + block_e("Mixed_7b", 1280) + block_e("Mixed_7c", 2048))


BN_LEAVES = ("weight", "bias", "running_mean", "running_var")


def tensor_specs(with_fc=True):
    """[(key, shape)] of the layout in its fixed order: per conv its weight then the four BN tensors."""
    out = []
    for name, cin, cout, (kh, kw), _, _ in all_convs():
        out.append((f"{name}.conv.weight", (cout, cin, kh, kw)))
        out += [(f"{name}.bn.{leaf}", (cout,)) for leaf in BN_LEAVES]
    if with_fc:
        out.append(("fc.weight", (CLASSES, 2048)))
    return out


# ---------------------------------------------------------------------------------------------------
# The weights from the counter-based generator


def random_weights(seed=SEED, with_fc=True):
    """{key: float32 tensor} of the documented formula (module docstring)."""
    check = rng_normals_shaped(seed, 3, (16,))
    assert np.array_equal(check, rng_ref.normals(seed, 3, (16,))), "vectorized generator drifted from rng_ref"
    weights = {}
    for i, (key, shape) in enumerate(tensor_specs(with_fc)):
        n = int(np.prod(shape))
        z = rng_normals_shaped(seed, i, shape)
        if key.endswith("conv.weight"):
            v = z * np.float32(np.sqrt(2.0 / (n // shape[0])))
        elif key == "fc.weight":
            v = z * np.float32(1.0 / np.sqrt(2048.0))
        elif key.endswith("bn.weight"):
            v = np.float32(1) + np.float32(0.1) * z
        elif key.endswith("bn.running_var"):
            v = np.float32(0.75) + np.float32(0.25) * z * z
        else:  # bn.bias, bn.running_mean
            v = np.float32(0.1) * z
        weights[key] = torch.from_numpy(v.astype(np.float32))
    return weights


# ---------------------------------------------------------------------------------------------------
# The forward


class FIDInception:
    """The network over a {key: tensor} table of the layout."""

    def __init__(self, weights):
        self.w = weights
        self.geom = {name: (stride, pad) for name, _, _, _, stride, pad in all_convs()}

    def basic(self, name, x):
        stride, pad = self.geom[name]
        p = lambda leaf: self.w[f"{name}.bn.{leaf}"]
        y = F.conv2d(x, self.w[f"{name}.conv.weight"], None, stride=stride, padding=pad)
        y = F.batch_norm(y, p("running_mean"), p("running_var"), p("weight"), p("bias"), False, 0.0, BN_EPS)
        return F.relu(y)

    @staticmethod
    def avg3(x):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def a(self, n, x):
        c = lambda leaf, t: self.basic(f"{n}.{leaf}", t)
        b5 = c("branch5x5_2", c("branch5x5_1", x))
        b3 = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
        return torch.cat([c("branch1x1", x), b5, b3, c("branch_pool", self.avg3(x))], 1)

    def b(self, n, x):
        c = lambda leaf, t: self.basic(f"{n}.{leaf}", t)
        b3 = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
        return torch.cat([c("branch3x3", x), b3, F.max_pool2d(x, 3, stride=2)], 1)

    def c(self, n, x):
        c = lambda leaf, t: self.basic(f"{n}.{leaf}", t)
        b7 = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x)))
        d = x
        for i in range(1, 6):
            d = c(f"branch7x7dbl_{i}", d)
        return torch.cat([c("branch1x1", x), b7, d, c("branch_pool", self.avg3(x))], 1)

    def d(self, n, x):
        c = lambda leaf, t: self.basic(f"{n}.{leaf}", t)
        b3 = c("branch3x3_2", c("branch3x3_1", x))
        t = x
        for i in range(1, 5):
            t = c(f"branch7x7x3_{i}", t)
        return torch.cat([b3, t, F.max_pool2d(x, 3, stride=2)], 1)

    def e(self, n, x, max_pool):
        c = lambda leaf, t: self.basic(f"{n}.{leaf}", t)
        a = c("branch3x3_1", x)
        b = c("branch3x3dbl_2", c("branch3x3dbl_1", x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if max_pool else self.avg3(x)
        return torch.cat([c("branch1x1", x), c("branch3x3_2a", a), c("branch3x3_2b", a),
                          c("branch3x3dbl_3a", b), c("branch3x3dbl_3b", b), c("branch_pool", pooled)], 1)

    def forward(self, x):
        """x (N, 3, 299, 299) normalized → (pool (N, 2048), spatial (N, 2023), logits (N, 1008) or None)."""
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = self.basic(name, x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.basic("Conv2d_4a_3x3", self.basic("Conv2d_3b_1x1", x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            x = self.a(name, x)
        x = self.b("Mixed_6a", x)
        for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d"):
            x = self.c(name, x)
        # mixed_6/conv of the TF graph: Mixed_6d's 1×1 branch, the first 192 channels of its output
        spatial = x[:, :7].permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        x = self.c("Mixed_6e", x)
        x = self.d("Mixed_7a", x)
        x = self.e("Mixed_7c", self.e("Mixed_7b", x, False), True)
        pool = x.mean(dim=(2, 3))
        logits = pool @ self.w["fc.weight"].t() if "fc.weight" in self.w else None
        return pool, spatial, logits


def preprocess(images_u8):
    """The ADM evaluator's input path: (N, H, W, 3) uint8 → (N, 3, 299, 299) float32 in [−1, 1)."""
    x = images_u8.astype(np.float32).transpose(0, 3, 1, 2)
    x = tf1_resize_bilinear(x, SIDE, SIDE)
    return torch.from_numpy((x - np.float32(128)) * np.float32(1 / 128))


def features(net, images_u8):
    with torch.no_grad():
        return net.forward(preprocess(images_u8))


def main(out_dir):
    torch.set_num_threads(1)
    rs = np.random.default_rng(SEED)
    images64 = rs.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:64, 0:64]
    images64[1] = np.stack([(4 * xx) % 256, (4 * yy) % 256, (2 * (xx + yy)) % 256], -1).astype(np.uint8)
    images299 = rs.integers(0, 256, size=(1, SIDE, SIDE, 3), dtype=np.uint8)
    net = FIDInception(random_weights())
    path = os.path.join(out_dir, "inception.h5")
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["seed"] = SEED
        for tag, images in (("64", images64), ("299", images299)):
            pool, spatial, logits = features(net, images)
            f[f"images{tag}"] = images
            f[f"pool{tag}"] = pool.numpy()
            f[f"spatial{tag}"] = spatial.numpy().astype(np.float32)
            f[f"logits{tag}"] = logits.numpy()
            print(f"{tag}: pool mean {pool.mean():.4g} std {pool.std():.4g}, spatial mean {spatial.mean():.4g}, "
                  f"logits std {logits.std():.4g}")
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden")
