"""favor.torch: FAVOR+ attention on PyTorch tensors (optional extra ``favor[torch]``).

The same attention as the NumPy engine (:func:`favor.favor_attention`), on CPU and CUDA,
with autograd, half-precision inputs computed in float32, key padding masks and a causal
path whose memory is linear in the sequence length in both forward and backward; plus
:class:`FavorAttention`, a drop-in multi-head attention ``nn.Module``.

This package is a leaf: nothing in :mod:`favor` imports it except the dispatch module
``favor._dispatch``, on the first torch argument of a dispatched function
(``favor.favor_attention``, ``favor.softmax_attention``).

Public names
------------
favor_attention, softmax_attention
    Functional attention (:mod:`favor.torch.attention`).
FavorAttention, DecodingState
    The multi-head module and its token-by-token decoding state (:mod:`favor.torch.module`).
performerize, restore_softmax
    Swap every attention layer of a model to FAVOR+ and back, keeping the weights
    (:mod:`favor.torch.convert`).
positive_features, hyperbolic_features, trigonometric_features, relu_features, random_features
    Tensor twins of :mod:`favor.features` (:mod:`favor.torch.features`), derived from each
    map's torch split form in :data:`favor.registry.FEATURE_MAPS`.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "favor.torch needs PyTorch; install it with `pip install favor[torch]`"
    ) from exc

from favor.torch.attention import favor_attention, softmax_attention
from favor.torch.convert import performerize, restore_softmax
from favor.torch.features import (
    hyperbolic_features,
    positive_features,
    random_features,
    relu_features,
    trigonometric_features,
)
from favor.torch.module import DecodingState, FavorAttention

__all__ = [
    "DecodingState",
    "FavorAttention",
    "favor_attention",
    "hyperbolic_features",
    "performerize",
    "positive_features",
    "random_features",
    "relu_features",
    "restore_softmax",
    "softmax_attention",
    "trigonometric_features",
]
