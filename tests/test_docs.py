"""The documentation builds with warnings as errors, shows its figures, and stays in sync.

One build per test session (the module fixture ``site``) runs
``FAVOR_SMOKE=1 sphinx-build -W -b html docs <tmp>``: exactly the documentation command a
fresh install must pass, at smoke sizes. It executes every notebook (myst-nb), so the
notebooks run once in the test suite, here, and ``tests/test_notebooks.py`` only checks
their form. The tests then check the pages: every notebook page carries all its figures
and its passing theory check, the theory page carries the report's figures, and the front
page's gallery has a thumbnail per notebook. The other tests are cheap consistency checks
between ``docs/``, ``theory`` and ``notebooks/``.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
#: Wall-clock limit of the build, notebooks executed at smoke sizes included (about three
#: CPU-minutes; a loaded machine stretches that).
BUILD_TIMEOUT_S = 1500


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


def _figure_calls(path: Path) -> int:
    """How many figures a notebook shows: its calls of ``finish(fig, name)``."""
    return len(re.findall(r"^\s*finish\(", path.read_text(encoding="utf-8"), re.MULTILINE))


def _uses_torch(path: Path) -> bool:
    return (
        re.search(
            r"^\s*(import|from) torch|favor\.torch", path.read_text(encoding="utf-8"), re.MULTILINE
        )
        is not None
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the documentation once (smoke sizes); return the HTML directory."""
    for module in ("sphinx", "numpydoc", "myst_nb", "jupytext", "pydata_sphinx_theme"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(
                f"the docs extra is not installed ({module} missing): pip install -e '.[docs]'"
            )
    tmp_path = tmp_path_factory.mktemp("docs")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
        "FAVOR_SMOKE": "1",
        "PYTHONWARNINGS": "default",
    }
    env.pop("MPLBACKEND", None)  # the notebook kernels draw inline
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
    return out


@pytest.mark.slow
def test_sphinx_build(site: Path) -> None:
    for page in (
        "index",
        "theory",
        "notation",
        "design",
        "guide/variance_regime",
        "api/favor",
        "api/theory",
    ):
        assert (site / f"{page}.html").is_file(), page


def _notebook_params() -> list:
    return [
        pytest.param(
            path,
            id=path.stem,
            marks=[pytest.mark.torch] if _uses_torch(path) else [],
        )
        for path in NOTEBOOKS
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", _notebook_params())
def test_notebook_page_shows_its_figures_and_its_check(site: Path, path: Path) -> None:
    if _uses_torch(path) and importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: the page is built without executing it")
    page = site / "_generated" / "notebooks" / f"{path.stem}.html"
    assert page.is_file(), f"notebook {path.name} has no rendered page"
    text = page.read_text(encoding="utf-8")
    assert "Claims illustrated" in text
    images = re.findall(r'<img [^>]*src="([^"]+\.png)"', text)
    expected = _figure_calls(path)
    assert expected >= 1, f"{path.name} draws no figure"
    assert len(images) == expected, f"{path.name}: {len(images)} figures shown, {expected} drawn"
    for src in images:
        assert (page.parent / src).resolve().is_file(), src
    assert "PASS" in text, f"{path.name}: the executed page shows no passing check"
    assert re.search(r"\bFAIL\b", text) is None, f"{path.name}: a check failed"
    assert re.search(r"\bTraceback\b", text) is None, f"{path.name}: a cell raised"


@pytest.mark.slow
def test_theory_page_shows_the_report_figures(site: Path) -> None:
    from theory.figures import write_figures
    from theory.figures_claims import write_claim_figures

    text = (site / "theory.html").read_text(encoding="utf-8")
    images = re.findall(r'<img [^>]*src="([^"]+\.png)"', text)
    # write_figures draws the report's figures (its own and the claim figures
    # of write_claim_figures); the page shows all of them.
    n_figures = sum(
        len(re.findall(r"figure_\w+\(\s*out /", inspect.getsource(writer)))
        for writer in (write_figures, write_claim_figures)
    )
    assert n_figures >= 3
    assert len(images) == n_figures, images
    for src in images:
        assert (site / src).is_file(), src


@pytest.mark.slow
def test_front_page_gallery_has_a_thumbnail_per_notebook(site: Path) -> None:
    text = (site / "index.html").read_text(encoding="utf-8")
    cards = re.findall(r'<a class="favor-card" href="([^"]+)">(.*?)</a>', text, re.DOTALL)
    assert [href.split("/")[-1] for href, _ in cards] == [f"{p.stem}.html" for p in NOTEBOOKS]
    no_torch = importlib.util.find_spec("torch") is None
    for (href, body), path in zip(cards, NOTEBOOKS, strict=True):
        if no_torch and _uses_torch(path):
            continue  # built without executing it: no figure
        thumb = re.search(r'<img src="([^"]+)"', body)
        assert thumb, f"card {href} has no thumbnail"
        assert (site / thumb.group(1)).is_file(), thumb.group(1)
    assert "pydata" in text.lower()  # the theme


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
