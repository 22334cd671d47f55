from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_neuronperf._util.atomic_write import write_atomic
from pytest_neuronperf._util.filelock import FileLock, LockTimeoutError
from pytest_neuronperf.baselines import store as baseline_module
from pytest_neuronperf.baselines.environment import fingerprint, fingerprint_differences
from pytest_neuronperf.baselines.keys import config_key, entry_key, split_nodeid
from pytest_neuronperf.baselines.schema import (
    ENTRY_FIX_HINT,
    FIX_HINT,
    SCHEMA_VERSION,
    BaselineFile,
    BaselineFileError,
    BaselineRecord,
    parse_baseline,
    round_problem,
)
from pytest_neuronperf.baselines.store import BaselineStore, baseline_relpath, iter_baselines, lock_path
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS, FINGERPRINT_FIELDS, MATRIX_KEYS, STATUS_OK

MODULE = "tests/models/test_mlp.py"
KEYS = DEFAULT_FINGERPRINT_KEYS
HERE: dict[str, str] = {
    "device_type": "cpu",
    "instance_type": "m5.large",
    "cpu_model": "Xeon",
    "cpu_count": "2",
    "torch": "2.3.0",
    "torch_neuronx": "not installed",
    "python": "3.11.7",
}
CONFIG: dict[str, object] = {"batch_size": 1, "n_models": 2, "workers_per_model": 1, "pipeline_size": 1}
KEY = "test_mlp[small]::forward::b1-n2-w1-p1"
OTHER_KEY = "test_mlp[small]::forward::b1-n1-w1-p1"


def record(
    *rounds: float,
    saved_at: str = "2024-05-01T12:00:00Z",
    report: Mapping[str, object] | None = None,
    **fp: str,
) -> BaselineRecord:
    return BaselineRecord(
        fingerprint={**HERE, **fp},
        config=CONFIG,
        rounds=[{"throughput": r} for r in rounds],
        report=dict(report or {"throughput_avg": rounds[-1] if rounds else 0.0}),
        saved_at=saved_at,
    )


def throughputs(rec: BaselineRecord | None) -> list[object]:
    assert rec is not None
    return [r["throughput"] for r in rec.rounds]


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    return BaselineStore(tmp_path / "baselines")


# --- keys and paths -----------------------------------------------------------------------------


def test_config_key_and_entry_key() -> None:
    assert {"batch_size", "n_models", "workers_per_model", "pipeline_size"} == set(MATRIX_KEYS)
    assert config_key(CONFIG) == "b1-n2-w1-p1"
    assert config_key({**CONFIG, "model_name": "mlp", "batch_size": 8}) == "b8-n2-w1-p1"
    assert entry_key("test_mlp[small]", "forward", CONFIG) == KEY
    assert entry_key("TestX::test_y", "m", "b1-n1-w1-p1") == "TestX::test_y::m::b1-n1-w1-p1"
    with pytest.raises(ValueError, match="config has no 'pipeline_size'"):
        config_key({"batch_size": 1, "n_models": 1, "workers_per_model": 1})
    with pytest.raises(ValueError, match="measurement must not contain '::'"):
        entry_key("t", "a::b", CONFIG)
    with pytest.raises(ValueError, match="test name must not be empty"):
        entry_key("", "m", CONFIG)


def test_split_nodeid() -> None:
    assert split_nodeid("tests/models/test_mlp.py::TestA::test_b[x::y]") == (
        "tests/models/test_mlp.py",
        "TestA::test_b[x::y]",
    )
    for bad in ("tests/test_x.py", "::test_y", "tests/test_x.py::"):
        with pytest.raises(ValueError, match="expected a test node id"):
            split_nodeid(bad)


def h(original: str) -> str:
    """The hash a component gets when making it safe changed it (so that no two paths share a file)."""
    return hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:12]


@pytest.mark.parametrize(
    ("module_path", "relpath"),
    [
        ("tests/models/test_mlp.py", "tests/models/test_mlp.json"),
        ("test_top.py", "test_top.json"),
        ("./tests//test_a.py", "tests/test_a.json"),
        ("../../etc/passwd", f"__--{h('..')}/__--{h('..')}/etc/passwd--{h('passwd')}.json"),
        ("tests/../../x.py", f"tests/__--{h('..')}/__--{h('..')}/x.json"),
        ("/etc/cron.d/x.py", "etc/cron.d/x.json"),
        ("C:\\Users\\me\\test_w.py", f"C_--{h('C:')}/Users/me/test_w.json"),
        ("tests/a\0b.py", f"tests/a_b--{h('a' + chr(0) + 'b.py')}.json"),
        ("tests/my test[1] é.py", f"tests/my_test_1___--{h('my test[1] é.py')}.json"),
        ("docs/README.md", f"docs/README.md--{h('README.md')}.json"),
        ("tests/.py", f"tests/.py--{h('.py')}.json"),
        ("tests/...", f"tests/___--{h('...')}.json"),
    ],
)
def test_path_for_maps_and_neutralises(store: BaselineStore, module_path: str, relpath: str) -> None:
    assert baseline_relpath(module_path).as_posix() == relpath
    assert store.path_for(module_path) == store.root / relpath


@pytest.mark.parametrize("module_path", ["", "/", ".", "./", "//./"])
def test_path_for_rejects_paths_that_name_no_file(store: BaselineStore, module_path: str) -> None:
    with pytest.raises(ValueError, match="names no file"):
        store.path_for(module_path)


def test_long_names_are_shortened_but_stay_distinct(store: BaselineStore) -> None:
    a = store.path_for("tests/" + "a" * 300 + "1.py")
    b = store.path_for("tests/" + "a" * 300 + "2.py")
    assert a != b
    assert len(a.name) <= 160
    assert a.name.endswith(".json")


