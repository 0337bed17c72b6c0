"""favor: random-feature kernel approximation and FAVOR+ linear attention.

``import favor`` loads NumPy only; SciPy, Numba, scikit-learn and PyTorch load on first
use of the part that needs them.

Public names
------------
softmax_attention, softmax_kernel, rbf_kernel, arccos_kernel
    Exact references (:mod:`favor.exact`).
favor_attention, estimate_attention_error
    FAVOR+ linear attention and its predicted error (:mod:`favor.attention`).
FavorAccuracyWarning
    Warned when FAVOR+ is predicted to be noise for the inputs (:mod:`favor._guards`).
DecodingState, init_decoding_state, decode_step
    Token-by-token causal FAVOR+ with an O(m d_v) state (:mod:`favor.decoding`).
FavorSampler
    The scikit-learn transformer (:mod:`favor.estimators`, loaded lazily).
random_features
    Any registered feature map by name (:mod:`favor.features`).
registry, sampling, features
    The read-only registry of feature maps, samplers and kernels; random projections;
    feature maps.
"""

from __future__ import annotations

from typing import Any

from favor import features, registry, sampling
from favor._guards import FavorAccuracyWarning
from favor.attention import estimate_attention_error, favor_attention
from favor.decoding import DecodingState, decode_step, init_decoding_state
from favor.exact import arccos_kernel, rbf_kernel, softmax_attention, softmax_kernel
from favor.features import random_features

__version__ = "0.1.0"

__all__ = [
    "DecodingState",
    "FavorAccuracyWarning",
    "FavorSampler",
    "__version__",
    "arccos_kernel",
    "decode_step",
    "estimate_attention_error",
    "favor_attention",
    "features",
    "init_decoding_state",
    "random_features",
    "rbf_kernel",
    "registry",
    "sampling",
    "softmax_attention",
    "softmax_kernel",
]


def __getattr__(name: str) -> Any:
    # Lazy leaves: scikit-learn is imported only when FavorSampler is first used.
    if name == "FavorSampler":
        from favor.estimators import FavorSampler

        return FavorSampler
    raise AttributeError(f"module 'favor' has no attribute {name!r}")
