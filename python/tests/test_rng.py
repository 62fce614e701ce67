"""The numpy noise generator against the golden streams (tests/golden/rng.h5, from reference/rng_ref.py)."""
import os

import h5py
import numpy as np

from conftest import REPO
from ebcache import rng


def test_streams_match_the_goldens():
    with h5py.File(os.path.join(REPO, "tests", "golden", "rng.h5")) as f:
        for name in ("s0_stream0", "s42_stream_3_5", "s7_stream0_big"):
            d = f[name]
            seed, stream = int(d.attrs["seed"]), int(d.attrs["stream"])
            assert int(rng.key(seed, stream)) == int(d.attrs["key"])
            np.testing.assert_array_equal(rng.normals(seed, stream, d.shape), d[:])


def test_stream_numbering():
    assert rng.stream_xT(3) == 3 << 20
    assert rng.stream_step(3, 5) == (3 << 20) | 6
    assert rng.stream_q(3, 5) == (3 << 20) | (1 << 19) | 5
    assert rng.batch(1, [0, 1], (2, 3)).shape == (2, 2, 3)
