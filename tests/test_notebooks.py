"""The notebooks in ``notebooks/``: their form here, their execution in the docs build.

Notebooks are discovered by glob (no opt-in list): a new ``notebooks/NN_topic.py`` is
tested as soon as it exists. They are executed once in the test suite, by the
documentation build of ``tests/test_docs.py`` (myst-nb, ``FAVOR_SMOKE=1``), which checks
that each one runs to its end (every notebook ends with a theory check whose failure
raises), prints a passing check and shows every figure it draws. This module checks the
template every notebook follows and what differs when it runs as a plain script: that it
compiles as Python and saves its figures, named after it, into ``FAVOR_FIGURES``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_notebooks_exist() -> None:
    assert len(NOTEBOOKS) >= 7, [p.name for p in NOTEBOOKS]


def test_notebook_cells_follow_the_template() -> None:
    """Cell 1 is a Markdown title naming the claims; cell 2 reads FAVOR_SMOKE."""
    for path in NOTEBOOKS:
        cells = re.split(r"^# %%", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
        assert cells[0].startswith(" [markdown]"), path.name
        assert re.search(r"^# # \d\d ", cells[0], re.MULTILINE), f"{path.name}: no title"
        assert "Claims illustrated" in cells[0], f"{path.name}: title cell names no claims"
        assert 'os.environ.get("FAVOR_SMOKE"' in cells[1], (
            f"{path.name}: cell 2 must read FAVOR_SMOKE"
        )
        assert ".ipynb" not in path.name


def test_notebooks_are_scripts_that_save_their_figures() -> None:
    for path in NOTEBOOKS:
        source = path.read_text(encoding="utf-8")
        compile(source, str(path), "exec")
        assert re.search(
            r'savefig\(os\.path\.join\(FIGURES, f"' + path.stem[:2] + r'_\{name\}\.png"\)', source
        ), f"{path.name}: finish() must save FIGURES/{path.stem[:2]}_<name>.png"
