"""Saved rounds carry the session that measured them and its commit; rounds accumulate over sessions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_neuronperf.baselines import environment
from pytest_neuronperf.baselines.environment import current_commit
from pytest_neuronperf.baselines.schema import (
    COMMIT_KEY,
    ENTRY_FIX_HINT,
    SESSION_KEY,
    BaselineFileError,
    BaselineRecord,
    round_problem,
    tag_rounds,
)
from pytest_neuronperf.baselines.store import BaselineStore
from pytest_neuronperf.config.settings import Settings
from pytest_neuronperf.report.results_file import Measurement
from pytest_neuronperf.session.session import NpfSession
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS, STATUS_OK
from pytest_neuronperf.stats.sessions import session_groups

MODULE = "tests/models/test_mlp.py"
KEYS = DEFAULT_FINGERPRINT_KEYS
HERE = {"device_type": "cpu", "instance_type": "m5.large", "cpu_model": "Xeon", "cpu_count": "2",
        "torch": "2.3.0", "torch_neuronx": "not installed", "python": "3.11.7"}
CONFIG: dict[str, object] = {"model_name": "MLP", "device_type": "cpu", "batch_size": 1, "n_models": 2,
                             "workers_per_model": 1, "pipeline_size": 1}
KEY = "test_mlp[small]::forward::b1-n2-w1-p1"
SHA = "0123456789abcdef0123456789abcdef01234567"
ROUND: dict[str, object] = {
    "throughput": 1000.0, "throughput_ci": [990.0, 1010.0], "p50_ms": 1.0, "p50_ci": [0.99, 1.01],
    "p99_ms": 2.0, "p99_ci": [1.9, 2.1], "n": 5000, "n_eff_p50": 900.0, "n_eff_p99": 800.0,
    "duration_s": 5.0, "stable": True, "throughput_cv": 0.01,
}


def report(*throughputs: float) -> dict[str, Any]:
    return {**CONFIG, "status": STATUS_OK, "rounds": [{**ROUND, "throughput": t} for t in throughputs]}


def record(*throughputs: float, saved_at: str, commit: str | None = SHA) -> BaselineRecord:
    rec = BaselineRecord.from_report(report(*throughputs), HERE)
    return BaselineRecord(rec.fingerprint, rec.config, rec.rounds, rec.report, saved_at).tagged(commit)


def stored_rounds(store: BaselineStore) -> list[dict[str, object]]:
    (rec,) = store.load(MODULE).records(KEY)
    return [dict(r) for r in rec.rounds]


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    return BaselineStore(tmp_path / "baselines")


# --- tagging --------------------------------------------------------------------------------------


def test_tagging_marks_untagged_rounds_and_keeps_earlier_sessions() -> None:
    earlier = {**ROUND, SESSION_KEY: "2024-01-01T00:00:00Z", COMMIT_KEY: None}
    fresh = dict(ROUND)
    tagged = tag_rounds([earlier, fresh], "2024-05-01T12:00:00Z", SHA)
    assert tagged == [earlier, {**ROUND, SESSION_KEY: "2024-05-01T12:00:00Z", COMMIT_KEY: SHA}]
    assert fresh == ROUND  # the report's own rounds are not changed
    with pytest.raises(TypeError, match="a session must be a string"):
        tag_rounds([fresh], None, SHA)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a commit must be a string or None"):
        tag_rounds([fresh], "s", 12)  # type: ignore[arg-type]


def test_a_tagged_record_uses_its_saved_at_as_the_session() -> None:
    rec = record(1000.0, 1010.0, saved_at="2024-05-01T12:00:00Z", commit=None)
    assert [(r[SESSION_KEY], r[COMMIT_KEY]) for r in rec.rounds] == [("2024-05-01T12:00:00Z", None)] * 2
    assert all(round_problem(r) is None for r in rec.rounds)


# --- saving through the store ---------------------------------------------------------------------


def test_tags_survive_saving_and_accumulating(store: BaselineStore) -> None:
    store.save(MODULE, {KEY: record(1000.0, 1010.0, saved_at="2024-05-01T12:00:00Z")}, KEYS)
    assert {(r[SESSION_KEY], r[COMMIT_KEY]) for r in stored_rounds(store)} == {("2024-05-01T12:00:00Z", SHA)}
    store.save(MODULE, {KEY: record(990.0, saved_at="2024-05-02T08:00:00Z", commit=None)}, KEYS,
               accumulate_rounds={KEY: True})
    assert [(r["throughput"], r[SESSION_KEY], r[COMMIT_KEY]) for r in stored_rounds(store)] == [
        (1000.0, "2024-05-01T12:00:00Z", SHA), (1010.0, "2024-05-01T12:00:00Z", SHA),
        (990.0, "2024-05-02T08:00:00Z", None),
    ]
    # Replacing (a changed normal) keeps only the new session's rounds.
    store.save(MODULE, {KEY: record(500.0, saved_at="2024-05-03T08:00:00Z")}, KEYS)
    assert [r[SESSION_KEY] for r in stored_rounds(store)] == ["2024-05-03T08:00:00Z"]


def test_the_newest_rounds_survive_with_their_tags(store: BaselineStore) -> None:
    for day in range(1, 5):
        store.save(MODULE, {KEY: record(1000.0 + day, 1100.0 + day, saved_at=f"2024-05-0{day}T00:00:00Z")}, KEYS,
                   accumulate_rounds={KEY: True}, max_rounds=3)
    assert [(r["throughput"], r[SESSION_KEY]) for r in stored_rounds(store)] == [
        (1103.0, "2024-05-03T00:00:00Z"), (1004.0, "2024-05-04T00:00:00Z"), (1104.0, "2024-05-04T00:00:00Z"),
    ]


def test_an_old_untagged_file_loads_and_is_one_session(store: BaselineStore) -> None:
    path = store.path_for(MODULE)
    path.parent.mkdir(parents=True)
    rounds = [{**ROUND, "throughput": t} for t in (1000.0, 1010.0, 990.0)]
    path.write_text(json.dumps({"schema_version": 1, "entries": {KEY: [
        {"fingerprint": HERE, "saved_at": "2023-01-01T00:00:00Z", "config": CONFIG, "rounds": rounds, "report": {}},
    ]}}), encoding="utf-8")
    found = store.lookup_reports(MODULE, "test_mlp[small]", "forward", [report(1000.0)], HERE, KEYS)
    rec = found["b1-n2-w1-p1"].record
    assert rec is not None and [dict(r) for r in rec.rounds] == rounds
    sessions = [r.get(SESSION_KEY) for r in rec.rounds]
    assert [g.size for g in session_groups([1.0, 2.0, 3.0], sessions)] == [3]  # type: ignore[arg-type]
    # Accumulating onto it keeps the untagged rounds as they were and tags only the new one.
    store.save(MODULE, {KEY: record(1005.0, saved_at="2024-05-01T00:00:00Z")}, KEYS, accumulate_rounds={KEY: True})
    assert [r.get(SESSION_KEY) for r in stored_rounds(store)] == [None, None, None, "2024-05-01T00:00:00Z"]


@pytest.mark.parametrize(("tags", "problem"), [
    ({SESSION_KEY: 17}, "round field 'session' (the session that measured it) must be a string, got a number"),
    ({SESSION_KEY: None}, "round field 'session' (the session that measured it) must be a string, got null"),
    ({SESSION_KEY: "s", COMMIT_KEY: ["abc"]},
     "round field 'commit' (the commit measured) must be a string or null, got a list"),
    ({SESSION_KEY: "s", COMMIT_KEY: True},
     "round field 'commit' (the commit measured) must be a string or null, got a boolean"),
])
def test_malformed_tags_are_rejected_naming_the_entry(store: BaselineStore, tags: dict[str, object],
                                                      problem: str) -> None:
    assert round_problem({**ROUND, SESSION_KEY: "s", COMMIT_KEY: None}) is None
    assert round_problem({**ROUND, SESSION_KEY: "s", COMMIT_KEY: SHA}) is None
    assert round_problem({**ROUND, **tags}) == problem
    rec = BaselineRecord(HERE, CONFIG, [ROUND, {**ROUND, **tags}], {}, "2024-05-01T00:00:00Z")
    store.save(MODULE, {KEY: rec}, KEYS)
    with pytest.raises(BaselineFileError) as excinfo:
        store.lookup_reports(MODULE, "test_mlp[small]", "forward", [report(1000.0)], HERE, KEYS)
    assert str(excinfo.value) == (f"baseline file {store.path_for(MODULE)} is unusable: "
                                  f"entries[{KEY!r}][0].rounds[1]: {problem}. To fix it, {ENTRY_FIX_HINT}")


# --- the commit -----------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    return root


def test_current_commit_is_the_head_of_the_repository(repo: Path) -> None:
    assert current_commit(repo) is None  # no commit yet
    (repo / "a.txt").write_text("a\n", encoding="utf-8")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "a")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "sub").mkdir()
    assert current_commit(repo) == head and re.fullmatch(r"[0-9a-f]{40}", head)
    assert current_commit(repo / "sub") == head


def test_current_commit_is_none_outside_git_or_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above tmp_path counts
    assert current_commit(outside) is None
    assert current_commit(tmp_path / "missing") is None  # a folder that does not exist: no raise

    def hangs(*args: object, **kwargs: object) -> object:
        assert kwargs["stdin"] is subprocess.DEVNULL and kwargs["timeout"] == environment.GIT_TIMEOUT_S
        raise subprocess.TimeoutExpired("git", environment.GIT_TIMEOUT_S)

    monkeypatch.setattr(subprocess, "run", hangs)
    assert current_commit(outside) is None
    monkeypatch.undo()
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert current_commit(outside) is None


# --- the session that saves -----------------------------------------------------------------------


def _session(root: Path, *measurements: Measurement) -> NpfSession:
    config = SimpleNamespace(rootpath=root, invocation_params=SimpleNamespace(dir=root))
    session = NpfSession(config, Settings(save_baseline=True))  # type: ignore[arg-type]
    session.measurements = list(measurements)
    return session


def _measurement(verdict: str, improved: bool = False, compared: bool = True, test: str = "test_a") -> Measurement:
    judgements = [{"metric": "throughput", "verdict": verdict, "improved": improved}] if compared else []
    outcome: dict[str, Any] = {"config_key": "b1-n2-w1-p1", "verdict": verdict if compared else "no baseline",
                               "judgements": judgements}
    return Measurement(nodeid=f"test_m.py::{test}", name="default", device_type="cpu", fingerprint=HERE,
                       verdict=outcome["verdict"], reports=[report(1000.0, 1010.0)], outcomes=[outcome])


def _stored(root: Path, test: str = "test_a") -> list[dict[str, Any]]:
    doc = json.loads((root / ".neuronperf" / "baselines" / "test_m.json").read_text(encoding="utf-8"))
    rounds: list[dict[str, Any]] = doc["entries"][f"{test}::default::b1-n2-w1-p1"][0]["rounds"]
    return rounds


def test_the_session_tags_every_round_with_one_stamp_and_its_commit(repo: Path) -> None:
    (repo / "a.txt").write_text("a\n", encoding="utf-8")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "a")
    head = _git(repo, "rev-parse", "HEAD")
    session = _session(repo, _measurement("pass", compared=False, test="test_a"),
                       _measurement("pass", compared=False, test="test_b"))
    session._save_baselines()
    assert session.errors == []
    rounds = _stored(repo, "test_a") + _stored(repo, "test_b")
    assert {r[COMMIT_KEY] for r in rounds} == {head}
    stamps = {r[SESSION_KEY] for r in rounds}
    assert len(stamps) == 1  # one session id for every entry the session saved
    doc = json.loads((repo / ".neuronperf" / "baselines" / "test_m.json").read_text(encoding="utf-8"))
    assert {rec["saved_at"] for recs in doc["entries"].values() for rec in recs} == stamps
    assert session.measurements[0].reports[0]["rounds"][0].keys() == ROUND.keys()  # the results stay untagged


def test_outside_git_the_commit_is_null(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    session = _session(tmp_path, _measurement("pass", compared=False))
    session._save_baselines()
    assert [r[COMMIT_KEY] for r in _stored(tmp_path)] == [None, None]


@pytest.mark.parametrize(("verdict", "improved", "compared", "accumulates"), [
    ("pass", False, True, True),
    ("inconclusive", False, True, True),  # a noisy machine: no change found, so the sessions add up
    ("fail", False, True, False),
    ("pass", True, True, False),  # faster beyond the tolerance: a new normal
    ("inconclusive", True, True, False),
    ("pass", False, False, False),  # never compared (no baseline yet)
])
def test_rounds_accumulate_only_when_the_comparison_found_no_change(
        tmp_path: Path, verdict: str, improved: bool, compared: bool, accumulates: bool) -> None:
    m = _measurement(verdict, improved, compared)
    entry = _session(tmp_path)._baseline_entry(m, report(1000.0), m.outcomes[0], "2024-05-01T00:00:00Z", None)
    assert entry is not None
    key, rec, keep = entry
    assert key == "test_a::default::b1-n2-w1-p1" and keep is accumulates
    assert rec.saved_at == "2024-05-01T00:00:00Z"
    assert [(r[SESSION_KEY], r[COMMIT_KEY]) for r in rec.rounds] == [("2024-05-01T00:00:00Z", None)]


def test_a_fail_from_an_absolute_limit_replaces_the_rounds(tmp_path: Path) -> None:
    m = _measurement("pass")
    outcome = {**m.outcomes[0], "verdict": "fail", "limit_failures": ["p99 above 1 ms"]}
    entry = _session(tmp_path)._baseline_entry(m, report(1000.0), outcome, "2024-05-01T00:00:00Z", None)
    assert entry is not None and entry[2] is False


# --- whole pytest sessions ------------------------------------------------------------------------

SLEEPER = """
import time
import torch

