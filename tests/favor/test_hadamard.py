"""favor._jit.hadamard against its slow twin, the dense Walsh-Hadamard matrix."""

from __future__ import annotations

import numpy as np
import pytest

from favor._jit.hadamard import fwht_rows, sorf_project
from favor.couplings import hadamard_matrix, next_power_of_two, sorf_matrix, structured_factors


def _dense_unnormalised_hadamard(p: int) -> np.ndarray:
    """Slow twin: (-1)^popcount(j & k), entry by entry."""
    return np.array([[(-1.0) ** bin(j & k).count("1") for k in range(p)] for j in range(p)])


@pytest.mark.parametrize("p", [1, 2, 8, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fwht_rows_matches_dense(p, dtype, rng):
    x = rng.standard_normal((5, p)).astype(dtype)
    expected = x.astype(np.float64) @ _dense_unnormalised_hadamard(p).T
    fwht_rows(x)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(x, expected, rtol=tol, atol=tol * np.sqrt(p))


def test_hadamard_matrix_is_normalised_sylvester():
    h = hadamard_matrix(16)
    np.testing.assert_allclose(h, _dense_unnormalised_hadamard(16) / 4.0, atol=0)
    np.testing.assert_allclose(h @ h, np.eye(16), atol=1e-15)
    with pytest.raises(ValueError, match="p must be a power of two"):
        hadamard_matrix(12)


def _dense_sorf(signs: np.ndarray, lengths: np.ndarray, n_features: int) -> np.ndarray:
    """Slow twin of sorf_matrix: dense products H D1 H D2 H D3 per block."""
    p = signs.shape[2]
    h = _dense_unnormalised_hadamard(p) / np.sqrt(p)
    blocks = [h @ np.diag(s[0]) @ h @ np.diag(s[1]) @ h @ np.diag(s[2]) for s in signs]
    return np.concatenate(blocks)[: len(lengths), :n_features] * lengths[:, None]


@pytest.mark.parametrize(
    ("n_components", "n_features"), [(20, 12), (7, 16), (40, 5), (1, 1), (300, 260)]
)
def test_sorf_matrix_matches_dense_products(n_components, n_features, rng):
    signs, lengths = structured_factors(n_components, n_features, rng=rng)
    np.testing.assert_allclose(
        sorf_matrix(signs, lengths, n_features),
        _dense_sorf(signs, lengths, n_features),
        atol=1e-13,
    )


@pytest.mark.parametrize(
    ("n_components", "n_features"), [(20, 12), (7, 16), (16, 16), (33, 16), (5, 1), (3, 3)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sorf_project_matches_dense_product(n_components, n_features, dtype, rng):
    signs, lengths = structured_factors(n_components, n_features, rng=rng)
    p = next_power_of_two(n_features)
    x = rng.standard_normal((9, n_features))
    expected = x @ _dense_sorf(signs, lengths, n_features).T
    # Output into the first half of a wider buffer: rows contiguous, row stride 2m.
    buffer = np.full((9, 2 * n_components), np.nan, dtype=dtype)
    sorf_project(
        x.astype(dtype),
        signs.astype(dtype),
        (lengths * p**-1.5).astype(dtype),
        buffer[:, :n_components],
    )
    tol = 2e-5 if dtype == np.float32 else 1e-12
    scale = np.abs(expected).max()
    np.testing.assert_allclose(buffer[:, :n_components], expected, rtol=0, atol=tol * scale)
    assert np.isnan(buffer[:, n_components:]).all()
