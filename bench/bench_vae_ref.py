"""The diffusers side of `bench_vae decode`: AutoencoderKL (sd-vae configuration, random weights) decoding
one SIDE×SIDE latent, ITERS times after a warm-up, on THREADS threads. Needs the venv of reference/vae_ref.py
(`make build/venv-diffusers/.installed`).

    build/venv-diffusers/bin/python bench/bench_vae_ref.py SIDE ITERS THREADS
"""
import os
import sys
import time

import diffusers
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from bench_ref import openblas_core  # noqa: E402
from vae_ref import SD, make_vae  # noqa: E402


def main(side, iters, threads):
    torch.set_num_threads(threads)
    vae = make_vae(SD)
    z = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        vae.decode(z)
        t0 = time.perf_counter()
        for _ in range(iters):
            vae.decode(z)
        dt = (time.perf_counter() - t0) / iters
    s = side * 8
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"diffusers decode {side}x{side} -> {s}x{s}: {1 / dt:.3f} images/s ({dt:.2f} s per image; diffusers "
          f"{diffusers.__version__}, PyTorch {torch.__version__}, {threads} threads), OpenBLAS core {openblas_core()}, "
          f"OMP_WAIT_POLICY {wait}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
