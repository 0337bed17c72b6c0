"""Every claim's check, fed a deliberately broken variant, must fail.

The broken variants (theory.controls): features scaled by 1.05, QR blocks without the sign
fix, fixed sqrt(d) row norms where chi norms are claimed, an epsilon inside the features,
iid rows where orthogonality is claimed, non-orthogonal coupling in the exact check.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

import favor.registry
import favor.sampling
from theory.registry import CLAIMS, run_claim

CONTROLS = [(spec.claim_id, label) for spec in CLAIMS for label in spec.controls]


@pytest.mark.statistical
@pytest.mark.parametrize(("claim_id", "control"), CONTROLS, ids=[f"{c}-{k}" for c, k in CONTROLS])
def test_negative_control_fails(claim_id, control):
    result = run_claim(claim_id, control=control)
    assert not result.passed, str(result)
    assert "SKIPPED" not in result.statistic


_ORIGINAL_ORTHOGONAL = favor.sampling.orthogonal_projection


def _shadow_orthogonal(sampler):
    """Register ``sampler(m, d, *, rng)`` as "orthogonal" inside a with block (the hook)."""
    spec = favor.registry.SAMPLERS["orthogonal"]
    draw = functools.partial(_call_sampler, sampler)
    return favor.registry.register_sampler(dataclasses.replace(spec, draw=draw), replace=True)


def _call_sampler(sampler, n_components, n_features, rng):
    return sampler(n_components, n_features, rng=rng)


def _fixed_norm_orthogonal(n_components, n_features, *, norms="chi", rng=None):
    # Ignores the requested norms: every row gets length sqrt(d).
    return _ORIGINAL_ORTHOGONAL(n_components, n_features, norms="fixed", rng=rng)


@pytest.mark.statistical
def test_fixed_norm_orthogonal_sampler_makes_the_run_fail(monkeypatch):
    # The acceptance test: replace the registered orthogonal sampler (and the
    # module attribute) by one with fixed sqrt(d) norms; the orthogonal claims must fail.
    monkeypatch.setattr(favor.sampling, "orthogonal_projection", _fixed_norm_orthogonal)
    with _shadow_orthogonal(_fixed_norm_orthogonal):
        for claim_id in ("U3", "U12", "V6", "C1"):
            result = run_claim(claim_id)
            assert not result.passed, str(result)
        from theory.__main__ import main

        assert main(["--claims", "U3,V2"]) == 1


@pytest.mark.statistical
def test_unsigned_qr_sampler_is_caught_by_the_orthogonal_claims():
    from theory.controls import unsigned_orthogonal_projection

    with _shadow_orthogonal(unsigned_orthogonal_projection):
        assert not run_claim("U3").passed
        assert not run_claim("V5").passed


def test_controls_are_what_they_claim():
    from theory.controls import (
        fixed_norm_sampler,
        scaled_feature_map,
        unsigned_orthogonal_projection,
    )

    w = fixed_norm_sampler("iid")(5, 3, rng=0)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), np.sqrt(3))
    x = np.ones((1, 3))
    base = favor.registry.FEATURE_MAPS["positive"](x, w)
    np.testing.assert_allclose(scaled_feature_map("positive")(x, w, "softmax"), 1.05 * base)
    q = unsigned_orthogonal_projection(3, 3, rng=1)
    directions = q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(directions @ directions.T, np.eye(3), atol=1e-12)
