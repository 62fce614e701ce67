"""Minimal safetensors reader and writer (no dependency beyond torch).

Layout: an 8-byte little-endian header length n, n bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
padded with spaces to a multiple of 8, then the tensor bytes (little endian,
row-major) in the order of the sorted names. Offsets count from the end of
the header.
"""
import json
import os
import struct

import numpy as np
import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
NAMES = {v: k for k, v in DTYPES.items()}
# numpy has no bfloat16: bytes go through same-width integers, little endian on disk.
INT_VIEW = {torch.float32: (torch.int32, "<i4"), torch.float16: (torch.int16, "<i2"), torch.bfloat16: (torch.int16, "<i2")}


class SafetensorsError(ValueError):
    """A malformed or unsupported file; the message names the file and key."""


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    int_dtype, disk = INT_VIEW[t.dtype]
    return t.view(int_dtype).numpy().astype(disk).tobytes()


def save(path, tensors, metadata=None):
    """Writes {name: tensor (F32/F16/BF16)} and optional {str: str} metadata to
    `path` atomically (a temporary file in the same folder, then a rename)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in NAMES:
            raise SafetensorsError(f"{path}: tensor '{name}' has unsupported dtype {t.dtype}")
        data = _tensor_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for data in chunks:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path):
    """Returns ({name: tensor}, {str: str} metadata). Raises SafetensorsError on a
    malformed file (bad header, unknown dtype, offsets outside the data)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise SafetensorsError(f"{path}: header length {n} exceeds the file size {len(raw)}")
    try:
        header = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        dtype = DTYPES.get(info.get("dtype")) if isinstance(info, dict) else None
        if dtype is None:
            raise SafetensorsError(f"{path}: tensor '{name}' has unsupported dtype {info!r}")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not _int_list(shape) or not _int_list(offsets) or len(offsets) != 2:
            raise SafetensorsError(f"{path}: tensor '{name}' has a malformed shape or data_offsets")
        count = int(np.prod(shape, dtype=np.int64))
        begin, end = offsets
        if not begin <= end <= len(data) or end - begin != count * torch.finfo(dtype).bits // 8:
            raise SafetensorsError(f"{path}: tensor '{name}' data_offsets {offsets} do not fit shape {shape}")
        int_dtype, disk = INT_VIEW[dtype]
        ints = np.frombuffer(data, dtype=disk, count=count, offset=begin).astype(disk[1:])
        tensors[name] = torch.from_numpy(ints).view(dtype).reshape(shape)
    return tensors, metadata


def _int_list(v):
    return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
