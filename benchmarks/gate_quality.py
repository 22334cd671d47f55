"""Gate quality under a noisy neighbour, per mode: false alarms, detection of +10%, inconclusive, rounds, wall.

    python benchmarks/gate_quality.py                  # the full trial, every mode (1.5-2.5 h on 2 cores)
    python benchmarks/gate_quality.py --budget-min 60  # the same, no new session started after 60 min
    python benchmarks/gate_quality.py --quick          # a smoke test: tiny counts at --duration 1 (3-6 min)
    python benchmarks/gate_quality.py --modes against,stored-quiet --aa 100 --ab 40 --json verdicts.json

A synthetic model busy-waits for NPF_SERVICE_US x FACTOR microseconds per inference (compute-like);
FACTOR = 1.0 is a constant in the model's code, committed in a temporary git repository, and the
+10% condition edits the working tree to FACTOR = 1.1 (uncommitted; restored afterwards), so every
mode sees the same change in code. While comparisons run, a noisy neighbour (one burner process per
CPU, benchmarks/noisy_neighbour.py) burns CPU with a duty cycle drawn per comparison from a seeded
RNG and jittered every ~2 s within its range. Modes:

* stored-quiet: a baseline saved on the quiet machine (no neighbour, --npf-save-baseline), then
  comparisons with the neighbour on;
* stored-sessions: a baseline saved in 3 sessions, each under another duty cycle (rounds accumulate
  tagged by session, each save capped at --npf-rounds rounds), then comparisons with the neighbour on;
* against: `pytest --npf-against=HEAD`, the working tree and HEAD measured interleaved, no baseline;
* pytest-benchmark: saved once quiet, then `--benchmark-compare --benchmark-compare-fail=mean:5%`.

One pytest session holds several comparisons (--per-session K test ids, each its own comparison and
verdict, read from --npf-json); a stored mode saves a baseline for each of its K ids once, and its
sessions reuse them. Wall per comparison = session wall / ids in the session. The comparison
sessions of all modes and both conditions run in one seeded random order, so drift in the machine
falls on every mode alike, and a run cut short by --budget-min (or Ctrl-C, which still stops the
neighbour and prints the table so far) loses about the same share of every mode. A mode whose
pytest cannot run (such as "unrecognized arguments: --npf-against=HEAD" before that flag exists)
is reported as not run, and the others go on.

Cost, measured on 2 cores at --duration 5 under the neighbour (with other jobs sharing the machine,
so an upper end): about 25 s per stored comparison, 45 s per against comparison (both sides),
7-16 s per pytest-benchmark comparison, plus about 10 min of baseline saves, so the defaults take
well over an hour; --budget-min caps that.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from noisy_neighbour import PERIOD_S, REDRAW_S, Neighbour

from pytest_neuronperf.config.options import DEFAULT_ROUNDS

MODES = ("stored-quiet", "stored-sessions", "against", "pytest-benchmark")
UNCHANGED, SLOWER = "unchanged", "+10%"
FACTORS = {UNCHANGED: 1.0, SLOWER: 1.1}
SAVE_SESSIONS = 3  # stored-sessions: the baseline's sessions
PB_RULE = "mean:5%"
PB_PERCENT = 5.0
VERDICTS = ("pass", "fail", "inconclusive")

MODELS = '''import os
import time

import torch

FACTOR = 1.0


class BusyWait(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ns = int(float(os.environ["NPF_SERVICE_US"]) * 1000 * FACTOR)

    def forward(self, x):
        end = time.perf_counter_ns() + self.ns
        while time.perf_counter_ns() < end:
            pass
        return x
'''

OURS = '''import os

import pytest
import torch
from gq_models import BusyWait


@pytest.mark.parametrize("i", range(int(os.environ.get("GQ_K", "1"))))
@pytest.mark.neuron_benchmark(model=BusyWait, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1)
def test_gate(i):
    pass
'''

THEIRS = '''import os

import pytest
import torch
from gq_models import BusyWait


@pytest.mark.parametrize("i", range(int(os.environ.get("GQ_K", "1"))))
def test_pb(benchmark, i):
    model, x = BusyWait(), torch.zeros(1, 1)
    with torch.inference_mode():
        benchmark(model, x)
'''

# Each comparison (test id) gets its own duty cycle, drawn from the seeded RNG as the test starts.
CONFTEST = '''import json
import os
import random


def pytest_runtest_setup(item):
    ctl, draw = os.environ.get("GQ_NEIGHBOUR_CTL"), os.environ.get("GQ_DRAW")
    if not ctl or not draw:
        return
    lo, hi, jitter = (float(os.environ[k]) for k in ("GQ_DUTY_LO", "GQ_DUTY_HI", "GQ_JITTER"))
    duty = random.Random(draw + "|" + item.nodeid).uniform(lo, hi)
    with open(ctl + ".tmp", "w") as f:
        json.dump({"duty": duty, "lo": lo, "hi": hi, "jitter": jitter}, f)
    os.replace(ctl + ".tmp", ctl)
    with open(os.environ["GQ_DUTY_LOG"], "a") as f:
        f.write(json.dumps({"nodeid": item.nodeid, "duty": duty}) + "\\n")
'''

GITIGNORE = ".neuronperf/\n__pycache__/\n/bl-*/\n/pb/\n"


class PytestError(Exception):
    """A pytest session that did not run to a result (usage error, internal error, interrupted)."""


@dataclass
class Comparison:
    mode: str
    condition: str
    nodeid: str
    verdict: str
    rounds: int | None  # rounds measured (per side with --npf-against); None where the mode has none
    # Measured change per metric, a fraction of the baseline (reference) value: throughput, p50, p99 (the
    # plugin's judgements) or mean (pytest-benchmark's time); slower is throughput < 0, the others > 0.
    changes: dict[str, float]
    duty: float | None  # the neighbour's duty cycle drawn for it
    session: int
    wall_s: float  # its session's wall / the comparisons in that session
    # The plugin's verdict per metric (throughput, p50, p99), to tell which metric left a comparison undecided.
    metric_verdicts: dict[str, str] = field(default_factory=dict)


@dataclass
class ModeResult:
    name: str
    comparisons: list[Comparison] = field(default_factory=list)
    setup_s: float = 0.0
    setup_note: str = ""
    error: str | None = None

    def of(self, condition: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.condition == condition]


@dataclass
class Job:
    mode: str
    condition: str
    k: int


def describe_failure(rc: int, output: str, what: str) -> str:
    """One line on why a pytest session did not come to a result."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    unrecognized = next((line for line in lines if "unrecognized arguments" in line), None)
    if unrecognized is not None:
        flags = unrecognized.split("unrecognized arguments:", 1)[1].strip()
        return f"this pytest does not know {flags} yet (pytest exit {rc}: {unrecognized})"
    errors = [line for line in lines if re.search(r"\b(ERROR|error|Error)\b", line)]
    tail = " | ".join((errors or lines)[-4:])
    return f"{what}: pytest exit {rc}: {tail[-600:] or '(no output)'}"