@given(st.text())
def test_path_for_never_leaves_the_baseline_dir(module_path: str) -> None:
    root = Path(tempfile.gettempdir()) / "npf-root"
    try:
        path = BaselineStore(root).path_for(module_path)
    except ValueError:
        return
    rel = os.path.relpath(os.path.normpath(path), os.path.normpath(root))
    assert not rel.startswith("..")
    assert not os.path.isabs(rel)
    parts = Path(rel).parts
    assert parts and all(p not in ("", ".", "..") and "\0" not in p for p in parts)
    assert all(set(p) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") for p in parts)
    assert path.name.endswith(".json")


# --- fingerprint --------------------------------------------------------------------------------


def test_fingerprint_fields_are_strings() -> None:
    fp = fingerprint("cpu")
    assert tuple(fp) == FINGERPRINT_FIELDS
    assert all(isinstance(v, str) and v for v in fp.values())
    assert fp["device_type"] == "cpu"
    assert int(fp["cpu_count"]) >= 1
    assert "python" in FINGERPRINT_FIELDS and "python" not in DEFAULT_FINGERPRINT_KEYS


def test_fingerprint_reads_versions_without_importing_torch() -> None:
    root = Path(baseline_module.__file__).resolve().parents[1]
    code = (
        "import sys; from pytest_neuronperf.baselines.environment import fingerprint; fp = fingerprint('cpu'); "
        "print('torch' in sys.modules, fp['torch'] != '')"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_fingerprint_differences_lists_differing_keys() -> None:
    there = {**HERE, "instance_type": "c5.xlarge", "python": "3.12.0"}
    assert fingerprint_differences(HERE, HERE, KEYS) == []
    assert fingerprint_differences(HERE, there, KEYS) == ["instance_type"]
    assert fingerprint_differences(HERE, there, FINGERPRINT_FIELDS) == ["instance_type", "python"]
    assert fingerprint_differences(HERE, there, ()) == []
    partial = {k: v for k, v in HERE.items() if k != "torch"}
    assert fingerprint_differences(partial, HERE, KEYS) == ["torch"]


# --- round trip and format ----------------------------------------------------------------------


def test_missing_file_loads_empty(store: BaselineStore) -> None:
    loaded = store.load(MODULE)
    assert loaded.entries == {}
    assert loaded.path == store.path_for(MODULE)
    assert not store.path_for(MODULE).exists()


def test_save_and_load_round_trip(store: BaselineStore) -> None:
    rec = record(100.0, 110.5, report={"throughput_avg": 105.25, "latency_ms_p99": 3.5, "status": "finished"})
    result = store.save(MODULE, {KEY: rec}, KEYS)
    assert result.path == store.root / "tests/models/test_mlp.json"
    assert result.moved_aside is None
    loaded = store.load(MODULE)
    assert list(loaded.entries) == [KEY]
    (got,) = loaded.records(KEY)
    assert got == rec
    assert got.to_json() == rec.to_json()


def test_file_is_sorted_indented_json_with_schema_version(store: BaselineStore) -> None:
    store.save(MODULE, {OTHER_KEY: record(2.0), KEY: record(1.0)}, KEYS)
    text = store.path_for(MODULE).read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["schema_version"] == SCHEMA_VERSION == 2
    assert doc["module"] == MODULE
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert list(doc["entries"]) == sorted(doc["entries"])
    rec = doc["entries"][KEY][0]
    assert sorted(rec) == ["config", "fingerprint", "report", "rounds", "saved_at"]
    assert rec["saved_at"] == "2024-05-01T12:00:00Z"
    assert rec["rounds"] == [{"throughput": 1.0}]


def test_saved_at_defaults_to_utc_iso_now() -> None:
    rec = BaselineRecord(fingerprint=HERE, config={}, rounds=[], report={})
    assert len(rec.saved_at) == 20 and rec.saved_at.endswith("Z") and rec.saved_at[10] == "T"


def test_saving_twice_gives_identical_bytes(store: BaselineStore) -> None:
    updates = {KEY: record(1.0, 2.0), OTHER_KEY: record(3.0, instance_type="c5.xlarge")}
    store.save(MODULE, updates, KEYS)
    first = store.path_for(MODULE).read_bytes()
    store.save(MODULE, updates, KEYS)
    assert store.path_for(MODULE).read_bytes() == first


def test_environment_order_does_not_depend_on_save_order(tmp_path: Path) -> None:
    a, b = record(1.0, instance_type="c5.xlarge"), record(2.0, instance_type="m5.large")
    one, two = BaselineStore(tmp_path / "one"), BaselineStore(tmp_path / "two")
    one.save(MODULE, {KEY: a}, KEYS)
    one.save(MODULE, {KEY: b}, KEYS)
    two.save(MODULE, {KEY: b}, KEYS)
    two.save(MODULE, {KEY: a}, KEYS)
    assert one.path_for(MODULE).read_bytes() == two.path_for(MODULE).read_bytes()
    assert [r.fingerprint["instance_type"] for r in one.load(MODULE).records(KEY)] == ["c5.xlarge", "m5.large"]


def test_non_ascii_is_kept_readable(store: BaselineStore) -> None:
    store.save(MODULE, {"test_é[ß]::m::b1-n1-w1-p1": record(1.0, cpu_model="Gravitón")}, KEYS)
    text = store.path_for(MODULE).read_text(encoding="utf-8")
    assert "Gravitón" in text and "test_é[ß]" in text


def test_non_finite_numbers_are_stored_as_null(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(float("nan"), report={"throughput_avg": float("inf"), "n": 3})}, KEYS)
    (got,) = store.load(MODULE).records(KEY)
    assert got.report == {"throughput_avg": None, "n": 3}
    assert got.rounds == ({"throughput": None},)


def test_numpy_style_numbers_and_tuples_are_stored_plainly(store: BaselineStore) -> None:
    class Int64(int):
        pass

    rec = record(1.0, report={"counts": (Int64(3), 4.5), "nested": {"ok": [True, None, "x"]}})
    store.save(MODULE, {KEY: rec}, KEYS)
    (got,) = store.load(MODULE).records(KEY)
    assert got.report == {"counts": [3, 4.5], "nested": {"ok": [True, None, "x"]}}


def test_unstorable_values_fail_before_any_file_is_written(store: BaselineStore) -> None:
    with pytest.raises(TypeError, match=r"report\.model: object cannot be stored"):
        store.save(MODULE, {KEY: record(1.0, report={"model": object()})}, KEYS)
    with pytest.raises(TypeError, match="fingerprint values must be strings"):
        store.save(MODULE, {KEY: record(1.0, cpu_count=2)}, KEYS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_rounds must be at least 1"):
        store.save(MODULE, {KEY: record(1.0)}, KEYS, max_rounds=0)
    assert not store.root.exists()


def test_empty_update_writes_nothing(store: BaselineStore) -> None:
    assert store.save(MODULE, {}, KEYS).path == store.path_for(MODULE)
    assert not store.path_for(MODULE).exists()


# --- merging ------------------------------------------------------------------------------------


def test_save_touches_no_other_entry(store: BaselineStore) -> None:
    keep = record(5.0, 6.0, saved_at="2020-01-01T00:00:00Z")
    store.save(MODULE, {KEY: record(1.0), OTHER_KEY: keep}, KEYS)
    store.save(MODULE, {KEY: record(2.0, saved_at="2024-06-01T00:00:00Z")}, KEYS)
    loaded = store.load(MODULE)
    assert loaded.records(OTHER_KEY) == (keep,)
    assert throughputs(loaded.records(KEY)[0]) == [2.0]
    # Other modules live in other files and are not touched either.
    store.save("tests/other/test_b.py", {KEY: record(9.0)}, KEYS)
    assert store.load(MODULE) == loaded


def test_replace_by_default_and_accumulate_on_request(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1.0, 2.0, saved_at="2024-01-01T00:00:00Z")}, KEYS)
    store.save(MODULE, {KEY: record(3.0, saved_at="2024-01-02T00:00:00Z")}, KEYS, {KEY: True})
    (acc,) = store.load(MODULE).records(KEY)
    assert throughputs(acc) == [1.0, 2.0, 3.0]
    assert acc.saved_at == "2024-01-02T00:00:00Z"
    store.save(MODULE, {KEY: record(4.0, saved_at="2024-01-03T00:00:00Z")}, KEYS, {KEY: False})
    (rep,) = store.load(MODULE).records(KEY)
    assert throughputs(rep) == [4.0]


