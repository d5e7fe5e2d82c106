"""The layering rule, enforced: lower layers never import upper ones (docs/architecture.md), and
no module of the package takes part in an import cycle.

Every module's imports are read with :mod:`ast` (those inside functions and under
``TYPE_CHECKING`` too, since a lazy import is still a dependency) and mapped to the layer of the
imported module. ``FORBIDDEN`` is the one table of the rules; a change to the architecture changes
it and docs/architecture.md together. The same imports make the package's import graph, whose
strongly connected components of two or more modules are its import cycles.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import cnnlstm

SRC = Path(cnnlstm.__file__).resolve().parent

# module (dotted, under cnnlstm) -> layer; the first matching prefix wins
LAYER_OF = (
    ("cnnlstm._version", "base"), ("cnnlstm.errors", "base"), ("cnnlstm.fileio", "base"),
    ("cnnlstm.device", "base"),
    ("cnnlstm.config", "core"), ("cnnlstm.runs", "core"),
    ("cnnlstm.data", "data"), ("cnnlstm.models", "models"), ("cnnlstm.training", "training"),
    ("cnnlstm.measure", "measure"), ("cnnlstm.reporting", "reporting"), ("cnnlstm.deploy", "deploy"),
    # study/ in three floors: the run drivers, the job engine above them, the studies on top
    ("cnnlstm.study.engine", "engine"), ("cnnlstm.study.paper", "studies"), ("cnnlstm.study.compare", "studies"),
    ("cnnlstm.study.regimes", "studies"), ("cnnlstm.study.sweep", "studies"), ("cnnlstm.study", "drivers"),
    ("cnnlstm.api", "api"), ("cnnlstm.cli", "cli"), ("cnnlstm.__main__", "cli"),
    ("cnnlstm", "api"),  # the package's __init__: the lazy facade over api
)

STUDY = {"drivers", "engine", "studies"}
UPPER = STUDY | {"reporting", "deploy", "cli", "api"}
# layer -> the layers it must never import
FORBIDDEN = {
    "base": {"core", "data", "models", "training", "measure"} | UPPER,
    "data": {"core", "models", "training", "measure"} | UPPER,
    "models": {"core", "data", "training", "measure"} | UPPER,
    "core": {"data", "training", "measure"} | UPPER,
    "training": {"measure"} | UPPER,
    "measure": UPPER,
    "reporting": {"training", "deploy", "cli", "api"} | STUDY,
    "deploy": {"training", "reporting", "cli", "api"} | STUDY,
    "drivers": {"engine", "studies", "cli", "api"},  # one run folder each; they know no job
    "engine": {"studies", "cli", "api"},  # the job engine knows no study
    "studies": {"cli", "api"},
    "api": {"cli"},
    "cli": set(),
}


def layer_of(module: str) -> str | None:
    for prefix, layer in LAYER_OF:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every cnnlstm module ``source`` imports, relative imports resolved."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # `from cnnlstm.data import augment` imports cnnlstm.data.augment when that is a module
            out += [(node.lineno, f"{base}.{a.name}" if (SRC.parent / f"{base}.{a.name}".replace(".", "/")).exists()
                     or (SRC.parent / (f"{base}.{a.name}".replace(".", "/") + ".py")).exists() else base)
                    for a in node.names]
    return [(line, name) for line, name in out if name == "cnnlstm" or name.startswith("cnnlstm.")]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``source`` (the text of ``module``) that break :data:`FORBIDDEN`."""
    mine = layer_of(module)
    found = []
    for line, name in imported_modules(source, module, is_package):
        theirs = layer_of(name)
        if theirs in FORBIDDEN.get(mine, set()):
            found.append(f"{module}:{line} ({mine}) imports {name} ({theirs})")
    return found


def all_modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_has_a_layer():
    assert [module_name(p) for p in all_modules() if layer_of(module_name(p)) is None] == []


def test_lower_layers_never_import_upper_ones():
    found = []
    for path in all_modules():
        found += violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert found == [], "layering broken:\n" + "\n".join(found)


