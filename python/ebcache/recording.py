"""Recordings (docs/recording.md): the HDF5 files `ebcache record` writes and `ebcache fit` / `search` read.

    rec = ebcache.read_recording("rec.h5")
    rec["snr/trajectory"]          # (S) float64, row k = sampling step k
    rec.attrs["cfg_scale"]         # root attributes, names as docs/recording.md
    rec.description("drift/attn")  # the dataset's formula
"""
import h5py
import numpy as np

from ebcache.files import atomic_path


def _plain(v):
    """An HDF5 attribute value as a Python value: bytes → str, 0-d arrays → scalars."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


class Recording:
    """The datasets of a recording by their names without the leading '/' ('eps/norm', 'reference/drift/attn'),
    as numpy arrays; the root attributes in `attrs`; each dataset's `description` attribute."""

    def __init__(self, arrays, attrs, descriptions=None, path=None):
        self.arrays = dict(arrays)
        self.attrs = dict(attrs)
        self.descriptions = dict(descriptions or {})
        self.path = path

    def __getitem__(self, name):
        return self.arrays[name.lstrip("/")]

    def __contains__(self, name):
        return name.lstrip("/") in self.arrays

    def keys(self):
        return self.arrays.keys()

    def description(self, name):
        return self.descriptions.get(name.lstrip("/"), "")

    @property
    def steps(self):
        return len(self.arrays["steps/t"])

    def write(self, path):
        """Writes the recording as `ebcache record` lays it out (float64 statistics, float32 samples,
        int32 labels, attributes int64 / float64 / variable-length strings), under a temporary name
        renamed when complete."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for name, value in self.attrs.items():
                f.attrs[name] = _attr_value(value)
            for name, a in sorted(self.arrays.items()):
                d = f.create_dataset(name, data=a, track_times=False)
                if name in self.descriptions:
                    d.attrs["description"] = _attr_value(self.descriptions[name])


def _attr_value(v):
    if isinstance(v, str):
        return np.array(v, dtype=h5py.string_dtype())
    if isinstance(v, bool) or isinstance(v, (int, np.integer)):
        return np.int64(v)
    if isinstance(v, (float, np.floating)):
        return np.float64(v)
    return v


def read_recording(path):
    """Every dataset and root attribute of the recording at `path` (docs/recording.md)."""
    arrays, descriptions = {}, {}
    with h5py.File(path, "r") as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                arrays[name] = obj[()]
                if "description" in obj.attrs:
                    descriptions[name] = _plain(obj.attrs["description"])

        f.visititems(visit)
    return Recording(arrays, attrs, descriptions, path=str(path))
