"""The mutation suite: every plausible bug in theory.mutations makes ``python -m theory`` fail.

Why subsets are enough. Each claim is a deterministic function of favor's behaviour: it
has its own fixed root seed and shares no state with the other claims, so a claim that
fails under a mutation when run alone fails identically inside the full quick run, whose
exit status is then 1. ``test_mutation_is_caught`` therefore runs ``python -m theory``'s
entry point (:func:`theory.__main__.main`) on the claims the catalogue lists as catching
each bug, with the bug injected, and asserts exit status 1 *and* that every listed claim
reports FAIL (so the published table stays true). ``test_environment_hook_*`` runs the
real command in a subprocess, through the environment variable, for a few bugs;
``test_full_quick_run_fails_under_mutation`` (slow) runs the whole quick profile for one.

The false-alarm side: ``test_correct_engine_passes_over_20_root_seeds`` (slow) reruns
every seeded claim with 20 other root seeds; each decides at alpha <= 1e-6, so a correct
engine fails one of these 20 x 30 decisions with probability below 1e-3.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from theory.mutations import ENVIRONMENT_VARIABLE, MUTATIONS, mutated
from theory.registry import CLAIMS, run_claim

ROOT = Path(__file__).resolve().parents[2]


def _unavailable(name: str) -> bool:
    """The mutation targets an optional backend that is not installed."""
    import importlib.util

    return any(
        name.startswith(prefix) and importlib.util.find_spec(module) is None
        for prefix, module in (("torch", "torch"), ("dask", "dask"))
    )


def test_catalogue_is_large_documented_and_published():
    assert len(MUTATIONS) >= 20
    ids = {spec.claim_id for spec in CLAIMS}
    table = (ROOT / "docs" / "theory.md").read_text(encoding="utf-8")
    for mutation in MUTATIONS.values():
        assert mutation.caught_by, mutation.name
        assert set(mutation.caught_by) <= ids, mutation.name
        row = next((line for line in table.splitlines() if f"`{mutation.name}`" in line), None)
        assert row is not None, f"docs/theory.md does not list mutation {mutation.name}"
        for claim_id in mutation.caught_by:
            assert re.search(rf"\b{claim_id}\b", row), (mutation.name, claim_id)


def test_mutations_are_undone_on_exit():
    import favor
    from favor import registry

    before = (favor.favor_attention, dict(registry.FEATURE_MAPS), dict(registry.SAMPLERS))
    for name in MUTATIONS:
        if _unavailable(name):
            continue
        with mutated(name):
            pass
    after = (favor.favor_attention, dict(registry.FEATURE_MAPS), dict(registry.SAMPLERS))
    assert before == after
    assert run_claim("E1").passed


@pytest.mark.statistical
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_caught(name, capsys):
    from theory.__main__ import main

    if _unavailable(name):
        pytest.skip("the optional backend it targets is not installed")
    mutation = MUTATIONS[name]
    with mutated(name):
        status = main(["--claims", ",".join(mutation.caught_by)])
    out = capsys.readouterr().out
    assert status == 1, out
    for claim_id in mutation.caught_by:
        row = next(line for line in out.splitlines() if line.startswith(f"{claim_id} "))
        assert "FAIL" in row, (name, claim_id, row)


def _run_theory(mutation: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, ENVIRONMENT_VARIABLE: mutation}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "theory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["normaliser-epsilon-1e-3", "orthogonal-scale-1%"])
def test_environment_hook_makes_python_m_theory_fail(name):
    proc = _run_theory(name, "--claims", ",".join(MUTATIONS[name].caught_by))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"MUTATION ACTIVE: {name}" in proc.stderr


def test_environment_hook_rejects_unknown_names():
    proc = _run_theory("no-such-bug", "--claims", "O2")
    assert proc.returncode != 0
    assert "mutation must be one of" in proc.stderr


@pytest.mark.slow
@pytest.mark.statistical
def test_full_quick_run_fails_under_mutation():
    proc = _run_theory("causal-ignored")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]


def _seeded(spec) -> bool:
    return not spec.informational and "seed" in inspect.signature(spec.check).parameters


def _run_with_seed(claim_id: str, offset: int) -> str | None:
    from theory.registry import get_claim

    spec = get_claim(claim_id)
    seed = spec.kwargs.get("seed", inspect.signature(spec.check).parameters["seed"].default)
    result = run_claim(spec, seed=seed + 100_003 * offset)
    return None if result.passed else str(result)


@pytest.mark.slow
@pytest.mark.statistical
def test_correct_engine_passes_over_20_root_seeds():
    """Every seeded claim, 20 other root seeds each, in parallel worker processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    tasks = [(spec.claim_id, k) for k in range(1, 21) for spec in CLAIMS if _seeded(spec)]
    workers = max(1, min(8, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(_run_with_seed, *zip(*tasks, strict=True), chunksize=4))
    failures = [o for o in outcomes if o is not None]
    assert len(tasks) >= 20 * 30
    assert not failures, "\n".join(failures)