def test_accumulate_keeps_the_newest_max_rounds(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(*range(5))}, KEYS, max_rounds=4)
    assert throughputs(store.load(MODULE).records(KEY)[0]) == [1, 2, 3, 4]
    store.save(MODULE, {KEY: record(5, 6, 7)}, KEYS, {KEY: True}, max_rounds=4)
    assert throughputs(store.load(MODULE).records(KEY)[0]) == [4, 5, 6, 7]


def test_accumulate_applies_per_entry(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1.0), OTHER_KEY: record(1.0)}, KEYS)
    store.save(MODULE, {KEY: record(2.0), OTHER_KEY: record(2.0)}, KEYS, {KEY: True})
    loaded = store.load(MODULE)
    assert throughputs(loaded.records(KEY)[0]) == [1.0, 2.0]
    assert throughputs(loaded.records(OTHER_KEY)[0]) == [2.0]


def test_other_environments_are_kept_and_not_accumulated_into(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1.0, instance_type="c5.xlarge")}, KEYS)
    store.save(MODULE, {KEY: record(2.0)}, KEYS, {KEY: True})
    records = store.load(MODULE).records(KEY)
    assert [(r.fingerprint["instance_type"], throughputs(r)) for r in records] == [
        ("c5.xlarge", [1.0]),
        ("m5.large", [2.0]),
    ]


def test_fields_outside_the_keys_do_not_split_environments(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1.0, python="3.10.1")}, KEYS)
    store.save(MODULE, {KEY: record(2.0, python="3.11.7")}, KEYS, {KEY: True})
    (rec,) = store.load(MODULE).records(KEY)
    assert rec.fingerprint["python"] == "3.11.7"
    assert throughputs(rec) == [1.0, 2.0]


# --- lookup -------------------------------------------------------------------------------------


def test_lookup_finds_the_matching_environment(store: BaselineStore) -> None:
    mine = record(2.0)
    store.save(MODULE, {KEY: record(1.0, instance_type="c5.xlarge")}, KEYS)
    store.save(MODULE, {KEY: mine}, KEYS)
    found = store.lookup(MODULE, KEY, HERE, KEYS)
    assert found.found
    assert found.record == mine
    assert found.explain() == f"baseline saved 2024-05-01T12:00:00Z in {store.path_for(MODULE)}"


def test_lookup_explains_a_fingerprint_mismatch(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1.0, instance_type="c5.xlarge")}, KEYS)
    found = store.lookup(MODULE, KEY, HERE, KEYS)
    assert not found.found
    assert found.record is None
    assert [m.differing for m in found.mismatches] == [("instance_type",)]
    assert found.explain() == (
        f"no baseline for this environment in {store.path_for(MODULE)}: "
        "baseline exists for instance_type=c5.xlarge, not this machine's m5.large"
    )


