"""What to load in a model copy, described so that a fresh process can find it.

A model class or factory travels as ``module:qualname`` and is imported again
inside each copy; a TorchScript artifact travels as its path. Nothing the user
wrote is pickled to disk.
"""

from __future__ import annotations

import importlib
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_neuronperf.errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelSource:
    kind: Literal["torchscript", "factory"]
    name: str
    path: str | None = None
    module: str | None = None
    qualname: str | None = None
    # In-process copies (multiprocess=False) use the object itself; it never crosses a process boundary.
    obj: Any = field(default=None, compare=False, repr=False)
    # Modules a copy imports to re-create the model (its own, its classes' bases'): worth preloading.
    preload: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def filename(self) -> str:
        """The ``model_filename`` report field: the artifact path or ``module:qualname``."""
        return self.path if self.path is not None else f"{self.module}:{self.qualname}"

    @classmethod
    def torchscript(cls, path: str | os.PathLike[str], name: str | None = None) -> ModelSource:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(
                f"model: no such file {str(p)!r}; pass the path of a TorchScript file saved with "
                "torch.jit.save, a .pt2 file from torch.export.save or torch._inductor.aoti_compile_and_package, "
                "a model index JSON from compile(), or a model class"
            )
        if p.is_dir() or not zipfile.is_zipfile(p):
            raise ValueError(
                f"model: {str(p)!r} is not a TorchScript archive; save the model with "
                "torch.jit.save(torch.jit.trace(model, inputs), path) or torch.export.save(torch.export.export("
                "model, (inputs,)), path), or pass the model class instead"
            )
        return cls(kind="torchscript", name=name or p.stem, path=str(p))

    @classmethod
    def factory(cls, obj: object, name: str | None = None) -> ModelSource:
        if not callable(obj):
            raise TypeError(
                f"model: expected a file path, a model class or a zero-argument factory, got {type(obj).__name__}"
            )
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not module or not qualname:
            raise ValueError(
                f"model: {obj!r} has no importable name; pass a class or function defined at the top "
                "level of a module (instances and functools.partial objects cannot be re-created in a copy)"
            )
        if "<locals>" in qualname or "<lambda>" in qualname:
            raise ValueError(
                f"model: {qualname!r} is defined inside a function (a nested scope), so a model-copy process "
                f"cannot import it; move it to the top level of module {module!r}"
            )
        if module == "__main__":
            from pytest_neuronperf.spec.main_module import check_main_reusable

            check_main_reusable({"model": [qualname]})
        return cls(kind="factory", name=name or qualname, module=module, qualname=qualname,
                   preload=_modules_of(obj))

    @classmethod
    def inline(cls, obj: object, name: str | None = None) -> ModelSource:
        if not callable(obj):
            raise TypeError(
                f"model: expected a file path, a model class or a zero-argument factory, got {type(obj).__name__}"
            )
        module = getattr(obj, "__module__", None) or "?"
        qualname = getattr(obj, "__qualname__", None) or type(obj).__name__
        return cls(kind="factory", name=name or qualname, module=module, qualname=qualname, obj=obj)

    def resolve_factory(self) -> Callable[..., Any]:
        """Import ``module:qualname`` in this process; errors say why a copy could not find the model."""
        if self.obj is not None:
            return self.obj  # type: ignore[no-any-return]
        assert self.module is not None and self.qualname is not None
        try:
            obj: Any = sys.modules["__main__"] if self.module == "__main__" else importlib.import_module(
                self.module
            )
        except Exception as exc:
            missing = isinstance(exc, ModuleNotFoundError) and exc.name is not None and (
                self.module == exc.name or self.module.startswith(f"{exc.name}."))
            raise (ModelNotFoundError if missing else ImportError)(
                f"model: the model-copy process could not import module {self.module!r} to find "
                f"{self.qualname!r} ({type(exc).__name__}: {exc}). Define the model in a module that is "
                "importable from sys.path (with pytest's importlib import mode, test modules are not), "
                "or pass multiprocess=False"
            ) from exc
        for part in self.qualname.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError as exc:
                raise ModelNotFoundError(
                    f"model: module {self.module!r} has no attribute {self.qualname!r} in the model-copy "
                    "process; define the model at the top level of the module"
                ) from exc
        if not callable(obj):
            raise TypeError(f"model: {self.filename} is not callable")
        return obj  # type: ignore[no-any-return]

    def instantiate(self) -> Any:
        return self.resolve_factory()()


def _modules_of(obj: object) -> tuple[str, ...]:
    """The modules that define ``obj`` and, for a class, its bases (a model module in ``__main__`` is left out)."""
    classes = obj.__mro__ if isinstance(obj, type) else (obj,)
    modules = (getattr(c, "__module__", None) for c in classes)
    return tuple(dict.fromkeys(m for m in modules if isinstance(m, str) and m not in ("__main__", "builtins")))
