"""``benchmark``: the one runner behind the Python API, the fixture and the marker."""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from pytest_neuronperf._util.log import logger
from pytest_neuronperf._util.log import verbosity as log_verbosity
from pytest_neuronperf._util.stamps import wall_clock_stamp
from pytest_neuronperf.backends.base import Backend, worker_threads
from pytest_neuronperf.backends.registry import get_backend
from pytest_neuronperf.errors import DeviceUnavailableError
from pytest_neuronperf.runner import events
from pytest_neuronperf.runner.capacity import DEFAULT_RESOLUTION, CapacitySearch, drain_seconds
from pytest_neuronperf.runner.orchestrator import Window, run_config, start_context
from pytest_neuronperf.runner.replica import CopyJob
from pytest_neuronperf.runner.reports import empty_round_reason, get_reports
from pytest_neuronperf.runner.results import ConfigResult, RoundResult
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec import params as P
from pytest_neuronperf.spec.generation import Generation, generation
from pytest_neuronperf.spec.inputs import ModelInput, pair_index_inputs, pair_inputs
from pytest_neuronperf.spec.load import OpenLoad, open_load
from pytest_neuronperf.spec.matrix import Matrix, ModelConfig, RunConfig, build_matrix, config_key, config_text
from pytest_neuronperf.spec.model_source import ModelSource
from pytest_neuronperf.spec.slo import Slo, parse_slo
from pytest_neuronperf.stats.quantiles import min_samples_for_quantile

DEFAULT_DURATION = 60.0
DEFAULT_TIMEOUT = 120.0


def benchmark(
    model: Any,
    inputs: Any = None,
    batch_sizes: int | Sequence[int] | None = None,
    duration: float = DEFAULT_DURATION,
    n_models: int | str | Sequence[int | str] | None = None,
    workers_per_model: int | Sequence[int] | None = None,
    pipeline_sizes: int | Sequence[int] | None = None,
    preprocess_fn: Callable[..., Any] | None = None,
    postprocess_fn: Callable[..., Any] | None = None,
    env_setup_fn: Callable[[int, dict[str, Any]], Any] | None = None,
    setup_fn: Callable[[int, dict[str, Any], Any], Any] | None = None,
    multiprocess: bool = True,
    multiinterpreter: bool = False,
    return_timers: bool = False,
    stats_interval: float = 0.5,
    device_type: str = "cpu",
    cost_per_hour: float | None = None,
    model_name: str | None = None,
    verbosity: int | None = None,
    loop_dataset: bool = False,
    warmup: int = 10,
    warmup_duration: float = 0.0,
    rounds: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    compile_mode: str | None = None,
    request_rate: float | None = None,
    arrival: str = "poisson",
    burstiness: float | None = None,
    max_concurrency: int | None = None,
    seed: int = 0,
    slo: str | None = None,
    capacity_resolution: float = DEFAULT_RESOLUTION,
    streaming: bool = False,
    output_tokens: int | Sequence[int] | None = None,
    input_tokens: int | Sequence[int] | None = None,
    generate_fn: Callable[..., Any] | None = None,
    intra_op_threads: int | None = None,
) -> list[dict[str, Any]] | list[ConfigResult]:
    """Benchmark ``model`` over the configuration matrix and return one report per configuration.

    ``model`` is a TorchScript file, a model index JSON from ``compile``, or a model
    class / zero-argument factory defined at module top level (instantiated inside
    each model copy). Every configuration runs ``n_models`` copies with
    ``workers_per_model`` threads each; all copies load and warm up (``warmup``
    inferences per worker, and at least ``warmup_duration`` seconds) before one
    shared timed window of ``duration`` seconds opens. With ``rounds`` > 1 the
    duration is split over that many independent rounds, each with fresh copies.
    ``timeout`` bounds loading/warm-up and the drain after the window: a copy that
    takes longer is stopped and the call raises ``BenchmarkError``. ``compile_mode``
    (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``,
    ``"max-autotune-no-cudagraphs"``) wraps the model in ``torch.compile`` in each copy,
    which calls it until the compiled graph is stable before the warm-up; that time is
    reported as ``compile_s``.

    Open-loop load: with ``request_rate`` (requests/s offered to the whole configuration) the
    requests arrive on a schedule fixed before the window opens (``arrival``: ``"poisson"``,
    ``"gamma"`` with ``burstiness``, or ``"constant"``; ``seed`` makes it replayable), dealt to the
    copies in turn, and each request's latency is counted from its scheduled arrival;
    ``max_concurrency`` drops requests that arrive when that many are in the system. ``slo``
    (``"p99<=20ms"``, constraints separated by commas) marks each configuration that meets it and,
    without ``request_rate``, searches for the highest rate that meets it (``capacity_rps``, to
    within ``capacity_resolution``, a fraction of the capacity).

    Generative models: ``streaming=True`` declares a model whose call streams its output (an iterator
    of tokens; a Hugging Face model is driven through ``generate`` with a streamer; ``generate_fn(model,
    *inputs)`` returns the stream otherwise). Every token is timed: TTFT, TPOT, ITL, output tokens/s and,
    with per-request objectives in ``slo`` (``"ttft<=200ms,tpot<=50ms"``), goodput. ``output_tokens``
    (new tokens per request) and ``input_tokens`` (a prompt of that many token ids, built by the runner
    for a model with ``config.vocab_size``, in place of ``inputs``) are an int or a list requests take in turn.

    Host threads: a copy on c cores with w workers gives each worker ``max(1, c // w)`` torch intra-op
    threads, so that the workers' threads together fit the cores; ``intra_op_threads`` sets that number
    instead. The report's ``intra_op_threads`` says what each worker had.
    """
    plan = prepare(
        model, inputs, batch_sizes=batch_sizes, duration=duration, n_models=n_models,
        workers_per_model=workers_per_model, pipeline_sizes=pipeline_sizes, preprocess_fn=preprocess_fn,
        postprocess_fn=postprocess_fn, env_setup_fn=env_setup_fn, setup_fn=setup_fn, multiprocess=multiprocess,
        multiinterpreter=multiinterpreter, return_timers=return_timers, stats_interval=stats_interval,
        device_type=device_type, cost_per_hour=cost_per_hour, model_name=model_name, verbosity=verbosity,
        loop_dataset=loop_dataset, warmup=warmup, warmup_duration=warmup_duration, rounds=rounds, timeout=timeout,
        compile_mode=compile_mode, request_rate=request_rate, arrival=arrival, burstiness=burstiness,
        max_concurrency=max_concurrency, seed=seed, slo=slo, capacity_resolution=capacity_resolution,
        streaming=streaming, output_tokens=output_tokens, input_tokens=input_tokens, generate_fn=generate_fn,
        intra_op_threads=intra_op_threads)
    results = run_plan(plan)
    if return_timers:
        return results
    return get_reports(results)


