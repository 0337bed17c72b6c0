r"""Orthogonal random features: exact pair covariances, MSEs and the Theorem 2 bound (formulas §3.2).

Part of the oracle, with :mod:`theory.closed_forms` (the same rules): NumPy and SciPy
only, nothing from favor. Two projections with independent :math:`\chi_d` norms and
directions at fixed cosine (0 for rows of one orthogonal block) have a covariance that
reduces to a 2-D integral over the unit disc (:func:`orthogonal_pair_covariance`); with
it the MSE of block-orthogonal features is exact (:func:`mse_orthogonal`), and Performers
Theorem 2 can be checked without Monte Carlo (:func:`theorem2_covariance_bound`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory.closed_forms import (
    _pair,
    _sq,
    mse_positive,
    mse_trigonometric,
    positive_single_variance,
    rbf_kernel_value,
    softmax_kernel_value,
)

__all__ = [
    "chi_mgf",
    "mse_orthogonal",
    "orthogonal_pair_covariance",
    "theorem2_covariance_bound",
    "theorem2_mse_bound",
]


def chi_mgf(t: Any, n_features: int) -> np.ndarray:
    r"""Moment generating function of the :math:`\chi_d` law, :math:`E[e^{t r}]` (formulas §3.2).

    .. math::
        M_\chi(t) = {}_1F_1(d/2; 1/2; t^2/2) + \sqrt2\, t\,
        \frac{\Gamma((d+1)/2)}{\Gamma(d/2)}\, {}_1F_1((d+1)/2; 3/2; t^2/2).

    Parameters
    ----------
    t : array_like
        Arguments (any sign).
    n_features : int
        The degrees of freedom :math:`d`.

    Returns
    -------
    numpy.ndarray
        :math:`M_\chi(t)`.
    """
    from scipy.special import gammaln, hyp1f1

    t = np.asarray(t, dtype=np.float64)
    d = n_features
    ratio = np.exp(gammaln((d + 1) / 2) - gammaln(d / 2))
    return hyp1f1(d / 2, 0.5, t**2 / 2) + np.sqrt(2) * t * ratio * hyp1f1(
        (d + 1) / 2, 1.5, t**2 / 2
    )


def _chi_cos(t: np.ndarray, d: int) -> np.ndarray:
    from scipy.special import hyp1f1

    # E[cos(t r)], r ~ chi_d: the characteristic function of chi_d, real part.
    return hyp1f1(d / 2, 0.5, -(t**2) / 2)


def orthogonal_pair_covariance(
    x: Any,
    y: Any,
    *,
    feature: str = "positive",
    cosine: float = 0.0,
    n_radial: int = 64,
    n_angular: int = 128,
) -> np.ndarray:
    r"""Exact covariance of two single-projection estimates with coupled directions (formulas §3.2).

    Two projections with independent :math:`\chi_d` norms and unit directions at fixed
    cosine ``c`` (``c = 0``: orthogonal rows of one block), jointly Haar-rotated. With
    :math:`(u_1^T z, u_2^T z) = \lVert z\rVert(v_1, c v_1 + \sqrt{1-c^2} v_2)` and
    :math:`(v_1, v_2)` of density :math:`\frac{d-2}{2\pi}(1 - v_1^2 - v_2^2)^{(d-4)/2}`
    on the unit disc,

    .. math::
        E[Y_1 Y_2] = \Lambda^2\, E_v\!\left[M_\chi(\lVert z\rVert v_1)\,
        M_\chi(\lVert z\rVert (c v_1 + \sqrt{1-c^2} v_2))\right]

    for positive features (:func:`chi_mgf`), and the same with
    :math:`E[\cos(t r)] = {}_1F_1(d/2; 1/2; -t^2/2)` and :math:`\Delta` for trigonometric
    features of the Gaussian kernel. The integral uses Gauss-Jacobi nodes in
    :math:`\rho^2` and the trapezoid rule (spectrally accurate for periodic integrands)
    in the angle; no Monte Carlo.

    Parameters
    ----------
    x, y : array_like of shape (d,)
        One pair; ``d >= 3``.
    feature : {"positive", "trigonometric"}, default="positive"
        ``"positive"``: :math:`Y = \Lambda e^{\omega^T z}` (softmax kernel);
        ``"trigonometric"``: :math:`Y = \cos(\omega^T\Delta)` (Gaussian kernel).
    cosine : float, default=0.0
        The cosine ``c`` between the two directions.
    n_radial, n_angular : int
        Quadrature sizes.

    Returns
    -------
    float
        :math:`\mathrm{Cov}(Y_1, Y_2)`.
    """
    from scipy.special import roots_jacobi

    x, y = _pair(x, y)
    d = x.shape[-1]
    if d < 3:
        raise ValueError(f"x must have at least 3 features for the disc density, got d={d}")
    if feature == "positive":
        r = np.sqrt(_sq(x + y))
        scale = np.exp(-(_sq(x) + _sq(y)))
        mean = softmax_kernel_value(x, y)

        def one(t: np.ndarray) -> np.ndarray:
            return chi_mgf(t, d)
    elif feature == "trigonometric":
        r = np.sqrt(_sq(x - y))
        scale = 1.0
        mean = rbf_kernel_value(x, y)

        def one(t: np.ndarray) -> np.ndarray:
            return _chi_cos(t, d)
    else:
        raise ValueError(f"feature must be 'positive' or 'trigonometric', got {feature!r}")
    if not -1.0 <= cosine <= 1.0:
        raise ValueError(f"cosine must lie in [-1, 1], got {cosine!r}")
    # t = rho^2 in [0, 1], weight (1 - t)^((d-4)/2); map x in [-1, 1] -> t = (1 + x)/2.
    alpha = (d - 4) / 2
    nodes, weights = roots_jacobi(n_radial, alpha, 0.0)
    t = (1 + nodes) / 2
    w_t = weights * 2.0 ** (-alpha) / 2
    phi = 2 * np.pi * np.arange(n_angular) / n_angular
    rho = np.sqrt(t)[:, None]
    v1 = rho * np.cos(phi)[None, :]
    v2 = rho * np.sin(phi)[None, :]
    s = np.sqrt(max(0.0, 1 - cosine**2))
    integrand = one(r * v1) * one(r * (cosine * v1 + s * v2))
    second = (d - 2) / (4 * np.pi) * np.sum(w_t[:, None] * integrand) * (2 * np.pi / n_angular)
    return float(scale * second - mean**2)


def mse_orthogonal(
    x: Any, y: Any, n_components: int, *, feature: str = "positive", n_features: int | None = None
) -> float:
    r"""Exact MSE of block-orthogonal chi-norm features (formulas §3.2, [C1-mse]).

    Rows in different blocks are independent and rows in one block are orthogonal, so with
    block sizes :math:`n_b` (``d`` each, the last one ``m mod d``)

    .. math::
        \mathrm{MSE} = \frac{\mathrm{Var}_1}{m} + \frac{\sum_b n_b(n_b - 1)}{m^2}\,
        \mathrm{Cov}_{c=0}.

    Parameters
    ----------
    x, y : array_like of shape (d,)
        One pair.
    n_components : int
        Number of projections :math:`m`.
    feature : {"positive", "trigonometric"}, default="positive"
        As in :func:`orthogonal_pair_covariance` (softmax kernel for positive features,
        Gaussian kernel for trigonometric ones).
    n_features : int, optional
        Block size; defaults to ``d``.

    Returns
    -------
    float
        The MSE.
    """
    x, y = _pair(x, y)
    d = x.shape[-1] if n_features is None else n_features
    m = int(n_components)
    if m < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    full, rest = divmod(m, d)
    pairs = full * d * (d - 1) + rest * (rest - 1)
    if feature == "positive":
        var1 = positive_single_variance(x, y)
    else:
        var1 = m * mse_trigonometric(x, y, m, kernel="rbf")  # (1 - e^{-|D|^2})^2 / 2
    cov = orthogonal_pair_covariance(x, y, feature=feature) if pairs else 0.0
    return float(var1 / m + pairs / m**2 * cov)


def theorem2_mse_bound(x: Any, y: Any, n_components: int) -> np.ndarray:
    r"""Performers Theorem 2 (Eq. 10): the upper bound on the orthogonal positive MSE.

    .. math::
        \mathrm{MSE}(\widehat{\mathrm{SM}}^{ort+}_m) \le \mathrm{MSE}(\widehat{\mathrm{SM}}^{+}_m)
        - \frac{2(m-1)}{m(d+2)}(\mathrm{SM}(x,y) - \Lambda)^2,
        \qquad m \le d.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int
        Number of projections, at most ``d`` (one orthogonal block).

    Returns
    -------
    numpy.ndarray
        The bound.
    """
    x, y = _pair(x, y)
    d = x.shape[-1]
    m = int(n_components)
    if not 1 <= m <= d:
        raise ValueError(f"n_components must be in [1, d={d}] for Theorem 2, got {n_components!r}")
    lam = np.exp(-(_sq(x) + _sq(y)) / 2)
    gap = 2 * (m - 1) / (m * (d + 2)) * (softmax_kernel_value(x, y) - lam) ** 2
    return mse_positive(x, y, m) - gap


def theorem2_covariance_bound(x: Any, y: Any) -> np.ndarray:
    r"""Theorem 2 restated for one orthogonal pair (formulas §3.2; derived).

    Since :math:`\mathrm{MSE}_{ort} - \mathrm{MSE}_{iid} = \frac{m-1}{m}\mathrm{Cov}(Y_1, Y_2)`,
    Theorem 2 is equivalent to
    :math:`\mathrm{Cov}(Y_1, Y_2) \le -\frac{2}{d+2}\Lambda^2 (e^{\lVert z\rVert^2/2} - 1)^2`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.

    Returns
    -------
    numpy.ndarray
        The covariance bound (negative).
    """
    x, y = _pair(x, y)
    d = x.shape[-1]
    lam = np.exp(-(_sq(x) + _sq(y)) / 2)
    return -2 / (d + 2) * lam**2 * np.expm1(_sq(x + y) / 2) ** 2
