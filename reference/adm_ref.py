"""Reference values for the ImageNet judge of `ebcache eval` (pipeline/evaluation_imagenet.c),
written to <dir>/adm_eval.h5.

    make build/opt/ebcache && /usr/bin/python3 reference/adm_ref.py tests/golden

A NumPy/SciPy transcription of what openai/guided-diffusion evaluations/evaluator.py's main()
does with two .npz files: the reference batch's statistics are its mu, sigma, mu_s, sigma_s when
it has them (read_statistics), else those of its arr_0 activations; the samples' statistics come
from their activations; FID and sFID are FIDStatistics.frechet_distance (scipy's sqrtm of Σ1Σ2);
the Inception Score is that of the samples' pool features through the fc weights, in splits of
5000; precision and recall are the ManifoldEstimator's (k = 3, fp16 distances first) of the
reference's pool activations against the samples'. The formulas themselves are those of
reference/adm_metrics_ref.py (imported: one transcription), which keeps the mean in float64 as the
C code does (the evaluator's float32 mean moves FID by ~1e-7 relative).

  acts/...   fixed random activations of small widths (pool 24, spatial 40, 12 classes): 30
             samples against 26 reference rows, FID through the full covariances (30 > 24) and
             sFID through the C code's low-rank route (30 <= 40, the reference's 26 rows the
             factor); then against given statistics (stats/...: the samples' 30 rows the factor
             for sFID). Keys: sample_{pool,spatial,logits}, ref_{pool,spatial}, ref_{mu,sigma,
             mu_s,sigma_s}; {rows,stats}_{fid,sfid}[_exact], is, precision, recall.
  e2e/...    end to end: 32x32 uint8 images (samples in two shards s1 (3) and s2 (2), the
             reference ref (5)) through the random-weight Inception of reference/inception_ref.py
             (random_weights, the formula tests/inception_fixture.c repeats) as the C binary
             computes them (`ebcache features`, $EBCACHE_BIN or build/opt/ebcache; checked against
             the torch transcription to 1e-4), then the metrics in NumPy from those C features:
             rows_* against the reference's arr_0 activations, stats_* against a reference batch
             with mu = mu_gen, sigma = G·Gᵀ + diag(d) (and the same for mu_s, sigma_s from
             mu_s_gen, G_s, d_s): values exact in float64 whatever the summation order, so the C
             test rebuilds the very same matrices. sample_pool, ref_pool: the C features (the test
             checks that its own agree, so the weights are the same).

Every FID and sFID is stored twice: *_fid as the evaluator computes it (scipy's sqrtm of Σ1Σ2)
and *_fid_exact without a D x D square root (exact_frechet: the nuclear norm of A1·L2, another
route than the C code's n x n eigenvalues). On the tiny e2e sets (5 and 5 images in 2048
dimensions: covariances of rank 4) sqrtm of the singular product strays by up to ~2e-5 relative
(the square roots of ~2000 round-off eigenvalues add to the trace term; numpy's eigh route does
the same), so the two are asserted within 1e-4 of each other; the exact values are the sharp test.
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adm_metrics_ref as adm  # noqa: E402
import inception_ref  # noqa: E402
import st_io  # noqa: E402

SEED = 20261208
IS_SPLIT = 5000
PR_BATCH = 10000
SIDE = 32


# ---------------------------------------------------------------------------------------------------
# The evaluator's main(), on activations


def exact_frechet(x1, mu1, s1, mu2, s2, x2=None):
    """The same distance without a D x D square root: with Σ1 = A1ᵀA1 (A1 the centred rows of x1
    over √(n1 − 1)) and Σ2 = L2·L2ᵀ (L2 the same of x2, transposed, or Σ2's Cholesky factor),
    tr (Σ1^½ Σ2 Σ1^½)^½ is the nuclear norm of A1·L2 (its singular values summed)."""
    a1 = (x1.astype(np.float64) - mu1) / np.sqrt(len(x1) - 1)
    l2 = ((x2.astype(np.float64) - mu2) / np.sqrt(len(x2) - 1)).T if x2 is not None else np.linalg.cholesky(s2)
    nuclear = np.linalg.svd(a1 @ l2, compute_uv=False).sum()
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * nuclear)


def frechet_both(x1, mu1, s1, mu2, s2, x2, what):
    """(the evaluator's value: scipy's sqrtm of Σ1Σ2, the exact one); they agree to 1e-4."""
    value = adm.frechet(mu1, s1, mu2, s2)
    exact = exact_frechet(x1, mu1, s1, mu2, s2, x2)
    rel = abs(value - exact) / abs(exact)
    print(f"{what}: evaluator {value:.12g}, exact {exact:.12g} (rel {rel:.2g})")
    assert rel < 1e-4, f"{what}: scipy's sqrtm strays from the exact value"
    return value, exact


def evaluate(sample, ref, ref_stats, what):
    """sample, ref: {"pool", "spatial", "logits"}; ref_stats: (mu, sigma, mu_s, sigma_s) or None."""
    mu, sigma = adm.stats(sample["pool"])
    mu_s, sigma_s = adm.stats(sample["spatial"])
    rows = ref_stats is None
    if rows:
        ref_stats = adm.stats(ref["pool"]) + adm.stats(ref["spatial"])
    out = {}
    out["fid"], out["fid_exact"] = frechet_both(sample["pool"], mu, sigma, ref_stats[0], ref_stats[1],
                                                ref["pool"] if rows else None, what + " FID")
    out["sfid"], out["sfid_exact"] = frechet_both(sample["spatial"], mu_s, sigma_s, ref_stats[2], ref_stats[3],
                                                  ref["spatial"] if rows else None, what + " sFID")
    if sample.get("logits") is not None:
        out["is"] = adm.inception_score(sample["logits"], IS_SPLIT)
    p, r, _ = adm.precision_recall(ref["pool"], sample["pool"], PR_BATCH, adm.evaluator_distances)
    out["precision"], out["recall"] = p, r
    print(what, {k: round(v, 8) for k, v in out.items()})
    return out


def store(g, prefix, rows, given):
    for key in ("fid", "sfid", "fid_exact", "sfid_exact"):
        g[f"{prefix}/rows_{key}"], g[f"{prefix}/stats_{key}"] = rows[key], given[key]
    g[f"{prefix}/is"], g[f"{prefix}/precision"], g[f"{prefix}/recall"] = rows["is"], rows["precision"], rows["recall"]


# ---------------------------------------------------------------------------------------------------
# Part 1: fixed random activations


def random_psd(rng, d):
    b = rng.standard_normal((d, d))
    return b @ b.T / d + 0.1 * np.eye(d)


def acts_part(g):
    rng = np.random.default_rng(SEED)
    dp, ds, k = 24, 40, 12
    sample = {"pool": (rng.standard_normal((30, dp)) * 0.9 + 0.2).astype(np.float32),
              "spatial": np.abs(rng.standard_normal((30, ds))).astype(np.float32),
              "logits": (rng.standard_normal((30, k)) * 2.0).astype(np.float32)}
    ref = {"pool": rng.standard_normal((26, dp)).astype(np.float32),
           "spatial": (np.abs(rng.standard_normal((26, ds))) * 1.1).astype(np.float32)}
    stats = (rng.standard_normal(dp) * 0.1, random_psd(rng, dp), np.abs(rng.standard_normal(ds)), random_psd(rng, ds))
    rows = evaluate(sample, ref, None, "acts rows")
    given = evaluate(sample, ref, stats, "acts stats")
    for key in ("pool", "spatial", "logits"):
        g[f"acts/sample_{key}"] = sample[key]
    for key in ("pool", "spatial"):
        g[f"acts/ref_{key}"] = ref[key]
    for name, value in zip(("mu", "sigma", "mu_s", "sigma_s"), stats):
        g[f"acts/ref_{name}"] = value
    store(g, "acts", rows, given)


# ---------------------------------------------------------------------------------------------------
# Part 2: end to end through the C features


def pattern_images(rng, kinds):
    """32x32 RGB images of the given kinds: 0 a flat colour, 1 a gradient, 2 stripes, 3 a
    checkerboard, 4 noise, 5 a flat near-grey, 6 black. The reference is mostly near-grey and the
    samples partly far from it, so that precision is neither 0 nor 1."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    out = np.zeros((len(kinds), SIDE, SIDE, 3), np.uint8)
    for i, kind in enumerate(kinds):
        c = rng.integers(0, 256, 3).astype(np.float64)
        if kind == 0:
            img = np.broadcast_to(c, (SIDE, SIDE, 3))
        elif kind == 1:
            t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / SIDE
            img = c * (0.5 + 0.5 * t[..., None])
        elif kind == 2:
            f = rng.integers(2, 9)
            img = c * (0.5 + 0.5 * np.sin(2 * np.pi * f * xx / SIDE))[..., None]
        elif kind == 3:
            cell = rng.integers(2, 9)
            img = np.where((((xx // cell) + (yy // cell)) % 2)[..., None] > 0, c, 255 - c)
        elif kind == 4:
            img = c + rng.normal(0, rng.uniform(10, 80), (SIDE, SIDE, 3))
        elif kind == 5:
            img = np.broadcast_to(128 + rng.integers(-20, 21, 3).astype(np.float64), (SIDE, SIDE, 3))
        else:
            img = np.zeros((SIDE, SIDE, 3))
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def c_features(binary, weights, images, work):
    out = os.path.join(work, "features.h5")
    if os.path.exists(out):
        os.remove(out)
    subprocess.run([binary, "features", "--inception", weights, "--images", images, "--output", out, "--threads", "2"],
                   check=True)
    with h5py.File(out, "r") as f:
        return {k: f[k][...] for k in ("pool", "spatial", "logits")}


def exact_stats_generator(rng, d, centre):
    """mu: centre plus noise, in multiples of 2^-10; G (d, 3) in multiples of 2^-10 in [−8, 8]·2^-10,
    diag in multiples of 2^-16 in [1, 16]·2^-16: sigma = G·Gᵀ + diag(diag) is exact in float64 in
    any summation order, and of the scale of the features' own covariance."""
    mu = np.round(centre.astype(np.float64) * 1024 + rng.normal(0, 20, d)) / 1024
    G = rng.integers(-8, 9, (d, 3)).astype(np.float64) / 1024
    diag = rng.integers(1, 17, d).astype(np.float64) / 65536
    return mu, G, diag


def e2e_part(g, binary):
    rng = np.random.default_rng(SEED + 1)
    s1, s2, ref_images = pattern_images(rng, (5, 5, 4)), pattern_images(rng, (3, 6)), pattern_images(rng, (5, 5, 5, 5, 5))
    with tempfile.TemporaryDirectory() as work:
        weights = os.path.join(work, "inception.safetensors")
        st_io.save(weights, inception_ref.random_weights())
        paths = {}
        for name, images in (("s1", s1), ("s2", s2), ("ref", ref_images)):
            paths[name] = os.path.join(work, name + ".npz")
            np.savez(paths[name], images)
        sample = c_features(binary, weights, paths["s1"] + "," + paths["s2"], work)
        ref = c_features(binary, weights, paths["ref"], work)
    # the C features against the torch transcription of the network
    net = inception_ref.FIDInception(inception_ref.random_weights())
    for name, images, feats in (("samples", np.concatenate([s1, s2]), sample), ("reference", ref_images, ref)):
        torch_feats = inception_ref.features(net, images)
        for key, want in zip(("pool", "spatial", "logits"), torch_feats):
            want = want.numpy()
            err = np.abs(feats[key] - want).max() / np.abs(want).max()
            print(f"{name} {key}: C vs torch rel err {err:.2g}")
            assert err < 1e-4
    rows = evaluate(sample, ref, None, "e2e rows")
    mu, G, d = exact_stats_generator(rng, 2048, ref["pool"].mean(0))
    mu_s, G_s, d_s = exact_stats_generator(rng, 2023, ref["spatial"].mean(0))
    stats = (mu, G @ G.T + np.diag(d), mu_s, G_s @ G_s.T + np.diag(d_s))
    given = evaluate(sample, ref, stats, "e2e stats")
    g["e2e/s1"], g["e2e/s2"], g["e2e/ref"] = s1, s2, ref_images
    g["e2e/sample_pool"], g["e2e/ref_pool"] = sample["pool"], ref["pool"]
    for name, value in (("mu_gen", mu), ("G", G), ("d", d), ("mu_s_gen", mu_s), ("G_s", G_s), ("d_s", d_s)):
        g["e2e/" + name] = value
    store(g, "e2e", rows, given)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden"
    binary = os.environ.get("EBCACHE_BIN", "build/opt/ebcache")
    g = {}
    acts_part(g)
    e2e_part(g, binary)
    path = os.path.join(out, "adm_eval.h5")
    with h5py.File(path + ".tmp", "w", track_order=False) as f:
        f.attrs["seed"] = SEED
        for key, value in g.items():
            f.create_dataset(key, data=np.asarray(value))
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
