"""favor: random-feature kernel approximation and FAVOR+ linear attention.

``import favor`` loads NumPy only; SciPy, Numba, scikit-learn and PyTorch load on first
use of the part that needs them.

Public names
------------
softmax_attention, softmax_kernel, gaussian_kernel, arccos_kernel
    Exact references (:mod:`favor.exact`).
favor_attention, estimate_attention_error
    FAVOR+ linear attention and its predicted error (:mod:`favor.attention`).
DecodingState, init_decoding_state, decode_step
    Token-by-token causal FAVOR+ with an O(m d_v) state (:mod:`favor.decoding`).
FavorSampler
    The scikit-learn transformer (:mod:`favor.estimators`, loaded lazily).
sampling, features
    Random projections and feature maps.
"""

from __future__ import annotations

from typing import Any

from favor import features, sampling
from favor.attention import estimate_attention_error, favor_attention
from favor.decoding import DecodingState, decode_step, init_decoding_state
from favor.exact import arccos_kernel, gaussian_kernel, softmax_attention, softmax_kernel
from favor.features import (
    FEATURE_MAPS,
    hyperbolic_features,
    positive_features,
    random_features,
    relu_features,
    trigonometric_features,
)
from favor.sampling import SAMPLERS, iid_projection, orthogonal_projection

__version__ = "0.1.0"

__all__ = [
    "FEATURE_MAPS",
    "SAMPLERS",
    "DecodingState",
    "FavorSampler",
    "__version__",
    "arccos_kernel",
    "decode_step",
    "estimate_attention_error",
    "favor_attention",
    "features",
    "gaussian_kernel",
    "hyperbolic_features",
    "iid_projection",
    "init_decoding_state",
    "orthogonal_projection",
    "positive_features",
    "random_features",
    "relu_features",
    "sampling",
    "softmax_attention",
    "softmax_kernel",
    "trigonometric_features",
]


def __getattr__(name: str) -> Any:
    # Lazy leaves: scikit-learn is imported only when FavorSampler is first used.
    if name == "FavorSampler":
        from favor.estimators import FavorSampler

        return FavorSampler
    raise AttributeError(f"module 'favor' has no attribute {name!r}")
