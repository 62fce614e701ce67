"""tools/train_l2c.py: the routed forward's mixing, the training rule's direction, the file it
writes (the published routers' format, read by convert_l2c.py and `ebcache schedule l2c`),
reproducibility and its errors. Runs on the golden tiny DiT (Debian's python3 with torch)."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "reference"))
import diffusion_ref as dr  # noqa: E402
import train_l2c  # noqa: E402

MODEL = os.path.join(ROOT, "tests", "golden", "models", "tiny_sigma.safetensors")
EBCACHE = os.environ.get("EBCACHE_BIN", os.path.join(ROOT, "build", "opt", "ebcache"))


def run(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_l2c.py"), *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def model():
    return train_l2c.load_model(MODEL)


def inputs(model, n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = model.cfg
    x = torch.randn((n, c.in_channels, c.input_size, c.input_size), generator=g)
    return x, torch.full((n,), 400), torch.tensor([1, 5, c.num_classes][:n])


def test_the_plain_forward_is_the_reference_models(model):
    x, t, y = inputs(model)
    out, cache = train_l2c.forward(model, x, t, y)
    assert torch.equal(out, model.forward(x, t, y))
    assert len(cache) == model.cfg.depth


def test_routed_weights_mix_fresh_and_cached_outputs(model):
    x, t, y = inputs(model)
    _, cache = train_l2c.forward(model, x, t, y)
    x2, t2 = x + 0.3 * torch.randn_like(x), torch.full_like(t, 350)
    fresh, _ = train_l2c.forward(model, x2, t2, y)
    D = 2 * model.cfg.depth
    assert torch.equal(train_l2c.forward(model, x2, t2, y, cache=cache, weights=torch.ones(D)), fresh)
    reused = train_l2c.forward(model, x2, t2, y, cache=cache, weights=torch.zeros(D))
    assert (reused - fresh).abs().max() > 1e-3  # the cache is another step's
    # the cache of this very input is its own output, whatever the weights
    _, own = train_l2c.forward(model, x2, t2, y)
    mixed = train_l2c.forward(model, x2, t2, y, cache=own, weights=torch.rand(D))
    assert torch.allclose(mixed, fresh, rtol=0, atol=1e-6)


def train_args(**kw):
    a = dict(respacing="ddim6", iters=30, batch=2, lr=0.05, l1=0.0, seed=3)
    a.update(kw)
    return type("Args", (), a)


def trained_scores(model, **kw):
    routers = train_l2c.train(model, dr.Schedule(kw.get("respacing", "ddim6")), None, train_args(**kw), False)
    g = torch.Generator().manual_seed(kw.get("seed", 3))
    init = [torch.randn(2 * model.cfg.depth, generator=g) for _ in routers]
    return routers, init


def test_the_mse_raises_scores_and_l1_lowers_them(model):
    """Without l1 the squared error only pushes toward computing (w → 1); a large l1 pushes every
    trained router toward reuse. The odd indices (the cache fillers) are never trained."""
    free, init = trained_scores(model, l1=0.0)
    paid, _ = trained_scores(model, l1=10.0)
    S = len(init)
    for i in range(S):
        a, b, p = free[f"{i}.prob"], paid[f"{i}.prob"], init[i]
        if i % 2:
            assert torch.equal(a, p) and torch.equal(b, p), i
        else:
            assert torch.all(a >= p - 1e-6) and torch.any(a > p + 1e-3), (i, a - p)
            assert torch.all(b < p), (i, b - p)
            assert torch.all(b >= -train_l2c.PROB_CLAMP)


def test_a_router_moves_only_when_its_index_is_drawn(model):
    """As with torch >= 2.0's zero_grad (gradients set to None): an iteration that draws another
    index leaves a router as it was, Adam's momentum included (zeroed gradients would keep moving it)."""
    for seed in range(20):
        one, init = trained_scores(model, iters=1, seed=seed, l1=1.0)
        two, _ = trained_scores(model, iters=2, seed=seed, l1=1.0)
        moved = [i for i in range(len(init)) if not torch.equal(one[f"{i}.prob"], init[i])]
        assert len(moved) == 1, moved
        later = [i for i in range(len(init)) if not torch.equal(two[f"{i}.prob"], one[f"{i}.prob"])]
        if later != moved:  # the second iteration drew another index
            assert torch.equal(two[f"{moved[0]}.prob"], one[f"{moved[0]}.prob"])
            assert len(later) == 1
            return
    pytest.fail("no seed in 0..19 drew two different indices")


def test_the_file_converts_and_replays(tmp_path):
    router, scores, table = tmp_path / "r.pt", tmp_path / "s.h5", tmp_path / "t.schedule"
    r = run(MODEL, "--respacing", "ddim6", "--output", str(router), "--scores", str(scores), "--data", "noise",
            "--iters", "12", "--batch", "2", "--lr", "0.05")
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(router, weights_only=True)
    assert sorted(ckpt["routers"]) == sorted(f"{i}.prob" for i in range(6))
    with h5py.File(scores) as f:
        s = f["l2c/scores"][()]
        assert s.shape == (6, 2, 2) and np.all((s > 0) & (s < 1))
        assert list(f["l2c/t"][()]) == [int(t) for t in dr.Schedule("ddim6").timestep[::-1]]
    # the same seed gives the same bits
    again = tmp_path / "again.pt"
    assert run(MODEL, "--respacing", "ddim6", "--output", str(again), "--data", "noise", "--iters", "12",
               "--batch", "2", "--lr", "0.05").returncode == 0
    assert again.read_bytes() == router.read_bytes()
    if os.path.exists(EBCACHE):
        r = subprocess.run([EBCACHE, "schedule", "l2c", "--router", str(scores), "--threshold", "0.5",
                            "--respacing", "ddim6", "--model", MODEL, "--output", str(table)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "## method: l2c" in table.read_text()


@pytest.mark.parametrize("args, message", [
    (["missing.safetensors", "--respacing", "ddim6"], "missing.safetensors"),
    ([MODEL, "--respacing", "ddim6", "--iters", "0"], "--iters 0"),
    ([MODEL, "--respacing", "ddim6"], "Fashion-MNIST"),  # a 4-channel model does not fit the data
    ([MODEL, "--respacing", "1"], "at least 2"),
])
def test_bad_input_exits_2_naming_it(tmp_path, args, message):
    out = tmp_path / "r.pt"
    r = run(*args, "--output", str(out))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert not out.exists()
