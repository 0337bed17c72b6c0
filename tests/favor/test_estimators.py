"""FavorSampler: scikit-learn conformance, exactness, unbiasedness, dtypes, sparse input, I/O.

Statistical tests are seeded and use the |z| >= 5.5 rule per kernel entry (rate 3.8e-8
each; 15 entries, so below 1e-6 per test) or |z| >= 5 for one decision (5.7e-7), each with
a negative control that must fail.
"""

from __future__ import annotations

import doctest
import itertools
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.kernel_approximation import RBFSampler
from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator, parametrize_with_checks

import favor._threads
import favor.estimators
import favor.features
from favor import FavorSampler
from favor.registry import FEATURE_MAPS
from tests.conftest import readonly

KERNELS = ("rbf", "softmax")
FEATURES = ("trigonometric", "positive", "hyperbolic")
PROJECTIONS = ("orthogonal", "iid")
COMBINATIONS = list(itertools.product(KERNELS, FEATURES, PROJECTIONS))


#: One configuration per newer sampler and kernel (favor.couplings, favor.kernels): each
#: draws its rows differently, so each passes the checks itself.
NEW_ESTIMATORS = (
    FavorSampler(projection="structured"),
    FavorSampler(projection="qmc"),
    FavorSampler("softmax", features="positive", projection="simplex"),
    FavorSampler("laplacian", projection="iid"),
    FavorSampler("laplacian", projection="qmc"),
    FavorSampler("matern", nu=0.5),
    FavorSampler("matern", projection="structured", nu=2.5),
)


def _branch_estimators() -> list[FavorSampler]:
    """One configuration per transform branch, not all kernel x map x sampler products.

    The transform is the registered map's NumPy formula on ``scale_ * X``: the kernel only
    sets the scale and the rbf/softmax form, the sampler only the fitted projection. These
    cover the default, each map, each kernel form of the trigonometric row scale and of the
    exponential shift, and both classic samplers; the exactness tests below run every
    combination. They run in the fast tier.
    """
    return [
        FavorSampler(),
        FavorSampler("softmax"),
        # gamma given: scikit-learn's check data (blobs around +-10) overflow the softmax
        # kernel's exp(|x|^2 / 2) factor at gamma="scale", which transform refuses.
        FavorSampler("softmax", gamma=1e-3, features="trigonometric"),  # repr on one line
        FavorSampler("rbf", features="positive", projection="iid"),
    ]


def _other_estimators() -> list[FavorSampler]:
    """The remaining configurations: a further map-kernel pair and each newer sampler and
    kernel (their own fit branches); the full suite (``slow``) runs every check on them."""
    return [FavorSampler("rbf", features="hyperbolic"), *NEW_ESTIMATORS]


# --- scikit-learn conformance -----------------------------------------------------------

_ARRAY_API_CHILD = """
import pickle, sys, warnings
warnings.simplefilter("error")
for estimator, check in pickle.loads(sys.stdin.buffer.read()):
    try:
        check(estimator)
        print(repr(estimator), "ok", sep="\\t")
    except Exception as exc:  # report every failure, not only the first
        print(repr(estimator), f"{type(exc).__name__}: {exc}".replace("\\n", " "), sep="\\t")
"""
_ARRAY_API_RESULTS: dict[str, str] = {}


def _check_name(check) -> str:
    while hasattr(check, "func"):
        check = check.func
    return check.__name__


