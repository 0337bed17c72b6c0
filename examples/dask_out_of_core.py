r"""Out-of-core kernel classification with FavorSampler on a Dask cluster.

A kernel SVM or kernel logistic regression needs the :math:`n \times n` kernel matrix; with
random features it becomes a linear model on :math:`\varphi(X)` (``2 m`` columns per row),
trained block by block with ``partial_fit``. Here neither the data nor the features ever
exist as one array: every row block of ``X`` is generated on a worker from its own seed,
transformed to features there, and streamed into an ``SGDClassifier`` by dask-ml's
``Incremental``; the test set is scored the same way.

The task: points :math:`x \sim \mathcal N(0, I_d)` labelled by whether
:math:`\lVert x\rVert` exceeds the median radius -- two concentric shells that no linear
model on ``x`` separates (accuracy about 0.5), while a Gaussian-kernel model does.

Run small (as the tests do)::

    python examples/dask_out_of_core.py --n-samples 200000 --chunk-rows 20000 --workers 2

Run large: 200 million rows of 16 features are 25.6 GB of float64, their 1024 features
per row 1.6 TB; each task only holds one block (``chunk-rows x (d + 2 m)`` numbers,
about 0.4 GB at the default chunk and m = 256)::

    python examples/dask_out_of_core.py --n-samples 200_000_000 --chunk-rows 50_000 \
        --n-features 16 --n-components 512 --scheduler tcp://scheduler:8786

See ``docs/scaling.md`` for memory per worker and chunk sizes.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np


def _block(ids: np.ndarray, *, seed: int, n_features: int, part: int, block_info=None):
    # Rows of one block, from a seed fixed by (seed, part, block index): reproducible,
    # independent across blocks, and never dependent on which worker draws them.
    rows = block_info[None]["chunk-shape"][0]
    rng = np.random.default_rng([seed, part, int(ids[0, 0])])
    return rng.standard_normal((rows, n_features))


def make_data(n_samples: int, chunk_rows: int, n_features: int, *, seed: int, part: int) -> Any:
    r"""Lazily generated data: a Dask array ``X`` and labels ``y``, block by block.

    Parameters
    ----------
    n_samples, chunk_rows, n_features : int
        Rows, rows per block and columns.
    seed : int
        Root seed.
    part : int
        0 for the training set, 1 for the test set (independent draws).

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
    y : dask.array.Array of shape (n_samples,)
        1 where :math:`\lVert x\rVert^2` exceeds the median of :math:`\chi^2_d`.
    """
    import dask.array as da
    from scipy.stats import chi2

    chunks = [chunk_rows] * (n_samples // chunk_rows)
    if n_samples % chunk_rows:
        chunks.append(n_samples % chunk_rows)
    ids = da.from_array(np.arange(len(chunks))[:, None], chunks=1)
    X = ids.map_blocks(
        _block,
        seed=seed,
        n_features=n_features,
        part=part,
        chunks=(tuple(chunks), (n_features,)),
        dtype=np.float64,
        meta=np.empty((0, n_features)),
    )
    threshold = chi2.median(n_features)
    y = ((X**2).sum(axis=1) > threshold).astype(np.int64)
    return X, y


def run(
    client: Any,
    *,
    n_samples: int,
    chunk_rows: int,
    n_features: int = 8,
    n_components: int = 256,
    epochs: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Train and score the kernel classifier and a linear baseline on ``client``'s cluster.

    Returns
    -------
    dict
        ``accuracy`` (random features), ``baseline`` (linear on raw ``x``), ``seconds``.
    """
    from dask_ml.wrappers import Incremental
    from sklearn.linear_model import SGDClassifier

    from favor import FavorSampler

    start = time.perf_counter()
    X, y = make_data(n_samples, chunk_rows, n_features, seed=seed, part=0)
    X_test, y_test = make_data(
        max(chunk_rows, n_samples // 10), chunk_rows, n_features, seed=seed, part=1
    )
    # gamma for a kernel width of about the data's radius; fit reads only X's shape.
    sampler = FavorSampler(gamma=0.5 / n_features, n_components=n_components, random_state=seed)
    sampler.fit(X)
    features, features_test = sampler.transform(X), sampler.transform(X_test)
    model = Incremental(
        SGDClassifier(loss="log_loss", alpha=1e-5, random_state=seed), shuffle_blocks=False
    )
    baseline = Incremental(SGDClassifier(loss="log_loss", random_state=seed), shuffle_blocks=False)
    for _ in range(epochs):
        model.partial_fit(features, y, classes=[0, 1])
    baseline.partial_fit(X, y, classes=[0, 1])
    accuracy, base = client.compute(
        [
            (model.predict(features_test) == y_test).mean(),
            (baseline.predict(X_test) == y_test).mean(),
        ]
    )
    return {
        "accuracy": float(accuracy.result()),
        "baseline": float(base.result()),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=8)
    parser.add_argument("--n-components", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="local worker processes")
    where.add_argument("--scheduler", help="address of a running Dask scheduler")
    args = parser.parse_args(argv)
    from contextlib import ExitStack

    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        if args.scheduler:
            client = stack.enter_context(Client(args.scheduler))
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",  # loopback, any free port
                )
            )
            client = stack.enter_context(Client(cluster))
        result = run(
            client,
            n_samples=args.n_samples,
            chunk_rows=args.chunk_rows,
            n_features=args.n_features,
            n_components=args.n_components,
            epochs=args.epochs,
        )
    gib = args.n_samples * (args.n_features + 2 * args.n_components) * 8 / 2**30
    print(
        f"{args.n_samples} rows ({gib:.1f} GiB of data + features, never in memory at once): "
        f"accuracy {result['accuracy']:.3f} with random features, "
        f"{result['baseline']:.3f} linear on x; {result['seconds']:.1f} s"
    )
    return 0 if math.isfinite(result["accuracy"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
