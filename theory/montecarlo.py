r"""Seeded, vectorised Monte Carlo over random projections, through favor's public API.

Seeding. A run is identified by one root seed. Trials are processed in blocks; block
``b`` draws from ``Generator(PCG64(SeedSequence(root).spawn(n_blocks)[b]))``, so every
block has an independent, reproducible stream, the result depends only on
``(root, n_trials, block_size)``, and results record the root.

Vectorisation. One trial needs a projection :math:`W \in \mathbb R^{m \times d}` and the
estimate :math:`\varphi(x; W)^T\varphi(y; W)`. A block of ``B`` trials draws all ``B``
projections with one sampler call of ``B * ceil(m/d) * d`` rows (every favor sampler
draws independent blocks of ``d`` rows, so the first ``m`` rows of each group of
``ceil(m/d) * d`` rows have exactly the law of ``sampler(m, d)``), evaluates the feature
map once on the stacked ``(B m, d)`` projection, and regroups the columns. For maps of
the Performers Eq. 5 form, :math:`\varphi(x) = h(x) (Bm)^{-1/2} (f_l(\omega_i^T x))_{l, i}`,
so trial ``b``'s estimate is ``B`` times the partial dot product over its own columns.

Injection. Samplers are callables ``sampler(n_components, n_features, *, rng)`` and
feature maps callables ``feature_map(x, projection, kernel)``; the checks default to
favor's public registries looked up at call time (so monkeypatching
``favor.registry.SAMPLERS`` affects them) and accept broken variants for negative
controls (:mod:`theory.controls`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from theory.results import MonteCarloSummary

__all__ = [
    "block_map",
    "draw_projections",
    "gram_estimates",
    "kernel_estimates",
    "measure_throughput",
    "resolve_feature_map",
    "resolve_sampler",
    "run_blocks",
    "summarize",
]

Sampler = Callable[..., np.ndarray]
FeatureMapFn = Callable[[np.ndarray, np.ndarray, str], np.ndarray]
BlockMap = Callable[
    [
        Callable[[np.random.Generator, int], np.ndarray],
        Sequence[np.random.SeedSequence],
        Sequence[int],
    ],
    list[np.ndarray],
]
_BLOCK_MAP: BlockMap | None = None


def resolve_sampler(sampler: str | Sampler) -> Sampler:
    """Return a sampler callable; a name is looked up in ``favor.registry.SAMPLERS`` now.

    Parameters
    ----------
    sampler : str or callable
        ``"iid"``, ``"orthogonal"``, ``"orthogonal-fixed"`` (``norms="fixed"``) or a
        callable ``sampler(n_components, n_features, *, rng)``.

    Returns
    -------
    callable
        The sampler.
    """
    import favor.sampling

    if callable(sampler):
        return sampler
    if sampler == "orthogonal-fixed":

        def fixed(n_components: int, n_features: int, *, rng: Any) -> np.ndarray:
            return favor.sampling.orthogonal_projection(
                n_components, n_features, norms="fixed", rng=rng
            )

        return fixed
    if sampler not in favor.registry.SAMPLERS:
        raise ValueError(
            f"sampler must be one of {sorted(favor.registry.SAMPLERS)} or 'orthogonal-fixed', "
            f"got {sampler!r}"
        )
    return favor.registry.SAMPLERS[sampler]


def resolve_feature_map(feature_map: str | FeatureMapFn) -> FeatureMapFn:
    """Return ``f(x, projection, kernel)``; a name is looked up in ``favor.registry.FEATURE_MAPS``.

    Parameters
    ----------
    feature_map : str or callable
        A registered name or a callable.

    Returns
    -------
    callable
        The public (checked) feature map.
    """
    import favor

    if callable(feature_map):
        return feature_map
    if feature_map not in favor.registry.FEATURE_MAPS:
        raise ValueError(
            f"feature_map must be one of {sorted(favor.registry.FEATURE_MAPS)}, got {feature_map!r}"
        )
    function = favor.registry.FEATURE_MAPS[feature_map]

    def apply(x: np.ndarray, projection: np.ndarray, kernel: str) -> np.ndarray:
        return function(x, projection, kernel=kernel)

    return apply


def run_blocks(
    work: Callable[[np.random.Generator, int], np.ndarray],
    n_trials: int,
    seed: int,
    *,
    block_size: int = 2048,
) -> np.ndarray:
    """Run ``work(rng, n)`` over blocks of trials, one SeedSequence child per block.

    Parameters
    ----------
    work : callable
        ``work(rng, n)`` returns an array whose first axis has ``n`` trials.
    n_trials : int
        Total number of trials.
    seed : int
        Root seed.
    block_size : int, default=2048
        Trials per block.

    Returns
    -------
    numpy.ndarray
        The trials, concatenated along axis 0.
    """
    if n_trials < 1 or block_size < 1:
        raise ValueError(f"n_trials and block_size must be >= 1, got {n_trials}, {block_size}")
    sizes = [block_size] * (n_trials // block_size)
    if n_trials % block_size:
        sizes.append(n_trials % block_size)
    children = np.random.SeedSequence(seed).spawn(len(sizes))
    if _BLOCK_MAP is not None:  # e.g. a Dask cluster (theory.cluster): same blocks, same order
        return np.concatenate(_BLOCK_MAP(work, children, sizes))
    return np.concatenate(
        [work(np.random.default_rng(child), n) for child, n in zip(children, sizes, strict=True)]
    )


@contextmanager
def block_map(mapper: BlockMap) -> Iterator[None]:
    """Run the blocks of every :func:`run_blocks` call through ``mapper`` inside the context.

    ``mapper(work, children, sizes)`` must return ``[work(default_rng(c), n) for c, n in
    zip(children, sizes)]`` in that order, computed anywhere (:mod:`theory.cluster` sends
    the blocks to a Dask cluster); the trials then equal the serial ones exactly.

    Parameters
    ----------
    mapper : callable
        The block runner.
    """
    global _BLOCK_MAP
    previous, _BLOCK_MAP = _BLOCK_MAP, mapper
    try:
        yield
    finally:
        _BLOCK_MAP = previous


def draw_projections(
    sampler: str | Sampler,
    n_components: int,
    n_features: int,
    n_trials: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``n_trials`` independent projections with one stacked sampler call.

    Parameters
    ----------
    sampler : str or callable
        See :func:`resolve_sampler`.
    n_components : int
        Rows ``m`` per projection.
    n_features : int
        Columns ``d``.
    n_trials : int
        Number of projections.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray of shape (n_trials, n_components, n_features)
        The projections.
    """
    fn = resolve_sampler(sampler)
    rows = -(-n_components // n_features) * n_features
    big = np.asarray(fn(n_trials * rows, n_features, rng=rng))
    return big.reshape(n_trials, rows, n_features)[:, :n_components]


def _trial_estimates(
    fx: np.ndarray, fy: np.ndarray, n_trials: int, n_components: int
) -> np.ndarray:
    # fx, fy: (n_pairs, l * B * m) from a stacked projection -> (B, n_pairs) estimates.
    n_pairs, width = fx.shape
    per = width // (n_trials * n_components)
    prod = (fx * fy).reshape(n_pairs, per, n_trials, n_components)
    return n_trials * prod.sum(axis=(1, 3)).T


def kernel_estimates(
    x: Any,
    y: Any,
    *,
    feature_map: str | FeatureMapFn = "positive",
    sampler: str | Sampler = "iid",
    kernel: str = "softmax",
    n_components: int = 16,
    n_trials: int = 10_000,
    seed: int = 0,
    block_size: int = 2048,
) -> np.ndarray:
    r"""Kernel estimates :math:`\varphi(x_p)^T\varphi(y_p)` over independent projections.

    Parameters
    ----------
    x, y : array_like of shape (n_pairs, d)
        The pairs.
    feature_map : str or callable, default="positive"
        See :func:`resolve_feature_map`.
    sampler : str or callable, default="iid"
        See :func:`resolve_sampler`.
    kernel : str, default="softmax"
        Passed to the feature map.
    n_components : int, default=16
        Projections per trial.
    n_trials : int, default=10000
        Number of trials.
    seed : int, default=0
        Root seed.
    block_size : int, default=2048
        Trials per block (and per SeedSequence child).

    Returns
    -------
    numpy.ndarray of shape (n_trials, n_pairs)
        One estimate per trial and pair.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    d = x.shape[-1]
    fmap = resolve_feature_map(feature_map)
    fn = resolve_sampler(sampler)

    def work(rng: np.random.Generator, n: int) -> np.ndarray:
        w = draw_projections(fn, n_components, d, n, rng).reshape(n * n_components, d)
        return _trial_estimates(fmap(x, w, kernel), fmap(y, w, kernel), n, n_components)

    return run_blocks(work, n_trials, seed, block_size=block_size)


def gram_estimates(
    points: Any,
    *,
    feature_map: str | FeatureMapFn = "trigonometric",
    sampler: str | Sampler = "orthogonal",
    kernel: str = "rbf",
    n_components: int = 16,
    n_trials: int = 100,
    seed: int = 0,
    block_size: int = 64,
) -> np.ndarray:
    r"""Estimated kernel matrices :math:`\varphi(X)\varphi(X)^T` over independent projections.

    Parameters
    ----------
    points : array_like of shape (n_points, d)
        The point set.
    feature_map : str or callable, default="trigonometric"
        See :func:`resolve_feature_map`.
    sampler : str or callable, default="orthogonal"
        See :func:`resolve_sampler`.
    kernel : str, default="rbf"
        Passed to the feature map.
    n_components, n_trials, seed, block_size : int
        As in :func:`kernel_estimates`.

    Returns
    -------
    numpy.ndarray of shape (n_trials, n_points, n_points)
        One estimated Gram matrix per trial.
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    d = pts.shape[-1]
    fmap = resolve_feature_map(feature_map)
    fn = resolve_sampler(sampler)

    def work(rng: np.random.Generator, n: int) -> np.ndarray:
        w = draw_projections(fn, n_components, d, n, rng).reshape(n * n_components, d)
        f = fmap(pts, w, kernel)
        per = f.shape[-1] // (n * n_components)
        f = f.reshape(pts.shape[0], per, n, n_components).transpose(2, 0, 1, 3)
        f = f.reshape(n, pts.shape[0], per * n_components)
        return n * (f @ np.swapaxes(f, -1, -2))

    return run_blocks(work, n_trials, seed, block_size=block_size)


def summarize(trials: Any, seed: int) -> list[MonteCarloSummary]:
    """Mean and standard error of each column of a ``(n_trials, k)`` array.

    Parameters
    ----------
    trials : array_like of shape (n_trials, k)
        Trials.
    seed : int
        Root seed to record.

    Returns
    -------
    list of MonteCarloSummary
        One per column.
    """
    t = np.asarray(trials, dtype=np.float64).reshape(len(trials), -1)
    n = t.shape[0]
    se = t.std(0, ddof=1) / np.sqrt(n)
    return [
        MonteCarloSummary(float(a), float(b), n, seed) for a, b in zip(t.mean(0), se, strict=True)
    ]


def measure_throughput(
    *,
    sampler: str = "iid",
    feature_map: str = "positive",
    n_features: int = 16,
    n_components: int = 64,
    n_pairs: int = 1,
    n_trials: int = 20_000,
    seed: int = 0,
) -> dict[str, float]:
    """Time :func:`kernel_estimates` and report trials and kernel estimates per second.

    Parameters
    ----------
    sampler, feature_map : str
        What to time.
    n_features, n_components : int
        ``d`` and ``m``.
    n_pairs : int, default=1
        Pairs evaluated per trial (each trial-pair is one kernel estimate).
    n_trials : int, default=20000
        Trials to time (after a small warm-up).
    seed : int, default=0
        Root seed.

    Returns
    -------
    dict
        ``seconds``, ``trials_per_second``, ``estimates_per_second``.
    """
    rng = np.random.default_rng(seed)
    x = 0.3 * rng.standard_normal((n_pairs, n_features)) / np.sqrt(n_features)
    y = 0.3 * rng.standard_normal((n_pairs, n_features)) / np.sqrt(n_features)
    kw = {"feature_map": feature_map, "sampler": sampler, "n_components": n_components}
    kernel_estimates(x, y, n_trials=256, seed=seed, **kw)
    start = time.perf_counter()
    kernel_estimates(x, y, n_trials=n_trials, seed=seed, **kw)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "trials_per_second": n_trials / seconds,
        "estimates_per_second": n_trials * n_pairs / seconds,
    }
