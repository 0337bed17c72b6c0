r"""The FAVOR estimator for a *given* projection, from the collapsed formulas (the oracle).

For a fixed projection :math:`W = (\omega_1, \dots, \omega_m)^T` every feature map's dot
product has a collapsed form that needs no feature vector (formulas §2.2-2.3, §5):

==================  =====================================================================
map                 :math:`\hat K(x, y) = \varphi(x)^T\varphi(y)`
==================  =====================================================================
``positive``        :math:`\Lambda\,\frac1m\sum_l e^{\omega_l^T z}`, :math:`z = x + y`
``hyperbolic``      :math:`\Lambda\,\frac1m\sum_l \cosh(\omega_l^T z)`
``trigonometric``   :math:`e^{(\lVert x\rVert^2 + \lVert y\rVert^2)/2}\,\frac1m\sum_l \cos(\omega_l^T \Delta)`
``relu``            :math:`\frac1m\sum_l \mathrm{relu}(\omega_l^T x)\,\mathrm{relu}(\omega_l^T y)`
==================  =====================================================================

with :math:`\Lambda = e^{-(\lVert x\rVert^2 + \lVert y\rVert^2)/2}` for the softmax kernel
(the Gaussian kernel multiplies by :math:`e^{-(\lVert x\rVert^2 + \lVert y\rVert^2)/2}` once
more, formulas §1.1). FAVOR attention (Performers Eq. 4; formulas §1.3) is
:math:`\hat D^{-1}\hat A V` with :math:`\hat A_{ij} = \hat K(s q_i, s k_j)`,
:math:`s = d^{-1/4}`, restricted to the visible keys (:math:`j \le i` when causal, padded
keys removed); a query with no visible key gets a zero row.

Part of the oracle: NumPy only, nothing from ``favor``, evaluated in float64 with
log-space shifts that cancel exactly in the normalisation, so a bug in the engine cannot
leak into the reference it is compared with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["COLLAPSED_MAPS", "collapsed_attention", "collapsed_kernel", "gerf_log_kernel"]

#: Maps whose collapsed form this module knows (others may register theirs here).
COLLAPSED_MAPS = ("positive", "hyperbolic", "trigonometric", "relu")


def _sq(x: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", x, x)


def _log_kernel_parts(
    feature_map: str, x: np.ndarray, y: np.ndarray, w: np.ndarray, kernel: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(sign, log|K_hat|)`` of shape (n_x, n_y) for the softmax or Gaussian kernel."""
    m = w.shape[0]
    a = x @ w.T  # (n_x, m)
    b = y @ w.T  # (n_y, m)
    half_x = 0.5 * _sq(x)[:, None]
    half_y = 0.5 * _sq(y)[None, :]
    if feature_map in ("positive", "hyperbolic"):

        def lse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            # log sum_l exp(u_il + v_jl), shifted per row and per column.
            su = u.max(1, keepdims=True)
            sv = v.max(1, keepdims=True)
            return np.log(np.exp(u - su) @ np.exp(v - sv).T) + su + sv.T

        log_sum = lse(a, b)
        if feature_map == "hyperbolic":
            log_sum = np.logaddexp(log_sum, lse(-a, -b)) - np.log(2.0)
        log_k = log_sum - np.log(m) - half_x - half_y
        if kernel in ("gaussian", "rbf"):
            log_k = log_k - half_x - half_y
        return np.ones_like(log_k), log_k
    if feature_map == "trigonometric":
        mean_cos = (np.cos(a) @ np.cos(b).T + np.sin(a) @ np.sin(b).T) / m
        log_scale = np.zeros_like(mean_cos) if kernel in ("gaussian", "rbf") else half_x + half_y
        with np.errstate(divide="ignore"):
            return np.sign(mean_cos), np.log(np.abs(mean_cos)) + log_scale
    if feature_map == "relu":
        k = np.maximum(a, 0) @ np.maximum(b, 0).T / m
        with np.errstate(divide="ignore"):
            return np.sign(k), np.log(k)
    raise ValueError(f"feature_map must be one of {COLLAPSED_MAPS}, got {feature_map!r}")