def run_plan(plan: Plan) -> list[ConfigResult]:
    """Every configuration of ``plan``, each its rounds back to back; the skipped ones first."""
    with log_verbosity(plan.level):
        results = plan.skipped_results()
        for i, run in enumerate(plan.matrix.runs):
            remaining = (len(plan.matrix.runs) - i) * plan.wall_s
            logger.info("Benchmarking '%s', ~%d seconds remaining.", plan.name, round(remaining))
            result = plan.new_result(run)
            described = config_text(result.config)
            logger.debug("Running model config: %s", result.config)
            for round_index in range(plan.rounds):
                later = plan.wall_s * (len(plan.matrix.runs) - i - 1)
                left = plan.round_wall_s * (plan.rounds - round_index) + later
                tell = functools.partial(_tell, plan.name, i, len(plan.matrix.runs), described, round_index,
                                         plan.rounds, left)
                result.rounds.append(plan.run_round(run, result.config, tell, round_index=round_index))
                if plan.stop_if_empty(result):
                    break
            plan.finish(result, run)
            _tell(plan.name, i, len(plan.matrix.runs), described, plan.rounds - 1, plan.rounds,
                  plan.wall_s * (len(plan.matrix.runs) - i - 1), "finished")
            results.append(result)
    return results


def run_more_rounds(plan: Plan, results: Sequence[ConfigResult], keys: Collection[str]) -> None:
    """One more round, as long as each of the plan's, of every finished configuration whose key is in
    ``keys``, added to its result: its report then pools every round (see :func:`get_reports`)."""
    by_key = {config_key(r.config): r for r in results if r.status == fields.STATUS_OK}
    wanted = [(run, by_key[config_key(run.as_dict())]) for run in plan.matrix.runs
              if config_key(run.as_dict()) in keys and config_key(run.as_dict()) in by_key]
    with log_verbosity(plan.level):
        for i, (run, result) in enumerate(wanted):
            described = config_text(result.config)
            done = len(result.rounds)
            left = plan.round_wall_s * (len(wanted) - i)
            tell = functools.partial(_tell, plan.name, i, len(wanted), described, done, done + 1, left)
            result.rounds.append(plan.run_round(run, result.config, tell, round_index=done))
            if plan.stop_if_empty(result):
                continue
            plan.finish(result, run)


