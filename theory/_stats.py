r"""Statistical decision rules with a declared false-alarm rate.

Every check in :mod:`theory` decides with one of these rules at a declared per-check
false-alarm rate :data:`FALSE_ALARM` :math:`= 10^{-6}`: the probability, over the root
seed, that a *correct* implementation fails the check. A check that compares ``k``
quantities splits its rate by Bonferroni (:func:`critical_z` with ``n_tests=k``), so the
per-check rate stays at most :math:`10^{-6}`. With a two-sided normal rule this is
:math:`|z| \ge 4.89` for one quantity and :math:`|z| \ge 5.03` for three.

The normal rules rely on the CLT; formulas §8.2 lists what keeps that honest (bounded
:math:`\lVert x + y\rVert^2 \lesssim 1.2` for exponential estimators, :math:`m \ge 8`,
finite fourth moments, tens of thousands of trials). Probability bounds use the exact
Clopper-Pearson interval, so they need no CLT.

Heavy tails: where the CLT is not trustworthy at :math:`10^{-6}` but the variance of one
trial is known exactly, :func:`median_of_means` gives a distribution-free rule
(Chebyshev inside each group, an exact binomial tail across groups).

Sizing: :func:`required_trials` gives the number of trials that detects a given effect
with a given power at the declared rate; :func:`power` is its inverse.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = [
    "FALSE_ALARM",
    "binomial_upper_bound",
    "bonferroni",
    "clopper_pearson",
    "critical_z",
    "loglog_slope",
    "mean_interval",
    "median_of_means",
    "paired_ratio",
    "power",
    "required_trials",
    "resolving_power",
    "variance_interval",
]

#: Declared false-alarm rate of every check (per check, after Bonferroni inside it).
FALSE_ALARM: float = 1e-6


def bonferroni(alpha: float, n_tests: int) -> float:
    """Per-test rate that keeps the family-wise rate at ``alpha`` over ``n_tests`` tests.

    Parameters
    ----------
    alpha : float
        Family-wise rate.
    n_tests : int
        Number of tests.

    Returns
    -------
    float
        ``alpha / n_tests``.
    """
    if not 0 < alpha < 1 or n_tests < 1:
        raise ValueError(f"alpha must be in (0, 1) and n_tests >= 1, got {alpha!r}, {n_tests!r}")
    return alpha / n_tests


def critical_z(alpha: float = FALSE_ALARM, n_tests: int = 1, *, two_sided: bool = True) -> float:
    r"""Normal critical value for a family of ``n_tests`` tests at family-wise rate ``alpha``.

    :math:`z^* = \Phi^{-1}(1 - \alpha / (s\, k))`, ``s = 2`` if two-sided, ``k = n_tests``.

    Parameters
    ----------
    alpha : float, default=FALSE_ALARM
        Family-wise false-alarm rate.
    n_tests : int, default=1
        Bonferroni divisor.
    two_sided : bool, default=True
        Two-sided rule.

    Returns
    -------
    float
        The critical value.
    """
    from scipy.special import ndtri

    return float(-ndtri(bonferroni(alpha, n_tests) / (2 if two_sided else 1)))


def mean_interval(
    samples: Any, alpha: float = FALSE_ALARM, *, n_tests: int = 1, axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CLT interval for a mean (two-sided, Bonferroni over ``n_tests``).

    Parameters
    ----------
    samples : array_like
        Independent trials along ``axis``.
    alpha : float, default=FALSE_ALARM
        Family-wise rate.
    n_tests : int, default=1
        Number of simultaneous intervals.
    axis : int, default=0
        Trial axis.

    Returns
    -------
    mean, std_error, low, high : numpy.ndarray
        The estimate, its standard error and the interval.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[axis]
    if n < 2:
        raise ValueError(f"samples must hold at least 2 trials along axis {axis}, got {n}")
    mean = x.mean(axis)
    se = x.std(axis, ddof=1) / np.sqrt(n)
    z = critical_z(alpha, n_tests)
    return mean, se, mean - z * se, mean + z * se


def variance_interval(
    samples: Any, alpha: float = FALSE_ALARM, *, n_tests: int = 1, axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Asymptotic interval for a variance: the mean of squared deviations and its CLT error.

    :math:`\hat\sigma^2 = \frac1n\sum (x_i - \bar x)^2`, standard error
    :math:`\mathrm{sd}((x_i - \bar x)^2)/\sqrt n` (needs a finite fourth moment).

    Parameters
    ----------
    samples : array_like
        Independent trials along ``axis``.
    alpha : float, default=FALSE_ALARM
        Family-wise rate.
    n_tests : int, default=1
        Number of simultaneous intervals.
    axis : int, default=0
        Trial axis.

    Returns
    -------
    variance, std_error, low, high : numpy.ndarray
        The estimate, its standard error and the interval.
    """
    x = np.asarray(samples, dtype=np.float64)
    dev2 = (x - x.mean(axis, keepdims=True)) ** 2
    return mean_interval(dev2, alpha, n_tests=n_tests, axis=axis)


