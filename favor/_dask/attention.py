r"""FAVOR+ attention on Dask arrays: a map-reduce over key chunks, a scan over causal chunks.

:func:`favor_attention` is what :func:`favor.favor_attention` runs when an input is a
``dask.array.Array``; the result is a lazy Dask array chunked like the queries along the
leading (batch, head) and sequence axes, equal to the in-memory result up to rounding
(the same feature maps, stabilisers and zero-normaliser rule, summed in another order).

How the work is cut (formulas §1.3, linearity of the FAVOR+ sums). Leading-axis chunks
are independent groups. Along the sequence, a set of keys is summarised by a *state*
:math:`(S, z, c)`: :math:`S = \sum_j e^{r_j - c} e_j v_j^T` (width :math:`\times d_v`),
:math:`z = \sum_j e^{r_j - c} e_j` and the log-scale :math:`c = \max_j r_j` (the key
stabiliser, see :mod:`favor._jit.attention`). Two states combine exactly:

.. math::
    c = \max(c_1, c_2), \qquad
    S = e^{c_1 - c} S_1 + e^{c_2 - c} S_2, \qquad z = e^{c_1 - c} z_1 + e^{c_2 - c} z_2,

with no exponential of a positive argument and no epsilon. Hence

* bidirectional: one task per key chunk computes its state (map), the states of a
  sequence are combined by a tree reduction (:data:`SPLIT_EVERY` at a time), and one task
  per query chunk writes :math:`(e_i^T S)/(e_i^T z)` (map);
* causal: one task per chunk computes its state, an exclusive scan combines them into the
  state carried into each chunk (depending on earlier chunks only), and one task per chunk
  runs the engine's causal scan from that carried state. Output :math:`t` therefore
  depends on keys :math:`\le t` only, exactly as in memory: changing a later key leaves it
  bit-identical.

Each task ships its input blocks, the scaled projection (``P x d x m``, sent once per
worker) and a state of ``G x width x (d_v + 1)`` numbers for its ``G`` groups. Tasks run
the serial jit kernels of :mod:`favor._jit.chunked`: Dask supplies the
parallelism, one task per worker thread (the kernels release the GIL).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from favor._validation import (
    DEFAULT_CHUNK_SIZE,
    check_attention_shapes,
    check_flag,
    check_float_array,
    check_mask_shape,
    check_positive_int,
    heads_of,
)

__all__ = ["SPLIT_EVERY", "combine_states", "empty_state", "favor_attention"]

#: States combined per task of the tree reduction (bidirectional attention).
SPLIT_EVERY = 4

State = tuple[np.ndarray, np.ndarray, np.ndarray]


def empty_state(n_groups: int, width: int, n_values: int, dtype: Any) -> State:
    """The state of no key: zero sums and log-scale ``-inf``."""
    return (
        np.zeros((n_groups, width, n_values), dtype=dtype),
        np.zeros((n_groups, width), dtype=dtype),
        np.full(n_groups, -np.inf),
    )


def combine_states(*states: State) -> State:
    r"""Combine states of disjoint key sets into the state of their union (exact rescaling).

    :math:`c = \max_i c_i`, :math:`S = \sum_i e^{c_i - c} S_i`, :math:`z = \sum_i e^{c_i - c}
    z_i` per group (a factor is exactly 1 for the largest :math:`c_i` and exactly 0 for an
    empty state), as :func:`favor._jit.attention.causal_state_update` rescales its state.

    Parameters
    ----------
    *states : tuple of (S, z, c)
        ``S`` of shape (G, width, d_v), ``z`` (G, width), ``c`` float64 (G,).

    Returns
    -------
    tuple of (S, z, c)
        The combined state (new arrays).
    """
    top = np.max(np.stack([c for _, _, c in states]), axis=0)
    total_s = np.zeros_like(states[0][0])
    total_z = np.zeros_like(states[0][1])
    for s, z, c in states:
        with np.errstate(invalid="ignore"):  # -inf - -inf: an empty state, factor 0 below
            factor = np.where(c == -np.inf, 0.0, np.where(c == top, 1.0, np.exp(c - top)))
        factor = factor.astype(s.dtype)
        total_s += factor[:, None, None] * s
        total_z += factor[:, None] * z
    return total_s, total_z, top


def _groups(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape((-1, *x.shape[-2:])))


def _padded(mask: np.ndarray | None, n_groups: int, n_keys: int) -> np.ndarray:
    if mask is None:
        return np.zeros((n_groups, n_keys), dtype=bool)
    return np.ascontiguousarray(mask.reshape(n_groups, n_keys))


def _jit() -> Any:
    import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS Numba's np.dot calls)

    from favor._jit import chunked

    return chunked


def _key_state_task(
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None,
    wt: np.ndarray,
    proj_index: np.ndarray,
    half_factor: float,
    fmap: Any,
    params: np.ndarray,
    width: int,
    chunk: int,
) -> State:
    """State of one key chunk of every group in a leading block."""
    k = _groups(check_float_array("keys", k, min_ndim=2))
    v = _groups(check_float_array("values", v, min_ndim=2))
    n_groups, n_keys = k.shape[:2]
    s, z, c = empty_state(n_groups, width, v.shape[-1], k.dtype)
    _jit().key_states(
        k,
        v,
        wt,
        proj_index,
        _padded(mask, n_groups, n_keys),
        half_factor,
        fmap.jit_rows(),
        params,
        width,
        min(chunk, n_keys),
        s,
        z,
        c,
    )
    return s, z, c


def _query_task(
    q: np.ndarray,
    state: State,
    wt: np.ndarray,
    proj_index: np.ndarray,
    half_factor: float,
    fmap: Any,
    params: np.ndarray,
    width: int,
    chunk: int,
) -> np.ndarray:
    """Bidirectional output of one query chunk from the state of all keys."""
    lead = q.shape[:-1]
    q = _groups(check_float_array("queries", q, min_ndim=2))
    s, z, _ = state
    out = np.empty((*q.shape[:2], s.shape[-1]), dtype=q.dtype)
    _jit().query_outputs(
        q,
        wt,
        proj_index,
        half_factor,
        fmap.jit_rows(),
        params,
        width,
        min(chunk, q.shape[1]),
        s,
        z,
        out,
    )
    return out.reshape((*lead, s.shape[-1]))


def _causal_task(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None,
    carried: State,
    wt: np.ndarray,
    proj_index: np.ndarray,
    half_factor: float,
    fmap: Any,
    params: np.ndarray,
    width: int,
    chunk: int,
) -> np.ndarray:
    """Causal output of one sequence chunk from the state carried in from earlier chunks."""
    lead = q.shape[:-1]
    q = _groups(check_float_array("queries", q, min_ndim=2))
    k = _groups(check_float_array("keys", k, min_ndim=2))
    v = _groups(check_float_array("values", v, min_ndim=2))
    n_groups, n_tokens = q.shape[:2]
    s, z, c = (np.array(a, copy=True) for a in carried)  # advanced in place below
    out = np.empty((n_groups, n_tokens, v.shape[-1]), dtype=q.dtype)
    _jit().causal_attention_from(
        q,
        k,
        v,
        wt,
        proj_index,
        _padded(mask, n_groups, n_tokens),
        half_factor,
        fmap.jit_rows(),
        params,
        width,
        min(chunk, n_tokens),
        s,
        z,
        c,
        out,
    )
    return out.reshape((*lead, v.shape[-1]))


def _as_dask(name: str, x: Any) -> Any:
    import dask.array as da

    torch = sys.modules.get("torch")  # a tensor exists only if torch is imported
    if torch is not None and isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name} must be a Dask or NumPy array when another input is a Dask array, "
            "got a torch tensor"
        )
    arr = da.asarray(x)
    if any(math.isnan(n) for n in arr.shape):
        raise ValueError(
            f"{name} must have known chunk sizes, got shape {arr.shape} "
            "(call compute_chunk_sizes() first)"
        )
    return arr


def _check_float(name: str, x: Any) -> None:
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be a float32 or float64 array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimension(s), got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")


def _nested(blocks: dict[tuple[int, ...], Any], numblocks: tuple[int, ...], prefix=()) -> Any:
    # Nested lists of blocks in the layout dask.array.block expects.
    depth = len(prefix)
    if depth == len(numblocks):
        return blocks[prefix]
    return [_nested(blocks, numblocks, (*prefix, i)) for i in range(numblocks[depth])]


def favor_attention(
    queries: Any,
    keys: Any,
    values: Any,
    *,
    n_components: int | None = None,
    causal: bool = False,
    rng: Any = None,
    key_padding_mask: Any = None,
    projection: Any = None,
    features: str = "positive",
    per_head: bool = False,
    chunk_size: int | None = None,
    feature_params: Any = None,
) -> Any:
    r"""FAVOR+ attention of Dask arrays (see :func:`favor.favor_attention`), returned lazily.

    Parameters are those of :func:`favor.favor_attention`; any of ``queries``, ``keys``,
    ``values`` and ``key_padding_mask`` may be a Dask array, the others NumPy arrays.
    The projection is drawn (or checked) here, on the client, exactly as in memory, so one
    ``rng`` gives the same features on both backends. Maps with parameters fitted to the
    data (``feature_params``, oprf, saderf) are refused with a ValueError. ``chunk_size`` is the
    number of rows per inner step inside a task (as in memory); the tasks themselves
    follow the inputs' chunks.

    Returns
    -------
    dask.array.Array of shape (..., L_q, d_v)
        Chunked like ``queries`` along every axis but the last (one chunk of ``d_v``).
        Finiteness of the inputs is checked when a chunk is computed (the error names
        the input, as in memory).

    Notes
    -----
    Keys and values are rechunked to the queries' leading chunks (and, when causal, to
    their sequence chunks); the mask to the keys' chunks. The number of tasks is about
    ``(leading blocks) x (2 key chunks + query chunks)``; see ``docs/scaling.md`` for
    chunk sizes and memory per task.
    """
    import dask
    import dask.array as da

    from favor.registry import feature_map
    from favor.sampling import resolve_projection

    causal = check_flag("causal", causal)
    per_head = check_flag("per_head", per_head)
    q = _as_dask("queries", queries)
    k = _as_dask("keys", keys)
    v = _as_dask("values", values)
    for name, x in (("queries", q), ("keys", k), ("values", v)):
        _check_float(name, x)
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"queries, keys and values must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}"
        )
    check_attention_shapes(q.shape, k.shape, v.shape, causal=causal)
    fmap = feature_map(features)
    fitted = fmap.params is not None or fmap.attention_prepare() is not None
    if fitted or feature_params is not None:
        raise ValueError(
            f"features={features!r} fits its parameters to the data, which favor_attention "
            "does not do on Dask arrays; compute() the inputs or use a map without fitted "
            "parameters (positive, hyperbolic, trigonometric, relu)"
        )
    chunk = (
        DEFAULT_CHUNK_SIZE[causal]
        if chunk_size is None
        else check_positive_int("chunk_size", chunk_size)
    )
    mask = None
    if key_padding_mask is not None:
        mask = _as_dask("key_padding_mask", key_padding_mask)
        if mask.dtype != np.bool_:
            raise ValueError(
                f"key_padding_mask must be a boolean array (True marks a padded key), got "
                f"dtype {mask.dtype}"
            )
        check_mask_shape(mask.shape, k.shape[:-2], k.shape[-2])
    d = q.shape[-1]
    w = resolve_projection(
        projection,
        n_components,
        d,
        rng=rng,
        n_heads=heads_of(q.shape, per_head),
        features=features,
    )
    scale = d**-0.25
    dtype = q.dtype
    wt = np.ascontiguousarray(np.swapaxes(w * scale, -1, -2), dtype=dtype)
    params = fmap.fit_params(None, w[0] if w.shape[0] == 1 else w)
    width = fmap.width_for_rows(w.shape[1])
    half_factor = 0.5 * scale * scale
    n_lead = q.ndim - 2
    d_v = v.shape[-1]

    q = q.rechunk({n_lead + 1: -1})
    lead_chunks = q.chunks[:n_lead]
    k_seq = q.chunks[n_lead] if causal else k.chunks[n_lead]
    k = k.rechunk((*lead_chunks, k_seq, -1))
    v = v.rechunk((*lead_chunks, k_seq, -1))
    if mask is not None:
        mask = da.broadcast_to(mask, (*k.shape[:-2], k.shape[-2])).rechunk((*lead_chunks, k_seq))

    qb, kb, vb = q.to_delayed(), k.to_delayed(), v.to_delayed()
    mb = None if mask is None else mask.to_delayed()
    wt_task = dask.delayed(wt, pure=True)
    lead_blocks = q.numblocks[:n_lead]
    lead_starts = [np.cumsum((0, *c)) for c in lead_chunks]
    out_blocks: dict[tuple[int, ...], Any] = {}
    key_state = dask.delayed(_key_state_task, pure=True)
    for idx in np.ndindex(*lead_blocks):
        shape = tuple(c[i] for c, i in zip(lead_chunks, idx, strict=True))
        n_groups = math.prod(shape)
        if per_head:
            h0 = lead_starts[-1][idx[-1]]
            heads = np.arange(h0, h0 + shape[-1], dtype=np.int64)
            proj_index = np.ascontiguousarray(np.broadcast_to(heads, shape).reshape(-1))
        else:
            proj_index = np.zeros(n_groups, dtype=np.int64)

        def masked(j: int, idx: tuple[int, ...] = idx) -> Any:
            return None if mb is None else mb[(*idx, j)]

        states = [
            key_state(
                kb[(*idx, j, 0)],
                vb[(*idx, j, 0)],
                masked(j),
                wt_task,
                proj_index,
                half_factor,
                fmap,
                params,
                width,
                chunk,
            )
            for j in range(k.numblocks[n_lead])
        ]
        if causal:
            carried = dask.delayed(empty_state, pure=True)(n_groups, width, d_v, dtype)
            for j, n_rows in enumerate(q.chunks[n_lead]):
                task = dask.delayed(_causal_task, pure=True)(
                    qb[(*idx, j, 0)],
                    kb[(*idx, j, 0)],
                    vb[(*idx, j, 0)],
                    masked(j),
                    carried,
                    wt_task,
                    proj_index,
                    half_factor,
                    fmap,
                    params,
                    width,
                    chunk,
                )
                out_blocks[(*idx, j, 0)] = da.from_delayed(
                    task, shape=(*shape, n_rows, d_v), dtype=dtype
                )
                carried = dask.delayed(combine_states, pure=True)(carried, states[j])
        else:
            while len(states) > 1:
                states = [
                    dask.delayed(combine_states, pure=True)(*states[i : i + SPLIT_EVERY])
                    for i in range(0, len(states), SPLIT_EVERY)
                ]
            total = states[0]
            for j, n_rows in enumerate(q.chunks[n_lead]):
                task = dask.delayed(_query_task, pure=True)(
                    qb[(*idx, j, 0)],
                    total,
                    wt_task,
                    proj_index,
                    half_factor,
                    fmap,
                    params,
                    width,
                    chunk,
                )
                out_blocks[(*idx, j, 0)] = da.from_delayed(
                    task, shape=(*shape, n_rows, d_v), dtype=dtype
                )
    return da.block(_nested(out_blocks, (*lead_blocks, q.numblocks[n_lead], 1)))
