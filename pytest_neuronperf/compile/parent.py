"""``compile``: trace a model for NeuronCores at every batch size x pipeline size, with a cache.

Compilation runs in one child process (:mod:`pytest_neuronperf.compile.child`)
started with the "spawn" method, so the calling process never imports
``torch_neuronx`` nor starts the Neuron runtime (a runtime started there would
make every later model copy fail with ``NRT_STATE_CHILD``). The child reports
each attempt as it ends (:mod:`pytest_neuronperf.compile.messages`); the parent
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
import reprlib
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from pytest_neuronperf import model_index
from pytest_neuronperf._util.log import logger
from pytest_neuronperf._util.log import verbosity as log_level
from pytest_neuronperf._util.processes import stop_processes
from pytest_neuronperf.compile.cache import CompileFingerprint, cache_lookup
from pytest_neuronperf.compile.child import compile_main
from pytest_neuronperf.compile.messages import (
    ChildMessage,
    Done,
    End,
    Failed,
    Fatal,
    Interrupted,
    Job,
    Spec,
    Started,
)
from pytest_neuronperf.spec import params
from pytest_neuronperf.spec.inputs import pair_inputs
from pytest_neuronperf.spec.model_source import ModelSource

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


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
) -> tuple[Spec, str]:
    sizes = params.int_list("batch_sizes", batch_sizes)
    pipelines = params.int_list("pipeline_sizes", pipeline_sizes) or [1]
    model_inputs = pair_inputs(inputs, sizes)
    if any(mi.is_dataset for mi in model_inputs):
        raise ValueError("inputs: compile needs example tensors, not a Dataset; pass one input per batch size")
    if any(mi.kwargs for mi in model_inputs):
        # torch_neuronx.trace takes positional example inputs only.
        raise ValueError(
            "inputs: compile traces the model with positional example inputs, so a dict of keyword inputs "
            "cannot be compiled; pass a tuple in the order of the model's forward arguments, e.g. "
            "(input_ids, attention_mask)"
        )
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
        Job(index=i, batch_size=bs, pipeline_size=ps, inputs=args)
        for i, (bs, ps, args) in enumerate(
            (mi.batch_size, ps, mi.args or ()) for mi in model_inputs for ps in pipelines
        )
    )
    # A model instance is already in this process (so is torch): hash it here, and
    # configurations found in the cache need no compile process at all.
    fingerprint = None if isinstance(payload, ModelSource) else CompileFingerprint.of(model, [type(model)], compile_fn)
    spec = Spec(
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

    def __init__(self, spec: Spec, index_path: str) -> None:
        self.spec = spec
        self.index_path = index_path
        self.done: dict[int, dict[str, Any]] = {}
        self.artifacts: dict[int, str] = {}
        self.interrupted = False
        # The job the compile process is compiling now, between its Started and Done/Failed.
        self.current: int | None = None

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
        process = ctx.Process(target=compile_main, args=(sender, spec), name="npf-compile")
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
            self._receive(receiver)
        finally:
            if process.pid is not None:
                # A child that has reported everything is exiting by itself; after an interrupt its
                # remaining work is no longer wanted, so it is not waited on for long.
                stop_processes([process], wait_s=2.0 if self.interrupted else 30.0, grace_s=5.0)
            receiver.close()
        if self.interrupted:
            return
        current = self.current
        if current is not None:
            self._record(self.spec.jobs[current], {"filename": self.artifacts.get(current), "error": (
                f"the compile process ended (exit code {process.exitcode}) while compiling this configuration"
            )})
        elif not any(i in self.done for i in pending):
            for i in pending:
                self._record(self.spec.jobs[i], {"error": (
                    f"the compile process ended (exit code {process.exitcode}) before compiling this configuration"
                )})

    def _receive(self, receiver: Connection) -> None:
        """Handle the child's reports until it ends; ``self.current`` is then the job it was compiling, if any."""
        self.current = None
        try:
            while True:
                try:
                    message = receiver.recv()
                except EOFError:
                    return
                self._dispatch(message)
                if isinstance(message, (End, Interrupted)):
                    return
        except KeyboardInterrupt:
            self.interrupted = True
            # Keep what the child finished before the interrupt; the stream may end mid-message.
            while True:
                try:
                    if not receiver.poll(0):
                        break
                    self._dispatch(receiver.recv())
                except (Exception, KeyboardInterrupt):
                    break

    def _dispatch(self, message: object) -> None:
        """Hand a message from the child to the ``child_<name>`` method."""
        if not isinstance(message, ChildMessage):
            raise RuntimeError(f"compile: the compile process sent an unknown message {reprlib.repr(message)}")
        handler: Callable[[Any], None] = getattr(self, f"child_{message.name}")
        handler(message)

    def child_started(self, message: Started) -> None:
        job = self.spec.jobs[message.index]
        self.artifacts[job.index] = message.artifact
        self.current = job.index
        logger.info(
            "compiling %s for batch_size=%d pipeline_size=%d", self.spec.model_name, job.batch_size,
            job.pipeline_size,
        )

    def child_done(self, message: Done) -> None:
        self.current = None
        self._record(self.spec.jobs[message.index], message.outcome)

    def child_failed(self, message: Failed) -> None:
        self.current = None
        self._record(self.spec.jobs[message.index], message.outcome)

    def child_interrupted(self, message: Interrupted) -> None:
        self.current = None
        self.interrupted = True

    def child_fatal(self, message: Fatal) -> NoReturn:
        logger.debug("compile process traceback:\n%s", message.traceback)
        if message.import_error:
            # ImportError's own name already leads the line the error is shown on; a subclass's name adds to it.
            raise ImportError(
                message.message if message.error_type == "ImportError" else f"{message.error_type}: {message.message}"
            )
        raise RuntimeError(f"compile: {message.error_type}: {message.message}\n{message.traceback}")

    def child_end(self, message: End) -> None:
        """Every job was reported; :meth:`_receive` stops reading here."""

    def _record(self, job: Job, outcome: dict[str, Any]) -> None:
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
