r"""Closed forms: the exact kernels, MSEs, covariances and bounds the claims are checked against.

This module is the oracle. It imports nothing from :mod:`favor` (NumPy and SciPy only), so
a bug in the code under test cannot leak into the reference it is compared with.

Notation (THEORY 0): :math:`x, y \in \mathbb R^d`, :math:`z = x + y`, :math:`\Delta = x - y`,
:math:`\Lambda = \exp(-(\lVert x\rVert^2 + \lVert y\rVert^2)/2)`,
:math:`\mathrm{SM}(x, y) = e^{x^T y}`, :math:`K(x, y) = e^{-\lVert\Delta\rVert^2/2}`;
``n_components`` is the number :math:`m` of random projections (a trigonometric or
hyperbolic map has :math:`2m` features). Every pairwise function takes ``x`` and ``y`` of
shape ``(..., d)`` and returns an array of shape ``(...)``.

Contents

* kernels: :func:`softmax_kernel_value`, :func:`gaussian_kernel_value`,
  :func:`arccos_kernel_value`, :func:`smreg_kernel` (Bessel form) and
  :func:`smreg_kernel_series` (Performers Eqs. 29-30), :func:`bessel_j_kernel`;
* Lemma 2 MSEs for i.i.d. projections: :func:`mse_trigonometric`, :func:`mse_positive`,
  :func:`mse_hyperbolic`, and :func:`mse_relu` (arc-cosine variance, Cho & Saul 2009);
* orthogonal features: :func:`chi_mgf`, :func:`orthogonal_pair_covariance` (exact, by
  quadrature, THEORY 3.2), :func:`mse_orthogonal`, :func:`theorem2_mse_bound`;
* RFF variances (Sutherland & Schneider 2015; THEORY 6.6): :func:`rff_variance_cos_sin`,
  :func:`rff_variance_phase`;
* uniform convergence (THEORY 4): :func:`rahimi_recht_failure_bound` and friends, with
  every constant's provenance stated;
* attention (THEORY 1.2-1.3): :func:`attention_entry_mse`,
  :func:`normalised_attention_first_order`.

References: K. Choromanski et al., "Rethinking Attention with Performers", ICLR 2021,
arXiv:2009.14794v4 (Lemma 1-3, Theorems 1, 2, 4); A. Rahimi and B. Recht, NIPS 2007.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "CONSTANT_PROVENANCE",
    "arccos_kernel_value",
    "arccos_second_moment",
    "attention_entry_mse",
    "bessel_j_kernel",
    "chi_mgf",
    "gaussian_kernel_value",
    "mse_hyperbolic",
    "mse_orthogonal",
    "mse_positive",
    "mse_relu",
    "mse_trigonometric",
    "normalised_attention_first_order",
    "orthogonal_pair_covariance",
    "performers_uniform_components",
    "positive_single_variance",
    "rahimi_recht_failure_bound",
    "rahimi_recht_required_components",
    "rff_variance_cos_sin",
    "rff_variance_phase",
    "smreg_kernel",
    "smreg_kernel_series",
    "smreg_positive_variance",
    "softmax_kernel_value",
    "theorem2_covariance_bound",
    "theorem2_mse_bound",
]

_KERNELS = ("softmax", "gaussian")


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
    # K_gauss = SM * exp(-(|x|^2 + |y|^2)/2) (THEORY 1.1, [A4]); estimators scale likewise.
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


def gaussian_kernel_value(x: Any, y: Any) -> np.ndarray:
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
    r"""Order-1 arc-cosine kernel, the mean of one ReLU feature product (THEORY 5, [K1-mean]).

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
    r"""Second moment of one ReLU feature product (THEORY 5, [K1-var]; derived).

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
    r"""Regularised softmax kernel SMREG, Bessel form (THEORY 2.5, [D1]; derived).

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
    r"""Mean of trigonometric features with fixed-norm rows (THEORY 3.1, [C8]; derived).

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

    (THEORY 2.4, [B-trig-mse]); for the Gaussian kernel the factor
    :math:`e^{\lVert x\rVert^2+\lVert y\rVert^2}` is absent (Yu et al. Lemma 1).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int or array_like
        Number of projections :math:`m` (``2m`` features).
    kernel : {"softmax", "gaussian"}, default="softmax"
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
    :math:`E[e^{k\omega^T z}] = e^{k^2\lVert z\rVert^2/2}` (THEORY 2.4).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    kernel : {"softmax", "gaussian"}, default="softmax"
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

    (THEORY 2.4, [B-pos-mse]). It vanishes like :math:`\mathrm{SM}^2` when the kernel is
    small at fixed :math:`\lVert z\rVert`, unlike :func:`mse_trigonometric`.

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int or array_like
        Number of projections :math:`m`.
    kernel : {"softmax", "gaussian"}, default="softmax"
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

    (THEORY 2.4, [B-hyp-mse]).

    Parameters
    ----------
    x, y : array_like of shape (..., d)
        The pairs.
    n_components : int or array_like
        Number of projections :math:`m` (``2m`` features).
    kernel : {"softmax", "gaussian"}, default="softmax"
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
    r"""MSE of ReLU features :math:`m^{-1/2}\mathrm{relu}(Wx)` with i.i.d. rows (THEORY 5, [K1-var]).

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
    (THEORY 2.5, [D3-var]; derived). Its mean is :func:`smreg_kernel`.

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


