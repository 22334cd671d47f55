"""The compile cache: which compilation a model, its inputs and the installation make, and where
its artifact is.

Each configuration has a key: the sha256 of the model's source text
(``inspect.getsource`` of its class or factory), a hash of its state_dict
tensors, the inputs' shapes and dtypes, ``compiler_args``, the batch and
pipeline size, the compile function's name, and the installed versions of
torch, torch-neuronx and neuronx-cc. Artifacts are named
``{models_dir}/{model_name}_b{bs}_p{ps}_{key[:8]}.pt`` and the cache is a
record per key in ``{models_dir}/.cache/<key>.json``; while the artifact it
names is still there with the recorded size, a later ``compile`` with the
same key reuses it without running the compiler (``recompile=True`` compiles
anyway). Model classes and factories are instantiated after
``torch.manual_seed(0)`` so that randomly initialised weights hash the same
every time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_neuronperf._util.atomic_write import write_atomic

CACHE_DIR = ".cache"
VERSIONED_DISTRIBUTIONS = ("torch", "torch-neuronx", "neuronx-cc")
DEFAULT_COMPILER = "torch_neuronx.trace"


@dataclasses.dataclass(frozen=True)
class CompileFingerprint:
    """The part of every cache key that comes from the model, the compiler and the installation."""

    source_text: str
    weights: str
    compiler: str
    versions: dict[str, str | None]

    @classmethod
    def of(cls, model: Any, sources: Sequence[Any], compile_fn: Callable[..., Any] | None) -> CompileFingerprint:
        return cls(
            source_text="\n".join(_source_text(obj) for obj in sources),
            weights=state_digest(model),
            compiler=DEFAULT_COMPILER if compile_fn is None else _qualified_name(compile_fn),
            versions={dist: _version(dist) for dist in VERSIONED_DISTRIBUTIONS},
        )

    def key(self, inputs: tuple[Any, ...], batch_size: int, pipeline_size: int, compiler_args: Any) -> str:
        return cache_key(
            source_text=self.source_text,
            weights=self.weights,
            inputs=inputs,
            compiler_args=compiler_args,
            batch_size=batch_size,
            pipeline_size=pipeline_size,
            compiler=self.compiler,
            versions=self.versions,
        )


def cache_key(
    *,
    source_text: str,
    weights: str,
    inputs: tuple[Any, ...],
    compiler_args: Any,
    batch_size: int,
    pipeline_size: int,
    compiler: str,
    versions: dict[str, str | None],
) -> str:
    """The sha256 hex digest identifying one compilation (see the module docstring)."""
    described = {
        "source": hashlib.sha256(source_text.encode("utf-8", "surrogatepass")).hexdigest(),
        "weights": weights,
        "inputs": [_describe_input(x) for x in inputs],
        "compiler_args": jsonable(compiler_args),
        "batch_size": batch_size,
        "pipeline_size": pipeline_size,
        "compiler": compiler,
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()


def cache_lookup(models_dir: str, key: str) -> dict[str, Any] | None:
    """The cached artifact for ``key`` (``filename``, ``compile_s``) while it is intact, else None."""
    try:
        with open(os.path.join(models_dir, CACHE_DIR, f"{key}.json"), encoding="utf-8") as fh:
            record = json.load(fh)
        artifact = os.path.join(models_dir, record["artifact"])
        if record.get("key") != key or os.path.getsize(artifact) != record["size"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"filename": artifact, "compile_s": record.get("compile_s")}


def cache_store(models_dir: str, key: str, artifact: str, compile_s: float, about: dict[str, Any]) -> None:
    folder = os.path.join(models_dir, CACHE_DIR)
    os.makedirs(folder, exist_ok=True)
    record = {
        "key": key,
        "artifact": os.path.relpath(artifact, models_dir),
        "size": os.path.getsize(artifact),
        "compile_s": compile_s,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **about,
    }
    write_atomic(Path(folder) / f"{key}.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def state_digest(model: Any) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the model's state_dict ("" without one)."""
    state_dict = getattr(model, "state_dict", None)
    if not callable(state_dict):
        return ""
    import torch

    digest = hashlib.sha256()
    for name, value in state_dict().items():
        digest.update(name.encode("utf-8"))
        if isinstance(value, torch.Tensor):
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            flat = value.detach().cpu().contiguous().reshape(-1)
            try:
                digest.update(flat.view(torch.uint8).numpy().data)
            except (RuntimeError, TypeError):
                digest.update(repr(flat.tolist()).encode())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _source_text(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return _qualified_name(obj)


def _qualified_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _describe_input(x: Any) -> Any:
    shape = getattr(x, "shape", None)
    if shape is not None:
        return {"shape": [int(d) for d in shape], "dtype": str(getattr(x, "dtype", ""))}
    return {"value": repr(x)}


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
