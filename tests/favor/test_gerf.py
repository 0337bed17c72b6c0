"""OPRF (FAVOR++) and SADERF maps: formulas, fitted parameters, attention identities, causality."""

from __future__ import annotations

import math

import numpy as np
import pytest

from favor.features import positive_features
from favor.gerf import (
    GerfParameters,
    fit_gerf_parameters,
    gerf_features,
    mean_rho,
    oprf_a,
    saderf_psi,
)
from favor.sampling import iid_projection

MAPS = ["oprf", "saderf"]


def _gerf_reference(x, w, a):
    """One feature at a time with ``math``: m^-1/2 (1-4A)^(d/4) exp(A|w|^2 + sqrt(1-4A) w.x - |x|^2/2)."""
    m, d = w.shape
    out = np.empty((x.shape[0], m))
    for i in range(x.shape[0]):
        for r in range(m):
            wx = sum(float(w[r, j]) * float(x[i, j]) for j in range(d))
            ww = sum(float(w[r, j]) ** 2 for j in range(d))
            xx = sum(float(x[i, j]) ** 2 for j in range(d))
            out[i, r] = (
                (1 - 4 * a) ** (d / 4)
                * math.exp(a * ww + math.sqrt(1 - 4 * a) * wx - xx / 2)
                / math.sqrt(m)
            )
    return out


def test_gerf_features_match_the_formula(rng):
    x = 0.5 * rng.standard_normal((5, 6))
    w = rng.standard_normal((7, 6))
    for a in (-0.3, -0.05, 0.0, 0.1):
        np.testing.assert_allclose(
            gerf_features(x, w, a=a), _gerf_reference(x, w, a), rtol=1e-12, atol=0
        )
    # A = 0 is FAVOR+'s positive map; the Gaussian kernel subtracts |x|^2 instead.
    np.testing.assert_allclose(gerf_features(x, w, a=0.0), positive_features(x, w), rtol=1e-13)
    g = gerf_features(x, w, a=-0.1, kernel="rbf")
    half = 0.5 * np.sum(x * x, axis=-1, keepdims=True)
    np.testing.assert_allclose(g, gerf_features(x, w, a=-0.1) * np.exp(-half), rtol=1e-13)


def test_gerf_features_float32_and_no_overflow(rng):
    x = 30.0 * rng.standard_normal((4, 8))
    w = rng.standard_normal((16, 8))
    out = gerf_features(x.astype(np.float32), w, a=-0.2)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_oprf_a_is_the_argmin_of_the_variance():
    from scipy.optimize import minimize_scalar

    from theory.gerf_forms import gerf_single_variance

    for d, z2 in [(8, 2.0), (16, 0.5), (64, 4.0)]:
        x = np.zeros(d)
        x[0] = math.sqrt(z2) / 2
        y = x.copy()
        res = minimize_scalar(
            lambda a, x=x, y=y: math.log(gerf_single_variance(x, y, a)),
            bounds=(-5, 0.1249),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert abs(oprf_a(z2 / d) - res.x) < 1e-6


def test_mean_rho_is_the_mean_over_all_pairs(rng):
    x = rng.standard_normal((2, 9, 5))
    y = rng.standard_normal((2, 7, 5)) + 0.3
    z = x[:, :, None, :] + y[:, None, :, :]
    expected = np.mean(np.sum(z * z, axis=-1), axis=(-2, -1)) / 5
    np.testing.assert_allclose(mean_rho(x, y), expected, rtol=1e-12)
    np.testing.assert_allclose(mean_rho(x, y, scale=0.5), 0.25 * expected, rtol=1e-12)
    weights = np.ones((2, 7))
    weights[:, 5:] = 0
    np.testing.assert_allclose(mean_rho(x, y, weights), mean_rho(x, y[:, :5]), rtol=1e-12)


def test_saderf_psi_minimises_the_mean_pair_norm(rng):
    from scipy.optimize import minimize

    from theory.gerf_forms import saderf_objective

    x = rng.standard_normal((20, 4)) * np.array([3.0, 1.0, 0.2, 1.0])
    y = rng.standard_normal((20, 4)) / np.array([3.0, 1.0, 0.2, 1.0])
    psi = saderf_psi(x, y)
    res = minimize(
        lambda lp: saderf_objective(np.exp(lp), x, y), np.zeros(4), method="BFGS", tol=1e-12
    )
    np.testing.assert_allclose(psi, np.exp(res.x), rtol=1e-4)
    assert saderf_objective(psi, x, y) <= res.fun + 1e-12


def test_saderf_psi_degenerate_coordinates_stay_finite():
    x = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    y = np.array([[1.0, 1.0, 0.0], [1.0, 2.0, 0.0]])
    psi = saderf_psi(x, y)
    assert np.all(np.isfinite(psi))
    assert np.all(psi > 0)
    assert psi[2] == 1.0


def test_saderf_fit_uses_the_rescaled_rho(rng):
    x = rng.standard_normal((3, 11, 6)) * np.exp(rng.standard_normal(6))
    y = rng.standard_normal((3, 11, 6)) + 0.2
    p = fit_gerf_parameters(x, y, "saderf", scale=0.7)
    xs, ys = x * p.psi[:, None, :], y / p.psi[:, None, :]
    np.testing.assert_allclose(p.a, oprf_a(mean_rho(xs, ys, scale=0.7)), rtol=1e-12)
    # The rescaling never increases the mean pair norm, hence never lowers A*.
    assert np.all(p.a >= fit_gerf_parameters(x, y, "oprf", scale=0.7).a - 1e-15)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="features"):
        GerfParameters("positive", np.zeros(1))
    with pytest.raises(ValueError, match="psi is required"):
        GerfParameters("saderf", np.zeros(1))
    with pytest.raises(ValueError, match="below 1/8"):
        GerfParameters("oprf", np.array([0.2]))
    with pytest.raises(ValueError, match="positive"):
        GerfParameters("saderf", np.zeros(1), np.array([[1.0, -1.0]]))