def gerf_log_kernel(x: np.ndarray, y: np.ndarray, w: np.ndarray, a: float) -> np.ndarray:
    r""":math:`\log\hat K(x_i, y_j)` of GERF features at :math:`A = a` (formulas §6.3).

    .. math::
        \hat K = \frac{(1-4A)^{d/2}}{m} e^{-(\lVert x\rVert^2 + \lVert y\rVert^2)/2}
        \sum_r e^{2A\lVert\omega_r\rVert^2 + \sqrt{1-4A}\,\omega_r^T(x + y)},

    the softmax-kernel estimate (subtract :math:`(\lVert x\rVert^2 + \lVert y\rVert^2)/2`
    more for the Gaussian kernel), summed in log space. SADERF inputs come rescaled
    (:math:`\Psi x`, :math:`\Psi^{-1} y`).

    Parameters
    ----------
    x : numpy.ndarray of shape (n_x, d)
    y : numpy.ndarray of shape (n_y, d)
    w : numpy.ndarray of shape (..., m, d)
        One projection, or a stack of them (leading axes kept).
    a : float
        :math:`A < 1/4`.

    Returns
    -------
    numpy.ndarray of shape (..., n_x, n_y)
    """
    m, d = w.shape[-2:]
    b = np.sqrt(1 - 4 * a)
    bias = a * _sq(w)[..., None, :]
    u = b * np.einsum("id,...md->...im", x, w) + bias
    v = b * np.einsum("jd,...md->...jm", y, w) + bias
    su = u.max(-1, keepdims=True)
    sv = v.max(-1, keepdims=True)
    log_sum = np.log(np.exp(u - su) @ np.swapaxes(np.exp(v - sv), -1, -2))
    log_sum += su + np.swapaxes(sv, -1, -2)
    const = 0.5 * d * np.log1p(-4 * a) - np.log(m)
    return log_sum + const - 0.5 * _sq(x)[:, None] - 0.5 * _sq(y)[None, :]


def collapsed_kernel(
    feature_map: str, x: Any, y: Any, projection: Any, *, kernel: str = "softmax"
) -> np.ndarray:
    r"""The estimate :math:`\hat K(x_i, y_j)` for a given projection, from the collapsed form.

    Parameters
    ----------
    feature_map : {"positive", "hyperbolic", "trigonometric", "relu"}
        The map.
    x : array_like of shape (n_x, d)
        First arguments.
    y : array_like of shape (n_y, d)
        Second arguments.
    projection : array_like of shape (m, d)
        The projection rows :math:`\omega_l`.
    kernel : {"softmax", "rbf"}, default="softmax"
        The kernel estimated (ignored for ``relu``: arc-cosine).

    Returns
    -------
    numpy.ndarray of shape (n_x, n_y)
        The estimates, float64.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    w = np.asarray(projection, dtype=np.float64)
    sign, log_k = _log_kernel_parts(feature_map, x, y, w, kernel)
    return sign * np.exp(log_k)


def collapsed_attention(
    feature_map: str,
    queries: Any,
    keys: Any,
    values: Any,
    projection: Any,
    *,
    causal: bool = False,
    key_padding_mask: Any = None,
) -> np.ndarray:
    r"""FAVOR attention :math:`\hat D^{-1}\hat A V` for one projection, from the collapsed form.

    Parameters
    ----------
    feature_map : str
        One of :data:`COLLAPSED_MAPS`.
    queries : array_like of shape (..., L_q, d)
        Unscaled queries (the :math:`d^{-1/4}` factor is applied here).
    keys : array_like of shape (..., L_k, d)
        Unscaled keys.
    values : array_like of shape (..., L_k, d_v)
        Values.
    projection : array_like of shape (m, d) or (H, m, d)
        One projection, or one per head (heads = the axis just before ``L``).
    causal : bool, default=False
        Query ``t`` sees keys ``<= t`` only.
    key_padding_mask : bool array_like of shape (..., L_k), optional
        True marks a padded key (removed from numerator and normaliser).

    Returns
    -------
    numpy.ndarray of shape (..., L_q, d_v)
        The output, float64; zero rows where no key is visible.
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(projection, dtype=np.float64)
    lead = q.shape[:-2]
    n_q, d = q.shape[-2:]
    n_k = k.shape[-2]
    s = d**-0.25
    mask = (
        np.zeros((*lead, n_k), dtype=bool)
        if key_padding_mask is None
        else np.broadcast_to(np.asarray(key_padding_mask, dtype=bool), (*lead, n_k))
    )
    qg = q.reshape(-1, n_q, d)
    kg = k.reshape(-1, n_k, d)
    vg = v.reshape(-1, n_k, v.shape[-1])
    mg = mask.reshape(-1, n_k)
    heads = w.shape[0] if w.ndim == 3 else 1
    out = np.zeros((qg.shape[0], n_q, v.shape[-1]))
    visible_base = np.tril(np.ones((n_q, n_k), dtype=bool)) if causal else np.ones((n_q, n_k), bool)
    for g in range(qg.shape[0]):
        wg = w[g % heads] if w.ndim == 3 else w
        sign, log_k = _log_kernel_parts(feature_map, s * qg[g], s * kg[g], wg, "softmax")
        visible = visible_base & ~mg[g][None, :]
        log_k = np.where(visible & (sign != 0), log_k, -np.inf)
        top = log_k.max(1, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        weights = np.where(visible, sign * np.exp(log_k - top), 0.0)
        den = weights.sum(1, keepdims=True)
        num = weights @ vg[g]
        out[g] = np.where(den != 0, num / np.where(den != 0, den, 1.0), 0.0)
    return out.reshape((*lead, n_q, v.shape[-1]))
