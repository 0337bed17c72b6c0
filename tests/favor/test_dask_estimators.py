"""FavorSampler on Dask arrays: fit computes only what it needs, transform equals the
in-memory transform chunk for chunk, and it works inside dask-ml on a LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

from favor import FavorSampler
from tests.dask_support import compute
from tests.tiers import covering_product

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

FEATURES = ["trigonometric", "positive", "hyperbolic"]


def _untouchable(shape, chunks, dtype=np.float64):
    """A Dask array whose chunks raise when computed: proof that nothing was computed."""

    def boom(block):
        raise AssertionError("a chunk of X was computed")

    return da.zeros(shape, chunks=chunks, dtype=dtype).map_blocks(boom, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", ["rbf", "softmax"])
def test_fit_with_numeric_gamma_uses_only_the_shape(kernel, dtype):
    X = _untouchable((10_000, 7), (1000, 7), dtype)
    lazy = FavorSampler(kernel, gamma=0.3, n_components=20, random_state=4).fit(X)
    eager = FavorSampler(kernel, gamma=0.3, n_components=20, random_state=4).fit(
        np.zeros((3, 7), dtype=dtype)
    )
    assert lazy.n_features_in_ == 7
    assert lazy.projection_.dtype == dtype
    np.testing.assert_array_equal(lazy.projection_, eager.projection_)
    assert (lazy.gamma_, lazy.features_) == (eager.gamma_, eager.features_)
    assert lazy.get_feature_names_out().tolist() == eager.get_feature_names_out().tolist()


def test_fit_gamma_scale_is_one_reduction_equal_to_in_memory(rng):
    X = 3.0 * rng.standard_normal((900, 5)) + 1.0
    lazy = FavorSampler(random_state=0).fit(da.from_array(X, chunks=(100, 5)))
    eager = FavorSampler(random_state=0).fit(X)
    assert lazy.gamma_ == pytest.approx(eager.gamma_, rel=1e-13)
    constant = FavorSampler(random_state=0).fit(da.ones((50, 5), chunks=10))
    assert constant.gamma_ == 1.0
    bad = X.copy()
    bad[400, 2] = np.inf
    with pytest.raises(ValueError, match="X must contain only finite values"):
        FavorSampler().fit(da.from_array(bad, chunks=(100, 5)))


def test_fit_oprf_is_a_lazy_reduction_equal_to_in_memory(rng, monkeypatch):
    # oprf fits A* from the data's second moments: on a Dask array that is one Dask
    # reduction (X is never turned into one NumPy array), equal to the in-memory fit.
    def no_numpy_copy(self, *args, **kwargs):
        raise AssertionError("X was converted to one NumPy array")

    monkeypatch.setattr(da.Array, "__array__", no_numpy_copy)
    X = 0.7 * rng.standard_normal((900, 5)) + 0.2
    dX = da.from_array(X, chunks=(100, 5))
    seen = []

    def record(block):
        seen.append(block.shape[0])
        return block

    # The synchronous scheduler: ``seen`` lives in this process (a session cluster, if
    # one is running, would record in its workers).
    with dask.config.set(scheduler="sync"):
        lazy = FavorSampler(features="oprf", gamma=0.5, random_state=0).fit(
            dX.map_blocks(record, dtype=X.dtype)
        )
    eager = FavorSampler(features="oprf", gamma=0.5, random_state=0).fit(X)
    assert max(seen, default=0) <= 100  # block by block
    assert sum(seen) == 900  # each block once: one pass
    np.testing.assert_allclose(lazy.params_, eager.params_, rtol=1e-12, atol=0)
    assert lazy.params_[0] < 0  # a fitted A*, not the positive map's A = 0


@pytest.mark.parametrize(
    ("dtype", "kernel", "features"),
    covering_product([np.float32, np.float64], ["rbf", "softmax"], FEATURES),
)
def test_transform_equals_in_memory_chunk_for_chunk(dtype, kernel, features, rng, dask_client):
    X = (0.5 * rng.standard_normal((1000, 6))).astype(dtype)
    dX = da.from_array(X, chunks=((300, 300, 250, 150), (4, 2)))  # columns are rechunked
    model = FavorSampler(kernel, features=features, n_components=40, random_state=1).fit(dX)
    Z = model.transform(dX)
    assert isinstance(Z, da.Array)
    assert Z.dtype == dtype
    assert Z.chunks == ((300, 300, 250, 150), (model._n_features_out,))
    got = compute(dask_client, Z)
    start = 0
    for rows in Z.chunks[0]:
        block = X[start : start + rows]
        np.testing.assert_array_equal(got[start : start + rows], model.transform(block))
        start += rows
    # ... and, across chunks, the in-memory transform of all rows up to rounding of the GEMM.
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, model.transform(X), rtol=tol, atol=tol)


def test_transform_is_lazy_and_checks_each_chunk(rng, dask_client):
    model = FavorSampler(gamma=1.0, random_state=0).fit(np.zeros((2, 4)))
    Z = model.transform(_untouchable((100, 4), (10, 4)))  # building the graph computes nothing
    assert Z.shape == (100, 200)
    X = rng.standard_normal((100, 4))
    X[55, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        compute(dask_client, model.transform(da.from_array(X, chunks=(10, 4))))


def test_dask_input_errors_name_X(rng):
    model = FavorSampler(random_state=0).fit(rng.standard_normal((5, 4)))
    with pytest.raises(ValueError, match="X has 3 features, but FavorSampler is expecting 4"):
        model.transform(da.zeros((10, 3), chunks=5))
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        model.transform(da.zeros((10,), chunks=5))
    with pytest.raises(ValueError, match="X must hold real numbers"):
        FavorSampler().fit(da.from_array(np.array([["a", "b"]])))
    with pytest.raises(ValueError, match="n_components"):
        FavorSampler(n_components=0).fit(da.zeros((10, 3), chunks=5))
    with pytest.raises(ValueError, match="X must have at least 1 sample"):
        FavorSampler().fit(da.zeros((0, 3), chunks=5))
    unfitted = FavorSampler()
    with pytest.raises(Exception, match="not fitted"):
        unfitted.transform(da.zeros((10, 3), chunks=5))


def test_integer_dask_input_becomes_float64(dask_client):
    X = np.arange(60).reshape(20, 3) % 7
    model = FavorSampler(gamma=0.1, random_state=0).fit(da.from_array(X, chunks=5))
    assert model.projection_.dtype == np.float64
    got = compute(dask_client, model.transform(da.from_array(X, chunks=5)))
    np.testing.assert_allclose(got, model.transform(X.astype(float)), rtol=1e-13, atol=1e-13)


def _two_blobs(rng, n):
    y = rng.integers(0, 2, n)
    # Not linearly separable: class 1 lies on a ring around class 0.
    radius = np.where(y == 1, 2.0, 0.5) + 0.2 * rng.standard_normal(n)
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return X, y


@pytest.mark.slow
def test_inside_dask_ml_parallel_post_fit_and_incremental(rng, dask_client):
    pytest.importorskip("dask_ml")
    from dask_ml.wrappers import Incremental, ParallelPostFit
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    X, y = _two_blobs(rng, 4000)
    dX, dy = da.from_array(X, chunks=500), da.from_array(y, chunks=500)
    # ParallelPostFit passes the Dask array to fit: the sampler reads only its shape.
    wrapped = ParallelPostFit(FavorSampler(gamma=1.0, n_components=64, random_state=0)).fit(dX)
    assert wrapped.estimator.n_features_in_ == 2
    # Out of core: features of the Dask array, streamed block by block into SGD.
    sampler = FavorSampler(gamma=1.0, n_components=64, random_state=0).fit(dX)
    np.testing.assert_array_equal(sampler.projection_, wrapped.estimator.projection_)
    Z = sampler.transform(dX)
    clf = Incremental(
        SGDClassifier(loss="log_loss", alpha=1e-4, random_state=0), shuffle_blocks=False
    )
    for _ in range(3):
        clf.partial_fit(Z, dy, classes=[0, 1])
    accuracy = float(compute(dask_client, (clf.predict(Z) == dy).mean()))
    # The control: a linear model on the raw 2-D points cannot separate the ring.
    linear = Incremental(SGDClassifier(loss="log_loss", random_state=0), shuffle_blocks=False)
    linear.partial_fit(dX, dy, classes=[0, 1])
    baseline = float(compute(dask_client, (linear.predict(dX) == dy).mean()))
    assert accuracy > 0.95
    assert baseline < 0.75
    # Train in memory, predict a Dask array block by block with a pipeline.
    model = ParallelPostFit(
        make_pipeline(
            FavorSampler(gamma=1.0, n_components=64, random_state=0),
            SGDClassifier(loss="log_loss", alpha=1e-4, random_state=0),
        )
    ).fit(X[:2000], y[:2000])
    predicted = model.predict(dX)
    assert isinstance(predicted, da.Array)
    np.testing.assert_array_equal(compute(dask_client, predicted), model.estimator.predict(X))
