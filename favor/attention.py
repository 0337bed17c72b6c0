r"""FAVOR+ linear attention: the random-feature approximation of softmax attention.

With a feature map :math:`\varphi` (:mod:`favor.features`) applied to the scaled inputs
:math:`s q_i, s k_j`, :math:`s = d^{-1/4}` (formulas §1.2), the estimator is

.. math::
    \hat o_i = \frac{\sum_j \varphi(s q_i)^T \varphi(s k_j)\, v_j}
                    {\sum_j \varphi(s q_i)^T \varphi(s k_j)}
             = \hat D^{-1} \hat A V,

with :math:`j \le i` when causal and padded keys removed from both sums (Performers
Sec. 2.2, Eq. 4; App. B, Alg. 1; formulas §1.3). It costs :math:`O(L m (d + d_v))` time
instead of :math:`O(L^2 d)`, evaluated as :math:`\varphi(Q)(\varphi(K)^T V)` (formulas §1.3);
causal attention uses prefix sums (formulas §1.3) in a chunked scan.

Numerics. Multiplying a query's features by any positive constant leaves
:math:`\hat o_i` unchanged, and so does multiplying all keys' features by one constant:
the engine uses both freedoms as stabilisers, *exactly* cancelling, with no epsilon.

* Queries: each feature row is divided by its largest entry (the per-row shift of the
  exponent), so the :math:`e^{-\lVert q\rVert^2/2}` and :math:`m^{-1/2}` factors are
  never formed.
* Keys, bidirectional: one shift per (batch..., head), the largest key log-scale over the
  whole sequence, found online while streaming over key chunks (the accumulated state is
  rescaled when it grows), so extra memory is O(chunk x m + m x d_v), not O(L x m).
* Keys, causal: a running log-scale over positions :math:`\le t` only; the carried
  :math:`m \times d_v` state is rescaled when it grows (online-softmax style). Output
  :math:`t` therefore never depends on a later key, not even in its last bit.
* An exactly zero normaliser (no visible key) gives a zero output row.
* Normaliser sign rule. Maps with signed features (``"trigonometric"``, ``"hybrid"``)
  can estimate a row's normaliser :math:`\hat D_i` as negative, although the true one is
  positive; such a row, and one whose estimate is exactly 0 although it sees a key,
  carries no usable information (dividing would flip the output's sign or blow it up),
  so it is returned as zeros and the call issues a :class:`favor.FavorAccuracyWarning`
  with their number. Rows with :math:`\hat D_i > 0` are exactly
  :math:`\hat D^{-1}\hat A V`; nothing is clipped, so no inf or NaN is produced.

Variance regime (formulas §2.4; Performers Lemma 2). The positive estimator of one kernel
entry has relative MSE :math:`(e^{\lVert z\rVert^2} - 1)/m` with :math:`z = s(q + k)`: it
grows exponentially in the squared norms. Attention with :math:`\lVert q\rVert,
\lVert k\rVert \approx \sqrt d` (N(0, I) inputs, logits of unit scale) is already deep in
the noisy regime at :math:`m = 256` (relative errors above 1, worse than uniform
attention); small logits (e.g. layer-normalised inputs with a learned small scale) are
the regime where FAVOR+ is accurate. :func:`estimate_attention_error` predicts the error
for given inputs before you rely on the approximation.

Verified by: ``tests/favor/test_attention.py`` (exact identities against the explicit
:math:`\hat D^{-1}\hat A V` in float64 to 1e-12, the future-leak test, padding equals
truncation, accuracy against a textbook FAVOR+ and against uniform attention).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from favor._dispatch import dispatch
from favor._guards import FavorAccuracyWarning, check_memory, check_norms, warn_inaccurate
from favor._threads import jit_threads, run_ranges
from favor._validation import (
    DEFAULT_CHUNK_SIZE,
    RandomLike,
    check_attention_arrays,
    check_attention_inputs,
    check_choice,
    check_flag,
    check_positive_int,
    heads_of,
)
from favor.registry import feature_map
from favor.sampling import DEFAULT_N_COMPONENTS, resolve_projection

__all__ = ["DEFAULT_CHUNK_SIZE", "estimate_attention_error", "favor_attention"]

_GERF_MAPS = ("oprf", "saderf")


def _flatten_groups(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape((-1, *x.shape[-2:])))


@dispatch
def favor_attention(
    queries: ArrayLike,
    keys: ArrayLike,
    values: ArrayLike,
    *,
    n_components: int | None = None,
    causal: bool = False,
    rng: RandomLike = None,
    key_padding_mask: ArrayLike | None = None,
    projection: str | ArrayLike | None = None,
    features: str = "positive",
    per_head: bool = False,
    chunk_size: int | None = None,
    feature_params: Any = None,
) -> Any:
    r"""FAVOR+ approximation of :func:`favor.softmax_attention` in linear time.

    Parameters
    ----------
    queries : array of shape (..., L_q, d)
        Queries; float32 or float64 NumPy array. If any argument is a torch tensor the
        call goes to :func:`favor.torch.favor_attention` with the same arguments.
    keys : array of shape (..., L_k, d)
        Keys, same leading axes and dtype.
    values : array of shape (..., L_k, d_v)
        Values, same leading axes and dtype.
    n_components : int, optional
        Number of random projections :math:`m` (default 256 when one is drawn). With a
        prebuilt ``projection`` it must be None or equal to its row count.
    causal : bool, default=False
        Query ``t`` sees keys ``<= t`` only (needs ``L_q == L_k``).
    rng : None, int, SeedSequence or numpy.random.Generator, optional
        Source of the projection when one is drawn (ignored for a prebuilt array).
    key_padding_mask : bool array of shape (..., L_k), optional
        True marks a padded key, removed from numerator and normaliser. Leading axes
        equal the inputs' or are 1.
    projection : str or array, optional
        A sampler name of :data:`favor.registry.SAMPLERS` (default "orthogonal": Haar
        blocks with chi norms; "iid") or a prebuilt
        ``(m, d)`` array (``(H, m, d)`` with ``per_head``), unscaled: the :math:`d^{-1/4}`
        factor is applied to the inputs inside.
    features : str, default="positive"
        The feature map (:data:`favor.registry.FEATURE_MAPS`): "positive", "hyperbolic",
        "trigonometric", "oprf", "saderf" and "hybrid" estimate the softmax kernel, "relu"
        gives generalised (arc-cosine kernel) attention. "hybrid" (:mod:`favor.hybrid`)
        uses ``n_components`` base rows plus 4 sign rows (a prebuilt projection has
        ``m + 4`` rows) and :math:`20m` features.
    per_head : bool, default=False
        Draw (or take) one projection per head, the axis just before ``L``, shared over
        the batch axes; needs inputs with at least 3 dimensions.
    chunk_size : int, optional
        Rows per chunk (default 512 bidirectional, 32 causal); changes speed and memory,
        not the result (beyond rounding).
    feature_params : favor.gerf.GerfParameters, optional
        Fixed parameters of ``"oprf"``/``"saderf"`` (from
        :func:`favor.gerf.fit_feature_params` on calibration data); required with
        ``causal=True``, where the sequence itself may not be used. Bidirectional calls
        without it fit them per (batch..., head) group from the inputs (:mod:`favor.gerf`).

    Returns
    -------
    array of shape (..., L_q, d_v)
        The estimate :math:`\hat D^{-1} \hat A V`, same dtype and array type as the
        inputs. A query whose normaliser is exactly 0 (no visible key) gets a zero row, and
        so does one whose estimated normaliser is :math:`\le 0` with signed features
        (the normaliser sign rule, module docstring; warned).

    Raises
    ------
    ValueError
        For mismatched shapes, non-float or mixed dtypes, NaN/inf, a bad mask, an unknown
        ``features``/``projection`` name, or a projection of the wrong shape.

    See Also
    --------
    favor.softmax_attention : The exact attention this approximates.
    estimate_attention_error : Predicted relative error for given inputs.
    favor.decoding : Token-by-token causal generation with an O(m d_v) state.

    Notes
    -----
    Exactly the estimator :math:`\varphi(s q_i)^T \varphi(s k_j)` of the chosen map,
    normalised (module docstring); the stabilisers cancel exactly and there is no
    epsilon, so with ``"positive"`` every entry of :math:`\hat A` is unbiased for
    :math:`\exp(q_i^T k_j / \sqrt d)` (Performers Lemma 1) and the output is "nearly
    unbiased" (a ratio of unbiased sums; formulas §1.3). The error grows like
    :math:`\exp(\lVert s(q + k)\rVert^2)` (Lemma 2): see :func:`estimate_attention_error`.
    Runs in Numba-compiled scans, parallel over (batch..., head) groups (contiguous ranges
    of groups in threads), with single-threaded BLAS for the chunk products inside each
    thread (so a single group uses one core), under the thread policy of
    :mod:`favor._threads` (a ``threadpoolctl`` limit caps this function too). The first call in a fresh environment compiles the
    scans (cached on disk afterwards).

    Examples
    --------
    >>> import numpy as np
    >>> from favor import favor_attention
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (0.3 * rng.standard_normal((2, 16, 8)) for _ in range(3))
    >>> favor_attention(q, k, v, causal=True, rng=0).shape
    (2, 16, 8)
    """
    causal = check_flag("causal", causal)
    per_head = check_flag("per_head", per_head)
    q, k, v, mask, (bound_q, bound_k) = check_attention_arrays(
        queries, keys, values, key_padding_mask, causal=causal
    )
    spec = feature_map(features)
    rows = spec.jit_rows()
    chunk = (
        DEFAULT_CHUNK_SIZE[causal]
        if chunk_size is None
        else check_positive_int("chunk_size", chunk_size)
    )
    d = q.shape[-1]
    w = resolve_projection(
        projection,
        n_components,
        d,
        rng=rng,
        n_heads=heads_of(q.shape, per_head),
        features=features,
    )
    lead = q.shape[:-2]
    n_queries, n_keys = q.shape[-2], k.shape[-2]
    dtype = q.dtype
    scale = d**-0.25
    prepare = spec.attention_prepare()
    if prepare is None and feature_params is not None:
        raise ValueError(
            f"feature_params applies to maps fitted per group (oprf, saderf), not {features!r}"
        )
    check_norms("queries", q, scale, bound_q)
    check_norms("keys", k, scale, bound_k)
    check_norms("projection", w, scale)
    _warn_if_noisy(q, k, scale, w.shape[-2], features)
    # Data-fitted parameters: from the inputs (scaled) bidirectionally; causal attention
    # may not look at the data (an output would depend on later positions).
    # Maps fitted per group get their parameter rows from ``prepare`` below.
    params = np.zeros((1, 0))
    if prepare is None:
        data = None
        if spec.params is not None and not causal:
            data = np.concatenate([q.reshape(-1, d), k.reshape(-1, d)]) * scale
        params = spec.fit_params(data, w[0] if w.shape[0] == 1 else w)[None, :]
    # The temperature factor s = d**-0.25 lives here, once: it is folded into the projection
    # (W s x = (s W) x), so the inputs are never copied, and s^2/2 multiplies the squared
    # norms passed to the split form (formulas §1.2).
    wt = np.ascontiguousarray(np.swapaxes(w * scale, -1, -2), dtype=dtype)
    qg, kg, vg = _flatten_groups(q), _flatten_groups(k), _flatten_groups(v)
    signed = not spec.nonnegative
    if signed:
        # A column of ones: its output is 1 where the normaliser is used and exactly 0
        # where the sign rule zeroed the row (counted below).
        vg = np.concatenate([vg, np.ones((*vg.shape[:-1], 1), dtype=dtype)], axis=-1)
    n_groups = qg.shape[0]
    if per_head:
        proj_index = np.arange(n_groups, dtype=np.int64) % w.shape[0]
    else:
        proj_index = np.zeros(n_groups, dtype=np.int64)
    if mask is None:
        padded = np.zeros((n_groups, n_keys), dtype=bool)
    else:
        padded = np.ascontiguousarray(
            np.broadcast_to(mask, (*lead, n_keys)).reshape(n_groups, n_keys)
        )
    width = spec.width_for_rows(w.shape[1])
    wt_keys, norm_weights = wt, np.zeros((1, 0))
    if prepare is not None:
        # Maps fitted per group: one row of parameters per group for their split form, and
        # query/key projections and key norm weights that apply their input rescaling.
        w_q, w_k, proj_index, params, norm_weights = prepare(
            features, feature_params, q, k, w, proj_index, padded, causal, scale
        )
        if w_q is not w:
            wt = np.ascontiguousarray(np.swapaxes(w_q * scale, -1, -2), dtype=dtype)
            wt_keys = np.ascontiguousarray(np.swapaxes(w_k * scale, -1, -2), dtype=dtype)
    # Per running group: a chunk of features and the (features x values) state.
    check_memory(
        "the attention feature blocks",
        (min(n_groups, os.cpu_count() or 1), chunk + v.shape[-1], spec.width_for_rows(w.shape[-2])),
        dtype,
        because=f"n_components={w.shape[-2]}",
    )
    out = np.empty((n_groups, n_queries, vg.shape[-1]), dtype=dtype)
    from favor._jit import attention as jit

    scan = jit.causal_attention if causal else jit.bidirectional_attention
    chunk = min(chunk, max(n_queries, n_keys))
    half_factor = 0.5 * scale * scale

    per_group = params.shape[0] > 1
    weighted = norm_weights.shape[1] > 0

    def groups(start: int, stop: int) -> None:
        part = slice(start, stop)
        scan(
            qg[part],
            kg[part],
            vg[part],
            wt,
            wt_keys,
            proj_index[part],
            padded[part],
            half_factor,
            norm_weights[part] if weighted else norm_weights,
            rows,
            params[part] if per_group else params,
            width,
            chunk,
            out[part],
        )

    with jit_threads(n_groups) as n_threads:
        run_ranges(groups, n_groups, n_threads)
    if signed:
        _warn_nonpositive(out[..., -1], padded, causal, features)
        out = out[..., :-1]
    return out.reshape((*lead, n_queries, v.shape[-1]))


def _warn_nonpositive(ones: np.ndarray, padded: np.ndarray, causal: bool, features: str) -> None:
    """Warn about rows zeroed by the normaliser sign rule (``ones`` is 0 exactly there)."""
    sees_a_key = ~padded
    if causal:
        sees_a_key = np.logical_or.accumulate(sees_a_key, axis=1)
    else:
        sees_a_key = np.broadcast_to(sees_a_key.any(axis=1)[:, None], ones.shape)
    count = int(np.count_nonzero((ones == 0) & sees_a_key))
    if count:
        warnings.warn(
            f"features={features!r}: {count} of {ones.size} query rows had an estimated "
            "normaliser <= 0 (signed features; the true one is positive) and were set to "
            "zero (the normaliser sign rule); raise n_components or use a positive map",
            FavorAccuracyWarning,
            stacklevel=4,
        )


#: Rows (evenly spaced over all groups) from which the accuracy warning takes its medians.
_WARNING_SAMPLE_ROWS = 1024


def _median_sq_norm(x: np.ndarray, scale: float) -> float:
    r"""Median of :math:`s^2\lVert x_i\rVert^2` over at most 1024 evenly spaced rows, float64."""
    rows = x.reshape(-1, x.shape[-1])
    sample = rows[:: -(-rows.shape[0] // _WARNING_SAMPLE_ROWS)].astype(np.float64)
    return float(np.median(np.einsum("ij,ij->i", sample, sample))) * scale * scale


def _warn_if_noisy(q: np.ndarray, k: np.ndarray, scale: float, m: int, features: str) -> None:
    r"""Warn (:class:`favor.FavorAccuracyWarning`) if FAVOR+ is predicted to be noise.

    A cheap stand-in for :func:`estimate_attention_error`: the relative RMS error of one
    kernel entry for a typical pair, :math:`\sqrt{(e^{\lVert z\rVert^2} - 1)/m}` with
    :math:`\lVert z\rVert^2` the median of :math:`s^2\lVert q\rVert^2` plus the median
    of :math:`s^2\lVert k\rVert^2` (Performers Lemma 2, formulas §2.4, for nearly
    orthogonal queries and keys), the medians taken over at most 1024 evenly spaced rows
    (O(d) work per row, independent of L beyond that). Softmax-kernel maps only.
    """
    if features not in ("positive", "hyperbolic", "trigonometric") or q.size == 0 or k.size == 0:
        return
    exponent = _median_sq_norm(q, scale) + _median_sq_norm(k, scale)
    with np.errstate(over="ignore"):
        predicted = math.sqrt(math.expm1(min(exponent, 709.0)) / m)
    warn_inaccurate(predicted, n_components=m, stacklevel=5)


def estimate_attention_error(
    queries: ArrayLike,
    keys: ArrayLike,
    *,
    n_components: int = DEFAULT_N_COMPONENTS,
    features: Literal["positive", "hyperbolic", "trigonometric", "oprf", "saderf"] = "positive",
    causal: bool = False,
    key_padding_mask: ArrayLike | None = None,
    feature_params: Any = None,
) -> np.ndarray:
    r"""Predicted relative RMS error of each query's FAVOR normaliser (variance regime).

    For i.i.d. Gaussian projections (Performers Lemma 2, extended from one kernel entry to
    the sum over keys), the normaliser :math:`\hat D_i = \sum_j \hat A_{ij}` of query
    :math:`i` has exactly

    .. math::
        \frac{\mathrm{Var}\,\hat D_i}{D_i^2}
        = \frac1m \Big(\sum_{j, j'} p_{ij}\, p_{ij'}\, f(u_{j}^T u_{j'}) - 1\Big),

    with :math:`p_{ij} = A_{ij} / D_i` the exact attention weights and

    * positive: :math:`f = \exp`, :math:`u_j = s(q_i + k_j)`;
    * hyperbolic (m projections, 2m features): :math:`f = \cosh`, same :math:`u_j`;
    * trigonometric: :math:`f = \cosh`, :math:`u_j = s(q_i - k_j)`;
    * oprf, saderf: the GERF four-feature moment (:func:`favor.gerf.attention_error`) at
      the parameters :func:`favor_attention` would use (fitted on these inputs, or
      ``feature_params``).

    (From :math:`\mathrm{Cov}(e^{\omega^T a}, e^{\omega^T b}) = e^{(\lVert a\rVert^2 +
    \lVert b\rVert^2)/2}(e^{a^T b} - 1)` for :math:`\omega \sim \mathcal N(0, I)`, and the
    cosh/cos analogues; the diagonal terms are Lemma 2's MSEs, formulas §2.4.) The output
    error :math:`\hat o_i - o_i \approx \sum_j (\hat A_{ij} - A_{ij})(v_j - o_i)/D_i` has
    the same kernel, so this value gives the order of magnitude of the output's relative
    error, not a bound on it (in notebook 05 the measured output error is up to about
    twice this value at intermediate input scales). It grows like
    :math:`e^{\lVert s q\rVert^2}` and the key norms: values above about 0.3 mean FAVOR+
    with this ``m`` will be visibly noisy, above 1 it is useless for these inputs.
    Orthogonal projections (the default) lower the variance of each entry (Performers
    Theorem 2) but do not change this order of magnitude.

    Parameters
    ----------
    queries : array of shape (..., L_q, d)
        Queries as passed to :func:`favor_attention` (unscaled).
    keys : array of shape (..., L_k, d)
        Keys.
    n_components : int, default=256
        Number of random projections :math:`m`.
    features : {"positive", "hyperbolic", "trigonometric", "oprf", "saderf"}, default="positive"
        The softmax-kernel feature map ("relu" and "hybrid" have no closed form here).
    causal : bool, default=False
        Use causal attention weights (``L_q == L_k``).
    key_padding_mask : bool array of shape (..., L_k), optional
        Padded keys are left out, as in :func:`favor_attention`.
    feature_params : favor.gerf.GerfParameters, optional
        For "oprf"/"saderf": the fixed parameters (required when ``causal``).

    Returns
    -------
    numpy.ndarray of shape (..., L_q), float64
        Predicted :math:`\sqrt{\mathrm{Var}\,\hat D_i} / D_i` per query (``inf`` when it
        exceeds the float64 range; NaN for a query with no visible key).

    Notes
    -----
    Costs :math:`O(L_q L_k^2)` per group (a quadratic form per query): a diagnostic for a
    representative sample of a sequence, not for every long input.

    Examples
    --------
    >>> import numpy as np
    >>> from favor import estimate_attention_error
    >>> rng = np.random.default_rng(0)
    >>> small = 0.3 * rng.standard_normal((32, 64))
    >>> big = 1.0 * rng.standard_normal((32, 64))
    >>> float(estimate_attention_error(small, small).max()) < 0.2  # fine
    True
    >>> float(estimate_attention_error(big, big).min()) > 1  # hopeless at m = 256
    True
    """
    q, k, _, mask = check_attention_inputs(queries, keys, keys, key_padding_mask, causal=causal)
    check_choice("features", features, ("positive", "hyperbolic", "trigonometric", *_GERF_MAPS))
    m = check_positive_int("n_components", n_components)
    causal = check_flag("causal", causal)
    check_norms("queries", q, q.shape[-1] ** -0.25)
    check_norms("keys", k, k.shape[-1] ** -0.25)
    if features in _GERF_MAPS:
        return _gerf_error(q, k, mask, m, features, causal, feature_params)
    s2 = 1.0 / math.sqrt(q.shape[-1])
    q64 = q.astype(np.float64)
    k64 = k.astype(np.float64)
    logits = (q64 @ np.swapaxes(k64, -1, -2)) * s2  # s^2 q.k
    visible = np.ones(logits.shape[-2:], dtype=bool)
    if causal:
        visible = np.tril(visible)
    if mask is not None:
        visible = visible & ~mask[..., None, :]
    visible = np.broadcast_to(visible, logits.shape)
    gram = (k64 @ np.swapaxes(k64, -1, -2)) * s2  # s^2 k_j.k_j'
    qq = np.einsum("...i,...i->...", q64, q64)[..., None] * s2  # s^2 |q|^2
    sign = -1.0 if features == "trigonometric" else 1.0
    # u_j.u_j' = s^2 (|q|^2 + sign q.k_j + sign q.k_j' + k_j.k_j'); p_j = softmax weights.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        lp = np.where(visible, logits, -np.inf)
        lp = lp - lp.max(axis=-1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(axis=-1, keepdims=True))  # log p_ij
        total = _log_quadratic(lp + sign * logits, gram, qq)
        if features != "positive":
            minus = _log_quadratic(lp - sign * logits, -gram, -qq)
            total = np.logaddexp(total, minus) - math.log(2.0)  # cosh = (e^x + e^-x) / 2
        ratio = np.exp(total)
        predicted = np.sqrt(np.maximum(ratio - 1.0, 0.0) / m)
    seen = predicted[~np.isnan(predicted)]
    if seen.size:
        warn_inaccurate(float(np.median(seen)), n_components=m, stacklevel=3)
    return predicted


def _gerf_error(
    q: np.ndarray,
    k: np.ndarray,
    mask: np.ndarray | None,
    m: int,
    features: str,
    causal: bool,
    feature_params: Any,
) -> np.ndarray:
    from favor import gerf

    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], () if mask is None else mask.shape[:-1])
    q64 = np.broadcast_to(q.astype(np.float64), (*lead, *q.shape[-2:]))
    k64 = np.broadcast_to(k.astype(np.float64), (*lead, *k.shape[-2:]))
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    weights = None
    if mask is not None:
        weights = (~np.broadcast_to(mask, (*lead, n_k))).astype(np.float64)
    a, psi = gerf.resolve_parameters(features, feature_params, q64, k64, weights, causal, d**-0.25)
    visible = np.ones((n_q, n_k), dtype=bool)
    if causal:
        visible = np.tril(visible)
    visible = np.broadcast_to(visible, (*lead, n_q, n_k))
    if weights is not None:
        visible = visible & (weights[..., None, :] > 0)
    g = a.shape[0]
    linear, gram, offset = gerf.attention_error_terms(
        q64.reshape(g, n_q, d), k64.reshape(g, n_k, d), visible.reshape(g, n_q, n_k), a, psi
    )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        total = _log_quadratic(linear, gram, offset)
        out = np.sqrt(np.maximum(np.exp(total) - 1.0, 0.0) / m)
    return out.reshape(*lead, n_q)


def _log_quadratic(a: np.ndarray, gram: np.ndarray, offset: np.ndarray) -> np.ndarray:
    r"""``log sum_{j,j'} exp(a_j + a_j' + gram_jj' + offset)`` per row, overflow-safe.

    ``a`` has shape (..., L_q, L_k) (``-inf`` for invisible keys), ``gram`` (..., L_k, L_k),
    ``offset`` (..., L_q, 1).
    """
    a_top = np.max(a, axis=-1, keepdims=True)
    a_top = np.where(np.isfinite(a_top), a_top, 0.0)
    g_top = np.max(gram, axis=(-2, -1), keepdims=True)
    weights = np.exp(a - a_top)
    quad = np.einsum("...ij,...ij->...i", weights @ np.exp(gram - g_top), weights)
    return np.log(quad) + 2 * a_top[..., 0] + g_top[..., 0] + offset[..., 0]
