r"""Uniform-convergence bounds with explicit constants, and where each constant comes from (formulas §4).

Part of the oracle, with :mod:`theory.closed_forms` (the same rules): NumPy only.
Performers Theorem 4/7 state the sample size only up to :math:`\Theta(\cdot)`; the
explicit substitute is Rahimi & Recht (2007), Claim 1, whose constants are **quoted from
memory** (formulas §4.2) -- :data:`CONSTANT_PROVENANCE` says so next to every number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory.closed_forms import _m

__all__ = [
    "CONSTANT_PROVENANCE",
    "performers_uniform_components",
    "rahimi_recht_failure_bound",
    "rahimi_recht_required_components",
]

#: Where each constant of the uniform-convergence helpers comes from (formulas §4.1-4.2).
CONSTANT_PROVENANCE: dict[str, str] = {
    "2**8": "Rahimi & Recht 2007, Claim 1 -- QUOTED FROM MEMORY (formulas §4.2), not re-checked",
    "4 (d + 2)": "Rahimi & Recht 2007, Claim 1 -- QUOTED FROM MEMORY (formulas §4.2), not re-checked",
    "sigma_p**2 = d": "E[w^T w] for the unit-bandwidth Gaussian kernel (exact)",
    "delta = eps / h*^2": "Performers Thm 4 reduction, h* = exp(l^2/2), l = R d^-1/4 (formulas §4.1)",
    "Theta(.) constant": "Performers Thm 4/7 give NO constant; performers_uniform_components "
    "takes it as an explicit argument (unknown)",
}


def rahimi_recht_failure_bound(
    n_components: Any,
    n_features: int,
    diameter: float,
    delta: float,
    *,
    sigma_p: float | None = None,
) -> np.ndarray:
    r"""Rahimi-Recht uniform bound on the failure probability (formulas §4.2; constants flagged).

    .. math::
        P\left[\sup_{x, y \in M} |z(x)^T z(y) - k(x, y)| \ge \delta\right]
        \le 2^8 \left(\frac{\sigma_p\, \mathrm{diam}(M)}{\delta}\right)^2
        \exp\left(-\frac{D \delta^2}{4(d+2)}\right)

    with :math:`\sigma_p^2 = E[\omega^T\omega]` (:math:`= d` for the unit Gaussian kernel).
    **The constants** :math:`2^8` and :math:`4(d+2)` **are quoted from memory** of Rahimi &
    Recht (2007), Claim 1, and were not re-checked against the paper
    (:data:`CONSTANT_PROVENANCE`). ``D`` is taken as the number of projections
    ``n_components``; reading it as the feature dimension :math:`2m` would give a smaller
    bound, so this choice is the conservative one.

    Parameters
    ----------
    n_components : int or array_like
        :math:`D`.
    n_features : int
        Input dimension :math:`d`.
    diameter : float
        Diameter of the set :math:`M`.
    delta : float
        Error level.
    sigma_p : float, optional
        :math:`\sqrt{E[\omega^T\omega]}`; defaults to :math:`\sqrt d`.

    Returns
    -------
    numpy.ndarray
        The bound (may exceed 1, i.e. be vacuous).
    """
    if delta <= 0 or diameter <= 0:
        raise ValueError(f"delta and diameter must be positive, got {delta!r}, {diameter!r}")
    s = np.sqrt(n_features) if sigma_p is None else sigma_p
    big_d = _m(n_components)
    return 2.0**8 * (s * diameter / delta) ** 2 * np.exp(-big_d * delta**2 / (4 * (n_features + 2)))


def rahimi_recht_required_components(
    n_features: int, diameter: float, delta: float, failure: float, *, sigma_p: float | None = None
) -> int:
    r"""Smallest ``D`` for which :func:`rahimi_recht_failure_bound` is at most ``failure``.

    :math:`D \ge \frac{4(d+2)}{\delta^2}\ln\frac{2^8(\sigma_p\,\mathrm{diam}/\delta)^2}{p}`
    (formulas §4.2; constants quoted from memory).

    Parameters
    ----------
    n_features : int
        Input dimension.
    diameter : float
        Diameter of the set.
    delta : float
        Error level.
    failure : float
        Target failure probability :math:`p` in (0, 1).
    sigma_p : float, optional
        Defaults to :math:`\sqrt d`.

    Returns
    -------
    int
        The required ``D``.
    """
    if not 0 < failure < 1:
        raise ValueError(f"failure must be in (0, 1), got {failure!r}")
    s = np.sqrt(n_features) if sigma_p is None else sigma_p
    log_term = np.log(2.0**8 * (s * diameter / delta) ** 2 / failure)
    return int(np.ceil(4 * (n_features + 2) / delta**2 * max(log_term, 0.0)))


def performers_uniform_components(
    n_features: int, radius: float, eps: float, *, constant: float
) -> int:
    r"""Performers Theorem 4 sample size with an explicit (unknown) constant (formulas §4.1).

    :math:`m = C\,\frac{d}{\delta^2}\log\frac{4 d^{3/4} R}{\delta}`, :math:`\delta =
    \varepsilon / h^{*2}`, :math:`h^* = e^{l^2/2}`, :math:`l = R d^{-1/4}`. The paper states
    this only up to :math:`\Theta(\cdot)`, so ``constant`` must be supplied: the result is
    a scaling law, not a guarantee.

    Parameters
    ----------
    n_features : int
        Head dimension :math:`d`.
    radius : float
        Bound :math:`R` on query and key norms (before the :math:`d^{-1/4}` scaling).
    eps : float
        Target max-entry error of the attention matrix.
    constant : float
        The hidden constant :math:`C`.

    Returns
    -------
    int
        :math:`m`.
    """
    d = n_features
    ell = radius * d**-0.25
    delta = eps / np.exp(ell**2)
    return int(np.ceil(constant * d / delta**2 * np.log(4 * d**0.75 * radius / delta)))
