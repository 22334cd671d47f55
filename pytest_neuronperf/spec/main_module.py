"""Whether model copies need the user's main module, and whether they can have it.

multiprocessing re-runs the parent's main module (as ``__mp_main__``) in every child it starts
from a forkserver or with spawn, so that objects defined there can be unpickled. A script
without an ``if __name__ == "__main__":`` guard then runs its whole body again in each copy,
its benchmark call included, and code fed on stdin names a file ``<stdin>`` that does not
exist. Copies therefore run the main module again only when something they receive is defined
in it; this module finds those objects and, before any copy starts, says when the main module
cannot be run again safely and what to do instead.
"""

from __future__ import annotations

import ast
import inspect
import os
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

MAIN = "__main__"
# Modules every pickle may name that are never worth preloading.
_BUILTIN_MODULES = frozenset({"builtins", "copyreg", "_codecs", "collections", "functools", "__builtin__"})


class MainModuleError(ValueError):
    """Something a model copy needs is defined in a main module that the copy cannot run again."""


@dataclass(frozen=True)
class MainModule:
    """The program's main module, as a model copy would have to run it again.

    ``reusable``: a copy can (a file with an ``if __name__ == "__main__":`` guard). Otherwise
    ``problem`` says why not, and ``alternative`` is a fix besides moving the objects out.
    """

    where: str
    reusable: bool
    problem: str = ""
    alternative: str = ""


_UNGUARDED = ('that file has no `if __name__ == "__main__":` guard, so every copy would run all of it again, '
              "its benchmark call included")
_GUARD = 'put the code that runs the benchmark under `if __name__ == "__main__":`'


def describe_main(main: ModuleType | None = None) -> MainModule:
    """How this program was started, as far as a model copy running its main module again cares."""
    if main is None:
        main = sys.modules.get(MAIN)
    spec = getattr(main, "__spec__", None)
    spec_name = getattr(spec, "name", None)
    if isinstance(spec_name, str) and spec_name:
        if spec_name == MAIN or spec_name.endswith("." + MAIN):
            return MainModule(f"the entry point {spec_name}", False,
                              "multiprocessing never runs a __main__ module again in a child process")
        where = f"the module {spec_name}, run with python -m"
        if has_main_guard(getattr(spec, "origin", None)):
            return MainModule(where, True)
        return MainModule(where, False, _UNGUARDED, _GUARD)
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and path:
        if path == "<stdin>":
            return MainModule("code read from standard input, python -", False,
                              "that code cannot be read again",
                              'save the code as a script with an `if __name__ == "__main__":` guard and run that')
        if not os.path.isfile(path):
            return MainModule(f"{path!r}", False, "that is not a file that can be run again")
        where = f"the script {path}"
        if has_main_guard(path):
            return MainModule(where, True)
        return MainModule(where, False, _UNGUARDED, _GUARD)
    if "IPython" in sys.modules or "ipykernel" in sys.modules:
        where = "an IPython session or Jupyter notebook"
    elif sys.argv[:1] == ["-c"]:
        where = "a command given with python -c"
    else:
        where = "an interactive session"
    return MainModule(where, False, "it has no file that a copy could run again")


def has_main_guard(path: object) -> bool:
    """Whether the source file at ``path`` has a top-level ``if __name__ == "__main__":`` block."""
    if not isinstance(path, str) or not path.endswith(".py"):
        return False
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return False
    return any(isinstance(node, ast.If) and _is_main_test(node.test) for node in tree.body)


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    texts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and texts == [MAIN]


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


class _ModuleRecorder(pickle.Pickler):
    """Pickles to nowhere, noting every class and function the pickle names (what unpickling imports)."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.named: dict[str, list[str]] = {}

    def persistent_id(self, obj: Any) -> None:
        if inspect.isclass(obj) or inspect.isroutine(obj):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str):
                names = self.named.setdefault(module, [])
                name = str(getattr(obj, "__qualname__", getattr(obj, "__name__", "?")))
                if name not in names:
                    names.append(name)


def named_by(obj: object) -> dict[str, list[str]]:
    """Module -> names of the classes and functions that unpickling ``obj`` imports; {} if it cannot pickle.

    A value that does not pickle fails when its copy starts, with pickle's own error: nothing to add here.
    """
    recorder = _ModuleRecorder()
    try:
        recorder.dump(obj)
    except Exception:
        return {}
    return recorder.named


def modules_named(values: Mapping[str, object]) -> list[str]:
    """The modules unpickling ``values`` imports, in first-seen order, without the main module."""
    out: list[str] = []
    for value in values.values():
        for module in named_by(value):
            if module != MAIN and module not in _BUILTIN_MODULES and module not in out:
                out.append(module)
    return out


def main_objects(values: Mapping[str, object], model: str | None = None) -> dict[str, list[str]]:
    """Parameter -> the objects from the main module a copy needs for it (``model``: the model's qualname)."""
    found = {"model": [model]} if model is not None else {}
    for parameter, value in values.items():
        names = named_by(value).get(MAIN)
        if names:
            found[parameter] = names
    return found


def check_main_reusable(needed: Mapping[str, list[str]], main: MainModule | None = None) -> bool:
    """True when copies must run the main module again (and can); MainModuleError when they cannot."""
    if not needed:
        return False
    main = main or describe_main()
    if main.reusable:
        return True
    raise MainModuleError(main_problem(needed, main))


def main_problem(needed: Mapping[str, list[str]], main: MainModule) -> str:
    """The error for objects defined in a main module that copies cannot run again."""
    what = "; ".join(f"{parameter}: {', '.join(map(repr, names))}" for parameter, names in needed.items())
    names = [n.split(".")[0] for found in needed.values() for n in found]
    them = "them" if len(names) > 1 else "it"
    alternative = f", or {main.alternative}" if main.alternative else ""
    return (f"{what} {'are' if len(names) > 1 else 'is'} defined in the main module ({main.where}). Every model "
            f"copy is a separate process that would have to run the main module again to find {them}, and "
            f"{main.problem}. Move {them} into a module file and import {them} from there (for example "
            f"`from mymodels import {', '.join(dict.fromkeys(names))}`){alternative}, or pass multiprocess=False "
            "to run the copies as threads in this process")
