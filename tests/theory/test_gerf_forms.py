"""theory.gerf_forms: consistency with the Performers closed forms and Monte Carlo checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theory import gerf_forms
from theory.closed_forms import mse_hyperbolic, mse_trigonometric, positive_single_variance
from theory.orthogonal_forms import mse_orthogonal


def test_gerf_at_zero_is_the_positive_map():
    x = np.array([0.3, -0.2, 0.5])
    y = np.array([0.1, 0.4, -0.2])
    assert gerf_forms.gerf_single_variance(x, y, 0.0) == pytest.approx(
        positive_single_variance(x, y), rel=1e-12
    )
    assert gerf_forms.mse_favorpp(x, y, 3, 0.0) == pytest.approx(mse_orthogonal(x, y, 3), rel=1e-12)


def test_optimal_a_beats_its_neighbours_and_zero():
    x = np.array([0.5, 0.2, -0.1, 0.3])
    y = np.array([0.4, 0.1, 0.2, 0.2])
    a = float(gerf_forms.oprf_optimal_a(np.sum((x + y) ** 2) / 4))
    v = gerf_forms.gerf_single_variance
    assert a < 0
    assert v(x, y, a) < v(x, y, a - 1e-3)
    assert v(x, y, a) < v(x, y, a + 1e-3)
    assert v(x, y, a) < v(x, y, 0.0)
    assert gerf_forms.oprf_optimal_a(0.0) == 0.0
    with pytest.raises(ValueError, match="rho"):
        gerf_forms.oprf_optimal_a(-1.0)


def test_favorpp_mse_keeps_the_orthogonal_gain():
    x = np.array([0.5, 0.2, -0.1, 0.3])
    y = np.array([0.4, 0.1, 0.2, 0.2])
    a = float(gerf_forms.oprf_optimal_a(np.sum((x + y) ** 2) / 4))
    gain_pos = mse_orthogonal(x, y, 4) - positive_single_variance(x, y) / 4
    gain_gerf = gerf_forms.mse_favorpp(x, y, 4, a) - gerf_forms.mse_gerf(x, y, 4, a)
    assert gain_gerf == pytest.approx(gain_pos, rel=1e-12)
    assert gain_gerf < 0


def test_gerf_is_a_special_case_of_derf():
    d, a, x, y = 3, -0.15, np.array([0.3, -0.2, 0.5]), np.array([0.1, 0.4, -0.2])
    params = gerf_forms.derf_parameters(a * np.eye(d), math.sqrt(1 - 4 * a) * np.eye(d))
    np.testing.assert_allclose(params["b2"], math.sqrt(1 - 4 * a) * np.eye(d), rtol=1e-12)
    np.testing.assert_allclose(params["c1"], -0.5 * np.eye(d), rtol=1e-12)
    assert gerf_forms.derf_mean(x, y, params) == pytest.approx(math.exp(x @ y), rel=1e-12)
    assert gerf_forms.derf_second_moment(x, y, params) == pytest.approx(
        gerf_forms.gerf_second_moment(x, y, a), rel=1e-12
    )


def _derf_sample(params, x, y, w):
    def f(b, c, v):
        return np.exp(
            params["log_d"] + np.einsum("ti,ij,tj->t", w, params["a"], w) + w @ (b @ v) + v @ c @ v
        )

    return f(params["b1"], params["c1"], x) * f(params["b2"], params["c2"], y)


@pytest.mark.statistical
def test_derf_moments_by_monte_carlo():
    """Dense random A (I - 16 A > 0 for a finite 4th moment) and B: mean and second moment.

    200000 draws; 5-sigma rule with the sample standard errors, two cases (false-alarm
    rate about 1e-6). Negative control: a parameter set with C^(2) doubled fails.
    """
    rng = np.random.default_rng(1310)
    d = 3
    g = rng.standard_normal((d, d))
    a = 0.02 * (g + g.T)
    b1 = np.eye(d) + 0.3 * rng.standard_normal((d, d))
    params = gerf_forms.derf_parameters(a, b1)
    x = np.array([0.3, -0.2, 0.4])
    y = np.array([0.2, 0.3, -0.1])
    w = rng.standard_normal((200_000, d))
    prod = _derf_sample(params, x, y, w)
    n = prod.size
    z_mean = (prod.mean() - math.exp(x @ y)) / (prod.std(ddof=1) / math.sqrt(n))
    sq = prod**2
    z_sq = (sq.mean() - gerf_forms.derf_second_moment(x, y, params)) / (
        sq.std(ddof=1) / math.sqrt(n)
    )
    assert abs(z_mean) < 5.3
    assert abs(z_sq) < 5.3
    assert gerf_forms.derf_mean(x, y, params) == pytest.approx(math.exp(x @ y), rel=1e-12)
    broken = dict(params, c2=2 * params["c2"])
    bad = _derf_sample(broken, x, y, w)
    assert abs((bad.mean() - math.exp(x @ y)) / (bad.std(ddof=1) / math.sqrt(n))) > 5.3


def test_derf_parameters_reject_invalid():
    with pytest.raises(ValueError, match="positive definite"):
        gerf_forms.derf_parameters(0.3 * np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        gerf_forms.derf_parameters(np.array([[0.0, 0.1], [0.0, 0.0]]), np.eye(2))


def test_hybrid_mse_limits():
    x = np.array([0.5, 0.1, -0.2])
    # theta = 0 and pi with equal norms: zero MSE for the hyperbolic-weighted convention only.
    for y in (x, -x):
        assert gerf_forms.mse_hybrid(x, y, 4, 3) == pytest.approx(0.0, abs=1e-15)
        assert gerf_forms.mse_hybrid(x, y, 4, 3, weighted="trigonometric") > 1e-4
    # A deterministic weight (m_lambda -> infinity) at lambda = 1/2, equal norms:
    # (Var U + Var V) / 4.
    y = np.array([-0.1, 0.5, 0.0])
    y *= np.linalg.norm(x) / np.linalg.norm(y)
    lam = gerf_forms.hybrid_lambda(x, y)
    big = gerf_forms.mse_hybrid(x, y, 4, 10**12)
    var_u, var_v = mse_hyperbolic(x, y, 4), mse_trigonometric(x, y, 4)
    expected = lam**2 * var_u + (1 - lam) ** 2 * var_v  # Cov = 0 for equal norms
    assert big == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="weighted"):
        gerf_forms.mse_hybrid(x, y, 4, 3, weighted="both")


def test_saderf_psi_matches_the_objective_minimum():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((15, 3)) * np.array([2.0, 1.0, 0.3])
    y = rng.standard_normal((15, 3)) / np.array([2.0, 1.0, 0.3])
    psi = gerf_forms.saderf_psi(x, y)
    best = gerf_forms.saderf_objective(psi, x, y)
    for delta in (0.9, 1.1):
        for j in range(3):
            p = psi.copy()
            p[j] *= delta
            assert gerf_forms.saderf_objective(p, x, y) > best
