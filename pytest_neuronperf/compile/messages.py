"""What passes between ``compile`` (the parent) and its compile process (the child).

Into the child, once, as the process argument: a :class:`Spec` with its :class:`Job` list.
Out of the child, over a one-way pipe, a message as each step happens:

    Started(index, artifact)   job ``index`` is being compiled to ``artifact``
    Done(index, outcome)       job ``index`` compiled, or its artifact was found in the cache
    Failed(index, outcome)     job ``index`` raised; ``outcome`` carries the error and its traceback
    Interrupted(index)         Ctrl-C reached the child, during job ``index`` (None: before the first)
    Fatal(...)                 the child could not start compiling at all (no torch, no torch-neuronx, ...)
    End()                      every job was reported

Each message class has a ``name``; the parent hands a message named ``x`` to its
``child_x`` method. An outcome is a dict with ``filename``, ``compile_s`` and,
for a failure, ``error`` and ``traceback`` (a cache hit adds its record's fields).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from pytest_neuronperf.compile.cache import CompileFingerprint


@dataclasses.dataclass(frozen=True)
class Job:
    index: int
    batch_size: int
    pipeline_size: int
    inputs: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything the compile process needs; pickled into it by the spawn start method.

    ``fingerprint`` is None for a model class or factory: only the compile
    process builds the model, so only it can hash the weights.
    """

    model: Any
    fingerprint: CompileFingerprint | None
    model_name: str
    models_dir: str
    jobs: tuple[Job, ...]
    compiler_args: Any
    compile_fn: Callable[..., Any] | None
    recompile: bool


@dataclasses.dataclass(frozen=True)
class Started:
    name: ClassVar[str] = "started"
    index: int
    artifact: str


@dataclasses.dataclass(frozen=True)
class Done:
    name: ClassVar[str] = "done"
    index: int
    outcome: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Failed:
    name: ClassVar[str] = "failed"
    index: int
    outcome: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Interrupted:
    name: ClassVar[str] = "interrupted"
    index: int | None


@dataclasses.dataclass(frozen=True)
class Fatal:
    """The child failed before its first job: ``error_type`` and ``message`` of the exception, its traceback.

    ``import_error`` is true for ImportError and its subclasses: the parent raises
    ImportError for those, so that callers can catch a missing dependency as one.
    """

    name: ClassVar[str] = "fatal"
    error_type: str
    message: str
    traceback: str
    import_error: bool


@dataclasses.dataclass(frozen=True)
class End:
    name: ClassVar[str] = "end"


ChildMessage = Started | Done | Failed | Interrupted | Fatal | End
