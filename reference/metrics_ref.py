"""Reference values for analyze/metrics.c, written to <dir>/metrics.h5.

    /usr/bin/python3 reference/metrics_ref.py tests/golden

numpy only (scipy is optional on the build machine). Each value is computed
along a different route than the C code takes, so the tests compare two
independent implementations:

  fd/<case>   Fréchet distance of two Gaussians with non-commuting
              covariances. The trace term comes from the eigenvalues of the
              non-symmetric product Σ1·Σ2 (general eigen-solver), where the C
              code takes the symmetric Σ1^½ Σ2 Σ1^½. "singular" has a rank-3
              Σ1, so the clamping of round-off eigenvalues is exercised.
  fd/<case>/mean_term, cov_term  the two terms of that distance, ‖μ1 − μ2‖²
              and the rest (their sum is value).
  pca_fd      the pixel-space judge: FD of real and fake rows projected on the
              top k principal components of the real rows. numpy takes them
              from an SVD of the centred real rows (the C code: a symmetric
              eigen-solver on their covariance), then the route of fd/.
  ssim/<case> SSIM per image with a direct 2-D weighted sum over each valid
              window position (the C code filters separably). "clipped" has
              sides shorter than the 11-wide window.
"""
import os
import sys

import h5py
import numpy as np

SSIM_WIN, SSIM_SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def frechet_via_product(mu1, s1, mu2, s2):
    lam = np.linalg.eigvals(s1 @ s2)
    trace_sqrt = np.sum(np.sqrt(np.maximum(lam.real, 0.0)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def frechet_via_symmetric(mu1, s1, mu2, s2):
    """Cross-check of the golden itself (the C code's route)."""
    lam, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.maximum(lam, 0.0))) @ v.T
    mu = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.sum(np.sqrt(np.maximum(mu, 0.0))))


def frechet_terms(mu1, s1, mu2, s2):
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    return mean_term, frechet_via_product(mu1, s1, mu2, s2) - mean_term


def pca_fd(real, fake, k):
    """FD of real and fake (N, D) in the top-k principal components of real; (fd, mean_term, cov_term)."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    centre = real.mean(axis=0)
    _, _, vt = np.linalg.svd(real - centre, full_matrices=False)
    basis = vt[:k]
    pr, pf = (real - centre) @ basis.T, (fake - centre) @ basis.T
    # float32 like the C projection, so both sides see the same rounding
    pr, pf = pr.astype(np.float32).astype(np.float64), pf.astype(np.float32).astype(np.float64)
    mean_term, cov_term = frechet_terms(pf.mean(axis=0), np.cov(pf, rowvar=False), pr.mean(axis=0),
                                        np.cov(pr, rowvar=False))
    return mean_term + cov_term, mean_term, cov_term


def random_cov(rng, d, rank):
    a = rng.standard_normal((d, rank)) * rng.uniform(0.3, 2.0, size=rank)
    return a @ a.T / rank


def gaussian_window(n):
    t = np.arange(n) - 0.5 * (n - 1)
    g = np.exp(-t * t / (2.0 * SSIM_SIGMA**2))
    return g / g.sum()


def ssim_image(a, b, data_range):
    """Mean over channels of the mean SSIM map over the valid region; a, b (C, H, W)."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    _, h, w = a.shape
    wh, ww = min(SSIM_WIN, h), min(SSIM_WIN, w)
    win = np.outer(gaussian_window(wh), gaussian_window(ww))
    per_channel = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        values = []
        for i in range(h - wh + 1):
            for j in range(w - ww + 1):
                px, py = x[i : i + wh, j : j + ww], y[i : i + wh, j : j + ww]
                mx, my = np.sum(win * px), np.sum(win * py)
                vx = np.sum(win * (px - mx) ** 2)
                vy = np.sum(win * (py - my) ** 2)
                cxy = np.sum(win * (px - mx) * (py - my))
                values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def psnr_image(a, b, data_range):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(data_range**2 / mse))


def main(out_dir):
    rng = np.random.default_rng(20240531)
    path = os.path.join(out_dir, "metrics.h5")
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        d = 6
        for case, rank1 in (("full", d), ("singular", 3)):
            mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
            s1, s2 = random_cov(rng, d, rank1), random_cov(rng, d, d)
            assert np.linalg.norm(s1 @ s2 - s2 @ s1) > 0.1 * np.linalg.norm(s1 @ s2), "covariances commute"
            value = frechet_via_product(mu1, s1, mu2, s2)
            check = frechet_via_symmetric(mu1, s1, mu2, s2)
            # √ of an eigenvalue that round-off moved off 0 by ε‖M‖ is ~√ε: a
            # singular Σ1 limits any route to about 1e-7 relative.
            tol = 1e-10 if rank1 == d else 1e-6
            assert abs(value - check) <= tol * (np.trace(s1) + np.trace(s2)), (value, check)
            g = f.create_group(f"fd/{case}")
            for name, arr in (("mu1", mu1), ("cov1", s1), ("mu2", mu2), ("cov2", s2)):
                g[name] = arr
            g["value"] = value
            g["mean_term"], g["cov_term"] = frechet_terms(mu1, s1, mu2, s2)

        # pca_fd: correlated "pixels" with a decaying spectrum (distinct eigenvalues), fake rows
        # shifted, rescaled and mixed so that both terms are non-zero
        n_real, n_fake, dim, k = 60, 45, 12, 4
        mix = rng.standard_normal((dim, dim)) * (0.8 ** np.arange(dim))
        real = (rng.standard_normal((n_real, dim)) @ mix.T).astype(np.float32)
        fake = (0.3 + 1.3 * rng.standard_normal((n_fake, dim)) @ mix.T).astype(np.float32)
        fd, mean_term, cov_term = pca_fd(real, fake, k)
        assert mean_term > 0.05 * fd and cov_term > 0.05 * fd, (mean_term, cov_term)
        g = f.create_group("pca_fd")
        g["real"], g["fake"], g["k"] = real, fake, float(k)
        g["value"], g["mean_term"], g["cov_term"] = fd, mean_term, cov_term

        for case, shape in (("full", (3, 2, 16, 13)), ("clipped", (2, 1, 6, 9))):
            a = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
            # b: a blurred-and-noisy copy, so SSIM lands well inside (0, 1).
            b = (0.7 * a + 0.2 * np.roll(a, 1, axis=-1) + 0.15 * rng.standard_normal(shape)).astype(np.float32)
            data_range = 2.0
            g = f.create_group(f"ssim/{case}")
            g["a"], g["b"] = a, b
            g["data_range"] = data_range
            g["ssim"] = np.array([ssim_image(x, y, data_range) for x, y in zip(a, b)])
            g["psnr"] = np.array([psnr_image(x, y, data_range) for x, y in zip(a, b)])
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden")
