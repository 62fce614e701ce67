"""Forward throughput of the PyTorch reference DiT (reference/dit_ref.py) with
random weights, for the ratio in `make bench`.
usage: bench_ref.py CONFIG BATCH ITERS THREADS  (CONFIG as S/2, B/2, XL/2)"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import dit_ref  # noqa: E402

SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6)}


def main():
    name, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    size, patch = name.split("/")
    depth, hidden, heads = SIZES[size]
    cfg = dit_ref.DiTConfig(32, int(patch), 4, hidden, depth, heads, 1000, True)
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    model = dit_ref.DiT(cfg, dit_ref.random_weights(cfg, gen))
    x = torch.randn(batch, 4, 32, 32, generator=gen)
    t = torch.arange(batch) * 37 % 1000
    y = torch.arange(batch) % 1000
    with torch.inference_mode():
        model.forward(x, t, y)  # warm-up
        start = time.perf_counter()
        for _ in range(iters):
            model.forward(x, t, y)
        per_iter = (time.perf_counter() - start) / iters
    print(f"{name} batch {batch}: {batch / per_iter:.2f} images/s, {1e3 * per_iter:.1f} ms per forward "
          f"(PyTorch {torch.__version__}, {threads} threads)")


if __name__ == "__main__":
    main()