class Sleeper(torch.nn.Module):
    def forward(self, x):
        time.sleep(0.001)  # sleeping, not spinning: the service time holds while other tests load the CPU
        return x

def test_sleep(npf_bench):
    npf_bench(Sleeper, torch.zeros(1, 1), n_models=1, workers_per_model=1)
"""


@pytest.mark.slow
@pytest.mark.usefixtures("no_leftover_children")
def test_two_saving_sessions_leave_two_sessions_of_rounds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_perf=SLEEPER)
    # A wide tolerance: the second save must find no change (pass, or inconclusive on too few p99
    # samples in such short rounds) for its rounds to join the first's, whatever else the machine runs.
    pytester.makeini("[pytest]\nnpf_rounds = 3\nnpf_tolerance = 90%\n")
    path = pytester.path / ".neuronperf" / "baselines" / "test_perf.json"
    entry = "test_sleep::default::b1-n1-w1-p1"
    saved = []
    for _ in range(2):
        pytester.runpytest_subprocess("-p", "no:cacheprovider", "--npf-save-baseline",
                                      "--npf-duration=0.6").assert_outcomes(passed=1)
        (rec,) = json.loads(path.read_text(encoding="utf-8"))["entries"][entry]
        saved.append(rec)
    first, second = saved
    assert {r[SESSION_KEY] for r in first["rounds"]} == {first["saved_at"]}
    # However many rounds the second session ran, they follow the first session's, which keep their tags.
    kept, added = second["rounds"][: len(first["rounds"])], second["rounds"][len(first["rounds"]):]
    assert kept == first["rounds"] and added
    assert {r[SESSION_KEY] for r in added} == {second["saved_at"]} != {first["saved_at"]}
    assert all(r[COMMIT_KEY] is None or re.fullmatch(r"[0-9a-f]{40}", r[COMMIT_KEY]) for r in second["rounds"])