class Project:
    """The benchmark project: a temporary git repository with the model, the tests and a conftest."""

    def __init__(self, root: Path, out: Path, args: argparse.Namespace, neighbour: Neighbour) -> None:
        self.root, self.out, self.args, self.neighbour = root, out, args, neighbour
        root.mkdir(parents=True)
        out.mkdir(parents=True)
        for name, text in (("gq_models.py", MODELS), ("test_ours.py", OURS), ("test_theirs.py", THEIRS),
                           ("conftest.py", CONFTEST), (".gitignore", GITIGNORE)):
            (root / name).write_text(text)
        self.factor = 1.0
        self.runs = 0
        git = ["git", "-c", "user.name=x", "-c", "user.email=x@y", "-c", "commit.gpgsign=false"]
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-q", "-m", "gate quality base"]):
            subprocess.run(cmd, cwd=root, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def set_factor(self, factor: float) -> None:
        """FACTOR in the working tree's model code (committed: 1.0)."""
        if factor == self.factor:
            return
        path = self.root / "gq_models.py"
        text, n = re.subn(r"^FACTOR = .*$", f"FACTOR = {factor}", path.read_text(), flags=re.MULTILINE)
        if n != 1:
            raise RuntimeError("gq_models.py lost its FACTOR line")
        path.write_text(text)
        # Same size, same second: a stale .pyc would keep the old FACTOR (children also never write them).
        shutil.rmtree(self.root / "__pycache__", ignore_errors=True)
        self.factor = factor

    def pytest(self, args: Sequence[str], k: int, draw: str | None, what: str) -> tuple[int, float, str]:
        """Run pytest on ``k`` test ids; (exit code, wall seconds, output). PytestError unless 0 or 1."""
        env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
        env.update(NPF_SERVICE_US=str(self.args.service_us), PYTHONDONTWRITEBYTECODE="1", GQ_K=str(k),
                   GQ_NEIGHBOUR_CTL=str(self.neighbour.ctl), GQ_DUTY_LO=str(self.args.duty_lo),
                   GQ_DUTY_HI=str(self.args.duty_hi), GQ_JITTER=str(self.args.jitter),
                   GQ_DUTY_LOG=str(self.out / "duties.jsonl"))
        env.pop("GQ_DRAW", None)
        if draw is not None:
            env["GQ_DRAW"] = draw
        self.runs += 1
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        t = time.perf_counter()
        with subprocess.Popen(cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc:
            try:
                output, _ = proc.communicate()
            except BaseException:
                _stop(proc)
                raise
        wall = time.perf_counter() - t
        (self.out / f"session-{self.runs:04d}.log").write_text(f"$ {' '.join(cmd)}\n{output}")
        if proc.returncode not in (0, 1):
            raise PytestError(describe_failure(proc.returncode, output, what))
        return proc.returncode, wall, output

    def take_duties(self) -> dict[str, float]:
        """The duty cycles the conftest drew since the last call, by test id."""
        log = self.out / "duties.jsonl"
        if not log.exists():
            return {}
        duties = {}
        for line in log.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                duties[str(entry["nodeid"])] = float(entry["duty"])
        log.unlink()
        return duties


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop a pytest child as Ctrl-C would, then for good."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ids(prefix: str, k: int) -> list[str]:
    return [f"{prefix}[{i}]" for i in range(k)]


# test id -> (verdict, rounds, change per metric, verdict per metric)
Found = dict[str, tuple[str, int | None, dict[str, float], dict[str, str]]]


def read_npf(path: Path) -> Found:
    """Test id -> (verdict, rounds measured, change per metric, verdict per metric) from an --npf-json file."""
    if not path.exists():
        return {}
    found: Found = {}
    for m in json.loads(path.read_text()).get("measurements", []):
        nodeid = str(m.get("nodeid") or m.get("test"))
        rounds: int | None = None
        changes: dict[str, float] = {}
        verdicts: dict[str, str] = {}
        for outcome in m.get("outcomes") or []:
            for j in outcome.get("judgements") or []:
                if isinstance(j.get("current_rounds"), int):
                    rounds = max(rounds or 0, j["current_rounds"])
                if isinstance(j.get("metric"), str) and isinstance(j.get("change"), int | float):
                    changes[j["metric"]] = float(j["change"])
                if isinstance(j.get("metric"), str) and isinstance(j.get("verdict"), str):
                    verdicts[j["metric"]] = j["verdict"]
        if rounds is None:
            counts = [len(r["rounds"]) for r in m.get("reports") or [] if isinstance(r.get("rounds"), list)]
            rounds = max(counts) if counts else None
        found[nodeid] = (str(m.get("verdict")), rounds, changes, verdicts)
    return found


def read_pb(path: Path) -> dict[str, float]:
    """Test id -> mean seconds from a pytest-benchmark JSON file."""
    if not path.exists():
        return {}
    return {str(b["fullname"]): float(b["stats"]["mean"]) for b in json.loads(path.read_text()).get("benchmarks", [])}


def baseline_shape(folder: Path) -> str:
    """Rounds and sessions per entry of the stored baselines under ``folder``."""
    rounds, sessions = [], []
    for file in folder.rglob("*.json"):
        for records in json.loads(file.read_text()).get("entries", {}).values():
            for record in records:
                rs = record.get("rounds") or []
                rounds.append(len(rs))
                sessions.append(len({r.get("session") for r in rs}))
    if not rounds:
        return "no baseline entries"
    return (f"{len(rounds)} entries, rounds {min(rounds)}..{max(rounds)} (mean {statistics.fmean(rounds):.1f}), "
            f"sessions {min(sessions)}..{max(sessions)} (mean {statistics.fmean(sessions):.1f})")


class Trial:
    """The modes' saves and comparison sessions on one project and one neighbour."""

    def __init__(self, args: argparse.Namespace, project: Project, neighbour: Neighbour) -> None:
        self.args, self.p, self.neighbour = args, project, neighbour
        self.results = {mode: ModeResult(mode) for mode in args.modes}
        self.sessions = 0
        self.budget_note = ""
        common = [f"--npf-duration={args.duration}"]
        if args.rounds:
            common.append(f"--npf-rounds={args.rounds}")
        if args.tolerance:
            common.append(f"--npf-tolerance={args.tolerance}")
        self.common = common
        self.compare_extra = [f"--npf-max-rounds={args.max_rounds}"] if args.max_rounds else []

    def _ours(self, bdir: str, k: int, draw: str | None, what: str, *extra: str) -> tuple[float, dict[str, Any]]:
        self.sessions += 1
        out = self.p.out / f"npf-{self.sessions:04d}.json"
        _, wall, _ = self.p.pytest(["test_ours.py", "-p", "no:benchmark", f"--npf-json={out}",
                                    f"--npf-baseline-dir={bdir}", *self.common, *extra], k, draw, what)
        return wall, read_npf(out)

    def _theirs(self, k: int, draw: str | None, what: str, *extra: str) -> tuple[int, float, dict[str, float]]:
        self.sessions += 1
        out = self.p.out / f"pb-{self.sessions:04d}.json"
        rc, wall, _ = self.p.pytest(["test_theirs.py", "-p", "no:neuronperf", "--benchmark-storage=file://./pb",
                                     f"--benchmark-max-time={self.args.duration}", "--benchmark-disable-gc",
                                     f"--benchmark-json={out}", *extra], k, draw, what)
        return rc, wall, read_pb(out)

    def _fail(self, mode: str, exc: Exception) -> None:
        self.results[mode].error = str(exc)
        print(f"  !! {mode}: not run: {exc}", flush=True)

    # --- baselines -------------------------------------------------------------------------------

    def save_quiet(self) -> None:
        """stored-quiet and pytest-benchmark baselines, neighbour off."""
        k = self.args.per_session
        if "stored-quiet" in self.results:
            r = self.results["stored-quiet"]
            try:
                wall, _ = self._ours("bl-quiet", k, None, "stored-quiet save", "--npf-save-baseline")
                r.setup_s = wall
                r.setup_note = f"saved quiet in {wall:.0f} s: {baseline_shape(self.p.root / 'bl-quiet')}"
                print(f"  stored-quiet: baseline {r.setup_note}", flush=True)
            except PytestError as exc:
                self._fail("stored-quiet", exc)
        if "pytest-benchmark" in self.results:
            r = self.results["pytest-benchmark"]
            try:
                _, wall, means = self._theirs(k, None, "pytest-benchmark save", "--benchmark-save=base")
                saved = sorted(self.p.root.glob("pb/*/0001_base.json"))
                if not saved or len(means) != k:
                    raise PytestError(f"pytest-benchmark save: expected {k} results in pb/*/0001_base.json, "
                                      f"got {len(means)} ({len(saved)} files)")
                r.setup_s = wall
                r.setup_note = f"saved quiet in {wall:.0f} s: {k} benchmarks ({saved[0].name})"
                print(f"  pytest-benchmark: {r.setup_note}", flush=True)
            except PytestError as exc:
                self._fail("pytest-benchmark", exc)

    def save_sessions(self, duties: Sequence[float]) -> None:
        """stored-sessions: one save per duty cycle, each capped at --npf-rounds rounds, neighbour on."""
        r = self.results["stored-sessions"]
        cap = f"--npf-max-rounds={self.args.rounds or DEFAULT_ROUNDS}"
        try:
            for s, duty in enumerate(duties):
                self.neighbour.set_duty(duty)
                time.sleep(0.5)  # let the burners see it
                wall, _ = self._ours("bl-sessions", self.args.per_session, None,
                                     f"stored-sessions save {s + 1}", "--npf-save-baseline", cap)
                r.setup_s += wall
                print(f"  stored-sessions: save {s + 1}/{len(duties)} at duty {duty:.2f} in {wall:.0f} s", flush=True)
                time.sleep(1.1)  # a session is named by its save's second
        except PytestError as exc:
            self._fail("stored-sessions", exc)
            return
        r.setup_note = (f"saved in {len(duties)} sessions at duty {', '.join(f'{d:.2f}' for d in duties)} in "
                        f"{r.setup_s:.0f} s: {baseline_shape(self.p.root / 'bl-sessions')}")
        print(f"  stored-sessions: baseline {r.setup_note}", flush=True)

    # --- comparisons -----------------------------------------------------------------------------

    def compare(self, job: Job, number: int) -> None:
        r = self.results[job.mode]
        self.p.set_factor(FACTORS[job.condition])
        draw = f"{self.args.seed}:{number}"
        what = f"{job.mode} {job.condition} session"
        if job.mode == "pytest-benchmark":
            rc, wall, means = self._theirs(job.k, draw, what, "--benchmark-compare=0001",
                                           f"--benchmark-compare-fail={PB_RULE}")
            base = read_pb(next(iter(sorted(self.p.root.glob("pb/*/0001_base.json"))), Path("/nonexistent")))
            found: Found = {}
            for nodeid, mean in means.items():
                if nodeid in base and mean > 0:
                    # pytest-benchmark's PercentageRegressionCheck: current / baseline * 100 - 100 > 5.
                    failed = mean / base[nodeid] * 100 - 100 > PB_PERCENT
                    found[nodeid] = ("fail" if failed else "pass", None, {"mean": mean / base[nodeid] - 1})
            fails = sum(v[0] == "fail" for v in found.values())
            if (rc == 1) != (fails > 0):
                print(f"  ?? pytest-benchmark exit {rc} but {fails} fails by its rule here", flush=True)
            expected = ids("test_theirs.py::test_pb", job.k)
        else:
            bdir = {"stored-quiet": "bl-quiet", "stored-sessions": "bl-sessions", "against": "bl-against"}[job.mode]
            extra = ["--npf-against=HEAD"] if job.mode == "against" else []
            wall, found = self._ours(bdir, job.k, draw, what, *extra, *self.compare_extra)
            expected = ids("test_ours.py::test_gate", job.k)
        duties = self.p.take_duties()
        for nodeid in expected:
            verdict, rounds, changes, verdicts = found.get(nodeid, ("error", None, {}, {}))
            r.comparisons.append(Comparison(job.mode, job.condition, nodeid, verdict, rounds, changes,
                                            duties.get(nodeid), number, wall / job.k, verdicts))
        if any(nodeid not in found for nodeid in expected):
            print(f"  ?? {what}: {sum(n not in found for n in expected)} of {job.k} test ids gave no verdict "
                  f"(see {self.p.out}/session-{self.p.runs:04d}.log)", flush=True)


def schedule(args: argparse.Namespace, rng: random.Random) -> list[Job]:
    """Every mode's comparison sessions, in one seeded random order."""
    jobs = []
    for mode in args.modes:
        counts = {UNCHANGED: args.aa, SLOWER: args.ab} if mode == "against" else \
            {UNCHANGED: args.stored_aa, SLOWER: args.stored_ab}
        for condition, n in counts.items():
            for start in range(0, n, args.per_session):
                jobs.append(Job(mode, condition, min(args.per_session, n - start)))
    rng.shuffle(jobs)
    return jobs


def eta(results: dict[str, ModeResult], left: Sequence[Job]) -> str:
    """The progress line's estimate of the time left, from each mode's wall per comparison so far."""
    walls = {m: statistics.fmean(c.wall_s for c in r.comparisons) for m, r in results.items() if r.comparisons}
    if not walls:
        return ""
    fallback = statistics.fmean(walls.values())
    seconds = sum(j.k * walls.get(j.mode, fallback) for j in left if results[j.mode].error is None)
    return f", about {seconds / 60:.0f} min left"


def rate(k: int, n: int) -> str:
    return f"{k}/{n} ({100.0 * k / n:.1f}%)" if n else "-"


def table(results: Sequence[ModeResult]) -> list[str]:
    rows = ["| mode | false alarms (unchanged) | detected (+10%) | inconclusive | mean rounds "
            "| median wall s / comparison |", "|---|---|---|---|---|---|"]
    for r in results:
        if r.error is not None and not r.comparisons:
            rows.append(f"| {r.name} | not run | not run | not run | - | - |")
            continue
        aa, ab = r.of(UNCHANGED), r.of(SLOWER)
        fa, det = sum(c.verdict == "fail" for c in aa), sum(c.verdict == "fail" for c in ab)
        if r.name == "pytest-benchmark":
            inconclusive = f"n/a ({PB_RULE} always decides)"
        elif not r.comparisons:
            inconclusive = "-"
        else:
            n_aa, n_ab = (sum(c.verdict == "inconclusive" for c in cs) for cs in (aa, ab))
            inconclusive = f"{rate(n_aa + n_ab, len(r.comparisons))}: {n_aa} unchanged, {n_ab} +10%"
        rounds = [c.rounds for c in r.comparisons if c.rounds is not None]
        mean_rounds = f"{statistics.fmean(rounds):.1f}" + (" per side" if r.name == "against" else "") \
            if rounds else "n/a"
        wall = f"{statistics.median(c.wall_s for c in r.comparisons):.1f}" if r.comparisons else "-"
        rows.append(f"| {r.name} | {rate(fa, len(aa))} | {rate(det, len(ab))} | {inconclusive} | {mean_rounds} "
                    f"| {wall} |")
    return rows


def notes(results: Sequence[ModeResult]) -> list[str]:
    lines = []
    for r in results:
        if r.error is not None:
            lines.append(f"* {r.name}: {'stopped' if r.comparisons else 'not run'}: {r.error}")
        if r.setup_note:
            lines.append(f"* {r.name} baseline: {r.setup_note}")
        others = [c.verdict for c in r.comparisons if c.verdict not in VERDICTS]
        if others:
            lines.append(f"* {r.name}: other verdicts (counted, never as fail): "
                         + ", ".join(f"{v} {others.count(v)}" for v in sorted(set(others))))
        for condition in FACTORS:
            parts = []
            for metric in ("throughput", "p50", "p99", "mean"):
                changes = [c.changes[metric] for c in r.of(condition) if metric in c.changes]
                if changes:
                    parts.append(f"{metric} {statistics.median(changes):+.1%} "
                                 f"({min(changes):+.1%}..{max(changes):+.1%})")
            if parts:
                lines.append(f"* {r.name} {condition}: measured change, median (range): {', '.join(parts)}")
            undecided = Counter(" + ".join(m for m, v in c.metric_verdicts.items() if v == "inconclusive")
                                for c in r.of(condition) if c.verdict == "inconclusive" and c.metric_verdicts)
            if undecided:
                lines.append(f"* {r.name} {condition}: inconclusive comparisons, by the metrics left undecided: "
                             + ", ".join(f"{k or '(none)'} {n}" for k, n in undecided.most_common()))
    duties = [c.duty for r in results for c in r.comparisons if c.duty is not None]
    if duties:
        lines.append(f"* neighbour duty cycles drawn per comparison: {len(duties)}, "
                     f"{min(duties):.2f}..{max(duties):.2f} (median {statistics.median(duties):.2f})")
    return lines


def targets(results: dict[str, ModeResult]) -> str:
    ab = results.get("against")
    head = "targets (A/B mode `against`): false alarms <= 1%, detection >= 95%, inconclusive <= 10%, " \
           "wall <= 2.5x stored-quiet's"
    if ab is None or not ab.comparisons:
        return f"{head}: not measured" + (f" ({ab.error})" if ab is not None and ab.error else "")
    aa, slow = ab.of(UNCHANGED), ab.of(SLOWER)
    got = []
    if aa:
        fa = sum(c.verdict == "fail" for c in aa) / len(aa)
        got.append(f"false alarms {fa:.1%} {'ok' if fa <= 0.01 else 'MISSED'}")
    if slow:
        det = sum(c.verdict == "fail" for c in slow) / len(slow)
        got.append(f"detection {det:.1%} {'ok' if det >= 0.95 else 'MISSED'}")
    inc = sum(c.verdict == "inconclusive" for c in ab.comparisons) / len(ab.comparisons)
    got.append(f"inconclusive {inc:.1%} {'ok' if inc <= 0.10 else 'MISSED'}")
    quiet = results.get("stored-quiet")
    if quiet is not None and quiet.comparisons:
        ratio = statistics.median(c.wall_s for c in ab.comparisons) / statistics.median(
            c.wall_s for c in quiet.comparisons)
        got.append(f"wall {ratio:.2f}x {'ok' if ratio <= 2.5 else 'MISSED'}")
    else:
        got.append("wall ratio not measured (no stored-quiet comparisons)")
    return f"{head}; got: {', '.join(got)}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of modes (default all: {','.join(MODES)})")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 4 + 2 against, 2 + 2 per other mode, 2 ids a session, --duration 1 "
                         "(each still overridable)")
    ap.add_argument("--aa", type=int, default=None, help="against: comparisons of unchanged code (default 100)")
    ap.add_argument("--ab", type=int, default=None, help="against: comparisons at +10%% (default 40)")
    ap.add_argument("--stored-aa", type=int, default=None,
                    help="stored modes and pytest-benchmark: comparisons of unchanged code, each (default 30)")
    ap.add_argument("--stored-ab", type=int, default=None,
                    help="stored modes and pytest-benchmark: comparisons at +10%%, each (default 20)")
    ap.add_argument("--per-session", type=int, default=None, metavar="K",
                    help="test ids (comparisons) per pytest session, and baselines per stored mode (default 10)")
    ap.add_argument("--duration", type=float, default=None,
                    help="--npf-duration and --benchmark-max-time of every session (default 5)")
    ap.add_argument("--service-us", type=float, default=500.0, help="the model's base service time (default 500)")
    ap.add_argument("--rounds", type=int, default=None, help="--npf-rounds (default: the plugin's)")
    ap.add_argument("--max-rounds", type=int, default=None,
                    help="--npf-max-rounds of the comparisons (per side for against; default: the plugin's)")
    ap.add_argument("--tolerance", default=None, help="--npf-tolerance (default: the plugin's)")
    ap.add_argument("--duty", default="0.2,0.8", metavar="LO,HI", help="neighbour duty-cycle range (default 0.2,0.8)")
    ap.add_argument("--jitter", type=float, default=0.1,
                    help=f"neighbour duty moves by up to this every {REDRAW_S:g} s within a comparison (default 0.1)")
    ap.add_argument("--neighbours", type=int, default=os.cpu_count() or 1,
                    help="burner processes (default one per CPU: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="seeds the duty cycles and the session order (default 1)")
    ap.add_argument("--budget-min", type=float, default=None, metavar="MIN",
                    help="start no comparison session after this many minutes (default: run them all)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every raw verdict to this file")
    args = ap.parse_args(argv)
    quick = {"aa": 4, "ab": 2, "stored_aa": 2, "stored_ab": 2, "per_session": 2, "duration": 1.0}
    full = {"aa": 100, "ab": 40, "stored_aa": 30, "stored_ab": 20, "per_session": 10, "duration": 5.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        ap.error(f"--modes: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODES)}")
    args.modes = [m for m in MODES if m in args.modes]  # the table's order
    try:
        args.duty_lo, args.duty_hi = (float(x) for x in args.duty.split(","))
    except ValueError:
        ap.error(f"--duty: expected LO,HI such as 0.2,0.8, got {args.duty!r}")
    if not 0.0 <= args.duty_lo <= args.duty_hi <= 1.0:
        ap.error(f"--duty: expected 0 <= LO <= HI <= 1, got {args.duty}")
    if args.per_session < 1 or args.neighbours < 0 or min(args.aa, args.ab, args.stored_aa, args.stored_ab) < 0:
        ap.error("--per-session must be at least 1; counts and --neighbours at least 0")
    return args


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the trial like Ctrl-C: the neighbour is stopped and the results so far printed."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, ModeResult], bool]:
    rng = random.Random(args.seed)
    neighbour = Neighbour(tmp, args.neighbours, args.seed, args.duty_lo, args.duty_hi, args.jitter)
    project = Project(tmp / "project", tmp / "out", args, neighbour)
    trial = Trial(args, project, neighbour)
    jobs = schedule(args, rng)
    span = args.duty_hi - args.duty_lo
    strata = list(range(SAVE_SESSIONS))
    rng.shuffle(strata)
    save_duties = [args.duty_lo + (s + rng.random()) / SAVE_SESSIONS * span for s in strata]
    flags = " ".join(trial.common[1:] + trial.compare_extra)
    print(f"# BusyWait {args.service_us:g} us x FACTOR (code constant: 1.0 committed, 1.1 in the working tree "
          f"for +10%), --npf-duration={args.duration:g}, {os.cpu_count()} CPUs" + (f"; {flags}" if flags else ""))
    print(f"# neighbour: {args.neighbours} burner process(es), period {PERIOD_S * 1000:g} ms, duty cycle range "
          f"{args.duty_lo:.2f}..{args.duty_hi:.2f}, drawn per comparison (seed {args.seed}), jitter "
          f"+-{args.jitter:.2f} every {REDRAW_S:g} s within a comparison (clipped to the range)")
    counts = ", ".join(f"{m} {args.aa} + {args.ab}" if m == "against" else f"{m} {args.stored_aa} + {args.stored_ab}"
                       for m in args.modes)
    print(f"# comparisons (unchanged + at +10%): {counts}; {args.per_session} per pytest session, "
          f"{len(jobs)} comparison sessions in a seeded random order", flush=True)
    interrupted = False
    start = time.perf_counter()
    try:
        with neighbour:
            trial.save_quiet()
            neighbour.start(0.5 * (args.duty_lo + args.duty_hi))
            if "stored-sessions" in trial.results:
                trial.save_sessions(save_duties)
            total = sum(j.k for j in jobs)
            done = 0
            for number, job in enumerate(jobs, 1):
                r = trial.results[job.mode]
                if args.budget_min is not None and time.perf_counter() - start > args.budget_min * 60:
                    left = [j for j in jobs[number - 1:] if trial.results[j.mode].error is None]
                    trial.budget_note = (f"--budget-min {args.budget_min:g} reached: {len(left)} of {len(jobs)} "
                                         f"comparison sessions ({sum(j.k for j in left)} comparisons) not run")
                    print(f"  {trial.budget_note}", flush=True)
                    break
                done += job.k
                if r.error is not None:
                    continue
                try:
                    trial.compare(job, number)
                except PytestError as exc:
                    trial._fail(job.mode, exc)
                    continue
                last = r.comparisons[-job.k:]
                counts = ", ".join(f"{v} {sum(c.verdict == v for c in last)}"
                                   for v in sorted({c.verdict for c in last}))
                elapsed = time.perf_counter() - start
                print(f"  [{elapsed / 60:5.1f} min, {done}/{total}{eta(trial.results, jobs[number:])}] {job.mode} "
                      f"{job.condition}: {job.k} in {last[0].wall_s * job.k:.0f} s: {counts}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the neighbour is stopped; results so far:", flush=True)
    finally:
        neighbour.stop()
        project.set_factor(1.0)
    print(f"# {time.perf_counter() - start:.0f} s in all, {project.runs} pytest sessions")
    if trial.budget_note:
        print(f"# {trial.budget_note}")
    return trial.results, interrupted


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="npf-gate-") as tmp:
        results, interrupted = run(args, Path(tmp))
    ordered = [results[m] for m in args.modes]
    print()
    print("\n".join(table(ordered)))
    print()
    print("\n".join(notes(ordered)))
    print(targets(results))
    if args.json is not None:
        args.json.write_text(json.dumps({
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "cpus": os.cpu_count(), "interrupted": interrupted,
            "modes": {r.name: {"error": r.error, "setup_s": r.setup_s, "setup_note": r.setup_note,
                               "comparisons": [asdict(c) for c in r.comparisons]} for r in ordered},
        }, indent=1))
        print(f"raw verdicts written: {args.json}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