@dataclass
class Plan:
    """A validated benchmark: the matrix to run and how to start one round of one configuration.

    :func:`benchmark` runs its rounds back to back; an interleaved comparison
    (:mod:`pytest_neuronperf.runner.interleave`) alternates the rounds of two plans.
    """

    name: str
    backend: Backend
    matrix: Matrix
    model_inputs: list[ModelInput]
    duration_s: float
    rounds: int
    timeout_s: float
    stats_interval: float
    warmup: int
    warmup_duration_s: float
    cost: float | None
    level: int | None
    in_process: bool
    multiinterpreter: bool
    keep_raw: bool
    loop_dataset: bool
    preprocess_fn: Callable[..., Any] | None
    postprocess_fn: Callable[..., Any] | None
    env_setup_fn: Callable[..., Any] | None
    setup_fn: Callable[..., Any] | None
    # Copies of this plan import the user's code from a checkout of another revision: (repository, checkout).
    redirect: tuple[str, str] | None = None
    compile_mode: str | None = None
    # Open-loop load of every window (None: closed loop); with an SLO and no load, a capacity search
    # offering ``search_load``'s arrival process.
    load: OpenLoad | None = None
    slo: Slo | None = None
    search_load: OpenLoad | None = None
    capacity_resolution: float = DEFAULT_RESOLUTION
    generation: Generation | None = None
    # torch intra-op threads per worker as the caller set them (None: the copy's cores shared out).
    intra_op_threads: int | None = None
    _ctx: BaseContext | None = field(default=None, repr=False)

    @property
    def per_round_s(self) -> float:
        return self.duration_s / self.rounds

    @property
    def round_wall_s(self) -> float:
        """About how long a round's windows last: one, or a capacity search's closed-loop window and its steps."""
        if self.slo is None or not self.slo.constraints or self.load is not None:
            return self.per_round_s
        # Bisection from the peak down to the resolution, then a step or two to settle.
        steps = math.ceil(math.log2(1.0 / self.capacity_resolution)) + 2
        return self.per_round_s * (1 + steps)

    @property
    def wall_s(self) -> float:
        """About how long one configuration's rounds last (for the time left a progress line shows)."""
        return self.round_wall_s * self.rounds

    def context(self) -> BaseContext | None:
        if self.in_process:
            return None
        if self._ctx is None:
            self._ctx = start_context(self.multiinterpreter)
        return self._ctx

    def skipped_results(self) -> list[ConfigResult]:
        for s in self.matrix.skipped:
            logger.info("Skipping configuration %s: %s", s.config, s.reason)
        return [ConfigResult(config={**s.config, "instance_type": self.backend.instance_type()},
                             status=fields.STATUS_SKIPPED, reason=s.reason) for s in self.matrix.skipped]

    def new_result(self, run: RunConfig) -> ConfigResult:
        config = {**run.as_dict(), "instance_type": self.backend.instance_type(),
                  "start_dts": wall_clock_stamp(), "duration": self.duration_s}
        return ConfigResult(config=config, status=fields.STATUS_OK, cost_per_hour=self.cost, slo=self.slo,
                            generation=self.generation)

    def run_round(self, run: RunConfig, config: dict[str, Any], tell: Callable[[str], None],
                  duration_s: float | None = None, round_index: int = 0) -> RoundResult:
        """One round of ``run``: fresh copies load and warm up, then one shared window (closed or open loop),
        and with an SLO but no request rate, the windows of a capacity search on the same copies."""
        per_round = self.per_round_s if duration_s is None else duration_s
        tell("loading")
        placements = self.backend.placements(run.n_models, run.model.pipeline_size)
        # In-process copies share the calling process, whose threads they leave as they are.
        config["intra_op_threads"] = None if self.in_process else worker_threads(
            placements[0].threads, run.workers_per_model, self.intra_op_threads)
        jobs = [
            CopyJob(
                backend_name=self.backend.name, placement=placement, run=run, config=config,
                model_input=self.model_inputs[run.model.input_index], preprocess_fn=self.preprocess_fn,
                postprocess_fn=self.postprocess_fn, env_setup_fn=self.env_setup_fn, setup_fn=self.setup_fn,
                warmup=self.warmup, warmup_duration_s=self.warmup_duration_s, duration_s=per_round,
                bin_ns=_bin_ns(per_round, self.stats_interval), keep_raw=self.keep_raw,
                loop_dataset=self.loop_dataset, environ=dict(os.environ), in_process=self.in_process,
                compile_mode=self.compile_mode, generation=self.generation, intra_op_threads=self.intra_op_threads,
            )
            for placement in placements
        ]
        window = Window(per_round)
        search: CapacitySearch | None = None
        if self.load is not None:
            window = Window(per_round, self.load, round_index, drain_s=drain_seconds(per_round))
        elif self.slo is not None and self.slo.constraints:
            search = CapacitySearch(
                self.slo, self.capacity_load, per_round, resolution=self.capacity_resolution,
                round_index=round_index,
                min_samples=min_samples_for_quantile(self.slo.highest_percentile / 100.0))
        windows = run_config(
            jobs, self.backend, ctx=self.context(), window=window, timeout_s=self.timeout_s,
            stats_interval=self.stats_interval, on_window=functools.partial(tell, "running"),
            redirect=self.redirect, next_window=search)
        first = windows[0]
        for c in first.copies:
            for w, n in enumerate(c.worker_counts):
                logger.debug("Model copy %d, worker %d finished after %d inferences.", c.copy_index, w, n)
        return RoundResult(first.start_ns, first.stop_ns, jobs[0].bin_ns, first.copies, first.resources,
                           load=self.load, capacity=search.result if search is not None else None,
                           telemetry=first.telemetry, invalid=first.invalid)

    @property
    def capacity_load(self) -> OpenLoad:
        """The arrivals a capacity search offers (its rate set per step)."""
        return self.search_load or OpenLoad(1.0)

    def stop_if_empty(self, result: ConfigResult) -> bool:
        """Mark ``result`` an error when its last round timed nothing; True when it was."""
        empty = empty_round_reason(result, self.rounds)
        if empty is None:
            return False
        # A model slower than the window times nothing in the next rounds either: the
        # configuration is an error of its own, and the other configurations go on.
        result.status, result.reason = fields.STATUS_ERROR, empty
        logger.error("Configuration %s: %s", config_text(result.config), empty)
        return True

    def finish(self, result: ConfigResult, run: RunConfig) -> None:
        result.config["stop_dts"] = wall_clock_stamp()
        if result.status == fields.STATUS_OK:
            _warn_if_short(result, run, self.duration_s)


