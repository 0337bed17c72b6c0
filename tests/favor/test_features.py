"""favor.features and favor._jit.features: collapsed formulas, dtypes, unbiasedness, jit twins.

The exact tests check the literal feature vectors against the collapsed forms of their
dot products (formulas §2.2-2.4, [B-feat]) to 1e-12. The statistical test is seeded and uses
the |z| >= 5 rule (false-alarm rate 5.7e-7) with a negative control that must fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from favor.features import random_features
from favor.registry import FEATURE_MAPS
from favor.sampling import iid_projection, orthogonal_projection
from tests.conftest import readonly

Z_CRIT = 5.0


@pytest.fixture
def pair():
    rng = np.random.default_rng(123)
    x = readonly(0.4 * rng.standard_normal((5, 6)))
    y = readonly(0.4 * rng.standard_normal((4, 6)))
    w = readonly(rng.standard_normal((9, 6)))
    return x, y, w


def _sq(a):
    return np.einsum("ij,ij->i", a, a)


def _collapsed(name: str, kernel: str, x, y, w) -> np.ndarray:
    """The dot products phi(x_i).phi(y_j) written as formulas §2.2-2.4 collapse them."""
    m = w.shape[0]
    sx, sy = _sq(x)[:, None], _sq(y)[:, None]  # (n, 1)
    delta = x[:, None, :] - y[None, :, :]  # (n_x, n_y, d)
    z = x[:, None, :] + y[None, :, :]
    if name == "trigonometric":
        mean_cos = np.cos(delta @ w.T).mean(axis=-1)
        if kernel == "softmax":
            return np.exp((sx + sy.T) / 2) * mean_cos
        return mean_cos
    if name == "relu":
        return np.maximum(x @ w.T, 0) @ np.maximum(y @ w.T, 0).T / m
    # positive: Lambda * mean exp(w.z); hyperbolic: Lambda * mean cosh(w.z), where the
    # Gaussian forms multiply by a further exp(-(|x|^2 + |y|^2) / 2) (formulas §1.1).
    factor = np.exp(-(sx + sy.T) / 2)
    if kernel == "rbf":
        factor = factor * np.exp(-(sx + sy.T) / 2)
    inner = np.exp(z @ w.T) if name == "positive" else np.cosh(z @ w.T)
    return factor * inner.mean(axis=-1)


# Maps with data-fitted parameters ("oprf", "saderf") fit them on each call's input, so
# phi(x).phi(y) of two calls is not one estimator: tests/favor/test_gerf.py covers them.
# Maps whose queries and keys differ ("hybrid") have no collapsed symmetric formula:
# tests/favor/test_hybrid_attention.py covers them.
CASES = [
    (name, kernel)
    for name, spec in FEATURE_MAPS.items()
    if spec.params is None and spec.symmetric
    for kernel in spec.kernels
]


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_dot_products_equal_collapsed_formulas(name, kernel, pair):
    x, y, w = pair
    spec = FEATURE_MAPS[name]
    phi_x = spec(x, w, kernel=kernel)
    phi_y = spec(y, w, kernel=kernel)
    assert phi_x.shape == (5, spec.outputs_per_projection * w.shape[0])
    np.testing.assert_allclose(phi_x @ phi_y.T, _collapsed(name, kernel, x, y, w), rtol=1e-12)
    if spec.nonnegative:
        assert (phi_x >= 0).all()


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_float32_matches_float64_and_keeps_dtype(name, kernel, pair):
    x, _, w = pair
    f64 = FEATURE_MAPS[name](x, w, kernel=kernel)
    f32 = FEATURE_MAPS[name](x.astype(np.float32), w, kernel=kernel)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, f64, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_compute_and_registry_dispatch_agree_and_batch_axes_work(name, kernel, pair):
    x, _, w = pair
    spec = FEATURE_MAPS[name]
    expected = spec(x, w, kernel=kernel)
    formula = spec.numpy_formula()
    unchecked = formula(np.asarray(x), np.asarray(w), kernel, 1.0, np.zeros(0), False)
    np.testing.assert_array_equal(unchecked, expected)
    np.testing.assert_array_equal(random_features(x, w, features=name, kernel=kernel), expected)
    batched = spec(np.stack([x, x]), w, kernel=kernel)
    np.testing.assert_allclose(batched[1], expected, rtol=1e-14)


def test_exponential_maps_do_not_overflow_for_large_norms():
    x = np.full((1, 4), 30.0)  # w.x up to ~ 240, |x|^2/2 = 1800: naive exp(w.x) * exp(-...) fails
    w = iid_projection(16, 4, rng=0)
    for name in ("positive", "hyperbolic"):
        with np.errstate(over="raise"):
            out = FEATURE_MAPS[name](x, w, kernel="softmax")
        assert np.isfinite(out).all()


@pytest.mark.parametrize("name", ["trigonometric", "positive", "hyperbolic", "relu"])
def test_invalid_inputs_name_the_argument(name, pair):
    x, _, w = pair
    fn = FEATURE_MAPS[name]
    with pytest.raises(ValueError, match="x must contain only finite"):
        fn(np.full((2, 6), np.nan), w)
    with pytest.raises(ValueError, match="x must be a float32 or float64"):
        fn(np.ones((2, 6), dtype=int), w)
    with pytest.raises(ValueError, match="projection must have shape"):
        fn(x, w[:, :5])
    with pytest.raises(ValueError, match="kernel"):
        fn(x, w, kernel="laplacian")
    with pytest.raises(ValueError, match="features"):
        random_features(x, w, features="cosine")


# --- unbiasedness of positive orthogonal softmax features -------------------------------


def _mean_z(x, y, sampler, n_replicates: int, seed: int) -> float:
    """z-score of the mean of phi(x).phi(y) (positive softmax features) against exp(x.y)."""
    rng = np.random.default_rng(seed)
    d = x.size
    estimates = np.empty(n_replicates)
    for r in range(n_replicates):
        w = sampler(d, d, rng)
        estimates[r] = FEATURE_MAPS["positive"](x, w) @ FEATURE_MAPS["positive"](y, w)
    sem = estimates.std(ddof=1) / np.sqrt(n_replicates)
    return (estimates.mean() - np.exp(x @ y)) / sem


def _pair(seed: int, d: int = 8, sum_norm: float = 1.1):
    """x, y in general position with |x + y|^2 = sum_norm^2 (formulas §8.2 rule (a))."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, d))
    scale = sum_norm / np.linalg.norm(x + y)
    return x * scale, y * scale


