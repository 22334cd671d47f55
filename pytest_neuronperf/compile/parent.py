"""``compile``: trace a model for NeuronCores at every batch size x pipeline size, with a cache.

Compilation runs in one child process started with the "spawn" method, so the
calling process never imports ``torch_neuronx`` nor starts the Neuron runtime
(a runtime started there would make every later model copy fail with
``NRT_STATE_CHILD``). The child reports each attempt as it ends; the parent
rewrites the model index after every one, so an interrupted or crashed run
still leaves an index of what was done.

Pipeline size on torch-neuronx. Inf1's torch-neuron compiled pipelines with
``--neuroncore-pipeline-cores``; neuronx-cc has no such flag. Here
``pipeline_size`` is the number of NeuronCores one model copy occupies: it is
recorded in the index and the benchmark gives each copy that many cores
through ``NEURON_RT_VISIBLE_CORES``. ``compile`` itself passes no pipeline
flag to the compiler: a model that spans several cores (for example one built
with neuronx-distributed) carries that in its own code or in the caller's
``compiler_args``, and a ``compile_fn`` receives ``pipeline_size`` to act on.
On trn2 the compiler's ``--logical-nc-config`` must match the runtime's
``NEURON_LOGICAL_NC_CONFIG``; pass it in ``compiler_args`` when it differs
from the default.

Cache: see :mod:`pytest_neuronperf.compile.cache`; a later ``compile`` with the same key reuses
an intact artifact without running the compiler (``recompile=True`` compiles anyway).
"""

from __future__ import annotations

