"""The undo stack of :mod:`theory.mutations` (one list, whichever module applies a patch).

Kept apart from :mod:`theory.mutations` so that ``python -m theory.mutations`` (which runs
that module as ``__main__``, a second copy) and the catalogue's other modules record their
patches on the same stack, which :func:`theory.mutations.mutated` unwinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ACTIVE", "enter", "patch"]

#: Undo actions of the patches applied so far, in order.
ACTIVE: list[Callable[[], None]] = []


def patch(obj: Any, attr: str, value: Any) -> None:
    """Patch ``obj.attr``, remembering how to undo it."""
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    ACTIVE.append(lambda: setattr(obj, attr, old))


def enter(manager: Any) -> None:
    """Enter a context manager (a registry hook), exiting it on undo."""
    manager.__enter__()
    ACTIVE.append(lambda: manager.__exit__(None, None, None))
