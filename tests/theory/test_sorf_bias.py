"""The SORF bias bound (theory.coupling_forms.sorf_bias_interval, formulas §3.3 [W6]), exactly.

Every expectation here is exact: all sign diagonals are enumerated (p = 4: all of
D1, D2, D3 through favor's own sorf_matrix; p = 8: all of D2, D3 with D1 averaged in closed
form), and chi lengths are integrated by Gauss quadrature. No Monte Carlo.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import gamma as gamma_fn
from scipy.special import roots_genlaguerre

from favor.couplings import hadamard_matrix, sorf_matrix
from theory.coupling_forms import sorf_bias_interval, sorf_fourth_moment_sum


def _all_signs(n: int, *, first_positive: bool = False) -> np.ndarray:
    """Every sign vector of length n; ``first_positive`` keeps half (an even integrand does not
    see a global sign flip)."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    return signs[signs[:, 0] > 0] if first_positive else signs


def _mixed(v: np.ndarray, p: int, n_blocks: int = 3) -> np.ndarray:
    """Every u = H D2 H D3 v (three blocks), H D3 v (two) or v (one), one row per sign choice."""
    h = hadamard_matrix(p)
    padded = np.zeros(p)
    padded[: v.size] = v
    if n_blocks == 1:
        return padded[None]
    d3 = _all_signs(p, first_positive=True)
    u = (d3 * padded) @ h
    if n_blocks == 2:
        return u
    d2 = _all_signs(p, first_positive=True)
    return ((u[:, None, :] * d2[None]) @ h).reshape(-1, p)


def _chi_nodes(p: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Gauss nodes and weights for E f(t), t = chi_p / sqrt(p): l^2 / 2 ~ Gamma(p / 2)."""
    x, w = roots_genlaguerre(n, p / 2 - 1)
    return np.sqrt(2 * x / p), w / gamma_fn(p / 2)


def _exact_mean(v: np.ndarray, p: int, feature: str, norms: str, n_blocks: int = 3) -> float:
    """E over all signs (and chi lengths) of prod cos(t u_j) or prod cosh(t u_j)."""
    u = _mixed(v, p, n_blocks)
    t, wt = (np.array([1.0]), np.array([1.0])) if norms == "fixed" else _chi_nodes(p)
    f = np.cos if feature == "trigonometric" else np.cosh
    return float(sum(w * np.prod(f(s * u), axis=-1).mean() for s, w in zip(t, wt, strict=True)))


@pytest.mark.parametrize("n_blocks", [1, 2, 3])
def test_fourth_moment_sum_is_exact(n_blocks):
    v = np.array([0.7, -0.2, 0.4, 0.1, -0.5])
    u = _mixed(v, 8, n_blocks)
    np.testing.assert_allclose(
        sorf_fourth_moment_sum(v, 8, n_blocks=n_blocks), np.mean(np.sum(u**4, axis=1)), rtol=1e-13
    )


def test_scalar_inequalities_behind_the_bound():
    a = np.linspace(0.0, 12.0, 200_001)
    assert np.all(np.abs(np.cos(a) - np.exp(-(a**2) / 2)) <= a**4 / 12 + 1e-15)
    lc = np.log(np.cosh(a))
    assert np.all(lc <= a**2 / 2 + 1e-15)
    assert np.all(lc >= a**2 / 2 - a**4 / 12 - 1e-12)


def test_library_sorf_mean_equals_the_rademacher_product():
    """p = 4: all 2^12 sign choices through favor's sorf_matrix; E_D1 cos = prod cos(u_j)."""
    p, delta = 4, np.array([0.9, -0.3, 0.5, 0.2])
    signs = _all_signs(3 * p).reshape(-1, 3, p)
    w = sorf_matrix(signs, np.full(len(signs) * p, np.sqrt(p)), p)
    library = float(np.cos(w @ delta).mean())
    np.testing.assert_allclose(library, _exact_mean(delta, p, "trigonometric", "fixed"), rtol=1e-13)
    lo, hi = sorf_bias_interval(delta, np.zeros(p), p, norms="fixed")
    assert lo <= library - np.exp(-(delta @ delta) / 2) <= hi


@pytest.mark.parametrize("norms", ["fixed", "chi"])
@pytest.mark.parametrize("kind", ["axis", "spread", "random"])
@pytest.mark.parametrize("z", [0.5, 1.5, 2.5])
def test_exact_trigonometric_bias_is_inside_the_bound(norms, kind, z):
    p, d = 8, 6
    v = {"axis": np.eye(d)[0], "spread": np.ones(d), "random": np.arange(1.0, d + 1) % 3 - 1}[kind]
    v = z * v / np.linalg.norm(v)
    bias = _exact_mean(v, p, "trigonometric", norms) - np.exp(-(z**2) / 2)
    lo, hi = sorf_bias_interval(v, np.zeros(d), p, norms=norms)
    assert lo <= bias <= hi, (bias, lo, hi)


@pytest.mark.parametrize("norms", ["fixed", "chi"])
@pytest.mark.parametrize("r", [0.5, 1.0, 1.8])
def test_exact_positive_bias_is_inside_the_bound(norms, r):
    p = 8
    s = r * np.array([0.8, 0.0, -0.6, 0.0, 0.0])
    x, y = s / 2 + np.array([0, 0.3, 0, 0, 0]), s / 2 - np.array([0, 0.3, 0, 0, 0])
    rel = _exact_mean(s, p, "positive", norms) * np.exp(-(r**2) / 2) - 1
    lo, hi = sorf_bias_interval(x, y, p, feature="positive", norms=norms)
    assert lo <= rel <= hi, (rel, lo, hi)


def test_one_block_violates_the_three_block_bound():
    """The negative control of claim W6: no mixing leaves cos(z) for an axis difference."""
    p, z = 64, 1.5
    v = z * np.eye(p)[0]
    bias = _exact_mean(v, p, "trigonometric", "fixed", n_blocks=1) - np.exp(-(z**2) / 2)
    np.testing.assert_allclose(bias, np.cos(z) - np.exp(-(z**2) / 2), rtol=1e-13)
    _, hi = sorf_bias_interval(v, np.zeros(p), p, norms="fixed")
    assert abs(bias) > 10 * hi


def test_bound_arguments_are_checked():
    with pytest.raises(ValueError, match="n_padded must be a power of two"):
        sorf_fourth_moment_sum(np.ones(5), 6)
    with pytest.raises(ValueError, match="norms must be"):
        sorf_bias_interval(np.ones(4), np.zeros(4), 4, norms="gauss")
    with pytest.raises(ValueError, match="feature must be"):
        sorf_bias_interval(np.ones(4), np.zeros(4), 4, feature="relu")
    with pytest.raises(ValueError, match="needs"):
        sorf_bias_interval(np.ones(4), np.ones(4), 4, feature="positive")