def paired_ratio(
    numerator: Any, denominator: Any, alpha: float = FALSE_ALARM, *, n_tests: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Delta-method interval for a ratio of means of paired trials.

    :math:`r = \bar a / \bar b`, :math:`\mathrm{se}(r) = \mathrm{sd}(a - r b) / (\sqrt n\,|\bar b|)`.
    Pairing (the same random projection in both) cancels shared noise.

    Parameters
    ----------
    numerator, denominator : array_like
        Paired trials along axis 0.
    alpha : float, default=FALSE_ALARM
        Family-wise rate.
    n_tests : int, default=1
        Number of simultaneous intervals.

    Returns
    -------
    ratio, std_error, low, high : numpy.ndarray
        The estimate, its standard error and the interval.
    """
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    n = a.shape[0]
    r = a.mean(0) / b.mean(0)
    se = (a - r * b).std(0, ddof=1) / (np.sqrt(n) * np.abs(b.mean(0)))
    z = critical_z(alpha, n_tests)
    return r, se, r - z * se, r + z * se


def clopper_pearson(
    successes: int, n_trials: int, alpha: float = FALSE_ALARM
) -> tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval for a binomial probability.

    Parameters
    ----------
    successes : int
        Number of events.
    n_trials : int
        Number of trials.
    alpha : float, default=FALSE_ALARM
        1 - coverage.

    Returns
    -------
    tuple of float
        ``(low, high)``.
    """
    from scipy.special import betaincinv

    k, n = int(successes), int(n_trials)
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= successes <= n_trials and n_trials >= 1, got {k}, {n}")
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha / 2))
    return low, high


def binomial_upper_bound(successes: int, n_trials: int, alpha: float = FALSE_ALARM) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound for a probability.

    Parameters
    ----------
    successes : int
        Number of events.
    n_trials : int
        Number of trials.
    alpha : float, default=FALSE_ALARM
        1 - coverage.

    Returns
    -------
    float
        The upper bound.
    """
    from scipy.special import betaincinv

    k, n = int(successes), int(n_trials)
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= successes <= n_trials and n_trials >= 1, got {k}, {n}")
    return 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha))


def loglog_slope(x: Any, y: Any, alpha: float = FALSE_ALARM) -> tuple[float, float, float, float]:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x` with a normal interval.

    ``y`` may hold replicates: shape ``(len(x), n_rep)``. Every replicate is one point of
    the fit; the standard error is the classical OLS one with the pooled residual variance
    (replicates are independent).

    Parameters
    ----------
    x : array_like of shape (k,)
        Positive abscissae (e.g. ``n_components``).
    y : array_like of shape (k,) or (k, n_rep)
        Positive responses (e.g. sup errors).
    alpha : float, default=FALSE_ALARM
        1 - coverage.

    Returns
    -------
    slope, std_error, low, high : float
        The slope and its interval.
    """
    lx = np.log(np.asarray(x, dtype=np.float64))
    ly = np.log(np.asarray(y, dtype=np.float64))
    if ly.ndim == 1:
        ly = ly[:, None]
    lx = np.broadcast_to(lx[:, None], ly.shape).ravel()
    ly = ly.ravel()
    if lx.size < 3:
        raise ValueError(f"need at least 3 points for a slope, got {lx.size}")
    xc = lx - lx.mean()
    slope = float(xc @ (ly - ly.mean()) / (xc @ xc))
    resid = ly - ly.mean() - slope * xc
    se = float(np.sqrt(resid @ resid / (lx.size - 2) / (xc @ xc)))
    z = critical_z(alpha)
    return slope, se, slope - z * se, slope + z * se