def prepare(
    model: Any,
    inputs: Any = None,
    *,
    batch_sizes: int | Sequence[int] | None = None,
    duration: float = DEFAULT_DURATION,
    n_models: int | str | Sequence[int | str] | None = None,
    workers_per_model: int | Sequence[int] | None = None,
    pipeline_sizes: int | Sequence[int] | None = None,
    preprocess_fn: Callable[..., Any] | None = None,
    postprocess_fn: Callable[..., Any] | None = None,
    env_setup_fn: Callable[[int, dict[str, Any]], Any] | None = None,
    setup_fn: Callable[[int, dict[str, Any], Any], Any] | None = None,
    multiprocess: bool = True,
    multiinterpreter: bool = False,
    return_timers: bool = False,
    stats_interval: float = 0.5,
    device_type: str = "cpu",
    cost_per_hour: float | None = None,
    model_name: str | None = None,
    verbosity: int | None = None,
    loop_dataset: bool = False,
    warmup: int = 10,
    warmup_duration: float = 0.0,
    rounds: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    compile_mode: str | None = None,
    request_rate: float | None = None,
    arrival: str = "poisson",
    burstiness: float | None = None,
    max_concurrency: int | None = None,
    seed: int = 0,
    slo: str | None = None,
    capacity_resolution: float = DEFAULT_RESOLUTION,
    streaming: bool = False,
    output_tokens: int | Sequence[int] | None = None,
    input_tokens: int | Sequence[int] | None = None,
    generate_fn: Callable[..., Any] | None = None,
    intra_op_threads: int | None = None,
) -> Plan:
    """Check :func:`benchmark`'s parameters, resolve the model and build the matrix; nothing runs yet."""
    duration_s = P.positive_seconds("duration", duration)
    P.positive_seconds("stats_interval", stats_interval)
    timeout_s = P.positive_seconds("timeout", timeout)
    P.positive_seconds("warmup_duration", warmup_duration, allow_zero=True)
    warmup = P.non_negative_int("warmup", warmup)
    rounds = P.positive_int("rounds", rounds)
    threads = None if intra_op_threads is None else P.positive_int("intra_op_threads", intra_op_threads)
    if threads is not None and not multiprocess:
        raise ValueError("intra_op_threads: applies to model copies in processes of their own; with "
                         "multiprocess=False the copies are threads of this process and share its torch threads "
                         "(call torch.set_num_threads yourself, or drop multiprocess=False)")
    copies = P.positive_int_list("n_models", n_models, allow_max=True)
    workers = P.int_list("workers_per_model", workers_per_model)
    P.check_workers(workers)
    sizes = P.int_list("batch_sizes", batch_sizes)
    pipelines = P.int_list("pipeline_sizes", pipeline_sizes)
    cost = P.check_cost(cost_per_hour)
    level = P.verbosity_level(verbosity)
    mode = P.compile_mode(compile_mode)
    objective = parse_slo(slo)
    resolution = P.capacity_resolution(capacity_resolution)
    in_process = not multiprocess
    gen = generation(streaming, output_tokens, input_tokens, generate_fn, must_pickle=not in_process)
    _check_generative(gen, objective, inputs, postprocess_fn, compile_mode)
    load = search_load = None
    if objective is not None and request_rate is None and objective.constraints:
        # The arrival process the search offers; its rate is set per step.
        search_load = open_load(1.0, arrival, burstiness, max_concurrency, seed)
    else:
        load = open_load(request_rate, arrival, burstiness, max_concurrency, seed)
        if resolution != DEFAULT_RESOLUTION:
            raise ValueError("capacity_resolution: applies to a capacity search, which slo= without request_rate "
                             "runs; drop it, or drop request_rate to search")
    in_process = not multiprocess
    pre = P.optional_callable("preprocess_fn", preprocess_fn, must_pickle=not in_process)
    post = P.optional_callable("postprocess_fn", postprocess_fn, must_pickle=not in_process)
    env_fn = P.optional_callable("env_setup_fn", env_setup_fn, must_pickle=not in_process)
    setup = P.optional_callable("setup_fn", setup_fn, must_pickle=not in_process)
    backend = get_backend(device_type)
    with log_verbosity(level):
        if gen is not None and gen.input_tokens is not None:
            # The copies build each request's prompt: every batch size's call starts empty.
            inputs = [{} for _ in sizes] if sizes else {}
        models, model_inputs, name = _resolve_model(model, inputs, sizes, pipelines, model_name, in_process)
        if mode is not None:
            _check_compilable(models)
        reason = backend.unavailable_reason()
        if reason is not None:
            raise DeviceUnavailableError(device_type, reason)
        matrix = build_matrix(models, backend=backend, model_name=name, n_models=copies,
                              workers_per_model=workers, multiprocess=multiprocess,
                              multiinterpreter=multiinterpreter)
        for note in matrix.notes:
            logger.info(note)
    return Plan(name=name, backend=backend, matrix=matrix, model_inputs=model_inputs, duration_s=duration_s,
                rounds=rounds, timeout_s=timeout_s, stats_interval=stats_interval, warmup=warmup,
                warmup_duration_s=warmup_duration, cost=cost, level=level, in_process=in_process,
                multiinterpreter=multiinterpreter, keep_raw=return_timers, loop_dataset=loop_dataset,
                preprocess_fn=pre, postprocess_fn=post, env_setup_fn=env_fn, setup_fn=setup, compile_mode=mode,
                load=load, slo=objective, search_load=search_load, capacity_resolution=resolution, generation=gen,
                intra_op_threads=threads)


