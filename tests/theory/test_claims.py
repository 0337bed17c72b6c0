"""Every registered claim passes with its fixed seed (quick profile).

Each check decides at a declared false-alarm rate of at most 1e-6 (theory._stats), so a
correct implementation fails a given seed with probability at most 1e-6, decided once
when the seed was chosen (formulas §8.2).
"""

from __future__ import annotations

import math

import pytest

from theory.registry import CLAIMS, get_claim, run_claim


@pytest.mark.statistical
@pytest.mark.parametrize("claim_id", [spec.claim_id for spec in CLAIMS])
def test_claim_passes_with_its_fixed_seed(claim_id):
    result = run_claim(claim_id)
    assert result.passed, str(result)
    assert result.alpha <= 1e-6
    assert result.claim_id == claim_id
    assert result.informational or result.resolving_power is not None, claim_id


def test_every_claim_has_a_negative_control_and_a_distinct_seed():
    seeds = set()
    for spec in CLAIMS:
        assert spec.controls or spec.informational, spec.claim_id
        seed = spec.kwargs.get("seed")
        if seed is not None:
            assert seed not in seeds
            seeds.add(seed)


def test_claim_ids_are_unique_and_lookup_rejects_unknown():
    ids = [spec.claim_id for spec in CLAIMS]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="claim_id"):
        get_claim("Z9")
    with pytest.raises(ValueError, match="profile"):
        run_claim("O2", profile="huge")
    with pytest.raises(ValueError, match="control"):
        run_claim("O2", control="nothing")


def test_results_record_seed_trials_and_interval():
    result = run_claim("U1")
    assert result.seed == 101
    assert result.n_trials == 20_000
    lo, hi = result.interval
    assert lo <= result.estimate <= hi
    assert math.isfinite(result.estimate)
    assert "U1" in str(result)
    assert "PASS" in str(result)


def test_attention_claims_fail_loudly_when_favor_attention_is_missing(monkeypatch):
    import favor

    monkeypatch.delattr(favor, "favor_attention", raising=False)
    for claim_id in ("A1", "A2"):
        result = run_claim(claim_id)
        assert not result.passed
        assert "SKIPPED" in result.statistic
