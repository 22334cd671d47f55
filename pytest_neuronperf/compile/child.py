"""The compile process: build the model, compile each job, report each step to the parent.

Started by :mod:`pytest_neuronperf.compile.parent` with the "spawn" method, so
this is the only process that imports ``torch_neuronx``; :func:`compile_main`
is its target and sends the messages of :mod:`pytest_neuronperf.compile.messages`.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from pytest_neuronperf._util.atomic_write import atomic_path
from pytest_neuronperf.compile.cache import CompileFingerprint, cache_lookup, cache_store, jsonable
from pytest_neuronperf.compile.messages import Done, End, Failed, Fatal, Interrupted, Job, Spec, Started


def compile_main(conn: Connection, spec: Spec) -> None:
    """Entry point of the compile process: compile each job and report it on ``conn``."""
    try:
        try:
            context = _Context(spec)
        except KeyboardInterrupt:
            conn.send(Interrupted(None))
            return
        except BaseException as exc:
            conn.send(Fatal(
                error_type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc(),
                import_error=isinstance(exc, ImportError),
            ))
            return
        for job in spec.jobs:
            try:
                conn.send(context.compile_job(job, conn))
            except KeyboardInterrupt:
                conn.send(Interrupted(job.index))
                return
        conn.send(End())
    finally:
        conn.close()


class _Context:
    """What stays the same across the jobs of one compile process: model, compiler and hash inputs."""

    def __init__(self, spec: Spec) -> None:
        import torch

        self.spec = spec
        self.torch = torch
        if spec.compile_fn is None:
            try:
                import torch_neuronx  # noqa: F401
            except ImportError as exc:
                raise ImportError(
                    f"compile needs torch-neuronx ({exc}); install it with: pip install --extra-index-url "
                    'https://pip.repos.neuron.amazonaws.com "pytest-neuronperf[neuron]", or pass compile_fn'
                ) from exc
            self.compile_fn: Callable[..., Any] = _neuronx_trace
        else:
            self.compile_fn = spec.compile_fn
        if spec.fingerprint is None:
            factory = spec.model.resolve_factory()
            torch.manual_seed(0)
            self.model = factory()
            sources = [factory] if type(self.model) is factory else [factory, type(self.model)]
            self.fingerprint = CompileFingerprint.of(self.model, sources, spec.compile_fn)
        else:
            self.model = spec.model
            self.fingerprint = spec.fingerprint
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()

    def compile_job(self, job: Job, conn: Connection) -> Done | Failed:
        spec = self.spec
        key = self.fingerprint.key(job.inputs, job.batch_size, job.pipeline_size, spec.compiler_args)
        artifact = os.path.join(
            spec.models_dir, f"{spec.model_name}_b{job.batch_size}_p{job.pipeline_size}_{key[:8]}.pt"
        )
        if not spec.recompile:
            hit = cache_lookup(spec.models_dir, key)
            if hit is not None:
                return Done(job.index, {**hit, "cached": True})
        conn.send(Started(job.index, artifact))
        started = time.perf_counter()
        try:
            compiled = self.compile_fn(
                self.model, job.inputs, compiler_args=spec.compiler_args, pipeline_size=job.pipeline_size
            )
            compile_s = time.perf_counter() - started
            # torch.jit.save wants a path; writing to a temp one means a failed or killed save
            # never leaves a truncated artifact under the name the index and the cache point to.
            with atomic_path(artifact) as tmp:
                self.torch.jit.save(compiled, os.fspath(tmp))
        except Exception as exc:
            return Failed(job.index, {
                "filename": artifact,
                "compile_s": time.perf_counter() - started,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            })
        cache_store(spec.models_dir, key, artifact, compile_s, {
            "model_name": spec.model_name, "batch_size": job.batch_size, "pipeline_size": job.pipeline_size,
            "compiler": self.fingerprint.compiler, "compiler_args": jsonable(spec.compiler_args),
            "versions": self.fingerprint.versions,
        })
        return Done(job.index, {"filename": artifact, "compile_s": compile_s})


def _neuronx_trace(model: Any, inputs: tuple[Any, ...], compiler_args: Any = None, pipeline_size: int = 1) -> Any:
    """The default compiler; ``pipeline_size`` is only recorded (see :mod:`pytest_neuronperf.compile.parent`)."""
    import torch_neuronx

    return torch_neuronx.trace(model, inputs, compiler_args=compiler_args)
