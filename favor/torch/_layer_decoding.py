r"""Token-by-token decoding of a causal :class:`favor.torch.FavorAttention`.

Instead of a key/value cache, the layer carries per (sequence, head) the prefix state of
causal FAVOR+ (formulas §1.3, [A2]): :math:`e^{-c}\sum_{j \le t}\varphi(k_j)(v_j, 1)^T`, of
shape ``(m', d_h + 1)`` (``m'`` the feature width), and the running key log-scale
:math:`c`, in one :class:`favor.decoding.DecodingState` (tensors here; the projection
stays in the layer's buffer). Each call continues the chunked causal scan of
:func:`favor.torch._causal.causal_linear_attention` from that state, so feeding a sequence
in pieces gives the outputs of the causal forward pass on the whole sequence, up to
rounding. ``layer`` is always a FavorAttention.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from favor._validation import check_positive_int
from favor.decoding import DecodingState
from favor.registry import FEATURE_MAPS
from favor.torch._causal import FLOOR, causal_linear_attention, default_chunk_size
from favor.torch._checks import check_float_tensor, compute_dtype
from favor.torch._heads import merge, project, with_extra_tokens
from favor.torch._masks import padding_mask
from favor.torch.attention import normalise
from favor.torch.features import key_features, map_params, query_features

__all__ = ["decode", "init_state"]


def init_state(layer: nn.Module, batch_size: int, device: Any = None) -> DecodingState:
    """An empty state for ``batch_size`` sequences: zero sums, log-scale FLOOR, position 0."""
    batch_size = check_positive_int("batch_size", batch_size)
    work = compute_dtype(layer.out_proj.weight.dtype)
    device = layer.projection.device if device is None else device
    width = FEATURE_MAPS[layer.features].width(layer.n_components)
    kv = torch.zeros(
        batch_size, layer.num_heads, width, layer.head_dim + 1, dtype=work, device=device
    )
    scale = torch.full((batch_size, layer.num_heads), FLOOR, dtype=work, device=device)
    return DecodingState(kv, scale, 0)


def decode(
    layer: nn.Module,
    query: torch.Tensor,
    state: DecodingState | None,
    key_padding_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, DecodingState]:
    """The outputs for the tokens ``query`` after ``state``, and the state after them."""
    if not layer.causal:
        raise ValueError("decode needs a causal layer (construct it with causal=True)")
    x = check_float_tensor("query", query, min_ndim=3)
    if x.ndim != 3 or x.shape[-1] != layer.embed_dim:
        layout = "(batch, seq, " if layer.batch_first else "(seq, batch, "
        raise ValueError(f"query must have shape {layout}{layer.embed_dim}), got {tuple(x.shape)}")
    x = x if layer.batch_first else x.transpose(0, 1)
    batch, length = x.shape[:2]
    if state is None:
        state = init_state(layer, batch, device=x.device)
    if not isinstance(state, DecodingState) or state.kv.shape[:2] != (batch, layer.num_heads):
        raise ValueError(
            f"state must be a DecodingState for batch size {batch} and "
            f"{layer.num_heads} heads, got {state!r:.80}"
        )
    mask = padding_mask(key_padding_mask, batch, length, x.device)
    work = state.kv.dtype
    q, k, v = project(layer, x, x, x, work)
    n_extra = 0
    if state.position == 0:
        q, k, v, mask, n_extra = with_extra_tokens(layer, q, k, v, mask, causal=True)
    w = layer.projection.to(work)
    scale = layer.head_dim**-0.25
    mask_h = None if mask is None else mask[:, None, :]
    features = layer.features
    if FEATURE_MAPS[features].prepare is not None:
        # Fixed parameters: augmented inputs and projection, then the positive map.
        from favor.torch.gerf import prepare

        q, k, w = prepare(q, k, w, mask_h, features, True, layer._fixed_params(True), scale)
        features = "positive"
    params = map_params(FEATURE_MAPS[features], None, w, q)
    qf = query_features(features, q, w, scale, params=params)
    kf, log_scale = key_features(features, k, w, mask_h, scale, params)
    u = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    rows, steps = batch * layer.num_heads, q.shape[2]
    y, (kv, top) = causal_linear_attention(
        qf.reshape(rows, steps, -1),
        kf.reshape(rows, steps, -1),
        log_scale.expand(batch, layer.num_heads, steps).reshape(rows, steps),
        u.reshape(rows, steps, -1),
        chunk=layer.chunk_size or default_chunk_size(x.device),
        initial=(state.kv.reshape(rows, *state.kv.shape[2:]), state.log_scale.reshape(rows)),
        return_state=True,
    )
    y = y.reshape(batch, layer.num_heads, steps, -1)[..., n_extra:, :]
    out = merge(layer, normalise(y[..., :-1], y[..., -1:], features), x.dtype)
    new_state = DecodingState(
        kv.reshape(state.kv.shape),
        top.reshape(batch, layer.num_heads),
        state.position + length,
    )
    return (out if layer.batch_first else out.transpose(0, 1)), new_state
