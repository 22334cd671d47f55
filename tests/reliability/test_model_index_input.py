"""model_index.load on arbitrary file contents: a ValueError naming the file, or a valid index; nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_neuronperf import model_index

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
CONFIG_KEYS = st.sampled_from(["filename", "batch_size", "pipeline_size", "status", "compile_s", "error",
                               "input_shapes"])
# Documents that look like a model index, with any field missing or of any type.
INDEX_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": JSON_SCALARS,
        "NeuronPerf_version": JSON_SCALARS,
        "model_name": JSON_SCALARS,
        "model_configs": st.lists(st.dictionaries(CONFIG_KEYS, JSON_VALUES, max_size=7), max_size=3) | JSON_VALUES,
    },
)
CONTENTS = (
    st.binary(max_size=200)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | INDEX_LIKE.map(lambda v: json.dumps(v).encode())
    | INDEX_LIKE.map(lambda v: json.dumps(v).encode()[: len(json.dumps(v)) // 2])
)


def _load(tmp: Path, data: bytes) -> None:
    path = tmp / "index.json"
    path.write_bytes(data)
    try:
        index = model_index.load(path)
    except ValueError as exc:
        assert "index.json" in str(exc), str(exc)  # the message names the file
        return
    assert isinstance(index["model_configs"], list)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(CONTENTS)
def test_arbitrary_contents_give_a_value_error_or_an_index(tmp_path: Path, data: bytes) -> None:
    _load(tmp_path, data)


def test_deeply_nested_json_is_a_value_error(tmp_path: Path) -> None:
    _load(tmp_path, b"[" * 100_000)
