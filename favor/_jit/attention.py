r"""Jit functions of the FAVOR+ attention engine (see :mod:`favor.attention`).

Notation (formulas §1.3): a group ``g`` is one (batch..., head) slice; ``q``, ``k`` are its
queries and keys, ``v`` its values; ``wt`` is the transposed projection already multiplied
by the temperature factor :math:`s = d^{-1/4}`, so ``x @ wt`` are the logits
:math:`\omega_r^T (s x)`. Every feature row is stored as a *shape* row :math:`e_j` and a *log-scale* :math:`r_j` with
:math:`\varphi(k_j) = e^{r_j} e_j`, computed by the map's split form
(:mod:`favor._jit.feature_rows`), which the scans take as a first-class function argument
``rows``: a new feature map needs no change here.

Query rows use the same shape rows; their log-scale is one factor per output row and
cancels exactly in the normalisation, so it is never formed. Keys are combined with a
stabiliser ``c`` (the largest :math:`r_j` seen so far) as :math:`e^{r_j - c} e_j`, so no
exponential ever has a positive argument. The causal scan keeps ``c`` as a running
maximum over positions :math:`\le t` and rescales the carried state by
:math:`e^{c_{old} - c_{new}}` when it grows (online-softmax style), so an output never
depends on a later key, not even through rounding.

Preconditions (checked by the callers in :mod:`favor.attention`, never here): C-contiguous
float32 or float64 arrays of one dtype, finite inputs, ``width`` the map's output width.

Thread use: the scans are serial loops over groups that release the GIL; the caller
(:func:`favor.favor_attention`) runs them on contiguous ranges of groups in threads
(:func:`favor._threads.run_ranges`, one range per thread, the ranges write disjoint
outputs), each calling single-threaded BLAS (``np.dot``) on small chunks; the caller
limits BLAS to one thread around them (threadpoolctl), so the two never oversubscribe the
cores.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload

from favor._jit.feature_rows import rows_type

__all__ = [
    "bidirectional_attention",
    "causal_attention",
    "causal_scan",
    "causal_state_update",
    "key_state",
    "query_output",
]

_OPTIONS = {"cache": True, "nogil": True}


def _readonly(dtype: types.Type, ndim: int) -> types.Type:
    # Inputs are typed read-only: writable arrays convert to it, so callers may pass both.
    return types.Array(dtype, ndim, "C", readonly=True)


def _scan_signature(dtype: types.Type) -> types.Type:
    tensor = _readonly(dtype, 3)
    return types.void(
        tensor,  # q
        tensor,  # k
        tensor,  # v
        tensor,  # wt (queries)
        tensor,  # wt_keys
        _readonly(types.int64, 1),  # proj_index
        _readonly(types.boolean, 2),  # padded
        types.float64,  # half_factor
        _readonly(types.float64, 2),  # norm_weights: (1, 0), or one row per group
        rows_type(dtype),  # rows
        _readonly(types.float64, 2),  # params: one row, or one row per group
        types.int64,  # width
        types.int64,  # chunk
        dtype[:, :, ::1],  # out
    )


_SCAN_SIGNATURES = [_scan_signature(types.float32), _scan_signature(types.float64)]


def _as_writable(x):
    """Return ``x`` itself, typed as a writable array in compiled code.

    Read-only inputs and writable work arrays then share one ``np.dot`` specialisation
    per layout (each costs a second of compilation); the result is only ever read.
    """
    return x


@intrinsic
def _writable_view(typingctx, x):  # pragma: no cover - typing only
    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, signature.return_type, args[0])

    return x.copy(readonly=False)(x), codegen


@overload(_as_writable, jit_options={"cache": True})
def _as_writable_overload(x):  # pragma: no cover - typing only
    return lambda x: _writable_view(x)


@numba.njit(**_OPTIONS)
def _half_sq_norms(x, factor, weights, out):  # pragma: no cover - compiled
    # factor * sum_j weights_j x_ij^2 (weights empty: all ones).
    if weights.shape[0] == 0:
        for i in range(x.shape[0]):
            acc = 0.0
            for j in range(x.shape[1]):
                acc += x[i, j] * x[i, j]
            out[i] = factor * acc
    else:
        for i in range(x.shape[0]):
            acc = 0.0
            for j in range(x.shape[1]):
                acc += weights[j] * x[i, j] * x[i, j]
            out[i] = factor * acc


@numba.njit(**_OPTIONS)
def _normalised_rows(numer, denom, out):  # pragma: no cover - compiled
    # out[i] = numer[i] / denom[i], or 0 where denom[i] <= 0 (the normaliser sign rule).
    for i in range(out.shape[0]):
        if denom[i] > 0:
            for b in range(out.shape[1]):
                out[i, b] = numer[i, b] / denom[i]
        else:
            for b in range(out.shape[1]):
                out[i, b] = 0


@numba.njit(**_OPTIONS)
def _key_rows(
    k, wt, half_factor, norm_weights, rows, params, padded, e, r, hsq, shifted, scratch
):  # pragma: no cover - compiled
    # Split-form features of one chunk of keys; padded keys get a zero row and r = -inf.
    _half_sq_norms(k, half_factor, norm_weights, hsq)
    rows(np.dot(_as_writable(k), _as_writable(wt)), hsq, params, True, e, r, shifted, scratch)
    for j in range(k.shape[0]):
        if padded[j]:
            for c in range(e.shape[1]):
                e[j, c] = 0
            r[j] = -np.inf


@numba.njit(**_OPTIONS)
def _query_rows(q, wt, half_factor, rows, params, e, r, hsq, shifted, scratch):
    # Query log-scales r cancel in the normalisation, so the plain norm does for every map.
    _half_sq_norms(q, half_factor, np.empty(0), hsq)
    rows(np.dot(_as_writable(q), _as_writable(wt)), hsq, params, False, e, r, shifted, scratch)


@numba.njit(**_OPTIONS)
def causal_state_update(state, normaliser, log_scale, e, r, v):
    r"""Fold a chunk of key rows into the carried causal state; return the new log-scale.

    ``state`` :math:`S` (width, d_v) and ``normaliser`` :math:`z` (width,) hold
    :math:`\sum_j e^{r_j - c} e_j v_j^T` and :math:`\sum_j e^{r_j - c} e_j` at log-scale
    ``log_scale`` :math:`c` (``-inf`` while empty). With :math:`c' = \max(c, \max_j r_j)`
    they become :math:`e^{c - c'} S + \sum_j e^{r_j - c'} e_j v_j^T` (in place).

    Parameters
    ----------
    state : array of shape (width, d_v)
    normaliser : array of shape (width,)
    log_scale : float
    e : array of shape (n, width)
        Key shape rows of the chunk.
    r : array of shape (n,)
        Their log-scales (``-inf`` for padded keys).
    v : array of shape (n, d_v)
        Values of the chunk.

    Returns
    -------
    float
        The new log-scale :math:`c'`.
    """
    n = e.shape[0]
    new = log_scale
    for j in range(n):
        if r[j] > new:
            new = r[j]
    if new == -np.inf:
        return new
    width, d_v = state.shape
    if log_scale != -np.inf and new != log_scale:
        factor = np.exp(log_scale - new)
        for a in range(width):
            for b in range(d_v):
                state[a, b] = state[a, b] * factor
            normaliser[a] = normaliser[a] * factor
    weights = np.empty(n, dtype=e.dtype)
    weighted = np.empty((n, d_v), dtype=e.dtype)
    for j in range(n):
        weights[j] = 0 if r[j] == -np.inf else (1 if r[j] == new else np.exp(r[j] - new))
        for b in range(d_v):
            weighted[j, b] = v[j, b] * weights[j]
    added = np.dot(e.T, weighted)
    added_normaliser = np.dot(e.T, weights)
    for a in range(width):
        for b in range(d_v):
            state[a, b] = state[a, b] + added[a, b]
        normaliser[a] = normaliser[a] + added_normaliser[a]
    return new


@numba.njit(**_OPTIONS)
def key_state(
    k, v, w, padded, half_factor, norm_weights, rows, params, width, chunk, state, normaliser
):
    r"""Fold one group's keys into the state ``(state, normaliser)``; return its log-scale.

    Streams the keys in chunks of ``chunk`` rows: :math:`S = \sum_j e^{r_j - c} e_j v_j^T`,
    :math:`z = \sum_j e^{r_j - c} e_j` with ``c`` the largest log-scale seen (the state is
    rescaled when it grows). ``state`` (width, d_v) and ``normaliser`` (width,) must hold
    zeros on entry; the returned ``c`` is ``-inf`` if every key is padded. Extra memory:
    O(chunk x width). Used by :func:`bidirectional_attention` and, per key chunk, by the
    Dask backend (:mod:`favor._jit.chunked`).

    Parameters
    ----------
    k : array of shape (L_k, d)
    v : array of shape (L_k, d_v)
    w : array of shape (d, m)
        The group's scaled, transposed key projection.
    padded : bool array of shape (L_k,)
    half_factor : float
        As in :func:`bidirectional_attention`.
    norm_weights : float64 array of shape (d,) or (0,)
        The group's row of ``norm_weights`` (:func:`bidirectional_attention`).
    rows, params, width, chunk
        As in :func:`bidirectional_attention`.
    state : array of shape (width, d_v)
    normaliser : array of shape (width,)

    Returns
    -------
    float
        The log-scale ``c`` of the state.
    """
    n_keys = k.shape[0]
    e = np.empty((chunk, width), dtype=k.dtype)
    r = np.empty(chunk, dtype=k.dtype)
    hsq = np.empty(chunk, dtype=k.dtype)
    shifted = np.empty(width, dtype=k.dtype)
    scratch = np.empty(width, dtype=k.dtype)
    log_scale = -np.inf
    for t0 in range(0, n_keys, chunk):
        n = min(chunk, n_keys - t0)
        _key_rows(
            k[t0 : t0 + n], w, half_factor, norm_weights, rows, params, padded[t0 : t0 + n],
            e[:n], r[:n], hsq[:n], shifted, scratch,
        )  # fmt: skip
        log_scale = causal_state_update(state, normaliser, log_scale, e[:n], r[:n], v[t0 : t0 + n])
    return log_scale


@numba.njit(**_OPTIONS)
def query_output(q, w, half_factor, rows, params, width, chunk, state, normaliser, out):
    r"""Write :math:`(e_i^T S) / (e_i^T z)` for one group's queries (0 where the normaliser is <= 0).

    The state's log-scale is not needed: it multiplies numerator and normaliser alike.
    Used by :func:`bidirectional_attention` and, per query chunk, by the Dask backend.

    Parameters
    ----------
    q : array of shape (L_q, d)
    w : array of shape (d, m)
        The group's scaled, transposed query projection.
    half_factor, rows, params, width, chunk
        As in :func:`key_state`.
    state : array of shape (width, d_v)
    normaliser : array of shape (width,)
    out : array of shape (L_q, d_v)
        Output, written in place.
    """
    n_queries = q.shape[0]
    e = np.empty((chunk, width), dtype=q.dtype)
    r = np.empty(chunk, dtype=q.dtype)
    hsq = np.empty(chunk, dtype=q.dtype)
    shifted = np.empty(width, dtype=q.dtype)
    scratch = np.empty(width, dtype=q.dtype)
    for t0 in range(0, n_queries, chunk):
        n = min(chunk, n_queries - t0)
        _query_rows(
            q[t0 : t0 + n], w, half_factor, rows, params, e[:n], r[:n], hsq[:n], shifted, scratch
        )
        numer = np.dot(e[:n], state)
        denom = np.dot(e[:n], normaliser)
        _normalised_rows(numer, denom, out[t0 : t0 + n])


@numba.njit(**_OPTIONS)
def causal_scan(
    q, k, v, wq, wk, padded, half_factor, norm_weights, rows, params, width, chunk, state,
    normaliser, log_scale, out,
):  # fmt: skip
    r"""Causal attention of one group from a carried state; return the final log-scale.

    Inside each chunk, with running maxima :math:`c_t = \max(c_{prev}, r_{t_0}, ..., r_t)`:

    .. math::
        o_t = \frac{\sum_{t_0 \le j \le t} (e^{q}_t \cdot e_j)\, e^{r_j - c_t} v_j
                    + e^{c_{prev} - c_t}\, e^{q}_t S}
                   {\sum_{t_0 \le j \le t} (e^{q}_t \cdot e_j)\, e^{r_j - c_t}
                    + e^{c_{prev} - c_t}\, e^{q}_t \cdot z},

    a small masked product for the chunk plus the carried state :math:`(S, z)` at
    log-scale :math:`c_{prev}`, which :func:`causal_state_update` then advances (in place).
    The empty state (zeros, ``log_scale = -inf``) gives causal attention of the group
    (:func:`causal_attention`); the state of all earlier positions gives the rows of a
    later sequence chunk (the Dask backend). Every quantity used for :math:`o_t` depends
    on the carried state and positions :math:`\le t` only.

    Parameters
    ----------
    q, k : arrays of shape (L, d)
    v : array of shape (L, d_v)
    wq, wk : arrays of shape (d, m)
        The group's scaled, transposed query and key projections (the same array for
        every map but ``"saderf"``).
    padded, half_factor, norm_weights, rows, params, width, chunk
        As in :func:`key_state`.
    state : array of shape (width, d_v)
        Carried :math:`S` (advanced in place).
    normaliser : array of shape (width,)
        Carried :math:`z` (advanced in place).
    log_scale : float
        Carried :math:`c` (``-inf`` when empty).
    out : array of shape (L, d_v)
        Output, written in place.

    Returns
    -------
    float
        The log-scale of the advanced state.
    """
    n_tokens, d_v = v.shape
    eq = np.empty((chunk, width), dtype=q.dtype)
    ek = np.empty((chunk, width), dtype=q.dtype)
    r = np.empty(chunk, dtype=q.dtype)
    running = np.empty(chunk, dtype=q.dtype)
    hsq = np.empty(chunk, dtype=q.dtype)
    dummy = np.empty(chunk, dtype=q.dtype)
    shifted = np.empty(width, dtype=q.dtype)
    scratch = np.empty(width, dtype=q.dtype)
    for t0 in range(0, n_tokens, chunk):
        n = min(chunk, n_tokens - t0)
        vc = v[t0 : t0 + n]
        _query_rows(
            q[t0 : t0 + n], wq, half_factor, rows, params,
            eq[:n], dummy[:n], hsq[:n], shifted, scratch,
        )  # fmt: skip
        _key_rows(
            k[t0 : t0 + n], wk, half_factor, norm_weights, rows, params, padded[t0 : t0 + n],
            ek[:n], r[:n], hsq[:n], shifted, scratch,
        )  # fmt: skip
        top = log_scale
        for i in range(n):
            if r[i] > top:
                top = r[i]
            running[i] = top
        scores = np.dot(eq[:n], ek[:n].T)
        denom = np.zeros(n, dtype=q.dtype)
        for i in range(n):
            for j in range(n):
                if j > i or r[j] == -np.inf:
                    scores[i, j] = 0
                elif r[j] != running[i]:
                    scores[i, j] *= np.exp(r[j] - running[i])
                denom[i] += scores[i, j]
        numer = np.dot(scores, _as_writable(vc))
        if log_scale != -np.inf:
            carried = np.dot(eq[:n], state)
            carried_denom = np.dot(eq[:n], normaliser)
            for i in range(n):
                factor = 1 if running[i] == log_scale else np.exp(log_scale - running[i])
                for b in range(d_v):
                    numer[i, b] = numer[i, b] + factor * carried[i, b]
                denom[i] += factor * carried_denom[i]
        _normalised_rows(numer, denom, out[t0 : t0 + n])
        log_scale = causal_state_update(state, normaliser, log_scale, ek[:n], r[:n], vc)
    return log_scale


@numba.njit(_SCAN_SIGNATURES, **_OPTIONS)
def bidirectional_attention(
    q, k, v, wt, wt_keys, proj_index, padded, half_factor, norm_weights, rows, params, width,
    chunk, out,
):  # fmt: skip
    r"""Normalised FAVOR+ attention over all keys, streamed in chunks, one group after another.

    For each group: one pass over the key chunks accumulates
    :math:`S = \sum_j e^{r_j - c} e_j v_j^T` and :math:`z = \sum_j e^{r_j - c} e_j` with
    ``c`` the largest log-scale seen (the state is rescaled when it grows; the final
    ``c`` is the single per-group key stabiliser; :func:`key_state`). A pass over the query
    chunks then writes :math:`(e_i^T S) / (e_i^T z)`, or 0 where the normaliser is
    :math:`\le 0` (exactly 0: no visible key; negative: only for maps with signed
    features, the normaliser sign rule of :mod:`favor.attention`; :func:`query_output`). Extra memory:
    O(chunk x width + width x d_v), never O(L x m).

    Parameters
    ----------
    q : array of shape (G, L_q, d)
    k : array of shape (G, L_k, d)
    v : array of shape (G, L_k, d_v)
    wt : array of shape (P, d, m)
        Scaled, transposed projections of the queries.
    wt_keys : array of shape (P, d, m)
        Those of the keys: ``wt`` itself for every map but ``"saderf"``, whose diagonal
        rescaling :math:`\Psi q`, :math:`\Psi^{-1} k` is folded into per-group projections
        (:func:`favor.gerf.prepare_attention`), so the inputs are never copied.
    proj_index : int64 array of shape (G,)
        Which projection each group uses.
    padded : bool array of shape (G, L_k)
        True marks a padded key.
    half_factor : float
        :math:`s^2 / 2`.
    norm_weights : float64 array of shape (1, 0) or (G, d)
        Key norm weights: the key norm term is :math:`\tfrac{s^2}{2}\sum_j u_j k_j^2`
        (``"saderf"``: :math:`u = \Psi^{-2}`, the norm of :math:`\Psi^{-1}k`); empty:
        the plain norm.
    rows : first-class function
        The map's split form (:mod:`favor._jit.feature_rows`).
    params : float64 array of shape (1, p) or (G, p)
        The map's parameters (``p = 0`` for maps without): one row shared by every group,
        or one row per group (maps fitted per group, :func:`favor.gerf.prepare_attention`).
    width : int
        The map's output width.
    chunk : int
        Rows per chunk.
    out : array of shape (G, L_q, d_v)
        Output, written in place.
    """
    d_v = v.shape[2]
    per_group = params.shape[0] > 1
    weighted = norm_weights.shape[1] > 0
    for g in range(q.shape[0]):
        p = params[g] if per_group else params[0]
        u = _as_writable(norm_weights[g] if weighted else norm_weights[0])
        state = np.zeros((width, d_v), dtype=q.dtype)
        normaliser = np.zeros(width, dtype=q.dtype)
        key_state(
            k[g], v[g], wt_keys[proj_index[g]], padded[g], half_factor, u, rows, p, width,
            chunk, state, normaliser,
        )  # fmt: skip
        query_output(
            q[g], wt[proj_index[g]], half_factor, rows, p, width, chunk, state, normaliser, out[g]
        )


@numba.njit(_SCAN_SIGNATURES, **_OPTIONS)
def causal_attention(
    q, k, v, wt, wt_keys, proj_index, padded, half_factor, norm_weights, rows, params, width,
    chunk, out,
):  # fmt: skip
    r"""Causal FAVOR+ attention by a chunked prefix scan, one group after another.

    :func:`causal_scan` of each group from the empty state: inside a chunk a small masked
    product, across chunks the carried :math:`(S, z)` at a running log-scale. Every
    quantity used for :math:`o_t` depends on positions :math:`\le t` only, so changing later
    keys or values leaves :math:`o_t` bit-identical. A normaliser :math:`\le 0` (no visible
    key, or a signed map's negative estimate) gives a zero row. Extra memory: O(chunk x (width + chunk) + width x d_v); no
    L x m x d_v tensor.

    Parameters are those of :func:`bidirectional_attention` (here ``L_q == L_k``).
    """
    d_v = v.shape[2]
    per_group = params.shape[0] > 1
    weighted = norm_weights.shape[1] > 0
    for g in range(q.shape[0]):
        p = params[g] if per_group else params[0]
        u = _as_writable(norm_weights[g] if weighted else norm_weights[0])
        state = np.zeros((width, d_v), dtype=q.dtype)
        normaliser = np.zeros(width, dtype=q.dtype)
        causal_scan(
            q[g], k[g], v[g], wt[proj_index[g]], wt_keys[proj_index[g]], padded[g],
            half_factor, u, rows, p, width, chunk, state, normaliser, -np.inf, out[g],
        )  # fmt: skip
