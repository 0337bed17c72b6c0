"""favor._jit.trig against its slow twin, NumPy's float64 sin and cos."""

from __future__ import annotations

import numpy as np
import pytest

from favor._jit.trig import scaled_cos_sin_f32, scaled_cos_sin_f32_serial, sincos_f32

#: The documented bound: two float32 ulps of 1, for |t| <= 1e4.
BOUND = 1.5e-7


def _arguments(rng: np.random.Generator) -> np.ndarray:
    edges = np.float32(np.pi / 4) * np.arange(-64, 65, dtype=np.float32)  # quadrant edges
    return np.concatenate(
        [
            rng.uniform(-1e4, 1e4, 200_000).astype(np.float32),
            np.linspace(-8, 8, 100_001, dtype=np.float32),
            edges,
            np.nextafter(edges, np.float32(np.inf)),
            np.nextafter(edges, np.float32(-np.inf)),
            np.array([0.0, -0.0, 1e-30, -1e-30], dtype=np.float32),
        ]
    )


def test_sincos_error_bound(rng):
    t = _arguments(rng)
    s = np.empty_like(t)
    c = np.empty_like(t)
    sincos_f32(t, s, c)
    t64 = t.astype(np.float64)
    assert np.abs(s - np.sin(t64)).max() <= BOUND
    assert np.abs(c - np.cos(t64)).max() <= BOUND
    assert np.abs(s).max() <= 1.0
    assert np.abs(c).max() <= 1.0


def test_sincos_bound_is_tight_enough_to_fail_for_a_worse_method(rng):
    """Negative control: the naive float32 sin(t) = cos(t - pi/2) breaks the same bound."""
    t = _arguments(rng)
    shifted = np.cos(t - np.float32(np.pi / 2))
    assert np.abs(shifted - np.sin(t.astype(np.float64))).max() > BOUND


@pytest.mark.parametrize("serial", [True, False])
def test_scaled_cos_sin_f32_matches_numpy(serial, rng):
    n, m = 37, 19
    logits = (rng.standard_normal((n, m)) * 5).astype(np.float32)
    scale = rng.uniform(0.1, 2.0, n).astype(np.float32)
    features = np.zeros((n, 2 * m), dtype=np.float32)
    features[:, :m] = logits
    (scaled_cos_sin_f32_serial if serial else scaled_cos_sin_f32)(features, scale)
    t = logits.astype(np.float64)
    expected = np.concatenate([np.cos(t), np.sin(t)], axis=1) * scale[:, None]
    np.testing.assert_allclose(features, expected, rtol=0, atol=2 * BOUND * scale.max())


def test_serial_and_parallel_are_identical(rng):
    features = (rng.standard_normal((64, 40)) * 30).astype(np.float32)
    scale = np.ones(64, dtype=np.float32)
    a, b = features.copy(), features.copy()
    scaled_cos_sin_f32(a, scale)
    scaled_cos_sin_f32_serial(b, scale)
    np.testing.assert_array_equal(a, b)