import dataclasses
import inspect
import multiprocessing as mp
import os
import pickle
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from pytest_neuronperf import model_index
from pytest_neuronperf._util.log import logger
from pytest_neuronperf._util.log import verbosity as log_level
from pytest_neuronperf.compile.cache import CompileFingerprint, cache_lookup, cache_store, jsonable
from pytest_neuronperf.spec import params
from pytest_neuronperf.spec.inputs import pair_inputs
from pytest_neuronperf.spec.model_source import ModelSource

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True)
class _Job:
    index: int
    batch_size: int
    pipeline_size: int
    inputs: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Everything the compile process needs; pickled into it by the spawn start method.

    ``fingerprint`` is None for a model class or factory: only the compile
    process builds the model, so only it can hash the weights.
    """

    model: Any
    fingerprint: CompileFingerprint | None
    model_name: str
    models_dir: str
    jobs: tuple[_Job, ...]
    compiler_args: Any
    compile_fn: Callable[..., Any] | None
    recompile: bool


def compile(
    model: Any,
    inputs: Any,
    batch_sizes: int | Sequence[int] | None = 1,
    pipeline_sizes: int | Sequence[int] | None = 1,
    models_dir: str | os.PathLike[str] = "models",
    model_name: str | None = None,
    compiler_args: Any = None,
    filename: str | os.PathLike[str] | None = None,
    compile_fn: Callable[..., Any] | None = None,
    recompile: bool = False,
    verbosity: int = 1,
) -> str:
    """Compile ``model`` for every batch size x pipeline size; returns the path of the model index.

    ``model`` is an ``nn.Module`` instance (pickled into the compile process, so
    its class must be importable there) or a model class / zero-argument
    factory defined at the top level of a module. ``inputs`` pair with
    ``batch_sizes`` by position as in ``benchmark``: a tensor or a tuple of
    tensors serves every batch size only when there is one; a list gives one
    input per batch size. Each configuration is traced with
    ``torch_neuronx.trace(model, inputs, compiler_args=compiler_args)``, or with
    ``compile_fn(model, inputs, compiler_args=..., pipeline_size=...)`` when
    given (it must return something ``torch.jit.save`` accepts and be defined
    at module top level). A configuration that fails is recorded with status
    "error" and its error text, and the next one is tried. The index (default
    ``{models_dir}/{model_name}.json``) is rewritten after every attempt; on
    KeyboardInterrupt the index of what finished so far is returned.
    """
    with log_level(verbosity):
        spec, index_path = _plan(
            model, inputs, batch_sizes, pipeline_sizes, models_dir, model_name, compiler_args, filename,
            compile_fn, recompile,
        )
        return _Compilation(spec, index_path).run()


def _plan(
    model: Any,
    inputs: Any,
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    models_dir: str | os.PathLike[str],
    model_name: str | None,
    compiler_args: Any,
    filename: str | os.PathLike[str] | None,
    compile_fn: Callable[..., Any] | None,
    recompile: bool,
) -> tuple[_Spec, str]:
    sizes = params.int_list("batch_sizes", batch_sizes)
    pipelines = params.int_list("pipeline_sizes", pipeline_sizes) or [1]
    model_inputs = pair_inputs(inputs, sizes)
    if any(mi.is_dataset for mi in model_inputs):
        raise ValueError("inputs: compile needs example tensors, not a Dataset; pass one input per batch size")
    if inspect.isclass(model) or inspect.isfunction(model):
        payload: Any = ModelSource.factory(model)
        default_name = model.__name__
    elif callable(model):
        payload = model
        default_name = type(model).__name__
    else:
        raise TypeError(
            f"model: expected an nn.Module instance or a model class / factory, got {type(model).__name__}"
        )
    if compile_fn is not None:
        if not callable(compile_fn):
            raise ValueError(f"compile_fn: expected a function, got {type(compile_fn).__name__}")
        try:
            pickle.dumps(compile_fn)
        except Exception as exc:
            raise ValueError(
                f"compile_fn: {getattr(compile_fn, '__qualname__', compile_fn)!r} cannot be sent to the compile "
                f"process ({type(exc).__name__}); define it at the top level of a module"
            ) from exc
    name = _UNSAFE.sub("_", model_name or default_name).strip("._") or "model"
    folder = os.fspath(models_dir)
    jobs = tuple(
        _Job(index=i, batch_size=bs, pipeline_size=ps, inputs=args)
        for i, (bs, ps, args) in enumerate(
            (mi.batch_size, ps, mi.args or ()) for mi in model_inputs for ps in pipelines
        )
    )
    # A model instance is already in this process (so is torch): hash it here, and
    # configurations found in the cache need no compile process at all.
    fingerprint = None if isinstance(payload, ModelSource) else CompileFingerprint.of(model, [type(model)], compile_fn)
    spec = _Spec(
        model=payload,
        fingerprint=fingerprint,
        model_name=name,
        models_dir=os.path.abspath(folder),
        jobs=jobs,
        compiler_args=compiler_args,
        compile_fn=compile_fn,
        recompile=recompile,
    )
    index_path = os.fspath(filename) if filename is not None else os.path.join(folder, f"{name}.json")
    return spec, index_path


class _Compilation:
    """The parent's side: start the compile process, record each attempt it reports, survive its end."""

    def __init__(self, spec: _Spec, index_path: str) -> None:
        self.spec = spec
        self.index_path = index_path
        self.done: dict[int, dict[str, Any]] = {}
        self.artifacts: dict[int, str] = {}
        self.interrupted = False

    def run(self) -> str:
        os.makedirs(self.spec.models_dir, exist_ok=True)
        fingerprint = self.spec.fingerprint
        if fingerprint is not None and not self.spec.recompile:
            for job in self.spec.jobs:
                key = fingerprint.key(job.inputs, job.batch_size, job.pipeline_size, self.spec.compiler_args)
                hit = cache_lookup(self.spec.models_dir, key)
                if hit is not None:
                    self._record(job, {**hit, "cached": True})
        pending = [job.index for job in self.spec.jobs if job.index not in self.done]
        try:
            while pending and not self.interrupted:
                self._run_child(pending)
                pending = [i for i in pending if i not in self.done]
        except KeyboardInterrupt:
            self.interrupted = True
        self._save()
        if self.interrupted:
            logger.warning(
                "compile interrupted after %d of %d configuration(s); the model index %s lists those",
                len(self.done), len(self.spec.jobs), self.index_path,
            )
        return self.index_path

    def _run_child(self, pending: list[int]) -> None:
        ctx = mp.get_context("spawn")
        spec = dataclasses.replace(self.spec, jobs=tuple(j for j in self.spec.jobs if j.index in pending))
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_compile_main, args=(sender, spec), name="npf-compile")
        try:
            try:
                process.start()
            except (pickle.PicklingError, AttributeError, TypeError) as exc:
                raise ValueError(
                    f"model: {type(self.spec.model).__name__} could not be sent to the compile process "
                    f"({type(exc).__name__}: {exc}); define the model class at the top level of an "
                    "importable module, or pass the class itself"
                ) from exc
            finally:
                sender.close()
            current = self._receive(receiver)
        finally:
            if process.pid is not None:
                _stop(process, grace_s=2.0 if self.interrupted else 30.0)
            receiver.close()
        if self.interrupted:
            return
        if current is not None:
            self._record(self.spec.jobs[current], {"filename": self.artifacts.get(current), "error": (
                f"the compile process ended (exit code {process.exitcode}) while compiling this configuration"
            )})
        elif not any(i in self.done for i in pending):
            for i in pending:
                self._record(self.spec.jobs[i], {"error": (
                    f"the compile process ended (exit code {process.exitcode}) before compiling this configuration"
                )})

    def _receive(self, receiver: Connection) -> int | None:
        """Handle the child's reports until it ends; returns the job it was compiling when it ended, if any."""
        current: int | None = None
        try:
            while True:
                try:
                    message = receiver.recv()
                except EOFError:
                    return current
                current = self._handle(message, current)
                if message[0] in ("end", "interrupted"):
                    return current
        except KeyboardInterrupt:
            self.interrupted = True
            # Keep what the child finished before the interrupt; the stream may end mid-message.
            while True:
                try:
                    if not receiver.poll(0):
                        break
                    current = self._handle(receiver.recv(), current)
                except (Exception, KeyboardInterrupt):
                    break
            return current

    def _handle(self, message: tuple[Any, ...], current: int | None) -> int | None:
        kind = message[0]
        if kind == "start":
            job = self.spec.jobs[message[1]]
            self.artifacts[job.index] = message[2]
            logger.info(
                "compiling %s for batch_size=%d pipeline_size=%d", self.spec.model_name, job.batch_size,
                job.pipeline_size,
            )
            return int(message[1])
        if kind in ("done", "error"):
            self._record(self.spec.jobs[message[1]], message[2])
            return None
        if kind == "interrupted":
            self.interrupted = True
            return None
        if kind == "fatal":
            exc_type, text, trace = message[1], message[2], message[3]
            logger.debug("compile process traceback:\n%s", trace)
            if exc_type == "ImportError":
                raise ImportError(text)
            raise RuntimeError(f"compile: {text}\n{trace}")
        return current

    def _record(self, job: _Job, outcome: dict[str, Any]) -> None:
        config: dict[str, Any] = {
            "filename": outcome.get("filename") or os.path.join(
                self.spec.models_dir, f"{self.spec.model_name}_b{job.batch_size}_p{job.pipeline_size}.pt"
            ),
            "batch_size": job.batch_size,
            "pipeline_size": job.pipeline_size,
            "compile_s": outcome.get("compile_s"),
            "status": "error" if "error" in outcome else "finished",
            "input_shapes": [list(x.shape) for x in job.inputs if hasattr(x, "shape")],
        }
        where = f"batch_size={job.batch_size} pipeline_size={job.pipeline_size}"
        if "error" in outcome:
            config["error"] = outcome["error"]
            logger.error("compile of %s for %s failed: %s", self.spec.model_name, where, outcome["error"])
            if outcome.get("traceback"):
                logger.debug("%s", outcome["traceback"])
        elif outcome.get("cached"):
            config["cached"] = True
            logger.info("%s for %s: reusing %s from the compile cache", self.spec.model_name, where,
                        config["filename"])
        else:
            logger.info("%s for %s compiled in %.1f s: %s", self.spec.model_name, where,
                        config["compile_s"] or 0.0, config["filename"])
        self.done[job.index] = config
        self._save()

    def _save(self) -> None:
        configs = [self.done[i] for i in sorted(self.done)]
        model_index.save(
            model_index.ModelIndex(
                schema_version=model_index.SCHEMA_VERSION, model_name=self.spec.model_name, model_configs=configs
            ),
            self.index_path,
        )


