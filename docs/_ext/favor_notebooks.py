"""Sphinx extension: the notebooks as executed pages with their figures, and a gallery.

The notebooks have one copy, the percent-format scripts in ``notebooks/``. On
``builder-inited`` this extension reads every ``NN_*.py`` there with jupytext and writes
one MyST-NB text notebook per script into ``docs/_generated/notebooks/NN_*.md``
(git-ignored, never committed). ``myst_nb`` then executes it at build time and renders its
outputs (printed results and the matplotlib figures) into the page. Execution is cached by
``myst_nb`` (``jupyter-cache``, keyed on the code cells), so an unchanged notebook runs once.

Sizes: each generated notebook starts with a hidden cell that sets ``FAVOR_SMOKE`` for the
kernel from the configuration value ``favor_notebooks_smoke`` (``conf.py`` sets it from
the ``FAVOR_SMOKE`` environment variable: smoke sizes in the test build, full sizes in a
release build). The hidden cell is part of the cached code, so a smoke run is never
reused for a full build or the reverse.

Gallery: the directive ``favor-gallery`` (used on the front page) becomes a grid of cards,
one per notebook, each with the first figure of the executed page as its thumbnail,
filled in once every page has been read.

Configuration: ``favor_notebooks_dir`` (relative to the docs source directory),
``favor_notebooks_smoke`` (bool).
"""

from __future__ import annotations

import html
import posixpath
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

GENERATED = Path("_generated") / "notebooks"
DOCNAME_PREFIX = GENERATED.as_posix() + "/"


def notebook_paths(directory: Path) -> list[Path]:
    """Every notebook script ``NN_*.py`` in ``directory``, sorted by name."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.py") if p.is_file())


def render_notebook(path: Path, repo_path: str, *, smoke: bool) -> str:
    """Convert one percent-format script to a MyST-NB text notebook.

    Parameters
    ----------
    path : pathlib.Path
        The notebook script.
    repo_path : str
        Its path relative to the repository root, for the footer.
    smoke : bool
        Run at smoke sizes (``FAVOR_SMOKE=1``) instead of full sizes.

    Returns
    -------
    str
        The notebook in MyST-NB Markdown: a hidden setup cell, the script's cells, and a
        footer saying how the page was produced and how to run the script.
    """
    import jupytext
    from nbformat.v4 import new_code_cell, new_markdown_cell

    notebook = jupytext.read(path, fmt="py:percent")
    setup = new_code_cell(
        "import os\n"
        f'os.environ["FAVOR_SMOKE"] = "{1 if smoke else 0}"\n'
        'os.environ.pop("FAVOR_FIGURES", None)  # figures go into the page only\n'
        "%matplotlib inline",
        metadata={"tags": ["remove-cell"]},
    )
    sizes = "smoke sizes (`FAVOR_SMOKE=1`)" if smoke else "full sizes"
    footer = new_markdown_cell(
        ":::{note}\n"
        f"This page is `{repo_path}`, executed when the documentation was built, at "
        f"{sizes}. Run it with `python {repo_path}` (set `FAVOR_SMOKE=1` for a quick run "
        "and `FAVOR_FIGURES=DIR` to save the figures), or open it as a notebook with "
        f"`jupytext --to notebook {repo_path}`.\n:::"
    )
    notebook.cells = [setup, *notebook.cells, footer]
    # The script has no jupytext header, so jupytext would filter every metadata out: keep
    # the kernel and the cell tags (the header marks the page as a notebook for myst-nb).
    notebook.metadata["jupytext"] = {"cell_metadata_filter": "tags"}
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return jupytext.writes(notebook, fmt="md:myst")


def generate_pages(app: Any) -> None:
    """Write (or refresh) one generated notebook per script; remove those of deleted ones."""
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
        text = render_notebook(path, repo_path, smoke=bool(app.config.favor_notebooks_smoke))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    for stale in [*out_dir.glob("*.md"), *out_dir.glob("*.ipynb")]:
        if stale.name not in wanted:
            stale.unlink()


# -- gallery ------------------------------------------------------------------------------


class gallery_placeholder(nodes.General, nodes.Element):
    """Replaced by the gallery's HTML once every notebook page has been read."""


