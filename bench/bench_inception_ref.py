"""The PyTorch side of `bench_inception`: pool, spatial and logits of BATCH random SIDE×SIDE uint8 images
through reference/inception_ref.py's network (pytorch-fid's architecture, random weights of the golden's
formula) with its input path (uint8 → TF1 bilinear resize to 299 → (x − 128)/128), ITERS batches after a
warm-up, on THREADS threads.

    /usr/bin/python3 bench/bench_inception_ref.py SIDE BATCH ITERS THREADS
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from bench_ref import openblas_core  # noqa: E402
from inception_ref import FIDInception, features, random_weights  # noqa: E402


def main(side, batch, iters, threads):
    torch.set_num_threads(threads)
    net = FIDInception(random_weights(seed=11))
    images = np.random.default_rng(12).integers(0, 256, size=(batch, side, side, 3), dtype=np.uint8)
    features(net, images)  # warm-up
    t0 = time.perf_counter()
    for _ in range(iters):
        features(net, images)
    per = (time.perf_counter() - t0) / iters
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"PyTorch inception {side}x{side} batch {batch}: {batch / per:.2f} images/s, {1e3 * per:.1f} ms per batch "
          f"(PyTorch {torch.__version__}, {threads} threads), OpenBLAS core {openblas_core()}, OMP_WAIT_POLICY {wait}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
