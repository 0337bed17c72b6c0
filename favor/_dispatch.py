"""The one dispatch below both backends: which implementation a public call goes to.

Rule (the same for every dispatched function): the call goes to the backend of the first
entry of :data:`BACKENDS` of which *any* argument, positional or keyword (inputs, masks,
projections alike), is an array; otherwise to the NumPy implementation. An array type is
recognised only if its library is already imported (a tensor cannot exist otherwise), so
detection never imports anything: ``import favor`` stays NumPy-only. The backend's
implementation has the NumPy function's name and signature and validates the arguments
itself (the torch functions accept NumPy arrays where host data is natural, such as a
prebuilt projection, and reject them for the inputs with a message naming the argument).

This module is the only one outside ``favor/torch/`` that imports :mod:`favor.torch` (lazily,
on the first tensor). Another backend is one more row of :data:`BACKENDS` and one more
loader (:func:`load_backend`): Dask arrays go to :mod:`favor._dask` (``favor_attention``;
the estimator's ``fit`` and ``transform`` ask :func:`backend_of` and load it here).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["BACKENDS", "backend_of", "dispatch", "load_backend"]

#: (backend name, module that defines the array type, the type's attribute name), in the
#: order they are tried.
BACKENDS: tuple[tuple[str, str, str], ...] = (
    ("torch", "torch", "Tensor"),
    ("dask", "dask.array", "Array"),
)

F = TypeVar("F", bound=Callable[..., Any])


def backend_of(*values: Any) -> str:
    """Return the backend of these argument values: a :data:`BACKENDS` name or ``"numpy"``."""
    for name, module_name, attribute in BACKENDS:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        array_type = getattr(module, attribute)
        if any(isinstance(value, array_type) for value in values):
            return name
    return "numpy"


def load_backend(backend: str) -> ModuleType:
    """Import and return a backend's package (:mod:`favor.torch`, :mod:`favor._dask`).

    The only place outside the backends that imports them; called on the first array of
    that backend, so ``import favor`` never loads one.
    """
    if backend == "torch":
        import favor.torch

        return favor.torch
    if backend == "dask":
        import favor._dask

        return favor._dask
    raise ValueError(f"no backend named {backend!r}")  # pragma: no cover


def _implementation(backend: str, name: str) -> Callable[..., Any]:
    implementation = getattr(load_backend(backend), name, None)
    if implementation is None:
        raise ValueError(
            f"favor.{name} does not take {backend} arrays; pass NumPy arrays"
            + (", e.g. x.compute()" if backend == "dask" else "")
        )
    return implementation


def dispatch(function: F) -> F:
    """Decorate a NumPy public function so that other arrays go to their backend's twin.

    The twin is the function of the same name in the backend's package
    (``favor.torch.<name>``), called with the same arguments.
    """
    name = function.__name__

    @functools.wraps(function)
    def dispatched(*args: Any, **kwargs: Any) -> Any:
        backend = backend_of(*args, *kwargs.values())
        if backend == "numpy":
            return function(*args, **kwargs)
        return _implementation(backend, name)(*args, **kwargs)

    return dispatched  # type: ignore[return-value]
