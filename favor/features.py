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

With ``kernel="rbf"`` the maps estimate :math:`\exp(-\lVert x-y\rVert^2/2)` instead:
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
features; use the ``rbf`` form, or attention (which removes it exactly), for large norms.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from favor._dispatch import dispatch
from favor.registry import FEATURE_MAPS, feature_map

__all__ = [
    "hyperbolic_features",
    "positive_features",
    "random_features",
    "relu_features",
    "trigonometric_features",
]

# --------------------------------------------------------------------------- helpers
# Shared by every NumPy formula; ``x`` is a dense array of shape (..., d) or, for
# FavorSampler, a SciPy CSR matrix of shape (n, d).


def _is_sparse(x: Any) -> bool:
    return hasattr(x, "multiply")


def _rows(x: Any) -> Any:
    return x if _is_sparse(x) or x.ndim == 2 else x.reshape(-1, x.shape[-1])


def _lead(x: Any) -> tuple[int, ...]:
    return tuple(x.shape[:-1])


def project(x: Any, projection: np.ndarray, scale: float, out: np.ndarray) -> None:
    """Write the logits :math:`(s x) W^T` of the rows of ``x`` into the 2-D view ``out``.

    ``projection * scale`` is formed once in ``x``'s dtype (the ``(m, d)`` matrix is small),
    so the inputs are never copied; one GEMM (a sparse-dense product for CSR input).
    """
    weights = projection.astype(x.dtype, copy=False)
    if scale != 1.0:
        weights = weights * x.dtype.type(scale)
    if _is_sparse(x):
        from sklearn.utils.extmath import safe_sparse_dot

        out[...] = safe_sparse_dot(x, weights.T, dense_output=True)
    else:
        np.matmul(x, weights.T, out=out)


def half_sq_norms(x: Any, scale: float) -> np.ndarray:
    r""":math:`h = \lVert s x\rVert^2 / 2` per row of ``x`` (2-D dense or CSR), shape (n,)."""
    if _is_sparse(x):
        sq = np.asarray(x.multiply(x).sum(axis=1), dtype=x.dtype).reshape(-1)
    else:
        sq = np.einsum("ij,ij->i", x, x)
    return sq * x.dtype.type(0.5 * scale * scale)


#: Below this many output elements the float64 cos/sin loop runs on one thread: waking
#: the pool costs more than it saves. Serial and parallel loops give bit-identical output.
_PARALLEL_MIN_SIZE = 1 << 16


def _cos_sin_inplace(features: np.ndarray, row_scale: np.ndarray | float) -> None:
    """In place: ``features = row_scale * [cos(t), sin(t)]`` with ``t = features[:, :m]``."""
    if features.dtype == np.float64:
        # NumPy's float64 cos/sin are scalar libm loops; the fused jit loop is 2-3x faster
        # (favor._jit.features).
        from favor._jit.features import scaled_cos_sin, scaled_cos_sin_serial
        from favor._threads import jit_threads

        scale = np.empty(features.shape[0], dtype=np.float64)
        scale[...] = row_scale
        if features.size < _PARALLEL_MIN_SIZE:
            scaled_cos_sin_serial(features, scale)
            return
        with jit_threads(features.shape[0]):
            scaled_cos_sin(features, scale)
        return
    # float32: one vectorised jit loop (favor._jit.trig) computes sin and cos from one shared
    # range reduction, writes both halves and applies the row scale in the same pass.
    from favor._jit.trig import scaled_cos_sin_f32, scaled_cos_sin_f32_serial
    from favor._threads import jit_threads

    scale32 = np.empty(features.shape[0], dtype=np.float32)
    scale32[...] = row_scale
    if features.size < _PARALLEL_MIN_SIZE:
        scaled_cos_sin_f32_serial(features, scale32)
        return
    with jit_threads(features.shape[0]):
        scaled_cos_sin_f32(features, scale32)


# --------------------------------------------------------------------------- formulas
# One NumPy formula per map: f(x, projection, kernel, scale, params, is_key) -> features of
# scale * x (favor.registry, step 1). Unchecked: callers validate.