def _array_api_result(estimator, group: list[FavorSampler]) -> str:
    """Run the ``check_array_api_input`` of every estimator of ``group`` at once, in a child
    with ``SCIPY_ARRAY_API=1`` (one interpreter start per group, not per estimator)."""
    if repr(estimator) not in _ARRAY_API_RESULTS:
        jobs = [
            (est, check)
            for est in group
            for _, check in estimator_checks_generator(est)
            if _check_name(check) == "check_array_api_input"
        ]
        result = subprocess.run(
            [sys.executable, "-c", _ARRAY_API_CHILD],
            input=pickle.dumps(jobs),
            capture_output=True,
            env={**os.environ, "SCIPY_ARRAY_API": "1"},
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            check=False,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr.decode()
        for line in result.stdout.decode().splitlines():
            name, outcome = line.split("\t", 1)
            _ARRAY_API_RESULTS[name] = outcome
    return _ARRAY_API_RESULTS.get(repr(estimator), "not run")


def _run_check(estimator, check, group: list[FavorSampler]) -> None:
    """Run one scikit-learn check; none is expected to fail.

    ``check_array_api_input`` needs ``SCIPY_ARRAY_API=1`` before SciPy is imported; when
    it is not set here, those of ``group`` run in one fresh interpreter that sets it (so
    no check is skipped).
    """
    if _check_name(check) == "check_array_api_input" and not os.environ.get("SCIPY_ARRAY_API"):
        assert _array_api_result(estimator, group) == "ok"
        return
    check(estimator)


@parametrize_with_checks(_branch_estimators())
def test_sklearn_compatible(estimator, check):
    """Each transform branch passes every scikit-learn check."""
    _run_check(estimator, check, _branch_estimators())


@pytest.mark.slow
@parametrize_with_checks(_other_estimators())
def test_sklearn_compatible_other_maps_samplers_and_kernels(estimator, check):
    """Every other configuration passes every scikit-learn check (full suite)."""
    _run_check(estimator, check, _other_estimators())


# --- exactness: the transform is the favor.features map on rescaled inputs ---------------


@pytest.fixture
def data():
    rng = np.random.default_rng(17)
    return readonly(rng.standard_normal((7, 5))), readonly(rng.standard_normal((4, 5)))


@pytest.mark.parametrize(("kernel", "features", "projection"), COMBINATIONS)
def test_transform_equals_feature_map_on_rescaled_inputs(kernel, features, projection, data):
    x, y = data
    gamma = 0.3
    est = FavorSampler(
        kernel, gamma=gamma, features=features, projection=projection, n_components=6
    ).fit(x)
    scale = np.sqrt(2 * gamma) if kernel == "rbf" else np.sqrt(gamma)
    form = "rbf" if kernel == "rbf" else "softmax"
    expected = FEATURE_MAPS[features](scale * y, est.projection_, kernel=form)
    np.testing.assert_allclose(est.transform(y), expected, rtol=1e-12, atol=1e-15)


def test_rbf_trigonometric_dot_products_equal_the_collapsed_formula(data):
    # phi(x).phi(y) = (1/m) sum_i cos(sqrt(2 gamma) w_i.(x - y))  (formulas §2.2, Gaussian form)
    x, y = data
    gamma = 0.2
    est = FavorSampler(gamma=gamma, n_components=9, random_state=0).fit(x)
    w = np.sqrt(2 * gamma) * est.projection_
    delta = x[:, None, :] - y[None, :, :]
    expected = np.cos(delta @ w.T).mean(axis=-1)
    np.testing.assert_allclose(est.transform(x) @ est.transform(y).T, expected, rtol=1e-12)


@pytest.mark.parametrize("n_samples", [7, 1000])  # serial and parallel jit loops
def test_float64_trigonometric_path_equals_numpy_twin(n_samples):
    x = np.random.default_rng(n_samples).standard_normal((n_samples, 5))
    est = FavorSampler(gamma=0.7, n_components=40, random_state=1).fit(x)
    logits = x @ (np.sqrt(1.4) * est.projection_).T
    twin = np.concatenate([np.cos(logits), np.sin(logits)], axis=1) / np.sqrt(40)
    np.testing.assert_allclose(est.transform(x), twin, rtol=1e-13, atol=1e-15)


def _frobenius_mse_ratios(gamma, m, projection, feature_scale=1.0, n_seeds=20):
    """||Z Z^T - K||_F^2 over its i.i.d. expectation sum_ij (1 - K_ij^2)^2 / (2m), per seed.

    formulas §6.6 [I1]: with D = 2m (cos, sin) features of the Gaussian kernel, each entry
    has variance (1 + k(2 Delta) - 2 k(Delta)^2) / D = (1 - k^2)^2 / D.
    """
    x = np.random.default_rng(3).standard_normal((40, 6))
    exact = rbf_kernel(x, gamma=gamma)
    expected = ((1 - exact**2) ** 2).sum() / (2 * m)
    ratios = []
    for seed in range(n_seeds):
        est = FavorSampler(gamma=gamma, n_components=m, projection=projection, random_state=seed)
        z = feature_scale * est.fit_transform(x)
        ratios.append(((z @ z.T - exact) ** 2).sum() / expected)
    ratios = np.array(ratios)
    return ratios.mean(), (ratios.mean() - 1) / (ratios.std(ddof=1) / np.sqrt(n_seeds))


@pytest.mark.statistical
@pytest.mark.parametrize(("gamma", "m"), [(0.05, 64), (0.2, 2048)])
def test_iid_kernel_error_matches_theory_against_sklearn_rbf_kernel(gamma, m):
    _, z = _frobenius_mse_ratios(gamma, m, "iid")
    assert abs(z) < 5, z


@pytest.mark.statistical
def test_orthogonal_kernel_error_is_below_the_iid_theory():
    mean, z = _frobenius_mse_ratios(0.05, 2048, "orthogonal")
    assert z <= -5, (mean, z)


@pytest.mark.statistical
def test_negative_control_misscaled_features_fail_the_error_test():
    _, z = _frobenius_mse_ratios(0.2, 2048, "iid", feature_scale=1.02)
    assert abs(z) >= 5, z


def _kernel(kernel: str, x: np.ndarray, gamma: float) -> np.ndarray:
    return rbf_kernel(x, gamma=gamma) if kernel == "rbf" else np.exp(gamma * (x @ x.T))


def _max_entry_z(kernel, features, projection, gamma_fit, gamma_true, n_fits=1500):
    """Largest |z| over the upper triangle of mean(Z Z^T) - K across seeded fits."""
    x = 0.4 * np.random.default_rng(5).standard_normal((6, 4))
    est = FavorSampler(kernel, gamma=gamma_fit, features=features, projection=projection)
    est.set_params(n_components=4)
    iu = np.triu_indices(6, k=1)  # the diagonal of the trigonometric maps is exact
    samples = np.empty((n_fits, iu[0].size))
    for seed in range(n_fits):
        z = est.set_params(random_state=seed).fit_transform(x)
        samples[seed] = (z @ z.T)[iu]
    sem = samples.std(axis=0, ddof=1) / np.sqrt(n_fits)
    exact = _kernel(kernel, x, gamma_true)[iu]
    return np.abs((samples.mean(axis=0) - exact) / sem).max()


@pytest.mark.statistical
@pytest.mark.parametrize(("kernel", "features", "projection"), COMBINATIONS)
def test_every_combination_is_unbiased_for_its_kernel(kernel, features, projection):
    # 15 kernel entries, |z| >= 5.5 each: family false-alarm rate < 1e-6.
    z = _max_entry_z(kernel, features, projection, gamma_fit=0.5, gamma_true=0.5)
    assert z < 5.5, z


@pytest.mark.statistical
@pytest.mark.parametrize("kernel", KERNELS)
def test_negative_control_wrong_gamma_is_detected(kernel):
    z = _max_entry_z(kernel, "positive", "orthogonal", gamma_fit=0.6, gamma_true=0.5)
    assert z >= 5.5, z


def _digits_error_ratios(gamma_rule: str, n_seeds: int = 5) -> list[float]:
    x = StandardScaler().fit_transform(load_digits().data)[:800]
    if gamma_rule == "scale":
        gamma = 1.0 / (x.shape[1] * x.var())
    else:  # median heuristic: gamma = 1 / median squared distance
        gamma = 1.0 / np.median(euclidean_distances(x, squared=True)[np.triu_indices(800, 1)])
    exact = rbf_kernel(x, gamma=gamma)
    ratios = []
    for seed in range(n_seeds):
        ours = FavorSampler(gamma=gamma, n_components=256, random_state=seed).fit_transform(x)
        theirs = RBFSampler(gamma=gamma, n_components=512, random_state=seed).fit_transform(x)
        ratios.append(
            np.linalg.norm(ours @ ours.T - exact) / np.linalg.norm(theirs @ theirs.T - exact)
        )
    return ratios


@pytest.mark.slow
def test_orthogonal_trigonometric_beats_rbfsampler_on_digits():
    """The issue's target at one width (D = 512), mean of 5 seeds; the benchmark has more.

    The gain of orthogonal (cos, sin) pairs depends on the bandwidth: it is largest where
    kernel values are large (formulas §3, 6.6). Measured here (800 digits): 0.54 with the
    median heuristic, 0.74 with SVC's ``gamma="scale"``; the benchmark on all 1797 digits
    gives 0.54-0.60 and 0.71-0.76 over D in {256, 1024, 4096}.
    """
    assert np.mean(_digits_error_ratios("median")) <= 0.7
    assert np.mean(_digits_error_ratios("scale")) <= 0.85


# --- fitted state, defaults and dtypes ---------------------------------------------------


def test_defaults_and_fitted_attributes(data):
    x, _ = data
    est = FavorSampler().fit(x)
    assert est.features_ == "trigonometric"
    assert est.gamma_ == pytest.approx(1.0 / (5 * x.var()))
    assert est.projection_.shape == (100, 5)
    assert est.n_features_in_ == 5
    assert est.transform(x).shape == (7, 200)
    soft = FavorSampler("softmax", n_components=3).fit(x)
    assert soft.features_ == "hyperbolic"
    assert soft.transform(x).shape == (7, 6)
    assert FavorSampler(features="positive", n_components=3).fit(x).transform(x).shape == (7, 3)


def test_gamma_scale_matches_svc_and_constant_data():
    x = np.arange(12.0).reshape(4, 3)
    assert FavorSampler().fit(x).gamma_ == pytest.approx(1.0 / (3 * x.var()))
    assert FavorSampler().fit(sp.csr_matrix(x)).gamma_ == pytest.approx(1.0 / (3 * x.var()))
    assert FavorSampler().fit(np.ones((3, 2))).gamma_ == 1.0
    assert FavorSampler(gamma=2).fit(x).gamma_ == 2.0


def test_float32_and_float64_fits_agree_for_one_seed(data):
    x, y = data
    for kernel, features, projection in COMBINATIONS:
        params = {"features": features, "projection": projection, "random_state": 3}
        f64 = FavorSampler(kernel, **params).fit(x)
        f32 = FavorSampler(kernel, **params).fit(x.astype(np.float32))
        assert f32.projection_.dtype == np.float32
        np.testing.assert_array_equal(f32.projection_, f64.projection_.astype(np.float32))
        out32 = f32.transform(y.astype(np.float32))
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out32, f64.transform(y), rtol=2e-5, atol=2e-6)


