r"""Exact second and fourth moments of the angular hybrid estimator's error (formulas §6.5).

Part of the oracle: NumPy only, nothing from :mod:`favor`. The hybrid estimate
with i.i.d. rows is :math:`\hat K = \hat\lambda U + (1 - \hat\lambda) V` (weight on the
hyperbolic estimate: :math:`U = \Lambda\frac1m\sum_r\cosh(\omega_r^T z)`,
:math:`V = \Lambda^{-1}\frac1m\sum_r\cos(\omega_r^T\Delta)` on the same rows; the other
convention swaps them), with :math:`\hat\lambda = N/m_\lambda`,
:math:`N \sim \mathrm{Bin}(m_\lambda, \theta/\pi)`, independent of the rows.

Why the fourth moment: the hyperbolic part has lognormal-like tails, so the squared error
:math:`e = (\hat K - K)^2` is heavy-tailed and a normal-theory interval for its mean is not
valid at a false-alarm rate of :math:`10^{-6}`. :func:`hybrid_error_moments` gives
:math:`E[e]` (the MSE) and :math:`\mathrm{Var}[e] = E[(\hat K - K)^4] - \mathrm{MSE}^2`
exactly, so claim H1 can use a distribution-free median-of-means rule
(:func:`theory._stats.median_of_means`) that needs only the variance.

Method. For one row, :math:`(g_1, g_2) = (\omega^T z, \omega^T\Delta)` is bivariate normal
with covariance :math:`C = [[z^Tz, z^T\Delta], [z^T\Delta, \Delta^T\Delta]]`, and
:math:`\cosh^a g_1 \cos^b g_2` is a sum of exponentials
:math:`e^{\alpha g_1 + i\beta g_2}` with
:math:`E e^{\alpha g_1 + i\beta g_2} = e^{(\alpha^2 C_{11} - \beta^2 C_{22})/2 + i\alpha\beta
C_{12}}`. The joint moments of the row means :math:`(U, V)` up to order 4 are the
coefficients of the one-row moment generating polynomial raised to the power :math:`m`
(with arguments divided by :math:`m`), truncated at degree 4; :math:`\hat\lambda`'s
moments are binomial; independence multiplies them.
"""

from __future__ import annotations

from math import comb, factorial
from typing import Any

import numpy as np

__all__ = ["hybrid_error_moments"]

_ORDER = 4


def _row_moments(z: np.ndarray, delta: np.ndarray, scale: float) -> np.ndarray:
    """``E[u^a v^b]`` for one row, ``u = scale cosh(w.z)``, ``v = cos(w.delta) / scale``."""
    c11, c22, c12 = float(z @ z), float(delta @ delta), float(z @ delta)
    out = np.zeros((_ORDER + 1, _ORDER + 1))
    for a in range(_ORDER + 1):
        for b in range(_ORDER + 1 - a):
            total = 0.0
            for j in range(a + 1):
                for k in range(b + 1):
                    al, be = 2 * j - a, 2 * k - b
                    value = np.exp(0.5 * (al * al * c11 - be * be * c22) + 1j * al * be * c12)
                    total += comb(a, j) * comb(b, k) * value.real
            out[a, b] = total * 2.0 ** (-a - b) * scale**a * scale ** (-b)
    return out


