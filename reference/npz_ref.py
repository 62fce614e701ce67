"""The .npz goldens of runtime/npz.c, written and read by numpy.

    /usr/bin/python3 reference/npz_ref.py tests/golden

Writes, with numpy's own writers:
  npz_savez.npz        np.savez: arr_0 uint8 (3, 5, 4, 3) images, mu float64 (4,),
                       sigma float64 (4, 4), feat float32 (2, 3), labels int64 (3,),
                       and a member "notes.txt" that is no array (readers skip it)
  npz_compressed.npz   the same arrays through np.savez_compressed (DEFLATE)
and checks the C writer's output tests/golden/npz_c.npz (the file
tests/test_npz.c writes, and also leaves at build/npz_c.npz: copy it here
and rerun after a change of the writer) with numpy.load and zipfile's CRC
test, recording what it found in npz_c_numpy.txt; tests/test_npz.c checks
that the C writer still writes those exact bytes.

Every value is a closed formula the C test recomputes (pattern() below).
"""
import hashlib
import os
import sys
import zipfile

import numpy as np


def pattern():
    n, h, w, c = np.meshgrid(np.arange(3), np.arange(5), np.arange(4), np.arange(3), indexing="ij")
    images = ((n * 31 + h * 7 + w * 3 + c * 101) % 256).astype(np.uint8)
    mu = np.arange(4) * 0.25 - 0.3
    i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    sigma = 1.0 / (1.0 + i + j) + (i == j) * 0.5
    feat = (np.arange(6).reshape(2, 3) * 1.5 - 2.0).astype(np.float32)
    labels = np.array([7, -1, 999], dtype=np.int64)
    return dict(arr_0=images, mu=mu, sigma=sigma, feat=feat, labels=labels)


def add_text_member(path):
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.txt", "not an array")


def check_c_file(path, out):
    arrays = pattern()
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None, "bad CRC"
        names = z.namelist()
    with np.load(path) as f:
        assert sorted(f.files) == ["arr_0", "mu", "sigma"], f.files
        for key in f.files:
            assert f[key].dtype == arrays[key].dtype and np.array_equal(f[key], arrays[key]), key
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    text = "sha256 %s\nnumpy %s loaded %s: %s, values equal to the pattern, CRC-32 ok\n" % (
        digest, np.__version__, os.path.basename(path), " ".join(names))
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)
    print(text, end="")


def main():
    out = sys.argv[1]
    arrays = pattern()
    for name, save in [("npz_savez.npz", np.savez), ("npz_compressed.npz", np.savez_compressed)]:
        tmp = os.path.join(out, name + ".tmp.npz")
        save(tmp, **arrays)
        add_text_member(tmp)
        os.replace(tmp, os.path.join(out, name))
    c_file = os.path.join(out, "npz_c.npz")
    if os.path.exists(c_file):
        check_c_file(c_file, os.path.join(out, "npz_c_numpy.txt"))
    else:
        print("no %s yet: run the npz suite, copy build/npz_c.npz there, run again" % c_file)


if __name__ == "__main__":
    main()
