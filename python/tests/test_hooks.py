"""apply_schedule: the official DiT under a schedule samples what `ebcache sample --schedule` samples."""
import os

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ebcache  # noqa: E402
import ebcache.torch as et  # noqa: E402
import official_dit  # noqa: E402
from conftest import MODELS, SHIPPED, cfg_fn, ddpm_loop, rel, run_ebcache  # noqa: E402
from ebcache import ScheduleError  # noqa: E402
from make_cache_goldens import EBCACHE_ROWS, MIXED_ROWS, table_text  # noqa: E402

LABELS, SEED, SPACING = [3, 7], 4, "10"
TABLES = {
    "fora": ["fora", "--interval", "2"],
    "delta-dit": ["delta-dit", "--interval", "2", "--blocks", "2"],
    "taylorseer": ["taylorseer", "--interval", "3", "--order", "2"],
}


def c_samples(tmp_path, table, cfg):
    out = tmp_path / "c.h5"
    extra = ["--schedule", table] if table else []
    run_ebcache("sample", "--model", SHIPPED, "--steps", SPACING, "--labels", ",".join(map(str, LABELS)),
                "--seed", SEED, "--cfg-scale", cfg, "--threads", "1", *extra, "--output", out)
    with h5py.File(out) as f:
        return f["samples"][:]


def torch_samples(model, table, cfg):
    _, loop = ddpm_loop(cfg_fn(model, LABELS, cfg), SPACING, LABELS, SEED)
    with torch.no_grad():
        if table is None:
            return loop().numpy()
        with et.apply_schedule(model, table) as hooks:
            out = loop().numpy()
        assert hooks.step == 10
        return out


@pytest.mark.parametrize("name", sorted(TABLES) + ["eb-cache", "mixed"])
def test_samples_match_ebcache_sample(shipped, tmp_path, name):
    table = tmp_path / f"{name}.schedule"
    if name in TABLES:
        run_ebcache("schedule", *TABLES[name], "--steps", SPACING, "--model", SHIPPED, "--output", table)
    else:  # every action, overrides per block, ε scales ≠ 1 (reference/make_cache_goldens.py's rows)
        rows = EBCACHE_ROWS if name == "eb-cache" else MIXED_ROWS
        ebcache.Schedule.parse(table_text(SPACING, rows, method=name)).write(table)
    cfg = 1.5 if name != "eb-cache" else 1.0  # eb-cache: the ε scale on forward's own output
    got, want = torch_samples(shipped, table, cfg), c_samples(tmp_path, table, cfg)
    assert rel(got, want) <= 1e-5
    # and the schedule changed the samples: the comparison can fail
    assert rel(torch_samples(shipped, None, cfg), want) > 1e-4


@pytest.mark.parametrize("args", [["teacache", "--threshold", "0.6"], ["fbcache", "--threshold", "0.3", "--blocks", "2"]],
                         ids=["teacache", "fbcache"])
def test_policies_match_ebcache_sample(shipped, tmp_path, args):
    """Dynamic policies decide each step as the engine does: the same steps served, the same samples."""
    table, out = tmp_path / "policy.schedule", tmp_path / "c.h5"
    run_ebcache("schedule", *args, "--steps", "25", "--model", SHIPPED, "--output", table)
    run_ebcache("sample", "--model", SHIPPED, "--steps", "25", "--labels", "3,7", "--seed", SEED, "--threads", "1",
                "--schedule", table, "--output", out)
    _, loop = ddpm_loop(cfg_fn(shipped, LABELS, 1.5), "25", LABELS, SEED)
    with torch.no_grad(), et.apply_schedule(shipped, table) as hooks:
        got = loop().numpy()
    with h5py.File(out) as f:
        assert sum(hooks.skipped) == f.attrs["steps_skipped"] >= 10
        assert rel(got, f["samples"][:]) <= 1e-5


