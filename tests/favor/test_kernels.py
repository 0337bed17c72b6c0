"""favor.kernels: exact Laplacian and Matérn kernels against scikit-learn; their spectral laws.

Statistical decisions use |z| >= 5 (false-alarm rate 5.7e-7, formulas §8.2), each with a
negative control that the same rule rejects.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import Matern
from sklearn.metrics.pairwise import laplacian_kernel as sk_laplacian

from favor.couplings import qmc_projection, simplex_projection, structured_projection
from favor.kernels import (
    cauchy_projection,
    laplacian_kernel,
    matern_kernel,
    matern_profile,
    student_t_row_scales,
)
from favor.sampling import iid_projection, orthogonal_projection

Z_CRIT = 5.0


@pytest.mark.parametrize("gamma", [0.01, 0.3, 2.0])
def test_laplacian_equals_sklearn(gamma, rng):
    x = rng.standard_normal((17, 5))
    y = rng.standard_normal((9, 5))
    np.testing.assert_allclose(
        laplacian_kernel(x, y, gamma=gamma), sk_laplacian(x, y, gamma=gamma), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
@pytest.mark.parametrize("length_scale", [0.3, 1.0, 4.0])
def test_matern_equals_sklearn(nu, length_scale, rng):
    x = rng.standard_normal((13, 4))
    y = np.concatenate([rng.standard_normal((6, 4)), x[:2] + 1e-9])  # near-duplicates too
    expected = Matern(length_scale=length_scale, nu=nu)(x, y)
    np.testing.assert_allclose(
        matern_kernel(x, y, nu=nu, length_scale=length_scale), expected, rtol=1e-12, atol=1e-15
    )


def test_large_inputs_are_chunked_and_exact(rng):
    x = rng.standard_normal((300, 64))
    np.testing.assert_allclose(
        laplacian_kernel(x, x, gamma=0.01), sk_laplacian(x, x, gamma=0.01), rtol=1e-12
    )


def test_bad_arguments_are_named():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="nu must be one of"):
        matern_kernel(x, x, nu=1.0)
    with pytest.raises(ValueError, match="length_scale"):
        matern_kernel(x, x, length_scale=0.0)
    with pytest.raises(ValueError, match="gamma"):
        laplacian_kernel(x, x, gamma=-1.0)
    with pytest.raises(ValueError, match="same last axis"):
        laplacian_kernel(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="not unbiased for the Laplacian kernel"):
        cauchy_projection(4, 3, projection="orthogonal")


def test_matern_profile_limits():
    np.testing.assert_allclose(matern_profile(0.0, 2.5), 1.0)
    assert matern_profile(50.0, 0.5) == pytest.approx(np.exp(-50.0))


# --- spectral laws: E cos(w . delta) = k(delta) ------------------------------------------


def _z(draw, kernel_value, delta, n_trials=3000, seed=0):
    rng = np.random.default_rng(seed)
    values = np.array([np.cos(draw(rng) @ delta).mean() for _ in range(n_trials)])
    diff = values.mean() - kernel_value
    se = values.std(ddof=1) / np.sqrt(n_trials)
    return diff / se if se > 0 else (np.inf if diff != 0 else 0.0)


_DELTA = np.array([0.9, -0.4, 0.3, 0.7, -0.2])

_MATERN_BASES = {
    "iid": iid_projection,
    "orthogonal": orthogonal_projection,
    "structured": structured_projection,
    "qmc": qmc_projection,
    "simplex": simplex_projection,
}


def _matern(base, nu, gaussian_norms=False):
    def draw(rng):
        w = base(11, 5, rng=rng)
        return w if gaussian_norms else w * student_t_row_scales(11, nu, rng=rng)[:, None]

    return draw


@pytest.mark.statistical
@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
@pytest.mark.parametrize("coupling", ["iid", "orthogonal", "qmc", "simplex"])
def test_matern_spectral_law_is_unbiased(coupling, nu):
    exact = matern_kernel(_DELTA[None], np.zeros((1, 5)), nu=nu)[0, 0]
    n_trials = 400 if coupling == "qmc" else 3000  # building a Sobol engine costs ~10 ms
    draw = _matern(_MATERN_BASES[coupling], nu)
    assert abs(_z(draw, exact, _DELTA, n_trials=n_trials)) < Z_CRIT


@pytest.mark.statistical
@pytest.mark.parametrize("nu", [0.5, 2.5])
def test_matern_with_gaussian_norms_is_rejected(nu):
    """Negative control: Gaussian rows estimate the RBF kernel, not the Matérn kernel."""
    exact = matern_kernel(_DELTA[None], np.zeros((1, 5)), nu=nu)[0, 0]
    assert abs(_z(_matern(iid_projection, nu, gaussian_norms=True), exact, _DELTA)) >= Z_CRIT


@pytest.mark.statistical
@pytest.mark.parametrize("coupling", ["iid", "qmc"])
def test_cauchy_rows_are_unbiased_for_laplacian(coupling):
    exact = laplacian_kernel(_DELTA[None], np.zeros((1, 5)))[0, 0]
    draw = lambda rng: cauchy_projection(16, 5, projection=coupling, rng=rng)  # noqa: E731
    assert abs(_z(draw, exact, _DELTA, n_trials=400 if coupling == "qmc" else 3000)) < Z_CRIT


@pytest.mark.statistical
def test_rotated_cauchy_rows_are_rejected_for_laplacian():
    """Negative control: Haar directions with the Cauchy rows' lengths are biased.

    A rotation-invariant law depends on the L2 norm only; at the diagonal difference the
    L1 norm (2.5) is far from the L2 norm (1.12), so it cannot match the Laplacian kernel.
    """
    delta = np.full(5, 0.5)
    exact = laplacian_kernel(delta[None], np.zeros((1, 5)))[0, 0]

    def draw(rng):
        lengths = np.linalg.norm(rng.standard_cauchy((5, 5)), axis=1)
        return orthogonal_projection(5, 5, norms="fixed", rng=rng) / np.sqrt(5) * lengths[:, None]

    assert abs(_z(draw, exact, delta)) >= Z_CRIT
