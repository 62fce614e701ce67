"""ebcache.lib: the ctypes calls against the CLI's files, and C errors as Python exceptions."""
import os

import h5py
import numpy as np
import pytest

from conftest import SHIPPED, run_ebcache

lib = pytest.importorskip("ebcache.lib")


@pytest.fixture(scope="module")
def model():
    path = lib.library_path()
    if not path or not os.path.exists(path):
        if os.environ.get("EBCACHE_LIB"):
            pytest.fail(f"EBCACHE_LIB={os.environ['EBCACHE_LIB']} does not exist")
        pytest.skip("no libebcache.so (build/libebcache.so or EBCACHE_LIB): the ctypes bindings are not tested")
    lib.set_threads(1)
    with lib.Model(SHIPPED) as m:
        yield m


def test_model_config_and_noise(model):
    assert model.config == {"input_size": 28, "patch_size": 4, "in_channels": 1, "hidden_size": 128, "depth": 6,
                            "num_heads": 4, "num_classes": 10, "learn_sigma": 1}
    from ebcache import rng
    np.testing.assert_array_equal(model.initial_noise(2, seed=9)[1], rng.normals(9, rng.stream_xT(1), (1, 28, 28)))
    assert model.guide_channels("official") == 2 and model.guide_channels("eps") == 1


def test_sample_matches_the_cli(model, tmp_path):
    table, out = tmp_path / "fora.schedule", tmp_path / "c.h5"
    run_ebcache("schedule", "fora", "--interval", "2", "--steps", "10", "--model", SHIPPED, "--output", table)
    run_ebcache("sample", "--model", SHIPPED, "--steps", "10", "--labels", "3,7", "--seed", "2", "--threads", "1",
                "--schedule", table, "--output", out)
    x, stats = model.sample(model.initial_noise(2, seed=2), [3, 7], respacing="10", seed=2, schedule=table)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(x, f["samples"][:])  # the same code on the same bits
    assert stats["steps"] == 10 and abs(stats["flop_fraction"] - model.schedule_flops(table, "10")) < 1e-12


def test_forward_guided_matches_the_cli(model, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    out = model.forward(x, [999, 20], [4, 10])
    plain = model.forward(x, [999, 20], [4, 10], cfg_scale=1.5, guidance="eps")
    assert out.shape == (2, 2, 28, 28) and not np.array_equal(out, plain)
    np.testing.assert_array_equal(model.forward(x, 999, 4), model.forward(x, [999, 999], [4, 4]))


def test_errors_carry_the_c_message(model, tmp_path):
    with pytest.raises(lib.InputError, match="nonexistent.safetensors"):
        lib.Model(tmp_path / "nonexistent.safetensors")
    x = np.zeros((1, 1, 28, 28), np.float32)
    x[0, 0, 3, 5] = np.nan
    with pytest.raises(lib.InputError, match=r"x has NaN at \[0, 0, 3, 5\]"):
        model.forward(x, 10, 1)
    with pytest.raises(lib.InputError, match=r"y\[0\] = 99 outside \[0, 10\]"):
        model.forward(np.zeros((1, 1, 28, 28)), 10, 99)
    table = tmp_path / "t.schedule"
    run_ebcache("schedule", "fora", "--interval", "2", "--steps", "10", "--model", SHIPPED, "--output", table)
    with pytest.raises(lib.InputError, match="the table has 10 steps but the sampler runs 20"):
        model.sample(np.zeros((1, 1, 28, 28)), [0], respacing="20", schedule=table)
    with pytest.raises(lib.InputError, match="shape"):
        model.forward(np.zeros((1, 3, 28, 28)), 10, 1)


def test_evaluate_matches_the_cli(model, tmp_path):
    """eb_evaluate through ctypes and `ebcache eval` on the same samples: the same numbers."""
    import json
    from conftest import REPO
    classifier = os.path.join(REPO, "data", "classifier.safetensors")
    samples, ref = tmp_path / "s.h5", tmp_path / "u.h5"
    for out, extra in ((samples, ["--schedule", tmp_path / "t.schedule"]), (ref, [])):
        if extra:
            run_ebcache("schedule", "fora", "--interval", "2", "--steps", "10", "--model", SHIPPED, "--output", extra[1])
        run_ebcache("sample", "--model", SHIPPED, "--steps", "10", "--n", "12", "--seed", "1", "--threads", "1",
                    *extra, "--output", out)
    cli = json.loads(run_ebcache("eval", "--samples", samples, "--reference", ref, "--classifier", classifier,
                                 "--n-real", "200", "--json").stdout)
    got = lib.evaluate(samples, classifier, reference=ref, n_real=200)
    assert got["n_samples"] == 12 and got["n_real"] == 200 and got["labels"] == "y"
    flat = {k: v for k, v in cli.items() if isinstance(v, (int, float))}
    shared = [k for k in ("fd", "precision", "recall", "accuracy", "psnr", "ssim") if k in flat]
    assert len(shared) >= 4, cli
    for k in shared:
        assert got[k] == pytest.approx(flat[k], rel=1e-9), k
    with pytest.raises(lib.InputError, match="missing.h5"):
        lib.evaluate(tmp_path / "missing.h5", classifier, n_real=200)


def has(name):
    try:
        lib._fn(name)
        return True
    except lib.EbcacheError:
        return False


def need(name):
    if not has(name):
        pytest.skip(f"this libebcache.so has no {name} (the experiment layer, pipeline/)")


def test_pipeline_sample_record_fit_search(model, tmp_path):
    """run_sample, record, fit and search as calls write what the CLI writes."""
    need("eb_sample_to_file")
    need("eb_record_to_file")
    need("eb_search_to_file")
    ours, cli = tmp_path / "ours.h5", tmp_path / "cli.h5"
    r = lib.run_sample(ours, SHIPPED, respacing="10", labels=[3, 7], seed=2, threads=1)
    assert r["N"] == 2 and r["steps"] == 10
    run_ebcache("sample", "--model", SHIPPED, "--steps", "10", "--labels", "3,7", "--seed", "2", "--threads", "1",
                "--output", cli)
    with h5py.File(ours) as a, h5py.File(cli) as b:
        np.testing.assert_array_equal(a["samples"][:], b["samples"][:])
    rec = tmp_path / "rec.h5"
    r = lib.record(rec, SHIPPED, respacing="10", labels=[3, 7], seed=2, threads=1)
    assert r["S"] == 10 and r["N"] == 2
    lib.fit(rec, tmp_path / "fit.h5")
    assert (tmp_path / "fit.h5").exists()
    table = tmp_path / "fora.schedule"
    o = lib.search(rec, table, method="fora", target_speedup=1.8, threads=1)
    assert o["met"] == 1 and o["method"] == "fora" and table.exists()
    with pytest.raises(lib.InputError, match="unknown method 'nope'"):
        lib.search(rec, table, method="nope")
    with pytest.raises(lib.InputError, match="missing.h5"):
        lib.search(tmp_path / "missing.h5", table, method="fora", interval=2)
