r"""Exact kernels and exact softmax attention: the references every estimator is checked against.

Kernels (formulas §1.1, 5):

* softmax kernel :math:`\mathrm{SM}_\gamma(x, y) = \exp(\gamma\, x^T y)`;
* Gaussian kernel :math:`K_\gamma(x, y) = \exp(-\gamma \lVert x - y \rVert^2)`
  (``gamma=0.5`` is the unit-bandwidth kernel of the Performers paper); the two are
  related by :math:`\mathrm{SM}(x, y) = e^{\lVert x\rVert^2/2} K_{1/2}(x, y) e^{\lVert y\rVert^2/2}`;
* arc-cosine kernel of order 1, :math:`E[\mathrm{relu}(\omega^T x)\,\mathrm{relu}(\omega^T y)]
  = \lVert x\rVert \lVert y\rVert (\sin\theta + (\pi - \theta)\cos\theta) / (2\pi)`
  (Cho & Saul 2009, with their factor 2 absorbed), the kernel ReLU features estimate.

Attention (Performers Eqs. 1-2): :math:`\mathrm{Att}(Q, K, V) = D^{-1} A V` with
:math:`A = \exp(Q K^T / \sqrt d)` and :math:`D = \operatorname{diag}(A 1)`; causal attention
keeps the lower triangle (diagonal included) of :math:`A` in both product and normaliser.

Every function takes ``(..., n, d)`` inputs with any leading batch axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from favor._dispatch import dispatch
from favor._guards import check_finite_result
from favor._validation import check_attention_inputs, check_float_array

__all__ = ["arccos_kernel", "rbf_kernel", "softmax_attention", "softmax_kernel"]


def _check_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = check_float_array("x", x, min_ndim=2)
    y = check_float_array("y", y, min_ndim=2)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must have the same last axis, got {x.shape[-1]} and {y.shape[-1]}"
        )
    return x, y


def _check_gamma(gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating, np.integer)):
        raise ValueError(f"gamma must be a positive float, got {gamma!r}")
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive finite float, got {gamma!r}")
    return float(gamma)


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", x, x)


def softmax_kernel(x: Any, y: Any, *, gamma: float = 1.0) -> np.ndarray:
    r"""Exact softmax kernel matrix :math:`\exp(\gamma\, x_i^T y_j)`.

    Parameters
    ----------
    x : array_like of shape (..., n_x, d)
        Left points.
    y : array_like of shape (..., n_y, d)
        Right points.
    gamma : float, default=1.0
        Positive scale of the dot product.

    Returns
    -------
    numpy.ndarray of shape (..., n_x, n_y)
        The kernel matrix, in the inputs' result dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from favor import softmax_kernel
    >>> float(softmax_kernel(np.ones((1, 2)), np.ones((1, 2)))[0, 0]) == float(np.exp(2.0))
    True
    """
    x, y = _check_pair(x, y)
    gamma = _check_gamma(gamma)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.exp(gamma * (x @ np.swapaxes(y, -1, -2)))
    check_finite_result(
        "softmax_kernel",
        out,
        f"overflow: exp(gamma x.y) exceeds the {out.dtype} range where gamma x.y > "
        f"{np.log(np.finfo(out.dtype).max):.4g}",
    )
    return out


def rbf_kernel(x: ArrayLike, y: ArrayLike, *, gamma: float = 0.5) -> np.ndarray:
    r"""Exact RBF (Gaussian) kernel matrix :math:`\exp(-\gamma \lVert x_i - y_j \rVert^2)`.

    Parameters
    ----------
    x : array_like of shape (..., n_x, d)
        Left points.
    y : array_like of shape (..., n_y, d)
        Right points.
    gamma : float, default=0.5
        Positive inverse squared length scale (0.5 is the unit bandwidth
        :math:`K_{gauss}` of formulas §1.1, the ``kernel="rbf"`` of the feature maps;
        scikit-learn's ``rbf_kernel`` uses the same ``gamma`` convention).

    Returns
    -------
    numpy.ndarray of shape (..., n_x, n_y)
        The kernel matrix.
    """
    x, y = _check_pair(x, y)
    gamma = _check_gamma(gamma)
    with np.errstate(over="ignore", invalid="ignore"):
        sq = (
            _squared_norms(x)[..., :, None]
            + _squared_norms(y)[..., None, :]
            - 2.0 * (x @ np.swapaxes(y, -1, -2))
        )
    check_finite_result(
        "rbf_kernel", sq, f"overflow: the squared distances |x - y|^2 exceed the {sq.dtype} range"
    )
    return np.exp(-gamma * np.maximum(sq, 0.0))


def arccos_kernel(x: Any, y: Any) -> np.ndarray:
    r"""Arc-cosine kernel of order 1 as estimated by ReLU features.

    .. math::
        k(x, y) = E_{\omega \sim \mathcal N(0, I)}[\mathrm{relu}(\omega^T x)\,
        \mathrm{relu}(\omega^T y)]
        = \frac{\lVert x\rVert \lVert y\rVert}{2\pi}\left(\sin\theta + (\pi - \theta)
        \cos\theta\right),

    with :math:`\theta` the angle between ``x`` and ``y`` (Cho & Saul 2009; formulas §5,
    [K1-mean]). A zero vector gives 0.

    Parameters
    ----------
    x : array_like of shape (..., n_x, d)
        Left points.
    y : array_like of shape (..., n_y, d)
        Right points.

    Returns
    -------
    numpy.ndarray of shape (..., n_x, n_y)
        The kernel matrix.
    """
    x, y = _check_pair(x, y)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        nx = np.sqrt(_squared_norms(x))[..., :, None]
        ny = np.sqrt(_squared_norms(y))[..., None, :]
        prod = nx * ny
        dots = x @ np.swapaxes(y, -1, -2)
        cos = np.where(prod > 0, dots / np.where(prod > 0, prod, 1), 1.0)
        theta = np.arccos(np.clip(cos, -1.0, 1.0))
        out = prod * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    check_finite_result(
        "arccos_kernel", out, f"overflow: the norms |x| |y| or x.y exceed the {out.dtype} range"
    )
    return out


@dispatch
def softmax_attention(
    queries: ArrayLike,
    keys: ArrayLike,
    values: ArrayLike,
    *,
    causal: bool = False,
    key_padding_mask: ArrayLike | None = None,
) -> Any:
    r"""Exact softmax attention :math:`D^{-1} \exp(Q K^T / \sqrt d) V`.

    Parameters
    ----------
    queries : array of shape (..., L_q, d)
        Queries; float32 or float64. If any argument is a torch tensor the call goes to
        :func:`favor.torch.softmax_attention` with the same arguments.
    keys : array of shape (..., L_k, d)
        Keys, same leading axes and dtype as ``queries``.
    values : array of shape (..., L_k, d_v)
        Values, same leading axes and dtype.
    causal : bool, default=False
        Keep only keys at positions ``<= t`` for the query at position ``t``
        (needs ``L_q == L_k``).
    key_padding_mask : bool array of shape (..., L_k), optional
        True marks a padded key, removed from numerator and normaliser (PyTorch's
        convention). Leading axes equal those of the inputs or are 1.

    Returns
    -------
    array of shape (..., L_q, d_v)
        The attention output, same dtype and array type as the inputs. A query that
        sees no key at all (every visible key padded) gets a zero row.

    Notes
    -----
    Materialises the ``L_q x L_k`` logits per batch entry; it is the reference, not a
    fast path. The row maximum is subtracted before the exponential (exactly cancelling
    in the normalisation), so finite inputs never overflow.

    Examples
    --------
    >>> import numpy as np
    >>> from favor import softmax_attention
    >>> q = k = v = np.eye(2)
    >>> softmax_attention(q, k, v, causal=True)[0].tolist()
    [1.0, 0.0]
    """
    q, k, v, mask = check_attention_inputs(queries, keys, values, key_padding_mask, causal=causal)
    with np.errstate(over="ignore", invalid="ignore"):
        out = _softmax_attention(q, k, v, mask, causal)
    check_finite_result(
        "softmax_attention",
        out,
        f"overflow: the logits q.k / sqrt(d) or the weighted sums of values exceed the "
        f"{out.dtype} range",
    )
    return out


def _softmax_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, causal: bool
) -> np.ndarray:
    d = q.shape[-1]
    logits = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(1.0 / np.sqrt(d))
    visible = np.ones(logits.shape[-2:], dtype=bool)
    if causal:
        visible = np.tril(visible)
    if mask is not None:
        visible = visible & ~mask[..., None, :]
    visible = np.broadcast_to(visible, logits.shape)
    logits = np.where(visible, logits, -np.inf)
    row_max = logits.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.exp(logits - row_max)
    norm = weights.sum(axis=-1, keepdims=True)
    out = (weights @ v) / np.where(norm > 0, norm, 1.0)
    return out.astype(q.dtype, copy=False)