def trigonometric(
    x: Any, projection: np.ndarray, kernel: str, scale: float, params: np.ndarray, is_key: bool
) -> np.ndarray:
    r"""Trigonometric features :math:`h(x') m^{-1/2} (\cos W x', \sin W x')`, :math:`x' = s x`."""
    rows = _rows(x)
    m = projection.shape[0]
    out = np.empty((rows.shape[0], 2 * m), dtype=rows.dtype)
    project(rows, projection, scale, out[:, :m])
    if kernel == "softmax":
        # h(x') = exp(|x'|^2 / 2), in log space with the 1/sqrt(m); inf where the true size of
        # the features is not representable (the kernel itself overflows there).
        with np.errstate(over="ignore"):
            row_scale = np.exp(half_sq_norms(rows, scale) - rows.dtype.type(0.5 * np.log(m)))
        _cos_sin_inplace(out, row_scale)
    else:
        _cos_sin_inplace(out, 1.0 / np.sqrt(m))
    return out.reshape((*_lead(x), 2 * m))


def _shift(rows: Any, kernel: str, scale: float, log_const: float) -> np.ndarray:
    # softmax: |x'|^2 / 2; rbf multiplies by a further exp(-|x'|^2 / 2) (formulas §1.1).
    half = half_sq_norms(rows, scale)
    shift = half if kernel == "softmax" else 2 * half
    return np.ascontiguousarray(shift + rows.dtype.type(log_const), dtype=rows.dtype)


def _exp_shifted_inplace(out: np.ndarray, shift: np.ndarray) -> None:
    """In place: ``out = exp(out - shift[:, None])``, one fused jit pass per row
    (:func:`favor._jit.shifted_exp.shifted_exp`)."""
    from favor._jit.shifted_exp import shifted_exp

    shifted_exp(out, shift)


def positive(
    x: Any, projection: np.ndarray, kernel: str, scale: float, params: np.ndarray, is_key: bool
) -> np.ndarray:
    r"""Positive features :math:`m^{-1/2}\exp(W x' - \lVert x'\rVert^2/2)` (Performers Lemma 1)."""
    rows = _rows(x)
    m = projection.shape[0]
    out = np.empty((rows.shape[0], m), dtype=rows.dtype)
    project(rows, projection, scale, out)
    _exp_shifted_inplace(out, _shift(rows, kernel, scale, 0.5 * np.log(m)))
    return out.reshape((*_lead(x), m))


def hyperbolic(
    x: Any, projection: np.ndarray, kernel: str, scale: float, params: np.ndarray, is_key: bool
) -> np.ndarray:
    r"""Hyperbolic features :math:`(2m)^{-1/2}\exp(\pm W x' - \lVert x'\rVert^2/2)`."""
    rows = _rows(x)
    m = projection.shape[0]
    out = np.empty((rows.shape[0], 2 * m), dtype=rows.dtype)
    project(rows, projection, scale, out[:, :m])
    np.negative(out[:, :m], out=out[:, m:])
    _exp_shifted_inplace(out, _shift(rows, kernel, scale, 0.5 * np.log(2 * m)))
    return out.reshape((*_lead(x), 2 * m))


def relu(
    x: Any, projection: np.ndarray, kernel: str, scale: float, params: np.ndarray, is_key: bool
) -> np.ndarray:
    r"""ReLU features :math:`m^{-1/2}\,\mathrm{relu}(W x')` (arc-cosine kernel)."""
    rows = _rows(x)
    m = projection.shape[0]
    out = np.empty((rows.shape[0], m), dtype=rows.dtype)
    project(rows, projection, scale, out)
    np.maximum(out, 0, out=out)
    out *= rows.dtype.type(1.0 / np.sqrt(m))
    return out.reshape((*_lead(x), m))


# --------------------------------------------------------------------------- public maps


