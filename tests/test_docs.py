"""The documentation builds with warnings as errors, and its claims table stays in sync.

``test_sphinx_build`` runs ``sphinx-build -W -b html docs <tmp>`` in a subprocess, exactly
the command a fresh install must pass; it takes about half a minute. The other
tests are cheap consistency checks between ``docs/``, ``theory`` and ``notebooks/``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
#: Wall-clock limit of the build (the CI budget for it is one to two minutes).
BUILD_TIMEOUT_S = 300


def _claim_rows() -> dict[str, str]:
    rows = {}
    for line in (DOCS / "theory.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*([A-Z]\d+)\s*\|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def _notebook_claims(path: Path) -> list[str]:
    first_cell = path.read_text(encoding="utf-8").split("# %%")[1]
    match = re.search(r"\*\*Claims illustrated:\*\*([^(:]*)", first_cell)
    assert match, f"{path.name}: no 'Claims illustrated' line"
    return re.findall(r"\b[A-Z]\d+\b", match.group(1))


@pytest.mark.slow
def test_sphinx_build(tmp_path: Path) -> None:
    for module in ("sphinx", "numpydoc", "myst_parser", "jupytext"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(
                f"the docs extra is not installed ({module} missing): pip install -e '.[docs]'"
            )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
        "MPLBACKEND": "Agg",
    }
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, (
        f"sphinx-build -W failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    for page in (
        "index",
        "theory",
        "notation",
        "design",
        "guide/variance_regime",
        "api/favor",
        "api/theory",
    ):
        assert (out / f"{page}.html").is_file(), page
    for path in NOTEBOOKS:
        page = out / "_generated" / "notebooks" / f"{path.stem}.html"
        assert page.is_file(), f"notebook {path.name} has no rendered page"
        assert "Claims illustrated" in page.read_text(encoding="utf-8")


def test_claims_table_lists_every_claim() -> None:
    from theory import CLAIMS

    rows = _claim_rows()
    ids = [spec.claim_id for spec in CLAIMS]
    assert sorted(rows) == sorted(ids), (sorted(rows), sorted(ids))
    for spec in CLAIMS:
        check = f"{spec.check.__module__}.{spec.check.__name__}"
        assert check.replace("theory.", "", 1) in rows[spec.claim_id], (spec.claim_id, check)


def test_notebooks_and_claims_table_agree() -> None:
    """Each claim a notebook names exists, and the table's row for it links that notebook."""
    rows = _claim_rows()
    for path in NOTEBOOKS:
        claims = _notebook_claims(path)
        assert claims, path.name
        for claim_id in claims:
            assert claim_id in rows, (path.name, claim_id)
            assert path.stem in rows[claim_id], (
                f"docs/theory.md row {claim_id} does not link {path.stem}"
            )


def test_no_built_or_generated_docs_are_committed() -> None:
    proc = subprocess.run(
        ["git", "ls-files", "docs"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = proc.stdout.split()
    assert not [
        p for p in tracked if p.startswith(("docs/_build", "docs/_generated", "docs/api/generated"))
    ]
    assert not [p for p in tracked if p.endswith(".ipynb")]
