"""Dask backends of favor: Dask arrays in, lazy Dask arrays out (the optional extra ``favor[dask]``).

:mod:`favor._dispatch` sends a call here when one of its array arguments is a
``dask.array.Array`` (recognised without importing Dask):

* :func:`favor_attention` (:mod:`favor._dask.attention`): map over key chunks, tree
  reduction of exact log-scale states, map over query chunks; causal: a scan of carried
  chunk states;
* :class:`favor.FavorSampler` ``fit`` and ``transform`` (:mod:`favor._dask.estimators`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimators", "favor_attention"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: importing this package does not import Dask.
    if name == "favor_attention":
        from favor._dask.attention import favor_attention

        return favor_attention
    if name == "estimators":
        import favor._dask.estimators

        return favor._dask.estimators
    raise AttributeError(f"module 'favor._dask' has no attribute {name!r}")
