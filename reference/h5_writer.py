"""The HDF5 writer of the golden files: datasets in the dtypes the C tests read,
no timestamps (byte-identical reruns), written under a temporary name and
renamed on success. Imported by every script that writes an .h5 golden.
"""
import os

import h5py
import numpy as np
import torch


class H5:
    """An HDF5 file written under a temporary name and renamed on success."""

    def __init__(self, path):
        self.path, self.tmp = path, f"{path}.tmp{os.getpid()}"

    def __enter__(self):
        self.f = h5py.File(self.tmp, "w", track_order=False)
        return self

    def __exit__(self, kind, *_):
        self.f.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            os.remove(self.tmp)

    def put(self, name, value, compress=False):
        """Tensors and float arrays as float32, signed integers as int32; float64 and uint64 kept."""
        a = value.detach().numpy() if torch.is_tensor(value) else np.asarray(value)
        if a.dtype == np.uint64:
            a = a.astype("<u8")
        elif a.dtype.kind == "i":
            a = a.astype("<i4")
        elif a.dtype != np.float64:
            a = a.astype("<f4")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.path}: dataset '{name}' holds non-finite values")
        opts = dict(compression="gzip", compression_opts=9, shuffle=True, chunks=(a.shape[0], min(a.shape[1], 64))) \
            if compress else {}
        self.f.create_dataset(name, data=a, track_times=False, **opts)

    def attrs(self, name, **kw):
        obj = self.f[name] if name != "/" else self.f
        for k, v in kw.items():
            obj.attrs[k] = v
