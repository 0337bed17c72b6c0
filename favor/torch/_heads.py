r"""The weights of :class:`favor.torch.FavorAttention` and the per-head projections they make.

The layer keeps :class:`torch.nn.MultiheadAttention`'s parameters exactly (names, shapes,
registration order and initialisation scheme), so state dicts move between the two
unchanged. This module owns them (``layer`` is always a :class:`~favor.torch.FavorAttention`):

* :func:`register_parameters` and :func:`reset_parameters`: the parameters, initialised from
  the layer's own :class:`numpy.random.Generator` (never torch's global one);
* :func:`project` and :func:`merge`: inputs ``(B, L, width)`` to per-head queries, keys and
  values ``(B, H, L, d_h)``, and per-head outputs back through ``out_proj``;
* :func:`with_extra_tokens`: the ``bias_k``/``bias_v`` token and the zero token of
  ``add_bias_kv``/``add_zero_attn``, which every query sees.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

__all__ = ["merge", "project", "register_parameters", "reset_parameters", "with_extra_tokens"]


def register_parameters(
    layer: nn.Module, *, bias: bool, add_bias_kv: bool, factory: dict[str, Any]
) -> None:
    """Register the parameters in ``nn.MultiheadAttention``'s names, shapes and order (uninitialised)."""
    e = layer.embed_dim
    if layer._qkv_same_embed_dim:
        layer.in_proj_weight = nn.Parameter(torch.empty(3 * e, e, **factory))
        layer.register_parameter("q_proj_weight", None)
        layer.register_parameter("k_proj_weight", None)
        layer.register_parameter("v_proj_weight", None)
    else:
        layer.q_proj_weight = nn.Parameter(torch.empty(e, e, **factory))
        layer.k_proj_weight = nn.Parameter(torch.empty(e, layer.kdim, **factory))
        layer.v_proj_weight = nn.Parameter(torch.empty(e, layer.vdim, **factory))
        layer.register_parameter("in_proj_weight", None)
    if bias:
        layer.in_proj_bias = nn.Parameter(torch.empty(3 * e, **factory))
    else:
        layer.register_parameter("in_proj_bias", None)
    # skip_init: no draw from torch's global generator (reset_parameters draws them).
    given = {name: value for name, value in factory.items() if value is not None}
    layer.out_proj = nn.utils.skip_init(NonDynamicallyQuantizableLinear, e, e, bias=bias, **given)
    if add_bias_kv:
        layer.bias_k = nn.Parameter(torch.empty(1, 1, e, **factory))
        layer.bias_v = nn.Parameter(torch.empty(1, 1, e, **factory))
    else:
        layer.bias_k = layer.bias_v = None


def _fill_(tensor: torch.Tensor, values: np.ndarray) -> None:
    with torch.no_grad():
        tensor.copy_(torch.as_tensor(values, dtype=tensor.dtype, device=tensor.device))


def reset_parameters(layer: nn.Module, rng: np.random.Generator) -> None:
    r"""Initialise like ``nn.MultiheadAttention``, drawing from ``rng`` (the layer's generator).

    Xavier-uniform input projections (fan-in ``E``, fan-out ``3E`` for the packed
    weight), zero biases, ``out_proj.weight`` uniform in :math:`\pm 1/\sqrt{E}`
    (``nn.Linear``'s bound, which ``nn.MultiheadAttention`` keeps) and Xavier-normal
    ``bias_k``/``bias_v`` (standard deviation :math:`1/\sqrt{E}` for shape ``(1, 1, E)``).
    """
    if layer._qkv_same_embed_dim:
        weights = [layer.in_proj_weight]
    else:
        weights = [layer.q_proj_weight, layer.k_proj_weight, layer.v_proj_weight]
    for w in weights:
        bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        _fill_(w, rng.uniform(-bound, bound, size=tuple(w.shape)))
    bound = 1.0 / math.sqrt(layer.embed_dim)
    _fill_(layer.out_proj.weight, rng.uniform(-bound, bound, size=(layer.embed_dim,) * 2))
    for b in (layer.bias_k, layer.bias_v):
        if b is not None:
            _fill_(b, rng.normal(0.0, 1.0 / math.sqrt(layer.embed_dim), size=b.shape))
    with torch.no_grad():
        if layer.in_proj_bias is not None:
            layer.in_proj_bias.zero_()
        if layer.out_proj.bias is not None:
            layer.out_proj.bias.zero_()