@pytest.mark.statistical
@pytest.mark.parametrize("pair_seed", [1, 2])
def test_positive_orthogonal_softmax_features_are_unbiased(pair_seed):
    x, y = _pair(pair_seed)
    z = _mean_z(x, y, lambda m, d, rng: orthogonal_projection(m, d, rng=rng), 30000, 40 + pair_seed)
    assert abs(z) < Z_CRIT, z


@pytest.mark.statistical
def test_negative_control_fixed_norm_rows_are_biased_for_softmax():
    # sqrt(d)-length rows estimate SMREG < SM (Performers Thm 1; formulas §2.5, 3.1 [C3b]).
    x, y = _pair(1)
    z = _mean_z(
        x, y, lambda m, d, rng: orthogonal_projection(m, d, norms="fixed", rng=rng), 30000, 41
    )
    assert z <= -Z_CRIT, z


# --- jit functions and their slow, obviously correct twins ------------------------------


def _reference_scaled_cos_sin(logits: np.ndarray, row_scale: np.ndarray) -> np.ndarray:
    return np.concatenate([np.cos(logits), np.sin(logits)], axis=1) * row_scale[:, None]


@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 3), (64, 33)])
def test_jit_scaled_cos_sin_matches_numpy_twin(n, m):
    from favor._jit.features import scaled_cos_sin, scaled_cos_sin_serial

    rng = np.random.default_rng(n * m)
    logits = rng.standard_normal((n, m)) * np.logspace(-3, 4, m)  # small to large arguments
    row_scale = rng.uniform(0.1, 3.0, size=n)
    features = np.empty((n, 2 * m))
    features[:, :m] = logits
    features[:, m:] = np.nan  # ignored on entry
    serial = features.copy()
    scaled_cos_sin(features, row_scale)
    scaled_cos_sin_serial(serial, row_scale)
    twin = _reference_scaled_cos_sin(logits, row_scale)
    np.testing.assert_allclose(features, twin, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(serial, twin, rtol=1e-15, atol=1e-15)


def test_jit_serial_and_parallel_loops_are_bit_identical():
    from favor._jit.features import scaled_cos_sin, scaled_cos_sin_serial

    rng = np.random.default_rng(8)
    logits = rng.standard_normal((300, 40)) * 50
    row_scale = rng.uniform(size=300)
    a = np.concatenate([logits, logits], axis=1)
    b = a.copy()
    scaled_cos_sin(a, row_scale)
    scaled_cos_sin_serial(b, row_scale)
    np.testing.assert_array_equal(a, b)


def test_jit_scaled_cos_sin_handles_empty_input():
    from favor._jit.features import scaled_cos_sin, scaled_cos_sin_serial

    for fn in (scaled_cos_sin, scaled_cos_sin_serial):
        features = np.empty((0, 4))
        fn(features, np.empty(0))
        assert features.shape == (0, 4)


def _reference_shifted_exp(logits: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Slow twin of favor._jit.shifted_exp.shifted_exp: exp(l - c) in float64, row by row."""
    out = np.empty(logits.shape, dtype=np.float64)
    for i in range(logits.shape[0]):
        for r in range(logits.shape[1]):
            out[i, r] = np.exp(np.float64(logits[i, r]) - np.float64(shift[i]))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 3), (40, 257)])
def test_shifted_exp_matches_numpy(dtype, n, m):
    """The fused jit exponential against exp(l - c), within its rounding bound.

    exp has condition number |argument|: rounding the two arguments ``l - M`` and
    ``M - c`` (``M`` the row maximum) to the dtype costs up to ``eps (|l - M| + |M - c|)``
    relative, plus a few ulp for the polynomial and the product (np.exp(l - c) in the same
    dtype has the same first term). Logits span several scales and signs; shifts put the
    row maxima above and below 0; entries far below the maximum underflow to 0.
    """
    from favor._jit.shifted_exp import shifted_exp

    rng = np.random.default_rng(n + m)
    logits = rng.standard_normal((n, m)) * rng.choice([0.1, 3.0, 40.0], size=(n, 1))
    shift = rng.uniform(-20, 20, size=n)
    logits, shift = logits.astype(dtype), shift.astype(dtype)
    out = logits.copy()
    with np.errstate(over="ignore"):  # overflowing rows (NumPy warns when JIT is disabled)
        shifted_exp(out, shift)
    twin = _reference_shifted_exp(logits, shift)
    assert out.dtype == dtype
    overflows = twin > np.finfo(dtype).max  # inf in the dtype, as np.exp gives there
    if n * m > 1000:  # the large case covers overflowing rows in float32
        assert overflows.any() == (dtype == np.float32)
    np.testing.assert_array_equal(np.isinf(out), overflows)
    wide = logits.astype(np.float64)
    top = wide.max(axis=1, keepdims=True)
    condition = np.abs(wide - top) + np.abs(top - shift.astype(np.float64)[:, None])
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    bound = (4 + condition) * eps * twin + 4 * tiny
    assert np.all(np.abs(out - twin)[~overflows] <= bound[~overflows])


def test_shifted_exp_overflows_to_inf_like_numpy():
    """Exactly the entries whose value is not representable are inf, as with np.exp."""
    from favor._jit.shifted_exp import shifted_exp

    logits = np.array([[100.0, 99.0, 30.0], [1.0, 0.0, -1.0]], dtype=np.float32)
    shift = np.array([0.0, 0.0], dtype=np.float32)
    with np.errstate(over="ignore"):  # NumPy warns when JIT is disabled
        shifted_exp(logits, shift)
    assert np.isinf(logits[0, :2]).all()
    np.testing.assert_allclose(logits[0, 2], np.exp(30.0), rtol=1e-6)  # representable
    np.testing.assert_allclose(logits[1], np.exp([1.0, 0.0, -1.0]), rtol=1e-6)


@pytest.mark.parametrize("name", ["positive", "hyperbolic"])
@pytest.mark.parametrize("kernel", ["softmax", "rbf"])
def test_exponential_formulas_match_their_plain_numpy_twins(name, kernel):
    """favor.features' exponential maps (fused jit exponential) against the plain formulas
    exp(+-Wx' - shift - log sqrt(m)) written with NumPy in float64."""
    from favor import features

    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 8))
    w = rng.standard_normal((16, 8))
    scale = 0.7
    xs = x * scale
    logits = xs @ w.T
    half = 0.5 * np.einsum("ij,ij->i", xs, xs)[:, None]
    shift = half if kernel == "softmax" else 2 * half
    if name == "positive":
        twin = np.exp(logits - shift - 0.5 * np.log(16))
    else:
        c = 0.5 * np.log(32)
        twin = np.concatenate([np.exp(logits - shift - c), np.exp(-logits - shift - c)], axis=1)
    got = getattr(features, name)(x, w, kernel, scale, np.zeros(0), False)
    np.testing.assert_allclose(got, twin, rtol=1e-13)