def test_transform_is_row_wise_and_deterministic():
    x = np.random.default_rng(2).standard_normal((50, 8))
    for kernel, features in itertools.product(KERNELS, FEATURES):
        est = FavorSampler(kernel, features=features, random_state=0).fit(x)
        full = est.transform(x)
        np.testing.assert_array_equal(full, est.transform(x))
        order = np.random.default_rng(1).permutation(50)
        # A one-row GEMM may round a logit differently in the last bit (BLAS gemv path).
        np.testing.assert_allclose(est.transform(x[order]), full[order], rtol=1e-12, atol=1e-15)
        for i in (0, 17):
            single = est.transform(x[i : i + 1])[0]
            np.testing.assert_allclose(single, full[i], rtol=1e-12, atol=1e-15)


def test_thread_limits_do_not_change_the_output_and_are_restored():
    import numba
    from threadpoolctl import threadpool_limits

    x = np.random.default_rng(4).standard_normal((600, 16))  # 76800 outputs: parallel loop
    est = FavorSampler(n_components=64, random_state=0).fit(x)
    assert 600 * 128 >= favor.features._PARALLEL_MIN_SIZE
    before = numba.get_num_threads()
    full = est.transform(x)
    with threadpool_limits(limits=1, user_api="blas"):
        assert favor._threads.jit_thread_count() == 1
        single = est.transform(x)
    np.testing.assert_allclose(single, full, rtol=1e-13, atol=1e-15)
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
@pytest.mark.parametrize("features", FEATURES)
def test_sparse_input_equals_dense(fmt, features):
    x = np.random.default_rng(6).standard_normal((20, 10))
    x[x < 0.5] = 0.0
    sparse = getattr(sp, fmt)(x)
    dense_est = FavorSampler("softmax", gamma=0.1, features=features, random_state=0).fit(x)
    sparse_est = FavorSampler("softmax", gamma=0.1, features=features, random_state=0)
    sparse_est.fit(sparse)
    out = sparse_est.transform(sparse)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, dense_est.transform(x), rtol=1e-12, atol=1e-15)


