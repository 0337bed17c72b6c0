"""favor.couplings: shapes, exact structure, marginal laws, unbiasedness with negative controls.

Statistical decisions use |z| >= 5 (two-sided false-alarm rate 5.7e-7 under the CLT,
formulas §8.2); every unbiasedness test has a broken sampler that the same rule rejects.
"""

from __future__ import annotations

import numpy as np
import pytest

from favor.couplings import (
    MAX_QMC_FEATURES,
    qmc_projection,
    qmc_uniform,
    simplex_directions,
    simplex_projection,
    sorf_matrix,
    structured_factors,
    structured_projection,
)
from favor.sampling import orthogonal_projection

Z_CRIT = 5.0
SAMPLERS = {
    "structured": structured_projection,
    "qmc": qmc_projection,
    "simplex": simplex_projection,
    "simplex+": lambda m, d, **kw: simplex_projection(m, d, norm_dependent=True, **kw),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize(("m", "d"), [(1, 1), (5, 3), (7, 4), (13, 6), (64, 8), (3, 20)])
def test_shapes_dtype_and_seed(name, m, d):
    w = SAMPLERS[name](m, d, rng=7)
    assert w.shape == (m, d)
    assert w.dtype == np.float64
    assert np.isfinite(w).all()
    np.testing.assert_array_equal(w, SAMPLERS[name](m, d, rng=7))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_bad_arguments_are_named(name):
    with pytest.raises(ValueError, match="n_components"):
        SAMPLERS[name](0, 3)
    with pytest.raises(ValueError, match="n_features"):
        SAMPLERS[name](3, -1)


def test_qmc_rejects_too_many_features():
    with pytest.raises(ValueError, match="n_features must be at most 21201"):
        qmc_uniform(2, MAX_QMC_FEATURES + 1)


@pytest.mark.parametrize("d", [4, 8, 16])
def test_structured_fixed_blocks_are_orthogonal(d, rng):
    w = structured_projection(2 * d + 3, d, norms="fixed", rng=rng)
    for start in range(0, 2 * d + 3, d):
        block = w[start : start + d]
        gram = block @ block.T
        np.testing.assert_allclose(gram, d * np.eye(len(block)), atol=1e-12)


def test_structured_padding_keeps_first_columns(rng):
    """d = 5 pads to p = 8: the matrix is the first 5 columns of the p-column blocks."""
    seed = int(rng.integers(2**31))
    signs, lengths = structured_factors(10, 5, rng=seed)
    full = sorf_matrix(signs, lengths, 8)
    np.testing.assert_array_equal(structured_projection(10, 5, rng=seed), full[:, :5])
    assert signs.shape == (2, 3, 8)


def test_structured_without_signs_is_deterministic():
    a = structured_projection(8, 8, norms="fixed", random_signs=False, rng=0)
    b = structured_projection(8, 8, norms="fixed", random_signs=False, rng=1)
    np.testing.assert_array_equal(a, b)


def test_simplex_directions_are_regular():
    for d in (2, 3, 7):
        s = simplex_directions(d)
        expected = np.full((d, d), -1.0 / (d - 1))
        np.fill_diagonal(expected, 1.0)
        np.testing.assert_allclose(s @ s.T, expected, atol=1e-14)
    np.testing.assert_array_equal(simplex_directions(1), [[1.0]])


def test_simplex_blocks_keep_the_simplex_gram(rng):
    d, m = 5, 13
    w = simplex_projection(m, d, norms="fixed", rng=rng)
    s = simplex_directions(d)
    for start in range(0, m, d):
        block = w[start : start + d]
        k = len(block)
        np.testing.assert_allclose(block @ block.T, d * (s @ s.T)[:k, :k], atol=1e-12)


def test_norm_dependent_simplex_two_row_block_is_antiparallel():
    """Two rows of unequal lengths cannot sum to zero: the best is opposite directions."""
    w = simplex_projection(2, 3, norm_dependent=True, rng=3)
    cosine = w[0] @ w[1] / np.linalg.norm(w[0]) / np.linalg.norm(w[1])
    np.testing.assert_allclose(cosine, -1.0, atol=1e-12)


@pytest.mark.parametrize(("m", "d"), [(16, 16), (21, 8), (5, 8)])
def test_norm_dependent_simplex_blocks_sum_to_zero_with_the_simplex_lengths(m, d):
    """Same rotations and lengths as the simplex coupling; every block's rows sum to zero."""
    w = simplex_projection(m, d, norm_dependent=True, rng=3)
    plain = simplex_projection(m, d, rng=3)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), np.linalg.norm(plain, axis=1))
    for start in range(0, m, d):
        block = w[start : start + d]
        assert np.linalg.norm(block.sum(axis=0)) < 1e-9 * np.linalg.norm(block, axis=1).sum()
    assert not np.allclose(w, plain)


def test_norm_dependent_simplex_needs_chi_lengths():
    with pytest.raises(ValueError, match="norm_dependent=True needs norms='chi'"):
        simplex_projection(4, 4, norms="fixed", norm_dependent=True)


@pytest.mark.parametrize("k", [3, 6])
def test_qmc_power_of_two_is_stratified_in_every_coordinate(k, rng):
    """A scrambled Sobol (0, k, d)-net: each coordinate has one point per 1/2^k interval."""
    m = 2**k
    u = qmc_uniform(m, 5, rng=rng)
    assert (u > 0).all()
    assert (u < 1).all()
    for j in range(5):
        np.testing.assert_array_equal(np.sort(np.floor(u[:, j] * m)), np.arange(m))


