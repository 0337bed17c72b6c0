"""Parametrisations split between the fast tier and the full suite.

A test over a product of factors (feature map x dtype x chunking x ...) checks one
property in every combination. :func:`covering_product` runs a covering subset in the
fast tier (``pytest -m "not slow"``): every value of every factor appears in at least one
fast case. The other combinations are marked ``slow``: the full suite (CI's ``pytest``)
still runs the whole product, with the same tolerances.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

__all__ = ["covering_product"]


def _ident(value: Any) -> str:
    return getattr(value, "__name__", None) or str(value)


def covering_product(*factors: Sequence[Any]) -> list[Any]:
    """``pytest.param`` for every combination of ``factors``; a covering subset is fast.

    Case ``i`` of the covering subset, for ``i < max(len(f) for f in factors)``, takes value
    ``i mod len(f)`` of each factor ``f``, so every value of every factor is in the fast
    tier; every other combination carries the ``slow`` mark. Ids join the values' names
    (a dtype by its ``__name__``) with ``-``, in the order of ``factors``.
    """
    width = max(len(f) for f in factors)
    fast = {tuple(i % len(f) for f in factors) for i in range(width)}
    params = []
    for index in itertools.product(*(range(len(f)) for f in factors)):
        values = tuple(f[i] for f, i in zip(factors, index, strict=True))
        marks = () if index in fast else (pytest.mark.slow,)
        params.append(pytest.param(*values, marks=marks, id="-".join(_ident(v) for v in values)))
    return params
