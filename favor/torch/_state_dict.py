"""What :class:`favor.torch.FavorAttention` saves and loads, and its conversion to and from
:class:`torch.nn.MultiheadAttention`.

A FavorAttention state dict is an ``nn.MultiheadAttention`` state dict plus two entries the
layer owns (:data:`OWN_KEYS`): the ``projection`` buffer and the extra state (the redraw
counter, the generator state and any fixed ``feature_params``), so a reloaded layer
continues the same redraw schedule.
An ``nn.MultiheadAttention`` state dict has neither; it loads strictly and leaves the
layer's own projection and generator as they were. ``layer`` is always a FavorAttention.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from favor.gerf import GerfParameters

__all__ = [
    "OWN_KEYS",
    "extra_state",
    "forget_own_missing_keys",
    "keep_float32_projection",
    "load_extra_state",
    "multihead_arguments",
    "to_multihead",
    "with_requires_grad_of",
]

#: The state dict entries a FavorAttention has and an ``nn.MultiheadAttention`` lacks.
OWN_KEYS = ("projection", "_extra_state")


def extra_state(layer: nn.Module) -> dict[str, Any]:
    """The redraw counter, the generator state and any fixed ``feature_params``."""
    state = {"training_calls": layer.training_calls, "rng": layer._rng.bit_generator.state}
    if layer.feature_params is not None:
        p = layer.feature_params
        state["feature_params"] = {"features": p.features, "a": p.a, "psi": p.psi}
    return state


def load_extra_state(layer: nn.Module, state: dict[str, Any]) -> None:
    """Restore what :func:`extra_state` saved."""
    layer.training_calls = int(state["training_calls"])
    layer._rng.bit_generator.state = state["rng"]
    saved = state.get("feature_params")
    layer.feature_params = None if saved is None else GerfParameters(**saved)


def forget_own_missing_keys(state_dict: dict[str, Any], prefix: str, missing: list[str]) -> None:
    """With an ``nn.MultiheadAttention`` state dict, the layer's own entries are not missing.

    A state dict with neither of :data:`OWN_KEYS` (under ``prefix``) is one of
    ``nn.MultiheadAttention``: they are removed from ``missing`` in place. A FavorAttention
    state dict with only one of the two is still incomplete, so nothing is removed then.
    """
    own = tuple(prefix + key for key in OWN_KEYS)
    if not any(key in state_dict for key in own):
        missing[:] = [key for key in missing if key not in own]


def keep_float32_projection(layer: nn.Module, before: torch.Tensor | None) -> None:
    """After a cast to a half type, put back the projection ``before`` it in float32.

    The random projection keeps at least float32 precision (half inputs are computed in
    float32 anyway); the device of the cast is kept.
    """
    after = layer._buffers["projection"]
    if after is not None and after.dtype in (torch.float16, torch.bfloat16):
        layer._buffers["projection"] = before.to(device=after.device, dtype=torch.float32)


def multihead_arguments(mha: nn.Module) -> tuple[Any, ...]:
    """The positional constructor arguments that rebuild the shape and settings of ``mha``.

    ``mha`` is an ``nn.MultiheadAttention`` or a FavorAttention (the two constructors share
    their positional arguments); device and dtype are those of ``out_proj.weight``.
    """
    weight = mha.out_proj.weight
    return (
        mha.embed_dim,
        mha.num_heads,
        mha.dropout,
        mha.in_proj_bias is not None,
        mha.bias_k is not None,
        mha.add_zero_attn,
        mha.kdim,
        mha.vdim,
        mha.batch_first,
        weight.device,
        weight.dtype,
    )


def with_requires_grad_of(source: nn.Module, target: nn.Module) -> nn.Module:
    """Give ``target``'s parameters the ``requires_grad`` flags of ``source``'s (by name),
    and its training mode; return ``target``."""
    flags = {name: p.requires_grad for name, p in source.named_parameters()}
    for name, p in target.named_parameters():
        p.requires_grad_(flags[name])
    return target.train(source.training)


def to_multihead(layer: nn.Module) -> nn.MultiheadAttention:
    """The ``nn.MultiheadAttention`` with the layer's weights, settings and mode."""
    mha = nn.MultiheadAttention(*multihead_arguments(layer))
    weights = {key: value for key, value in layer.state_dict().items() if key not in OWN_KEYS}
    mha.load_state_dict(weights, strict=True)
    return with_requires_grad_of(layer, mha)
