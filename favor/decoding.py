r"""Incremental (token-by-token) causal FAVOR+ decoding with a constant-size state.

Causal FAVOR+ attention at position :math:`t` only needs the prefix sums
:math:`S_t = \sum_{j \le t} \varphi(k_j) v_j^T` (:math:`m \times d_v`) and
:math:`z_t = \sum_{j \le t} \varphi(k_j)` (formulas §1.3, [A2]):

.. math::
    \hat o_t = \frac{\varphi(q_t)^T S_t}{\varphi(q_t)^T z_t}.

A :class:`DecodingState` carries :math:`(S, z)` (as one array, :math:`z` the last column)
together with a running log-scale
:math:`c_t = \max_{j \le t} r_j` (the key stabiliser of :mod:`favor.attention`):
:math:`S` and :math:`z` are stored multiplied by :math:`e^{-c_t}`, and when a new key
raises :math:`c` the stored sums are rescaled by :math:`e^{c_{old} - c_{new}}`, as the
chunked causal scan does. Each :func:`decode_step` therefore costs :math:`O(m (d + d_v))`
per (batch..., head), independent of :math:`t`, and never overflows; its outputs equal
``favor_attention(..., causal=True)`` with the same projection and feature map (up to
rounding: the sums are accumulated in a different order).

Verified by: ``tests/favor/test_decoding.py`` (decoding equals the causal engine for every
feature map, with padding, per-head projections and float32).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from favor._guards import FavorAccuracyWarning, check_memory, check_norms
from favor._validation import RandomLike, check_float_array, check_positive_int
from favor.gerf import GerfParameters
from favor.registry import feature_map
from favor.sampling import resolve_projection

__all__ = ["DecodingState", "decode_step", "init_decoding_state"]


@dataclass(frozen=True)
class DecodingState:
    r"""The prefix state of causal FAVOR+ attention after ``position`` tokens.

    One class for both backends: :func:`decode_step` carries NumPy arrays in it, and
    :meth:`favor.torch.FavorAttention.decode` tensors (with the projection in the layer's
    buffer, so ``projection`` is None there).

    Attributes
    ----------
    kv : array of shape (\*batch, width, d_v + 1)
        :math:`e^{-c} \sum_{j \le t} \varphi(k_j) (v_j, 1)^T`: the numerator state with the
        normaliser :math:`e^{-c} \sum_{j \le t} \varphi(k_j)` as its last column (width
        ``m``, or ``2m`` for the hyperbolic and trigonometric maps; constant factors of the
        map cancel).
    log_scale : array of shape (\*batch,)
        The running log-scale :math:`c` (the largest key log-scale seen; ``-inf``, or a very
        negative stand-in on torch, while no key has been seen).
    position : int, default=0
        Number of tokens consumed.
    projection : numpy.ndarray of shape (P, m, d), float64, optional
        The unscaled projection(s) of :func:`decode_step` (P = number of heads with
        ``per_head``, else 1).
    features : str, default="positive"
        The feature map name (:data:`favor.registry.FEATURE_MAPS`).
    per_head : bool, default=False
        Whether the last batch axis indexes heads with their own projections.
    feature_params : favor.gerf.GerfParameters, optional
        The fixed parameters of a map fitted per group ("oprf", "saderf").
    """

    # NumPy arrays (decode_step) or torch tensors (FavorAttention.decode): typed Any, as
    # favor.decoding never imports torch.
    kv: Any
    log_scale: Any
    position: int = 0
    projection: np.ndarray | None = None
    features: str = "positive"
    per_head: bool = False
    feature_params: GerfParameters | None = None

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading (batch..., head) axes of every step's inputs."""
        return tuple(self.log_scale.shape)


