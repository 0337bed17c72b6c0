"""A Dask cluster for the tests: two worker processes on the loopback interface.

One cluster serves the whole session (starting worker processes costs seconds); it is
closed at the end of the session. Every computation in the tests waits on it with a
timeout, so a hung cluster fails the test instead of the CI job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

#: Seconds any single computation on the test cluster may take.
COMPUTE_TIMEOUT = 300


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A ``distributed.Client`` of a 2-process ``LocalCluster`` bound to 127.0.0.1."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # loopback, any free port
            worker_dashboard_address=None,
            timeout="120s",
        ) as cluster,
        distributed.Client(cluster, timeout="120s") as client,
    ):
        yield client


def compute(client: Any, *collections: Any) -> Any:
    """Compute Dask collections on ``client`` with :data:`COMPUTE_TIMEOUT`; NumPy results."""
    futures = client.compute(list(collections))
    out = [f.result(timeout=COMPUTE_TIMEOUT) for f in futures]
    return out[0] if len(collections) == 1 else out
