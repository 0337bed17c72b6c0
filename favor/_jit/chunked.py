r"""Jit entry points of the Dask backend: FAVOR+ attention of one chunk of a sequence.

Distributed attention (:mod:`favor._dask.attention`) cuts the engine's scans at chunk
boundaries, using the linearity of FAVOR+ (formulas §1.3): the key sums of two chunks add,
once both are brought to a common log-scale. A *state* is the triple ``(S, z, c)`` of
:func:`favor._jit.attention.causal_state_update`: :math:`S = \sum_j e^{r_j - c} e_j v_j^T`,
:math:`z = \sum_j e^{r_j - c} e_j` over a set of keys, with :math:`c` the largest key
log-scale (``-inf`` when empty).

* :func:`key_states`: the state of each group's keys (the key pass of the bidirectional
  scan, :func:`favor._jit.attention.key_state`);
* :func:`query_outputs`: :math:`(e_i^T S) / (e_i^T z)` for each group's queries (the query
  pass, :func:`favor._jit.attention.query_output`);
* :func:`causal_attention_from`: the causal scan of each group started from the state
  carried in from earlier chunks (:func:`favor._jit.attention.causal_scan`).

They are the engine's own per-group functions, looped over the groups of a block: the
feature maps, stabilisers and zero-normaliser rule are the engine's. The loops over groups
are serial on purpose: each call is one Dask task, Dask runs one task per worker thread,
and the functions release the GIL, so tasks in threads run in parallel without a nested
Numba thread pool.

Preconditions (checked by the callers, never here): C-contiguous float32 or float64
arrays of one dtype (states in the inputs' dtype, log-scales float64), finite inputs,
``rows``/``params``/``width`` of one registered feature map, ``chunk >= 1``. The slow,
obviously correct twins are in ``tests/favor/test_dask_attention.py``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from favor._jit.attention import causal_scan, key_state, query_output
from favor._jit.feature_rows import rows_type

__all__ = ["causal_attention_from", "key_states", "query_outputs"]

_OPTIONS = {"cache": True, "nogil": True}


def _ro(dtype: types.Type, ndim: int) -> types.Type:
    # Inputs are typed read-only: writable arrays convert to it (Dask blocks may be views).
    return types.Array(dtype, ndim, "C", readonly=True)


def _signatures(kind: str) -> list[types.Type]:
    out = []
    for dtype in (types.float32, types.float64):
        tensor, ints, mask = _ro(dtype, 3), _ro(types.int64, 1), _ro(types.boolean, 2)
        feature = (types.float64, rows_type(dtype), _ro(types.float64, 1), types.int64, types.int64)
        state = (dtype[:, :, ::1], dtype[:, ::1])
        if kind == "keys":
            args = (tensor, tensor, tensor, ints, mask, *feature, *state, types.float64[::1])
        elif kind == "queries":
            args = (tensor, tensor, ints, *feature, *state, dtype[:, :, ::1])
        else:
            args = (
                tensor,
                tensor,
                tensor,
                tensor,
                ints,
                mask,
                *feature,
                *state,
                types.float64[::1],
                dtype[:, :, ::1],
            )
        out.append(types.void(*args))
    return out


@numba.njit(_signatures("keys"), **_OPTIONS)
def key_states(
    k,
    v,
    wt,
    proj_index,
    padded,
    half_factor,
    rows,
    params,
    width,
    chunk,
    state,
    normaliser,
    log_scale,
):
    r"""The state ``(S, z, c)`` of each group's keys, one group after another.

    Parameters
    ----------
    k : array of shape (G, L, d)
    v : array of shape (G, L, d_v)
    wt : array of shape (P, d, m)
        Scaled, transposed projections.
    proj_index : int64 array of shape (G,)
    padded : bool array of shape (G, L)
        True marks a padded key (it contributes nothing).
    half_factor, rows, params, width, chunk
        As in :func:`favor._jit.attention.bidirectional_attention`.
    state : array of shape (G, width, d_v)
        Output :math:`S` (zeros on entry).
    normaliser : array of shape (G, width)
        Output :math:`z` (zeros on entry).
    log_scale : float64 array of shape (G,)
        Output :math:`c` (``-inf`` for a group whose keys are all padded).
    """
    for g in range(k.shape[0]):
        log_scale[g] = key_state(
            k[g],
            v[g],
            wt[proj_index[g]],
            padded[g],
            half_factor,
            np.empty(0),  # plain key norms (maps fitted per group are refused here)
            rows,
            params,
            width,
            chunk,
            state[g],
            normaliser[g],
        )


@numba.njit(_signatures("queries"), **_OPTIONS)
def query_outputs(
    q, wt, proj_index, half_factor, rows, params, width, chunk, state, normaliser, out
):
    r"""Write :math:`(e_i^T S) / (e_i^T z)` for each group's queries (0 where the normaliser is 0).

    Parameters
    ----------
    q : array of shape (G, L_q, d)
    wt, proj_index, half_factor, rows, params, width, chunk
        As in :func:`key_states`.
    state : array of shape (G, width, d_v)
    normaliser : array of shape (G, width)
    out : array of shape (G, L_q, d_v)
        Output, written in place.
    """
    for g in range(q.shape[0]):
        query_output(
            q[g],
            wt[proj_index[g]],
            half_factor,
            rows,
            params,
            width,
            chunk,
            state[g],
            normaliser[g],
            out[g],
        )


@numba.njit(_signatures("causal"), **_OPTIONS)
def causal_attention_from(
    q,
    k,
    v,
    wt,
    proj_index,
    padded,
    half_factor,
    rows,
    params,
    width,
    chunk,
    state,
    normaliser,
    log_scale,
    out,
):
    r"""Causal FAVOR+ attention of a sequence chunk given the state carried in from before.

    :func:`favor._jit.attention.causal_scan` of each group from ``(state, normaliser,
    log_scale)``, the state of all earlier positions; output :math:`t` uses that state and
    positions :math:`\le t` of the chunk only. The state is advanced in place to include
    the chunk's keys.

    Parameters
    ----------
    q, k : arrays of shape (G, L, d)
    v : array of shape (G, L, d_v)
    wt, proj_index, padded, half_factor, rows, params, width, chunk
        As in :func:`key_states`.
    state : array of shape (G, width, d_v)
    normaliser : array of shape (G, width)
    log_scale : float64 array of shape (G,)
        The carried state (``-inf``: empty), advanced in place.
    out : array of shape (G, L, d_v)
        Output, written in place.
    """
    for g in range(q.shape[0]):
        log_scale[g] = causal_scan(
            q[g],
            k[g],
            v[g],
            wt[proj_index[g]],
            wt[proj_index[g]],
            padded[g],
            half_factor,
            np.empty(0),
            rows,
            params,
            width,
            chunk,
            state[g],
            normaliser[g],
            log_scale[g],
            out[g],
        )
