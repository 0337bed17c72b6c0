r"""Claims U: every feature map is unbiased for its kernel under every chi-norm sampler.

For a map :math:`\varphi` of the Performers Eq. 5 form and rows marginally
:math:`\mathcal N(0, I_d)` (i.i.d., or orthogonal blocks with chi norms),
:math:`E[\varphi(x)^T\varphi(y)] = K(x, y)` (Performers Lemma 1 for positive and
hyperbolic maps, Sec. 2.3 for trigonometric ones, Cho & Saul 2009 for ReLU; formulas §2-3, 5).
The check estimates the mean over ``n_trials`` independent projections at three fixed
pairs (:func:`theory._cases.default_pairs`) and applies the two-sided :math:`|z|` rule of
:mod:`theory._evidence`. Known failure modes it catches: a wrong :math:`h(x)` or
:math:`m^{-1/2}` factor (the 1.05 control), fixed row norms (SMREG / Bessel-J mean,
formulas §2.5, 3.1), QR without the sign fix (formulas §3.1 [C4a]).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from theory import closed_forms
from theory._cases import default_pairs
from theory._evidence import ratio_check
from theory._stats import FALSE_ALARM
from theory.montecarlo import kernel_estimates
from theory.results import ClaimCheck

__all__ = ["check_unbiased", "exact_kernel"]


def exact_kernel(kernel: str, x: Any, y: Any) -> np.ndarray:
    """The closed-form kernel a feature map targets.

    Parameters
    ----------
    kernel : {"softmax", "rbf", "arccos"}
        The kernel.
    x, y : array_like of shape (n, d)
        Pairs.

    Returns
    -------
    numpy.ndarray of shape (n,)
        Kernel values from :mod:`theory.closed_forms`.
    """
    table = {
        "softmax": closed_forms.softmax_kernel_value,
        "rbf": closed_forms.rbf_kernel_value,
        "arccos": closed_forms.arccos_kernel_value,
    }
    if kernel not in table:
        raise ValueError(f"kernel must be one of {sorted(table)}, got {kernel!r}")
    return table[kernel](x, y)


def check_unbiased(
    feature_map: str = "positive",
    projection: str = "iid",
    kernel: str | None = None,
    *,
    n_features: int = 4,
    n_components: int = 8,
    n_trials: int = 20_000,
    seed: int = 101,
    alpha: float = FALSE_ALARM,
    sampler: str | Callable[..., np.ndarray] | None = None,
    features: Callable[..., np.ndarray] | None = None,
    name: str | None = None,
) -> ClaimCheck:
    r"""Check :math:`E[\varphi(x)^T\varphi(y)] = K(x, y)` for one map, sampler and kernel.

    Parameters
    ----------
    feature_map : {"positive", "hyperbolic", "trigonometric", "relu"}, default="positive"
        The claimed map (a ``favor.registry.FEATURE_MAPS`` key).
    projection : {"iid", "orthogonal"}, default="iid"
        The claimed sampler (a ``favor.registry.SAMPLERS`` key, chi norms).
    kernel : {"softmax", "rbf", "arccos"}, optional
        The target kernel; default "softmax" ("arccos" for relu).
    n_features : int, default=4
        Dimension ``d`` of the pairs.
    n_components : int, default=8
        Projections per trial ``m``.
    n_trials : int, default=20000
        Independent projections.
    seed : int, default=101
        Root seed.
    alpha : float, default=FALSE_ALARM
        Declared false-alarm rate.
    sampler : str or callable, optional
        Implementation under test; defaults to ``projection`` (negative controls pass
        broken ones).
    features : callable, optional
        Feature map under test ``f(x, projection, kernel)``; defaults to ``feature_map``.
    name : str, optional
        Claim name for the report.

    Returns
    -------
    ClaimCheck
        Worst ratio mean/kernel over the pairs, with the max-:math:`|z|` decision.
    """
    if kernel is None:
        kernel = "arccos" if feature_map == "relu" else "softmax"
    x, y = default_pairs(n_features)
    est = kernel_estimates(
        x,
        y,
        feature_map=feature_map if features is None else features,
        sampler=projection if sampler is None else sampler,
        kernel=kernel,
        n_components=n_components,
        n_trials=n_trials,
        seed=seed,
    )
    target = exact_kernel(kernel, x, y)
    source = {
        "positive": "Performers Lemma 1; formulas §2.3",
        "hyperbolic": "Performers Sec. 2.3 (SMhyp+); formulas §2.3",
        "trigonometric": "Performers Sec. 2.3; formulas §2.2",
        "relu": "Cho & Saul 2009; formulas §5 [K1-mean]",
    }.get(feature_map, "formulas §2")
    if projection == "orthogonal":
        source += "; ORF chi norms formulas §3.1"
    return ratio_check(
        name or f"{feature_map} x {projection} unbiased ({kernel})",
        source,
        est.mean(0),
        est.std(0, ddof=1) / np.sqrt(n_trials),
        target,
        alpha=alpha,
        n_trials=n_trials,
        seed=seed,
        resolves="kernel mean",
    )
