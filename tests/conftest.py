"""Shared fixtures: seeded, read-only data."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.dask_support import dask_client  # noqa: F401  (the session's Dask cluster)

_SEEDS = list(range(20)) if os.environ.get("FAVOR_TEST_SEED") == "all" else [
    int(os.environ.get("FAVOR_TEST_SEED", "0"))
]


@pytest.fixture(params=_SEEDS)
def seed(request: pytest.FixtureRequest) -> int:
    """The test seed (``FAVOR_TEST_SEED``; ``all`` sweeps 0-19)."""
    return request.param


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    """A fresh Generator seeded by :func:`seed`."""
    return np.random.default_rng(seed)


def readonly(a: np.ndarray) -> np.ndarray:
    """Return ``a`` marked read-only, so no code under test may write to its inputs."""
    a.flags.writeable = False
    return a


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Test tiers: every ``statistical`` test is also ``slow``.

    ``pytest -m "not slow"`` is the fast tier (exact identities, contracts, validation,
    a covering subset of each parametrised product, see ``tests/tiers.py``); the full
    suite, with the seeded Monte Carlo tests, the whole products and the docs build, runs
    in CI. The tiers are described in ``docs/design.md`` ("Tests").
    """
    for item in items:
        if item.get_closest_marker("statistical") is not None:
            item.add_marker(pytest.mark.slow)