# ------------------------------------------------------------- orthogonal features (3.2)


def chi_mgf(t: Any, n_features: int) -> np.ndarray:
    r"""Moment generating function of the :math:`\chi_d` law, :math:`E[e^{t r}]` (THEORY 3.2).

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
    r"""Exact covariance of two single-projection estimates with coupled directions (THEORY 3.2).

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
        mean = gaussian_kernel_value(x, y)

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
    r"""Exact MSE of block-orthogonal chi-norm features (THEORY 3.2, [C1-mse]).

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
        var1 = m * mse_trigonometric(x, y, m, kernel="gaussian")  # (1 - e^{-|D|^2})^2 / 2
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
    r"""Theorem 2 restated for one orthogonal pair (THEORY 3.2; derived).

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


# ------------------------------------------------------------------- RFF variances (6.6)


def rff_variance_cos_sin(delta_norm: Any, n_dims: Any) -> np.ndarray:
    r"""Variance of (cos, sin) RFF for the Gaussian kernel at feature dimension D (THEORY 6.6, [I1]).

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
    r"""Variance of :math:`\sqrt{2/D}\cos(\omega^T x + b)` features, Gaussian kernel (THEORY 6.6, [I2]).

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


# ------------------------------------------------------------- uniform convergence (4)

#: Where each constant of the uniform-convergence helpers comes from (THEORY 4.1-4.2).
CONSTANT_PROVENANCE: dict[str, str] = {
    "2**8": "Rahimi & Recht 2007, Claim 1 -- QUOTED FROM MEMORY (THEORY 4.2), not re-checked",
    "4 (d + 2)": "Rahimi & Recht 2007, Claim 1 -- QUOTED FROM MEMORY (THEORY 4.2), not re-checked",
    "sigma_p**2 = d": "E[w^T w] for the unit-bandwidth Gaussian kernel (exact)",
    "delta = eps / h*^2": "Performers Thm 4 reduction, h* = exp(l^2/2), l = R d^-1/4 (THEORY 4.1)",
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
    r"""Rahimi-Recht uniform bound on the failure probability (THEORY 4.2; constants flagged).

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
    (THEORY 4.2; constants quoted from memory).

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
    r"""Performers Theorem 4 sample size with an explicit (unknown) constant (THEORY 4.1).

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


# -------------------------------------------------------------------- attention (1.2-1.3)


def attention_entry_mse(queries: Any, keys: Any, n_components: int) -> np.ndarray:
    r"""Per-entry MSE of the unnormalised FAVOR+ attention matrix, i.i.d. positive features.

    :math:`\hat A_{ij} = \varphi(\tilde q_i)^T\varphi(\tilde k_j)` with
    :math:`\tilde q = d^{-1/4} q` (THEORY 1.2) is unbiased for
    :math:`A_{ij} = e^{q_i^T k_j/\sqrt d}` with the Lemma 2 MSE of :func:`mse_positive`.

    Parameters
    ----------
    queries : array_like of shape (L_q, d)
        Queries (unscaled).
    keys : array_like of shape (L_k, d)
        Keys (unscaled).
    n_components : int
        Number of projections :math:`m`.

    Returns
    -------
    numpy.ndarray of shape (L_q, L_k)
        The MSE of each entry.
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    s = q.shape[-1] ** -0.25
    return mse_positive(s * q[:, None, :], s * k[None, :, :], n_components)


def normalised_attention_first_order(
    queries: Any, keys: Any, n_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""First-order (delta-method) bias and MSE of the normalised FAVOR+ attention matrix.

    With i.i.d. positive features, :math:`\hat P_{ij} = \hat A_{ij} / \hat D_i`,
    :math:`\hat D_i = \sum_j \hat A_{ij}` and the exact entry covariances (one projection)

    .. math::
        m\,C_{jk} = \Lambda_{ij}\Lambda_{ik}\ldots = e^{-\lVert\tilde q\rVert^2
        - (\lVert\tilde k_j\rVert^2 + \lVert\tilde k_k\rVert^2)/2
        + \lVert 2\tilde q + \tilde k_j + \tilde k_k\rVert^2/2} - A_{ij}A_{ik},

    a second-order Taylor expansion of the ratio gives (THEORY 1.3: "nearly unbiased")

    .. math::
        E\hat P_{ij} - P_{ij} \approx \frac{P_{ij}\mathrm{Var}\hat D_i - \mathrm{Cov}(\hat A_{ij}, \hat D_i)}{D_i^2},
        \qquad
        E(\hat P_{ij} - P_{ij})^2 \approx \frac{C_{jj} - 2P_{ij}\mathrm{Cov}(\hat A_{ij}, \hat D_i)
        + P_{ij}^2\mathrm{Var}\hat D_i}{D_i^2},

    both :math:`O(1/m)`, with :math:`O(1/m^2)` remainders. Derived here.

    Parameters
    ----------
    queries : array_like of shape (L_q, d)
        Queries (unscaled; the :math:`d^{-1/4}` scaling is applied here).
    keys : array_like of shape (L_k, d)
        Keys (unscaled).
    n_components : int
        Number of projections :math:`m`.

    Returns
    -------
    attention : numpy.ndarray of shape (L_q, L_k)
        The exact normalised attention matrix :math:`P = D^{-1}A`.
    bias : numpy.ndarray of shape (L_q, L_k)
        First-order bias of :math:`\hat P`.
    mse : numpy.ndarray of shape (L_q, L_k)
        First-order MSE of :math:`\hat P`.
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    s = q.shape[-1] ** -0.25
    q, k = s * q, s * k
    m = float(_m(n_components))
    a = np.exp(q @ k.T)  # (Lq, Lk)
    qq = _sq(q)[:, None, None]
    kk = _sq(k)
    z = 2 * q[:, None, None, :] + k[None, :, None, :] + k[None, None, :, :]
    second = np.exp(-qq - (kk[None, :, None] + kk[None, None, :]) / 2 + _sq(z) / 2)
    cov = (second - a[:, :, None] * a[:, None, :]) / m  # (Lq, Lk, Lk)
    dsum = a.sum(-1)
    p = a / dsum[:, None]
    var_d = cov.sum((-1, -2))
    cov_ad = cov.sum(-1)
    diag = np.einsum("ijj->ij", cov)
    bias = (p * var_d[:, None] - cov_ad) / dsum[:, None] ** 2
    mse = (diag - 2 * p * cov_ad + p**2 * var_d[:, None]) / dsum[:, None] ** 2
    return p, bias, mse
