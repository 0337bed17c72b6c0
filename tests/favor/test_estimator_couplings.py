"""FavorSampler with the newer couplings and kernels, and favor_attention with the new samplers.

Statistical decisions use |z| >= 5 (false-alarm rate 5.7e-7, formulas §8.2).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import Matern
from sklearn.metrics.pairwise import laplacian_kernel

import favor
from favor import FavorSampler
from favor.couplings import sorf_matrix
from favor.features import trigonometric

Z_CRIT = 5.0


def _x(rng, n=6, d=5):
    return rng.standard_normal((n, d)) * 0.6


def _exact(kernel, x, gamma, nu):
    if kernel == "laplacian":
        return laplacian_kernel(x, gamma=gamma)
    return Matern(length_scale=1 / np.sqrt(2 * gamma), nu=nu)(x)


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("kernel", "projection", "nu"),
    [
        ("laplacian", "iid", 1.5),
        ("laplacian", "qmc", 1.5),
        ("matern", "orthogonal", 0.5),
        ("matern", "simplex", 1.5),
        ("matern", "qmc", 2.5),
    ],
)
def test_sampler_is_unbiased_for_the_exact_kernel(kernel, projection, nu, rng):
    """Mean of Z Z^T over independent fits equals scikit-learn's kernel (every entry)."""
    x = _x(rng)
    gamma = 0.3
    n_fits = 150 if projection == "qmc" else 600
    grams = np.array(
        [
            (
                z := FavorSampler(
                    kernel,
                    gamma=gamma,
                    projection=projection,
                    n_components=8,
                    nu=nu,
                    random_state=s,
                ).fit_transform(x)
            )
            @ z.T
            for s in range(n_fits)
        ]
    )
    iu = np.triu_indices(len(x), 1)
    mean = grams.mean(0)[iu]
    se = grams.std(0, ddof=1)[iu] / np.sqrt(n_fits)
    z_scores = (mean - _exact(kernel, x, gamma, nu)[iu]) / se
    assert np.abs(z_scores).max() < Z_CRIT


@pytest.mark.statistical
def test_matern_with_gaussian_rows_is_detected(rng):
    """Negative control of the test above: the RBF sampler's Gram is not the Matérn kernel."""
    x = _x(rng)
    grams = np.array(
        [
            (z := FavorSampler(gamma=0.3, n_components=8, random_state=s).fit_transform(x)) @ z.T
            for s in range(600)
        ]
    )
    iu = np.triu_indices(len(x), 1)
    se = grams.std(0, ddof=1)[iu] / np.sqrt(600)
    z_scores = (grams.mean(0)[iu] - _exact("matern", x, 0.3, 0.5)[iu]) / se
    assert np.abs(z_scores).max() >= Z_CRIT


def test_refusals_name_the_reason(rng):
    x = _x(rng)
    with pytest.raises(
        ValueError, match="projection='orthogonal' is not unbiased for kernel='laplacian'"
    ):
        FavorSampler("laplacian").fit(x)
    with pytest.raises(ValueError, match="projection='simplex' is not unbiased"):
        FavorSampler("laplacian", projection="simplex").fit(x)
    with pytest.raises(
        ValueError, match="features='hyperbolic' is not unbiased for kernel='matern'"
    ):
        FavorSampler("matern", features="hyperbolic").fit(x)
    with pytest.raises(ValueError, match="nu"):
        FavorSampler("matern", nu=3.5).fit(x)