def test_uncached_matches_and_hooks_are_removed(shipped, tmp_path):
    before = torch_samples(shipped, None, 1.5)
    assert rel(before, c_samples(tmp_path, None, 1.5)) <= 1e-5
    table = tmp_path / "fora.schedule"
    run_ebcache("schedule", "fora", "--interval", "2", "--steps", SPACING, "--model", SHIPPED, "--output", table)
    torch_samples(shipped, table, 1.5)
    for m in [shipped, *shipped.blocks, *(b.attn for b in shipped.blocks), *(b.mlp for b in shipped.blocks)]:
        assert "forward" not in vars(m) and "forward_with_cfg" not in vars(m)
    np.testing.assert_array_equal(torch_samples(shipped, None, 1.5), before)


def test_hooks_match_cache_ref_on_a_tiny_model():
    """The same run against reference/cache_ref.py's independent implementation, on random weights."""
    import cache_ref
    import diffusion_ref as dr
    import st_io
    path = os.path.join(MODELS, "tiny_nosigma.safetensors")
    model = official_dit.load(path, heads=3)
    text = table_text("10", MIXED_ROWS, method="mixed")
    ref = cache_ref.CachedDiT(model.cfg, st_io.load(path)[0], cache_ref.Table.parse(text))
    x = torch.randn(2, 2, 12, 12, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 4])
    s = dr.Schedule("10")
    with torch.no_grad(), et.apply_schedule(model, text):
        for k in range(10):
            t = torch.full((2,), int(s.timestep[9 - k]), dtype=torch.long)
            got = model(x, t, y)
            want = cache_ref.scale_eps(ref.forward(x, t, y), ref.scale[k], 2)
            assert rel(got, want) <= 1e-6, k


def test_errors(shipped, tmp_path):
    table = tmp_path / "fora.schedule"
    run_ebcache("schedule", "fora", "--interval", "2", "--steps", "3", "--model", SHIPPED, "--output", table)
    x, y = torch.zeros(1, 1, 28, 28), torch.tensor([0])
    with torch.no_grad():
        with et.apply_schedule(shipped, table):
            with pytest.raises(ScheduleError, match="step 0: the model is called at t = 5, the schedule's row says t = 999"):
                shipped(x, torch.tensor([5]), y)
        with et.apply_schedule(shipped, table):
            for t in (999, 500, 0):
                shipped(x, torch.tensor([t]), y)
            with pytest.raises(RuntimeError, match="model call 4: the schedule has 3 steps"):
                shipped(x, torch.tensor([0]), y)
    bad = "# ebcache schedule v1\n## steps: 2\n0 999 * R C 1\n1 0 * C C 1\n"
    with pytest.raises(ScheduleError, match="step 0: block 0 attn R before any compute"):
        et.apply_schedule(shipped, bad)
    skip = "# ebcache schedule v1\n## steps: 2\n0 999 * C C 1\n1 0 * C C 1\n1 0 2 S C 1\n"
    with pytest.raises(ScheduleError, match="S needs both columns"):
        et.apply_schedule(shipped, skip)
    policy = "# ebcache schedule v1\n## steps: 1\n## policy: teacache threshold=0.1\n0 999 * R C 1\n"
    with pytest.raises(ScheduleError, match="teacache: with a policy every row must compute"):
        et.apply_schedule(shipped, policy)
    with pytest.raises(TypeError, match="neither the official DiT"):
        et.apply_schedule(torch.nn.Linear(2, 2), table)


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch.compile is PyTorch 2.x")
def test_compiled_models_are_refused(shipped, tmp_path):
    """A compiled model (or block) would recompile at every step (docs/python.md, PyTorch versions)."""
    table = tmp_path / "fora.schedule"
    run_ebcache("schedule", "fora", "--interval", "2", "--steps", "3", "--model", SHIPPED, "--output", table)
    with pytest.raises(TypeError, match="torch.compile module"):
        et.apply_schedule(torch.compile(shipped), table)
    saved = shipped.blocks[1]
    shipped.blocks[1] = torch.compile(saved)
    try:
        with pytest.raises(TypeError, match="torch.compile module"):
            et.apply_schedule(shipped, table)
    finally:
        shipped.blocks[1] = saved
    with et.apply_schedule(shipped, table):  # the model itself is still accepted
        pass
