"""The layering rule, enforced: lower layers never import upper ones (docs/architecture.md).

Every module's imports are read with :mod:`ast` (those inside functions too, since a lazy import
is still a dependency) and mapped to the layer of the imported module. ``FORBIDDEN`` is the one
table of the rules; a change to the architecture changes it and docs/architecture.md together.
"""

from __future__ import annotations

import ast
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
    ("cnnlstm.study", "study"), ("cnnlstm.api", "api"), ("cnnlstm.cli", "cli"), ("cnnlstm.__main__", "cli"),
    ("cnnlstm", "api"),  # the package's __init__: the lazy facade over api
)

UPPER = {"study", "reporting", "deploy", "cli", "api"}
# layer -> the layers it must never import
FORBIDDEN = {
    "base": {"core", "data", "models", "training", "measure"} | UPPER,
    "data": {"core", "models", "training", "measure"} | UPPER,
    "models": {"core", "data", "training", "measure"} | UPPER,
    "core": {"data", "training", "measure"} | UPPER,
    "training": {"measure"} | UPPER,
    "measure": UPPER,
    "reporting": {"training", "deploy", "study", "cli", "api"},
    "deploy": {"training", "study", "reporting", "cli", "api"},
    "study": {"cli", "api"},
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
    ("cnnlstm.measure.stats", "from cnnlstm.study.reproduce import Job"),
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
