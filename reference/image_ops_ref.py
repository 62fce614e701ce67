"""Goldens of the image operations (runtime/backend.h, image block) → tests/golden/image_ops.h5.

torch.nn.functional on random float32 inputs for conv2d, group_norm (+ SiLU), nearest ×2
upsampling, avg_pool2d (count_include_pad=False) and max_pool2d; the TF1 legacy bilinear resize
written out in numpy (TF has no PyTorch counterpart). Deterministic: fixed seeds, one thread.

Layout: conv/<case>/{x, w, b (absent without bias), out, geom}; geom (int) is
[B, IC, H, W, OC, kh, kw, sh, sw, ph, pw, upsample2]. group_norm/<case>/{x, gamma, beta, out, geom}
with geom [B, C, H, W, G, silu] and attribute eps. upsample/{x, out, geom} with geom [B, C, H, W]. pool/<case>/{x, out, geom}
with geom [B, C, H, W, k, s, p, is_max]. resize/<case>/{x, out, geom} with geom [B, C, H, W, OH, OW].

    /usr/bin/python3 reference/image_ops_ref.py tests/golden
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

CONV_CASES = [
    # name, B, IC, H, W, OC, kh, kw, sh, sw, ph, pw, upsample2, bias
    ("3x3_same", 2, 5, 9, 9, 7, 3, 3, 1, 1, 1, 1, 0, True),
    ("3x3_s2_valid_odd", 1, 3, 11, 13, 4, 3, 3, 2, 2, 0, 0, 0, False),
    ("3x3_s2_pad1", 2, 4, 10, 7, 3, 3, 3, 2, 2, 1, 1, 0, True),
    ("1x7_pad03", 2, 6, 8, 9, 5, 1, 7, 1, 1, 0, 3, 0, False),
    ("7x1_pad30", 1, 6, 9, 8, 5, 7, 1, 1, 1, 3, 0, 0, True),
    ("1x1", 2, 16, 5, 6, 8, 1, 1, 1, 1, 0, 0, 0, True),
    ("1x1_s2", 1, 8, 7, 7, 4, 1, 1, 2, 2, 0, 0, 0, False),
    ("3x3_valid", 1, 4, 7, 6, 3, 3, 3, 1, 1, 0, 0, 0, True),
    ("5x5_pad2", 1, 3, 8, 8, 6, 5, 5, 1, 1, 2, 2, 0, True),
    ("up2_3x3", 2, 4, 5, 6, 3, 3, 3, 1, 1, 1, 1, 1, True),
    ("wide_3x3", 1, 96, 12, 12, 16, 3, 3, 1, 1, 1, 1, 0, True),
    # 3×3 same with ≥ 16 channels each side takes the CPU's Winograd path: odd sizes, the fused upsample
    ("wino_odd", 1, 32, 11, 9, 24, 3, 3, 1, 1, 1, 1, 0, True),
    ("wino_up2", 2, 16, 5, 6, 16, 3, 3, 1, 1, 1, 1, 1, False),
]

GN_CASES = [
    # name, B, C, H, W, G, silu, eps
    ("silu", 2, 12, 5, 7, 4, 1, 1e-6),
    ("plain", 1, 8, 6, 6, 8, 0, 1e-5),
    ("one_group", 2, 6, 3, 4, 1, 1, 1e-6),
]

POOL_CASES = [
    # name, B, C, H, W, k, s, p, is_max
    ("avg3_s1_p1", 2, 3, 7, 9, 3, 1, 1, 0),
    ("avg3_s2", 1, 2, 9, 8, 3, 2, 0, 0),
    ("avg5_s3_p2", 1, 2, 10, 11, 5, 3, 2, 0),
    ("max3_s2", 2, 3, 9, 11, 3, 2, 0, 1),
    ("max3_s1_p1", 1, 2, 6, 7, 3, 1, 1, 1),
]

RESIZE_CASES = [
    # name, B, C, H, W, OH, OW
    ("up", 1, 2, 5, 7, 11, 13),
    ("down", 2, 1, 13, 11, 5, 4),
    ("dit_ratio", 1, 1, 64, 64, 75, 75),  # 256 → 299 scaled down: in/out is not a short binary fraction
    ("identity", 1, 2, 6, 6, 6, 6),
]


def tf1_resize_bilinear(x, oh, ow):
    """tf.compat.v1.image.resize_bilinear(align_corners=False, half_pixel_centers=False) on NCHW float32:
    the scale in/out in float32, source = dst·scale, lo = floor, hi = min(lo + 1, in − 1), float32 lerps."""
    n, c, h, w = x.shape
    if (h, w) == (oh, ow):
        return x.copy()

    def axis(size_in, size_out):
        scale = np.float32(size_in) / np.float32(size_out)
        src = np.arange(size_out, dtype=np.float32) * scale
        lo = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
        hi = np.minimum(lo + 1, size_in - 1)
        return lo, hi, (src - lo.astype(np.float32)).astype(np.float32)

    ylo, yhi, ly = axis(h, oh)
    xlo, xhi, lx = axis(w, ow)
    tl, tr = x[:, :, ylo][:, :, :, xlo], x[:, :, ylo][:, :, :, xhi]
    bl, br = x[:, :, yhi][:, :, :, xlo], x[:, :, yhi][:, :, :, xhi]
    top = tl + (tr - tl) * lx
    bottom = bl + (br - bl) * lx
    return (top + (bottom - top) * ly[:, None]).astype(np.float32)


def main(out_dir):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(20261207)
    randn = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float32)
    path = os.path.join(out_dir, "image_ops.h5")
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for name, B, IC, H, W, OC, kh, kw, sh, sw, ph, pw, up, has_bias in CONV_CASES:
            x, w = randn(B, IC, H, W), randn(OC, IC, kh, kw) / np.sqrt(IC * kh * kw)
            b = randn(OC) if has_bias else None
            xin = F.interpolate(x, scale_factor=2.0, mode="nearest") if up else x
            out = F.conv2d(xin, w, b, stride=(sh, sw), padding=(ph, pw))
            grp = f.create_group(f"conv/{name}")
            grp["x"], grp["w"], grp["out"] = x.numpy(), w.numpy(), out.numpy()
            if b is not None:
                grp["b"] = b.numpy()
            grp["geom"] = np.array([B, IC, H, W, OC, kh, kw, sh, sw, ph, pw, up], dtype=np.int32)
        for name, B, C, H, W, G, silu, eps in GN_CASES:
            x, gamma, beta = 2.0 * randn(B, C, H, W) + 0.5, 1.0 + 0.3 * randn(C), 0.3 * randn(C)
            out = F.group_norm(x, G, gamma, beta, eps)
            out = F.silu(out) if silu else out
            grp = f.create_group(f"group_norm/{name}")
            grp["x"], grp["gamma"], grp["beta"], grp["out"] = x.numpy(), gamma.numpy(), beta.numpy(), out.numpy()
            grp["geom"] = np.array([B, C, H, W, G, silu], dtype=np.int32)
            grp.attrs["eps"] = eps
        x = randn(2, 3, 4, 5)
        grp = f.create_group("upsample")
        grp["x"], grp["out"] = x.numpy(), F.interpolate(x, scale_factor=2.0, mode="nearest").numpy()
        grp["geom"] = np.array(x.shape, dtype=np.int32)
        for name, B, C, H, W, k, s, p, is_max in POOL_CASES:
            x = randn(B, C, H, W)
            out = (F.max_pool2d(x, k, s, p) if is_max else F.avg_pool2d(x, k, s, p, count_include_pad=False))
            grp = f.create_group(f"pool/{name}")
            grp["x"], grp["out"] = x.numpy(), out.numpy()
            grp["geom"] = np.array([B, C, H, W, k, s, p, is_max], dtype=np.int32)
        rng = np.random.default_rng(7)
        for name, B, C, H, W, OH, OW in RESIZE_CASES:
            x = rng.uniform(0, 255, size=(B, C, H, W)).astype(np.float32)
            grp = f.create_group(f"resize/{name}")
            grp["x"], grp["out"] = x, tf1_resize_bilinear(x, OH, OW)
            grp["geom"] = np.array([B, C, H, W, OH, OW], dtype=np.int32)
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden")
