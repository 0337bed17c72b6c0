"""Import rules: ``import favor`` stays light, modules respect the layer table, no circle.

The layer table is the contract: a module may import (at module level or lazily, inside a
function) only ``favor`` modules of a lower layer, or of its own package (e.g.
``favor.torch._checks`` from ``favor.torch.attention``). Nothing outside ``favor/torch/``
imports torch or ``favor.torch`` except the one dispatch module, :data:`DISPATCH`, which
loads a backend lazily on its first array; the import graph (module-level and lazy edges
together) has no cycle. A new module must be added to the table.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numba", "scipy", "sklearn", "torch")

#: favor module (or package, covering its submodules) -> layer.
LAYERS = {
    "favor._validation": 1,
    "favor._dispatch": 1,
    "favor._threads": 1,
    "favor._guards": 1,
    "favor.registry": 2,
    "favor.sampling": 3,
    "favor.exact": 3,
    "favor.features": 3,
    "favor._jit": 2,
    "favor.couplings": 3.5,  # coupled samplers: build on favor.sampling's Haar blocks
    "favor.kernels": 3.7,  # Laplacian / Matern exact kernels and spectral laws
    "favor.gerf": 3.8,  # fitted GERF maps (oprf, saderf): parameters and jit-input augmentation
    "favor.hybrid": 3.8,  # angular hybrid features
    "favor.attention": 4,
    "favor._dask": 4.5,  # the Dask backend: lazy Dask arrays through the engine's pieces
    "favor.decoding": 4,
    "favor.estimators": 5,
    "favor.torch": 5,
    "favor": 6,  # the package __init__: re-exports
}
#: Leaves: never imported by ``import favor``, so they may import heavy libraries.
LEAVES = ("favor.estimators", "favor.torch")
#: The one module outside favor/torch/ that imports torch's backend (lazily).
DISPATCH = "favor._dispatch"
#: Backend packages only the dispatch module may import from outside them.
BACKEND_PACKAGES = ("favor.torch", "favor._dask")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _component(name: str, *, target: bool = False) -> str | None:
    """The table entry governing ``name`` (longest matching prefix), or None.

    ``"favor"`` itself (the package ``__init__``) matches only exactly, so an unlisted
    module is reported; as an import *target*, ``favor.<name>`` that is not a module
    (``from favor import __version__``) belongs to the package.
    """
    best = None
    for key in LAYERS:
        if key == "favor":
            continue
        if (name == key or name.startswith(key + ".")) and (best is None or len(key) > len(best)):
            best = key
    if best is not None or name == "favor":
        return best or "favor"
    if target and name.startswith("favor."):
        first = name.split(".")[1]
        if not (ROOT / "favor" / f"{first}.py").exists() and not (ROOT / "favor" / first).is_dir():
            return "favor"
    return None


def _imports(tree: ast.AST, package: str) -> list[tuple[str, bool, int]]:
    """(imported module, is_lazy, line) for every import; ``from favor import x`` -> favor.x."""
    found = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, lazy, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative import: resolve against the package
                    base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    module = f"{base}.{child.module}" if child.module else base
                else:
                    module = child.module or ""
                # "from favor import sampling" -> favor.sampling; the table lookup takes
                # the longest prefix, so "favor.features.FEATURE_MAPS" -> favor.features.
                found.extend(
                    (f"{module}.{alias.name}", lazy, child.lineno) for alias in child.names
                )
            visit(child, inner)

    visit(tree, False)
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


FAVOR_MODULES = _sources("favor")


def _layer_problems(name: str, source: str, is_package: bool = False) -> list[str]:
    """Every violation of the layer rules by module ``name`` with the given source."""
    own = _component(name)
    if own is None:
        return [f"{name} is not in the layer table of tests/test_imports.py"]
    package = name if is_package else name.rsplit(".", 1)[0]
    problems = []
    for target, lazy, line in _imports(ast.parse(source), package):
        top = target.split(".")[0]
        if top == "theory":
            problems.append(f"line {line}: favor must never import theory ({target})")
        if top in HEAVY and not lazy and own not in (*LEAVES, "favor._jit"):
            problems.append(f"line {line}: module-level import of {target} (import it lazily)")
        if top == "torch" and own != "favor.torch" and name != DISPATCH:
            problems.append(f"line {line}: only {DISPATCH} and favor.torch import torch")
        if top != "favor":
            continue
        other = _component(target, target=True)
        if other is None:
            problems.append(f"line {line}: {target} is not in the layer table")
        elif other == own:
            continue
        elif other in BACKEND_PACKAGES:
            if name != DISPATCH or not lazy:
                problems.append(
                    f"line {line}: {name} imports {target}; only {DISPATCH} (lazily) may"
                )
        elif other == "favor._jit" and not lazy:
            problems.append(f"line {line}: module-level import of {target} loads Numba")
        elif LAYERS[other] >= LAYERS[own]:
            problems.append(
                f"line {line}: {name} (layer {LAYERS[own]}) imports {target} "
                f"(layer {LAYERS[other]})"
            )
    return problems


def _graph() -> dict[str, set[str]]:
    """Module -> the favor modules it imports (module-level and lazy edges together)."""
    names = {_module_name(path): path for path in FAVOR_MODULES}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for target, _, _ in _imports(ast.parse(path.read_text()), package):
            # The longest prefix that is a module: "favor.features.X" -> favor.features.
            parts = target.split(".")
            for cut in range(len(parts), 0, -1):
                if ".".join(parts[:cut]) in names:
                    edges.add(".".join(parts[:cut]))
                    break
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_of_favor_has_no_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_negative_control_the_cycle_finder_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", FAVOR_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_favor_module_respects_the_layer_table(path):
    problems = _layer_problems(
        _module_name(path), path.read_text(), is_package=path.name == "__init__.py"
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("favor.sampling", "from favor.attention import favor_attention"),
        ("favor.features", "import numba"),
        ("favor.attention", "from favor._jit import attention"),
        ("favor.exact", "import theory"),
        ("favor.features", "def f():\n    from favor.estimators import FavorSampler"),
        ("favor.attention", "def f():\n    import favor.torch"),
        ("favor.exact", "def f():\n    import torch"),
        ("favor._dispatch", "import favor.torch"),
        ("favor.newmodule", "import numpy"),
    ],
)
def test_negative_control_layer_violations_are_reported(name, source):
    assert _layer_problems(name, source)


@pytest.mark.parametrize("path", _sources("theory"), ids=lambda p: str(p.relative_to(ROOT)))
def test_theory_uses_only_the_public_favor_api(path):
    name = _module_name(path)
    problems = []
    for target, _, line in _imports(ast.parse(path.read_text()), name.rsplit(".", 1)[0]):
        parts = target.split(".")
        if parts[0] != "favor":
            continue
        # theory.mutations is the mutation suite: it injects bugs into the engine's compiled
        # kernels on purpose, so it alone reaches below the public API (and only when a
        # mutation is requested; the claims themselves never use it).
        private_allowed = name == "theory.mutations" and target == "favor._jit.attention"
        if any(part.startswith("_") for part in parts[1:]) and not private_allowed:
            problems.append(f"line {line}: theory imports private {target}")
        if name == "theory.closed_forms":
            problems.append(f"line {line}: closed_forms must not import favor ({target})")
    assert not problems, "\n".join(problems)


def test_the_import_walker_sees_lazy_and_relative_imports():
    tree = ast.parse(
        "import numpy\nfrom favor import sampling\nfrom . import features\n"
        "def f():\n    import numba\n    from favor._jit import attention\n"
    )
    found = {(t, lazy) for t, lazy, _ in _imports(tree, "favor")}
    assert ("numpy", False) in found
    assert ("favor.sampling", False) in found
    assert ("favor.features", False) in found
    assert ("numba", True) in found
    assert ("favor._jit.attention", True) in found


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return {m for m in result.stdout.strip().split(",") if m}


def test_import_favor_loads_no_heavy_dependency():
    assert _loaded_after("import favor") == set()


@pytest.mark.slow
def test_public_submodules_stay_light_and_estimators_skip_numba_until_used():
    assert _loaded_after("import favor.sampling, favor.features, favor.exact") == set()
    assert "numba" not in _loaded_after("import favor.estimators")
    assert "torch" not in _loaded_after("from favor import FavorSampler")
