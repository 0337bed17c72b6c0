"""theory._stats: critical values, exact binomial bounds, slopes, power and sample sizes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from theory import _stats


def test_critical_z_declares_the_false_alarm_rate():
    z = _stats.critical_z(1e-6)
    assert 2 * stats.norm.sf(z) == pytest.approx(1e-6)
    assert _stats.critical_z(1e-6, 3) > z
    assert stats.norm.sf(_stats.critical_z(1e-6, two_sided=False)) == pytest.approx(1e-6)


def test_mean_interval_covers_and_scales_like_root_n():
    x = np.arange(10.0)
    mean, se, lo, hi = _stats.mean_interval(x, 0.05)
    assert mean == 4.5
    assert se == pytest.approx(x.std(ddof=1) / np.sqrt(10))
    assert lo < mean < hi
    with pytest.raises(ValueError, match="samples"):
        _stats.mean_interval(np.ones(1))


def test_variance_interval_estimates_the_variance():
    rng = np.random.default_rng(0)
    x = 3.0 * rng.standard_normal(200_000)
    _var, se, lo, hi = _stats.variance_interval(x)
    assert lo < 9.0 < hi
    assert se < 0.05


def test_paired_ratio_is_exact_for_proportional_samples():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    r, se, _lo, _hi = _stats.paired_ratio(2 * a, a)
    assert r == 2.0
    assert se == 0.0


def test_clopper_pearson_matches_beta_quantiles():
    lo, hi = _stats.clopper_pearson(3, 20, 0.05)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 3, 18))
    assert hi == pytest.approx(stats.beta.isf(0.025, 4, 17))
    assert _stats.clopper_pearson(0, 5, 0.05)[0] == 0.0
    assert _stats.clopper_pearson(5, 5, 0.05)[1] == 1.0


def test_binomial_upper_bound_with_no_events():
    assert _stats.binomial_upper_bound(0, 100, 1e-6) == pytest.approx(1 - 1e-6 ** (1 / 100))
    with pytest.raises(ValueError, match="successes"):
        _stats.binomial_upper_bound(5, 3)


def test_loglog_slope_recovers_a_power_law():
    x = np.array([16.0, 64.0, 256.0, 1024.0])
    rng = np.random.default_rng(1)
    y = 3 * x[:, None] ** -0.5 * np.exp(0.01 * rng.standard_normal((4, 50)))
    _slope, se, lo, hi = _stats.loglog_slope(x, y)
    assert lo < -0.5 < hi
    assert se < 0.002
    exact = _stats.loglog_slope(x, 2 * x**-1.0)
    assert exact[0] == pytest.approx(-1.0)


def test_required_trials_gives_the_declared_power():
    n = _stats.required_trials(0.1, 1.0, 1e-6, 0.99)
    assert _stats.power(0.1, 1.0, n, 1e-6) >= 0.99
    assert _stats.power(0.1, 1.0, n - 50, 1e-6) < 0.99
    with pytest.raises(ValueError, match="effect"):
        _stats.required_trials(0.0, 1.0)


def test_bonferroni_rejects_bad_rates():
    assert _stats.bonferroni(1e-6, 4) == 2.5e-7
    with pytest.raises(ValueError, match="alpha"):
        _stats.bonferroni(2.0, 1)
