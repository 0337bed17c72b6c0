"""H1's pieces: exact hybrid error moments, the median-of-means rule and stacked estimates."""

from __future__ import annotations

import numpy as np
import pytest

from theory import gerf_forms
from theory._stats import _binomial_tail, median_of_means
from theory.hybrid_moments import hybrid_error_moments
from theory.hybrid_mse import check_hybrid_mse, hybrid_pairs, stacked_hybrid_estimates


def _plain_hybrid(x, y, m, m_lam, n, rng, weighted="hyperbolic"):
    """Squared errors of the hybrid estimator written out in NumPy (no favor)."""
    w = rng.standard_normal((n, m, x.size))
    s = rng.standard_normal((n, m_lam, x.size))
    scale = np.exp(-0.5 * (x @ x + y @ y))
    hyp = scale * np.cosh(w @ (x + y)).mean(1)
    trig = np.cos(w @ (x - y)).mean(1) / scale
    lam = (np.sign(s @ x) != np.sign(s @ y)).mean(1)
    u, v = (hyp, trig) if weighted == "hyperbolic" else (trig, hyp)
    return (lam * u + (1 - lam) * v - np.exp(x @ y)) ** 2


@pytest.mark.parametrize("weighted", ["hyperbolic", "trigonometric"])
def test_error_moments_second_moment_is_the_closed_form_mse(weighted):
    x, y = hybrid_pairs(4)
    mse, var = hybrid_error_moments(x, y, 4, 3, weighted=weighted)
    np.testing.assert_allclose(
        mse, gerf_forms.mse_hybrid(x, y, 4, 3, weighted=weighted), rtol=1e-12
    )
    assert np.all(var > 0)


def test_error_moments_fourth_moment_matches_simulation():
    # Small norms (light tails), so the simulated variance of the squared error is reliable:
    # 5-sigma agreement with its own (fourth-moment) standard error.
    rng = np.random.default_rng(11)
    x = np.array([[0.3, 0.1, 0.0], [0.4, 0.0, 0.0]])
    y = np.array([[0.2, 0.25, 0.0], [-0.3, 0.2, 0.0]])
    mse, var = hybrid_error_moments(x, y, 2, 3)
    for p in range(2):
        err = _plain_hybrid(x[p], y[p], 2, 3, 400_000, rng)
        dev2 = (err - err.mean()) ** 2
        assert abs(err.mean() - mse[p]) < 5 * err.std() / np.sqrt(err.size)
        assert abs(dev2.mean() - var[p]) < 5 * dev2.std() / np.sqrt(err.size)


def test_error_moments_refuse_unknown_convention():
    with pytest.raises(ValueError, match="weighted must be"):
        hybrid_error_moments([[1.0, 0.0]], [[0.0, 1.0]], 2, 2, weighted="both")


def test_binomial_tail_is_exact():
    from math import comb

    n, p = 9, 0.3
    expect = sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(5, n + 1))
    assert _binomial_tail(n, p, 5) == pytest.approx(expect, rel=1e-12)


def test_median_of_means_half_width_has_its_tail():
    rule = median_of_means(np.zeros((10_000, 1)), [1.0], 1e-6, n_tests=6)
    g, b = rule["n_groups"], rule["group_size"]
    # The per-group Chebyshev rate p = 1 / (b t^2) has a binomial tail at most 1e-6 / 6.
    p = 1.0 / (b * rule["half_width"][0] ** 2)
    assert g % 2 == 1
    assert g * b <= 10_000
    assert _binomial_tail(g, p, (g + 1) // 2) <= 1e-6 / 6 * (1 + 1e-9)
    assert rule["detectable"][0] > rule["half_width"][0]


def test_median_of_means_covers_a_heavy_tailed_mean():
    # Lognormal trials (sigma_log = 1.5): known mean and variance; the rule at a
    # loose rate 0.05 covers the mean in (nearly) every one of 200 repetitions.
    s = 1.5
    mean, var = np.exp(s * s / 2), (np.exp(s * s) - 1) * np.exp(s * s)
    rng = np.random.default_rng(5)
    misses = 0
    for _ in range(200):
        x = np.exp(s * rng.standard_normal((2000, 1)))
        rule = median_of_means(x, [np.sqrt(var)], 0.05)
        misses += abs(rule["estimate"][0] - mean) >= rule["half_width"][0]
    assert misses <= 30  # binomial(200, 0.05) exceeds 30 with probability < 1e-6


def test_stacked_estimates_equal_one_call_per_trial():
    from favor.hybrid import hybrid_features
    from theory.gerf_claims import hybrid_trig_weighted

    x, y = hybrid_pairs(4)
    rng = np.random.default_rng(3)
    b = 5
    w = rng.standard_normal((b * 4, 4))
    w2 = rng.standard_normal((b * 3, 4))

    def favor_map(a, p, q, *, role):
        return hybrid_features(a, p, q, role=role)

    for fn in (favor_map, hybrid_trig_weighted):
        stacked = stacked_hybrid_estimates(fn, x, y, w, w2, b)
        loop = [
            np.sum(
                fn(x, w[4 * t : 4 * t + 4], w2[3 * t : 3 * t + 3], role="query")
                * fn(y, w[4 * t : 4 * t + 4], w2[3 * t : 3 * t + 3], role="key"),
                axis=-1,
            )
            for t in range(b)
        ]
        np.testing.assert_allclose(stacked, np.array(loop), rtol=1e-12, atol=1e-14)


@pytest.mark.statistical
def test_h1_rule_is_valid_at_the_seed_where_the_normal_rule_failed():
    # Root seed 501319 made the former z rule fail (|z| 5.83 > 5.23) on the correct engine.
    assert check_hybrid_mse(seed=501319).passed
