r"""Closed forms for the newer couplings and kernels (formulas §3.3, 6.2, 6.6).

Part of the oracle: NumPy and SciPy only, nothing from favor, so a bug in the code under
test cannot leak into the reference.

* Kernel values written out independently of :mod:`favor.kernels`: Laplacian
  :math:`e^{-\gamma\lVert\Delta\rVert_1}` and Matérn :math:`\nu \in \{1/2, 3/2, 5/2\}`.
* The variance of the (cos, sin) estimator of any shift-invariant kernel with i.i.d.
  frequencies and output width :math:`D = 2m` (formulas §6.6 [I1]):
  :math:`\mathrm{Var} = (1 + k(2\Delta) - 2 k(\Delta)^2) / D`.
* The exact MSE of simplex random features (Reid et al. 2023; formulas §6.2 [E2-mse]):
  one block has all pairwise cosines :math:`c = -1/(d-1)`, so with block sizes
  :math:`n_b`, :math:`\mathrm{MSE} = \mathrm{Var}_1/m + \frac{\sum_b n_b(n_b-1)}{m^2}
  \mathrm{Cov}_c`, the pair covariance being the exact disc integral of
  :func:`theory.orthogonal_forms.orthogonal_pair_covariance`.
* The proven bias bounds of structured (SORF) rows (formulas §3.3 [W6]):
  :func:`sorf_fourth_moment_sum` and :func:`sorf_bias_interval`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "laplacian_kernel_value",
    "matern_kernel_value",
    "mse_simplex",
    "shift_invariant_kernel_value",
    "sorf_bias_interval",
    "sorf_fourth_moment_sum",
    "trig_variance",
    "trig_variance_from_values",
]

_NUS = (0.5, 1.5, 2.5)


def laplacian_kernel_value(delta: Any, gamma: float = 1.0) -> np.ndarray:
    r"""Laplacian kernel :math:`\exp(-\gamma \lVert\Delta\rVert_1)` of difference vectors.

    Parameters
    ----------
    delta : array_like of shape (..., d)
        Differences :math:`x - y`.
    gamma : float, default=1.0
        Inverse length scale.

    Returns
    -------
    numpy.ndarray of shape (...)
        Kernel values.
    """
    delta = np.asarray(delta, dtype=np.float64)
    return np.exp(-gamma * np.sum(np.abs(delta), axis=-1))


def matern_kernel_value(delta: Any, nu: float, length_scale: float = 1.0) -> np.ndarray:
    r"""Matérn kernel of difference vectors, :math:`\nu \in \{1/2, 3/2, 5/2\}`.

    With :math:`a = \sqrt{2\nu}\lVert\Delta\rVert/\ell` the half-integer Matérn functions
    are :math:`e^{-a}`, :math:`(1 + a)e^{-a}`, :math:`(1 + a + a^2/3)e^{-a}`
    (Rasmussen & Williams 2006, Eq. 4.16).

    Parameters
    ----------
    delta : array_like of shape (..., d)
        Differences :math:`x - y`.
    nu : {0.5, 1.5, 2.5}
        Smoothness.
    length_scale : float, default=1.0
        Length scale :math:`\ell`.

    Returns
    -------
    numpy.ndarray of shape (...)
        Kernel values.
    """
    if nu not in _NUS:
        raise ValueError(f"nu must be one of {_NUS}, got {nu!r}")
    delta = np.asarray(delta, dtype=np.float64)
    a = np.sqrt(2.0 * nu) * np.linalg.norm(delta, axis=-1) / length_scale
    poly = {0.5: 1.0, 1.5: 1.0 + a, 2.5: 1.0 + a + a**2 / 3.0}[nu]
    return poly * np.exp(-a)


def shift_invariant_kernel_value(delta: Any, kernel: str, **params: float) -> np.ndarray:
    r"""Value of a unit-scale shift-invariant kernel at :math:`\Delta`.

    Parameters
    ----------
    delta : array_like of shape (..., d)
        Differences.
    kernel : {"rbf", "laplacian", "matern"}
        ``"rbf"``: :math:`e^{-\lVert\Delta\rVert^2/2}`; ``"laplacian"``:
        :math:`e^{-\lVert\Delta\rVert_1}`; ``"matern"``: unit length scale, needs ``nu``.
    **params
        ``nu`` for the Matérn kernel.

    Returns
    -------
    numpy.ndarray of shape (...)
        Kernel values.
    """
    delta = np.asarray(delta, dtype=np.float64)
    if kernel == "rbf":
        return np.exp(-0.5 * np.sum(delta**2, axis=-1))
    if kernel == "laplacian":
        return laplacian_kernel_value(delta)
    if kernel == "matern":
        return matern_kernel_value(delta, params["nu"])
    raise ValueError(f"kernel must be 'rbf', 'laplacian' or 'matern', got {kernel!r}")


def trig_variance_from_values(k_delta: Any, k_two_delta: Any, n_outputs: Any) -> np.ndarray:
    r"""Variance of the i.i.d. (cos, sin) estimator from kernel values (formulas §6.6 [I1]).

    .. math::
        \mathrm{Var} = \frac{1 + k(2\Delta) - 2 k(\Delta)^2}{D},

    since :math:`\mathrm{Var}\cos(\omega^T\Delta) = (1 + k(2\Delta))/2 - k(\Delta)^2` and
    the estimator averages :math:`D/2` independent cosines.

    Parameters
    ----------
    k_delta, k_two_delta : array_like
        :math:`k(\Delta)` and :math:`k(2\Delta)`.
    n_outputs : array_like
        Output width :math:`D = 2m`.

    Returns
    -------
    numpy.ndarray
        The variance.
    """
    k1 = np.asarray(k_delta, dtype=np.float64)
    k2 = np.asarray(k_two_delta, dtype=np.float64)
    return (1.0 + k2 - 2.0 * k1**2) / np.asarray(n_outputs, dtype=np.float64)


def trig_variance(delta: Any, n_outputs: Any, kernel: str, **params: float) -> np.ndarray:
    r"""Variance of the i.i.d. (cos, sin) estimator of a shift-invariant kernel at :math:`\Delta`.

    Parameters
    ----------
    delta : array_like of shape (..., d)
        Differences (unit-scale kernel, see :func:`shift_invariant_kernel_value`).
    n_outputs : array_like
        Output width :math:`D = 2m`.
    kernel : {"rbf", "laplacian", "matern"}
        The kernel.
    **params
        ``nu`` for the Matérn kernel.

    Returns
    -------
    numpy.ndarray
        :math:`(1 + k(2\Delta) - 2k(\Delta)^2)/D`.
    """
    delta = np.asarray(delta, dtype=np.float64)
    k1 = shift_invariant_kernel_value(delta, kernel, **params)
    k2 = shift_invariant_kernel_value(2.0 * delta, kernel, **params)
    return trig_variance_from_values(k1, k2, n_outputs)


def mse_simplex(
    x: Any, y: Any, n_components: int, *, feature: str = "positive", n_features: int | None = None
) -> float:
    r"""Exact MSE of simplex random features with :math:`\chi_d` lengths (formulas §6.2 [E2-mse]).

    Parameters
    ----------
    x, y : array_like of shape (d,)
        One pair, ``d >= 3``.
    n_components : int
        Number of projections :math:`m` (blocks of ``d``; the last one ``m mod d``).
    feature : {"positive", "trigonometric"}, default="positive"
        Positive features of the softmax kernel or (cos) trigonometric features of the
        Gaussian kernel, as in :func:`theory.orthogonal_forms.orthogonal_pair_covariance`.
    n_features : int, optional
        Block size; defaults to ``d``.

    Returns
    -------
    float
        :math:`\mathrm{Var}_1/m + \frac{\sum_b n_b(n_b-1)}{m^2}\mathrm{Cov}_{c=-1/(d-1)}`.
    """
    from theory.closed_forms import mse_trigonometric, positive_single_variance
    from theory.orthogonal_forms import orthogonal_pair_covariance

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = x.shape[-1] if n_features is None else int(n_features)
    m = int(n_components)
    if m < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    if d < 3:
        raise ValueError(f"n_features must be at least 3, got {d}")
    full, rest = divmod(m, d)
    pairs = full * d * (d - 1) + rest * (rest - 1)
    if feature == "positive":
        var1 = float(positive_single_variance(x, y))
    elif feature == "trigonometric":
        var1 = float(m * mse_trigonometric(x, y, m, kernel="rbf"))
    else:
        raise ValueError(f"feature must be 'positive' or 'trigonometric', got {feature!r}")
    cov = orthogonal_pair_covariance(x, y, feature=feature, cosine=-1.0 / (d - 1)) if pairs else 0.0
    return float(var1 / m + pairs / m**2 * cov)


def sorf_fourth_moment_sum(v: Any, n_padded: int, *, n_blocks: int = 3) -> float:
    r"""Exact :math:`S = E\sum_j u_j^4` for the mixed vector of a SORF row (formulas §3.3 [W6]).

    A SORF row is :math:`\sqrt p\, e_i^T H D_1 H D_2 H D_3`; against a (zero-padded)
    vector :math:`v \in \mathbb R^p` it gives :math:`\sum_j \pm D_{1,j} u_j` with
    :math:`u = H D_2 H D_3 v`. For Rademacher sums
    :math:`E(\sum_k a_k\varepsilon_k)^4 = 3(\sum_k a_k^2)^2 - 2\sum_k a_k^4`, and
    :math:`H_{jk}^2 = 1/p`, so one mixing step maps :math:`\sum_k v_k^4` to
    :math:`(3\lVert v\rVert^4 - 2\sum_k v_k^4)/p` in expectation; twice (three blocks):

    .. math::

        S = \frac{3\lVert v\rVert^4}{p} - \frac{6\lVert v\rVert^4}{p^2}
            + \frac{4\sum_k v_k^4}{p^2} \le \frac{3\lVert v\rVert^4}{p}.

    Parameters
    ----------
    v : array_like of shape (d,)
        The vector (a difference for trigonometric features, a sum for exponential ones).
    n_padded : int
        The padded dimension ``p`` (a power of two, ``p >= d``).
    n_blocks : {1, 2, 3}, default=3
        Number of :math:`HD` factors; one block gives :math:`\sum_k v_k^4` (no mixing: the
        negative control of claim W6).

    Returns
    -------
    float
        :math:`S`.
    """
    v = np.asarray(v, dtype=np.float64).ravel()
    p = int(n_padded)
    if p < v.size or p & (p - 1):
        raise ValueError(f"n_padded must be a power of two >= {v.size}, got {n_padded!r}")
    if n_blocks not in (1, 2, 3):
        raise ValueError(f"n_blocks must be 1, 2 or 3, got {n_blocks!r}")
    sq = float(v @ v) ** 2
    s = float(np.sum(v**4))
    for _ in range(n_blocks - 1):
        s = (3 * sq - 2 * s) / p
    return s


def sorf_bias_interval(
    x: Any, y: Any, n_padded: int, *, feature: str = "trigonometric", norms: str = "chi"
) -> tuple[float, float]:
    r"""Proven interval for the bias of a SORF estimate (three blocks; formulas §3.3 [W6]).

    With :math:`u = H D_2 H D_3 v` and row length :math:`t\sqrt p` (:math:`t = 1` for
    ``norms="fixed"``, :math:`t = \chi_p/\sqrt p` for ``"chi"``), averaging the Rademacher
    :math:`D_1` gives exactly :math:`\prod_j \cos(t u_j)` (trigonometric, :math:`v = x - y`)
    or :math:`\prod_j \cosh(t u_j)` (positive and hyperbolic, :math:`v = x + y`), and
    :math:`\lVert u\rVert = \lVert v\rVert`. With :math:`S` of
    :func:`sorf_fourth_moment_sum`:

    * trigonometric (absolute bias against :math:`e^{-z^2/2}`, :math:`z = \lVert x - y\rVert`):
      :math:`|\cos a - e^{-a^2/2}| \le a^4/12` and
      :math:`|\prod a_j - \prod b_j| \le \sum |a_j - b_j|` on :math:`[-1, 1]` give
      :math:`|\text{bias}| \le S/12` (fixed lengths) and, with chi lengths
      (:math:`E t^4 = 1 + 2/p`, :math:`E e^{-t^2 z^2/2} = (1 + z^2/p)^{-p/2}`),
      :math:`|\text{bias}| \le (1 + 2/p) S/12 + |(1 + z^2/p)^{-p/2} - e^{-z^2/2}|`;
    * positive and hyperbolic (bias relative to the softmax kernel, :math:`r = \lVert x +
      y\rVert`): :math:`a^2/2 - a^4/12 \le \log\cosh a \le a^2/2` gives
      :math:`-S/12 \le \text{bias} \le 0` (fixed lengths) and, with chi lengths and
      :math:`\theta = r^2/(2p) < 1/2`, :math:`(1 - 2\theta)^{-p/2}\big(1 - \frac{S(p+2)}
      {12 p (1 - 2\theta)^2}\big) e^{-r^2/2} - 1 \le \text{bias} \le (1 - 2\theta)^{-p/2}
      e^{-r^2/2} - 1` (chi-square moment generating function and its second derivative).

    Parameters
    ----------
    x, y : array_like of shape (d,)
        The pair (unit scale).
    n_padded : int
        ``p``, the next power of two at or above ``d``.
    feature : {"trigonometric", "positive"}, default="trigonometric"
        ``"positive"`` covers the hyperbolic map too (its mean is the same by the sign
        symmetry of :math:`D_1`).
    norms : {"chi", "fixed"}, default="chi"
        The row lengths of :func:`favor.couplings.structured_projection`.

    Returns
    -------
    (float, float)
        Lower and upper bound of the bias (absolute for trigonometric, relative for
        positive).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    p = int(n_padded)
    if norms not in ("chi", "fixed"):
        raise ValueError(f"norms must be 'chi' or 'fixed', got {norms!r}")
    if feature == "trigonometric":
        v = x - y
        z2 = float(v @ v)
        s = sorf_fourth_moment_sum(v, p)
        if norms == "fixed":
            half = s / 12
        else:
            # (1 + z^2/p)^(-p/2) - e^(-z^2/2), without cancellation at small z.
            gap = np.exp(-z2 / 2) * np.expm1(z2 / 2 - p / 2 * np.log1p(z2 / p))
            half = (1 + 2 / p) * s / 12 + abs(float(gap))
        return -half, half
    if feature != "positive":
        raise ValueError(f"feature must be 'trigonometric' or 'positive', got {feature!r}")
    v = x + y
    r2 = float(v @ v)
    s = sorf_fourth_moment_sum(v, p)
    if norms == "fixed":
        return -s / 12, 0.0
    theta = r2 / (2 * p)
    if theta >= 0.5:
        raise ValueError(f"the chi-length bound needs ||x + y||^2 < p = {p}, got {r2:.4g}")
    # (1 - 2 theta)^(-p/2) e^(-r^2/2) - 1, without cancellation at small r.
    excess = float(np.expm1(-p / 2 * np.log1p(-2 * theta) - r2 / 2))
    lower = (1 + excess) * (1 - s * (p + 2) / (12 * p * (1 - 2 * theta) ** 2)) - 1
    return float(lower), excess
