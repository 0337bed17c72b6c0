"""Which array library an input belongs to, without importing that library.

A tensor of framework X can only exist if X is already imported, so we look in
``sys.modules`` and never import torch ourselves (the einops / array-api-compat idiom).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["is_torch", "namespace_of"]


def is_torch(x: Any) -> bool:
    """Return True if ``x`` is a ``torch.Tensor`` (never imports torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def namespace_of(*arrays: Any) -> str:
    """Return ``"torch"`` if any argument is a torch tensor, else ``"numpy"``.

    Mixing torch tensors and NumPy arrays in one call is an error: it would force a
    silent device or dtype choice.
    """
    kinds = {is_torch(a) for a in arrays if a is not None}
    if kinds == {True, False}:
        raise ValueError(
            "inputs must be all NumPy arrays or all torch tensors, got a mix of both"
        )
    return "torch" if kinds == {True} else "numpy"
