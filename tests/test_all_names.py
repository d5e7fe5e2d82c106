"""Every name in every ``__all__`` of the package resolves, so ``from cnnlstm.x import *`` never fails.

Each module is found with :func:`pkgutil.walk_packages` and imported; each name of its ``__all__``
is then looked up with ``getattr`` (a module's lazy ``__getattr__``, PEP 562, is exercised too).
"""

from __future__ import annotations

import importlib
import pkgutil
import types

import cnnlstm


def package_modules() -> list[str]:
    """Dotted names of every module and subpackage under :mod:`cnnlstm`."""
    return sorted(info.name for info in pkgutil.walk_packages(cnnlstm.__path__, "cnnlstm."))


def unresolved_names(module: types.ModuleType) -> list[str]:
    """What is wrong with ``module.__all__``: names that do not resolve, non-strings, duplicates."""
    names = list(getattr(module, "__all__", ()))
    problems = [f"{module.__name__}.__all__ lists {name!r}, which is not a string" for name in names
                if not isinstance(name, str)]
    problems += [f"{module.__name__}.__all__ lists {name!r}, which it does not define" for name in names
                 if isinstance(name, str) and not hasattr(module, name)]
    problems += [f"{module.__name__}.__all__ lists {name!r} {names.count(name)} times"
                 for name in sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})]
    return problems


def test_every_name_in_every_all_resolves():
    modules = package_modules()
    assert {"cnnlstm.reporting", "cnnlstm.deploy.predict", "cnnlstm.cli.train_cmd"} <= set(modules)
    problems = []
    for name in modules:
        problems += unresolved_names(importlib.import_module(name))
    assert problems == [], "\n".join(problems)


def test_star_import_of_the_reporting_package_works():
    namespace: dict = {}
    exec("from cnnlstm.reporting import *", namespace)  # noqa: S102 - a fixed statement
    assert {"BulletList", "Section", "Table", "build_report"} <= set(namespace)


def test_the_check_catches_a_bad_all():
    module = types.ModuleType("fake")
    module.present = 1
    module.__all__ = ["present", "missing", "present", 3]
    problems = unresolved_names(module)
    assert len(problems) == 3
    assert "3, which is not a string" in problems[0]
    assert "'missing', which it does not define" in problems[1]
    assert "'present' 2 times" in problems[2]
    module.__all__ = ["present"]
    assert unresolved_names(module) == []
