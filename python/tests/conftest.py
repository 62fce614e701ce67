"""Shared fixtures: the repository paths, the ebcache binary, the shipped model, sampling loops.

The package is imported from this source tree (python/), the PyTorch reference from reference/. Torch
runs on one thread: the machines are shared and threads only contend at these sizes.
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path[:0] = [os.path.join(REPO, "python"), HERE, os.path.join(REPO, "reference")]
SHIPPED = os.path.join(REPO, "data", "dit_fmnist.safetensors")
MODELS = os.path.join(REPO, "tests", "golden", "models")

try:
    import torch
    torch.set_num_threads(1)
except ImportError:  # the torch-free tests still run
    torch = None


def ebcache_bin():
    """EBCACHE_BIN (make test sets it: a missing binary is then a failure), else build/opt/ebcache."""
    path = os.environ.get("EBCACHE_BIN")
    if path:
        return path if os.path.isabs(path) else os.path.join(REPO, path)
    path = os.path.join(REPO, "build", "opt", "ebcache")
    if not os.path.exists(path):
        pytest.skip("no build/opt/ebcache: make -j2 build/opt/ebcache (or set EBCACHE_BIN)")
    return path


def run_ebcache(*args, cwd=None, expect=0):
    """Runs the CLI on 1 thread; returns the CompletedProcess, failing with its stderr on another status."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([ebcache_bin(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)
    assert p.returncode == expect, f"ebcache {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr}"
    return p


@pytest.fixture(scope="session")
def shipped():
    """The shipped model as the official DiT class (tests/official_dit.py)."""
    pytest.importorskip("torch")
    import official_dit
    return official_dit.load(SHIPPED)


def ddpm_loop(model_fn, spacing, labels, seed):
    """The official DDPM loop (reference/diffusion_ref.py) with ebcache's noise: a callable returning samples."""
    import diffusion_ref as dr
    s = dr.Schedule(spacing)
    x_T = dr.initial_noise(seed, (len(labels), 1, 28, 28))
    return s, lambda: dr.sample_loop(model_fn, s, x_T, "ddpm", dr.LEARNED_RANGE, seed)


def cfg_fn(model, labels, scale):
    """model_fn(x, t) of the official sample.py: forward_with_cfg on [x, x] with [y, null], the first half."""
    y = torch.tensor(labels)
    null = torch.full_like(y, model.y_embedder.embedding_table.num_embeddings - 1)
    N = len(labels)
    if scale == 1:
        return lambda x, t: model.forward(x, t, y)
    return lambda x, t: model.forward_with_cfg(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]), scale)[:N]


def rel(a, b):
    """max |a − b| / max |b| over finite entries."""
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(b)
    return float(np.abs(a[ok] - b[ok]).max() / np.abs(b[ok]).max()) if ok.any() else 0.0
