"""Recordings: the reader against a file `ebcache record` wrote, the writer read back by the C tools."""
import h5py
import numpy as np
import pytest

import ebcache
from conftest import SHIPPED, run_ebcache

# docs/recording.md, "Attributes (root)", for a run from a seed with a schedule and no data
ROOT = ("ebcache_version model model_sha256 device input_size patch_size in_channels hidden_size depth num_heads "
        "num_classes learn_sigma cfg_scale cfg_channels cfg_guidance sampler respacing steps eta variance seed start "
        "data start_step N batch schedule schedule_text schedule_method flop_fraction has_data has_reference "
        "wall_seconds signal_power reference_signal_power").split()
DATASETS = ("steps/t steps/alpha_bar snr/nominal snr/trajectory exposure/snr_ratio eps/norm eps/norm_q drift/attn "
            "drift/mlp drift/attn_cos drift/mlp_cos drift/block0_input drift/output deviation/x deviation/eps "
            "samples y").split()


@pytest.fixture(scope="module")
def c_recording(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    table = d / "fora.schedule"
    run_ebcache("schedule", "fora", "--interval", "2", "--steps", "8", "--model", SHIPPED, "--output", table)
    path = d / "rec.h5"
    run_ebcache("record", "--model", SHIPPED, "--steps", "8", "--labels", "4,9,1", "--seed", "5", "--threads", "1",
                "--schedule", table, "--output", path)
    return path


def test_reader_has_every_documented_name(c_recording):
    rec = ebcache.read_recording(c_recording)
    assert set(ROOT) <= set(rec.attrs)
    for name in DATASETS + ["reference/" + n for n in ("snr/trajectory", "eps/norm", "drift/attn")]:
        assert name in rec
    S, L = rec.attrs["steps"], rec.attrs["depth"]
    assert rec.steps == S == 8 and rec["drift/attn"].shape == (S, L) and rec["eps/norm"].shape == (S, 3)
    assert rec["samples"].dtype == np.float32 and rec["y"].dtype == np.int32 and list(rec["y"]) == [4, 9, 1]
    assert isinstance(rec.attrs["cfg_guidance"], str) and isinstance(rec.attrs["steps"], int)
    assert isinstance(rec.attrs["cfg_scale"], float) and rec.attrs["schedule_method"] == "fora"
    assert "pre-gate attention" in rec.description("drift/attn")
    assert np.isnan(rec["drift/attn"][0]).all() and (rec["drift/attn"][1] == 0).all()  # FORA reuses step 1
    with h5py.File(c_recording) as f:
        np.testing.assert_array_equal(rec["snr/trajectory"], f["snr/trajectory"][:])
        np.testing.assert_array_equal(rec["reference/eps/norm"], f["reference/eps/norm"][:])


def test_written_recording_reads_back_and_fits(c_recording, tmp_path):
    rec = ebcache.read_recording(c_recording)
    out = tmp_path / "copy.h5"
    rec.write(out)
    back = ebcache.read_recording(out)
    assert back.attrs == rec.attrs and back.descriptions == rec.descriptions
    assert set(back.keys()) == set(rec.keys())
    for k in rec.keys():
        np.testing.assert_array_equal(back[k], rec[k])
        assert back[k].dtype == rec[k].dtype
    # the C tools read the copy as the original: the same fits
    fit_a, fit_b = tmp_path / "a.h5", tmp_path / "b.h5"
    run_ebcache("fit", c_recording, "--output", fit_a)
    run_ebcache("fit", out, "--output", fit_b)
    a, b = ebcache.read_recording(fit_a), ebcache.read_recording(fit_b)
    for k in a.keys():
        np.testing.assert_array_equal(a[k], b[k])
    assert not list(tmp_path.glob("*.tmp*"))