def test_softmax_trigonometric_overflow_is_refused_not_silent():
    # exp(gamma |x|^2 / 2) overflows float64 for |x| = 40, gamma = 1: fit refuses a gamma whose
    # kernel values on the training data are not finite, and transform refuses new rows whose
    # features overflow, instead of returning inf quietly.
    x = np.array([[0.0, 0.0], [40.0, 0.0]])
    with pytest.raises(ValueError, match=r"gamma=1 is too large for this data"):
        FavorSampler("softmax", gamma=1.0, features="trigonometric", random_state=0).fit(x)
    est = FavorSampler("softmax", gamma=1.0, features="trigonometric", random_state=0)
    est.fit(x[:1] + 1.0)
    assert np.isfinite(est.transform(x[:1])).all()
    with pytest.raises(FloatingPointError, match=r"non-finite values from finite inputs"):
        est.transform(x[1:])


# --- integration: names, pandas output, pipelines, pickling, docstring examples --------


def test_feature_names_and_pandas_output(data):
    pd = pytest.importorskip("pandas")
    x, _ = data
    est = FavorSampler(n_components=3, random_state=0).fit(x)
    names = est.get_feature_names_out()
    assert list(names) == [f"favorsampler{i}" for i in range(6)]
    frame = pd.DataFrame(x, columns=[f"c{i}" for i in range(5)])
    out = est.set_output(transform="pandas").fit(frame).transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(names)
    plain = est.set_output(transform="default").transform(frame)
    np.testing.assert_allclose(out.to_numpy(), plain)