def test_lookup_explains_several_differences_and_environments(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1.0, instance_type="c5.xlarge", cpu_count="4")}, KEYS)
    store.save(MODULE, {KEY: record(1.0, torch="2.1.0")}, KEYS)
    found = store.lookup(MODULE, KEY, HERE, KEYS)
    assert found.explain() == (
        f"no baseline for this environment in {store.path_for(MODULE)}: "
        "baseline exists for torch=2.1.0, not this machine's 2.3.0; "
        "baseline exists for instance_type=c5.xlarge, cpu_count=4, "
        "not this machine's instance_type=m5.large, cpu_count=2"
    )


def test_lookup_without_any_baseline(store: BaselineStore) -> None:
    found = store.lookup(MODULE, KEY, HERE, KEYS)
    assert not found.found and found.mismatches == ()
    assert found.explain() == f"no baseline saved for {KEY} in {store.path_for(MODULE)}"


def test_lookup_prefers_the_closest_environment(store: BaselineStore) -> None:
    exact = record(1.0, saved_at="2020-01-01T00:00:00Z")
    store.save(MODULE, {KEY: exact}, FINGERPRINT_FIELDS)
    store.save(MODULE, {KEY: record(2.0, torch="9.9", saved_at="2024-01-01T00:00:00Z")}, FINGERPRINT_FIELDS)
    assert store.lookup(MODULE, KEY, HERE, ("device_type",)).record == exact


def test_lookup_with_no_keys_matches_any_environment(store: BaselineStore) -> None:
    other = record(1.0, instance_type="c5.xlarge")
    store.save(MODULE, {KEY: other}, KEYS)
    assert store.lookup(MODULE, KEY, HERE, ()).record == other


# --- malformed files ----------------------------------------------------------------------------

GOOD_ROUND: dict[str, object] = {
    "throughput": 1000.0, "throughput_ci": [990.0, 1010.0], "p50_ms": 1.0, "p50_ci": [0.99, 1.01],
    "p99_ms": 2.0, "p99_ci": [1.9, 2.1], "n": 5000, "n_eff_p50": 900.0, "n_eff_p99": 800.0,
    "duration_s": 5.0, "stable": True, "throughput_cv": 0.01,
}
GOOD_RECORD = {"fingerprint": HERE, "saved_at": "x", "config": {}, "rounds": [GOOD_ROUND], "report": {}}


def doc(**changes: Any) -> bytes:
    base: dict[str, Any] = {"schema_version": 1, "entries": {KEY: [GOOD_RECORD]}}
    base.update(changes)
    return json.dumps(base).encode()


def bad_record(**changes: Any) -> bytes:
    return doc(entries={KEY: [{**GOOD_RECORD, **changes}]})


CORRUPT = [
    pytest.param(b"", "it is empty", id="empty"),
    pytest.param(b"\n  \n", "it is empty", id="blank"),
    pytest.param(doc()[:-7], "it is not valid JSON (Expecting", id="truncated"),
    pytest.param(b"<<<<<<< HEAD\n", "it is not valid JSON (Expecting value at line 1 column 1", id="merge-conflict"),
    pytest.param(b"\xff\xfe{}", "it is not UTF-8 text (invalid start byte at byte 0)", id="not-utf8"),
    pytest.param(b"[]", "the top level must be an object, got a list", id="list"),
    pytest.param(b'{"entries": {}}', "it has no schema_version", id="no-version"),
    pytest.param(doc(schema_version="1"), 'schema_version must be an integer, got "1"', id="version-str"),
    pytest.param(doc(schema_version=True), "schema_version must be an integer, got true", id="version-bool"),
    pytest.param(doc(schema_version=0), "schema_version 0 is not one any pytest-neuronperf writes", id="v0"),
    pytest.param(doc(extra=1), "it has unexpected top-level keys 'extra'", id="extra-key"),
    pytest.param(doc(entries=[]), "'entries' must be an object, got a list", id="entries-list"),
    pytest.param(b'{"schema_version": 1}', "'entries' must be an object, got null", id="no-entries"),
    pytest.param(doc(entries={KEY: {}}), f"entries[{KEY!r}] must be a list of records, got an object", id="records"),
    pytest.param(doc(entries={KEY: [3]}), f"entries[{KEY!r}][0] must be an object, got a number", id="record-num"),
    pytest.param(bad_record(rounds={}), f"entries[{KEY!r}][0].rounds must be a list of objects", id="rounds"),
    pytest.param(bad_record(rounds=[1]), f"entries[{KEY!r}][0].rounds must be a list of objects", id="round"),
    pytest.param(bad_record(report=[]), f"entries[{KEY!r}][0].report must be an object, got a list", id="report"),
    pytest.param(bad_record(saved_at=1), f"entries[{KEY!r}][0].saved_at must be a string, got a number", id="saved"),
    pytest.param(
        bad_record(fingerprint={"cpu_count": 2}),
        f"entries[{KEY!r}][0].fingerprint must be an object of strings",
        id="fingerprint",
    ),
    pytest.param(bad_record(raunds=[]), f"entries[{KEY!r}][0] has unexpected keys 'raunds'", id="typo"),
    pytest.param(
        doc(entries={KEY: [{"fingerprint": {}}]}),
        f"entries[{KEY!r}][0] lacks config, report, rounds, saved_at",
        id="missing",
    ),
    pytest.param(bad_record(rounds=[]), f"entries[{KEY!r}][0].rounds is empty: a baseline without rounds cannot",
                 id="no-rounds"),
    pytest.param(doc().replace(b"1000.0", b"NaN"), "it holds NaN, which is not a JSON number", id="nan"),
    pytest.param(doc().replace(b"2.0,", b"-Infinity,"), "it holds -Infinity, which is not a JSON number",
                 id="infinity"),
    pytest.param(b'{"schema_version": 1, "entries": {}, "schema_version": 1}',
                 "the key 'schema_version' appears twice in one object", id="duplicate-top-key"),
    pytest.param(doc().replace(b'"p50_ms": 1.0', b'"p50_ms": 1.0, "p50_ms": 9.0'),
                 "the key 'p50_ms' appears twice in one object", id="duplicate-round-key"),
    pytest.param(doc(module=3), "'module' must be the test module's path, got 3", id="module-number"),
]


