r"""Generalised exponential features fitted to the data: OPRF (FAVOR++) and SADERF (FAVOR#-style).

Generalised exponential random features (GERF; Likhosherstov et al., "Chefs' Random
Tables", NeurIPS 2022; formulas §6.3) for the softmax kernel:

.. math::
    f_A(\omega, x) = (1-4A)^{d/4}\exp\!\big(A\lVert\omega\rVert^2 + \sqrt{1-4A}\,\omega^T x
    - \lVert x\rVert^2/2\big), \qquad E_{\omega\sim\mathcal N(0, I)}[f_A(\omega, x)\,
    f_A(\omega, y)] = e^{x^T y}

for every :math:`A < 1/4` (:math:`A = 0` is FAVOR+'s positive map). The features are
positive, and bounded in :math:`\omega` for :math:`A < 0`. The single-projection variance
is minimal at

.. math::
    A^* = \frac{1 - 2\rho - \sqrt{(2\rho+1)^2 + 8\rho}}{16}, \qquad
    \rho = \lVert x + y\rVert^2 / d \quad (A^* \le 0),

(formulas §6.3, [F2]; the official ``expplus`` code agrees). Attention needs one
:math:`A` for all pairs, so :math:`\rho` is replaced by its mean over all query-key
pairs of a sequence (the *homogeneity heuristic*), computable in :math:`O(L d)`:

.. math::
    \bar\rho = \frac1d\Big(\overline{\lVert x\rVert^2} + \overline{\lVert y\rVert^2}
    + 2\,\bar x^T \bar y\Big).

* ``"oprf"``: GERF with :math:`A^*(\bar\rho)`; with block-orthogonal chi-norm projections
  this is FAVOR++. Queries and keys use the same map (a symmetric kernel estimator).
* ``"saderf"``: first a diagonal rescaling :math:`x \to \Psi x`, :math:`y \to \Psi^{-1} y`
  (dot products unchanged, so the estimate stays unbiased for :math:`e^{x^T y}`) with
  :math:`\Psi_{ll} = (\sum_j y_{j,l}^2 / \sum_i x_{i,l}^2)^{1/4}`, the minimiser of the mean
  :math:`\lVert\Psi x_i + \Psi^{-1}y_j\rVert^2` (formulas §6.4, [G2]), then OPRF on the
  rescaled inputs. Queries and keys get *different* maps: it applies to attention (and to
  any bilinear :math:`q^T k` estimate), not to a symmetric kernel transformer.

The fitted values are :class:`GerfParameters`, one :math:`A` (and one :math:`\Psi`) per
(batch..., head) group. They depend on the inputs but not on the random projection, so
for given inputs every entry of the attention matrix stays unbiased over the projection.
In bidirectional attention they are fitted from the sequence itself (its moments over at
most about :data:`FIT_POSITIONS` evenly spaced positions per group). In causal attention (and decoding) an output at position :math:`t` may
not depend on later positions, and a parameter fitted on the whole sequence would make it
depend on all of them; a running fit cannot be folded into the prefix state either (a
change of :math:`A` changes the features' shape, not just their scale, so the carried
state cannot be rescaled to it). Causal use therefore takes parameters fixed by the
caller: :func:`fit_gerf_parameters` on calibration data (e.g. a batch of training
sequences, or the prompt), passed as ``feature_params``.

In attention the inputs are first scaled by :math:`s = d^{-1/4}` (formulas §1.2); all
formulas above apply to :math:`x = s q`, :math:`y = s k`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "GerfParameters",
    "fit_gerf_parameters",
    "gerf_features",
    "mean_rho",
    "oprf_a",
    "saderf_psi",
]

#: Bidirectional attention fits its parameters on every ``L // FIT_POSITIONS``-th position
#: (all positions for ``L < 2 * FIT_POSITIONS``).
FIT_POSITIONS = 2048

#: Range of each diagonal entry of Psi (a coordinate that is zero in all queries or all
#: keys would otherwise send it to 0 or infinity; its dot products are zero either way).
PSI_RANGE = (1e-3, 1e3)


@dataclass(frozen=True)
class GerfParameters:
    """Fitted GERF parameters, one set per (batch..., head) group.

    Attributes
    ----------
    features : {"oprf", "saderf"}
        The map they belong to.
    a : numpy.ndarray of shape lead
        :math:`A` per group (float64, every entry :math:`\\le 0`).
    psi : numpy.ndarray of shape lead + (d,), or None
        Diagonal of :math:`\\Psi` per group (``"saderf"`` only).

    Notes
    -----
    ``lead`` must broadcast against the leading axes of the attention inputs, e.g.
    parameters fitted on calibration data of shape ``(H, L, d)`` serve inputs of shape
    ``(B, H, L, d)``.
    """

    features: str
    a: np.ndarray
    psi: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.features not in ("oprf", "saderf"):
            raise ValueError(f"features must be 'oprf' or 'saderf', got {self.features!r}")
        a = np.asarray(self.a, dtype=np.float64)
        if not np.all(np.isfinite(a)) or np.any(a >= 0.125):
            raise ValueError("a must be finite and below 1/8 (finite variance)")
        object.__setattr__(self, "a", a)
        if self.features == "saderf":
            if self.psi is None:
                raise ValueError("psi is required for features='saderf'")
            psi = np.asarray(self.psi, dtype=np.float64)
            if psi.ndim < 1 or not np.all(np.isfinite(psi)) or np.any(psi <= 0):
                raise ValueError("psi must be a finite, positive array of shape lead + (d,)")
            object.__setattr__(self, "psi", psi)
        elif self.psi is not None:
            raise ValueError("psi must be None for features='oprf'")


def oprf_a(rho: Any) -> np.ndarray:
    r"""The variance-optimal :math:`A^*(\rho) = (1 - 2\rho - \sqrt{(2\rho+1)^2 + 8\rho})/16`.

    Parameters
    ----------
    rho : float or array_like
        :math:`\rho \ge 0` (formulas §6.3).

    Returns
    -------
    numpy.ndarray
        :math:`A^* \in (-\infty, 0]`.
    """
    rho = np.maximum(np.asarray(rho, dtype=np.float64), 0.0)
    return (1 - 2 * rho - np.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16


def _column_moments(
    x: np.ndarray, weights: np.ndarray | None, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column sums, sums of squares (shape (..., d)) and counts (...) of every ``stride``-th
    row, in float64 (:func:`favor._jit.gerf_rows.column_moments`, one compiled pass)."""
    from favor._jit.gerf_rows import column_moments
    from favor._threads import jit_threads

    lead, (n_rows, d) = x.shape[:-2], x.shape[-2:]
    groups = x.reshape(-1, n_rows, d)
    n = groups.shape[0]
    if weights is None:
        w = np.zeros((0, 0))
    else:
        w = np.broadcast_to(weights, x.shape[:-1]).reshape(n, n_rows).astype(np.float64)
    sums, squares, counts = np.empty((n, d)), np.empty((n, d)), np.empty(n)
    with jit_threads(n):
        column_moments(groups, int(stride), np.ascontiguousarray(w), sums, squares, counts)
    return sums.reshape(*lead, d), squares.reshape(*lead, d), counts.reshape(lead)


