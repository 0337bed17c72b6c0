"""theory.coupling_forms: exact identities and agreement with seeded Monte Carlo.

Monte Carlo decisions use |z| >= 5 (false-alarm rate 5.7e-7, formulas §8.2).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import Matern
from sklearn.metrics.pairwise import laplacian_kernel

from theory.closed_forms import rff_variance_cos_sin
from theory.coupling_forms import (
    laplacian_kernel_value,
    matern_kernel_value,
    mse_simplex,
    trig_variance,
)
from theory.orthogonal_forms import mse_orthogonal

Z_CRIT = 5.0


def test_kernel_values_match_sklearn():
    rng = np.random.default_rng(0)
    delta = rng.standard_normal((7, 4))
    np.testing.assert_allclose(
        laplacian_kernel_value(delta, 0.7),
        laplacian_kernel(delta, np.zeros((1, 4)), gamma=0.7)[:, 0],
        rtol=1e-13,
    )
    for nu in (0.5, 1.5, 2.5):
        np.testing.assert_allclose(
            matern_kernel_value(delta, nu, 1.3),
            Matern(length_scale=1.3, nu=nu)(delta, np.zeros((1, 4)))[:, 0],
            rtol=1e-12,
        )
    with pytest.raises(ValueError, match="nu must be one of"):
        matern_kernel_value(delta, 3.5)


def test_trig_variance_reduces_to_the_gaussian_formula():
    for r in (0.1, 0.8, 2.0):
        delta = np.array([r, 0.0, 0.0])
        np.testing.assert_allclose(
            trig_variance(delta, 64, "rbf"), rff_variance_cos_sin(r, 64), rtol=1e-13
        )


@pytest.mark.statistical
@pytest.mark.parametrize(("kernel", "nu"), [("laplacian", None), ("matern", 0.5), ("matern", 2.5)])
def test_trig_variance_matches_monte_carlo(kernel, nu):
    """Var of (1/m) sum cos(w . delta) with i.i.d. rows from the kernel's spectral law."""
    rng = np.random.default_rng(5)
    delta = np.array([0.6, -0.3, 0.2])
    m, n = 8, 40000
    if kernel == "laplacian":
        w = rng.standard_cauchy((n, m, 3))
        params = {}
    else:
        s = rng.chisquare(2 * nu, size=(n, m, 1))
        w = rng.standard_normal((n, m, 3)) * np.sqrt(2 * nu / s)
        params = {"nu": nu}
    est = np.cos(w @ delta).mean(axis=1)
    sq = (est - est.mean()) ** 2
    exact = trig_variance(delta, 2 * m, kernel, **params)
    z = (sq.mean() - exact) / (sq.std(ddof=1) / np.sqrt(n))
    assert abs(z) < Z_CRIT, z


def test_simplex_mse_below_orthogonal_for_positive_features():
    x = np.array([0.3, -0.2, 0.1, 0.25, 0.0, -0.1])
    y = np.array([0.2, 0.1, -0.3, 0.05, 0.2, 0.1])
    sim = mse_simplex(x, y, 6)
    orth = mse_orthogonal(x, y, 6)
    assert sim < orth
    # m = 1 has no pairs: the single-projection variance, equal for every coupling.
    assert mse_simplex(x, y, 1) == pytest.approx(mse_orthogonal(x, y, 1), rel=1e-12)


@pytest.mark.statistical
def test_simplex_mse_matches_monte_carlo():
    from favor.couplings import simplex_projection

    x = np.array([0.3, -0.2, 0.1, 0.25, 0.0, -0.1])
    y = np.array([0.2, 0.1, -0.3, 0.05, 0.2, 0.1])
    z_vec = x + y
    lam = np.exp(-(x @ x + y @ y) / 2)
    exact_k = np.exp(x @ y)
    rng = np.random.default_rng(11)
    n, m = 6000, 9  # one full block of 6 and a cut block of 3
    sq = np.array(
        [
            (lam * np.exp(simplex_projection(m, 6, rng=rng) @ z_vec).mean() - exact_k) ** 2
            for _ in range(n)
        ]
    )
    exact = mse_simplex(x, y, m)
    z = (sq.mean() - exact) / (sq.std(ddof=1) / np.sqrt(n))
    assert abs(z) < Z_CRIT, z
