"""ebcache.lib's ctypes structures against the C headers: the size and every field's offset, from a
program compiled against runtime/ebcache.h and pipeline/*.h (a header change fails here, not in a call)."""
import ctypes
import shutil
import subprocess

import pytest

from conftest import REPO

lib = pytest.importorskip("ebcache.lib")

STRUCTS = {  # ctypes class: C type
    "Config": "eb_config", "Device": "eb_device", "DiffusionSchedule": "eb_schedule",
    "SamplerOpts": "eb_sampler_opts", "CacheStats": "eb_cache_stats", "RunParams": "eb_run_params",
    "SampleParams": "eb_sample_params", "SampleResult": "eb_sample_result", "RecordParams": "eb_record_params",
    "RecordResult": "eb_record_result", "SearchOpts": "struct eb_search_opts", "SearchParams": "eb_search_params",
    "SearchOutcome": "eb_search_outcome", "EvalParams": "eb_eval_params", "EvalResult": "eb_eval_result",
}


def test_structures_match_the_headers(tmp_path):
    cc = shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler: the structure layouts are not checked")
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "pipeline/sampling.h"',
             '#include "pipeline/recording.h"', '#include "pipeline/searching.h"', '#include "pipeline/evaluation.h"',
             "int main(void) {"]
    for py, c in STRUCTS.items():
        lines.append(f'printf("{py} size %zu\\n", sizeof({c}));')
        for name, _ in getattr(lib, py)._fields_:
            lines.append(f'printf("{py} {name} %zu\\n", offsetof({c}, {name}));')
    lines += ["return 0;", "}"]
    src, exe = tmp_path / "layout.c", tmp_path / "layout"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", f"-I{REPO}", "-I/usr/include/hdf5/serial",
                    "-I/usr/include/x86_64-linux-gnu/openblas-openmp", str(src), "-o", str(exe)], check=True)
    c = {tuple(l.split()[:2]): int(l.split()[2]) for l in subprocess.run([str(exe)], capture_output=True,
                                                                           text=True, check=True).stdout.splitlines()}
    for py in STRUCTS:
        cls = getattr(lib, py)
        assert c[(py, "size")] == ctypes.sizeof(cls), py
        for name, _ in cls._fields_:
            assert c[(py, name)] == getattr(cls, name).offset, f"{py}.{name}"
