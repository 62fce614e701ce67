"""Reference values for analyze/adm_metrics.c, written to <dir>/adm_metrics.h5.

    /usr/bin/python3 reference/adm_metrics_ref.py tests/golden

A NumPy/SciPy transcription of the formulas of the ADM evaluator
(openai/guided-diffusion evaluations/evaluator.py), on fixed random features:

  fid/{a,b}        pool-like features (300, 64); fid/value: np.mean, np.cov and
                   |Δμ|² + tr Σ1 + tr Σ2 − 2 tr sqrtm(Σ1 Σ2) (scipy, the
                   evaluator's route; the C code takes the symmetric root)
  sfid/{a,b}       (64, 2023) features, as wide as the spatial ones (rank-deficient)
  is/logits        (700, 20); is/value (one split of 5000), is/value_split300
                   (splits of 300, 300, 100: the last one shorter)
  pr/{ref,sample}  (300, 64); pr/precision, pr/recall with batches of 128 rows
                   and columns; pr/radii_ref the reference radii. Rows 7 and 250
                   of ref are scaled so that their fp16 squared norms overflow:
                   every block holding them falls back to fp32.
                   pr/precision_exact, pr/recall_exact: the same in float64
                   (they differ from the fp16 ones, so the test sees the emulation)
  pr1/...          the same features in one block (batch 10000)

The distance of the evaluator's graph: max(‖u‖² − 2 u·v + ‖v‖², 0), each op in
float16 (square, norm, matmul, ×2, −, +; the norm and the products summed in
float64 before the rounding), recomputed in float32 when any entry of the block
is not finite. Radii: the 4th smallest (k = 3, self included) of each sorted row.
"""
import os
import sys

import h5py
import numpy as np
from scipy import linalg


def frechet(mu1, s1, mu2, s2):
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = covmean.real
    d = mu1 - mu2
    return float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def stats(x):
    x = x.astype(np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def inception_score(logits, split):
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True)).astype(np.float32).astype(np.float64)
    scores = []
    for i in range(0, len(p), split):
        part = p[i:i + split]
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(part.mean(0, keepdims=True))), 0.0)
        scores.append(np.exp(kl.sum(1).mean()))
    return float(np.mean(scores))


def block_distances(u, v, dtype):
    r = lambda x: np.asarray(x, dtype=np.float64).astype(dtype).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        u, v = r(u), r(v)
        nu, nv = r(r(u * u).sum(1)), r(r(v * v).sum(1))
        two = r(2 * r(u @ v.T))
        d = np.maximum(r(r(nu[:, None] - two) + nv[None, :]), 0.0)
    return d


def evaluator_distances(u, v):
    d = block_distances(u, v, np.float16)
    return d if np.isfinite(d).all() else block_distances(u, v, np.float32)


def blocked(u, v, batch, fn):
    out = np.zeros((len(u), len(v)))
    for i in range(0, len(u), batch):
        for j in range(0, len(v), batch):
            out[i:i + batch, j:j + batch] = fn(u[i:i + batch], v[j:j + batch])
    return out.astype(np.float32)


def precision_recall(ref, sample, batch, fn, k=3):
    d_rr, d_ss, d_rs = blocked(ref, ref, batch, fn), blocked(sample, sample, batch, fn), blocked(ref, sample, batch, fn)
    r_ref, r_sample = np.sort(d_rr, 1)[:, k], np.sort(d_ss, 1)[:, k]
    precision = float(np.mean(np.any(d_rs <= r_ref[:, None], axis=0)))
    recall = float(np.mean(np.any(d_rs <= r_sample[None, :], axis=1)))
    return precision, recall, r_ref


def exact(u, v):
    return np.maximum((u * u).sum(1)[:, None] - 2 * u @ v.T + (v * v).sum(1)[None, :], 0.0)


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(20261207)
    g = {}
    a = rng.standard_normal((300, 64)).astype(np.float32) * 0.8 + 0.3
    b = (rng.standard_normal((300, 64)) @ (np.eye(64) + 0.2 * rng.standard_normal((64, 64))) * 0.7).astype(np.float32)
    g["fid/a"], g["fid/b"] = a, b
    g["fid/value"] = frechet(*stats(a), *stats(b))
    sa = np.abs(rng.standard_normal((64, 2023))).astype(np.float32)
    sb = (np.abs(rng.standard_normal((64, 2023))) * 1.1 + 0.05).astype(np.float32)
    g["sfid/a"], g["sfid/b"] = sa, sb
    g["sfid/value"] = frechet(*stats(sa), *stats(sb))
    logits = (rng.standard_normal((700, 20)) * 2.5).astype(np.float32)
    g["is/logits"] = logits
    g["is/value"] = inception_score(logits, 5000)
    g["is/value_split300"] = inception_score(logits, 300)
    ref = (rng.standard_normal((300, 64)) * 3.0).astype(np.float32)
    sample = (rng.standard_normal((300, 64)) * 3.0 + 0.4).astype(np.float32)
    ref[7] *= 12.0  # ‖·‖² ≈ 64·9·144 > 65504: fp16 overflows, the block goes fp32
    ref[250] *= 12.0
    g["pr/ref"], g["pr/sample"] = ref, sample
    for name, batch in [("pr", 128), ("pr1", 10000)]:
        p, r, radii = precision_recall(ref, sample, batch, evaluator_distances)
        g[name + "/precision"], g[name + "/recall"], g[name + "/radii_ref"] = p, r, radii
        print("%s: precision %.6f recall %.6f" % (name, p, r))
    pe, re, _ = precision_recall(ref.astype(np.float64), sample.astype(np.float64), 10000, exact)
    g["pr/precision_exact"], g["pr/recall_exact"] = pe, re
    print("exact: precision %.6f recall %.6f; fid %.9g sfid %.9g is %.9g / %.9g" % (
        pe, re, g["fid/value"], g["sfid/value"], g["is/value"], g["is/value_split300"]))
    path = os.path.join(out, "adm_metrics.h5")
    with h5py.File(path + ".tmp", "w", track_order=False) as f:
        for key, value in g.items():
            f.create_dataset(key, data=np.asarray(value))
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
