"""ebcache's counter-based normal noise (docs/rng.md), vectorised in numpy.

Element j of stream (seed, stream) is a pure function of the three, so a PyTorch loop fed from here sees
the noise `ebcache sample` and `ebcache record` draw. The float64 log/cos are numpy's, which may differ
from the C library's by an ulp before the rounding to float32.
"""
import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SALT = np.uint64(0x6A09E667F3BCC909)


def _mix64(z):
    """splitmix64's finalizer on a uint64 array (arithmetic mod 2^64)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def key(seed, stream):
    """The key of `stream` under `seed`."""
    with np.errstate(over="ignore"):
        s = _mix64(np.array([seed], dtype=np.uint64) ^ _SALT)
        return _mix64(s + np.array([stream], dtype=np.uint64) * _GAMMA)[0]


def normals(seed, stream, shape):
    """float32 array of `shape`: normal j of the stream in row-major order (Box-Muller, cosine branch)."""
    n = int(np.prod(shape))
    k = key(seed, stream)
    c = np.arange(2 * n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        u = _mix64(k + (c + np.uint64(1)) * _GAMMA)
    a, b = u[0::2], u[1::2]
    u1 = ((a >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    u2 = (b >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32).reshape(shape)


def stream_xT(n):
    """x_T of sample n."""
    return n << 20


def stream_step(n, i):
    """The noise the sampler adds to sample n at respaced index i (S-1 … 1)."""
    return (n << 20) | (i + 1)


def stream_q(n, i):
    """The q(x_t | x0) noise of sample n at respaced index i (`/eps/norm_q`)."""
    return (n << 20) | (1 << 19) | i


def batch(seed, streams, shape):
    """(len(streams), *shape) float32, one stream per row."""
    return np.stack([normals(seed, s, shape) for s in streams])
