"""One thread policy for every jit region of favor, and the context manager that applies it.

Policy. A jit region (the attention scans, the float64 cosine/sine loop of the
trigonometric map) runs on ``min(N, B, G)`` Numba threads, where ``N`` is Numba's own
setting (``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``), ``B`` the BLAS thread limit in
force when favor is called (so ``threadpoolctl.threadpool_limits`` is the one knob for
both), and ``G`` the number of independent work items (groups of the scan; rows of the
loop). Inside the region BLAS is limited to one thread: the attention scans call BLAS from
every Numba thread on small chunks, and one thread per call is what keeps Numba and BLAS
from oversubscribing the cores. Numba's setting is restored on exit.

Both :func:`favor.favor_attention` and :class:`favor.FavorSampler` use :func:`jit_threads`;
nothing else in favor changes thread counts.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

__all__ = ["jit_thread_count", "jit_threads"]


@functools.lru_cache(maxsize=1)
def _controllers() -> tuple[Any, Any]:
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    return controller, controller.select(user_api="blas")


def jit_thread_count(work_items: int | None = None) -> int:
    """Numba threads a jit region may use now: ``min(N, B, G)`` (module policy), at least 1.

    Parameters
    ----------
    work_items : int, optional
        Number of independent work items ``G`` (None: no cap from the work).

    Returns
    -------
    int
        The thread count.
    """
    import numba

    _, blas = _controllers()
    limits = [lib.num_threads for lib in blas.lib_controllers]
    count = numba.get_num_threads()
    if limits:
        count = min(count, max(limits))
    if work_items is not None:
        count = min(count, work_items)
    return max(1, count)


@contextlib.contextmanager
def jit_threads(work_items: int | None = None) -> Iterator[int]:
    """Run a jit region under the module's thread policy; yields the Numba thread count.

    Parameters
    ----------
    work_items : int, optional
        Number of independent work items (groups or rows) of the region.

    Examples
    --------
    >>> from favor._threads import jit_threads
    >>> with jit_threads(1) as n_threads:
    ...     n_threads
    1
    """
    import numba

    controller, _ = _controllers()
    count = jit_thread_count(work_items)
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        with controller.limit(limits=1, user_api="blas"):
            yield count
    finally:
        numba.set_num_threads(previous)
