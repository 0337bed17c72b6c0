r"""Closed forms: the exact kernels, MSEs, covariances and bounds the claims are checked against.

This module is the oracle. It imports nothing from :mod:`favor` (NumPy and SciPy only), so
a bug in the code under test cannot leak into the reference it is compared with.

Notation (formulas §0): :math:`x, y \in \mathbb R^d`, :math:`z = x + y`, :math:`\Delta = x - y`,
:math:`\Lambda = \exp(-(\lVert x\rVert^2 + \lVert y\rVert^2)/2)`,
:math:`\mathrm{SM}(x, y) = e^{x^T y}`, :math:`K(x, y) = e^{-\lVert\Delta\rVert^2/2}`;
``n_components`` is the number :math:`m` of random projections (a trigonometric or
hyperbolic map has :math:`2m` features). Every pairwise function takes ``x`` and ``y`` of
shape ``(..., d)`` and returns an array of shape ``(...)``.

Contents

* kernels: :func:`softmax_kernel_value`, :func:`rbf_kernel_value`,
  :func:`arccos_kernel_value`, :func:`smreg_kernel` (Bessel form) and
  :func:`smreg_kernel_series` (Performers Eqs. 29-30), :func:`bessel_j_kernel`;
* Lemma 2 MSEs for i.i.d. projections: :func:`mse_trigonometric`, :func:`mse_positive`,
  :func:`mse_hyperbolic`, and :func:`mse_relu` (arc-cosine variance, Cho & Saul 2009);
* RFF variances (Sutherland & Schneider 2015; formulas §6.6): :func:`rff_variance_cos_sin`,
  :func:`rff_variance_phase`.

Three sibling modules complete the oracle (same rules; import their names from them):

* :mod:`theory.orthogonal_forms` -- :func:`~theory.orthogonal_forms.chi_mgf`,
  :func:`~theory.orthogonal_forms.orthogonal_pair_covariance` (exact, by quadrature,
  formulas §3.2), :func:`~theory.orthogonal_forms.mse_orthogonal`,
  :func:`~theory.orthogonal_forms.theorem2_mse_bound`,
  :func:`~theory.orthogonal_forms.theorem2_covariance_bound`;
* :mod:`theory.uniform_bounds` -- the Rahimi-Recht bound and the Performers Theorem 4
  scaling with every constant's provenance (formulas §4);
* :mod:`theory.attention_forms` -- entry MSEs and the first-order bias and MSE of the
  normalised FAVOR+ attention matrix (formulas §1.2-1.3).

References: K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021,
arXiv:2009.14794v4 (Lemma 1-3, Theorems 1, 2, 4); A. Rahimi and B. Recht, NIPS 2007.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "arccos_kernel_value",
    "arccos_second_moment",
    "bessel_j_kernel",
    "mse_hyperbolic",
    "mse_positive",
    "mse_relu",
    "mse_trigonometric",
    "positive_single_variance",
    "rbf_kernel_value",
    "rff_variance_cos_sin",
    "rff_variance_phase",
    "smreg_kernel",
    "smreg_kernel_series",
    "smreg_positive_variance",
    "softmax_kernel_value",
]

_KERNELS = ("softmax", "rbf")


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must be arrays of shape (..., d) with the same d, got {x.shape} and {y.shape}"
        )
    return x, y


def _sq(v: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", v, v)


def _m(n_components: Any) -> np.ndarray:
    m = np.asarray(n_components)
    if not np.issubdtype(m.dtype, np.number) or np.any(m < 1):
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    return m.astype(np.float64)


def _kernel(kernel: str) -> str:
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    return kernel


def _gauss_factor(x: np.ndarray, y: np.ndarray, kernel: str) -> np.ndarray:
    # K_gauss = SM * exp(-(|x|^2 + |y|^2)/2) (formulas §1.1, [A4]); estimators scale likewise.
    if _kernel(kernel) == "softmax":
        return np.ones(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]))
    return np.exp(-(_sq(x) + _sq(y)) / 2)


# ---------------------------------------------------------------------------- kernels


def softmax_kernel_value(x: Any, y: Any) -> np.ndarray:
    r"""Softmax kernel :math:`\mathrm{SM}(x, y) = \exp(x^T y)` of each pair.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs (broadcast against each other).

    Returns
    -------
    numpy.ndarray of shape (...)
        The kernel values.
    """
    x, y = _pair(x, y)
    return np.exp(np.einsum("...i,...i->...", x, y))


def rbf_kernel_value(x: Any, y: Any) -> np.ndarray:
    r"""Unit-bandwidth Gaussian kernel :math:`\exp(-\lVert x - y\rVert^2/2)` of each pair.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.

    Returns
    -------
    numpy.ndarray of shape (...)
        The kernel values.
    """
    x, y = _pair(x, y)
    return np.exp(-_sq(x - y) / 2)


def _angle(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nx, ny = np.sqrt(_sq(x)), np.sqrt(_sq(y))
    prod = nx * ny
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(prod > 0, np.einsum("...i,...i->...", x, y) / np.where(prod > 0, prod, 1), 1)
    return prod, np.arccos(np.clip(cos, -1.0, 1.0))


def arccos_kernel_value(x: Any, y: Any) -> np.ndarray:
    r"""Order-1 arc-cosine kernel, the mean of one ReLU feature product (formulas §5, [K1-mean]).

    .. math::
        E[\mathrm{relu}(\omega^T x)\mathrm{relu}(\omega^T y)]
        = \frac{\lVert x\rVert\lVert y\rVert}{2\pi}(\sin\theta + (\pi - \theta)\cos\theta)

    for :math:`\omega \sim \mathcal N(0, I_d)` (Cho & Saul 2009).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.

    Returns
    -------
    numpy.ndarray of shape (...)
        The kernel values.
    """
    x, y = _pair(x, y)
    prod, t = _angle(x, y)
    return prod * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)


def arccos_second_moment(x: Any, y: Any) -> np.ndarray:
    r"""Second moment of one ReLU feature product (formulas §5, [K1-var]; derived).

    .. math::
        E[\mathrm{relu}(\omega^T x)^2\mathrm{relu}(\omega^T y)^2]
        = \frac{\lVert x\rVert^2\lVert y\rVert^2}{2\pi}
          (3\sin\theta\cos\theta + (\pi - \theta)(1 + 2\cos^2\theta)).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.

    Returns
    -------
    numpy.ndarray of shape (...)
        The second moments.
    """
    x, y = _pair(x, y)
    prod, t = _angle(x, y)
    c, s = np.cos(t), np.sin(t)
    return prod**2 * (3 * s * c + (np.pi - t) * (1 + 2 * c**2)) / (2 * np.pi)


def _sphere_mgf_log(a: np.ndarray, d: int) -> np.ndarray:
    # log E_u[exp(a u_1)] = log( Gamma(d/2) (a/2)^{1-d/2} I_{d/2-1}(a) ), stable via ive.
    from scipy.special import gammaln, ive

    a = np.abs(np.asarray(a, dtype=np.float64))
    nu = d / 2 - 1
    safe = np.where(a > 0, a, 1.0)
    val = gammaln(d / 2) - nu * np.log(safe / 2) + np.log(ive(nu, safe)) + safe
    return np.where(a > 0, val, 0.0)


def smreg_kernel(x: Any, y: Any) -> np.ndarray:
    r"""Regularised softmax kernel SMREG, Bessel form (formulas §2.5, [D1]; derived).

    SMREG is what positive features estimate when every projection row has length
    :math:`\sqrt d` (uniform on that sphere, Performers Sec. 2.3, Theorem 1):

    .. math::
        \mathrm{SMREG}(x, y) = \Lambda\, M_S(\sqrt d \lVert z\rVert), \qquad
        M_S(a) = \Gamma(d/2)\,(a/2)^{1-d/2}\, I_{d/2-1}(a).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs; ``d`` is their last axis.

    Returns
    -------
    numpy.ndarray of shape (...)
        The kernel values (always :math:`\le \mathrm{SM}(x, y)`).
    """
    x, y = _pair(x, y)
    d = x.shape[-1]
    z = np.sqrt(_sq(x + y))
    return np.exp(_sphere_mgf_log(np.sqrt(d) * z, d) - (_sq(x) + _sq(y)) / 2)


def smreg_kernel_series(x: Any, y: Any, *, n_terms: int = 200) -> np.ndarray:
    r"""SMREG by the paper's series (Performers App. F.3, Eqs. 29-30; Lemma 3).

    .. math::
        \frac{\mathrm{SMREG}}{\mathrm{SM}} = e^{-w}\sum_{k \ge 0} \frac{w^k}{k!} f(k, d),
        \qquad w = \lVert z\rVert^2/2, \quad
        f(k, d) = \frac{d^k}{d(d+2)\cdots(d+2k-2)} \le 1.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_terms : int, default=200
        Number of series terms (the terms decay like :math:`w^k/k!`).

    Returns
    -------
    numpy.ndarray of shape (...)
        The kernel values.
    """
    from scipy.special import gammaln

    x, y = _pair(x, y)
    d = x.shape[-1]
    w = _sq(x + y)[..., None] / 2
    k = np.arange(n_terms, dtype=np.float64)
    # log f(k, d) = k log d - sum_{j<k} log(d + 2j) = k log d - k log 2 - log Gamma(d/2+k) + log Gamma(d/2)
    log_f = k * np.log(d / 2) - gammaln(d / 2 + k) + gammaln(d / 2)
    with np.errstate(divide="ignore"):
        log_terms = np.where(w > 0, k * np.log(np.where(w > 0, w, 1)), np.where(k == 0, 0, -np.inf))
    terms = np.exp(log_terms - gammaln(k + 1) + log_f - w)
    return softmax_kernel_value(x, y) * terms.sum(-1)


def bessel_j_kernel(x: Any, y: Any) -> np.ndarray:
    r"""Mean of trigonometric features with fixed-norm rows (formulas §3.1, [C8]; derived).

    With rows of length :math:`\sqrt d`, :math:`E[\cos(\omega^T\Delta)] =
    \Gamma(d/2)(a/2)^{1-d/2} J_{d/2-1}(a)`, :math:`a = \sqrt d\lVert\Delta\rVert`: a
    Bessel-J kernel, not the Gaussian kernel.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.

    Returns
    -------
    numpy.ndarray of shape (...)
        The kernel values (Gaussian-kernel convention, no :math:`e^{\lVert x\rVert^2/2}` factors).
    """
    from scipy.special import gamma, jv

    x, y = _pair(x, y)
    d = x.shape[-1]
    a = np.sqrt(d * _sq(x - y))
    safe = np.where(a > 0, a, 1.0)
    val = gamma(d / 2) * (safe / 2) ** (1 - d / 2) * jv(d / 2 - 1, safe)
    return np.where(a > 0, val, 1.0)


# ------------------------------------------------------------------- Lemma 2 MSEs (iid)


def mse_trigonometric(x: Any, y: Any, n_components: Any, *, kernel: str = "softmax") -> np.ndarray:
    r"""MSE of trigonometric features with i.i.d. rows (Performers Lemma 2, Eq. 8).

    .. math::
        \mathrm{MSE}(\widehat{\mathrm{SM}}^{trig}_m) = \frac{1}{2m}
        e^{\lVert x\rVert^2 + \lVert y\rVert^2}(1 - e^{-\lVert\Delta\rVert^2})^2

    (formulas §2.4, [B-trig-mse]); for the Gaussian kernel the factor
    :math:`e^{\lVert x\rVert^2+\lVert y\rVert^2}` is absent (Yu et al. Lemma 1).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int or array_like
        Number of projections :math:`m` (``2m`` features).
    kernel : {"softmax", "rbf"}, default="softmax"
        The kernel being estimated.

    Returns
    -------
    numpy.ndarray
        The MSE (= variance; the estimator is unbiased).
    """
    x, y = _pair(x, y)
    m = _m(n_components)
    base = (1 - np.exp(-_sq(x - y))) ** 2 / (2 * m)
    if _kernel(kernel) == "softmax":
        return base * np.exp(_sq(x) + _sq(y))
    return base


def positive_single_variance(x: Any, y: Any, *, kernel: str = "softmax") -> np.ndarray:
    r"""Variance of one positive feature product :math:`\Lambda e^{\omega^T z}` (m = 1).

    :math:`\mathrm{Var}_1 = \Lambda^2(e^{2\lVert z\rVert^2} - e^{\lVert z\rVert^2})`, from
    :math:`E[e^{k\omega^T z}] = e^{k^2\lVert z\rVert^2/2}` (formulas §2.4).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    kernel : {"softmax", "rbf"}, default="softmax"
        The kernel being estimated.

    Returns
    -------
    numpy.ndarray of shape (...)
        The single-projection variance.
    """
    x, y = _pair(x, y)
    z2 = _sq(x + y)
    log_l2 = -(_sq(x) + _sq(y))
    var = np.exp(2 * z2 + log_l2) - np.exp(z2 + log_l2)
    return var * _gauss_factor(x, y, kernel) ** 2


def mse_positive(x: Any, y: Any, n_components: Any, *, kernel: str = "softmax") -> np.ndarray:
    r"""MSE of positive features with i.i.d. rows (Performers Lemma 2, Eq. 8).

    .. math::
        \mathrm{MSE}(\widehat{\mathrm{SM}}^{+}_m) = \frac1m e^{\lVert z\rVert^2}
        \mathrm{SM}(x,y)^2 (1 - e^{-\lVert z\rVert^2})
        = \frac1m \Lambda^2 (e^{2\lVert z\rVert^2} - e^{\lVert z\rVert^2})

    (formulas §2.4, [B-pos-mse]). It vanishes like :math:`\mathrm{SM}^2` when the kernel is
    small at fixed :math:`\lVert z\rVert`, unlike :func:`mse_trigonometric`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int or array_like
        Number of projections :math:`m`.
    kernel : {"softmax", "rbf"}, default="softmax"
        The kernel being estimated.

    Returns
    -------
    numpy.ndarray
        The MSE.
    """
    return positive_single_variance(x, y, kernel=kernel) / _m(n_components)


def mse_hyperbolic(x: Any, y: Any, n_components: Any, *, kernel: str = "softmax") -> np.ndarray:
    r"""MSE of hyperbolic features with i.i.d. rows (Performers Lemma 2, Eq. 8).

    .. math::
        \mathrm{MSE}(\widehat{\mathrm{SM}}^{hyp+}_m) = \tfrac12(1 - e^{-\lVert z\rVert^2})
        \mathrm{MSE}(\widehat{\mathrm{SM}}^{+}_m)
        = \frac{1}{2m}\Lambda^2 (e^{\lVert z\rVert^2} - 1)^2

    (formulas §2.4, [B-hyp-mse]).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int or array_like
        Number of projections :math:`m` (``2m`` features).
    kernel : {"softmax", "rbf"}, default="softmax"
        The kernel being estimated.

    Returns
    -------
    numpy.ndarray
        The MSE.
    """
    x, y = _pair(x, y)
    m = _m(n_components)
    z2 = _sq(x + y)
    val = np.exp(-(_sq(x) + _sq(y))) * np.expm1(z2) ** 2 / (2 * m)
    return val * _gauss_factor(x, y, kernel) ** 2


def mse_relu(x: Any, y: Any, n_components: Any) -> np.ndarray:
    r"""MSE of ReLU features :math:`m^{-1/2}\mathrm{relu}(Wx)` with i.i.d. rows (formulas §5, [K1-var]).

    :math:`\mathrm{MSE}_m = (E[r_x^2 r_y^2] - k_1(x, y)^2)/m`, see
    :func:`arccos_second_moment` and :func:`arccos_kernel_value`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int or array_like
        Number of projections :math:`m`.

    Returns
    -------
    numpy.ndarray
        The MSE.
    """
    return (arccos_second_moment(x, y) - arccos_kernel_value(x, y) ** 2) / _m(n_components)


def smreg_positive_variance(x: Any, y: Any) -> np.ndarray:
    r"""Single-projection variance of positive features with rows uniform on the :math:`\sqrt d` sphere.

    :math:`\mathrm{Var}_1 = \Lambda^2 [M_S(2\sqrt d\lVert z\rVert) - M_S(\sqrt d\lVert z\rVert)^2]`
    (formulas §2.5, [D3-var]; derived). Its mean is :func:`smreg_kernel`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.

    Returns
    -------
    numpy.ndarray of shape (...)
        The variance around SMREG.
    """
    x, y = _pair(x, y)
    d = x.shape[-1]
    a = np.sqrt(d * _sq(x + y))
    log_l2 = -(_sq(x) + _sq(y))
    return np.exp(log_l2 + _sphere_mgf_log(2 * a, d)) - np.exp(log_l2 + 2 * _sphere_mgf_log(a, d))


# ------------------------------------------------------------------- RFF variances (6.6)


def rff_variance_cos_sin(delta_norm: Any, n_dims: Any) -> np.ndarray:
    r"""Variance of (cos, sin) RFF for the Gaussian kernel at feature dimension D (formulas §6.6, [I1]).

    :math:`\mathrm{Var} = \frac1D (1 + k(2\Delta) - 2k(\Delta)^2)`, with
    :math:`k(\Delta) = e^{-\lVert\Delta\rVert^2/2}` and :math:`D/2` frequencies
    (Sutherland & Schneider 2015; derived here).

    Parameters
    ----------
    delta_norm : array_like
        :math:`\lVert x - y\rVert`.
    n_dims : int or array_like
        Total feature dimension :math:`D` (twice the number of frequencies).

    Returns
    -------
    numpy.ndarray
        The variance.
    """
    r = np.asarray(delta_norm, dtype=np.float64)
    k1, k2 = np.exp(-(r**2) / 2), np.exp(-2 * r**2)
    return (1 + k2 - 2 * k1**2) / _m(n_dims)


def rff_variance_phase(delta_norm: Any, n_dims: Any) -> np.ndarray:
    r"""Variance of :math:`\sqrt{2/D}\cos(\omega^T x + b)` features, Gaussian kernel (formulas §6.6, [I2]).

    :math:`\mathrm{Var} = \frac1D (1 + k(2\Delta)/2 - k(\Delta)^2)`: larger than
    :func:`rff_variance_cos_sin` by :math:`k^2(1 - k^2/2)/D > 0` [I3].

    Parameters
    ----------
    delta_norm : array_like
        :math:`\lVert x - y\rVert`.
    n_dims : int or array_like
        Feature dimension :math:`D` (one frequency per feature).

    Returns
    -------
    numpy.ndarray
        The variance.
    """
    r = np.asarray(delta_norm, dtype=np.float64)
    k1, k2 = np.exp(-(r**2) / 2), np.exp(-2 * r**2)
    return (1 + k2 / 2 - k1**2) / _m(n_dims)
