"""Sphinx extension: the figures of ``python -m theory``'s report, on the theory page.

On ``builder-inited`` this extension draws the report's figures with
:func:`theory.figures.write_figures` into ``docs/_generated/theory/`` (git-ignored), unless
they are already there for the same sources and sizes: a stamp file records a hash of
``favor/`` and ``theory/`` and the size multiplier, so the figures are redrawn only when the
code that draws them changes. The directive ``favor-theory-figures`` shows every figure
with the first line of its drawing function's docstring as the caption.

Configuration: ``favor_theory_figures_scale`` (int, the ``--full`` multiplier of the Monte
Carlo sizes; 1 is the size of ``python -m theory --out``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

GENERATED = Path("_generated") / "theory"
STAMP = "stamp.json"


def _source_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for package in ("favor", "theory"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def generate_figures(app: Any) -> None:
    """Draw the report's figures unless up to date; record what they were drawn from."""
    from theory.figures import write_figures

    srcdir = Path(app.srcdir)
    out = srcdir / GENERATED
    scale = int(app.config.favor_theory_figures_scale)
    stamp = {"sources": _source_hash(srcdir.parent), "scale": scale}
    stamp_path = out / STAMP
    if stamp_path.is_file():
        old = json.loads(stamp_path.read_text(encoding="utf-8"))
        files = [out / name for name in old.get("files", [])]
        if {k: old.get(k) for k in stamp} == stamp and files and all(f.is_file() for f in files):
            return
    for old_png in out.glob("*.png"):
        old_png.unlink()
    files = write_figures(out, scale=scale)
    stamp["files"] = [f.name for f in files]
    stamp_path.write_text(json.dumps(stamp, indent=1), encoding="utf-8")


def _caption(stem: str) -> str:
    import theory.figures

    function = getattr(theory.figures, f"figure_{stem}", None)
    doc = (getattr(function, "__doc__", None) or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else stem.replace("_", " ")


def _caption_nodes(text: str) -> list[nodes.Node]:
    """Docstring text to nodes: ``:math:`...``` becomes maths, double backquotes code."""
    parts: list[nodes.Node] = []
    for piece in re.split(r"(:math:`[^`]+`|``[^`]+``)", text):
        if piece.startswith(":math:`"):
            parts.append(nodes.math(text=piece[7:-1]))
        elif piece.startswith("``"):
            parts.append(nodes.literal(text=piece[2:-2]))
        elif piece:
            parts.append(nodes.Text(piece))
    return parts


class TheoryFiguresDirective(Directive):
    """``favor-theory-figures``: every figure drawn by :func:`generate_figures`."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        out = Path(env.srcdir) / GENERATED
        stamp = json.loads((out / STAMP).read_text(encoding="utf-8"))
        box = nodes.container(classes=["favor-theory-figures"])
        for name in stamp["files"]:
            env.note_dependency(str(out / name))
            figure = nodes.figure()
            figure += nodes.image(uri=f"/{GENERATED.as_posix()}/{name}", alt=name)
            caption = nodes.caption()
            caption += _caption_nodes(_caption(Path(name).stem))
            figure += caption
            box += figure
        return [box]


def setup(app: Any) -> dict[str, Any]:
    """Register the configuration value, the figure generator and the directive."""
    app.add_config_value("favor_theory_figures_scale", 1, "env")
    app.connect("builder-inited", generate_figures)
    app.add_directive("favor-theory-figures", TheoryFiguresDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