def _check_generative(gen: Generation | None, objective: Slo | None, inputs: Any, postprocess_fn: Any,
                      compile_mode: Any) -> None:
    """What a streaming model cannot be given, and what only a streaming model can."""
    if objective is not None and gen is None:
        streamed = [lim for lim in objective.request_limits if lim.metric in ("ttft", "tpot")]
        if streamed:
            what = "the time to the first token" if streamed[0].metric == "ttft" else "the time between tokens"
            raise ValueError(f"slo: {streamed[0].text()} bounds {what}, which only a generative model has; add "
                             "streaming=True (a model whose call streams its tokens), or bound e2e or a percentile")
    if gen is None:
        return
    if postprocess_fn is not None:
        raise ValueError("postprocess_fn: a streaming model's output is its stream of tokens, which the runner "
                         "reads and times itself; drop postprocess_fn (do per-token work inside the stream)")
    if compile_mode is not None:
        raise ValueError("compile_mode: not supported with streaming=True; compile the model in the factory that "
                         "builds it instead")
    if gen.input_tokens is not None and inputs is not None:
        raise ValueError("input_tokens: the runner builds the prompt when input_tokens is given; give either "
                         "inputs= (your own prompt) or input_tokens=, not both")
    if gen.input_tokens is None and inputs is None:
        raise ValueError("inputs: required; a generative model's prompt is its inputs (input_ids, say), or give "
                         "input_tokens= and the runner builds a prompt of that many token ids")


