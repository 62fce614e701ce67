"""ebcache.torch.record against `ebcache record` on the shipped model and the same noise."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ebcache  # noqa: E402
import ebcache.torch as et  # noqa: E402
from conftest import SHIPPED, cfg_fn, ddpm_loop, rel, run_ebcache  # noqa: E402

LABELS, SEED, SPACING, CFG = [2, 8], 6, "10", 1.5


def record_both(model, tmp_path, table_args, spacing=SPACING):
    table = None
    if table_args:
        table = tmp_path / "table.schedule"
        run_ebcache("schedule", *table_args, "--steps", spacing, "--model", SHIPPED, "--output", table)
    c_path = tmp_path / "c.h5"
    run_ebcache("record", "--model", SHIPPED, "--steps", spacing, "--labels", ",".join(map(str, LABELS)),
                "--seed", SEED, "--cfg-scale", CFG, "--threads", "1", *(["--schedule", table] if table else []),
                "--output", c_path)
    s, loop = ddpm_loop(cfg_fn(model, LABELS, CFG), spacing, LABELS, SEED)
    py_path = tmp_path / "py.h5"
    rec = et.record(model, loop, py_path, alphas_cumprod=s.alphas_cumprod, schedule=table, seed=SEED, cfg_scale=CFG,
                    sampler="ddpm", respacing=spacing, variance="learned_range", model_file=SHIPPED)
    return rec, ebcache.read_recording(c_path), py_path


@pytest.mark.parametrize("name,table,spacing", [
    ("uncached", None, SPACING), ("fora", ["fora", "--interval", "2"], SPACING),
    ("delta-dit", ["delta-dit", "--interval", "2", "--blocks", "3"], SPACING),
    ("fbcache", ["fbcache", "--threshold", "0.3", "--blocks", "2"], "25")])
def test_recording_matches_ebcache_record(shipped, tmp_path, name, table, spacing):
    rec, c, path = record_both(shipped, tmp_path, table, spacing)
    assert set(c.keys()) == set(rec.keys())
    for k in c.keys():
        a, b = np.asarray(rec[k], np.float64), np.asarray(c[k], np.float64)
        assert a.shape == b.shape, k
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=k)
        assert rel(a, b) <= 1e-5, k
    assert set(c.attrs) <= set(rec.attrs)
    for k in ("steps", "depth", "N", "cfg_channels", "hidden_size", "num_heads", "learn_sigma", "has_reference",
              "model_sha256", "sampler", "respacing", "seed"):
        assert rec.attrs[k] == c.attrs[k], k
    for k in ("signal_power", "flop_fraction") + (("reference_signal_power",) if table else ()):
        assert abs(rec.attrs[k] - c.attrs[k]) <= 1e-5 * abs(c.attrs[k]), k
    # what ebcache record documents: a reused feature drifts exactly 0, a skipped one is NaN
    if name == "fora":
        assert (rec["drift/attn"][1] == 0).all()
    if name == "delta-dit":
        assert np.isnan(rec["drift/mlp"][1, 3:]).all()
    if name == "fbcache":  # the served steps skip blocks 2..5: their drift is undefined there
        served = np.isnan(rec["drift/attn"][1:, 2])
        assert served.sum() >= 10 and not np.isnan(rec["drift/attn"][1:, :2]).any()
    assert ebcache.read_recording(path).attrs == rec.attrs


def test_fit_and_search_accept_it(shipped, tmp_path):
    rec, c, path = record_both(shipped, tmp_path, None)
    fit = tmp_path / "fit.h5"
    run_ebcache("fit", path, "--output", fit)
    for method, extra in (("fora", ["--target-speedup", "1.8"]), ("eb-cache", [])):
        out = tmp_path / f"{method}.schedule"
        run_ebcache("search", "--method", method, "--record", path, "--fit", fit, *extra, "--threads", "1",
                    "--output", out)
        assert ebcache.read_schedule(out).method == method