def test_pipeline_classifies_digits():
    from sklearn.linear_model import RidgeClassifier

    x, y = load_digits(return_X_y=True)
    model = make_pipeline(
        StandardScaler(), FavorSampler(n_components=512, random_state=0), RidgeClassifier(1e-3)
    )
    assert model.fit(x[:1500], y[:1500]).score(x[1500:], y[1500:]) > 0.9


def test_pickle_round_trip_gives_identical_output(data):
    x, y = data
    for kernel, features in itertools.product(KERNELS, FEATURES):
        est = FavorSampler(kernel, features=features, random_state=0).fit(x)
        clone = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(clone.transform(y), est.transform(y))


def test_docstring_examples_run():
    result = doctest.testmod(favor.estimators, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- invalid input names the argument ----------------------------------------------------


@pytest.mark.parametrize(
    ("param", "bad"),
    [
        ("kernel", "poly"),
        ("kernel", None),
        ("gamma", 0),
        ("gamma", -1.0),
        ("gamma", float("nan")),
        ("gamma", float("inf")),
        ("gamma", "auto"),
        ("gamma", True),
        ("features", "relu"),
        ("features", "cos"),
        ("projection", "rbf"),
        ("n_components", 0),
        ("n_components", 1.5),
        ("n_components", "10"),
        ("random_state", "seed"),
        ("random_state", -1),
    ],
)
def test_invalid_parameters_raise_value_error_naming_them(param, bad, data):
    x, _ = data
    with pytest.raises(ValueError, match=param):
        FavorSampler(**{param: bad}).fit(x)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([[1.0, np.nan]]), "X contains NaN"),
        (np.array([[1.0, np.inf]]), "X contains infinity"),
        (np.ones(3), "X is not a valid input: Expected 2D"),
        (np.ones((2, 2, 2)), "X is not a valid input: Found array with dim 3"),
        (np.ones((0, 2)), "X is not a valid input: Found array with 0 sample"),
        ([["a", "b"]], "X is not a valid input"),
    ],
)
def test_bad_X_raises_value_error_naming_it(bad, message):
    with pytest.raises(ValueError, match=message):
        FavorSampler().fit(bad)
    est = FavorSampler().fit(np.ones((3, 2)) + np.eye(3, 2))
    with pytest.raises(ValueError, match=message):
        est.transform(bad)


def test_wrong_number_of_features_at_transform(data):
    x, _ = data
    est = FavorSampler().fit(x)
    with pytest.raises(ValueError, match="X has 4 features, but FavorSampler is expecting 5"):
        est.transform(x[:, :4])
