r"""Closed forms for the estimators beyond FAVOR+: GERF/OPRF (FAVOR++), dense-exponential and hybrid features.

Part of the oracle: NumPy and SciPy only, nothing from :mod:`favor` (so a bug in the maps
under test cannot leak into the reference). Conventions as in :mod:`theory.closed_forms`
(:math:`z = x + y`, :math:`\Delta = x - y`, :math:`\Lambda = e^{-(\lVert x\rVert^2 +
\lVert y\rVert^2)/2}`, :math:`\mathrm{SM}(x, y) = e^{x^T y}`, ``n_components`` = :math:`m`).

* GERF, softmax-kernel form (Likhosherstov et al., "Chefs' Random Tables", NeurIPS 2022;
  formulas §6.3): :math:`f_A(\omega, x) = (1-4A)^{d/4} \exp(A\lVert\omega\rVert^2 +
  \sqrt{1-4A}\,\omega^T x - \lVert x\rVert^2/2)`, :math:`A < 1/4`, with
  :math:`E[f_A(\omega, x) f_A(\omega, y)] = \mathrm{SM}(x, y)` for
  :math:`\omega \sim \mathcal N(0, I_d)`: :func:`gerf_second_moment`,
  :func:`gerf_single_variance`, :func:`mse_gerf`;
* OPRF: the variance-minimising :math:`A^*` (:func:`oprf_optimal_a`) and FAVOR++'s exact
  MSE with block-orthogonal chi-norm rows (:func:`mse_favorpp`);
* dense-exponential features (DERF, formulas §6.4): :func:`derf_parameters`,
  :func:`derf_mean`, :func:`derf_second_moment`; the SADERF diagonal rescaling
  :func:`saderf_psi` and its objective :func:`saderf_objective`;
* hybrid (angular) features (Choromanski et al., "Hybrid Random Features", ICLR 2022;
  formulas §6.5): :func:`hybrid_lambda`, :func:`trig_hyperbolic_covariance`,
  :func:`mse_hybrid`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory.closed_forms import (
    _pair,
    _sq,
    mse_hyperbolic,
    mse_trigonometric,
    softmax_kernel_value,
)

__all__ = [
    "derf_mean",
    "derf_parameters",
    "derf_second_moment",
    "gerf_log_second_moment",
    "gerf_second_moment",
    "gerf_single_variance",
    "hybrid_lambda",
    "mse_favorpp",
    "mse_gerf",
    "mse_hybrid",
    "oprf_optimal_a",
    "saderf_objective",
    "saderf_psi",
    "trig_hyperbolic_covariance",
]


def _check_a(a: Any, bound: float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not np.all(a < bound):
        raise ValueError(f"a must be below {bound} here, got {a!r}")
    return a


def gerf_second_moment(x: Any, y: Any, a: Any) -> np.ndarray:
    r"""Second moment of one GERF product :math:`f_A(\omega, x) f_A(\omega, y)` (formulas §6.3, [F1-*]).

    .. math::
        E[(f_A f_A)^2] = \left(\frac{(1-4A)^2}{1-8A}\right)^{d/2}
        \exp\!\left(\frac{2(1-4A)}{1-8A}\lVert z\rVert^2 - \lVert x\rVert^2 - \lVert y\rVert^2\right),
        \qquad A < 1/8

    (finite only for :math:`A < 1/8`). :math:`A = 0` gives the positive features' value
    :math:`\Lambda^2 e^{2\lVert z\rVert^2}`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    a : float or array_like
        The GERF parameter :math:`A < 1/8` (broadcast against the pairs).

    Returns
    -------
    numpy.ndarray
        The second moment.
    """
    return np.exp(gerf_log_second_moment(x, y, a))


def gerf_log_second_moment(x: Any, y: Any, a: Any) -> np.ndarray:
    r""":math:`\log E[(f_A f_A)^2]` (see :func:`gerf_second_moment`), finite where the moment overflows.

    Since :math:`\mathrm{SM}(x, y)^2` does not depend on :math:`A`, this has the same
    minimiser over :math:`A` as the variance.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    a : float or array_like
        :math:`A < 1/8`.

    Returns
    -------
    numpy.ndarray
        The logarithm of the second moment.
    """
    x, y = _pair(x, y)
    a = _check_a(a, 0.125)
    d = x.shape[-1]
    log = (d / 2) * (2 * np.log1p(-4 * a) - np.log1p(-8 * a))
    return log + 2 * (1 - 4 * a) / (1 - 8 * a) * _sq(x + y) - _sq(x) - _sq(y)


def gerf_single_variance(x: Any, y: Any, a: Any) -> np.ndarray:
    r"""Variance of one GERF product: :math:`\mathrm{Var}_1(A) = E[(f_A f_A)^2] - \mathrm{SM}(x, y)^2`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    a : float or array_like
        :math:`A < 1/8`.

    Returns
    -------
    numpy.ndarray
        The single-projection variance.
    """
    return gerf_second_moment(x, y, a) - softmax_kernel_value(x, y) ** 2


def mse_gerf(x: Any, y: Any, n_components: int, a: Any) -> np.ndarray:
    r"""MSE of GERF features with :math:`m` i.i.d. Gaussian rows: :math:`\mathrm{Var}_1(A)/m`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int
        :math:`m`.
    a : float or array_like
        :math:`A < 1/8`.

    Returns
    -------
    numpy.ndarray
        The MSE.
    """
    return gerf_single_variance(x, y, a) / int(n_components)


def oprf_optimal_a(rho: Any) -> np.ndarray:
    r"""The variance-optimal GERF parameter (OPRF; formulas §6.3, [F2]).

    .. math::
        A^* = \frac{1 - 2\rho - \sqrt{(2\rho + 1)^2 + 8\rho}}{16},
        \qquad \rho = \lVert x + y\rVert^2 / d,

    the minimiser over :math:`A < 1/8` of :func:`gerf_single_variance` (set the derivative
    of the log second moment to zero: a quadratic in :math:`1 - 8A`). It equals the
    parametrisation of the official FAVOR++ code (``expplus``). :math:`A^* \le 0`, with
    :math:`A^* = 0` (plain positive features) exactly at :math:`\rho = 0`. (A secondary
    summary of the paper gives the denominator 8 and :math:`\rho = \lVert x + y\rVert^2`;
    that is not the minimiser, formulas §7.)

    Parameters
    ----------
    rho : float or array_like
        :math:`\rho \ge 0`.

    Returns
    -------
    numpy.ndarray
        :math:`A^*(\rho)`.
    """
    rho = np.asarray(rho, dtype=np.float64)
    if np.any(rho < 0):
        raise ValueError(f"rho must be >= 0, got {rho!r}")
    return (1 - 2 * rho - np.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16


def mse_favorpp(
    x: Any, y: Any, n_components: int, a: Any, *, n_features: int | None = None
) -> float:
    r"""Exact MSE of GERF features with block-orthogonal chi-norm rows (FAVOR++; formulas §6.3, [F3-mse]).

    With chi-norm rows the pair moment :math:`E[Y_1 Y_2]` does not depend on :math:`A`:
    the radial factor :math:`e^{2A r^2}` is absorbed by the change of variables
    :math:`r' = \sqrt{1-4A}\, r` in the :math:`\chi_d` density, which cancels
    :math:`(1-4A)^{d}` exactly. Hence, with blocks of size :math:`n_b`,

    .. math::
        \mathrm{MSE} = \frac{\mathrm{Var}_1(A)}{m}
        + \frac{\sum_b n_b (n_b - 1)}{m^2}\,\mathrm{Cov}_{ORF},

    where :math:`\mathrm{Cov}_{ORF}` is the positive-feature covariance of two orthogonal
    rows (:func:`theory.orthogonal_forms.orthogonal_pair_covariance`, exact quadrature):
    the orthogonality gain of Performers Theorem 2 carries over unchanged.

    Parameters
    ----------
    x, y : array_like of shape (d,)
        One pair (``d >= 3``).
    n_components : int
        :math:`m`.
    a : float
        :math:`A < 1/8`.
    n_features : int, optional
        Block size, default ``d``.

    Returns
    -------
    float
        The MSE.
    """
    from theory.orthogonal_forms import orthogonal_pair_covariance

    x, y = _pair(x, y)
    d = x.shape[-1] if n_features is None else int(n_features)
    m = int(n_components)
    if m < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    full, rest = divmod(m, d)
    pairs = full * d * (d - 1) + rest * (rest - 1)
    cov = orthogonal_pair_covariance(x, y, feature="positive") if pairs else 0.0
    return float(gerf_single_variance(x, y, a) / m + pairs / m**2 * cov)


def derf_parameters(a: Any, b1: Any) -> dict[str, np.ndarray]:
    r"""Complete a dense-exponential (DERF) parameter set from :math:`A` and :math:`B^{(1)}` (formulas §6.4).

    :math:`f^{(k)}(\omega, x) = D \exp(\omega^T A \omega + \omega^T B^{(k)} x + x^T C^{(k)} x)`
    is unbiased for :math:`\mathrm{SM}` iff :math:`I - 4A \succ 0`,
    :math:`B^{(1)T} (I-4A)^{-1} B^{(2)} = I`,
    :math:`C^{(k)} = -\frac12 B^{(k)T}(I-4A)^{-1}B^{(k)}` and
    :math:`D = \det(I-4A)^{1/4}`; so :math:`B^{(2)} = (I - 4A) B^{(1)-T}`.

    Parameters
    ----------
    a : array_like of shape (d, d)
        Symmetric, with :math:`I - 4A` positive definite.
    b1 : array_like of shape (d, d)
        Invertible.

    Returns
    -------
    dict
        ``a, b1, b2, c1, c2`` (arrays) and ``log_d`` (:math:`\log D`).
    """
    a = np.asarray(a, dtype=np.float64)
    b1 = np.asarray(b1, dtype=np.float64)
    d = a.shape[0]
    if a.shape != (d, d) or b1.shape != (d, d) or not np.allclose(a, a.T):
        raise ValueError(f"a must be symmetric (d, d) and b1 (d, d), got {a.shape}, {b1.shape}")
    m4 = np.eye(d) - 4 * a
    if np.linalg.eigvalsh(m4).min() <= 0:
        raise ValueError("a must satisfy I - 4a > 0 (positive definite)")
    b2 = m4 @ np.linalg.inv(b1).T
    inv = np.linalg.inv(m4)
    return {
        "a": a,
        "b1": b1,
        "b2": b2,
        "c1": -0.5 * b1.T @ inv @ b1,
        "c2": -0.5 * b2.T @ inv @ b2,
        "log_d": np.array(0.25 * np.linalg.slogdet(m4)[1]),
    }


def _derf_log_terms(
    x: np.ndarray, p: dict[str, np.ndarray], factor: float
) -> tuple[np.ndarray, np.ndarray]:
    d = x.shape[-1]
    mat = np.eye(d) - factor * p["a"]
    if np.linalg.eigvalsh(mat).min() <= 0:
        raise ValueError(f"I - {factor:g} a must be positive definite for this moment")
    inv = np.linalg.inv(mat)
    return mat, inv


def derf_mean(x: Any, y: Any, params: dict[str, np.ndarray]) -> np.ndarray:
    r""":math:`E[f^{(1)}(\omega, x) f^{(2)}(\omega, y)]` by the Gaussian integral (equals SM when valid).

    .. math::
        D^2 \det(I - 4A)^{-1/2}
        \exp\!\big(\tfrac12 b^T (I - 4A)^{-1} b + x^T C^{(1)} x + y^T C^{(2)} y\big),
        \quad b = B^{(1)} x + B^{(2)} y.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    params : dict
        From :func:`derf_parameters` (or any dict with the same keys, for controls).

    Returns
    -------
    numpy.ndarray
        The mean.
    """
    x, y = _pair(x, y)
    mat, inv = _derf_log_terms(x, params, 4.0)
    b = x @ params["b1"].T + y @ params["b2"].T
    log = 2 * params["log_d"] - 0.5 * np.linalg.slogdet(mat)[1]
    log = log + 0.5 * np.einsum("...i,ij,...j->...", b, inv, b)
    log = log + np.einsum("...i,ij,...j->...", x, params["c1"], x)
    log = log + np.einsum("...i,ij,...j->...", y, params["c2"], y)
    return np.exp(log)


def derf_second_moment(x: Any, y: Any, params: dict[str, np.ndarray]) -> np.ndarray:
    r"""Second moment of one DERF product (formulas §6.4, [G1-var]); finite iff :math:`I - 8A \succ 0`.

    .. math::
        E[(f^{(1)} f^{(2)})^2] = D^4 \det(I - 8A)^{-1/2}
        \exp\!\big(2 b^T (I - 8A)^{-1} b + 2 x^T C^{(1)} x + 2 y^T C^{(2)} y\big),
        \quad b = B^{(1)} x + B^{(2)} y.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    params : dict
        From :func:`derf_parameters`.

    Returns
    -------
    numpy.ndarray
        The second moment.
    """
    x, y = _pair(x, y)
    mat, inv = _derf_log_terms(x, params, 8.0)
    b = x @ params["b1"].T + y @ params["b2"].T
    log = 4 * params["log_d"] - 0.5 * np.linalg.slogdet(mat)[1]
    log = log + 2 * np.einsum("...i,ij,...j->...", b, inv, b)
    log = log + 2 * np.einsum("...i,ij,...j->...", x, params["c1"], x)
    log = log + 2 * np.einsum("...i,ij,...j->...", y, params["c2"], y)
    return np.exp(log)


def saderf_psi(queries: Any, keys: Any) -> np.ndarray:
    r"""The SADERF diagonal rescaling :math:`\Psi^*` (formulas §6.4, [G2]).

    .. math::
        \Psi^*_{ll} = \left(\frac{\sum_j y_{j,l}^2}{\sum_i x_{i,l}^2}\right)^{1/4},

    the minimiser over positive diagonal :math:`\Psi` of the mean of
    :math:`\lVert\Psi x_i + \Psi^{-1} y_j\rVert^2` over all pairs
    (:func:`saderf_objective`): per coordinate it is
    :math:`\psi^2 \overline{x_l^2} + \psi^{-2}\overline{y_l^2}` plus a term independent of
    :math:`\psi`, minimal at :math:`\psi^4 = \overline{y_l^2}/\overline{x_l^2}`.

    Parameters
    ----------
    queries : array_like of shape (L_q, d)
        The :math:`x_i` (no coordinate identically zero).
    keys : array_like of shape (L_k, d)
        The :math:`y_j` (no coordinate identically zero).

    Returns
    -------
    numpy.ndarray of shape (d,)
        The diagonal of :math:`\Psi^*`.
    """
    x = np.asarray(queries, dtype=np.float64)
    y = np.asarray(keys, dtype=np.float64)
    return (np.sum(y * y, axis=0) / np.sum(x * x, axis=0)) ** 0.25


def saderf_objective(psi: Any, queries: Any, keys: Any) -> float:
    r"""Mean of :math:`\lVert\Psi x_i + \Psi^{-1} y_j\rVert^2` over all query-key pairs (explicitly).

    Parameters
    ----------
    psi : array_like of shape (d,)
        Positive diagonal of :math:`\Psi`.
    queries : array_like of shape (L_q, d)
    keys : array_like of shape (L_k, d)

    Returns
    -------
    float
        The objective.
    """
    psi = np.asarray(psi, dtype=np.float64)
    x = np.asarray(queries, dtype=np.float64) * psi
    y = np.asarray(keys, dtype=np.float64) / psi
    z = x[:, None, :] + y[None, :, :]
    return float(np.mean(np.sum(z * z, axis=-1)))


def hybrid_lambda(x: Any, y: Any) -> np.ndarray:
    r"""The angular hybrid weight :math:`\lambda = \theta / \pi` (formulas §6.5, [H-lam]).

    :math:`\theta` is the angle between ``x`` and ``y``. The sign-feature estimate
    :math:`\hat\lambda = \frac12 - \frac{1}{2 m_\lambda}\sum_i \mathrm{sign}(\omega_i'^T x)
    \mathrm{sign}(\omega_i'^T y)` has mean :math:`\lambda` and variance
    :math:`\lambda(1-\lambda)/m_\lambda`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs (nonzero).

    Returns
    -------
    numpy.ndarray
        :math:`\theta/\pi \in [0, 1]`.
    """
    x, y = _pair(x, y)
    cos = np.einsum("...i,...i->...", x, y) / np.sqrt(_sq(x) * _sq(y))
    return np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi


def trig_hyperbolic_covariance(x: Any, y: Any, n_components: int) -> np.ndarray:
    r"""Covariance of the trigonometric and hyperbolic estimates on shared i.i.d. rows (formulas §6.5).

    .. math::
        \mathrm{Cov} = \frac{\mathrm{SM}(x, y)^2\,(\cos(\lVert x\rVert^2 - \lVert y\rVert^2) - 1)}{m},

    from :math:`E[\cos(\omega^T\Delta)\cosh(\omega^T z)] = \mathrm{Re}\,
    e^{(z + i\Delta)^T (z + i\Delta)/2}` with :math:`\lVert z\rVert^2 - \lVert\Delta\rVert^2 =
    4x^Ty` and :math:`z^T\Delta = \lVert x\rVert^2 - \lVert y\rVert^2`. Zero for equal norms.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int
        :math:`m` (shared rows).

    Returns
    -------
    numpy.ndarray
        The covariance.
    """
    x, y = _pair(x, y)
    sm = softmax_kernel_value(x, y)
    return sm**2 * (np.cos(_sq(x) - _sq(y)) - 1) / int(n_components)


def mse_hybrid(
    x: Any,
    y: Any,
    n_components: int,
    n_angular: int,
    *,
    weighted: str = "hyperbolic",
) -> np.ndarray:
    r"""MSE of the angular hybrid estimator with i.i.d. rows (formulas §6.5, [H-mse]).

    :math:`\hat K = \hat\lambda U + (1 - \hat\lambda) V`, with :math:`U, V` the
    hyperbolic and trigonometric estimates on the same :math:`m` rows and
    :math:`\hat\lambda` independent of them (``weighted="hyperbolic"``, the convention
    whose MSE vanishes at :math:`\theta \in \{0, \pi\}` for equal norms), or with the roles
    of :math:`U` and :math:`V` swapped (``weighted="trigonometric"``, the public notebook's
    assignment). Unbiased either way, with

    .. math::
        \mathrm{MSE} = \Big(\lambda^2 + \frac{\lambda(1-\lambda)}{m_\lambda}\Big)
        (\mathrm{Var}\,U + \mathrm{Var}\,V - 2\,\mathrm{Cov})
        + 2\lambda(\mathrm{Cov} - \mathrm{Var}\,V) + \mathrm{Var}\,V.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int
        :math:`m`, rows shared by both base estimators.
    n_angular : int
        :math:`m_\lambda`, sign-feature rows.
    weighted : {"hyperbolic", "trigonometric"}, default="hyperbolic"
        Which base estimate :math:`\hat\lambda` multiplies.

    Returns
    -------
    numpy.ndarray
        The MSE.
    """
    x, y = _pair(x, y)
    m = int(n_components)
    hyp = mse_hyperbolic(x, y, m)
    trig = mse_trigonometric(x, y, m)
    cov = trig_hyperbolic_covariance(x, y, m)
    if weighted == "hyperbolic":
        var_u, var_v = hyp, trig
    elif weighted == "trigonometric":
        var_u, var_v = trig, hyp
    else:
        raise ValueError(f"weighted must be 'hyperbolic' or 'trigonometric', got {weighted!r}")
    lam = hybrid_lambda(x, y)
    second = lam**2 + lam * (1 - lam) / int(n_angular)
    return second * (var_u + var_v - 2 * cov) + 2 * lam * (cov - var_v) + var_v
