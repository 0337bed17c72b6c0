"""Run the claim checks on a Dask cluster, with the serial results.

``python -m theory --workers N`` starts a local cluster of ``N`` worker processes on the
loopback interface; ``--scheduler ADDRESS`` connects to a running one (whose workers must
have the same versions of favor, NumPy and SciPy installed). Inside :func:`distributed`,
:func:`theory.report.run_all` sends every claim to the cluster as one task (the claims
are independent; the client collects them in order and prints progress as they arrive),
and a :func:`theory.montecarlo.run_blocks` call made on the client itself (a single claim,
or a caller's own Monte Carlo) sends its blocks of trials as independent tasks. On a
worker, a claim's blocks run one after another.

Identical results. Block ``b`` of a run draws from the ``b``-th child of
``SeedSequence(root).spawn(n_blocks)`` wherever it runs, and the blocks are put back in
block order before any statistic is formed, so every trial, statistic, interval and
verdict equals the serial run's for the same root seed: trials are keyed by their spawned
seed, never by which worker ran them or when it finished (``tests/theory/test_dask.py``
compares every claim's fields for equality).

What a task ships: the block's work function with what it closes over (the check's
points, projections' sizes, the feature map and sampler, by reference to favor's
functions) and a ``SeedSequence``; it returns the block's trials (``n_trials_block x
k`` numbers). Workers run one task per thread; use ``threads_per_worker=1`` and one
worker process per core (the local cluster does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from theory import montecarlo

__all__ = ["distributed", "local_cluster"]

#: Seconds to wait for a cluster to start or a scheduler to answer.
CONNECT_TIMEOUT = 60


def _run_block(
    work: Callable[[np.random.Generator, int], np.ndarray],
    child: np.random.SeedSequence,
    n: int,
) -> np.ndarray:
    # One block of trials, exactly as the serial loop of run_blocks runs it.
    return work(np.random.default_rng(child), n)


def _mapper(client: Any) -> montecarlo.BlockMap:
    def map_blocks(
        work: Callable[[np.random.Generator, int], np.ndarray],
        children: Sequence[np.random.SeedSequence],
        sizes: Sequence[int],
    ) -> list[np.ndarray]:
        if len(sizes) == 1:  # nothing to spread: skip the round trip
            return [_run_block(work, children[0], sizes[0])]
        remote_work = client.scatter(work, broadcast=False, hash=False)
        futures = client.map(
            _run_block,
            [remote_work] * len(sizes),
            children,
            sizes,
            pure=False,
        )
        return client.gather(futures)  # in block order, whatever order they finished in

    return map_blocks


def _timed_claim(spec: Any, profile: str) -> tuple[Any, float]:
    # One whole claim on a worker: its run_blocks calls run serially there.
    import time

    from theory.registry import run_claim

    start = time.perf_counter()
    result = run_claim(spec, profile=profile)
    return result, time.perf_counter() - start


def _claims_runner(client: Any) -> Any:
    def run(specs: Sequence[Any], profile: str) -> Iterator[tuple[Any, float]]:
        # Submitted in order (earlier claims first), collected in order.
        futures = [
            client.submit(_timed_claim, spec, profile, pure=False, priority=-i)
            for i, spec in enumerate(specs)
        ]
        try:
            for future in futures:
                yield future.result()
        finally:
            client.cancel(futures)

    return run


@contextmanager
def _on(client: Any) -> Iterator[Any]:
    from theory.report import claim_runner

    with montecarlo.block_map(_mapper(client)), claim_runner(_claims_runner(client)):
        yield client


@contextmanager
def local_cluster(n_workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` of ``n_workers`` single-threaded processes on 127.0.0.1.

    Parameters
    ----------
    n_workers : int
        Worker processes (one per core is the useful maximum).

    Yields
    ------
    distributed.Client
        Closed, with its cluster, on exit.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # loopback, any free port
            worker_dashboard_address=None,
            timeout=f"{CONNECT_TIMEOUT}s",
        ) as cluster,
        Client(cluster, timeout=f"{CONNECT_TIMEOUT}s") as client,
    ):
        yield client


@contextmanager
def distributed(
    *, workers: int | None = None, scheduler: str | None = None, client: Any = None
) -> Iterator[Any]:
    """Send every Monte Carlo block to a Dask cluster while the context is active.

    Exactly one of ``workers`` (start a local cluster), ``scheduler`` (connect to a
    running one) and ``client`` (use a connected ``distributed.Client``) may be given;
    with none, nothing changes and ``None`` is yielded.

    Parameters
    ----------
    workers : int, optional
        Number of local worker processes.
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
    client : distributed.Client, optional
        An existing client (left open on exit).

    Yields
    ------
    distributed.Client or None
        The client in use.

    Raises
    ------
    ValueError
        If more than one of the three is given, or ``workers`` is not a positive int.
    """
    options = (("workers", workers), ("scheduler", scheduler), ("client", client))
    given = [name for name, value in options if value is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of workers, scheduler and client, got {given}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not given:
        yield None
        return
    if client is not None:
        with _on(client):
            yield client
        return
    if workers is not None:
        with local_cluster(workers) as local, _on(local):
            yield local
        return
    from distributed import Client

    with Client(scheduler, timeout=f"{CONNECT_TIMEOUT}s") as remote, _on(remote):
        yield remote