@dispatch
def trigonometric_features(
    x: ArrayLike, projection: ArrayLike, *, kernel: Literal["softmax", "rbf"] = "softmax"
) -> np.ndarray:
    r"""Trigonometric (random Fourier) features with (cos, sin) pairs.

    .. math::
        \varphi(x) = \frac{h(x)}{\sqrt m}\left(\cos(\omega_1^T x), \dots, \cos(\omega_m^T x),
        \sin(\omega_1^T x), \dots, \sin(\omega_m^T x)\right),

    :math:`h(x) = e^{\lVert x\rVert^2/2}` for the softmax kernel and :math:`h = 1` for the
    ``rbf`` kernel (Performers Sec. 2.3; Rahimi & Recht 2007). The MSE for the softmax
    kernel is :math:`\frac{1}{2m} e^{\lVert x\rVert^2+\lVert y\rVert^2}(1-e^{-\lVert\Delta\rVert^2})^2`
    (Performers Lemma 2); the estimate can be negative.

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Random projection rows :math:`\omega_i`.
    kernel : {"softmax", "rbf"}, default="softmax"
        Which kernel the dot products estimate (``"rbf"``: :math:`\exp(-\lVert x-y\rVert^2/2)`).

    Returns
    -------
    numpy.ndarray of shape (..., 2m)
        The features.
    """
    return FEATURE_MAPS["trigonometric"](x, projection, kernel=kernel)


@dispatch
def positive_features(
    x: ArrayLike, projection: ArrayLike, *, kernel: Literal["softmax", "rbf"] = "softmax"
) -> np.ndarray:
    r"""Positive random features (FAVOR+, Performers Lemma 1).

    .. math::
        \varphi(x) = \frac{1}{\sqrt m}\exp\left(Wx - \lVert x\rVert^2/2\right),
        \qquad E[\varphi(x)^T\varphi(y)] = \exp(x^T y),

    with :math:`\lVert x\rVert^2` subtracted instead for the ``rbf`` kernel. All features
    are positive, so attention normalisers never vanish; the MSE is
    :math:`\frac1m \Lambda^2 (e^{2\lVert z\rVert^2} - e^{\lVert z\rVert^2})` (Lemma 2).

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Random projection rows.
    kernel : {"softmax", "rbf"}, default="softmax"
        Which kernel the dot products estimate.

    Returns
    -------
    numpy.ndarray of shape (..., m)
        The features.
    """
    return FEATURE_MAPS["positive"](x, projection, kernel=kernel)


@dispatch
def hyperbolic_features(
    x: ArrayLike, projection: ArrayLike, *, kernel: Literal["softmax", "rbf"] = "softmax"
) -> np.ndarray:
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
    kernel : {"softmax", "rbf"}, default="softmax"
        Which kernel the dot products estimate.

    Returns
    -------
    numpy.ndarray of shape (..., 2m)
        The features.
    """
    return FEATURE_MAPS["hyperbolic"](x, projection, kernel=kernel)


@dispatch
def relu_features(
    x: ArrayLike, projection: ArrayLike, *, kernel: Literal["arccos"] = "arccos"
) -> np.ndarray:
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
    return FEATURE_MAPS["relu"](x, projection, kernel=kernel)


@dispatch
def random_features(
    x: ArrayLike,
    projection: ArrayLike,
    *,
    features: str = "positive",
    kernel: str | None = None,
) -> np.ndarray:
    """Apply the feature map registered under ``features`` in :data:`favor.registry.FEATURE_MAPS`.

    Like every public map here, a call with a torch tensor among its arguments goes to
    the twin of the same name in :mod:`favor.torch` (:mod:`favor._dispatch`).

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64.
    projection : array_like of shape (m, d)
        Random projection rows.
    features : str, default="positive"
        Which map ("positive", "hyperbolic", "trigonometric", "relu", or any registered).
    kernel : str, optional
        Which kernel to estimate; defaults to the map's first kernel ("softmax", or
        "arccos" for "relu").

    Returns
    -------
    numpy.ndarray of shape (..., outputs_per_projection * m)
        The features.
    """
    return feature_map(features)(x, projection, kernel=kernel)
