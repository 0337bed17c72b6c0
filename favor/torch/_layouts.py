"""The input layouts :class:`favor.torch.FavorAttention` accepts, as ``nn.MultiheadAttention``.

Batched inputs are ``(batch, seq, feature)`` with ``batch_first=True``, else
``(seq, batch, feature)``; unbatched inputs are ``(seq, feature)`` either way; nested
tensors (``nn.TransformerEncoder`` builds them in inference) hold ``(L_b, feature)``
sequences. :func:`check_inputs` brings the first two to ``(B, L, width)`` after checking
them; :func:`forward_nested` pads nested inputs, attends with the implied key padding
mask and nests the outputs again. ``layer`` is always a FavorAttention.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from favor.torch._checks import check_float_tensor

__all__ = ["check_inputs", "forward_nested"]


def check_inputs(
    layer: nn.Module, query: Any, key: Any, value: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Check the inputs and return them as ``(B, L, width)`` tensors, and whether batched."""
    q = check_float_tensor("query", query, min_ndim=2)
    k = check_float_tensor("key", key, min_ndim=2)
    v = check_float_tensor("value", value, min_ndim=2)
    if not (q.ndim == k.ndim == v.ndim) or q.ndim not in (2, 3):
        raise ValueError(
            "query, key and value must all be batched (3-D) or all unbatched (2-D: "
            f"(length, feature)), got shapes {tuple(q.shape)}, {tuple(k.shape)} and "
            f"{tuple(v.shape)}"
        )
    batched = q.ndim == 3
    if not batched:
        q, k, v = q[None], k[None], v[None]
    elif not layer.batch_first:
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    if batched:
        layout = "(batch, seq, " if layer.batch_first else "(seq, batch, "
    else:
        layout = "(seq, "
    given = {"query": query, "key": key, "value": value}
    for name, x, width in (
        ("query", q, layer.embed_dim),
        ("key", k, layer.kdim),
        ("value", v, layer.vdim),
    ):
        if x.shape[-1] != width:
            raise ValueError(
                f"{name} must have shape {layout}{width}), got {tuple(given[name].shape)}"
            )
    if k.shape[:2] != v.shape[:2] or q.shape[0] != k.shape[0]:
        raise ValueError(
            "query, key and value must share the batch size, and key and value the "
            f"length, got shapes {tuple(query.shape)}, {tuple(key.shape)} and "
            f"{tuple(value.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"query, key and value must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}"
        )
    if not (q.device == k.device == v.device):
        raise ValueError(
            f"query, key and value must be on one device, got {q.device}, {k.device} and {v.device}"
        )
    return q, k, v, batched


def forward_nested(
    layer: nn.Module,
    query: Any,
    key: Any,
    value: Any,
    key_padding_mask: Any,
    need_weights: bool,
    attn_mask: Any,
    is_causal: bool,
) -> tuple[torch.Tensor, None]:
    """Nested ``(batch, L_b, E)`` inputs: padded, attended with the implied key padding
    mask, and nested again."""
    if not all(isinstance(x, torch.Tensor) and x.is_nested for x in (query, key, value)):
        raise ValueError("query, key and value must all be nested tensors, or none of them")
    if not layer.batch_first:
        raise ValueError("nested tensor inputs need a layer with batch_first=True")
    if key_padding_mask is not None or attn_mask is not None or need_weights:
        raise ValueError(
            "with nested tensor inputs the sequence lengths are the padding: "
            "key_padding_mask and attn_mask must be None and need_weights False"
        )
    q_lengths = [x.shape[0] for x in query.unbind()]
    k_lengths = torch.tensor([x.shape[0] for x in key.unbind()])
    q, k, v = (x.to_padded_tensor(0.0) for x in (query, key, value))
    padded = torch.arange(k.shape[1])[None, :] >= k_lengths[:, None]
    out, _ = layer.forward(
        q, k, v, key_padding_mask=padded.to(k.device), need_weights=False, is_causal=is_causal
    )
    pieces = [out[i, :n] for i, n in enumerate(q_lengths)]
    return torch.nested.as_nested_tensor(pieces, layout=query.layout), None