@pytest.mark.parametrize("kernel", ["rbf", "matern"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_structured_fast_path_equals_the_dense_projection(kernel, dtype, rng):
    """Above the crossover the transform uses fast Hadamard transforms; same features."""
    x = rng.standard_normal((9, 600)).astype(dtype)  # pads to p = 1024 > the crossover
    est = FavorSampler(
        kernel, gamma=1e-3, projection="structured", n_components=700, random_state=3
    )
    z = est.fit(x).transform(x)
    signs, lengths = est._sorf_factors
    np.testing.assert_allclose(est.projection_, sorf_matrix(signs, lengths, 600).astype(dtype))
    dense = trigonometric(x, est.projection_, "rbf", est.scale_, est.params_, False)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(z, dense, rtol=0, atol=tol)


def test_float32_trigonometric_features_match_float64(rng):
    x = rng.standard_normal((300, 64))
    est = FavorSampler(gamma=0.02, n_components=512, random_state=0)
    z64 = est.fit(x).transform(x)
    z32 = est.fit(x.astype(np.float32)).transform(x.astype(np.float32))
    assert z32.dtype == np.float32
    # float32 logits carry ~1e-7 relative rounding; the jit sin/cos adds at most 1.5e-7.
    np.testing.assert_allclose(z32, z64, rtol=0, atol=2e-6 / np.sqrt(512) * 10)


@pytest.mark.parametrize("projection", ["structured", "qmc", "simplex"])
def test_attention_accepts_the_new_samplers(projection, rng):
    q, k, v = (rng.standard_normal((2, 12, 8)) * 0.3 for _ in range(3))
    out = favor.favor_attention(q, k, v, projection=projection, n_components=64, rng=0)
    exact = favor.softmax_attention(q, k, v)
    assert out.shape == exact.shape
    assert np.abs(out - exact).max() < 0.2
    causal = favor.favor_attention(
        q, k, v, projection=projection, n_components=64, rng=0, causal=True
    )
    assert np.isfinite(causal).all()


@pytest.mark.parametrize(
    ("kernel", "projection", "nu"),
    [
        ("rbf", "qmc", 1.5),
        ("softmax", "simplex", 1.5),
        ("laplacian", "qmc", 1.5),
        ("laplacian", "iid", 1.5),
        ("matern", "simplex+", 2.5),
        ("matern", "orthogonal", 0.5),
    ],
)
def test_kernel_draw_rows_is_the_documented_draw(kernel, projection, nu):
    from favor.kernels import cauchy_projection, student_t_row_scales
    from favor.registry import KERNELS
    from favor.sampling import draw_projection

    rows = KERNELS[kernel].draw_rows(projection, 7, 5, np.random.default_rng(3), nu)
    rng = np.random.default_rng(3)
    if kernel == "laplacian":
        expected = cauchy_projection(7, 5, projection=projection, rng=rng)
    else:
        expected = draw_projection(projection, 7, 5, rng=rng)
        if kernel == "matern":
            expected = expected * student_t_row_scales(7, nu, rng=rng)[:, None]
    np.testing.assert_array_equal(rows, expected)


@pytest.mark.parametrize(("kernel", "projection"), [("rbf", "structured"), ("matern", "qmc")])
def test_favor_sampler_draws_through_the_registered_sampler(kernel, projection):
    import dataclasses

    from favor import registry

    spec = registry.SAMPLERS[projection]
    doubled = dataclasses.replace(spec, draw=lambda m, d, rng: np.full((m, d), 2.0))
    x = np.random.default_rng(0).standard_normal((4, 3))
    with registry.register_sampler(doubled, replace=True):
        fitted = FavorSampler(kernel=kernel, projection=projection, n_components=8).fit(x)
        if kernel == "rbf":
            np.testing.assert_array_equal(fitted.projection_, 2.0)
            phi = fitted.transform(x)  # the dense path (no fast-transform factors)
            assert phi.shape == (4, 16)
            assert np.all(np.isfinite(phi))
        else:  # Matern rows: the sampler's rows times positive Student factors
            assert np.all(fitted.projection_ > 0)
            np.testing.assert_allclose(fitted.projection_, fitted.projection_[:, :1] * np.ones(3))
    fresh = FavorSampler(kernel=kernel, projection=projection, n_components=8).fit(x)
    assert not np.allclose(fresh.projection_, fresh.projection_[:, :1])


def test_kernel_draw_rows_rejects_bad_sizes():
    from favor.registry import KERNELS

    with pytest.raises(ValueError, match="n_components"):
        KERNELS["matern"].draw_rows("iid", 0, 3, 0, 1.5)
    with pytest.raises(ValueError, match="projection"):
        KERNELS["rbf"].draw_rows("nope", 4, 3, 0)
