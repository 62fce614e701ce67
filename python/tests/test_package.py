"""The package's import contract: numpy and h5py only, torch for ebcache.torch alone."""
import os
import subprocess
import sys

from conftest import REPO

PY = os.path.join(REPO, "python")


def python(code):
    return subprocess.run([sys.executable, "-c", code], cwd=PY, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=PY))


def test_ebcache_does_not_import_torch():
    p = python("import sys, ebcache, ebcache.lib, ebcache.rng; print('torch' in sys.modules)")
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr


def test_ebcache_torch_without_torch_names_it():
    p = python("import sys; sys.modules['torch'] = None\nimport ebcache.torch")
    assert p.returncode != 0 and "ebcache.torch needs PyTorch (the 'torch' package)" in p.stderr