@pytest.mark.parametrize(("content", "problem"), CORRUPT)
def test_malformed_files_give_clear_errors_and_are_not_overwritten(
    store: BaselineStore, content: bytes, problem: str
) -> None:
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(BaselineFileError) as excinfo:
        store.load(MODULE)
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert err.path == path
    assert err.problem.startswith(problem)
    assert str(err) == f"baseline file {path} is unusable: {err.problem}. To fix it, {FIX_HINT}"
    assert "delete it, restore it from version control, or pass --npf-overwrite-corrupt" in str(err)

    with pytest.raises(BaselineFileError):
        store.save(MODULE, {KEY: record(1.0)}, KEYS)
    assert path.read_bytes() == content
    with pytest.raises(BaselineFileError):
        store.lookup(MODULE, KEY, HERE, KEYS)


def test_newer_schema_says_to_upgrade(store: BaselineStore) -> None:
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True)
    path.write_bytes(doc(schema_version=3))
    with pytest.raises(BaselineFileError) as excinfo:
        store.load(MODULE)
    assert str(excinfo.value) == (
        f"baseline file {path} is unusable: it has schema_version 3, written by a newer pytest-neuronperf "
        f"(this one reads up to 2). To fix it, upgrade pytest-neuronperf, or {FIX_HINT}"
    )
    with pytest.raises(BaselineFileError):
        store.save(MODULE, {KEY: record(1.0)}, KEYS)
    assert path.read_bytes() == doc(schema_version=3)


def test_a_byte_order_mark_is_tolerated(store: BaselineStore) -> None:
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xef\xbb\xbf" + doc())
    assert list(store.load(MODULE).entries) == [KEY]


def test_overwrite_corrupt_moves_the_bad_file_aside(store: BaselineStore) -> None:
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"schema_version": 1, "entr')
    result = store.save(MODULE, {KEY: record(1.0)}, KEYS, overwrite_corrupt=True)
    assert result.moved_aside is not None
    assert result.moved_aside.parent == path.parent
    assert result.moved_aside.name.startswith("test_mlp.json.corrupt-")
    assert result.moved_aside.read_bytes() == b'{"schema_version": 1, "entr'
    assert [r.rounds for r in store.load(MODULE).records(KEY)] == [({"throughput": 1.0},)]

    path.write_bytes(b"garbage")
    second = store.save(MODULE, {KEY: record(2.0)}, KEYS, overwrite_corrupt=True)
    assert second.moved_aside is not None and second.moved_aside != result.moved_aside
    assert second.moved_aside.read_bytes() == b"garbage"
    assert result.moved_aside.read_bytes() == b'{"schema_version": 1, "entr'


def test_overwrite_corrupt_leaves_good_files_alone(store: BaselineStore) -> None:
    store.save(MODULE, {OTHER_KEY: record(1.0)}, KEYS)
    result = store.save(MODULE, {KEY: record(2.0)}, KEYS, overwrite_corrupt=True)
    assert result.moved_aside is None
    assert set(store.load(MODULE).entries) == {KEY, OTHER_KEY}


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_parsing_arbitrary_bytes_raises_only_baseline_file_error(data: bytes) -> None:
    try:
        loaded = parse_baseline(data, "b.json")
    except BaselineFileError as exc:
        assert str(exc).startswith("baseline file b.json is unusable: ")
        return
    assert isinstance(loaded, BaselineFile)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
RECORDISH = st.fixed_dictionaries(
    {},
    optional={
        "fingerprint": st.dictionaries(st.sampled_from(FINGERPRINT_FIELDS), st.text(max_size=3)) | JSON,
        "saved_at": st.text(max_size=3) | JSON,
        "config": st.dictionaries(st.text(max_size=3), JSON, max_size=2) | JSON,
        "rounds": st.lists(st.dictionaries(st.text(max_size=3), JSON, max_size=2), max_size=2) | JSON,
        "report": st.dictionaries(st.text(max_size=3), JSON, max_size=2) | JSON,
    },
)
DOCISH = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": st.sampled_from([1, 1, 1, 0, 2, "1", None, 1.0, True]),
        "entries": st.dictionaries(st.text(max_size=8), st.lists(RECORDISH, max_size=2) | JSON, max_size=3) | JSON,
    },
)


@given(DOCISH)
def test_json_shaped_documents_load_or_explain_and_round_trip(document: dict[str, Any]) -> None:
    data = json.dumps(document).encode()
    try:
        loaded = parse_baseline(data, "b.json")
    except BaselineFileError:
        return
    again = parse_baseline(loaded.dumps(), "b.json")
    assert again.dumps() == loaded.dumps()


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.binary(max_size=200))
def test_loading_arbitrary_files_raises_only_baseline_file_error(tmp_path: Path, data: bytes) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    try:
        loaded = store.load(MODULE)
    except BaselineFileError as exc:
        assert exc.path == path
    else:
        assert loaded.path == path


