"""Claims generated from favor's registry: a sampler registered through the hook gets its claims.

The S claims are built from ``favor.registry.SAMPLERS`` (every sampler documented as
marginally N(0, I_d)) and E6 loops over the registered samplers, so registering a toy
sampler with ``favor.registry.register_sampler`` -- and nothing else -- gives it an S
claim that ``python -m theory`` runs, that passes when the sampler keeps its documented
law, and that fails when it does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from favor.registry import SAMPLERS, Sampler, register_sampler
from theory.__main__ import main
from theory.registry import current_claims, run_claim, sampler_claims


def _antithetic(n_components: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    # Rows in antithetic pairs (row 2k+1 = -row 2k): marginally N(0, I_d), coupled.
    half = rng.standard_normal(((n_components + 1) // 2, n_features))
    return np.stack([half, -half], axis=1).reshape(-1, n_features)[:n_components]


def _uniform(n_components: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    # Unit-variance uniform entries: right mean, covariance and scale, wrong law.
    return np.sqrt(3.0) * rng.uniform(-1.0, 1.0, (n_components, n_features))


def _toy(name: str, draw) -> Sampler:
    return Sampler(
        name,
        draw,
        marginal="N(0, I_d)",
        coupling="antithetic pairs of rows",
        remainder="any m",
    )


def _claim_for(name: str):
    return next(spec for spec in sampler_claims() if spec.kwargs.get("sampler") == name)


def test_every_gaussian_registry_sampler_has_an_s_claim():
    claimed = {spec.kwargs["sampler"] for spec in sampler_claims()}
    gaussian = {n for n, s in SAMPLERS.items() if s.marginal.startswith("N(0, I_d)")}
    assert claimed == gaussian
    assert {"iid", "orthogonal", "qmc", "simplex"} <= claimed
    assert "structured" not in claimed  # documented as only approximately Gaussian
    ids = [spec.claim_id for spec in sampler_claims()]
    assert ids[:2] == ["S1", "S2"]
    assert [spec.kwargs["sampler"] for spec in sampler_claims()[:2]] == ["iid", "orthogonal"]


@pytest.mark.statistical
def test_registered_toy_sampler_gets_a_passing_s_claim_and_python_m_theory_runs_it(capsys):
    with register_sampler(_toy("antithetic", _antithetic)):
        spec = _claim_for("antithetic")
        assert (spec.claim_id, spec.kwargs) in [(s.claim_id, s.kwargs) for s in current_claims()]
        assert run_claim(spec).passed
        assert not run_claim(spec, control="rows x 1.01").passed
        assert main(["--claims", f"{spec.claim_id},E6"]) == 0
    out = capsys.readouterr().out
    assert f"{spec.claim_id} " in out
    assert all(s.kwargs.get("sampler") != "antithetic" for s in sampler_claims())


@pytest.mark.statistical
def test_registered_toy_sampler_with_the_wrong_law_fails_its_s_claim():
    with register_sampler(_toy("uniform", _uniform)):
        spec = _claim_for("uniform")
        result = run_claim(spec)
    assert not result.passed, str(result)
    assert "fourth moment" in result.statistic
