r"""Claims C: uniform convergence of random-feature kernel estimates (formulas §4).

* :func:`check_sup_error_rate`: the sup (max-entry) error of the estimated Gram matrix
  over a fixed point set decays like :math:`m^{-1/2}` (Performers Theorem 4: ``m`` grows
  like :math:`\delta^{-2}` up to logarithms; formulas §4.2 [L1]). With ``m`` a multiple of
  ``d`` every block-orthogonal estimate is an average of ``m/d`` independent blocks, so
  the exponent is exactly -1/2 asymptotically. The fitted log-log slope's interval (at
  the declared false-alarm rate) must lie inside :math:`[-1/2 - 0.1, -1/2 + 0.1]` (the
  "up to logs" tolerance: :math:`\sqrt{\log m / m}` has local slope
  :math:`-1/2 + 1/(2\log m)`). A bias that does not vanish (fixed norms, a scale error)
  flattens the slope and fails it.
* :func:`check_failure_frequency`: the frequency of
  :math:`\sup_{x, y}|\hat K - K| \ge \delta` over independent draws is not above the
  Rahimi-Recht bound evaluated at the same ``D``, ``d``, diameter and ``delta``
  (:func:`theory.uniform_bounds.rahimi_recht_failure_bound`; its constants are quoted from
  memory, formulas §4.2). **Informational, not a verdict**: the bound is so loose (the
  median sup error is about a tenth of ``delta``) that only a kernel bias of about
  ``delta`` = 0.25 could exceed it, far beyond any plausible bug (a uniform instead of a
  Gaussian sampler reaches half of what it needs). The record reports the observed
  frequency with its exact Clopper-Pearson interval and whether it lies below the
  bound, and never fails the run; the bugs it might catch are caught by U, V, S and C1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from theory import closed_forms, uniform_bounds
from theory._stats import FALSE_ALARM, binomial_upper_bound, loglog_slope, resolving_power
from theory.montecarlo import gram_estimates
from theory.results import ClaimCheck

__all__ = ["ball_points", "check_failure_frequency", "check_sup_error_rate", "ring_points"]


def ball_points(n_points: int, n_features: int, radius: float = 1.0, seed: int = 7) -> np.ndarray:
    """Fixed points uniform in direction with norms uniform in ``[0, radius]``.

    Parameters
    ----------
    n_points, n_features : int
        Shape.
    radius : float, default=1.0
        Ball radius.
    seed : int, default=7
        Seed of the (fixed) point set.

    Returns
    -------
    numpy.ndarray of shape (n_points, n_features)
        The points.
    """
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((n_points, n_features))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p * rng.uniform(0, radius, size=(n_points, 1))


def ring_points(radius: float = 1.0) -> np.ndarray:
    """17 points in the plane: the origin and two rings of 8 (radius/2 and radius).

    Parameters
    ----------
    radius : float, default=1.0
        Outer radius (the set's diameter is ``2 * radius``).

    Returns
    -------
    numpy.ndarray of shape (17, 2)
        The points.
    """
    a = 2 * np.pi * np.arange(8) / 8
    ring = np.stack([np.cos(a), np.sin(a)], axis=1)
    return np.concatenate([np.zeros((1, 2)), 0.5 * radius * ring, radius * ring])


def _sup_errors(points: np.ndarray, grams: np.ndarray) -> np.ndarray:
    exact = closed_forms.rbf_kernel_value(points[:, None, :], points[None, :, :])
    return np.abs(grams - exact).max(axis=(1, 2))


def check_sup_error_rate(
    *,
    n_features: int = 16,
    n_points: int = 16,
    components: tuple[int, ...] = (16, 64, 256, 1024),
    n_trials: int = 200,
    seed: int = 701,
    alpha: float = FALSE_ALARM,
    tolerance: float = 0.1,
    sampler: str | Callable[..., np.ndarray] | None = None,
    features: Callable[..., np.ndarray] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Check that the sup error over a point set decays like :math:`m^{-1/2}`.

    Trigonometric features, Gaussian kernel, block-orthogonal chi-norm rows (the
    Performers Theorem 4 setting), points in the unit ball.

    Parameters
    ----------
    n_features : int, default=16
        ``d``.
    n_points : int, default=16
        Size of the point set.
    components : tuple of int
        Values of ``m`` (multiples of ``d``).
    n_trials : int, default=200
        Independent projections per ``m``.
    seed : int, default=701
        Root seed (``seed + i`` for the i-th ``m``).
    alpha : float, default=FALSE_ALARM
        Declared false-alarm rate.
    tolerance : float, default=0.1
        Half-width of the accepted slope band around -1/2.
    sampler, features : optional
        Implementations under test.
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        The slope and its interval.
    """
    pts = ball_points(n_points, n_features)
    errors = np.stack(
        [
            _sup_errors(
                pts,
                gram_estimates(
                    pts,
                    feature_map=features or "trigonometric",
                    sampler=sampler or "orthogonal",
                    kernel="rbf",
                    n_components=m,
                    n_trials=n_trials,
                    seed=seed + i,
                ),
            )
            for i, m in enumerate(components)
        ]
    )
    slope, se, lo, hi = loglog_slope(components, errors, alpha)
    passed = bool(lo > -0.5 - tolerance and hi < -0.5 + tolerance)
    return ClaimCheck(
        name=name or "sup error over a point set decays like m^-1/2",
        source="Performers Theorem 4 / 7; formulas §4.1-4.2 [L1]",
        estimate=slope,
        interval=(lo, hi),
        alpha=alpha,
        n_trials=n_trials * len(components),
        seed=seed,
        passed=passed,
        statistic=f"slope {slope:.3f} +- {se:.3f}; interval must lie in [{-0.5 - tolerance}, {-0.5 + tolerance}]",
        target=-0.5,
        data={"components": np.array(components), "sup_errors": errors},
        # A slope off by this much (absolute) leaves the band with probability >= 0.99.
        resolving_power=tolerance + resolving_power(se, alpha),
        resolves="slope, absolute",
    )


def check_failure_frequency(
    *,
    delta: float = 0.25,
    failure: float = 0.05,
    n_trials: int = 60,
    seed: int = 801,
    alpha: float = FALSE_ALARM,
    sampler: str | Callable[..., np.ndarray] | None = None,
    features: Callable[..., np.ndarray] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Check that :math:`P[\sup|\hat K - K| \ge \delta]` is below the evaluated Rahimi-Recht bound.

    ``D`` (the number of i.i.d. projections) is the smallest one for which the bound
    equals ``failure`` on the 17-point set :func:`ring_points` (d = 2, diameter 2).

    Parameters
    ----------
    delta : float, default=0.25
        Error level.
    failure : float, default=0.05
        The bound's value that fixes ``D``.
    n_trials : int, default=60
        Independent draws.
    seed : int, default=801
        Root seed.
    alpha : float, default=FALSE_ALARM
        Declared false-alarm rate.
    sampler, features : optional
        Implementations under test (default i.i.d. rows, trigonometric features).
    name : str, optional
        Claim name.

    Returns
    -------
    ClaimCheck
        Estimate: observed failure frequency, with its exact interval.
    """
    from scipy.special import betaincinv

    pts = ring_points()
    n_features, diameter = 2, 2.0
    m = uniform_bounds.rahimi_recht_required_components(n_features, diameter, delta, failure)
    bound = float(uniform_bounds.rahimi_recht_failure_bound(m, n_features, diameter, delta))
    errors = _sup_errors(
        pts,
        gram_estimates(
            pts,
            feature_map=features or "trigonometric",
            sampler=sampler or "iid",
            kernel="rbf",
            n_components=m,
            n_trials=n_trials,
            seed=seed,
            block_size=8,
        ),
    )
    k = int(np.sum(errors >= delta))
    lower = 0.0 if k == 0 else float(betaincinv(k, n_trials - k + 1, alpha))
    upper = binomial_upper_bound(k, n_trials, alpha)
    return ClaimCheck(
        name=name or "failure frequency <= Rahimi-Recht bound",
        source="Rahimi & Recht 2007 Claim 1 (constants quoted from memory); formulas §4.2",
        estimate=k / n_trials,
        interval=(lower, upper),
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
        passed=True,
        statistic=(
            f"INFORMATIONAL: {k}/{n_trials} failures at D={m}, delta={delta}; bound "
            f"{bound:.3g} ({'consistent' if lower <= bound else 'EXCEEDED'}); median sup error "
            f"{np.median(errors):.3f} = {np.median(errors) / delta:.2f} delta"
        ),
        target=bound,
        data={
            "sup_errors": errors,
            "n_components": m,
            "bound": bound,
            "consistent": bool(lower <= bound),
        },
        informational=True,
    )