# --- atomic writes ------------------------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".json"))


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_interrupted_write_leaves_the_old_file_and_no_temp_files(
    store: BaselineStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    store.save(MODULE, {KEY: record(1.0)}, KEYS)
    path = store.path_for(MODULE)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        store.save(MODULE, {KEY: record(2.0), OTHER_KEY: record(3.0)}, KEYS)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_interrupt_while_writing_leaves_no_temp_file(store: BaselineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: BaselineFile) -> bytes:
        raise KeyboardInterrupt

    store.save(MODULE, {KEY: record(1.0)}, KEYS)
    before = store.path_for(MODULE).read_bytes()
    monkeypatch.setattr(BaselineFile, "dumps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.save(MODULE, {KEY: record(2.0)}, KEYS)
    assert store.path_for(MODULE).read_bytes() == before
    assert leftovers(store.path_for(MODULE).parent) == []


def test_write_atomic_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    write_atomic(str(target), b"one\n")
    write_atomic(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_existing_file_mode_is_kept(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1.0)}, KEYS)
    path = store.path_for(MODULE)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o664)
    store.save(MODULE, {KEY: record(2.0)}, KEYS)
    assert path.stat().st_mode & 0o777 == 0o664


# --- locking and concurrency --------------------------------------------------------------------


def test_file_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    lock_path = tmp_path / "x.lock"
    with FileLock(lock_path) as held:
        locked_inside = held.locked
        with pytest.raises(LockTimeoutError, match=r"could not lock .*x\.lock within 0 s"):
            FileLock(lock_path, timeout=0).acquire()
        with pytest.raises(RuntimeError, match="already locked"):
            held.acquire()
    assert locked_inside and not held.locked
    with FileLock(lock_path, timeout=0):
        pass
    assert lock_path.exists()


def test_concurrent_saves_from_many_processes_keep_every_entry(tmp_path: Path, no_leftover_children: None) -> None:
    store = BaselineStore(tmp_path)
    store.save(MODULE, {"seed::m::b1-n1-w1-p1": record(0.0)}, KEYS)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    # Hold the lock while the processes start so that they all queue on it
    # and then race for it together.
    with FileLock(lock_path(store.path_for(MODULE))):
        for i in range(8):
            updates = {f"test_{i}::m::b1-n1-w1-p{j}": record(float(i), float(j)) for j in range(3)}
            proc = ctx.Process(target=store.save, args=(MODULE, updates, KEYS))
            proc.start()
            procs.append(proc)
    for proc in procs:
        proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 8
    entries = store.load(MODULE).entries
    assert len(entries) == 1 + 8 * 3
    assert throughputs(entries["test_5::m::b1-n1-w1-p2"][0]) == [5.0, 2.0]
    assert leftovers(store.path_for(MODULE).parent) == []


# --- listing ------------------------------------------------------------------------------------


def test_iter_baselines_lists_files_in_order_and_reports_bad_ones(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save("tests/b/test_two.py", {KEY: record(2.0)}, KEYS)
    store.save("tests/a/test_one.py", {KEY: record(1.0)}, KEYS)
    store.save("test_top.py", {KEY: record(3.0)}, KEYS)
    bad = store.path_for("tests/c/test_bad.py")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"{")
    (tmp_path / "tests" / "notes.txt").write_text("not a baseline")

    errors: list[BaselineFileError] = []
    listed = list(iter_baselines(tmp_path, on_error=errors.append))
    assert [module for module, _ in listed] == ["test_top.py", "tests/a/test_one.py", "tests/b/test_two.py"]
    assert [throughputs(f.records(KEY)[0]) for _, f in listed] == [[3.0], [1.0], [2.0]]
    assert [e.path for e in errors] == [bad]
    with pytest.raises(BaselineFileError):
        list(iter_baselines(tmp_path))
    assert list(iter_baselines(tmp_path / "missing")) == []


# --- issue 12: names, modules, damaged rounds, special paths, locks ------------------------------


def test_modules_that_sanitise_alike_get_distinct_files() -> None:
    for a, b in [("test_é.py", "test__.py"), ("test_a b.py", "test_a+b.py"), ("t/x y/test.py", "t/x_y/test.py"),
                 ("test_x.py", "test_x"), ("a.md.py", "a.md"), ("test__--0123456789ab.py", "test_é.py")]:
        assert baseline_relpath(a) != baseline_relpath(b), (a, b)
    # A path that needs no change keeps its name, so files saved before still load.
    assert baseline_relpath("tests/perf/test_mlp.py").as_posix() == "tests/perf/test_mlp.json"
    assert baseline_relpath("test__.py").as_posix() == "test__.json"
    assert baseline_relpath("test_é.py").as_posix() == f"test__--{h('test_é.py')}.json"


def _distinct_files_for_distinct_modules(a: str, b: str) -> None:
    from pytest_neuronperf.baselines.store import canonical_module

    try:
        ra, rb = baseline_relpath(a), baseline_relpath(b)
    except ValueError:
        return
    if canonical_module(a) != canonical_module(b):
        assert ra != rb, (a, b)


@settings(max_examples=500)
@given(st.text(max_size=12), st.text(max_size=12))
def test_baseline_files_are_injective_over_module_paths(a: str, b: str) -> None:
    _distinct_files_for_distinct_modules(a, b)


# Pieces that sanitise alike or look like the hashed names, so that near-collisions are common.
LOOK_ALIKE = st.lists(st.sampled_from(["a", "é", "_", " ", "+", ".", "..", "/", "py", ".py", "--", "0123456789ab"]),
                      min_size=1, max_size=8).map("".join)


