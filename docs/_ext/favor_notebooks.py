"""Sphinx extension: render ``notebooks/NN_topic.py`` as documentation pages at build time.

The notebooks have one copy, the percent-format scripts in ``notebooks/``.
On ``builder-inited`` this extension reads every ``NN_*.py`` there with jupytext and writes
one MyST Markdown page per notebook into ``docs/_generated/notebooks/`` (git-ignored, never
committed): Markdown cells verbatim, code cells as ``python`` code blocks, and a footer
saying how to run or open the script. The notebooks are not executed here (running them is
the job of ``tests/test_notebooks.py``); a page is rewritten only when its text changes, so
incremental builds stay incremental.

Configuration: ``favor_notebooks_dir`` (relative to the docs source directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GENERATED = Path("_generated") / "notebooks"


def notebook_paths(directory: Path) -> list[Path]:
    """Every notebook script ``NN_*.py`` in ``directory``, sorted by name."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.py") if p.is_file())


def render_notebook(path: Path, repo_path: str) -> str:
    """Convert one percent-format script to MyST Markdown text.

    Parameters
    ----------
    path : pathlib.Path
        The notebook script.
    repo_path : str
        Its path relative to the repository root, for the footer.

    Returns
    -------
    str
        The page: Markdown cells as written, code cells fenced as ``python``.
    """
    import jupytext

    notebook = jupytext.read(path, fmt="py:percent")
    parts: list[str] = []
    for cell in notebook.cells:
        source = cell.source.strip("\n")
        if not source.strip():
            continue
        if cell.cell_type == "markdown":
            parts.append(source)
        else:
            parts.append(f"```python\n{source}\n```")
    parts.append(
        ":::{note}\n"
        f"This page is rendered from `{repo_path}` without running it. Run it with "
        f"`python {repo_path}` (set `FAVOR_SMOKE=1` for a quick run and "
        "`FAVOR_FIGURES=DIR` to save the figures), or open it as a notebook with "
        f"`jupytext --to notebook {repo_path}`.\n:::"
    )
    return "\n\n".join(parts) + "\n"


def generate_pages(app: Any) -> None:
    """Write (or refresh) one generated page per notebook; remove pages of deleted ones."""
    srcdir = Path(app.srcdir)
    source_dir = (srcdir / app.config.favor_notebooks_dir).resolve()
    out_dir = srcdir / GENERATED
    out_dir.mkdir(parents=True, exist_ok=True)
    root = srcdir.parent.resolve()
    wanted = set()
    for path in notebook_paths(source_dir):
        try:
            repo_path = path.relative_to(root).as_posix()
        except ValueError:  # notebooks outside the repository: show the bare name
            repo_path = path.name
        target = out_dir / f"{path.stem}.md"
        wanted.add(target.name)
        text = render_notebook(path, repo_path)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    for stale in out_dir.glob("*.md"):
        if stale.name not in wanted:
            stale.unlink()


def setup(app: Any) -> dict[str, Any]:
    """Register the configuration value and the page generator."""
    app.add_config_value("favor_notebooks_dir", "../notebooks", "env")
    app.connect("builder-inited", generate_pages)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