def init_decoding_state(
    n_features: int,
    n_values: int,
    *,
    batch_shape: tuple[int, ...] = (),
    n_components: int | None = None,
    rng: RandomLike = None,
    projection: str | ArrayLike | None = None,
    features: str = "positive",
    per_head: bool = False,
    dtype: DTypeLike = np.float64,
    feature_params: GerfParameters | None = None,
) -> DecodingState:
    """Return the empty decoding state (no token seen yet).

    Parameters
    ----------
    n_features : int
        Query/key dimension ``d``.
    n_values : int
        Value dimension ``d_v``.
    batch_shape : tuple of int, default=()
        Leading axes of the step inputs, e.g. ``(batch, heads)``.
    n_components, rng, projection, features, per_head
        As in :func:`favor.favor_attention` (same defaults and the same draw, so one seed
        gives the projection the causal engine would use; with ``per_head`` the heads are
        ``batch_shape[-1]``).
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Dtype of the inputs, outputs and accumulated sums.
    feature_params : favor.gerf.GerfParameters, optional
        Required for "oprf" and "saderf" (as for causal :func:`favor.favor_attention`:
        parameters fitted in advance, e.g. on the prompt or on training data, broadcast
        against ``batch_shape``).

    Returns
    -------
    DecodingState
        Zero sums, log-scale ``-inf``, position 0.
    """
    d = check_positive_int("n_features", n_features)
    d_v = check_positive_int("n_values", n_values)
    if not isinstance(batch_shape, tuple) or not all(
        isinstance(n, (int, np.integer)) and n >= 1 for n in batch_shape
    ):
        raise ValueError(f"batch_shape must be a tuple of positive ints, got {batch_shape!r}")
    spec = feature_map(features)
    spec.jit_rows()
    if not isinstance(per_head, bool):
        raise ValueError(f"per_head must be True or False, got {per_head!r}")
    if per_head and not batch_shape:
        raise ValueError("per_head=True needs batch_shape to end with the heads axis, got ()")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    w = resolve_projection(
        projection,
        n_components,
        d,
        rng=rng,
        n_heads=batch_shape[-1] if per_head else None,
        features=features,
    )
    width = spec.width_for_rows(w.shape[1])
    if spec.attention_prepare() is not None:
        from favor.gerf import resolve_parameters

        probe = np.zeros((*batch_shape, 1, d))
        resolve_parameters(features, feature_params, probe, probe, None, True, d**-0.25)
    elif feature_params is not None:
        raise ValueError(
            f"feature_params applies to maps fitted per group (oprf, saderf), not {features!r}"
        )
    check_memory(
        "the decoding state",
        (*batch_shape, width, d_v + 1),
        dtype,
        because=f"n_components={w.shape[1]}",
    )
    return DecodingState(
        kv=np.zeros((*batch_shape, width, d_v + 1), dtype=dtype),
        log_scale=np.full(batch_shape, -np.inf),
        position=0,
        projection=w,
        features=features,
        per_head=per_head,
        feature_params=feature_params,
    )


def _check_step(name: str, x: ArrayLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    arr = check_float_array(name, x, min_ndim=1)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} to match the state, got {arr.shape}")
    if arr.dtype != dtype:
        raise ValueError(f"{name} must have the state's dtype {dtype}, got {arr.dtype}")
    if name != "value":
        check_norms(name, arr, arr.shape[-1] ** -0.25)
    return arr


