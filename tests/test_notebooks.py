"""Run every notebook in ``notebooks/`` in smoke mode, each in its own subprocess.

Notebooks are discovered by glob (no opt-in list): a new ``notebooks/NN_topic.py`` is
tested as soon as it exists. Each runs as a script with ``FAVOR_SMOKE=1`` and the
non-interactive ``Agg`` backend, its figures written to a temporary directory; it must exit
0 (every notebook ends with a theory check whose failure raises). A notebook that imports
torch gets the ``torch`` marker and is skipped only when torch is not installed.
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
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
#: Per-notebook wall-clock limit in smoke mode (CI budget: all notebooks in 3-4 minutes).
TIMEOUT_S = 120


def _uses_torch(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return (
        re.search(
            r"^\s*(import torch|from torch|import favor\.torch|from favor\.torch|"
            r"from favor import torch)",
            text,
            re.MULTILINE,
        )
        is not None
    )


def _params() -> list:
    params = []
    for path in NOTEBOOKS:
        marks = []
        if _uses_torch(path):
            marks.append(pytest.mark.torch)
            if importlib.util.find_spec("torch") is None:
                marks.append(pytest.mark.skip(reason="torch is not installed"))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def test_notebooks_exist() -> None:
    assert len(NOTEBOOKS) >= 7, [p.name for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("path", _params())
def test_notebook_runs_in_smoke_mode(path: Path, tmp_path: Path) -> None:
    figures = tmp_path / "figures"
    env = {
        **os.environ,
        "FAVOR_SMOKE": "1",
        "MPLBACKEND": "Agg",
        "FAVOR_FIGURES": str(figures),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
        # Python warnings are not errors in the notebooks, but they must be visible.
        "PYTHONWARNINGS": "default",
    }
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{path.name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    assert "PASS" in proc.stdout, (
        f"{path.name} printed no passing theory check:\n{proc.stdout[-2000:]}"
    )
    assert "FAIL" not in proc.stdout, proc.stdout[-4000:]
    saved = sorted(figures.glob("*.png"))
    assert saved, f"{path.name} saved no figure to FAVOR_FIGURES"
    assert all(p.name.startswith(path.stem[:3]) for p in saved), [p.name for p in saved]


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
