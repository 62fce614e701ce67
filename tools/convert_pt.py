#!/usr/bin/python3
"""Converts an official DiT checkpoint (.pt) to the .safetensors file ebcache loads.

usage: convert_pt.py IN.pt OUT.safetensors [--key ema|model] [--dtype f32|f16|bf16]
                     [--heads N] [--input-size N] [--unsafe-pickle]

IN is a plain state_dict (DiT-XL-2-256x256.pt) or a train.py checkpoint
{"model", "ema", "opt", "args"}; --key picks the entry (default: "ema" when
present, as the official sample.py does). The architecture is inferred from
the tensor shapes and written as __metadata__ strings; num_heads comes from
the DiT table (1152/1024 -> 16, 768 -> 12, 384 -> 6) unless --heads is given,
input_size from pos_embed unless --input-size is given. The output is written
to a temporary file and renamed. Exit 2 on bad input, 1 on a failure to write.
"""
import argparse
import os
import pickle
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402
from dit_ref import infer_config, pos_embed_2d  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# A stored pos_embed must be the fixed sin-cos table; BF16 rounding stays far below this.
POS_EMBED_TOL = 1e-2


class InputError(Exception):
    """Bad input: the message names the file and key; exit status 2."""


def load_checkpoint(path, unsafe_pickle):
    """The object in a .pt file. Only tensors and containers unless `unsafe_pickle`
    (train.py checkpoints also pickle their argparse Namespace)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except pickle.UnpicklingError as e:
        reason = str(e).rsplit("error: ", 1)[-1]  # torch's weights_only message ends with the cause
        if not unsafe_pickle and "Unsupported class" in reason:
            raise InputError(f"{path}: holds objects other than tensors ({reason}); "
                             "rerun with --unsafe-pickle if you trust the file") from None
        raise InputError(f"{path}: not a PyTorch checkpoint ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a PyTorch checkpoint ({e})") from None


def select_state_dict(path, ckpt, key):
    """The {name: tensor} state_dict inside a checkpoint."""
    if not isinstance(ckpt, dict):
        raise InputError(f"{path}: holds a {type(ckpt).__name__}, not a state_dict")
    if key is None and "ema" in ckpt and not torch.is_tensor(ckpt["ema"]):
        key = "ema"
    if key is not None:
        if key not in ckpt:
            raise InputError(f"{path}: no entry '{key}' (entries: {', '.join(map(str, ckpt))})")
        ckpt = ckpt[key]
        if not isinstance(ckpt, dict):
            raise InputError(f"{path}: entry '{key}' is a {type(ckpt).__name__}, not a state_dict")
    for name, value in ckpt.items():
        if not torch.is_tensor(value):
            raise InputError(f"{path}: key '{name}' is a {type(value).__name__}, not a tensor "
                             "(a train.py checkpoint needs --key ema or --key model)")
        if not value.is_floating_point():
            raise InputError(f"{path}: key '{name}' has dtype {value.dtype}, expected floating point")
    return ckpt


def convert(path, sd, dtype, heads, input_size):
    """({name: tensor in dtype}, metadata) for an official state_dict; raises InputError."""
    try:
        cfg = infer_config({k: tuple(v.shape) for k, v in sd.items()}, heads, input_size)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None
    for name, value in sd.items():
        bad = ~torch.isfinite(value)
        if bad.any():
            index = tuple(int(i) for i in bad.nonzero()[0])
            raise InputError(f"{path}: key '{name}' holds a non-finite value at index {index}")
    pos = torch.from_numpy(pos_embed_2d(cfg.hidden_size, cfg.grid)).unsqueeze(0)
    if "pos_embed" in sd:
        err = (sd["pos_embed"].float() - pos).abs().max().item()
        if err > POS_EMBED_TOL:
            raise InputError(f"{path}: key 'pos_embed' differs from the fixed sin-cos table by {err:.3g} "
                             f"(input size {cfg.input_size} wrong?)")
    out = {k: v.to(dtype).contiguous() for k, v in sd.items()}
    out.setdefault("pos_embed", pos.to(dtype))
    for name, value in out.items():
        if not torch.isfinite(value).all():
            raise InputError(f"{path}: key '{name}' overflows {dtype}")
    return out, cfg.metadata()


def main(argv):
    ap = argparse.ArgumentParser(description="Convert an official DiT .pt checkpoint to .safetensors.")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--key", help="checkpoint entry holding the state_dict (ema, model)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--heads", type=int, help="attention heads (needed when the hidden size is not in the DiT table)")
    ap.add_argument("--input-size", type=int, help="latent side (needed when there is no pos_embed)")
    ap.add_argument("--unsafe-pickle", action="store_true", help="allow arbitrary pickled objects (trusted files only)")
    args = ap.parse_args(argv)
    for flag, value in (("--heads", args.heads), ("--input-size", args.input_size)):
        if value is not None and value <= 0:
            print(f"convert_pt: {flag} must be positive, got {value}", file=sys.stderr)
            return 2
    try:
        sd = select_state_dict(args.input, load_checkpoint(args.input, args.unsafe_pickle), args.key)
        tensors, metadata = convert(args.input, sd, DTYPES[args.dtype], args.heads, args.input_size)
    except InputError as e:
        print(f"convert_pt: {e}", file=sys.stderr)
        return 2
    try:
        st_io.save(args.output, tensors, metadata)
    except OSError as e:
        print(f"convert_pt: {args.output}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 1
    print(f"convert_pt: {args.output}: {len(tensors)} tensors, {args.dtype}, "
          + " ".join(f"{k}={v}" for k, v in metadata.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
