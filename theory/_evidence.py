"""Turn per-case Monte Carlo means into a :class:`~theory.results.ClaimCheck` (shared rule).

The rule: for ``k`` cases with estimates :math:`\\hat\\mu_p`, standard errors
:math:`s_p` and closed-form targets :math:`\\mu_p`, compute
:math:`z_p = (\\hat\\mu_p - \\mu_p)/s_p` and pass iff :math:`\\max_p |z_p| < z^*` with
:math:`z^*` = :func:`theory._stats.critical_z` ``(alpha, k)`` (two-sided, Bonferroni),
so a correct implementation fails with probability at most ``alpha``. The headline
estimate is the ratio :math:`\\hat\\mu_p/\\mu_p` of the worst case, with its simultaneous
interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory._stats import critical_z, resolving_power
from theory.results import ClaimCheck

__all__ = ["ratio_check"]


def ratio_check(
    name: str,
    source: str,
    means: Any,
    std_errors: Any,
    targets: Any,
    *,
    alpha: float,
    n_trials: int,
    seed: int,
    data: dict[str, Any] | None = None,
    resolves: str = "mean",
) -> ClaimCheck:
    """Two-sided z rule over ``k`` cases, reported as the worst ratio to its target.

    Parameters
    ----------
    name, source : str
        Claim name and reference.
    means, std_errors, targets : array_like of shape (k,)
        Estimates, their standard errors and the exact values.
    alpha : float
        Family-wise false-alarm rate.
    n_trials : int
        Trials behind each mean.
    seed : int
        Root seed.
    data : dict, optional
        Extra arrays to attach.
    resolves : str, default="mean"
        What the estimated quantity is (for the resolving-power label).

    Returns
    -------
    ClaimCheck
        The evidence.
    """
    means = np.atleast_1d(np.asarray(means, dtype=np.float64))
    se = np.atleast_1d(np.asarray(std_errors, dtype=np.float64))
    targets = np.atleast_1d(np.asarray(targets, dtype=np.float64))
    crit = critical_z(alpha, means.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (means - targets) / se, np.where(means == targets, 0.0, np.inf))
    z = np.nan_to_num(z, nan=np.inf)
    worst = int(np.argmax(np.abs(z)))
    ratio = means[worst] / targets[worst]
    half = crit * se[worst] / abs(targets[worst])
    passed = bool(np.all(np.abs(z) < crit))
    payload = {"means": means, "std_errors": se, "targets": targets, "z": z, "critical_z": crit}
    payload.update(data or {})
    return ClaimCheck(
        name=name,
        source=source,
        estimate=float(ratio),
        interval=(float(ratio - half), float(ratio + half)),
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
        passed=passed,
        statistic=f"max|z| = {np.abs(z).max():.2f} (crit {crit:.2f}, {means.size} cases)",
        target=1.0,
        data=payload,
        resolving_power=resolving_power(se / np.abs(targets), alpha, n_tests=means.size),
        resolves=resolves,
    )
