r"""Random feature maps :math:`\varphi(x; W)` whose dot products estimate kernels.

All maps take inputs ``x`` of shape ``(..., d)`` and a projection ``W`` of shape
``(m, d)`` (see :mod:`favor.sampling`) and return ``(..., r)`` features with
:math:`r = m` or :math:`2m`, so that :math:`\varphi(x)^T \varphi(y)` is an unbiased
estimate of the kernel whenever the rows of ``W`` are marginally :math:`\mathcal N(0, I_d)`
(i.i.d. or chi-norm orthogonal). Notation follows formulas §2 (Performers Sec. 2.3, Eq. 5):
:math:`z = x + y`, :math:`\Delta = x - y`.

=================  =====  ==========================================================================
map                width  :math:`\varphi(x)` for the softmax kernel :math:`\exp(x^T y)`
=================  =====  ==========================================================================
``trigonometric``  2m     :math:`m^{-1/2} e^{\lVert x\rVert^2/2} (\cos Wx, \sin Wx)`
``positive``       m      :math:`m^{-1/2} \exp(Wx - \lVert x\rVert^2/2)` (Lemma 1, FAVOR+)
``hyperbolic``     2m     :math:`(2m)^{-1/2} (\exp(Wx - \lVert x\rVert^2/2), \exp(-Wx - \lVert x\rVert^2/2))`
``relu``           m      :math:`m^{-1/2}\,\mathrm{relu}(Wx)` (arc-cosine kernel; no ``kernel`` choice)
=================  =====  ==========================================================================

With ``kernel="gaussian"`` the maps estimate :math:`\exp(-\lVert x-y\rVert^2/2)` instead:
trigonometric features drop the :math:`e^{\lVert x\rVert^2/2}` factor and the exponential
maps subtract :math:`\lVert x\rVert^2` instead of :math:`\lVert x\rVert^2/2` (formulas §1.1).

Collapsed forms of the dot products (formulas §2.2-2.4, checked exactly by the tests):

* trigonometric: :math:`e^{(\lVert x\rVert^2 + \lVert y\rVert^2)/2}\, \frac1m \sum_i \cos(\omega_i^T \Delta)`;
* positive: :math:`\Lambda\, \frac1m \sum_i \exp(\omega_i^T z)`, :math:`\Lambda = e^{-(\lVert x\rVert^2 + \lVert y\rVert^2)/2}`;
* hyperbolic: :math:`\Lambda\, \frac1m \sum_i \cosh(\omega_i^T z)`.

Numerics. The exponential maps evaluate one ``exp`` of the combined exponent
:math:`\omega^T x - \lVert x\rVert^2/2 \le \lVert\omega\rVert^2/2`, so they never overflow
where the features themselves are representable (the naive product
:math:`e^{\omega^T x} e^{-\lVert x\rVert^2/2}` overflows from :math:`\omega^T x > 709`).
The trigonometric softmax factor :math:`e^{\lVert x\rVert^2/2}` is the true size of those
features; use the Gaussian form, or attention (which removes it exactly), for large norms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from favor._validation import check_choice, check_float_array, check_projection

__all__ = [
    "FEATURE_MAPS",
    "FeatureMap",
    "hyperbolic_features",
    "positive_features",
    "random_features",
    "relu_features",
    "trigonometric_features",
]

_KERNELS = ("softmax", "gaussian")


def _half_sq_norm(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.einsum("...i,...i->...", x, x)[..., None]


def _logits(x: np.ndarray, projection: np.ndarray) -> np.ndarray:
    return x @ projection.astype(x.dtype, copy=False).T


def _check(x: Any, projection: Any, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    x = check_float_array("x", x, min_ndim=1)
    projection = check_projection(projection, x.shape[-1])
    check_choice("kernel", kernel, _KERNELS)
    return x, projection


def _trigonometric(x: np.ndarray, projection: np.ndarray, kernel: str) -> np.ndarray:
    m = projection.shape[0]
    wx = _logits(x, projection)
    scale = 1.0 / np.sqrt(m)
    if kernel == "softmax":
        scale = np.exp(_half_sq_norm(x)) * scale
    out = np.concatenate([np.cos(wx), np.sin(wx)], axis=-1)
    out *= np.asarray(scale, dtype=x.dtype)
    return out


def _exp_shift(x: np.ndarray, kernel: str) -> np.ndarray:
    # softmax: h(x) = exp(-|x|^2/2); gaussian adds the factor exp(-|x|^2/2) of SM -> K_gauss.
    half = _half_sq_norm(x)
    return half if kernel == "softmax" else 2 * half


def _positive(x: np.ndarray, projection: np.ndarray, kernel: str) -> np.ndarray:
    m = projection.shape[0]
    exponent = _logits(x, projection) - _exp_shift(x, kernel) - x.dtype.type(0.5 * np.log(m))
    return np.exp(exponent, out=exponent)


def _hyperbolic(x: np.ndarray, projection: np.ndarray, kernel: str) -> np.ndarray:
    m = projection.shape[0]
    wx = _logits(x, projection)
    shift = _exp_shift(x, kernel) + x.dtype.type(0.5 * np.log(2 * m))
    out = np.concatenate([wx - shift, -wx - shift], axis=-1)
    return np.exp(out, out=out)


def _relu(x: np.ndarray, projection: np.ndarray, kernel: str) -> np.ndarray:
    m = projection.shape[0]
    out = np.maximum(_logits(x, projection), 0)
    out *= x.dtype.type(1.0 / np.sqrt(m))
    return out


def trigonometric_features(x: Any, projection: Any, *, kernel: str = "softmax") -> np.ndarray:
    r"""Trigonometric (random Fourier) features with (cos, sin) pairs.

    .. math::
        \varphi(x) = \frac{h(x)}{\sqrt m}\left(\cos(\omega_1^T x), \dots, \cos(\omega_m^T x),
        \sin(\omega_1^T x), \dots, \sin(\omega_m^T x)\right),

    :math:`h(x) = e^{\lVert x\rVert^2/2}` for the softmax kernel and :math:`h = 1` for the
    Gaussian kernel (Performers Sec. 2.3; Rahimi & Recht 2007). The MSE for the softmax
    kernel is :math:`\frac{1}{2m} e^{\lVert x\rVert^2+\lVert y\rVert^2}(1-e^{-\lVert\Delta\rVert^2})^2`
    (Performers Lemma 2); the estimate can be negative.

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Random projection rows :math:`\omega_i`.
    kernel : {"softmax", "gaussian"}, default="softmax"
        Which kernel the dot products estimate.

    Returns
    -------
    numpy.ndarray of shape (..., 2m)
        The features.
    """
    x, projection = _check(x, projection, kernel)
    return _trigonometric(x, projection, kernel)


def positive_features(x: Any, projection: Any, *, kernel: str = "softmax") -> np.ndarray:
    r"""Positive random features (FAVOR+, Performers Lemma 1).

    .. math::
        \varphi(x) = \frac{1}{\sqrt m}\exp\left(Wx - \lVert x\rVert^2/2\right),
        \qquad E[\varphi(x)^T\varphi(y)] = \exp(x^T y),

    with :math:`\lVert x\rVert^2` subtracted instead for the Gaussian kernel. All features
    are positive, so attention normalisers never vanish; the MSE is
    :math:`\frac1m \Lambda^2 (e^{2\lVert z\rVert^2} - e^{\lVert z\rVert^2})` (Lemma 2).

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Random projection rows.
    kernel : {"softmax", "gaussian"}, default="softmax"
        Which kernel the dot products estimate.

    Returns
    -------
    numpy.ndarray of shape (..., m)
        The features.
    """
    x, projection = _check(x, projection, kernel)
    return _positive(x, projection, kernel)


def hyperbolic_features(x: Any, projection: Any, *, kernel: str = "softmax") -> np.ndarray:
    r"""Hyperbolic positive features :math:`\exp(\pm Wx)` (Performers Sec. 2.3, SMhyp+).

    .. math::
        \varphi(x) = \frac{1}{\sqrt{2m}}\left(\exp(Wx - \lVert x\rVert^2/2),
        \exp(-Wx - \lVert x\rVert^2/2)\right),

    whose dot product is :math:`\Lambda \frac1m \sum_i \cosh(\omega_i^T z)`. Its MSE is
    :math:`\tfrac12(1 - e^{-\lVert z\rVert^2})` times that of :func:`positive_features`
    with the same ``m`` (Lemma 2), and it is even in each row, so it is unaffected by
    sign asymmetries of the projection.

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Random projection rows.
    kernel : {"softmax", "gaussian"}, default="softmax"
        Which kernel the dot products estimate.

    Returns
    -------
    numpy.ndarray of shape (..., 2m)
        The features.
    """
    x, projection = _check(x, projection, kernel)
    return _hyperbolic(x, projection, kernel)


def relu_features(x: Any, projection: Any, *, kernel: str = "arccos") -> np.ndarray:
    r"""ReLU features :math:`m^{-1/2}\,\mathrm{relu}(Wx)` (Performer-ReLU, Performers Sec. 4).

    Their dot product estimates the order-1 arc-cosine kernel
    :func:`favor.exact.arccos_kernel` (Cho & Saul 2009; formulas §5 [K1-mean]). In attention
    this defines generalised (non-softmax) kernelised attention.

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Random projection rows.
    kernel : {"arccos"}, default="arccos"
        The only kernel these features estimate (accepted for a uniform signature).

    Returns
    -------
    numpy.ndarray of shape (..., m)
        The non-negative features.
    """
    x = check_float_array("x", x, min_ndim=1)
    projection = check_projection(projection, x.shape[-1])
    check_choice("kernel", kernel, ("arccos",))
    return _relu(x, projection, kernel)


@dataclass(frozen=True)
class FeatureMap:
    """A registered feature map and the facts tests and estimators need about it.

    Attributes
    ----------
    name : str
        Registry key.
    function : callable
        The public map ``f(x, projection, *, kernel)``.
    compute : callable
        The unchecked implementation ``f(x, projection, kernel)`` for trusted inputs.
    outputs_per_projection : int
        Features per projection row (1 or 2): the output width is this times ``m``.
    kernels : tuple of str
        The kernels its dot products are unbiased for (first is the default).
    nonnegative : bool
        Whether every feature is >= 0 (attention normalisers then cannot vanish).
    """

    name: str
    function: Callable[..., np.ndarray]
    compute: Callable[[np.ndarray, np.ndarray, str], np.ndarray]
    outputs_per_projection: int
    kernels: tuple[str, ...]
    nonnegative: bool


#: Registry of feature maps: name -> :class:`FeatureMap`. Tests are parametrised over it.
FEATURE_MAPS: dict[str, FeatureMap] = {
    "trigonometric": FeatureMap(
        "trigonometric", trigonometric_features, _trigonometric, 2, _KERNELS, False
    ),
    "positive": FeatureMap("positive", positive_features, _positive, 1, _KERNELS, True),
    "hyperbolic": FeatureMap("hyperbolic", hyperbolic_features, _hyperbolic, 2, _KERNELS, True),
    "relu": FeatureMap("relu", relu_features, _relu, 1, ("arccos",), True),
}


def random_features(
    x: Any, projection: Any, *, feature_map: str = "positive", kernel: str | None = None
) -> np.ndarray:
    """Apply the feature map registered under ``feature_map`` in :data:`FEATURE_MAPS`.

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64.
    projection : array_like of shape (m, d)
        Random projection rows.
    feature_map : {"positive", "hyperbolic", "trigonometric", "relu"}, default="positive"
        Which map.
    kernel : str, optional
        Which kernel to estimate; defaults to the map's first kernel ("softmax", or
        "arccos" for "relu").

    Returns
    -------
    numpy.ndarray of shape (..., outputs_per_projection * m)
        The features.
    """
    spec = FEATURE_MAPS[check_choice("feature_map", feature_map, FEATURE_MAPS)]
    return spec.function(x, projection, kernel=spec.kernels[0] if kernel is None else kernel)
