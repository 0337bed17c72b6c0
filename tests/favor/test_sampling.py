"""favor.sampling: shapes, exact invariants, Haar sign symmetry, chi norms, the QR sign-fix regression.

Statistical tests are seeded and use the |z| >= 5 rule (two-sided false-alarm rate
5.7e-7 per decision under the CLT; formulas §8.2), or a KS p-value below 1e-6. Each has a
negative control, a deliberately broken sampler that the same decision must reject.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from favor.features import positive_features
from favor.registry import SAMPLERS
from favor.sampling import (
    draw_projection,
    haar_orthogonal,
    iid_projection,
    orthogonal_projection,
)

Z_CRIT = 5.0  # two-sided N(0,1) tail 5.7e-7


def _qr_without_sign_fix(n_features: int, rng: np.random.Generator) -> np.ndarray:
    """The broken block of the official Performer code: LAPACK's Q, no sign correction."""
    q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    return q.T


def _orthogonal_unfixed(n_components: int, n_features: int, rng: np.random.Generator):
    """Negative control: chi-norm ORF built from unfixed QR blocks (formulas §3.1, [C4a])."""
    n_blocks = -(-n_components // n_features)
    directions = np.concatenate([_qr_without_sign_fix(n_features, rng) for _ in range(n_blocks)])[
        :n_components
    ]
    return directions * np.sqrt(rng.chisquare(n_features, size=n_components))[:, None]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize(("m", "d"), [(1, 1), (3, 5), (5, 3), (8, 8), (17, 4)])
def test_shape_dtype_and_seed_reproducibility(name, m, d):
    w = SAMPLERS[name](m, d, rng=7)
    assert w.shape == (m, d)
    assert w.dtype == np.float64
    np.testing.assert_array_equal(w, SAMPLERS[name](m, d, rng=7))
    np.testing.assert_array_equal(w, draw_projection(name, m, d, rng=np.random.default_rng(7)))
    assert not np.array_equal(w, SAMPLERS[name](m, d, rng=8))


def test_draw_projection_per_head_stacks_independent_draws():
    rng = np.random.default_rng(3)
    heads = draw_projection("orthogonal", 4, 4, rng=3, n_heads=3)
    assert heads.shape == (3, 4, 4)
    for h in range(3):
        np.testing.assert_array_equal(heads[h], orthogonal_projection(4, 4, rng=rng))


def _haar_block(n_features: int, rng: np.random.Generator) -> np.ndarray:
    """One orthogonal block of the production sampler, rows rescaled to unit length."""
    return orthogonal_projection(n_features, n_features, norms="fixed", rng=rng) / np.sqrt(
        n_features
    )


@pytest.mark.parametrize("d", [1, 2, 5, 16])
def test_haar_block_rows_are_orthonormal(d):
    block = _haar_block(d, np.random.default_rng(d))
    np.testing.assert_allclose(block @ block.T, np.eye(d), rtol=0, atol=1e-12)
    # haar_orthogonal (used by favor.couplings) is the same draw as the production blocks.
    np.testing.assert_allclose(haar_orthogonal(d, np.random.default_rng(d)), block, atol=1e-15)


@pytest.mark.parametrize(("m", "d"), [(4, 4), (6, 4), (13, 5), (3, 7)])
def test_fixed_norm_blocks_are_orthogonal_with_length_sqrt_d(m, d):
    w = orthogonal_projection(m, d, norms="fixed", rng=1)
    for start in range(0, m, d):
        block = w[start : start + d]
        gram = block @ block.T
        np.testing.assert_allclose(gram, d * np.eye(len(block)), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("m", "d"), [(4, 4), (13, 5)])
def test_chi_norm_blocks_are_orthogonal_before_scaling(m, d):
    w = orthogonal_projection(m, d, rng=2)
    directions = w / np.linalg.norm(w, axis=1, keepdims=True)
    for start in range(0, m, d):
        block = directions[start : start + d]
        np.testing.assert_allclose(block @ block.T, np.eye(len(block)), rtol=0, atol=1e-12)


def test_blocks_beyond_n_features_are_not_orthogonal_to_each_other():
    # Independent blocks: rows of different blocks are not orthogonal (almost surely).
    w = orthogonal_projection(8, 4, norms="fixed", rng=4)
    cross = w[:4] @ w[4:].T
    assert np.abs(cross).max() > 1e-3


def _sign_z_scores(block_fn, d: int, n_draws: int, seed: int) -> np.ndarray:
    """z-scores of the count of positive entries of each block entry over draws."""
    rng = np.random.default_rng(seed)
    positives = np.zeros((d, d))
    for _ in range(n_draws):
        positives += block_fn(d, rng) > 0
    return (positives - n_draws / 2) / np.sqrt(n_draws / 4)


@pytest.mark.statistical
def test_haar_entry_signs_are_symmetric():
    """Every entry of a Haar matrix is symmetric about 0: P(Q_ij > 0) = 1/2.

    16 entries, each |z| >= 5.5 (rate 3.8e-8 each, 6e-7 for the family).
    """
    z = _sign_z_scores(_haar_block, 4, 4000, seed=11)
    assert np.abs(z).max() < 5.5, z


@pytest.mark.statistical
def test_negative_control_unfixed_qr_signs_are_skewed():
    z = _sign_z_scores(_qr_without_sign_fix, 4, 4000, seed=11)
    assert np.abs(z).max() >= 5.5, z


@pytest.mark.statistical
@pytest.mark.parametrize("d", [3, 8])
def test_chi_row_norms_follow_chi_d(d):
    """Row lengths are chi(d): KS test p > 1e-6, and the squared-norm mean within 5 sigma."""
    w = np.concatenate([orthogonal_projection(d, d, rng=s) for s in range(600)])
    norms = np.linalg.norm(w, axis=1)
    assert scipy.stats.kstest(norms, scipy.stats.chi(d).cdf).pvalue > 1e-6
    sq = norms**2
    z = (sq.mean() - d) / np.sqrt(2 * d / sq.size)
    assert abs(z) < Z_CRIT


@pytest.mark.statistical
def test_negative_control_fixed_norms_fail_the_chi_test():
    d = 8
    w = np.concatenate([orthogonal_projection(d, d, norms="fixed", rng=s) for s in range(600)])
    norms = np.linalg.norm(w, axis=1)
    assert scipy.stats.kstest(norms, scipy.stats.chi(d).cdf).pvalue < 1e-6


def _positive_orf_z_score(sampler, n_replicates: int, seed: int) -> float:
    """z of the mean positive ORF estimate of SM(x, y) for x = y = 0.5 e_1, d = m = 8.

    The one-sided exp features read the first coordinate of every row, so a sampler
    whose rows prefer a half-space is biased (formulas §3.1, 8.2 [C4a]); |x+y|^2 = 1 keeps
    the estimator's tails light enough for the CLT (formulas §8.2 rule (a)).
    """
    d = m = 8
    x = np.zeros(d)
    x[0] = 0.5
    exact = np.exp(x @ x)
    rng = np.random.default_rng(seed)
    estimates = np.empty(n_replicates)
    for r in range(n_replicates):
        w = sampler(m, d, rng)
        phi = positive_features(x, w)
        estimates[r] = phi @ phi
    return (estimates.mean() - exact) / (estimates.std(ddof=1) / np.sqrt(n_replicates))


@pytest.mark.statistical
def test_orthogonal_positive_estimator_is_unbiased_with_sign_fix():
    z = _positive_orf_z_score(
        lambda m, d, rng: orthogonal_projection(m, d, rng=rng), 20000, seed=21
    )
    assert abs(z) < Z_CRIT, z


@pytest.mark.statistical
def test_negative_control_qr_without_sign_fix_is_biased():
    z = _positive_orf_z_score(_orthogonal_unfixed, 20000, seed=21)
    assert abs(z) >= Z_CRIT, z


def test_iid_projection_matches_generator_stream():
    np.testing.assert_array_equal(
        iid_projection(3, 2, rng=5), np.random.default_rng(5).standard_normal((3, 2))
    )


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", None, True])
def test_invalid_sizes_name_the_argument(name, bad):
    with pytest.raises(ValueError, match="n_components"):
        SAMPLERS[name](bad, 3)
    with pytest.raises(ValueError, match="n_features"):
        SAMPLERS[name](3, bad)


def test_invalid_norms_projection_and_rng_name_the_argument():
    with pytest.raises(ValueError, match="norms"):
        orthogonal_projection(3, 3, norms="unit")
    with pytest.raises(ValueError, match="projection"):
        draw_projection("rbf", 3, 3)
    with pytest.raises(ValueError, match="rng"):
        iid_projection(3, 3, rng="seed")
    with pytest.raises(ValueError, match="n_heads"):
        draw_projection("iid", 3, 3, n_heads=0)