@settings(max_examples=500)
@given(LOOK_ALIKE, LOOK_ALIKE)
def test_baseline_files_are_injective_over_look_alike_paths(a: str, b: str) -> None:
    _distinct_files_for_distinct_modules(a, b)


def test_a_file_records_its_module_and_is_not_used_for_another(store: BaselineStore) -> None:
    store.save("./tests//models/test_mlp.py", {KEY: record(1.0)}, KEYS)
    doc = json.loads(store.path_for(MODULE).read_text())
    assert doc["module"] == MODULE
    assert store.load(MODULE).module == MODULE
    assert store.lookup(MODULE, KEY, HERE, KEYS).found

    class OneFile(BaselineStore):  # as `npf compare` reads a single file for every module
        def path_for(self, module_path: str) -> Path:
            return store.path_for(MODULE)

    other = OneFile(store.root).lookup("tests/other/test_mlp.py", KEY, HERE, KEYS)
    assert not other.found
    assert other.explain() == (f"no baseline for tests/other/test_mlp.py in {store.path_for(MODULE)}: that file "
                               f"holds the baselines of {MODULE}, which are not compared with another module's tests")
    reports = [{**CONFIG, "status": STATUS_OK, "rounds": [GOOD_ROUND]}]
    assert not OneFile(store.root).lookup_reports("x/test_y.py", "test_mlp[small]", "forward", reports, HERE,
                                                  KEYS)["b1-n2-w1-p1"].found
    with pytest.raises(BaselineFileError, match=r"it holds the baselines of tests/models/test_mlp\.py, not of x/y\.py"):
        OneFile(store.root).save("x/y.py", {KEY: record(2.0)}, KEYS)
    assert [m for m, _ in iter_baselines(store.root)] == [MODULE]


def test_a_file_without_a_module_is_used_and_then_adopted(store: BaselineStore) -> None:
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True)
    path.write_bytes(doc())
    assert store.load(MODULE).module is None
    assert store.lookup(MODULE, KEY, HERE, KEYS).found
    store.save(MODULE, {OTHER_KEY: record(1.0)}, KEYS)
    assert store.load(MODULE).module == MODULE
    assert set(store.load(MODULE).entries) == {KEY, OTHER_KEY}


def _report(**round_changes: object) -> dict[str, object]:
    return {**CONFIG, "status": STATUS_OK, "rounds": [{**GOOD_ROUND, **round_changes}]}


@pytest.mark.parametrize(("changes", "problem"), [
    ({"p99_ms": None}, "round summary field 'p99_ms' must be a number, got None"),
    ({"throughput": 0.0}, "round summary field 'throughput' must be above zero, got 0.0"),
    ({"n": 0}, "round summary field 'n' is 0: the round completed no inference"),
    ({"stable": 1}, "round summary field 'stable' must be true or false, got 1"),
    ({"p50_ci": [1.0]}, "round summary field 'p50_ci' must be a pair of numbers or [null, null], got [1.0]"),
])
def test_a_damaged_round_is_reported_when_it_would_be_judged(
        store: BaselineStore, changes: dict[str, object], problem: str) -> None:
    rec = BaselineRecord(fingerprint=HERE, config=CONFIG, rounds=[GOOD_ROUND, {**GOOD_ROUND, **changes}], report={})
    store.save(MODULE, {KEY: rec}, KEYS)
    path = store.path_for(MODULE)
    with pytest.raises(BaselineFileError) as excinfo:
        store.lookup_reports(MODULE, "test_mlp[small]", "forward", [_report()], HERE, KEYS)
    assert str(excinfo.value) == (f"baseline file {path} is unusable: entries[{KEY!r}][0].rounds[1]: {problem}. "
                                  f"To fix it, {ENTRY_FIX_HINT}")
    assert "--npf-overwrite-corrupt" in str(excinfo.value)
    # Another environment's damaged record is nobody's business here.
    assert not store.lookup_reports(MODULE, "test_mlp[small]", "forward", [_report()], {**HERE, "cpu_count": "8"},
                                    KEYS)["b1-n2-w1-p1"].found


def test_a_usable_round_has_no_problem() -> None:
    assert round_problem(GOOD_ROUND) is None
    assert round_problem({**GOOD_ROUND, "p99_ci": [None, None]}) is None  # an interval that could not be bounded


@pytest.mark.parametrize("changes", [{"n": 0}, {"throughput": 0.0}, {"throughput": None}, {}],
                         ids=["no-inference", "zero-throughput", "null-throughput", "no-n"])
def test_a_report_that_timed_nothing_is_never_made_a_record(changes: dict[str, object]) -> None:
    rounds = [{**GOOD_ROUND, **changes}] if changes else [{"throughput": 5.0}]
    with pytest.raises(ValueError, match=r"round 0 of the report completed no inference .*a baseline with zero "
                                         r"samples is never saved"):
        BaselineRecord.from_report({**CONFIG, "rounds": rounds}, HERE)
    assert BaselineRecord.from_report({**CONFIG, "rounds": [GOOD_ROUND]}, HERE).rounds == (GOOD_ROUND,)


def test_a_baseline_path_that_is_not_a_file_is_reported(store: BaselineStore, tmp_path: Path) -> None:
    path = store.path_for(MODULE)
    path.mkdir(parents=True)
    with pytest.raises(BaselineFileError, match="is unusable: it is a directory, not a file"):
        store.load(MODULE)
    with pytest.raises(BaselineFileError, match="it is a directory, not a file"):
        store.save(MODULE, {KEY: record(1.0)}, KEYS)
    assert path.is_dir()
    result = store.save(MODULE, {KEY: record(1.0)}, KEYS, overwrite_corrupt=True)
    assert result.moved_aside is not None and result.moved_aside.is_dir()
    assert list(store.load(MODULE).entries) == [KEY]
    fifo_store = BaselineStore(tmp_path / "fifo")
    fifo = fifo_store.path_for(MODULE)
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    with pytest.raises(BaselineFileError, match=r"it is not a regular file \(a FIFO, socket or device\)"):
        fifo_store.load(MODULE)  # reading it would block forever


