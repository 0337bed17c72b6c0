"""Sphinx configuration for the favor documentation.

Build: ``sphinx-build -W -b html docs <outdir>`` (warnings are errors; ``tests/test_docs.py``
runs exactly this). The notebooks are rendered from their single copy in ``notebooks/`` by
the local extension ``_ext/favor_notebooks.py`` (converted with jupytext at build time,
not executed); nothing generated is committed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The repository root first, so `favor` and `theory` resolve to this checkout even when an
# older copy is installed; then the local extensions.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

import favor  # noqa: E402

project = "favor"
author = "the favor developers"
copyright = "the favor developers, BSD-3-Clause"
release = favor.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "favor_notebooks",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# MyST: $...$ maths in Markdown pages and notebook cells, ::: fences, heading anchors.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# autodoc / autosummary: one page per public function and class, generated at build time
# into api/generated (git-ignored).
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # document what each module exports in __all__
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry types and shapes
add_module_names = False
# favor.torch needs PyTorch; without it the API pages still build from mocked imports.
if importlib.util.find_spec("torch") is None:  # pragma: no cover - torch is a CI dependency
    autodoc_mock_imports = ["torch"]

# numpydoc: members are listed by the autosummary
# templates, not by numpydoc (avoids duplicate, unresolvable member tables).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# Module essays list their references even where the text does not cite each one: an
# unreferenced citation is not an error for us.
suppress_warnings = ["ref.citation"]

html_theme = "alabaster"
html_title = f"favor {release}"
html_theme_options = {
    "description": "Random features and FAVOR+ attention, with the theory checked",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []

# The notebooks extension: where the percent-format scripts live (relative to this file).
favor_notebooks_dir = "../notebooks"
