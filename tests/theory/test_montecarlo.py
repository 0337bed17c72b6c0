"""theory.montecarlo: seeding, the stacked-projection evaluation, throughput."""

from __future__ import annotations

import numpy as np
import pytest

import favor
from theory import montecarlo


def test_kernel_estimates_are_reproducible_and_seed_dependent():
    x = np.array([[0.3, 0.1, -0.2]])
    y = np.array([[0.2, -0.4, 0.1]])
    a = montecarlo.kernel_estimates(x, y, n_trials=300, seed=5, block_size=64)
    b = montecarlo.kernel_estimates(x, y, n_trials=300, seed=5, block_size=64)
    c = montecarlo.kernel_estimates(x, y, n_trials=300, seed=6, block_size=64)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (300, 1)


@pytest.mark.parametrize("feature_map", ["positive", "hyperbolic", "trigonometric", "relu"])
@pytest.mark.parametrize(("sampler", "m"), [("iid", 5), ("orthogonal", 5), ("orthogonal", 7)])
def test_stacked_evaluation_equals_one_call_per_trial(feature_map, sampler, m):
    # The runner evaluates the feature map once on B stacked projections; this must equal
    # phi(x; W_b)^T phi(y; W_b) for each trial's own W_b, drawn from the same block stream.
    d, n, seed = 3, 6, 9
    rng0 = np.random.default_rng(0)
    x, y = 0.4 * rng0.standard_normal((2, 2, d))
    kernel = "arccos" if feature_map == "relu" else "softmax"
    est = montecarlo.kernel_estimates(
        x,
        y,
        feature_map=feature_map,
        sampler=sampler,
        kernel=kernel,
        n_components=m,
        n_trials=n,
        seed=seed,
        block_size=n,
    )
    child = np.random.SeedSequence(seed).spawn(1)[0]
    w = montecarlo.draw_projections(sampler, m, d, n, np.random.default_rng(child))
    fn = favor.registry.FEATURE_MAPS[feature_map]
    direct = np.array(
        [np.sum(fn(x, w[b], kernel=kernel) * fn(y, w[b], kernel=kernel), axis=1) for b in range(n)]
    )
    np.testing.assert_allclose(est, direct, rtol=1e-12)


def test_draw_projections_has_the_law_of_one_sampler_call():
    rng = np.random.default_rng(3)
    w = montecarlo.draw_projections("orthogonal", 5, 4, 10, rng)
    assert w.shape == (10, 5, 4)
    # First 4 rows of each trial are one orthogonal block.
    gram = w[:, :4] @ np.swapaxes(w[:, :4], 1, 2)
    off = gram - np.einsum("bii->bi", gram)[:, :, None] * np.eye(4)
    assert np.abs(off).max() < 1e-12


def test_gram_estimates_agree_with_kernel_estimates():
    pts = np.array([[0.1, 0.2], [0.5, -0.3], [-0.4, 0.0]])
    g = montecarlo.gram_estimates(pts, n_components=4, n_trials=20, seed=3, block_size=20)
    k = montecarlo.kernel_estimates(
        pts[[0]],
        pts[[2]],
        feature_map="trigonometric",
        sampler="orthogonal",
        kernel="rbf",
        n_components=4,
        n_trials=20,
        seed=3,
        block_size=20,
    )
    np.testing.assert_allclose(g[:, 0, 2], k[:, 0], rtol=1e-12)
    np.testing.assert_allclose(g, np.swapaxes(g, 1, 2))


def test_run_blocks_spawns_one_child_per_block():
    def work(rng, n):
        return rng.standard_normal(n)

    a = montecarlo.run_blocks(work, 10, 4, block_size=4)
    children = np.random.SeedSequence(4).spawn(3)
    expected = np.concatenate(
        [
            np.random.default_rng(c).standard_normal(k)
            for c, k in zip(children, (4, 4, 2), strict=True)
        ]
    )
    np.testing.assert_array_equal(a, expected)
    with pytest.raises(ValueError, match="n_trials"):
        montecarlo.run_blocks(work, 0, 1)


def test_resolvers_reject_unknown_names():
    with pytest.raises(ValueError, match="sampler"):
        montecarlo.resolve_sampler("halton")
    with pytest.raises(ValueError, match="feature_map"):
        montecarlo.resolve_feature_map("sigmoid")


def test_summarize_records_the_root_seed():
    s = montecarlo.summarize(np.arange(8.0).reshape(4, 2), seed=17)
    assert s[0].root_seed == 17
    assert s[0].n_trials == 4
    assert "seed=17" in str(s[0])


def test_measure_throughput_reports_rates():
    t = montecarlo.measure_throughput(n_trials=512, n_pairs=2)
    assert t["estimates_per_second"] == pytest.approx(2 * t["trials_per_second"])
    assert t["seconds"] > 0
