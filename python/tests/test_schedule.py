"""Schedule tables: byte-exact round trips with the C writer, the reader's checks, the expansion."""
import glob
import os

import pytest

import ebcache
from conftest import REPO, SHIPPED, run_ebcache
from ebcache import Row, Schedule, ScheduleError

GENERATORS = [
    ("fora", ["fora", "--interval", "3", "--steps", "20"]),
    ("delta", ["delta-dit", "--interval", "2", "--blocks", "2", "--boundary", "7", "--steps", "20"]),
    ("taylor", ["taylorseer", "--interval", "4", "--order", "3", "--warmup", "3", "--steps", "20"]),
    ("teacache", ["teacache", "--threshold", "0.07", "--poly", "498.65,-283.78,55.86,-3.82,0.264", "--steps", "20"]),
    ("fbcache", ["fbcache", "--threshold", "0.08", "--blocks", "2", "--steps", "20"]),
    ("ddim50", ["fora", "--interval", "2", "--respacing", "ddim50"]),
]


def assert_round_trip(path, tmp_path):
    data = open(path, "rb").read()
    s = ebcache.read_schedule(path)
    assert s.text().encode() == data
    out = tmp_path / "copy.schedule"
    s.write(out)
    assert out.read_bytes() == data


@pytest.mark.parametrize("name,args", GENERATORS, ids=[g[0] for g in GENERATORS])
def test_generated_tables_round_trip(tmp_path, name, args):
    path = tmp_path / f"{name}.schedule"
    run_ebcache("schedule", *args, "--model", SHIPPED, "--output", path)
    assert_round_trip(path, tmp_path)


def test_searched_tables_round_trip(tmp_path):
    rec = tmp_path / "rec.h5"
    run_ebcache("record", "--model", SHIPPED, "--steps", "10", "--labels", "1,2", "--threads", "1", "--output", rec)
    for method, extra in (("eb-cache", []), ("fora", ["--target-speedup", "1.8"]),
                          ("delta-dit", ["--interval", "2"])):
        path = tmp_path / f"{method}.schedule"
        run_ebcache("search", "--method", method, "--record", rec, *extra, "--threads", "1", "--output", path)
        assert_round_trip(path, tmp_path)
    # eb-cache's scales carry 17 significant digits: the shortest-%g writer keeps every bit
    eb = ebcache.read_schedule(tmp_path / "eb-cache.schedule")
    assert any(len(str(r.scale)) > 10 for r in eb.rows)
    assert eb.provenance["recording"] == str(rec) and len(eb.provenance["recording_sha256"]) == 64


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "data", "schedules", "*.schedule"))))
def test_shipped_tables_round_trip(tmp_path, path):
    assert_round_trip(path, tmp_path)


def test_python_table_is_read_by_ebcache(tmp_path):
    rows = [Row(0, 999, None, "C", "C", 0.965), Row(1, 888, None, "R", "C", 0.965), Row(1, 888, (0, 1), "C", "T2", 0.965),
            Row(2, 777, None, "C", "C", 1.0)]
    s = Schedule(steps=3, rows=rows, method="hand", params="x=1", sampler="respacing=3")
    path = tmp_path / "hand.schedule"
    s.write(path)
    shown = run_ebcache("schedule", "show", path, "--model", SHIPPED).stdout
    assert "hand" in shown
    assert ebcache.read_schedule(path) == s


def test_actions_expand_overrides():
    s = Schedule.parse("# ebcache schedule v1\n## steps: 2\n0 999 * C C 1\n1 500 * R R 0.9\n1 500 2-3 S S 0.9\n1 500 0 C T1 0.9\n")
    acts = s.actions(5)
    assert acts[0] == [("C", "C")] * 5
    assert acts[1] == [("C", "T1"), ("R", "R"), ("S", "S"), ("S", "S"), ("R", "R")]
    assert s.step_scale() == [1.0, 0.9] and s.step_t() == [999, 500]
    with pytest.raises(ScheduleError, match="exceed the model's 3 blocks"):
        s.actions(3)


BAD = [
    ("# ebcache schedule v2\n## steps: 1\n0 0 * C C 1\n", ":1: unsupported version 'v2'"),
    ("hello\n", ":1: not an ebcache schedule"),
    ("# ebcache schedule v1\n## stepz: 1\n", ":2: unknown directive 'stepz'"),
    ("# ebcache schedule v1\n## steps: 2\n0 999 * C C 1\n", ":3: steps 1..1 have no row"),
    ("# ebcache schedule v1\n## steps: 1\n0 999 * C X 1\n", ":3: unknown mlp action 'X'"),
    ("# ebcache schedule v1\n## steps: 1\n0 999 * C C 0\n", ":3: scale '0' is not a positive"),
    ("# ebcache schedule v1\n## steps: 2\n1 999 * C C 1\n", ":3: step 0 has no row"),
    ("# ebcache schedule v1\n## steps: 1\n0 999 1 C C 1\n", ":3: the first row of step 0 must cover"),
    ("# ebcache schedule v1\n## steps: 1\n0 999 * C C 1\n0 998 1 C C 1\n", ":4: t 998 differs"),
    ("# ebcache schedule v1\n## steps: 1\n0 999 * C C 1\n## method: x\n", ":4: directives belong in the header"),
    ("# ebcache schedule v1\n## steps: 1\n## policy: teacache\n0 999 * C C 1\n", ":3: policy: threshold=X is required"),
    ("# ebcache schedule v1\n## steps: 1\n0 999 * C C\n", ":3: expected 6 columns"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_reader_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.schedule"
    path.write_text(text)
    with pytest.raises(ScheduleError) as e:
        ebcache.read_schedule(path)
    assert str(e.value).startswith(str(path) + ":") and message in str(e.value)
    # the C reader refuses the same files
    run_ebcache("schedule", "show", path, "--model", SHIPPED, expect=2)