def _stop(process: Any, grace_s: float) -> None:
    process.join(timeout=grace_s)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join()


# -- the compile process ------------------------------------------------------


def _compile_main(conn: Connection, spec: _Spec) -> None:
    """Entry point of the compile process: compile each job and report it on ``conn``."""
    try:
        try:
            context = _Context(spec)
        except KeyboardInterrupt:
            conn.send(("interrupted", None))
            return
        except BaseException as exc:
            kind = "ImportError" if isinstance(exc, ImportError) else type(exc).__name__
            conn.send(("fatal", kind, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            return
        for job in spec.jobs:
            try:
                conn.send(context.compile_job(job, conn))
            except KeyboardInterrupt:
                conn.send(("interrupted", job.index))
                return
        conn.send(("end",))
    finally:
        conn.close()


class _Context:
    """What stays the same across the jobs of one compile process: model, compiler and hash inputs."""

    def __init__(self, spec: _Spec) -> None:
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

    def compile_job(self, job: _Job, conn: Connection) -> tuple[Any, ...]:
        spec = self.spec
        key = self.fingerprint.key(job.inputs, job.batch_size, job.pipeline_size, spec.compiler_args)
        artifact = os.path.join(
            spec.models_dir, f"{spec.model_name}_b{job.batch_size}_p{job.pipeline_size}_{key[:8]}.pt"
        )
        if not spec.recompile:
            hit = cache_lookup(spec.models_dir, key)
            if hit is not None:
                return ("done", job.index, {**hit, "cached": True})
        conn.send(("start", job.index, artifact))
        started = time.perf_counter()
        try:
            compiled = self.compile_fn(
                self.model, job.inputs, compiler_args=spec.compiler_args, pipeline_size=job.pipeline_size
            )
            compile_s = time.perf_counter() - started
            _save_artifact(self.torch, compiled, artifact)
        except Exception as exc:
            return ("error", job.index, {
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
        return ("done", job.index, {"filename": artifact, "compile_s": compile_s})


def _neuronx_trace(model: Any, inputs: tuple[Any, ...], compiler_args: Any = None, pipeline_size: int = 1) -> Any:
    """The default compiler; ``pipeline_size`` is only recorded (see the module docstring)."""
    import torch_neuronx

    return torch_neuronx.trace(model, inputs, compiler_args=compiler_args)


def _save_artifact(torch: Any, compiled: Any, path: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.jit.save(compiled, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