def required_trials(
    effect: float, sd: float, alpha: float = FALSE_ALARM, power: float = 0.99, *, n_tests: int = 1
) -> int:
    r"""Trials needed to detect a mean shift ``effect`` with the two-sided normal rule.

    :math:`n = \lceil ((z^*_{\alpha} + z_{\text{power}})\, \mathrm{sd} / \text{effect})^2 \rceil`.

    Parameters
    ----------
    effect : float
        Shift to detect, in the units of one trial.
    sd : float
        Standard deviation of one trial.
    alpha : float, default=FALSE_ALARM
        Family-wise false-alarm rate.
    power : float, default=0.99
        Wanted probability of detecting the shift.
    n_tests : int, default=1
        Bonferroni divisor.

    Returns
    -------
    int
        The number of trials.
    """
    from scipy.special import ndtri

    if effect == 0 or sd <= 0 or not 0 < power < 1:
        raise ValueError(
            f"need effect != 0, sd > 0 and power in (0, 1), got {effect}, {sd}, {power}"
        )
    z = critical_z(alpha, n_tests) + float(-ndtri(1 - power))
    return int(np.ceil((z * sd / abs(effect)) ** 2))


def power(
    effect: float, sd: float, n_trials: int, alpha: float = FALSE_ALARM, *, n_tests: int = 1
) -> float:
    r"""Probability that the two-sided normal rule detects a mean shift ``effect``.

    :math:`P(|Z + \text{effect}\sqrt n/\mathrm{sd}| > z^*)`.

    Parameters
    ----------
    effect : float
        Shift, in the units of one trial.
    sd : float
        Standard deviation of one trial.
    n_trials : int
        Number of trials.
    alpha : float, default=FALSE_ALARM
        Family-wise false-alarm rate.
    n_tests : int, default=1
        Bonferroni divisor.

    Returns
    -------
    float
        The power.
    """
    from scipy.special import ndtr

    z = critical_z(alpha, n_tests)
    shift = abs(effect) * np.sqrt(n_trials) / sd
    return float(ndtr(shift - z) + ndtr(-z - shift))


def resolving_power(
    relative_se: Any,
    alpha: float = FALSE_ALARM,
    *,
    n_tests: int = 1,
    power: float = 0.99,
    two_sided: bool = True,
) -> float:
    r"""Smallest relative shift a normal rule detects with probability ``power``.

    A rule that fails when :math:`|\hat\mu - \mu| / \mathrm{se} \ge z^*` (critical value
    :func:`critical_z` ``(alpha, n_tests)``) detects a shift :math:`\delta\mu` with
    probability at least ``power`` once :math:`|\delta| \ge (z^* + z_{\text{power}})\,
    \mathrm{se}/|\mu|`. With several cases (``relative_se`` an array) a shift of the same
    relative size in every case is detected as soon as the best-resolved case detects it,
    so the minimum over the cases is returned.

    Parameters
    ----------
    relative_se : float or array_like
        Standard error(s) divided by the magnitude of the checked quantity.
    alpha : float, default=FALSE_ALARM
        Family-wise false-alarm rate of the rule.
    n_tests : int, default=1
        Bonferroni divisor the rule uses.
    power : float, default=0.99
        Wanted detection probability.
    two_sided : bool, default=True
        Whether the rule is two-sided.

    Returns
    -------
    float
        The smallest detected relative shift.
    """
    from scipy.special import ndtri

    z = critical_z(alpha, n_tests, two_sided=two_sided) + float(-ndtri(1 - power))
    rel = np.atleast_1d(np.abs(np.asarray(relative_se, dtype=np.float64)))
    return float(z * np.min(rel))


