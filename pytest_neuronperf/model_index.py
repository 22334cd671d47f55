"""Model indexes: JSON files listing the compiled artifacts of one model.

Format (``schema_version`` 1)::

    {"schema_version": 1, "model_name": "resnet",
     "model_configs": [{"filename": "resnet_b1_p1_0a1b2c3d.pt", "batch_size": 1,
                        "pipeline_size": 1, "compile_s": 41.5, "status": "finished"},
                       {"filename": "resnet_b8_p1_4e5f6a7b.pt", "batch_size": 8,
                        "pipeline_size": 1, "compile_s": 3.2, "status": "error",
                        "error": "..."}]}

Each config may carry more keys (``error``, ``input_shapes``, ``cached``);
they are kept as they are.

Paths: in a file, relative artifact filenames are relative to the directory
holding the index, so a models folder can be moved or copied whole. In
memory (what :func:`load` returns and the other functions take), filenames
are usable from the current directory: relative to it when the artifact lies
below it, else absolute. :func:`save` turns them back.

NeuronPerf's own index files (``"NeuronPerf_version"`` in place of
``schema_version``) load too. NeuronPerf wrote artifact paths relative to the
directory it ran in, so for those files a path that does not exist beside the
index is taken as relative to the current directory; a missing ``status`` reads as
"finished" and a missing ``compile_s`` as unknown. :func:`save` writes them
back in this format.

The functions named like NeuronPerf's helpers (``filter``, ``copy``) shadow
builtins only inside this module's namespace; call them as
``model_index.filter(...)``.
"""

from __future__ import annotations

import contextlib
import copy as _copylib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from pytest_neuronperf._util.atomic_write import write_atomic
from pytest_neuronperf.spec.fields import STATUS_ERROR, STATUS_OK

SCHEMA_VERSION = 1
STATUSES = (STATUS_OK, STATUS_ERROR)
_CRITERIA = {
    "batch_sizes": "batch_size",
    "batch_size": "batch_size",
    "pipeline_sizes": "pipeline_size",
    "pipeline_size": "pipeline_size",
    "status": "status",
    "filename": "filename",
}


class ModelIndex(dict[str, Any]):
    """A model index (a plain dict, JSON-ready) that remembers the file it was loaded from, if any."""

    path: str | None = None

    def describe(self) -> str:
        if self.path:
            return f"model index {self.path!r}"
        return f"model index for {self.get('model_name', '?')!r}"


IndexLike = Union[Mapping[str, Any], str, "os.PathLike[str]"]


def create(
    filename: str | os.PathLike[str],
    model_name: str | None = None,
    batch_size: int = 1,
    pipeline_size: int = 1,
    compile_s: float | None = None,
    status: str = STATUS_OK,
    error: str | None = None,
    input_shapes: list[list[int]] | None = None,
) -> ModelIndex:
    """An index holding one artifact; ``error`` (for status "error") and ``input_shapes`` are optional."""
    config: dict[str, Any] = {
        "filename": os.fspath(filename),
        "batch_size": batch_size,
        "pipeline_size": pipeline_size,
        "compile_s": compile_s,
        "status": status,
    }
    if error is not None:
        config["error"] = error
    if input_shapes is not None:
        config["input_shapes"] = input_shapes
    name = model_name if model_name is not None else Path(filename).stem
    index = _new(name, [config])
    _validate_configs(index["model_configs"], index.describe())
    return index


def append(*indexes: IndexLike) -> ModelIndex:
    """One index holding the configs of all ``indexes`` in order; a config naming the same
    artifact, batch size and pipeline size as an earlier one is dropped. The model name
    is the first index's."""
    if not indexes:
        raise ValueError("append: give at least one model index")
    loaded = [_as_index(i) for i in indexes]
    seen: set[tuple[str, int, int]] = set()
    merged: list[dict[str, Any]] = []
    for index in loaded:
        for config in index["model_configs"]:
            key = (os.path.normpath(config["filename"]), config["batch_size"], config["pipeline_size"])
            if key not in seen:
                seen.add(key)
                merged.append(_copylib.deepcopy(config))
    return _new(loaded[0]["model_name"], merged)