class GalleryDirective(Directive):
    """``favor-gallery``: a card per generated notebook page (title, thumbnail, link)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        env.__dict__.setdefault("favor_gallery_docs", set()).add(env.docname)
        return [gallery_placeholder()]


def _outdated(app: Any, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """Re-write the gallery pages whenever a notebook page is re-read (new thumbnails)."""
    touched = {d for d in (added | changed | removed) if d.startswith(DOCNAME_PREFIX)}
    if not touched:
        return []
    return sorted(env.__dict__.get("favor_gallery_docs", set()) - added - changed)


def _first_images(app: Any, doctree: nodes.document) -> None:
    """After reading a notebook page, remember its first figure (for the gallery)."""
    env = app.env
    if not env.docname.startswith(DOCNAME_PREFIX):
        return
    store = env.__dict__.setdefault("favor_first_image", {})
    for image in doctree.findall(nodes.image):
        uri = image.get("uri", "")
        if uri and "://" not in uri and not uri.startswith("data:"):
            store[env.docname] = uri
            return
    store.pop(env.docname, None)


def _purge(app: Any, env: Any, docname: str) -> None:
    env.__dict__.setdefault("favor_first_image", {}).pop(docname, None)


def _merge(app: Any, env: Any, docnames: set[str], other: Any) -> None:
    store = env.__dict__.setdefault("favor_first_image", {})
    for docname, uri in getattr(other, "favor_first_image", {}).items():
        if docname in docnames:
            store[docname] = uri


def _summary(env: Any, docname: str) -> str:
    """The claims the notebook illustrates (its "Claims illustrated:" line), for the card."""
    doctree = env.get_doctree(docname)
    for paragraph in doctree.findall(nodes.paragraph):
        text = paragraph.astext().replace("\n", " ")
        if text.startswith("Claims illustrated:"):
            head = re.split(r"[(:]", text[len("Claims illustrated:") :], maxsplit=1)[0]
            ids = re.findall(r"\b[A-Z]\d+(?:-[A-Z]?\d+)?\b", head)
            return "Claims " + ", ".join(ids) if ids else ""
    return ""


def _gallery_html(app: Any, fromdoc: str) -> str:
    env = app.env
    builder = app.builder
    store = env.__dict__.get("favor_first_image", {})
    images_dir = posixpath.relpath("_images", posixpath.dirname(fromdoc) or ".")
    cards = []
    for docname in sorted(d for d in env.found_docs if d.startswith(DOCNAME_PREFIX)):
        title = env.titles[docname].astext() if docname in env.titles else docname
        link = builder.get_relative_uri(fromdoc, docname)
        uri = store.get(docname)
        thumb = ""
        if uri is not None and uri in env.images:
            src = posixpath.join(images_dir, env.images[uri][1])
            thumb = f'<img src="{html.escape(src)}" alt="first figure of {html.escape(title)}">'
        cards.append(
            f'<a class="favor-card" href="{html.escape(link)}">'
            f'<div class="favor-thumb">{thumb}</div>'
            f'<div class="favor-card-title">{html.escape(title)}</div>'
            f'<div class="favor-card-text">{html.escape(_summary(env, docname))}</div></a>'
        )
    return '<div class="favor-gallery">' + "".join(cards) + "</div>"


def _fill_gallery(app: Any, doctree: nodes.document, fromdoc: str) -> None:
    for placeholder in list(doctree.findall(gallery_placeholder)):
        if app.builder.format == "html":
            placeholder.replace_self(nodes.raw("", _gallery_html(app, fromdoc), format="html"))
        else:
            placeholder.replace_self([])


def setup(app: Any) -> dict[str, Any]:
    """Register the configuration values, the page generator and the gallery."""
    app.add_config_value("favor_notebooks_dir", "../notebooks", "env")
    app.add_config_value("favor_notebooks_smoke", False, "env")
    app.connect("builder-inited", generate_pages)
    app.add_node(gallery_placeholder)
    app.add_directive("favor-gallery", GalleryDirective)
    app.connect("doctree-read", _first_images)
    app.connect("env-purge-doc", _purge)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _fill_gallery)
    return {"version": "2.0", "parallel_read_safe": True, "parallel_write_safe": True}
