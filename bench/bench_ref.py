"""Forward throughput of the PyTorch reference DiT (reference/dit_ref.py) with
random weights, for the ratio in `make bench`.
usage: bench_ref.py CONFIG BATCH ITERS THREADS  (CONFIG as S/2, B/2, XL/2)
       bench_ref.py --gemm THREADS               (large-GEMM rate, GFLOP/s)
       bench_ref.py --core                       (the OpenBLAS core torch runs on)
Debian's torch does its float32 matmuls through libblas.so.3, which the
alternatives point at OpenBLAS's libopenblas.so.0: the one ebcache links, so
OPENBLAS_CORETYPE picks the kernels of both. The run checks that rather than
assuming it: it names the OpenBLAS mapped into this process and asks that copy
which core it loaded."""
import ctypes
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import dit_ref  # noqa: E402

SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6)}


def openblas_core():
    """The core name of the one OpenBLAS this process has mapped; exits 1 if there is none or several."""
    with open("/proc/self/maps") as maps:
        paths = {os.path.realpath(line.split()[-1]) for line in maps if "libopenblas" in line}
    if len(paths) != 1:
        sys.exit(f"bench_ref.py: expected one OpenBLAS mapped with torch, found {sorted(paths) or 'none'}")
    lib = ctypes.CDLL(paths.pop())  # already loaded: the same copy torch calls
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


def gemm_rate(threads, n=2048, reps=5):
    """Best of reps n×n×n float32 matmuls, GFLOP/s."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best * 1e-9


def forward_rate(name, batch, iters, threads):
    """Images/s of the reference DiT's forward (one warm-up, then iters timed)."""
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
    return batch / per_iter, per_iter


def main():
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    if sys.argv[1] == "--core":
        torch.mm(torch.ones(2, 2), torch.ones(2, 2))
        print(openblas_core())
        return
    if sys.argv[1] == "--gemm":
        threads = int(sys.argv[2])
        rate = gemm_rate(threads)
        print(f"2048³ sgemm: {rate:.1f} GFLOP/s, OpenBLAS core {openblas_core()}, {threads} threads")
        return
    name, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    images, per_iter = forward_rate(name, batch, iters, threads)
    print(f"{name} batch {batch}: {images:.2f} images/s, {1e3 * per_iter:.1f} ms per forward "
          f"(PyTorch {torch.__version__}, {threads} threads), OpenBLAS core {openblas_core()}, OMP_WAIT_POLICY {wait}")


if __name__ == "__main__":
    main()
