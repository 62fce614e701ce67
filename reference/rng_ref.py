"""The ebcache noise generator (docs/rng.md), in plain Python integers.

A counter-based generator: element j of the stream (seed, stream) is a pure
function of (seed, stream, j), so batch splits and thread counts never change
the bits. Python's math module calls the C library's log/cos/sqrt, the same
functions the C runtime uses, so the float64 value before rounding matches.
"""
import math

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
SEED_SALT = 0x6A09E667F3BCC909
TWO_POW_M53 = 2.0 ** -53


def mix64(z):
    """The splitmix64 finalizer on an integer in [0, 2^64)."""
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z


def key(seed, stream):
    """The key of stream `stream` under `seed` (both taken mod 2^64)."""
    return mix64((mix64((seed ^ SEED_SALT) & MASK64) + stream * GOLDEN_GAMMA) & MASK64)


def u64(k, c):
    """Counter c of key k: a uniform 64-bit integer."""
    return mix64((k + (c + 1) * GOLDEN_GAMMA) & MASK64)


def normal(k, j):
    """Normal j of key k: Box-Muller (cosine branch) in float64, before the
    rounding to float32. u1 lies in (0, 1], so the log is finite."""
    a = u64(k, 2 * j)
    b = u64(k, 2 * j + 1)
    u1 = ((a >> 11) + 1) * TWO_POW_M53
    u2 = (b >> 11) * TWO_POW_M53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def normals(seed, stream, shape):
    """A float32 array of `shape` holding normal(key(seed, stream), j) in row-major order."""
    k = key(seed, stream)
    n = int(np.prod(shape))
    return np.array([normal(k, j) for j in range(n)], dtype=np.float64).astype(np.float32).reshape(shape)


def stream_xT(n):
    """Stream of x_T for sample n."""
    return n << 20


def stream_step(n, i):
    """Stream of the noise the sampler adds to sample n at respaced index i."""
    return (n << 20) | (i + 1)


def batch_normals(seed, streams, shape):
    """(len(streams), *shape) float32: one row per stream."""
    return np.stack([normals(seed, s, shape) for s in streams])
