"""Guards against silent garbage: memory, overflow, non-finite results, accuracy.

The public functions call these at their boundary, next to the argument checks of
:mod:`favor._validation`:

* :func:`check_memory` -- before a large allocation, compare its size with the memory
  the machine has and refuse with a message naming the size (instead of a late
  ``MemoryError`` after seconds of work, or swapping).
* :func:`check_norms` -- refuse inputs whose scaled squared norms overflow their dtype:
  every feature map and attention works with :math:`\\lVert s x\\rVert^2` (formulas §2.4),
  and an infinite one turns the result into garbage even where the engine's stabilisers
  keep it finite.
* :func:`check_finite_result` -- a result that is not finite although every input was
  raises :class:`FloatingPointError` with the reason (usually: the quantity itself
  overflows the dtype, e.g. ``exp(x.y)`` above about 1.8e308).
* :class:`FavorAccuracyWarning` and :func:`warn_inaccurate` -- the predicted relative error
  of FAVOR+ (formulas §2.4) is above :data:`ACCURACY_WARNING_THRESHOLD`. A normal Python
  warning: shown once per call site by default, silenced with
  ``warnings.filterwarnings("ignore", category=favor.FavorAccuracyWarning)``.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np

__all__ = [
    "ACCURACY_WARNING_THRESHOLD",
    "ALWAYS_AVAILABLE_BYTES",
    "FavorAccuracyWarning",
    "available_memory",
    "check_finite_result",
    "check_memory",
    "check_norms",
    "warn_inaccurate",
]

#: Predicted relative error (median over queries) above which FAVOR+ warns: at 1 the
#: approximation error is as large as the output itself (formulas §2.4).
ACCURACY_WARNING_THRESHOLD = 1.0


class FavorAccuracyWarning(UserWarning):
    """FAVOR+ is predicted to be inaccurate for these inputs (relative error above 1).

    Raised as a warning, never an error: the result is still the unbiased estimate, but
    its noise is larger than the quantity estimated. Scale queries and keys down (their
    norms enter the error exponentially), raise ``n_components``, or use exact attention.
    """


def available_memory() -> int | None:
    """Bytes of memory available for new allocations, or None if unknown.

    Linux: ``MemAvailable`` from ``/proc/meminfo``; elsewhere the physical memory size
    (``os.sysconf``), or None.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return None


def _human(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.3g} PiB"  # pragma: no cover


#: Allocations up to this size are not checked: every machine that runs Python has it, and
#: reading ``/proc/meminfo`` would cost more than the allocation (samplers in tight loops).
ALWAYS_AVAILABLE_BYTES = 16 * 2**20


def check_memory(what: str, shape: tuple[int, ...], dtype: Any, *, because: str = "") -> None:
    """Refuse an allocation of ``shape`` and ``dtype`` larger than the available memory.

    Allocations of at most :data:`ALWAYS_AVAILABLE_BYTES` pass without a look at the
    available memory.

    Parameters
    ----------
    what : str
        What would be allocated, e.g. ``"the feature matrix"``.
    shape : tuple of int
        Its shape.
    dtype : numpy dtype or torch dtype
        Its element type (anything with ``itemsize``, or a NumPy dtype-like).
    because : str, optional
        The argument that sets the size, e.g. ``"n_components=100000000"``.

    Raises
    ------
    MemoryError
        If the allocation needs more bytes than :func:`available_memory` reports, with
        the shape and size in the message.
    """
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:  # a torch dtype
        itemsize = dtype.itemsize
    n_bytes = math.prod(int(s) for s in shape) * int(itemsize)
    if n_bytes <= ALWAYS_AVAILABLE_BYTES:
        return
    limit = available_memory()
    if limit is None or n_bytes <= limit:
        return
    reason = f" ({because})" if because else ""
    raise MemoryError(
        f"{what} would need {_human(n_bytes)} (shape {tuple(int(s) for s in shape)}){reason}, "
        f"more than the {_human(limit)} of memory available; reduce the size"
    )


def check_norms(
    name: str, x: np.ndarray, scale: float = 1.0, sq_bound: float | None = None
) -> None:
    r"""Refuse inputs whose squared norms (times ``scale**2``) overflow their dtype.

    With :math:`a = \max |x_{ij}|`, every :math:`\lVert \text{scale}\, x\rVert^2 \le
    d\,(\text{scale}\cdot a)^2`; when that bound (or the caller's ``sq_bound``) is far
    below the dtype's largest value, no norm is formed. Otherwise the squared norms are
    computed and checked.

    Parameters
    ----------
    name : str
        The argument name for the message.
    x : numpy.ndarray of shape (..., d)
        Finite inputs (float32 or float64).
    scale : float, default=1.0
        The factor applied to ``x`` before the feature map (:math:`s = d^{-1/4}` in
        attention, :math:`\sqrt{2\gamma}` for kernels).
    sq_bound : float, optional
        An upper bound on every :math:`\lVert x\rVert^2` when the caller has one
        (:func:`favor._validation.finite_sq_bound`); used instead of the max-entry bound.

    Raises
    ------
    ValueError
        If some :math:`\lVert \text{scale}\, x\rVert^2` is not finite in ``x``'s dtype.
    """
    if x.size == 0:
        return
    limit = float(np.finfo(x.dtype).max) / 16
    if sq_bound is not None and sq_bound * scale * scale < limit:
        return
    largest = max(abs(float(x.max())), abs(float(x.min())))
    if scale * largest < math.sqrt(limit / x.shape[-1]):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        sq = np.einsum("...i,...i->...", x, x) * x.dtype.type(scale * scale)
    if not np.isfinite(sq).all():
        raise ValueError(
            f"{name}: values too large, their squared norms overflow {x.dtype} (largest "
            f"entry {largest:.3g}); rescale them (FAVOR+ is accurate only for norms of "
            "order d**0.25 or less)"
        )


def check_finite_result(function: str, result: Any, reason: str) -> None:
    """Raise if ``result`` (computed from finite inputs) has a NaN or an infinity.

    Parameters
    ----------
    function : str
        The public function, for the message.
    result : numpy.ndarray
        What it computed.
    reason : str
        The likely cause, e.g. ``"exp(gamma x.y) overflows float64 above x.y = 709.8"``.

    Raises
    ------
    FloatingPointError
        If the result is not finite.
    """
    if not np.isfinite(result).all():
        raise FloatingPointError(
            f"{function} produced non-finite values from finite inputs: {reason}"
        )


def warn_inaccurate(predicted: float, *, n_components: int, stacklevel: int = 3) -> None:
    """Warn with :class:`FavorAccuracyWarning` if ``predicted`` exceeds the threshold.

    Parameters
    ----------
    predicted : float
        Predicted relative error (median over queries; may be inf).
    n_components : int
        The number of random features it was predicted for (for the message).
    stacklevel : int, default=3
        Passed to :func:`warnings.warn` so the warning points at the caller's line.
    """
    if not predicted > ACCURACY_WARNING_THRESHOLD:  # NaN: no visible key, nothing to say
        return
    warnings.warn(
        f"FAVOR+ is predicted to be inaccurate for these inputs: relative error about "
        f"{predicted:.3g} with n_components={n_components} (above "
        f"{ACCURACY_WARNING_THRESHOLD:g}, the size of the output itself). Queries and keys "
        "are too large: scale them down, or use more components or exact attention",
        FavorAccuracyWarning,
        stacklevel=stacklevel,
    )
