r""":class:`favor.FavorSampler` on Dask arrays: fit from the shape, transform block by block.

:meth:`FavorSampler.fit <favor.FavorSampler.fit>` and
:meth:`~favor.FavorSampler.transform` route a ``dask.array.Array`` here
(:func:`favor._dispatch.backend_of`).

* ``fit`` reads only what the model needs. The projection is drawn on the client from
  ``random_state`` and does not depend on the data, so for a numeric ``gamma`` fitting
  needs the number of columns and the dtype and computes nothing. With
  ``gamma="scale"`` it computes one Dask reduction, the variance of all entries
  (:math:`\gamma = 1/(d \operatorname{Var} X)`, as in memory); its value can differ from
  the in-memory one in the last bits because the sum is taken in another order.
* ``transform`` is row-wise (each output row depends only on its input row, formulas §2),
  so it is a map over row blocks: block ``i`` of the result *is* the in-memory
  ``transform`` of block ``i`` of ``X`` (bit-identical, the same code runs on it). The
  result is lazy, chunked by rows like ``X``, with the features in one column chunk.

Finiteness of ``X`` is checked when a block is transformed (and, for ``gamma="scale"``,
by the variance at fit time); the error names ``X`` as in memory. Each task ships the
fitted estimator (its projection, ``m x d`` numbers) and one row block; a block of ``n``
rows needs about ``n (d + r)`` numbers of memory for ``r`` output features.

Maps whose parameters are fitted to the data (a registry entry with ``params``) receive
the scaled Dask array in ``fit``: their parameter function runs as a Dask computation
where it uses array operations Dask implements, and a function that converts its input
with ``numpy.asarray`` computes ``X`` on the client, in memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_X", "scale_gamma", "transform"]


def check_X(estimator: Any, X: Any, *, reset: bool) -> Any:
    """Check a Dask ``X`` as scikit-learn's ``validate_data`` would, without computing it.

    Parameters
    ----------
    estimator : FavorSampler
        With ``reset`` its ``n_features_in_`` is set (and ``feature_names_in_`` removed);
        otherwise ``X`` must have ``n_features_in_`` columns.
    X : dask.array.Array
        The data.
    reset : bool
        True in ``fit``.

    Returns
    -------
    dask.array.Array
        ``X`` as float32 or float64 (other real dtypes become float64).
    """
    if X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}"
        )
    if math.isnan(X.shape[1]):
        raise ValueError(f"X must have a known number of columns, got shape {X.shape}")
    if not reset and X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)  # as scikit-learn's validation converts other input
    if reset:
        if not math.isnan(X.shape[0]) and X.shape[0] < 1:
            raise ValueError(f"X must have at least 1 sample, got shape {X.shape}")
        if hasattr(estimator, "feature_names_in_"):  # a refit on unnamed columns forgets names
            del estimator.feature_names_in_
        estimator.n_features_in_ = int(X.shape[1])
    return X


def scale_gamma(X: Any) -> float:
    """``gamma="scale"``, ``1 / (n_features * X.var())`` (1 if 0), by one Dask reduction.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        The data.

    Returns
    -------
    float
        The kernel scale.
    """
    import dask
    import dask.array as da

    # One pass over X: the variance of all entries and whether they are all finite (the
    # non-finite entries are masked so the reduction itself stays quiet).
    finite = da.isfinite(X)
    all_finite, variance = dask.compute(
        finite.all(), da.where(finite, X, 0).astype(np.float64).var()
    )
    if not all_finite:
        raise ValueError("X must contain only finite values (no NaN or inf)")
    variance = float(variance)
    return 1.0 / (X.shape[1] * variance) if variance > 0 else 1.0


def transform(estimator: Any, X: Any) -> Any:
    """Random features of a Dask array, lazily, chunked by rows like ``X``.

    Parameters
    ----------
    estimator : FavorSampler
        A fitted estimator.
    X : dask.array.Array of shape (n_samples, n_features)
        Data.

    Returns
    -------
    dask.array.Array of shape (n_samples, n_output_features)
        Block ``i`` equals ``estimator.transform(X.blocks[i].compute())``.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    X = check_X(estimator, X, reset=False)
    X = X.rechunk({1: -1})
    width = estimator._n_features_out
    meta = np.empty((0, width), dtype=X.dtype)
    return X.map_blocks(
        _transform_block,
        estimator,
        chunks=(X.chunks[0], (width,)),
        dtype=X.dtype,
        meta=meta,
        token="favor-transform",
    )


def _transform_block(block: np.ndarray, estimator: Any) -> np.ndarray:
    return estimator.transform(block)