def _multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Product of two bivariate polynomials (coefficient arrays), truncated at degree 4."""
    out = np.zeros_like(p)
    for a in range(_ORDER + 1):
        for b in range(_ORDER + 1 - a):
            # Terms of p of degree <= 4 - (a + b) times q's coefficient of s^a t^b.
            if q[a, b] != 0.0:
                out[a:, b:] += (
                    q[a, b] * _truncate(p, _ORDER - a - b)[: _ORDER + 1 - a, : _ORDER + 1 - b]
                )
    return out


def _truncate(p: np.ndarray, degree: int) -> np.ndarray:
    total = np.add.outer(np.arange(_ORDER + 1), np.arange(_ORDER + 1))
    return np.where(total <= degree, p, 0.0)


def _mean_moments(row: np.ndarray, m: int) -> np.ndarray:
    """``E[U^a V^b]`` for the means of ``m`` i.i.d. rows, from one row's moments."""
    fact = np.array([[factorial(a) * factorial(b) for b in range(_ORDER + 1)]
                     for a in range(_ORDER + 1)], dtype=float)  # fmt: skip
    powers = np.add.outer(np.arange(_ORDER + 1), np.arange(_ORDER + 1))
    mgf = np.where(powers <= _ORDER, row / fact / float(m) ** powers, 0.0)
    result = np.zeros_like(mgf)
    result[0, 0] = 1.0
    for _ in range(m):
        result = _multiply(result, mgf)
    return result * fact


def _power(poly: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(poly)
    out[0, 0] = 1.0
    for _ in range(k):
        out = _multiply(out, poly)
    return out


def hybrid_error_moments(
    x: Any,
    y: Any,
    n_components: int,
    n_angular: int,
    *,
    weighted: str = "hyperbolic",
) -> tuple[np.ndarray, np.ndarray]:
    r"""MSE and variance of the squared error of the angular hybrid estimator (i.i.d. rows).

    Parameters
    ----------
    x, y : array_like of shape (n_pairs, d)
        The pairs (nonzero).
    n_components : int
        :math:`m`, rows shared by both base estimators.
    n_angular : int
        :math:`m_\lambda`, sign rows.
    weighted : {"hyperbolic", "trigonometric"}, default="hyperbolic"
        Which base estimate :math:`\hat\lambda` multiplies (as in
        :func:`theory.gerf_forms.mse_hybrid`).

    Returns
    -------
    mse : numpy.ndarray of shape (n_pairs,)
        :math:`E[(\hat K - K)^2]` (equals :func:`theory.gerf_forms.mse_hybrid`).
    error_variance : numpy.ndarray of shape (n_pairs,)
        :math:`\mathrm{Var}[(\hat K - K)^2] = E[(\hat K - K)^4] - \mathrm{MSE}^2`.
    """
    if weighted not in ("hyperbolic", "trigonometric"):
        raise ValueError(f"weighted must be 'hyperbolic' or 'trigonometric', got {weighted!r}")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    m, m_lam = int(n_components), int(n_angular)
    mse = np.empty(x.shape[0])
    var = np.empty(x.shape[0])
    counts = np.arange(m_lam + 1)
    for p, (xp, yp) in enumerate(zip(x, y, strict=True)):
        scale = float(np.exp(-0.5 * (xp @ xp + yp @ yp)))
        kernel = float(np.exp(xp @ yp))
        moments = _mean_moments(_row_moments(xp + yp, xp - yp, scale), m)  # E[Hyp^a Trig^b]
        if weighted == "trigonometric":
            moments = moments.T
        cos = np.clip(xp @ yp / np.sqrt((xp @ xp) * (yp @ yp)), -1.0, 1.0)
        theta = float(np.arccos(cos) / np.pi)
        pmf = np.array([comb(m_lam, k) * theta**k * (1 - theta) ** (m_lam - k) for k in counts])
        lam = [float(pmf @ (counts / m_lam) ** k) for k in range(_ORDER + 1)]
        d = np.zeros((_ORDER + 1, _ORDER + 1))
        d[1, 0], d[0, 1] = 1.0, -1.0  # U - V
        e = np.zeros((_ORDER + 1, _ORDER + 1))
        e[0, 1], e[0, 0] = 1.0, -kernel  # V - K

        def central(q: int, d=d, e=e, moments=moments, lam=lam) -> float:
            total = 0.0
            for k in range(q + 1):
                poly = _multiply(_power(d, k), _power(e, q - k))
                total += comb(q, k) * lam[k] * float(np.sum(poly * moments))
            return total

        mse[p] = central(2)
        var[p] = central(4) - mse[p] ** 2
    return mse, var