def filter(index: IndexLike, **criteria: Any) -> ModelIndex:
    """The configs matching every criterion: ``batch_sizes``, ``pipeline_sizes``, ``status``,
    ``filename`` -- each a value or a list of accepted values; None accepts anything."""
    source = _as_index(index)
    tests: list[tuple[str, list[Any]]] = []
    for name, wanted in criteria.items():
        if name not in _CRITERIA:
            raise ValueError(f"filter: unknown criterion {name!r}; use {', '.join(sorted(set(_CRITERIA)))}")
        if wanted is None:
            continue
        values = list(wanted) if isinstance(wanted, (list, tuple, set, range)) else [wanted]
        key = _CRITERIA[name]
        if key == "filename":
            values = [os.path.normpath(os.fspath(v)) for v in values]
        tests.append((key, values))
    kept = [
        _copylib.deepcopy(config)
        for config in source["model_configs"]
        if all(_field(config, key) in values for key, values in tests)
    ]
    result = _new(source["model_name"], kept)
    result.path = source.path
    return result


def configs(
    index: IndexLike,
    batch_sizes: int | Iterable[int] | None = None,
    pipeline_sizes: int | Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """The finished configs left after filtering; ValueError listing what the index holds when none are."""
    source = _as_index(index)
    kept = filter(source, batch_sizes=batch_sizes, pipeline_sizes=pipeline_sizes, status=STATUS_OK)
    if kept["model_configs"]:
        return list(kept["model_configs"])
    held = ", ".join(
        f"batch_size={c['batch_size']} pipeline_size={c['pipeline_size']} ({c['status']})"
        for c in source["model_configs"]
    )
    raise ValueError(
        f"{source.describe()}: no finished configuration matches batch_sizes={_show(batch_sizes)}, "
        f"pipeline_sizes={_show(pipeline_sizes)}; it holds: {held or 'no configurations'}"
    )


def copy(index: IndexLike, new_dir: str | os.PathLike[str]) -> ModelIndex:
    """Copy every finished artifact into ``new_dir``; returns the index naming the copies."""
    return _relocate(index, new_dir, shutil.copy2)


def move(index: IndexLike, new_dir: str | os.PathLike[str]) -> ModelIndex:
    """Move every finished artifact into ``new_dir``; returns the index naming their new places."""
    return _relocate(index, new_dir, shutil.move)


def delete(index: IndexLike) -> ModelIndex:
    """Delete the artifacts the index names (and the index file itself when given as a path).

    Returns the index with those configs removed.
    """
    source = _as_index(index)
    for config in source["model_configs"]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(config["filename"])
    if isinstance(index, (str, os.PathLike)):
        os.remove(index)
    return _new(source["model_name"], [])


def save(index: IndexLike, filename: str | os.PathLike[str] | None = None) -> str:
    """Write ``index`` to ``filename`` (default: where it was loaded from, else ``<model_name>.json``).

    The write is atomic: a temporary file beside the target, then ``os.replace``.
    Returns the path written.
    """
    source = _as_index(index)
    path = os.fspath(filename) if filename is not None else source.path or f"{source['model_name']}.json"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    data = {
        "schema_version": SCHEMA_VERSION,
        "model_name": source["model_name"],
        "model_configs": [
            {**config, "filename": _relative_to(folder, config["filename"])} for config in source["model_configs"]
        ],
    }
    write_atomic(Path(path), (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    return path


def load(filename: str | os.PathLike[str]) -> ModelIndex:
    """Read and check a model index file; ValueError naming the file and the problem when it is not one."""
    path = os.fspath(filename)
    where = f"model index {path!r}"
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert; RecursionError, absurd nesting.
        raise ValueError(f"{where}: not valid JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, found {type(data).__name__}")
    neuronperf = _check_version(data, where)
    name = data.get("model_name")
    if not isinstance(name, str):
        raise ValueError(f"{where}: 'model_name' must be a string, found {_kind(name)}")
    raw = data.get("model_configs")
    if not isinstance(raw, list):
        raise ValueError(f"{where}: 'model_configs' must be a list, found {_kind(raw)}")
    items: list[dict[str, Any]] = []
    for i, config in enumerate(raw):
        if not isinstance(config, dict):
            raise ValueError(f"{where}: model_configs[{i}] must be an object, found {_kind(config)}")
        item = dict(config)
        if neuronperf:
            item.setdefault("status", STATUS_OK)
            item.setdefault("compile_s", None)
            item.setdefault("pipeline_size", 1)
        items.append(item)
    _validate_configs(items, where)
    base = os.path.dirname(path)
    for item in items:
        item["filename"] = _resolve(base, item["filename"], cwd_fallback=neuronperf)
    index = _new(name, items)
    index.path = path
    return index


# -- helpers ------------------------------------------------------------------


def _new(model_name: str, model_configs: list[dict[str, Any]]) -> ModelIndex:
    return ModelIndex(schema_version=SCHEMA_VERSION, model_name=model_name, model_configs=model_configs)


def _as_index(index: IndexLike) -> ModelIndex:
    if isinstance(index, (str, os.PathLike)):
        return load(index)
    if isinstance(index, ModelIndex):
        return index
    if not isinstance(index, Mapping):
        raise TypeError(f"expected a model index (a dict or the path of an index file), got {type(index).__name__}")
    where = f"model index for {index.get('model_name', '?')!r}"
    if not isinstance(index.get("model_name"), str):
        raise ValueError(f"{where}: 'model_name' must be a string, found {_kind(index.get('model_name'))}")
    raw = index.get("model_configs")
    if not isinstance(raw, list):
        raise ValueError(f"{where}: 'model_configs' must be a list, found {_kind(raw)}")
    _validate_configs(raw, where)
    return _new(index["model_name"], [dict(c) for c in raw])


def _check_version(data: Mapping[str, Any], where: str) -> bool:
    """True for a NeuronPerf index; ValueError for an unknown or newer format."""
    if "schema_version" in data:
        version = data["schema_version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"{where}: 'schema_version' must be a positive whole number, found {version!r}")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"{where}: written with schema_version {version} by a newer pytest-neuronperf; this one "
                f"reads schema_version {SCHEMA_VERSION}: upgrade pytest-neuronperf (pip install -U pytest-neuronperf)"
            )
        return False
    if "NeuronPerf_version" in data:
        return True
    raise ValueError(f"{where}: not a model index (it has neither 'schema_version' nor 'NeuronPerf_version')")


def _validate_configs(configs: list[Any], where: str) -> None:
    for i, config in enumerate(configs):
        at = f"{where}: model_configs[{i}]"
        if not isinstance(config, Mapping):
            raise ValueError(f"{at} must be an object, found {_kind(config)}")
        for key in ("filename", "batch_size", "pipeline_size", "status"):
            if key not in config:
                raise ValueError(f"{at} has no {key!r}")
        if not isinstance(config["filename"], str) or not config["filename"]:
            raise ValueError(f"{at}: 'filename' must be a non-empty string, found {config['filename']!r}")
        for key in ("batch_size", "pipeline_size"):
            value = config[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{at}: {key!r} must be a whole number >= 1, found {value!r}")
        if config["status"] not in STATUSES:
            raise ValueError(f"{at}: 'status' must be one of {list(STATUSES)}, found {config['status']!r}")
        compile_s = config.get("compile_s")
        if compile_s is not None and (
            isinstance(compile_s, bool) or not isinstance(compile_s, (int, float)) or compile_s < 0
        ):
            raise ValueError(f"{at}: 'compile_s' must be a number of seconds or null, found {compile_s!r}")
        if "error" in config and not isinstance(config["error"], str):
            raise ValueError(f"{at}: 'error' must be a string, found {_kind(config['error'])}")


def _relocate(index: IndexLike, new_dir: str | os.PathLike[str], transfer: Any) -> ModelIndex:
    source = _as_index(index)
    target_dir = os.fspath(new_dir)
    os.makedirs(target_dir, exist_ok=True)
    moved: list[dict[str, Any]] = []
    for config in source["model_configs"]:
        item = _copylib.deepcopy(config)
        src = config["filename"]
        dst = os.path.join(target_dir, os.path.basename(src))
        if config["status"] == STATUS_OK:
            if not os.path.exists(src):
                raise FileNotFoundError(
                    f"{source.describe()}: artifact {src!r} (batch_size={config['batch_size']}, "
                    f"pipeline_size={config['pipeline_size']}) does not exist"
                )
            if not (os.path.exists(dst) and os.path.samefile(src, dst)):
                transfer(src, dst)
        item["filename"] = _display(dst)
        moved.append(item)
    return _new(source["model_name"], moved)


def _field(config: Mapping[str, Any], key: str) -> Any:
    value = config[key]
    return os.path.normpath(value) if key == "filename" else value


def _resolve(base: str, filename: str, cwd_fallback: bool) -> str:
    if os.path.isabs(filename):
        return filename
    beside = os.path.join(base, filename)
    if cwd_fallback and not os.path.exists(beside):
        return filename
    return _display(beside)


def _display(path: str) -> str:
    """``path`` relative to the current directory when below it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative.startswith(os.pardir) else relative


def _relative_to(folder: str, filename: str) -> str:
    try:
        return os.path.relpath(os.path.abspath(filename), folder)
    except ValueError:  # another drive on Windows
        return os.path.abspath(filename)


def _show(values: int | Iterable[int] | None) -> str:
    if values is None:
        return "any"
    return repr(list(values)) if isinstance(values, Iterable) else repr([values])


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