def _binomial_tail(n: int, p: float, k: int) -> float:
    """Exact ``P(Bin(n, p) >= k)`` (log-space sum of the pmf)."""
    from math import lgamma, log

    if p <= 0.0:
        return 0.0 if k > 0 else 1.0
    j = np.arange(k, n + 1)
    log_comb = np.array([lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) for i in j])
    return float(np.exp(log_comb + j * log(p) + (n - j) * np.log1p(-p)).sum())


@functools.lru_cache(maxsize=1024)
def _largest_group_rate(n_groups: int, tail: float) -> float:
    """Largest per-group rate ``p`` with ``P(Bin(n_groups, p) >= (n_groups + 1) / 2) <= tail``."""
    low, high = 0.0, 0.5
    for _ in range(40):
        mid = 0.5 * (low + high)
        if _binomial_tail(n_groups, mid, (n_groups + 1) // 2) <= tail:
            low = mid
        else:
            high = mid
    return low


def median_of_means(
    samples: Any,
    sigma: Any,
    alpha: float = FALSE_ALARM,
    *,
    n_tests: int = 1,
    power: float = 0.99,
) -> dict[str, Any]:
    r"""Distribution-free median-of-means rule for means with a known per-trial variance.

    The ``n`` trials are cut into ``g`` (odd) consecutive groups of ``b = n // g`` (the
    remainder is dropped); the estimate is the median of the group means. If one trial has
    variance :math:`\sigma^2`, Chebyshev gives :math:`P(|\bar X_j - \mu| \ge t) \le p`
    for :math:`t = \sigma/\sqrt{b p}`, and the median is at least :math:`t` away only if
    :math:`(g + 1)/2` groups are, so :math:`P(|\mathrm{MoM} - \mu| \ge t) \le
    P(\mathrm{Bin}(g, p) \ge (g+1)/2)`, computed exactly. No CLT and no tail assumption
    beyond a finite variance: valid for heavy-tailed trials. ``g`` and ``p`` are chosen to
    make :math:`t` smallest with that tail at most ``alpha / n_tests`` (Bonferroni).

    Resolving power: a mean shifted by :math:`\delta > t` is detected unless
    :math:`(g+1)/2` groups fall below :math:`\mu + t`, each with probability at most
    :math:`q = \sigma^2/(b(\delta - t)^2)`; with :math:`q` the largest rate whose
    binomial tail is at most ``1 - power``, :math:`\delta = t + \sigma/\sqrt{b q}`.

    Parameters
    ----------
    samples : array_like of shape (n, k)
        Independent trials of ``k`` quantities.
    sigma : array_like of shape (k,)
        The exact standard deviation of one trial of each quantity under the claim.
    alpha : float, default=FALSE_ALARM
        Family-wise false-alarm rate.
    n_tests : int, default=1
        Bonferroni divisor.
    power : float, default=0.99
        Detection probability for the stated resolution.

    Returns
    -------
    dict
        ``estimate`` (k,), ``half_width`` (k,) (the rule fails where
        ``|estimate - mu| >= half_width``), ``detectable`` (k,) (the shift detected with
        probability ``power``), ``n_groups``, ``group_size``.
    """
    x = np.asarray(samples, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    sd = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (x.shape[1],))
    n = x.shape[0]
    if n < 1 or np.any(sd < 0):
        raise ValueError(f"need at least one trial and sigma >= 0, got n={n}, sigma={sd}")
    tail = bonferroni(alpha, n_tests)
    best = None
    for groups in range(1, min(n, 151) + 1, 2):
        rate = _largest_group_rate(groups, tail)
        if rate <= 0.0:
            continue
        width = 1.0 / np.sqrt((n // groups) * rate)
        if best is None or width < best[0]:
            best = (width, groups, rate)
    if best is None:
        raise ValueError(f"{n} trials are too few for a median-of-means rule at rate {tail:.3g}")
    width, groups, _ = best
    size = n // groups
    means = x[: groups * size].reshape(groups, size, -1).mean(1)
    miss = _largest_group_rate(groups, 1.0 - power)
    return {
        "estimate": np.median(means, axis=0),
        "half_width": sd * width,
        "detectable": sd * (width + 1.0 / np.sqrt(size * miss)),
        "n_groups": groups,
        "group_size": size,
    }
