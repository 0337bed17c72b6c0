"""One thread policy for every jit region of favor, and the context manager that applies it.

Policy. A jit region (the attention scans, the float64 cosine/sine loop of the
trigonometric map, the SORF transform) runs on ``min(N, B, G)`` threads, where ``N`` is Numba's own
setting (``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``), ``B`` the BLAS thread limit in
force when favor is called (so ``threadpoolctl.threadpool_limits`` is the one knob for
both), and ``G`` the number of independent work items (groups of the scan; rows of the
loop). Inside the region BLAS is limited to one thread: the attention scans call BLAS from
every Numba thread on small chunks, and one thread per call is what keeps Numba and BLAS
from oversubscribing the cores. Numba's setting is restored on exit.

:func:`favor.favor_attention`, :class:`favor.FavorSampler` and
:func:`favor.couplings.sorf_matrix` use :func:`jit_threads`; nothing else in favor changes
thread counts. A region either runs a ``prange`` loop on that many Numba threads, or (the
attention scans, the SORF transform) calls a serial, GIL-releasing compiled function on
that many contiguous ranges of its work items at once (:func:`run_ranges`): those are then
compiled without ``parallel=True``, whose compilation costs several times that of their
serial code.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["jit_thread_count", "jit_threads", "run_ranges"]


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


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="favor")


def run_ranges(function: Callable[[int, int], None], n_items: int, n_threads: int) -> None:
    """Call ``function(start, stop)`` on ``n_threads`` contiguous ranges of ``range(n_items)`` at once.

    Range ``t`` is ``[t n // T, (t + 1) n // T)`` (``n`` items, ``T`` threads; empty ranges
    are skipped). The calling thread runs the first range and ``T - 1`` pooled threads the
    others, so ``function`` must release the GIL (a ``nogil`` compiled function) for the
    ranges to run in parallel, and must write disjoint outputs for disjoint ranges. Returns
    when every range is done; the first exception raised by a range is re-raised then.

    Parameters
    ----------
    function : callable
        ``function(start, stop)`` processes items ``start`` to ``stop - 1``.
    n_items : int
        Number of work items.
    n_threads : int
        Number of ranges run at once (at most ``n_items`` are non-empty).

    Examples
    --------
    >>> from favor._threads import run_ranges
    >>> seen = []
    >>> run_ranges(lambda start, stop: seen.append((start, stop)), 5, 2)
    >>> sorted(seen)
    [(0, 2), (2, 5)]
    """
    n_threads = max(1, min(n_threads, n_items))
    bounds = [n_items * t // n_threads for t in range(n_threads + 1)]
    if n_threads == 1:
        function(0, n_items)
        return
    pool = _pool(n_threads - 1)
    futures = [pool.submit(function, bounds[t], bounds[t + 1]) for t in range(1, n_threads)]
    try:
        function(bounds[0], bounds[1])
    finally:
        for future in futures:
            future.exception()
    for future in futures:
        future.result()