@pytest.mark.statistical
@pytest.mark.parametrize("features", MAPS)
def test_attention_entries_are_unbiased(features):
    """Mean over projections of one unnormalised entry phi_Q(q)^T phi_K(k) = exp(q.k / sqrt d).

    Fixed parameters (fitted on other data), iid rows, 40000 draws; 5-sigma rule with the
    sample standard error (false-alarm rate about 6e-7).
    """
    rng = np.random.default_rng(1301)
    d = 6
    q = 0.6 * rng.standard_normal(d) * np.exp(0.5 * rng.standard_normal(d))
    k = 0.6 * rng.standard_normal(d) + 0.3
    params = fit_gerf_parameters(
        rng.standard_normal((30, d)), rng.standard_normal((30, d)) + 0.5, features
    )
    psi = np.ones(d) if params.psi is None else params.psi
    s = d**-0.25
    n = 40_000
    w = iid_projection(n * 4, d, rng=rng)
    # One call with all 4n rows: each product carries 1/(4n) instead of 1/4, hence the n.
    fq = gerf_features(s * q * psi, w, a=float(params.a)).reshape(n, 4)
    fk = gerf_features(s * k / psi, w, a=float(params.a)).reshape(n, 4)
    est = n * np.sum(fq * fk, axis=-1)
    target = math.exp(q @ k / math.sqrt(d))
    z = (est.mean() - target) / (est.std(ddof=1) / math.sqrt(n))
    assert abs(z) < 5, (est.mean() / target, z)


@pytest.mark.parametrize("kernel", ["softmax", "rbf"])
def test_favor_sampler_fits_oprf_in_fit(kernel, rng):
    from favor import FavorSampler

    x = 0.5 * rng.standard_normal((40, 6)) + 0.2
    est = FavorSampler(kernel=kernel, features="oprf", n_components=32, random_state=0).fit(x)
    xs = est.scale_ * x
    rho = 2 * (np.mean(np.sum(xs * xs, axis=1)) + np.sum(xs.mean(axis=0) ** 2)) / 6
    assert est.params_[0] == pytest.approx(float(oprf_a(rho)), rel=1e-12)
    assert est.params_[0] < 0
    y = 0.5 * rng.standard_normal((7, 6))
    form = "softmax" if kernel == "softmax" else "rbf"
    expected = gerf_features(est.scale_ * y, est.projection_, a=est.params_[0], kernel=form)
    np.testing.assert_allclose(est.transform(y), expected, rtol=1e-12)


def test_favor_sampler_refuses_saderf():
    from favor import FavorSampler

    with pytest.raises(ValueError, match="different maps for queries and keys"):
        FavorSampler(kernel="softmax", features="saderf").fit(np.ones((3, 2)))