def test_a_link_inside_the_folder_is_written_through_one_leaving_it_is_refused(
        store: BaselineStore, tmp_path: Path) -> None:
    path = store.path_for(MODULE)
    (path.parent / "real").mkdir(parents=True)
    path.symlink_to(Path("real") / path.name)
    store.save(MODULE, {KEY: record(1.0)}, KEYS)
    store.save(MODULE, {OTHER_KEY: record(2.0)}, KEYS)
    assert path.is_symlink()
    assert set(store.load(MODULE).entries) == {KEY, OTHER_KEY}
    assert sorted(p.name for p in path.parent.iterdir()) == ["real", path.name]

    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    escaping = store.path_for("tests/models/test_out.py")
    escaping.symlink_to(outside)
    with pytest.raises(BaselineFileError, match=r"it leads \(through a symbolic link\) to .*outside\.json, outside "
                                                r"the baseline folder"):
        store.save("tests/models/test_out.py", {KEY: record(1.0)}, KEYS)
    assert outside.read_text() == "{}" and escaping.is_symlink()
    linked_dir = store.root / "linked"
    linked_dir.symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(BaselineFileError, match="outside the baseline folder"):
        store.save("linked/test_x.py", {KEY: record(1.0)}, KEYS)
    with pytest.raises(BaselineFileError, match="outside the baseline folder"):
        store.save("linked/new/test_x.py", {KEY: record(1.0)}, KEYS)
    assert not (tmp_path / "new").exists()  # no folder was made outside either
    # A baseline folder that is itself a link is fine: the check is against where it leads.
    aliased = tmp_path / "alias"
    aliased.symlink_to(store.root, target_is_directory=True)
    BaselineStore(aliased).save(MODULE, {"x::m::b1-n1-w1-p1": record(3.0)}, KEYS)
    assert "x::m::b1-n1-w1-p1" in store.load(MODULE).entries


def test_the_lock_is_the_folder_of_the_file(store: BaselineStore, tmp_path: Path) -> None:
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True)
    assert lock_path(path) == path.parent
    via_link = tmp_path / "link"
    via_link.symlink_to(path.parent, target_is_directory=True)
    assert lock_path(via_link / path.name) == path.parent.resolve()
    with FileLock(lock_path(path)), pytest.raises(LockTimeoutError):
        FileLock(path.parent, timeout=0).acquire()
    store.save(MODULE, {KEY: record(1.0)}, KEYS)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no lock file among the baselines


# --- the load a record was measured under -------------------------------------------------------------


def _round() -> dict[str, object]:
    from pytest_neuronperf.stats.rounds import RoundSummary

    return RoundSummary(throughput=100.0, throughput_ci=(95.0, 105.0), p50_ms=1.0, p50_ci=(0.9, 1.1), p99_ms=2.0,
                        p99_ci=(1.8, 2.2), n=1000, n_eff_p50=900.0, n_eff_p99=900.0, duration_s=1.0, stable=True,
                        throughput_cv=0.01).to_dict()


def _finished(**load: object) -> dict[str, object]:
    return {**CONFIG, "model_name": "mlp", "device_type": "cpu", "status": STATUS_OK, "rounds": [_round()],
            "throughput_avg": 100.0, **load}


@pytest.mark.parametrize(("stored", "current", "said"), [
    ({}, {"request_rate": 300.0, "arrival": "poisson"},
     "closed loop, no slo, not this run's request_rate=300.0, arrival=poisson"),
    ({"request_rate": 200.0, "arrival": "poisson"}, {"request_rate": 300.0, "arrival": "poisson"},
     "request_rate=200.0, not this run's request_rate=300.0"),
    ({"slo": "p99<=20ms"}, {"slo": "p99<=10ms"}, "slo=p99<=20ms, not this run's slo=p99<=10ms"),
])
def test_a_record_of_another_load_is_found_but_not_compared(store: BaselineStore, stored: dict[str, object],
                                                            current: dict[str, object], said: str) -> None:
    test_name, measurement = "test_mlp[small]", "forward"
    saved = BaselineRecord.from_report(_finished(**stored), HERE)
    store.save(MODULE, {entry_key(test_name, measurement, CONFIG): saved}, KEYS)
    [lookup] = store.lookup_reports(MODULE, test_name, measurement, [_finished(**current)], HERE, KEYS).values()
    assert lookup.record is None and lookup.other_load == said
    assert "was measured under other load" in lookup.explain() and "--npf-save-baseline" in lookup.explain()
    # The same load finds it.
    [same] = store.lookup_reports(MODULE, test_name, measurement, [_finished(**stored)], HERE, KEYS).values()
    assert same.record is not None and same.other_load == ""


def test_a_closed_loop_record_keeps_no_load_fields() -> None:
    # Baselines of closed-loop tests stay as they were: no null serving fields in their diffs.
    report = BaselineRecord.from_report(_finished(), HERE).report
    assert not {"request_rate", "arrival", "slo", "capacity_rps", "capacity_steps"} & set(report)
    served = BaselineRecord.from_report(_finished(request_rate=200.0, arrival="gamma", offered_rps=199.0), HERE)
    assert served.report["request_rate"] == 200.0 and served.report["offered_rps"] == 199.0