def _moments(
    x: np.ndarray,
    y: np.ndarray,
    key_weights: np.ndarray | None,
    x_stride: int = 1,
    y_stride: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-coordinate mean squares of x and y and the mean dot product of all pairs.

    Over every ``x_stride``-th query and ``y_stride``-th key (weighted by ``key_weights``,
    shape (..., L_k), taken at the same rows).
    """
    if key_weights is not None:
        lead = np.broadcast_shapes(y.shape[:-2], key_weights.shape[:-1])
        y = np.broadcast_to(y, (*lead, *y.shape[-2:]))
    sx, qx, nx = _column_moments(x, None, x_stride)
    sy, qy, ny = _column_moments(y, key_weights, y_stride)
    nx = np.maximum(nx, 1.0)[..., None]
    ny = np.maximum(ny, 1.0)[..., None]
    cross = np.einsum("...i,...i->...", sx / nx, sy / ny)
    return qx / nx, qy / ny, cross


def mean_rho(
    x: np.ndarray, y: np.ndarray, key_weights: np.ndarray | None = None, scale: float = 1.0
) -> np.ndarray:
    r""":math:`\bar\rho = s^2(\overline{\lVert x\rVert^2} + \overline{\lVert y\rVert^2} + 2\bar x^T\bar y)/d` per group.

    The mean of :math:`\lVert s x_i + s y_j\rVert^2 / d` over all (query, key) pairs, in
    :math:`O(L d)`.

    Parameters
    ----------
    x : numpy.ndarray of shape (..., L_q, d)
        Queries.
    y : numpy.ndarray of shape (..., L_k, d)
        Keys.
    key_weights : numpy.ndarray of shape (..., L_k), optional
        1 for a key that takes part, 0 for a padded one.
    scale : float, default=1.0
        :math:`s` (attention uses :math:`d^{-1/4}`).

    Returns
    -------
    numpy.ndarray of shape (...)
        :math:`\bar\rho` (float64).
    """
    xx, yy, cross = _moments(x, y, key_weights)
    rho = scale**2 * (xx.sum(axis=-1) + yy.sum(axis=-1) + 2 * cross) / x.shape[-1]
    return np.maximum(rho, 0.0)


def _psi(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(xx > 0, yy / xx, np.where(yy > 0, np.inf, 1.0))
    return np.clip(ratio**0.25, *PSI_RANGE)


def saderf_psi(x: np.ndarray, y: np.ndarray, key_weights: np.ndarray | None = None) -> np.ndarray:
    r"""The SADERF rescaling :math:`\Psi_{ll} = (\overline{y_l^2} / \overline{x_l^2})^{1/4}` per group.

    Means over the sequence (the paper's sums up to the factor :math:`(L_q/L_k)^{1/4}`,
    which is 1 in self-attention; with means, the choice does not depend on the lengths).
    Clipped to :data:`PSI_RANGE` (a coordinate that vanishes in every query or every key
    contributes nothing to any dot product, so its :math:`\Psi` only has to be finite).

    Parameters
    ----------
    x : numpy.ndarray of shape (..., L_q, d)
        Queries (any common scale).
    y : numpy.ndarray of shape (..., L_k, d)
        Keys.
    key_weights : numpy.ndarray of shape (..., L_k), optional
        1 for a key that takes part, 0 for a padded one.

    Returns
    -------
    numpy.ndarray of shape (..., d)
        The diagonal of :math:`\Psi` (float64).
    """
    xx, yy, _ = _moments(x, y, key_weights)
    return _psi(xx, yy)


def fit_gerf_parameters(
    x: np.ndarray,
    y: np.ndarray,
    features: str,
    key_weights: np.ndarray | None = None,
    scale: float = 1.0,
) -> GerfParameters:
    r"""Fit :math:`\Psi` (``"saderf"``) and :math:`A^*(\bar\rho)` per group in :math:`O(L d)`.

    For ``"saderf"``, :math:`\bar\rho` is that of the rescaled inputs: the mean squares
    become :math:`\sum_l \Psi_{ll}^{\pm 2}\overline{x_l^2}` and the cross term
    :math:`(\Psi\bar x)^T(\Psi^{-1}\bar y) = \bar x^T\bar y` is unchanged.

    Parameters
    ----------
    x : numpy.ndarray of shape (..., L_q, d)
        Queries.
    y : numpy.ndarray of shape (..., L_k, d)
        Keys.
    features : {"oprf", "saderf"}
        Which map.
    key_weights : numpy.ndarray of shape (..., L_k), optional
        1 for a key that takes part, 0 for a padded one.
    scale : float, default=1.0
        :math:`s`: the features are applied to :math:`s x` and :math:`s y`.

    Returns
    -------
    GerfParameters
        Per-group parameters (leading shape of ``x``).
    """
    if features not in ("oprf", "saderf"):
        raise ValueError(f"features must be 'oprf' or 'saderf', got {features!r}")
    return _fit(x, y, features, key_weights, scale, 1, 1)


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    features: str,
    key_weights: np.ndarray | None,
    scale: float,
    x_stride: int,
    y_stride: int,
) -> GerfParameters:
    """:func:`fit_gerf_parameters` on every ``x_stride``-th query and ``y_stride``-th key."""
    xx, yy, cross = _moments(x, y, key_weights, x_stride, y_stride)
    psi = None
    if features == "saderf":
        psi = _psi(xx, yy)
        xx, yy = xx * psi**2, yy / psi**2
    rho = np.maximum(scale**2 * (xx.sum(axis=-1) + yy.sum(axis=-1) + 2 * cross) / x.shape[-1], 0)
    return GerfParameters(features, oprf_a(rho), psi)


def gerf_features(x: Any, projection: Any, *, a: float, kernel: str = "softmax") -> np.ndarray:
    r"""GERF features :math:`m^{-1/2} (1-4A)^{d/4}\exp(A\lVert\omega_r\rVert^2 + \sqrt{1-4A}\,\omega_r^T x - c(x))`.

    :math:`c(x) = \lVert x\rVert^2/2` for the softmax kernel :math:`e^{x^T y}` and
    :math:`\lVert x\rVert^2` for the Gaussian kernel :math:`e^{-\lVert x-y\rVert^2/2}`
    (formulas §1.1, §6.3). The exponent is formed once, so nothing overflows where the
    features are representable.

    Parameters
    ----------
    x : array_like of shape (..., d)
        Inputs, float32 or float64; the output keeps the dtype.
    projection : array_like of shape (m, d)
        Projection rows :math:`\omega_r` (marginally :math:`\mathcal N(0, I_d)`).
    a : float
        :math:`A < 1/4` (finite variance needs :math:`A < 1/8`).
    kernel : {"softmax", "rbf"}, default="softmax"
        Which kernel the dot products estimate.

    Returns
    -------
    numpy.ndarray of shape (..., m)
        The positive features.
    """
    from favor._validation import check_choice, check_float_array, check_projection

    x = check_float_array("x", x, min_ndim=1)
    w = check_projection(projection, x.shape[-1])
    check_choice("kernel", kernel, ("softmax", "rbf"))
    a = float(a)
    if not np.isfinite(a) or a >= 0.25:
        raise ValueError(f"a must be a finite number below 1/4, got {a!r}")
    return _gerf(x, w, a, kernel)


def _gerf(x: np.ndarray, w: np.ndarray, a: float, kernel: str) -> np.ndarray:
    m, d = w.shape
    b = np.sqrt(1 - 4 * a)
    half = 0.5 * np.einsum("...i,...i->...", x, x)[..., None]
    shift = half if kernel == "softmax" else 2 * half
    const = 0.25 * d * np.log1p(-4 * a) - 0.5 * np.log(m)
    bias = (a * np.einsum("ri,ri->r", w, w) + const).astype(x.dtype)
    exponent = x @ (b * w).astype(x.dtype).T + bias - shift
    return np.exp(exponent, out=exponent)


def broadcast_parameters(
    params: GerfParameters, lead: tuple[int, ...], d: int, expected: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """``params.a`` broadcast to ``lead`` and ``params.psi`` (if any) to ``(*lead, d)``.

    Raises a ValueError saying that feature_params must ``expected`` and giving the shapes
    it got, when they do not broadcast.
    """
    try:
        a = np.broadcast_to(params.a, lead)
        psi = None if params.psi is None else np.broadcast_to(params.psi, (*lead, d))
    except ValueError:
        psi_shape = None if params.psi is None else params.psi.shape
        raise ValueError(
            f"feature_params must {expected}, got a of shape {params.a.shape} and psi of "
            f"shape {psi_shape}"
        ) from None
    return a, psi


def resolve_parameters(
    features: str,
    params: GerfParameters | None,
    x: np.ndarray,
    y: np.ndarray,
    key_weights: np.ndarray | None,
    causal: bool,
    scale: float,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-group ``(a, psi)`` of shape ``(G,)`` and ``(G, d)``: fitted here or the caller's.

    ``x`` and ``y`` are the unscaled inputs, shape ``(..., L, d)``; ``G`` is the product of
    their leading axes. Causal attention refuses to fit (module docstring).
    """
    lead, d = x.shape[:-2], x.shape[-1]
    if params is None:
        if causal:
            raise ValueError(
                f"features={features!r} with causal=True needs feature_params fixed in advance "
                "(e.g. favor.gerf.fit_feature_params(calibration_queries, calibration_keys, "
                f"features={features!r})): fitting them on the sequence itself would make "
                "early outputs depend on later positions"
            )
        # Moments from evenly spaced positions (at most about FIT_POSITIONS per group): the
        # parameters are constants of the estimator, so any data-derived choice keeps every
        # entry unbiased, and this keeps the fit a small fraction of the attention's cost.
        sx = max(1, x.shape[-2] // FIT_POSITIONS)
        sy = max(1, y.shape[-2] // FIT_POSITIONS)
        params = _fit(x, y, features, key_weights, scale, sx, sy)
    if not isinstance(params, GerfParameters) or params.features != features:
        raise ValueError(
            f"feature_params must be GerfParameters fitted for features={features!r}, "
            f"got {params!r}"
        )
    a, psi = broadcast_parameters(
        params, lead, d, f"broadcast to the inputs' leading axes {lead} (and d={d})"
    )
    n = int(np.prod(lead, dtype=np.int64))
    return a.reshape(n), None if psi is None else psi.reshape(n, d)


def attention_error_terms(
    q: np.ndarray,
    k: np.ndarray,
    visible: np.ndarray,
    a: np.ndarray,
    psi: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Terms of the predicted relative variance of each query's GERF normaliser (i.i.d. rows).

    With :math:`x = s\Psi q_i`, :math:`y_j = s\Psi^{-1}k_j`, :math:`c = (1-4A)/(1-8A)` and
    :math:`p_{ij}` the exact attention weights, the four-feature moment
    :math:`E[f_A(x)^2 f_A(y_j) f_A(y_{j'})] = \frac{(1-4A)^d}{(1-8A)^{d/2}}
    \exp(\frac c2\lVert 2x + y_j + y_{j'}\rVert^2 - \lVert x\rVert^2 -
    \frac{\lVert y_j\rVert^2 + \lVert y_{j'}\rVert^2}{2})` gives

    .. math::
        \frac{\mathrm{Var}\,\hat D_i}{D_i^2} = \frac1m\Big(\sum_{j,j'} p_{ij}p_{ij'}
        e^{g_{jj'}} - 1\Big),\quad
        g_{jj'} = \tfrac d2\log\tfrac{(1-4A)^2}{1-8A} + (2c-1)\big(\lVert x\rVert^2
        + x^Ty_j + x^Ty_{j'}\big) + \tfrac{c-1}{2}\big(\lVert y_j\rVert^2 +
        \lVert y_{j'}\rVert^2\big) + c\,y_j^Ty_{j'},

    which is the positive map's formula (:math:`g = u_j^Tu_{j'}`, :math:`u_j = x + y_j`) at
    :math:`A = 0`.

    Parameters
    ----------
    q : numpy.ndarray of shape (G, L_q, d), float64
        Queries per group (unscaled).
    k : numpy.ndarray of shape (G, L_k, d), float64
        Keys per group.
    visible : numpy.ndarray of shape (G, L_q, L_k), bool
        Which keys each query sees.
    a : numpy.ndarray of shape (G,)
    psi : numpy.ndarray of shape (G, d) or None

    Returns
    -------
    tuple of numpy.ndarray
        ``(linear, gram, offset)`` of shapes (G, L_q, L_k), (G, L_k, L_k), (G, L_q, 1):
        :math:`\log p_{ij} + \log p_{ij'} + g_{jj'}` = ``linear[j] + linear[j'] +
        gram[j, j'] + offset`` (``linear`` is ``-inf`` for keys not visible);
        :func:`favor.attention.estimate_attention_error` sums their exponentials.
    """
    d = q.shape[-1]
    s2 = 1.0 / np.sqrt(d)
    x = q if psi is None else q * psi[:, None, :]
    y = k if psi is None else k / psi[:, None, :]
    c = ((1 - 4 * a) / (1 - 8 * a))[:, None, None]
    const = (0.5 * d * (2 * np.log1p(-4 * a) - np.log1p(-8 * a)))[:, None, None]
    logits = (x @ np.swapaxes(y, -1, -2)) * s2  # x.y_j (scaled)
    yy = np.einsum("gjd,gjd->gj", y, y)[:, None, :] * s2
    xx = np.einsum("gid,gid->gi", x, x)[:, :, None] * s2
    gram = c * (y @ np.swapaxes(y, -1, -2)) * s2
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        lp = np.where(visible, logits, -np.inf)
        lp = lp - lp.max(axis=-1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(axis=-1, keepdims=True))
        linear = lp + (2 * c - 1) * logits + 0.5 * (c - 1) * yy
    return linear, gram, (2 * c - 1) * xx + const


# --------------------------------------------------------------------------- registry forms
# The registry's single-projection forms (favor.registry, "How to add a feature map"):
# params = [A, log_const, |w_1|^2, ..., |w_m|^2, psi_1, ..., psi_d] with
# log_const = (d/4) log(1 - 4A) - (1/2) log m, so phi = exp(b l + A|w|^2 + log_const - h)
# exactly. Attention and decoding fit them per group (:func:`prepare_attention`) and run
# the same split form with one packed row per group.


def pack_params(a: float, projection: np.ndarray, psi: np.ndarray | None = None) -> np.ndarray:
    """The registry parameter vector for one :math:`A` (and :math:`\\Psi`) and projection."""
    w = np.asarray(projection, dtype=np.float64).reshape(1, -1, projection.shape[-1])
    psi = None if psi is None else np.asarray(psi, dtype=np.float64).reshape(1, -1)
    return group_params(w, np.zeros(1, dtype=np.int64), np.array([a], dtype=np.float64), psi)[0]


def registry_params(x: np.ndarray | None, projection: np.ndarray) -> np.ndarray:
    r"""Parameters from pooled, scaled data (registry hook), symmetric form.

    For data :math:`x_i` drawn like the keys, the pair mean of
    :math:`\lVert x_i + x_j\rVert^2/d` is :math:`2(\overline{\lVert x\rVert^2} +
    \lVert\bar x\rVert^2)/d`; :math:`A^*` of that (:class:`favor.FavorSampler` fits it in
    ``fit``). Without data (``x`` None) :math:`A = 0`, the positive map; :math:`\Psi = I`.
    """
    a = 0.0
    if x is not None and x.shape[0] > 0:
        # Array methods only (no np.asarray), so a Dask array is reduced lazily: float()
        # computes one graph, a single pass over its blocks.
        x = x.astype(np.float64)
        mean = x.mean(axis=0)
        rho = 2 * ((x * x).sum() / x.shape[0] + (mean * mean).sum()) / x.shape[1]
        a = float(oprf_a(float(rho)))
    return pack_params(a, projection[0] if projection.ndim == 3 else projection)


def registry_formula(
    x: Any, projection: np.ndarray, kernel: str, scale: float, params: np.ndarray, is_key: bool
) -> np.ndarray:
    """GERF features of ``scale * x`` (times :math:`\\Psi^{\\mp 1}` for saderf) from packed params."""
    m, d = projection.shape
    if params.size == 0:  # no fitted parameters: A = 0 (the positive map), Psi = I
        params = pack_params(0.0, projection)
    a = float(params[0])
    psi = params[2 + m : 2 + m + d]
    rows = x if x.ndim == 2 else x.reshape(-1, d)
    if np.any(psi != 1):
        rows = rows * (1 / psi if is_key else psi).astype(rows.dtype)
    out = _gerf(rows * rows.dtype.type(scale), projection, a, kernel)
    return out.reshape((*x.shape[:-1], m))


# --------------------------------------------------------------------------- attention hook


def fit_feature_params(
    queries: Any, keys: Any, *, features: str = "oprf", key_padding_mask: Any = None
) -> GerfParameters:
    r"""Fit the parameters of ``"oprf"`` or ``"saderf"`` attention on calibration data.

    For causal attention and decoding, where the sequence itself may not be used
    (module docstring): pass the result as ``feature_params``. Leading axes are kept, so
    calibration data of shape ``(H, L, d)`` gives one set per head.

    Parameters
    ----------
    queries : array of shape (..., L_q, d)
        Calibration queries (unscaled, as passed to attention).
    keys : array of shape (..., L_k, d)
        Calibration keys.
    features : {"oprf", "saderf"}, default="oprf"
        Which map.
    key_padding_mask : bool array of shape (..., L_k), optional
        True marks a padded key, left out of the fit.

    Returns
    -------
    GerfParameters
        :math:`A^*` (and :math:`\Psi`) per leading index, for inputs scaled by
        :math:`d^{-1/4}` inside attention.

    Examples
    --------
    >>> import numpy as np
    >>> from favor.gerf import fit_feature_params
    >>> rng = np.random.default_rng(0)
    >>> params = fit_feature_params(rng.standard_normal((4, 64, 8)), rng.standard_normal((4, 64, 8)))
    >>> params.a.shape
    (4,)
    """
    from favor._validation import check_attention_inputs, check_choice

    check_choice("features", features, ("oprf", "saderf"))
    q, k, _, mask = check_attention_inputs(queries, keys, keys, key_padding_mask, causal=False)
    weights = None
    if mask is not None:
        lead = np.broadcast_shapes(k.shape[:-2], mask.shape[:-1])
        k = np.broadcast_to(k, (*lead, *k.shape[-2:]))
        weights = (~np.broadcast_to(mask, (*lead, k.shape[-2]))).astype(np.float64)
    return fit_gerf_parameters(q, k, features, weights, q.shape[-1] ** -0.25)


def group_params(
    w: np.ndarray, proj_index: np.ndarray, a: np.ndarray, psi: np.ndarray | None
) -> np.ndarray:
    r"""Packed parameters of every group (:func:`pack_params` is one group's), shape (G, 2 + m + d), float64.

    Row ``g`` is ``[A_g, log_const_g, |w_1|^2, ..., |w_m|^2, psi_g]`` for the group's
    projection ``w[proj_index[g]]`` (unscaled rows: the split form adds
    :math:`A\lVert\omega_r
Vert^2` to :math:`\sqrt{1-4A}\,\omega_r^T(s x)`).
    """
    _, m, d = w.shape
    out = np.empty((proj_index.shape[0], 2 + m + d), dtype=np.float64)
    out[:, 0] = a
    out[:, 1] = 0.25 * d * np.log1p(-4 * a) - 0.5 * np.log(m)
    out[:, 2 : 2 + m] = np.einsum("pri,pri->pr", w, w)[proj_index]
    out[:, 2 + m :] = 1.0 if psi is None else psi
    return out


def prepare_attention(
    features: str,
    feature_params: GerfParameters | None,
    q: np.ndarray,
    k: np.ndarray,
    w: np.ndarray,
    proj_index: np.ndarray,
    padded: np.ndarray,
    causal: bool,
    scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The registry's attention hook for ``"oprf"``/``"saderf"`` (NumPy engine and decoding).

    Per group: :math:`A` (and :math:`\Psi`) fitted from the inputs or taken from
    ``feature_params`` (:func:`resolve_parameters`), packed one row per group
    (:func:`group_params`). The scans then run the map's own split form
    (:mod:`favor._jit.gerf_rows`) with each group's row: logits
    :math:`\sqrt{1-4A}\,\omega_r^T(s\Psi q) + A\lVert\omega_r\rVert^2` and key norm term
    :math:`s^2\lVert\Psi^{-1}k\rVert^2/2`, with the positive map's stabilisers (and
    causality), so they evaluate exactly the GERF estimator (formulas §6.3). The inputs
    are never copied: :math:`\omega^T\Psi q = (\Psi\omega)^T q` and
    :math:`\omega^T\Psi^{-1} k = (\Psi^{-1}\omega)^T k`, so ``"saderf"`` gets per-group
    query and key projections, and :math:`\lVert\Psi^{-1}k\rVert^2` is the key norm with
    weights :math:`\psi_j^{-2}`.

    Parameters
    ----------
    features : {"oprf", "saderf"}
    feature_params : GerfParameters or None
    q, k : numpy.ndarray of shape (..., L, d)
        The checked inputs (leading axes kept, for the fit).
    w : numpy.ndarray of shape (P, m, d)
        Projection(s), float64, unscaled.
    proj_index : numpy.ndarray of shape (G,)
        Projection of each group.
    padded : numpy.ndarray of shape (G, L_k), bool
        Padded keys (left out of the fit).
    causal : bool
        Causal attention refuses to fit on the sequence.
    scale : float
        :math:`s = d^{-1/4}`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(w_queries, w_keys, proj_index', params, norm_weights)``: the query and key
        projections (``w`` itself for ``"oprf"``; shape (G, m, d) for ``"saderf"``, with
        ``proj_index' = arange(G)``), the packed parameters (G, 2 + m + d) and the key
        norm weights, (G, d) or (1, 0) for the plain norm.
    """
    lead = q.shape[:-2]
    weights = None
    if padded.any():
        weights = (~padded).astype(np.float64).reshape(*lead, padded.shape[-1])
    a, psi = resolve_parameters(features, feature_params, q, k, weights, causal, scale)
    params = group_params(w, proj_index, a, psi)
    if psi is None:
        return w, w, proj_index, params, np.zeros((1, 0))
    rows = w[proj_index]
    index = np.arange(proj_index.shape[0], dtype=np.int64)
    return rows * psi[:, None, :], rows / psi[:, None, :], index, params, psi**-2.0