def test_qmc_not_power_of_two_is_accepted_without_warning(rng):
    assert qmc_projection(12, 3, rng=rng).shape == (12, 3)


# --- unbiasedness -----------------------------------------------------------------------


def _pair(d=6):
    rng = np.random.default_rng(1234)
    x = rng.standard_normal(d) * 0.35
    y = rng.standard_normal(d) * 0.35
    return x, y


def _z_scores(draw, n_trials=3000, seed=0):
    """z of the trig (Gaussian kernel) and positive (softmax kernel) estimators' means."""
    x, y = _pair()
    delta, z = x - y, x + y
    lam = np.exp(-(x @ x + y @ y) / 2)
    rng = np.random.default_rng(seed)
    trig = np.empty(n_trials)
    pos = np.empty(n_trials)
    for t in range(n_trials):
        w = draw(rng)
        trig[t] = np.cos(w @ delta).mean()
        pos[t] = lam * np.exp(w @ z).mean()
    out = {}
    for name, values, exact in (
        ("trig", trig, np.exp(-(delta @ delta) / 2)),
        ("pos", pos, np.exp(x @ y)),
    ):
        diff = values.mean() - exact
        se = values.std(ddof=1) / np.sqrt(n_trials)
        # A deterministic sampler (se = 0) is "infinitely significant" unless exact.
        out[name] = diff / se if se > 0 else (np.inf if diff != 0 else 0.0)
    return out


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["qmc", "simplex", "simplex+"])
def test_unbiased_for_gaussian_and_softmax_kernels(name):
    n_trials = 500 if name == "qmc" else 3000  # building a Sobol engine costs ~10 ms
    z = _z_scores(lambda rng: SAMPLERS[name](11, 6, rng=rng), n_trials)  # m % d != 0
    assert abs(z["trig"]) < Z_CRIT, z
    assert abs(z["pos"]) < Z_CRIT, z


@pytest.mark.statistical
@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda rng: qmc_projection(11, 6, scramble=False), id="unscrambled"),
        pytest.param(lambda rng: simplex_projection(11, 6, rotate=False, rng=rng), id="unrotated"),
        pytest.param(
            lambda rng: 1.05 * simplex_projection(11, 6, norm_dependent=True, rng=rng),
            id="norm-dependent-rows-x1.05",
        ),
    ],
)
def test_negative_controls_are_rejected(broken):
    z = _z_scores(broken)
    assert max(abs(z["trig"]), abs(z["pos"])) >= Z_CRIT, z


def _axis_mse(draw, n_trials, seed, d):
    """Squared errors of the Gaussian-kernel (cos) estimate at Delta = 1.5 e_1, one per trial.

    An axis-aligned difference is the hard case for Hadamard structure: without random
    signs every SORF row has the same |component| along e_1.
    """
    delta = np.zeros(d)
    delta[0] = 1.5
    exact = np.exp(-(delta @ delta) / 2)
    rng = np.random.default_rng(seed)
    return np.array([(np.cos(draw(rng) @ delta).mean() - exact) ** 2 for _ in range(n_trials)])


@pytest.mark.statistical
@pytest.mark.parametrize(("m", "d"), [(32, 32), (64, 48)])  # 48 pads to p = 64: m = p
def test_structured_error_close_to_orthogonal_and_signs_matter(m, d):
    """SORF (chi lengths) is slightly biased, but its MSE stays within 1.15x of ORF's.

    Decision: the z of mean(se_sorf) - 1.15 mean(se_orf) must be < 5 (SORF not shown worse
    than 1.15x ORF); for the control without random signs it must be >= 5.
    """
    n = 2000
    orf = _axis_mse(lambda rng: orthogonal_projection(m, d, rng=rng), n, 1, d)
    for signs, expect_worse in ((True, False), (False, True)):
        sorf = _axis_mse(
            lambda rng, s=signs: structured_projection(m, d, random_signs=s, rng=rng), n, 2, d
        )
        diff = sorf.mean() - 1.15 * orf.mean()
        se = np.sqrt(sorf.var(ddof=1) / n + 1.15**2 * orf.var(ddof=1) / n)
        z = diff / se
        assert (z >= Z_CRIT) == expect_worse, (signs, z, sorf.mean(), orf.mean())


# --- where structured rows are allowed (formulas §3.3 [W6]) ------------------------------


@pytest.mark.parametrize("features", ["relu", "oprf", "saderf"])
def test_structured_is_refused_for_maps_without_a_bias_bound(features):
    import favor

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((5, 8)) for _ in range(3))
    with pytest.raises(ValueError, match=r"no proven bound.*'trigonometric', 'positive'"):
        favor.favor_attention(q, k, v, features=features, projection="structured", rng=0)


def test_structured_fit_is_refused_for_oprf_and_allowed_for_bounded_maps():
    from favor import FavorSampler

    x = np.random.default_rng(1).standard_normal((6, 5))
    with pytest.raises(ValueError, match="projection='structured' is not unbiased"):
        FavorSampler("softmax", features="oprf", projection="structured").fit(x)
    for features in ("trigonometric", "positive", "hyperbolic"):
        z = FavorSampler(features=features, projection="structured", n_components=8).fit_transform(
            x
        )
        assert np.isfinite(z).all()