def _check_compilable(models: Sequence[ModelConfig]) -> None:
    from pytest_neuronperf.backends.model_files import DESCRIPTIONS, model_file_kind

    for m in models:
        path = m.source.path
        if path is not None and model_file_kind(path) == "aoti_package":
            raise ValueError(
                f"compile_mode: model {path!r} is {DESCRIPTIONS['aoti_package']}, compiled ahead of time "
                "already; benchmark it without compile_mode"
            )


def _tell(name: str, index: int, total: int, described: str, round_index: int, rounds: int, left_s: float,
          phase: str) -> None:
    events.emit(events.Progress(name, index, total, described, phase, round_index, rounds,
                                    time.monotonic() + left_s))


def _bin_ns(duration_s: float, stats_interval: float) -> int:
    # Sub-windows for peak throughput and stability: stats_interval long, but at least 5 per window.
    return max(1_000_000, int(min(stats_interval, duration_s / 5) * 1e9))


def _warn_if_short(result: ConfigResult, run: RunConfig, duration_s: float) -> None:
    from pytest_neuronperf.stats.quantiles import min_samples_for_quantile

    need = min_samples_for_quantile(0.99)
    # The gate judges each round's p99 on its own, so the fewest inferences of any round is what counts;
    # the duration to set is the total (it is split over the rounds), so longer by the same factor.
    counts = [sum(c.stats.e2e.count for c in r.copies) for r in result.rounds]
    fewest = min(counts, default=0)
    if fewest < need:
        factor = -(-need // max(fewest, 1))
        per_round = "" if len(counts) == 1 else f" in a round (the fewest of {len(counts)} rounds)"
        logger.warning(
            "Configuration n_models=%d, workers_per_model=%d: only %d inferences were timed%s; a p99 needs "
            "at least %d per round to be trustworthy, so run about %dx longer (duration=%d).",
            run.n_models, run.workers_per_model, fewest, per_round, need, factor,
            math.ceil(duration_s * factor),
        )


def _resolve_model(model: Any, inputs: Any, batch_sizes: list[int] | None, pipeline_sizes: list[int] | None,
                   model_name: str | None, in_process: bool) -> tuple[list[ModelConfig], list[ModelInput], str]:
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".json"):
        return _from_index(Path(model), inputs, batch_sizes, pipeline_sizes, model_name)
    if isinstance(model, (str, os.PathLike)):
        source = ModelSource.torchscript(model)
    elif in_process:
        source = ModelSource.inline(model)
    else:
        source = ModelSource.factory(model)
    model_inputs = pair_inputs(inputs, batch_sizes)
    sizes = pipeline_sizes or [1]
    models = [ModelConfig(source, i, mi.batch_size, p) for p in sizes for i, mi in enumerate(model_inputs)]
    return models, model_inputs, model_name or source.name


def _from_index(path: Path, inputs: Any, batch_sizes: list[int] | None, pipeline_sizes: list[int] | None,
                model_name: str | None) -> tuple[list[ModelConfig], list[ModelInput], str]:
    from pytest_neuronperf import model_index

    index = model_index.load(str(path))
    entries = model_index.configs(index, batch_sizes=batch_sizes, pipeline_sizes=pipeline_sizes)
    index_sizes = sorted({int(e["batch_size"]) for e in entries})
    model_inputs = pair_index_inputs(inputs, index_sizes, batch_sizes, f"the model index {str(path)!r}")
    by_size = {mi.batch_size: i for i, mi in enumerate(model_inputs)}
    models = []
    for e in entries:
        bs = int(e["batch_size"])
        if bs not in by_size:
            raise ValueError(
                f"inputs: the model index {str(path)!r} has batch size {bs} but no input was given for it; "
                f"inputs cover batch sizes {sorted(by_size)} (pass batch_sizes= to pair them)"
            )
        filename = Path(e["filename"])
        if not filename.is_absolute() and not filename.exists():
            filename = path.parent / filename
        models.append(ModelConfig(ModelSource.torchscript(filename), by_size[bs], bs, int(e["pipeline_size"])))
    return models, model_inputs, model_name or str(index.get("model_name") or path.stem)