def _weights(layer: nn.Module) -> tuple[torch.Tensor | None, ...]:
    e = layer.embed_dim
    if layer._qkv_same_embed_dim:
        w_q, w_k, w_v = layer.in_proj_weight.split(e)
    else:
        w_q, w_k, w_v = layer.q_proj_weight, layer.k_proj_weight, layer.v_proj_weight
    if layer.in_proj_bias is None:
        return w_q, w_k, w_v, None, None, None
    b_q, b_k, b_v = layer.in_proj_bias.split(e)
    return w_q, w_k, w_v, b_q, b_k, b_v


def _heads(
    layer: nn.Module, x: torch.Tensor, weight: torch.Tensor, b: torch.Tensor | None
) -> torch.Tensor:
    """``(B, L, width) -> (B, H, L, d_h)``."""
    y = nn.functional.linear(x, weight, b)
    return y.unflatten(-1, (layer.num_heads, layer.head_dim)).transpose(1, 2)


def project(
    layer: nn.Module,
    q_in: torch.Tensor,
    k_in: torch.Tensor,
    v_in: torch.Tensor,
    work: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-head queries, keys and values ``(B, H, L, d_h)`` in the dtype ``work``."""
    w_q, w_k, w_v, b_q, b_k, b_v = _weights(layer)
    q = _heads(layer, q_in, w_q, b_q).to(work)
    k = _heads(layer, k_in, w_k, b_k).to(work)
    v = _heads(layer, v_in, w_v, b_v).to(work)
    return q, k, v


def merge(layer: nn.Module, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per-head outputs ``(B, H, L, d_h)`` concatenated, cast to ``dtype``, through ``out_proj``."""
    y = y.transpose(1, 2).flatten(-2).to(dtype)
    return layer.out_proj(y)


def _extra_tokens(
    layer: nn.Module, batch: int, work: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The ``bias_k``/``bias_v`` token and the zero token, as ``(B, H, n, d_h)`` keys and values."""
    keys, values = [], []
    shape = (1, 1, layer.num_heads, layer.head_dim)
    if layer.bias_k is not None:
        keys.append(layer.bias_k.reshape(shape).transpose(1, 2).to(work))
        values.append(layer.bias_v.reshape(shape).transpose(1, 2).to(work))
    if layer.add_zero_attn:
        zero = torch.zeros(1, layer.num_heads, 1, layer.head_dim, dtype=work, device=device)
        keys.append(zero)
        values.append(zero)
    if not keys:
        return None
    size = (batch, layer.num_heads, len(keys), layer.head_dim)
    return torch.cat(keys, dim=2).expand(size), torch.cat(values, dim=2).expand(size)


def with_extra_tokens(
    layer: nn.Module,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """Append the extra tokens that every query sees; also return how many there are.

    When causal they are prepended instead, with as many dummy queries whose outputs the
    caller drops: a prefix is visible to every query.
    """
    extra = _extra_tokens(layer, q.shape[0], q.dtype, q.device)
    if extra is None:
        return q, k, v, mask, 0
    ek, ev = extra
    n = ek.shape[2]
    kept = None if mask is None else mask.new_zeros(mask.shape[0], n)
    if causal:
        q = torch.cat([q.new_zeros(*q.shape[:2], n, q.shape[-1]), q], dim=2)
        k, v = torch.cat([ek, k], dim=2), torch.cat([ev, v], dim=2)
        mask = None if mask is None else torch.cat([kept, mask], dim=1)
    else:
        k, v = torch.cat([k, ek], dim=2), torch.cat([v, ev], dim=2)
        mask = None if mask is None else torch.cat([mask, kept], dim=1)
    return q, k, v, mask, n