def _feature_rows(state: DecodingState, x: np.ndarray, keys: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shape rows and log-scales (the map's jit split form) for one token per group."""
    spec = feature_map(state.features)
    d = x.shape[-1]
    scale = d**-0.25
    groups = x.reshape(-1, d)
    prepare = spec.attention_prepare()
    if prepare is not None:
        return _prepared_rows(state, x, keys, prepare)
    w = (state.projection * scale).astype(x.dtype)  # (P, m, d)
    if state.per_head:
        heads = w.shape[0]
        logits = np.einsum("ghd,hmd->ghm", groups.reshape(-1, heads, d), w).reshape(-1, w.shape[1])
    else:
        logits = groups @ w[0].T
    logits = np.ascontiguousarray(logits)
    half_sq = (0.5 * scale * scale * np.einsum("gd,gd->g", groups, groups)).astype(x.dtype)
    width = state.kv.shape[-2]
    rows = np.empty((groups.shape[0], width), dtype=x.dtype)
    log_scale = np.empty(groups.shape[0], dtype=x.dtype)
    work = np.empty(width, dtype=x.dtype), np.empty(width, dtype=x.dtype)
    params = spec.fit_params(None, state.projection[0] if not state.per_head else state.projection)
    spec.jit_rows()(logits, half_sq, params, keys, rows, log_scale, *work)
    return rows, log_scale.astype(np.float64)


def _prepared_rows(
    state: DecodingState, x: np.ndarray, keys: bool, prepare: Callable[..., tuple]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a map fitted per group: its attention hook, then its split form per group."""
    spec = feature_map(state.features)
    d = x.shape[-1]
    scale = d**-0.25
    groups = x.reshape(-1, 1, d)
    n = groups.shape[0]
    if state.per_head:
        index = np.arange(n, dtype=np.int64) % state.projection.shape[0]
    else:
        index = np.zeros(n, dtype=np.int64)
    lead = x.reshape(*state.batch_shape, 1, d)
    w_q, w_k, index, params, norm_weights = prepare(
        state.features, state.feature_params, lead, lead, state.projection, index,
        np.zeros((n, 1), dtype=bool), True, scale,
    )  # fmt: skip
    inputs = groups[:, 0, :]
    w = ((w_k if keys else w_q) * scale).astype(x.dtype)
    logits = np.ascontiguousarray(np.einsum("gd,gmd->gm", inputs, w[index]))
    sq = inputs * inputs if norm_weights.shape[1] == 0 else inputs * inputs * norm_weights
    half_sq = (0.5 * scale * scale * sq.sum(axis=-1)).astype(x.dtype)
    width = state.kv.shape[-2]
    rows = np.empty((n, width), dtype=x.dtype)
    log_scale = np.empty(n, dtype=x.dtype)
    work = np.empty(width, dtype=x.dtype), np.empty(width, dtype=x.dtype)
    split = spec.jit_rows()
    for g in range(n):  # one packed parameter row per group
        split(logits[g : g + 1], half_sq[g : g + 1], params[g], keys, rows[g : g + 1],
              log_scale[g : g + 1], *work)  # fmt: skip
    return rows, log_scale.astype(np.float64)


def decode_step(
    state: DecodingState,
    query: ArrayLike,
    key: ArrayLike,
    value: ArrayLike,
    *,
    key_padding_mask: ArrayLike | None = None,
) -> tuple[np.ndarray, DecodingState]:
    r"""Append one token and return its causal FAVOR+ output and the new state.

    Parameters
    ----------
    state : DecodingState
        The state after the previous tokens (it is not modified).
    query : array of shape (\*batch, d)
        The new token's query.
    key : array of shape (\*batch, d)
        The new token's key.
    value : array of shape (\*batch, d_v)
        The new token's value.
    key_padding_mask : bool array of shape (\*batch,), optional
        True marks the new key as padding: it is not added to the state (the query is
        still answered from the earlier keys).

    Returns
    -------
    output : numpy.ndarray of shape (\*batch, d_v)
        :math:`\varphi(q_t)^T S_t / \varphi(q_t)^T z_t` (zero where no key is visible, and
        where a signed map's estimated normaliser is :math:`\le 0`: the normaliser sign
        rule of :mod:`favor.attention`, warned), equal to row ``t`` of
        ``favor_attention(..., causal=True)``.
    new_state : DecodingState
        The state including this token.

    Examples
    --------
    >>> import numpy as np
    >>> from favor import decode_step, favor_attention, init_decoding_state
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (0.3 * rng.standard_normal((5, 8)) for _ in range(3))
    >>> state = init_decoding_state(8, 8, n_components=16, rng=1)
    >>> rows = []
    >>> for t in range(5):
    ...     out, state = decode_step(state, q[t], k[t], v[t])
    ...     rows.append(out)
    >>> full = favor_attention(q, k, v, causal=True, n_components=16, rng=1)
    >>> bool(np.allclose(np.stack(rows), full, atol=1e-12))
    True
    """
    if not isinstance(state, DecodingState) or not isinstance(state.kv, np.ndarray):
        raise ValueError(
            f"state must be a DecodingState of NumPy arrays (from init_decoding_state), got "
            f"{type(state).__name__}"
        )
    batch = state.batch_shape
    d = state.projection.shape[-1]
    dtype = state.kv.dtype
    q = _check_step("query", query, (*batch, d), dtype)
    k = _check_step("key", key, (*batch, d), dtype)
    v = _check_step("value", value, (*batch, state.kv.shape[-1] - 1), dtype)
    keep = np.ones(batch, dtype=bool)
    if key_padding_mask is not None:
        mask = np.asarray(key_padding_mask)
        if mask.dtype != np.bool_ or mask.shape != batch:
            raise ValueError(
                f"key_padding_mask must be a boolean array of shape {batch}, got "
                f"{mask.dtype} {mask.shape}"
            )
        keep = ~mask
    k_rows, r = _feature_rows(state, k, keys=True)
    q_rows, _ = _feature_rows(state, q, keys=False)
    r = np.where(keep.reshape(-1), r, -np.inf).reshape(batch)
    old = state.log_scale
    new = np.maximum(old, r)
    with np.errstate(invalid="ignore"):
        # exp(-inf - -inf) is NaN: an empty state stays empty, so its factor is irrelevant.
        carry = np.where(old == -np.inf, 0.0, np.exp(old - new)).astype(dtype)
        weight = np.where(r == -np.inf, 0.0, np.exp(r - new)).astype(dtype)
    k_rows = k_rows.reshape((*batch, -1)) * weight[..., None]
    u = np.concatenate([v, np.ones((*batch, 1), dtype=dtype)], axis=-1)  # (v, 1)
    kv = state.kv * carry[..., None, None] + k_rows[..., :, None] * u[..., None, :]
    q_rows = q_rows.reshape((*batch, -1))
    y = np.einsum("...w,...wv->...v", q_rows, kv)
    numer, denom = y[..., :-1], y[..., -1:]
    # The normaliser sign rule of favor.attention: rows with an estimate <= 0 give zeros.
    usable = denom > 0
    out = np.where(usable, numer / np.where(usable, denom, 1), 0).astype(dtype)
    negative = int(np.count_nonzero(denom < 0))
    if negative:
        warnings.warn(
            f"features={state.features!r}: {negative} of {denom.size} rows had an estimated "
            "normaliser <= 0 (signed features; the true one is positive) and were set to "
            "zero (the normaliser sign rule); raise n_components or use a positive map",
            FavorAccuracyWarning,
            stacklevel=2,
        )
    new_state = DecodingState(
        kv=kv,
        log_scale=new,
        position=state.position + 1,
        feature_params=state.feature_params,
        projection=state.projection,
        features=state.features,
        per_head=state.per_head,
    )
    return out, new_state
