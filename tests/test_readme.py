"""The README's code runs and says what the README says it does.

Every ``python`` block of ``README.md`` is executed (in order, each in a fresh namespace),
so the quickstarts cannot rot; the attention quickstart must print an error below 0.1,
close to the figure quoted in the README. The fresh-machine commands are checked against
``pyproject.toml`` and ``.ci/run``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
BASH = re.findall(r"^```bash\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def _block_id(source: str) -> str:
    return (
        "attention"
        if "favor_attention" in source
        else "pipeline"
        if "Pipeline" in source or "make_pipeline" in source
        else "other"
    )


def test_readme_has_the_two_quickstarts() -> None:
    assert sorted(_block_id(b) for b in BLOCKS) == ["attention", "pipeline"]


def _block_params() -> list:
    """The attention quickstart runs in the fast tier; the pipeline (a logistic regression
    on 1024 random features of the digits) only in the full suite."""
    return [
        pytest.param(
            b, id=_block_id(b), marks=() if _block_id(b) == "attention" else pytest.mark.slow
        )
        for b in BLOCKS
    ]


@pytest.mark.parametrize("source", _block_params())
def test_readme_python_block_runs(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(source, "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    if _block_id(source) == "attention":
        match = re.search(r"relative error ([0-9.]+), predicted about ([0-9.]+)", printed)
        assert match, printed
        error, predicted = float(match.group(1)), float(match.group(2))
        assert error < 0.1, printed
        # The README quotes the output as a comment: it must be the output.
        assert f"# {printed.strip()}" in source, (printed, source)
        assert 0.5 * predicted < error < 2 * predicted, printed
    else:
        accuracy = float(printed.strip().splitlines()[-1])
        assert accuracy > 0.95, printed


def test_fresh_machine_commands_match_the_project() -> None:
    main_job = next(b for b in BASH if "python -m theory" in b)
    tests = next(b for b in BASH if "python -m pytest" in b)
    assert "python -m pip install -e ." in main_job
    assert "--out theory-report" in main_job
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[project.optional-dependencies]")[1].split("\n[")[0]
    extras = set(re.findall(r"^([a-z]+) = \[", section, flags=re.MULTILINE))
    assert {"test", "torch"} <= extras, extras
    named = re.search(r'pip install -e "\.\[([a-z,]+)\]"', tests)
    assert named, tests
    assert set(named.group(1).split(",")) <= extras
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pin = re.search(r"pip install (torch==[0-9.]+)", tests)
    assert pin, tests
    assert f"pip install {pin.group(1)}\n" in ci
    assert f'pip install -e ".[{named.group(1)}]"' in ci
    assert f"{pin.group(1)} --index-url https://download.pytorch.org/whl/cpu" in README
