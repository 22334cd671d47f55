"""The configuration matrix: model configs x worker counts x copy counts, in the guide's order, and
the names of a configuration (its key ``b1-n2-w1-p1`` and its description)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from pytest_neuronperf.spec.fields import MATRIX_KEYS, MAX
from pytest_neuronperf.spec.model_source import ModelSource

# The config key reads "b1-n2-w1-p1": batch size first, as people say it.
_CONFIG_KEY_PARTS: Final[tuple[tuple[str, str], ...]] = (
    ("b", "batch_size"),
    ("n", "n_models"),
    ("w", "workers_per_model"),
    ("p", "pipeline_size"),
)


def config_key(config: Mapping[str, object]) -> str:
    """The matrix point of a configuration as a short key, e.g. ``b1-n2-w1-p1``."""
    parts = []
    for prefix, name in _CONFIG_KEY_PARTS:
        if name not in config:
            raise ValueError(f"config has no {name!r}; a config key needs {', '.join(MATRIX_KEYS)}")
        parts.append(f"{prefix}{config[name]}")
    return "-".join(parts)


def config_text(config: Mapping[str, object]) -> str:
    """A configuration in a message: ``n_models=2 workers=1 batch=1 pipeline=1``."""
    return (f"n_models={config.get('n_models')} workers={config.get('workers_per_model')} "
            f"batch={config.get('batch_size')} pipeline={config.get('pipeline_size')}")


class DeviceLimits(Protocol):
    """What the matrix needs to know of a device (a :class:`~pytest_neuronperf.backends.base.Backend` is one)."""

    name: str

    def max_copies(self, pipeline_size: int) -> int | None: ...

    def default_workers(self, pipeline_size: int) -> list[int]: ...


@dataclass(frozen=True)
class ModelConfig:
    """One loadable model at one batch size and pipeline size (an index entry, or the single model)."""

    source: ModelSource
    input_index: int
    batch_size: int
    pipeline_size: int


@dataclass(frozen=True)
class RunConfig:
    """One point of the matrix: what runs, on how many copies, with how many workers each."""

    model: ModelConfig
    model_name: str
    device_type: str
    n_models: int
    workers_per_model: int
    multiprocess: bool
    multiinterpreter: bool
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_filename": self.model.source.filename,
            "model_name": self.model_name,
            "device_type": self.device_type,
            "input_idx": self.model.input_index,
            "batch_size": self.model.batch_size,
            "n_models": self.n_models,
            "workers_per_model": self.workers_per_model,
            "pipeline_size": self.model.pipeline_size,
            "multiprocess": self.multiprocess,
            "multiinterpreter": self.multiinterpreter,
            **self.extra,
        }


@dataclass(frozen=True)
class SkippedConfig:
    config: dict[str, Any]
    reason: str


@dataclass
class Matrix:
    runs: list[RunConfig] = field(default_factory=list)
    skipped: list[SkippedConfig] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_matrix(
    models: Sequence[ModelConfig],
    *,
    backend: DeviceLimits,
    model_name: str,
    n_models: Sequence[int | str] | None,
    workers_per_model: Sequence[int] | None,
    multiprocess: bool,
    multiinterpreter: bool,
) -> Matrix:
    """Expand the sweep. Defaults follow the guide: ``n_models=[1, MAX]``, ``workers_per_model=[1, 2]``
    (one worker configuration, chosen by the backend, in pipeline mode)."""
    matrix = Matrix()
    for mc in models:
        limit = backend.max_copies(mc.pipeline_size)
        copies = _copy_counts(n_models, limit, mc.pipeline_size, matrix.notes)
        workers = list(workers_per_model) if workers_per_model else backend.default_workers(mc.pipeline_size)
        for w in workers:
            for n in copies:
                run = RunConfig(
                    model=mc,
                    model_name=model_name,
                    device_type=backend.name,
                    n_models=n,
                    workers_per_model=w,
                    multiprocess=multiprocess,
                    multiinterpreter=multiinterpreter,
                )
                if limit is not None and n > limit:
                    cores = n * mc.pipeline_size
                    matrix.skipped.append(
                        SkippedConfig(
                            run.as_dict(),
                            f"n_models={n} x pipeline_size={mc.pipeline_size} needs {cores} {backend.name} "
                            f"cores but {limit * mc.pipeline_size} are usable here",
                        )
                    )
                elif limit is None and n > 1 and n_models is not None:
                    matrix.skipped.append(
                        SkippedConfig(run.as_dict(), f"the number of usable {backend.name} cores is unknown")
                    )
                else:
                    matrix.runs.append(run)
    return matrix


def _copy_counts(requested: Sequence[int | str] | None, limit: int | None, pipeline_size: int,
                 notes: list[str]) -> list[int]:
    wanted: list[int | str] = list(requested) if requested is not None else [1, MAX]
    out: list[int] = []
    for n in wanted:
        if n == MAX:
            if limit is None or limit <= 1:
                why = "unknown" if limit is None else f"{limit}"
                notes.append(
                    f"MAX copies for pipeline_size={pipeline_size} is {why} on this machine; "
                    "skipping the n_models=MAX configurations"
                )
                if requested is not None and 1 not in out:
                    out.append(1)
                continue
            n = limit
        assert isinstance(n, int)
        if n not in out:
            out.append(n)
    return out
