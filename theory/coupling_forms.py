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
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "laplacian_kernel_value",
    "matern_kernel_value",
    "mse_simplex",
    "shift_invariant_kernel_value",
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
