"""theory.closed_forms against brute force: 1-D quadrature, direct integration, large Monte Carlo.

Monte Carlo comparisons here use NumPy only (never favor) and the |z| < 5 rule
(two-sided false-alarm rate 5.7e-7 per comparison under the CLT; formulas §8.2).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from theory import attention_forms, orthogonal_forms, uniform_bounds
from theory import closed_forms as cf

Z_CRIT = 5.0

# Gauss-Hermite (probabilists') nodes: E[f(N(0, 1))] = sum w f(x) / sqrt(2 pi).
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(120)
_WEIGHTS = _WEIGHTS / np.sqrt(2 * np.pi)


def gauss_expectation(f, sd: float) -> float:
    """E[f(s)] for s ~ N(0, sd^2) by 120-point Gauss-Hermite quadrature."""
    return float(np.sum(_WEIGHTS * f(sd * _NODES)))


PAIRS = [
    (np.array([0.3, -0.2, 0.5]), np.array([0.1, 0.4, -0.3])),
    (np.array([0.8, 0.1, 0.0, 0.2]), np.array([0.5, -0.6, 0.3, 0.1])),
    (np.array([1.2, 0.0]), np.array([-1.1, 0.3])),
]


@pytest.mark.parametrize(("x", "y"), PAIRS)
def test_positive_mse_matches_one_dimensional_quadrature(x, y):
    # Y = Lambda exp(w.z), w.z ~ N(0, |z|^2): Var_1 = E[Y^2] - SM^2.
    z, lam = x + y, np.exp(-(x @ x + y @ y) / 2)
    second = gauss_expectation(lambda s: (lam * np.exp(s)) ** 2, np.linalg.norm(z))
    var1 = second - np.exp(x @ y) ** 2
    assert cf.mse_positive(x, y, 7) == pytest.approx(var1 / 7, rel=1e-10)


@pytest.mark.parametrize(("x", "y"), PAIRS)
def test_hyperbolic_mse_matches_one_dimensional_quadrature(x, y):
    z, lam = x + y, np.exp(-(x @ x + y @ y) / 2)
    second = gauss_expectation(lambda s: (lam * np.cosh(s)) ** 2, np.linalg.norm(z))
    var1 = second - np.exp(x @ y) ** 2
    assert cf.mse_hyperbolic(x, y, 5) == pytest.approx(var1 / 5, rel=1e-10)


@pytest.mark.parametrize(("x", "y"), PAIRS)
@pytest.mark.parametrize("kernel", ["softmax", "rbf"])
def test_trigonometric_mse_matches_one_dimensional_quadrature(x, y, kernel):
    delta = np.linalg.norm(x - y)
    h = np.exp((x @ x + y @ y) / 2) if kernel == "softmax" else 1.0
    mean = gauss_expectation(np.cos, delta)
    var1 = h**2 * (gauss_expectation(lambda s: np.cos(s) ** 2, delta) - mean**2)
    assert cf.mse_trigonometric(x, y, 3, kernel=kernel) == pytest.approx(var1 / 3, rel=1e-9)


@pytest.mark.parametrize(("x", "y"), PAIRS)
def test_gaussian_mse_is_softmax_mse_times_factor_squared(x, y):
    factor = np.exp(-(x @ x + y @ y) / 2)
    for form in (cf.mse_positive, cf.mse_hyperbolic, cf.mse_trigonometric):
        assert form(x, y, 4, kernel="rbf") == pytest.approx(factor**2 * form(x, y, 4), rel=1e-12)


@pytest.mark.parametrize("d", [2, 3, 8, 17])
def test_smreg_bessel_equals_series_and_is_below_softmax(d):
    rng = np.random.default_rng(d)
    x, y = 0.5 * rng.standard_normal((2, 5, d))
    bessel, series = cf.smreg_kernel(x, y), cf.smreg_kernel_series(x, y)
    np.testing.assert_allclose(bessel, series, rtol=1e-12)
    assert np.all(bessel <= cf.softmax_kernel_value(x, y) * (1 + 1e-14))


def test_smreg_mean_and_variance_match_monte_carlo_on_the_sphere():
    rng = np.random.default_rng(1)
    d, n = 5, 400_000
    x, y = np.array([0.4, 0.2, 0.0, -0.3, 0.1]), np.array([0.3, -0.1, 0.2, 0.1, 0.0])
    u = rng.standard_normal((n, d))
    w = np.sqrt(d) * u / np.linalg.norm(u, axis=1, keepdims=True)
    sample = np.exp(w @ (x + y) - (x @ x + y @ y) / 2)
    se = sample.std() / np.sqrt(n)
    assert abs(sample.mean() - cf.smreg_kernel(x, y)) < Z_CRIT * se
    assert sample.var() == pytest.approx(cf.smreg_positive_variance(x, y), rel=0.03)


def test_bessel_j_kernel_matches_monte_carlo_on_the_sphere():
    rng = np.random.default_rng(2)
    d, n = 4, 400_000
    x, y = np.array([0.9, 0.2, 0.0, -0.3]), np.array([-0.3, 0.4, 0.2, 0.1])
    u = rng.standard_normal((n, d))
    w = np.sqrt(d) * u / np.linalg.norm(u, axis=1, keepdims=True)
    sample = np.cos(w @ (x - y))
    assert abs(sample.mean() - cf.bessel_j_kernel(x, y)) < Z_CRIT * sample.std() / np.sqrt(n)


@pytest.mark.parametrize("angle", [0.3, 1.4, 2.9])
def test_arccos_moments_match_polar_integration(angle):
    # w ~ N(0, I_2) in polar form: radius Rayleigh (E r^2 = 2, E r^4 = 8), angle uniform.
    nx, ny = 1.3, 0.7
    x = np.array([nx, 0.0])
    y = ny * np.array([np.cos(angle), np.sin(angle)])

    def moment(power: int) -> float:
        def f(phi):
            return (nx * ny * max(np.cos(phi), 0) * max(np.cos(phi - angle), 0)) ** power

        ang = integrate.quad(f, 0, 2 * np.pi, points=[np.pi / 2, 3 * np.pi / 2], epsabs=1e-13)[0]
        return {1: 2.0, 2: 8.0}[power] * ang / (2 * np.pi)

    assert cf.arccos_kernel_value(x, y) == pytest.approx(moment(1), rel=1e-9)
    assert cf.arccos_second_moment(x, y) == pytest.approx(moment(2), rel=1e-9)
    assert cf.mse_relu(x, y, 4) == pytest.approx((moment(2) - moment(1) ** 2) / 4, rel=1e-9)


@pytest.mark.parametrize("d", [3, 8])
@pytest.mark.parametrize("t", [-1.3, 0.0, 0.7])
def test_chi_mgf_matches_direct_integration(d, t):
    direct = integrate.quad(lambda r: np.exp(t * r) * stats.chi(d).pdf(r), 0, 40)[0]
    assert orthogonal_forms.chi_mgf(t, d) == pytest.approx(direct, rel=1e-9)


def _haar_pairs(rng: np.random.Generator, d: int, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, d, d)))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    rows = np.swapaxes(q, -1, -2)[:, :2]
    return rows * np.sqrt(rng.chisquare(d, size=(n, 2)))[..., None]


@pytest.mark.parametrize(
    ("feature", "d"),
    [
        ("positive", 3),
        pytest.param("positive", 6, marks=pytest.mark.slow),
        ("trigonometric", 4),
    ],
)
def test_orthogonal_pair_covariance_matches_monte_carlo(feature, d):
    rng = np.random.default_rng(10 + d)
    x = 0.35 * rng.standard_normal(d)
    y = 0.35 * rng.standard_normal(d)
    w = _haar_pairs(rng, d, 200_000)
    if feature == "positive":
        lam = np.exp(-(x @ x + y @ y) / 2)
        s = lam * np.exp(w @ (x + y))
        mean = np.exp(x @ y)
    else:
        s = np.cos(w @ (x - y))
        mean = np.exp(-np.sum((x - y) ** 2) / 2)
    prod = (s[:, 0] - mean) * (s[:, 1] - mean)
    exact = orthogonal_forms.orthogonal_pair_covariance(x, y, feature=feature)
    assert abs(prod.mean() - exact) < Z_CRIT * prod.std() / np.sqrt(prod.size)


def test_orthogonal_pair_covariance_quadrature_has_converged():
    x = np.array([0.5, 0.3, 0.0, 0.1, -0.2])
    y = np.array([0.4, -0.3, 0.2, 0.0, 0.1])
    coarse = orthogonal_forms.orthogonal_pair_covariance(x, y, n_radial=64, n_angular=128)
    fine = orthogonal_forms.orthogonal_pair_covariance(x, y, n_radial=128, n_angular=256)
    assert coarse == pytest.approx(fine, rel=1e-12, abs=1e-15)


def test_orthogonal_mse_reduces_to_iid_for_one_row_and_obeys_theorem2():
    x = np.array([0.5, 0.3, 0.0, 0.0, 0.0, 0.0])
    y = np.array([0.5, -0.3, 0.0, 0.0, 0.0, 0.0])
    assert orthogonal_forms.mse_orthogonal(x, y, 1) == pytest.approx(
        cf.mse_positive(x, y, 1), rel=1e-12
    )
    for m in range(2, 7):
        assert orthogonal_forms.mse_orthogonal(x, y, m) <= orthogonal_forms.theorem2_mse_bound(
            x, y, m
        )
        assert orthogonal_forms.theorem2_mse_bound(x, y, m) < cf.mse_positive(x, y, m)


def test_rff_variances_match_monte_carlo_and_phase_form_is_worse():
    rng = np.random.default_rng(3)
    d, n_dims, n = 3, 8, 200_000
    x, y = np.array([0.4, -0.2, 0.5]), np.array([-0.3, 0.3, 0.1])
    k = np.exp(-np.sum((x - y) ** 2) / 2)
    w = rng.standard_normal((n, n_dims, d))
    b = rng.uniform(0, 2 * np.pi, size=(n, n_dims))
    phase = (2 / n_dims) * np.sum(np.cos(w @ x + b) * np.cos(w @ y + b), axis=1)
    pairs = (2 / n_dims) * np.sum(np.cos(w[:, : n_dims // 2] @ (x - y)), axis=1)
    r = np.linalg.norm(x - y)
    for sample, form in ((phase, cf.rff_variance_phase), (pairs, cf.rff_variance_cos_sin)):
        dev = (sample - k) ** 2
        assert abs(dev.mean() - form(r, n_dims)) < Z_CRIT * dev.std() / np.sqrt(n)
    assert cf.rff_variance_phase(r, n_dims) > cf.rff_variance_cos_sin(r, n_dims)


def test_rahimi_recht_required_components_is_the_smallest_sufficient_d():
    big_d = uniform_bounds.rahimi_recht_required_components(4, 2.0, 0.3, 0.01)
    assert uniform_bounds.rahimi_recht_failure_bound(big_d, 4, 2.0, 0.3) <= 0.01
    assert uniform_bounds.rahimi_recht_failure_bound(big_d - 1, 4, 2.0, 0.3) > 0.01
    assert "MEMORY" in uniform_bounds.CONSTANT_PROVENANCE["2**8"]


def test_performers_uniform_components_scales_like_d_over_delta_squared():
    m1 = uniform_bounds.performers_uniform_components(16, 1.0, 0.1, constant=1.0)
    m2 = uniform_bounds.performers_uniform_components(16, 1.0, 0.05, constant=1.0)
    assert 4 < m2 / m1 < 5


def test_attention_first_order_identities():
    rng = np.random.default_rng(4)
    q, k = 0.4 * rng.standard_normal((2, 6, 8))
    p, bias, mse = attention_forms.normalised_attention_first_order(q, k, 32)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-14)
    # Rows of P_hat sum to 1 exactly, so the first-order bias sums to 0 per row.
    np.testing.assert_allclose(bias.sum(1), 0, atol=1e-15)
    assert np.all(mse > 0)
    # Halving m doubles both first-order terms.
    _, bias2, mse2 = attention_forms.normalised_attention_first_order(q, k, 16)
    np.testing.assert_allclose(bias2, 2 * bias, rtol=1e-12)
    np.testing.assert_allclose(mse2, 2 * mse, rtol=1e-12)
    np.testing.assert_allclose(
        attention_forms.attention_entry_mse(q, k, 32),
        cf.mse_positive(8**-0.25 * q[:, None], 8**-0.25 * k[None], 32),
    )


@pytest.mark.slow
def test_attention_first_order_matches_monte_carlo_at_large_m():
    rng = np.random.default_rng(5)
    d, m, n = 8, 1024, 3000
    q, k = 0.3 * rng.standard_normal((2, 5, d))
    p, _, mse = attention_forms.normalised_attention_first_order(q, k, m)
    s = d**-0.25
    w = rng.standard_normal((n, m, d))

    def phi(x):
        return np.exp(
            np.einsum("nmd,ld->nlm", w, s * x) - s**2 * np.sum(x**2, 1)[None, :, None] / 2
        )

    a = np.einsum("nim,njm->nij", phi(q), phi(k)) / m
    err = ((a / a.sum(-1, keepdims=True) - p) ** 2).sum((1, 2)) / mse.sum()
    assert abs(err.mean() - 1) < 0.03 + Z_CRIT * err.std() / np.sqrt(n)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cf.mse_positive(np.ones(3), np.ones(4), 2), "same d"),
        (lambda: cf.mse_positive(np.ones(3), np.ones(3), 0), "n_components"),
        (lambda: cf.mse_trigonometric(np.ones(3), np.ones(3), 2, kernel="poly"), "kernel"),
        (lambda: orthogonal_forms.orthogonal_pair_covariance(np.ones(2), np.ones(2)), "at least 3"),
        (
            lambda: orthogonal_forms.orthogonal_pair_covariance(
                np.ones(3), np.ones(3), feature="relu"
            ),
            "feature",
        ),
        (lambda: orthogonal_forms.theorem2_mse_bound(np.ones(3), np.ones(3), 4), "n_components"),
        (lambda: uniform_bounds.rahimi_recht_failure_bound(10, 2, 1.0, 0.0), "delta"),
        (lambda: uniform_bounds.rahimi_recht_required_components(2, 1.0, 0.1, 1.5), "failure"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