@pytest.mark.parametrize("module, bad", [
    ("cnnlstm.measure.stats", "from cnnlstm.study.engine.jobs import Job"),
    ("cnnlstm.study.engine.loop", "from cnnlstm.study.paper import run_study"),  # the engine knows no study
    ("cnnlstm.study.experiment", "def f():\n    from cnnlstm.study.engine.jobs import Job"),  # drivers below it
    ("cnnlstm.study.regimes.grid", "from cnnlstm.api import regimes"),
    ("cnnlstm.data.augment", "import cnnlstm.reporting.page"),
    ("cnnlstm.models.hybrid", "def f():\n    from cnnlstm.cli import main"),  # a lazy import counts too
    ("cnnlstm.deploy.predict", "from cnnlstm.training import loop"),
    ("cnnlstm.training.loop", "from ..measure.metrics import compute_metrics"),  # relative
])
def test_the_check_catches_a_deliberate_bad_import(module, bad):
    assert violations(bad, module) != []


def test_allowed_imports_pass_the_check():
    assert violations("from cnnlstm.measure.stats import mean_std", "cnnlstm.reporting.sections") == []
    assert violations("from cnnlstm.data import augment", "cnnlstm.training.loop") == []


# --------------------------------------------------------------------------- import cycles

# The import cycles the package still has, each the set of modules of one strongly connected
# component of the import graph. The goal is none: a new cycle fails
# test_the_package_has_no_import_cycle_but_the_known_ones, and a listed cycle that is gone fails
# test_every_known_cycle_still_exists, so this list only shrinks.
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def package_sources() -> dict[str, tuple[str, bool]]:
    """Every module of the package: dotted name -> (source text, is a package's ``__init__``)."""
    return {module_name(p): (p.read_text(), p.name == "__init__.py") for p in all_modules()}


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """``module -> {imported module: line of its first import}``, between modules of ``sources``.

    A module's import of itself (``from . import x`` inside ``x``'s package resolves to the
    package, never to the module) is left out.
    """
    graph: dict[str, dict[str, int]] = {}
    for module, (source, is_package) in sources.items():
        edges: dict[str, int] = {}
        for line, name in imported_modules(source, module, is_package):
            if name != module and name in sources:
                edges.setdefault(name, line)
        graph[module] = edges
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of two or more nodes (Tarjan, with an explicit stack).

    Returns
    -------
    list of list of str
        Each component's nodes sorted, the components sorted.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in sorted(graph):
        if root in index:
            continue
        visit(root)
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    visit(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:  # every child of node is done
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def cycle_in(graph: Mapping[str, Mapping[str, int]], members: Iterable[str]) -> str:
    """One shortest cycle inside a strongly connected component, each step with its import's line."""
    members = set(members)
    start = min(members)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                path = path[::-1] + [start]
                return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:])) + f" -> {start}"
            if child in members and child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise ValueError(f"{sorted(members)} is not a strongly connected component of the graph")


def import_cycles(sources: Mapping[str, tuple[str, bool]]) -> dict[frozenset[str], str]:
    """The import cycles among ``sources``: each component's modules -> one cycle through them."""
    graph = import_graph(sources)
    return {frozenset(c): cycle_in(graph, c) for c in strongly_connected(graph)}


def test_the_package_has_no_import_cycle_but_the_known_ones():
    cycles = import_cycles(package_sources())
    new = [f"{', '.join(sorted(c))}: {path}" for c, path in cycles.items() if c not in KNOWN_CYCLES]
    assert new == [], "import cycles (lazy imports included):\n" + "\n".join(new)


def test_every_known_cycle_still_exists():
    cycles = import_cycles(package_sources())
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in cycles]
    assert gone == [], f"no longer cycles, remove them from KNOWN_CYCLES: {gone}"


def test_the_cycle_check_catches_a_deliberate_cycle():
    sources = {
        "cnnlstm.data": ("from cnnlstm.data.dataset import Dataset", True),
        "cnnlstm.data.dataset": ("import numpy", False),
        "cnnlstm.data.augment": ("def f():\n    from ..training import loop", False),  # lazy, relative
        "cnnlstm.training.loop": ("from cnnlstm.data import augment\nfrom cnnlstm.data import Dataset", False),
    }
    assert import_cycles({k: v for k, v in sources.items() if k != "cnnlstm.data.augment"}) == {}
    assert import_cycles(sources) == {frozenset({"cnnlstm.data.augment", "cnnlstm.training.loop"}):
                                      "cnnlstm.data.augment (line 2) -> cnnlstm.training.loop (line 1) "
                                      "-> cnnlstm.data.augment"}


def test_strongly_connected_components():
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["a"], "g": []}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"]]
    assert strongly_connected({"a": ["b"], "b": ["c"], "c": []}) == []
    chain = {f"m{i}": [f"m{i + 1}"] for i in range(5000)} | {"m5000": ["m0"]}  # deep: no recursion limit
    assert strongly_connected(chain) == [sorted(chain)]
