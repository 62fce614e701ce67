#!/usr/bin/python3
"""The schedule hooks' cost in PyTorch, on DiT-S/2 (random weights, 32x32x4 latents, guidance 1.5).

    /usr/bin/python3 bench/bench_python.py [--steps S] [--n N] [--repeats R] [--threads T]

Times the model calls of an S-step loop (the diffusion arithmetic left out: it is the same in every
variant), interleaving the variants R times and reporting each one's fastest run (the least disturbed on a shared machine):
  bare       the model without hooks
  hooked     every step computes, but a step after the loop reuses everything, so every attention and
             MLP module goes through its hook and keeps its output: the hooks' whole overhead, nothing skipped
  fora2      FORA N=2: every other step reuses every block's attention and MLP
Prints seconds per step, hooked/bare (the overhead) and bare/fora2 (the measured speedup) next to the
predicted one (1 / the table's FLOP fraction). The hooks' absolute cost per model call (a few Python
calls per block) is then measured on a tiny DiT (depth 12, D 64, 16 tokens), where it is not lost in
the DiT-S/2 forward's noise.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "python"), os.path.join(HERE, "..", "python", "tests"),
                os.path.join(HERE, "..", "reference")]

import torch  # noqa: E402

import ebcache.torch as et  # noqa: E402
import official_dit  # noqa: E402
from dit_ref import DiTConfig  # noqa: E402
from ebcache.schedule import Row, Schedule  # noqa: E402

DIT_S2 = DiTConfig(input_size=32, patch_size=2, in_channels=4, hidden_size=384, depth=12, num_heads=6,
                   num_classes=1000, learn_sigma=True)
TINY = DiTConfig(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=12, num_heads=4,
                 num_classes=1000, learn_sigma=True)


def table(steps, reuse):
    """reuse(k) -> True: step k reuses every block's attention and MLP."""
    rows = [Row(k, 999 - k, None, *(("R", "R") if reuse(k) else ("C", "C")), 1.0) for k in range(steps)]
    return Schedule(steps=steps, rows=rows, method="bench")


def timed(model, cfg, n, steps, repeats, variants):
    """{variant: fastest seconds per step} over `repeats` interleaved runs."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g)
    y = torch.arange(n)
    times = {name: [] for name in variants}
    run(model, x, y, 2, None)  # warm-up
    for _ in range(repeats):
        for name, sched in variants.items():
            times[name].append(run(model, x, y, steps, sched) / steps)
    return {name: min(v) for name, v in times.items()}


def run(model, x, y, steps, schedule):
    """Seconds for `steps` guided model calls (under the schedule when given)."""
    x2, y2 = torch.cat([x, x]), torch.cat([y, torch.full_like(y, DIT_S2.num_classes)])
    start = time.perf_counter()
    if schedule is None:
        for k in range(steps):
            model.forward_with_cfg(x2, torch.full((len(x2),), 999 - k), y2, 1.5)
    else:
        with et.apply_schedule(model, schedule):
            for k in range(steps):
                model.forward_with_cfg(x2, torch.full((len(x2),), 999 - k), y2, 1.5)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--n", type=int, default=2, help="samples (the model batch is 2N with guidance)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = official_dit.random(DIT_S2, seed=0)
    variants = {"bare": None, "hooked": table(a.steps + 1, lambda k: k == a.steps),
                "fora2": table(a.steps, lambda k: k % 2 == 1)}
    with torch.no_grad():
        best = timed(model, DIT_S2, a.n, a.steps, a.repeats, variants)
        tiny_steps = 50
        tiny = timed(official_dit.random(TINY, seed=0), TINY, 1, tiny_steps, a.repeats,
                     {"bare": None, "hooked": table(tiny_steps + 1, lambda k: k == tiny_steps)})
    cfg = et.model_layout(model).config(model)
    predicted = 1 / et.hooks.Plan(variants["fora2"], DIT_S2.depth).flop_fraction(cfg)
    print(f"DiT-S/2 random weights, model batch {2 * a.n} (guidance), {a.steps} steps, {a.threads} threads, "
          f"fastest of {a.repeats} interleaved runs")
    for name in variants:
        print(f"  {name:7s} {best[name] * 1e3:8.1f} ms/step")
    print(f"hook overhead (hooked / bare): {best['hooked'] / best['bare']:.3f}x, "
          f"{(best['hooked'] - best['bare']) * 1e3:+.1f} ms/step")
    print(f"FORA N=2 speedup (bare / fora2): {best['bare'] / best['fora2']:.2f}x measured, {predicted:.2f}x predicted")
    print(f"tiny DiT (depth 12, D 64, 16 tokens): bare {tiny['bare'] * 1e3:.2f} ms/call, hooked "
          f"{tiny['hooked'] * 1e3:.2f} ms/call: the hooks cost {(tiny['hooked'] - tiny['bare']) * 1e6:.0f} us per call")


if __name__ == "__main__":
    main()
