"""Sphinx configuration for the favor documentation.

Build: ``sphinx-build -W -b html docs <outdir>`` (warnings are errors). ``FAVOR_SMOKE=1``
in the environment runs the notebooks at smoke sizes (seconds each; what the test build,
``tests/test_docs.py``, does); without it they run at full sizes (the release build,
several minutes). Nothing generated is committed.

Notebooks: ``myst-nb`` rather than ``sphinx-gallery``. Our notebooks are percent-format
scripts with Markdown cells (jupytext), which myst-nb executes as notebooks (a kernel,
rich outputs, inline figures, MyST Markdown with the same maths and cross-references as
the rest of the site), and it caches execution with ``jupyter-cache`` keyed on the code.
sphinx-gallery wants its own comment format (a rewrite of every notebook) and suits short
examples better than long notebooks. The local extension ``_ext/favor_notebooks.py``
turns each script into a MyST-NB page and builds the front page's gallery from the
executed pages' first figures; ``_ext/favor_theory_figures.py`` draws the theory report's
figures for the theory page.

Theme: ``pydata-sphinx-theme``, the one NumPy, SciPy, scikit-learn and pandas use.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The repository root first, so `favor` and `theory` resolve to this checkout even when an
# older copy is installed; then the local extensions.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

import favor  # noqa: E402

# The notebook kernels inherit this process's environment: they import this checkout too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)
SMOKE = os.environ.get("FAVOR_SMOKE", "0") not in ("", "0")
HAS_TORCH = importlib.util.find_spec("torch") is not None

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
    "myst_nb",  # includes myst_parser
    "favor_notebooks",
    "favor_theory_figures",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "jupyter_execute"]
templates_path = ["_templates"]

# MyST: $...$ maths in Markdown pages and notebook cells, ::: fences, heading anchors.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# myst-nb: execute the generated notebook pages, cached by code (jupyter-cache, next to the
# build directory); a failing cell fails the build; no per-cell time limit at full sizes.
nb_execution_mode = "cache"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 300 if SMOKE else -1
nb_execution_excludepatterns = (
    [] if HAS_TORCH else ["*07_torch_transformer*", "*08_performerize_finetune*"]
)
nb_merge_streams = True
nb_render_image_options = {"width": "100%"}

# autodoc / autosummary: one page per public function and class, generated at build time
# into api/generated (git-ignored).
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # document what each module exports in __all__
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry types and shapes
add_module_names = False
# favor.torch needs PyTorch; without it the API pages still build from mocked imports.
if not HAS_TORCH:  # pragma: no cover - torch is a CI dependency
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

html_theme = "pydata_sphinx_theme"
html_title = f"favor {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
    # No "on this page" column on the gallery front page: the cards get the width.
    "secondary_sidebar_items": {"**": ["page-toc"], "index": []},
}
# No section-navigation column on the pages without sub-pages (it would be empty).
html_sidebars = {page: [] for page in ("index", "theory", "formulas", "notation", "design")}
html_static_path = ["_static"]
html_css_files = ["favor.css"]

# The notebooks extension: where the percent-format scripts live (relative to this file).
favor_notebooks_dir = "../notebooks"
favor_notebooks_smoke = SMOKE
# The theory page's figures: the report's sizes (x10, as `--full`, for a release build).
favor_theory_figures_scale = 1 if SMOKE else 10
