r"""Angular hybrid random features: trigonometric and hyperbolic estimates mixed by the angle.

Hybrid random features (Choromanski et al., "Hybrid Random Features", ICLR 2022; formulas
§6.5) combine base estimators of :math:`\mathrm{SM}(x, y) = e^{x^T y}` with weights that
are themselves random-feature estimates, so the result is again a dot product of features:

.. math::
    \hat K(x, y) = \hat\lambda\, \hat K_{hyp}(x, y) + (1 - \hat\lambda)\, \hat K_{trig}(x, y),
    \qquad \hat\lambda = \frac12 - \frac{1}{2 m_\lambda}\sum_{i=1}^{m_\lambda}
    \mathrm{sgn}(\omega_i'^T x)\,\mathrm{sgn}(\omega_i'^T y),

with :math:`\hat K_{hyp} = \Lambda\frac1m\sum_r\cosh(\omega_r^T z)` and
:math:`\hat K_{trig} = e^{(\lVert x\rVert^2+\lVert y\rVert^2)/2}\frac1m\sum_r
\cos(\omega_r^T\Delta)` on the *same* rows :math:`\omega_r`, and sign rows
:math:`\omega'_i` independent of them. :math:`E\hat\lambda = \theta/\pi` (the angle between
:math:`x` and :math:`y`), and since :math:`\hat\lambda` is independent of the base pair,
:math:`\hat K` is unbiased for any such weight.

Convention: :math:`\hat\lambda` multiplies the *hyperbolic* estimate. For inputs of equal
norm the trigonometric estimate is exact at :math:`\theta = 0` (:math:`\Delta = 0`) and the
hyperbolic one at :math:`\theta = \pi` (:math:`z = 0`), and there :math:`\hat\lambda` is
exactly 0 and 1, so the MSE vanishes at both ends (the claim ``H2`` in :mod:`theory`
checks this against the closed form; the opposite assignment leaves it nonzero).

Features (width :math:`4m(m_\lambda + 1)`):

.. math::
    \varphi_Q(x) = \big(a_Q(x)\otimes h(x),\ b(x)\otimes t(x)\big),\quad
    \varphi_K(y) = \big(b(y)\otimes h(y),\ b(y)\otimes t(y)\big),

with :math:`a_Q(x) = (2^{-1/2}, -(2m_\lambda)^{-1/2}\mathrm{sgn}(W'x))`,
:math:`b(x) = (2^{-1/2}, (2m_\lambda)^{-1/2}\mathrm{sgn}(W'x))` (so
:math:`a_Q(x)^T b(y) = \hat\lambda` and :math:`b(x)^T b(y) = 1 - \hat\lambda`), and
:math:`h, t` the hyperbolic and trigonometric maps of :mod:`favor.features`. Queries and
keys get different maps (one sign), so this is an attention estimator, not a symmetric
kernel transformer. :math:`\mathrm{sgn}(0) = +1`.

The estimate can be negative (the trigonometric part, and the minus sign in
:math:`\hat\lambda`), and so can the estimated normaliser :math:`\hat D_i = \sum_j
\hat A_{ij}` of attention, whose true value is always positive. Attention
(``features="hybrid"`` in :func:`favor.favor_attention`, :mod:`favor.decoding` and
:mod:`favor.torch`) keeps :math:`\hat D^{-1}\hat A V` for every row with
:math:`\hat D_i > 0` (no clipping of entries, which would bias them) and applies the
*normaliser sign rule* to the others: a row whose estimated normaliser is :math:`\le 0`
is returned as zeros and counted in a :class:`favor.FavorAccuracyWarning` (dividing by a
non-positive estimate would flip the sign of the output or blow it up; no inf or NaN
reaches the result).

In attention the projection of this map has :math:`m + m_\lambda` rows: the :math:`m`
base rows :math:`\omega_r` (any registered coupling) followed by :math:`m_\lambda =`
:data:`DEFAULT_ANGULAR` i.i.d. Gaussian sign rows drawn after them from the same
generator (independent of the base rows, as unbiasedness needs); ``n_components`` counts
the base rows (the registry's ``sign_rows``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DEFAULT_ANGULAR", "hybrid_features", "registry_formula"]

#: Default number of sign rows :math:`m_\lambda`.
DEFAULT_ANGULAR = 4


def _signs(x: np.ndarray, angular: np.ndarray) -> np.ndarray:
    logits = x @ angular.astype(x.dtype, copy=False).T
    return np.where(logits >= 0, 1.0, -1.0).astype(x.dtype)


def _weights(signs: np.ndarray, negate: bool) -> np.ndarray:
    n = signs.shape[-1]
    head = np.full((*signs.shape[:-1], 1), np.sqrt(0.5), dtype=signs.dtype)
    tail = signs * signs.dtype.type((-1.0 if negate else 1.0) / np.sqrt(2.0 * n))
    return np.concatenate([head, tail], axis=-1)


def _base(x: np.ndarray, projection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = projection.shape[0]
    wx = x @ projection.astype(x.dtype, copy=False).T
    half = 0.5 * np.einsum("...i,...i->...", x, x)[..., None]
    shift = half + x.dtype.type(0.5 * np.log(2 * m))
    hyp = np.exp(np.concatenate([wx - shift, -wx - shift], axis=-1))
    trig = np.concatenate([np.cos(wx), np.sin(wx)], axis=-1)
    trig *= np.exp(half - x.dtype.type(0.5 * np.log(m)))
    return hyp, trig


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[..., :, None] * b[..., None, :]).reshape(*a.shape[:-1], a.shape[-1] * b.shape[-1])


def hybrid_features(x: Any, projection: Any, angular_projection: Any, *, role: str) -> np.ndarray:
    r"""Angular hybrid features of queries or keys (module docstring).

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Base rows :math:`\omega_r`, shared by the hyperbolic and trigonometric parts.
    angular_projection : array_like of shape (m_lambda, d)
        Sign rows :math:`\omega'_i`, independent of ``projection`` (direction only matters).
    role : {"query", "key"}
        Which side: :math:`\varphi_Q(x)^T\varphi_K(y)` is the hybrid estimate.

    Returns
    -------
    numpy.ndarray of shape (..., 4 m (m_lambda + 1))
        The features (not all positive).
    """
    from favor._validation import check_choice, check_float_array, check_projection

    x = check_float_array("x", x, min_ndim=1)
    w = check_projection(projection, x.shape[-1])
    w2 = check_projection(angular_projection, x.shape[-1], name="angular_projection")
    check_choice("role", role, ("query", "key"))
    return _hybrid(x, w, w2, role == "query")


def _hybrid(x: np.ndarray, w: np.ndarray, w2: np.ndarray, is_query: bool) -> np.ndarray:
    signs = _signs(x, w2)
    hyp, trig = _base(x, w)
    lam = _weights(signs, negate=is_query)
    rest = _weights(signs, negate=False)
    return np.concatenate([_outer(lam, hyp), _outer(rest, trig)], axis=-1)


def registry_formula(
    x: Any, projection: np.ndarray, kernel: str, scale: float, params: np.ndarray, is_key: bool
) -> np.ndarray:
    r"""The registry's NumPy form: hybrid features of ``scale * x`` from a stacked projection.

    ``projection`` holds the base rows followed by ``params[0]`` sign rows (the registry's
    ``sign_rows``); ``is_key`` selects :math:`\varphi_K` (else :math:`\varphi_Q`).
    Softmax kernel only.
    """
    n_signs = int(params[0]) if params.size else DEFAULT_ANGULAR
    m = projection.shape[0] - n_signs
    x = np.asarray(x)
    rows = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    if scale != 1.0:
        rows = rows * rows.dtype.type(scale)
    out = _hybrid(rows, projection[:m], projection[m:], not is_key)
    return out.reshape((*x.shape[:-1], out.shape[-1]))
