"""apply_schedule and record on diffusers' DiTTransformer2DModel (diffusers 0.31.0), the shipped weights in
the diffusers layout (reference/diffusers_layout.py), against `ebcache sample` / `ebcache record`.

diffusers computes two things differently from the official code (reference/README.md): its MLP LayerNorm
eps (1e-5) and its timestep frequencies (shift 1); both are set to the official values first.
When this Python has no diffusers but build/venv-diffusers (a venv over the system site-packages with
diffusers 0.31.0) exists, the file runs itself there; otherwise it is skipped with that message.
"""
import importlib.util
import os
import subprocess

import h5py
import pytest

from conftest import REPO, SHIPPED, ddpm_loop, rel, run_ebcache

VENV_PY = os.path.join(REPO, "build", "venv-diffusers", "bin", "python")
HAVE = importlib.util.find_spec("diffusers") is not None
LABELS, SEED, SPACING, CFG = [3, 7], 4, "10", 1.5


@pytest.mark.skipif(HAVE, reason="diffusers is importable here: the tests below run directly")
def test_in_the_diffusers_venv():
    if not os.path.exists(VENV_PY):
        pytest.skip("diffusers 0.31.0 is not installed (neither here nor in build/venv-diffusers): "
                    "the diffusers DiT is not tested")
    p = subprocess.run([VENV_PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not in_the_diffusers_venv",
                        __file__],
                       cwd=os.path.dirname(__file__), capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    last = p.stdout.strip().splitlines()[-1]
    assert "4 passed" in last and "skipped" not in last, p.stdout[-2000:]


@pytest.fixture(scope="module")
def diffusers_dit(shipped):
    import diffusers
    import st_io
    from diffusers_layout import diffusers_config, diffusers_state_dict
    assert diffusers.__version__ == "0.31.0", diffusers.__version__
    model = diffusers.DiTTransformer2DModel.from_config(diffusers_config(shipped.cfg))
    weights = st_io.load(SHIPPED)[0]
    model.load_state_dict({k: v.float() for k, v in diffusers_state_dict(shipped.cfg, weights).items()})
    for b in model.transformer_blocks:
        b.norm3.eps = 1e-6
        b.norm1.emb.time_proj.downscale_freq_shift = 0
    return model.eval()


def guided_fn(model, scale):
    """The DiTPipeline's step: the model on [x, x] with [y, null], guidance outside the model (ε and variance)."""
    import torch
    y = torch.tensor(LABELS)
    null = torch.full_like(y, model.config.num_embeds_ada_norm)
    N = len(LABELS)

    def fn(x, t):
        out = model(torch.cat([x, x]), timestep=torch.cat([t, t]), class_labels=torch.cat([y, null])).sample
        c, u = out[:N], out[N:]
        return torch.cat([u[:, :2] + scale * (c[:, :2] - u[:, :2]), c[:, 2:]], dim=1)
    return fn


@pytest.mark.skipif(not HAVE, reason="needs diffusers")
@pytest.mark.parametrize("args", [["fora", "--interval", "2"], ["delta-dit", "--interval", "2", "--blocks", "2"],
                                  ["taylorseer", "--interval", "3", "--order", "2"]], ids=lambda a: a[0])
def test_schedule_on_diffusers_matches_ebcache_sample(diffusers_dit, tmp_path, args):
    import torch
    import ebcache.torch as et
    table, out = tmp_path / "t.schedule", tmp_path / "c.h5"
    run_ebcache("schedule", *args, "--steps", SPACING, "--model", SHIPPED, "--output", table)
    run_ebcache("sample", "--model", SHIPPED, "--steps", SPACING, "--labels", "3,7", "--seed", SEED, "--cfg-scale", CFG,
                "--threads", "1", "--schedule", table, "--output", out)
    _, loop = ddpm_loop(guided_fn(diffusers_dit, CFG), SPACING, LABELS, SEED)
    with torch.no_grad(), et.apply_schedule(diffusers_dit, table):
        got = loop().numpy()
    with h5py.File(out) as f:
        assert rel(got, f["samples"][:]) <= 1e-5


@pytest.mark.skipif(not HAVE, reason="needs diffusers")
def test_record_on_diffusers_matches_ebcache_record(diffusers_dit, tmp_path):
    import numpy as np
    import ebcache
    import ebcache.torch as et
    table, c_path = tmp_path / "t.schedule", tmp_path / "c.h5"
    run_ebcache("schedule", "fora", "--interval", "2", "--steps", SPACING, "--model", SHIPPED, "--output", table)
    run_ebcache("record", "--model", SHIPPED, "--steps", SPACING, "--labels", "3,7", "--seed", SEED, "--cfg-scale", CFG,
                "--threads", "1", "--schedule", table, "--output", c_path)
    s, loop = ddpm_loop(guided_fn(diffusers_dit, CFG), SPACING, LABELS, SEED)
    rec = et.record(diffusers_dit, loop, alphas_cumprod=s.alphas_cumprod, schedule=table, seed=SEED, cfg_scale=CFG)
    c = ebcache.read_recording(c_path)
    for k in c.keys():
        a, b = np.asarray(rec[k], np.float64), np.asarray(c[k], np.float64)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=k)
        assert rel(a, b) <= 1e-5, k

