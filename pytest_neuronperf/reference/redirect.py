"""Make a model copy import the user's code from a checkout of another revision.

The reference side of an A/B comparison runs the same test with the model classes, factories and
pre/post functions as they were at a revision. Its copies start like every other copy, then, before
anything of the user's is imported, :func:`install` points them at the checkout: ``sys.path``
entries inside the repository are mapped into the checkout, and a finder first in
``sys.meta_path`` maps any module that would load from the repository (an editable install, say)
to the same file in the checkout. A module that does not exist there fails to import, which is how
a model that is new in this change shows itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_HARNESS = __name__.partition(".")[0]


class _Redirect(importlib.abc.MetaPathFinder):
    def __init__(self, repo_root: Path, checkout: Path, original_path: list[str]) -> None:
        self.repo_root = repo_root
        self.checkout = checkout
        self.original_path = original_path

    def _mapped(self, origin: str) -> Path | None:
        return _map(Path(os.path.realpath(origin)), self.repo_root, self.checkout)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] == _HARNESS:
            # Both sides are measured by the same harness, whatever the repository holds.
            return importlib.machinery.PathFinder.find_spec(fullname, path if path is not None else self.original_path)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.origin is None or not spec.has_location:
                return spec
            mapped = self._mapped(spec.origin)
            if mapped is None:
                return spec
            if not mapped.exists():
                raise ModuleNotFoundError(f"{fullname} does not exist at the reference revision ({mapped})",
                                          name=fullname)
            locations = None
            if spec.submodule_search_locations is not None:
                locations = [str(self._mapped(p) or p) for p in spec.submodule_search_locations]
            return importlib.util.spec_from_file_location(fullname, mapped, submodule_search_locations=locations)
        return None


def _map(path: Path, root: Path, checkout: Path) -> Path | None:
    """``path`` inside the repository, in the checkout; None outside it, or already in the checkout
    (which usually lives inside the repository, in an ignored cache folder)."""
    if path.is_relative_to(checkout) or not path.is_relative_to(root):
        return None
    return checkout / path.relative_to(root)


def install(repo_root: str | os.PathLike[str], checkout: str | os.PathLike[str]) -> None:
    """From now on, this process imports the repository's code from ``checkout`` instead."""
    root, other = Path(os.path.realpath(repo_root)), Path(os.path.realpath(checkout))
    original = list(sys.path)
    sys.path[:] = [str(_map(Path(os.path.realpath(entry or os.getcwd())), root, other) or entry) for entry in sys.path]
    sys.path_importer_cache.clear()
    sys.meta_path.insert(0, _Redirect(root, other, original))
    # Model files given relative to the working directory resolve in the checkout too.
    cwd = _map(Path(os.path.realpath(os.getcwd())), root, other)
    if cwd is not None and cwd.is_dir():
        os.chdir(cwd)
