"""Run the real plugin in a child pytest and account for every process it started.

The child runs in a session of its own (``start_new_session``), so everything it
starts (forkserver, resource tracker, model copies, and their own children)
carries its session id, even after being re-parented when the child dies. That
is what lets a test say "nothing was left behind" without trusting the process
tree of a pytest that is already gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Plugins that only slow the child down (their startup and exit are not what is measured here).
QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")
# A quick, valid marker configuration: one copy, one worker, a fraction of a second, one round.
QUICK = 'inputs=torch.zeros(1, 4), duration=0.2, n_models=1, workers_per_model=1, warmup=1, rounds=1'
HEADER = "import pytest\nimport torch\n\nfrom tests.reliability import models as m\n\n"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment, with the repository importable (children import tests.reliability.models)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def session_processes(sid: int) -> set[int]:
    """Live (non-zombie) processes of session ``sid``."""
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat(int(name))
        if fields is not None and fields[0] != "Z" and int(fields[3]) == sid:
            found.add(int(name))
    return found


def alive(pids: Iterable[int]) -> set[int]:
    out = set()
    for pid in pids:
        fields = _stat(pid)
        if fields is not None and fields[0] != "Z":
            out.add(pid)
    return out


def wait_gone(pids: Iterable[int] | None, sid: int | None = None, timeout: float = 10.0) -> tuple[set[int], float]:
    """Wait until ``pids`` (or, with ``sid``, every process of that session) are gone.

    Returns what is still alive at the end (empty on success) and how long it took.
    """
    start = time.monotonic()
    while True:
        left = session_processes(sid) if sid is not None else alive(pids or ())
        if not left or time.monotonic() - start > timeout:
            return left, time.monotonic() - start
        time.sleep(0.02)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


@dataclass
class Run:
    """A finished child pytest: its result, how long it ran, and what it left running."""

    result: pytest.RunResult
    seconds: float
    leftovers: set[int] = field(default_factory=set)

    @property
    def output(self) -> str:
        return "\n".join(self.result.outlines + self.result.errlines)

    def describe_leftovers(self) -> str:
        return "; ".join(f"{pid}: {cmdline(pid)}" for pid in sorted(self.leftovers))


@dataclass
class Child:
    """A child pytest that is running: its process and where its output goes."""

    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    started: float
    tmpdir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start(pytester: pytest.Pytester, *args: str, env: Mapping[str, str] | None = None) -> Child:
    """Start a child pytest in its own session, in the pytester directory; output goes to files there."""
    tag = time.monotonic_ns()
    basetemp = pytester.path.parent / f"{pytester.path.name}-basetemp-{tag}"
    stdout, stderr = pytester.path / f"stdout-{tag}.txt", pytester.path / f"stderr-{tag}.txt"
    # A private temp folder, and a benchmark lock of the child's own: the real lock is one per
    # machine, and would queue the child behind unrelated benchmark runs on this machine (tests
    # that are about that lock set PYTEST_NEURONPERF_BENCHMARK_LOCK themselves).
    tmpdir = Path(tempfile.mkdtemp(prefix="npfrel-"))
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", f"--basetemp={basetemp}", *QUIET_PLUGINS, *args],
            cwd=pytester.path, env=child_env({"TMPDIR": str(tmpdir),
                                             "PYTEST_NEURONPERF_BENCHMARK_LOCK": str(tmpdir / "benchmark.lock"),
                                             **(env or {})}), stdout=out, stderr=err,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_sigint,
        )
    return Child(proc, stdout, stderr, time.monotonic(), tmpdir)


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored; the
    # child must react to Ctrl-C as a user's pytest does, whoever started this one.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(child: Child, timeout: float = 120.0, linger: float = 10.0) -> Run:
    """Wait for the child, then for its whole session to end (up to ``linger`` seconds)."""
    try:
        child.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_session(child)
        raise
    seconds = time.monotonic() - child.started
    leftovers, _ = wait_gone(None, sid=child.pid, timeout=linger)
    out = child.stdout.read_text(errors="replace").splitlines()
    err = child.stderr.read_text(errors="replace").splitlines()
    return Run(pytest.RunResult(child.proc.returncode, out, err, seconds), seconds, leftovers)


def run(pytester: pytest.Pytester, *args: str, env: Mapping[str, str] | None = None,
        timeout: float = 120.0) -> Run:
    """Run a child pytest to the end; like ``pytester.runpytest_subprocess`` plus a process account."""
    child = start(pytester, *args, env=env)
    try:
        return finish(child, timeout)
    finally:
        kill_session(child)


def kill_session(child: Child) -> None:
    """Last-resort cleanup so a failing test cannot leave its child's processes (or temp folder) behind."""
    for pid in session_processes(child.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    if child.proc.poll() is None:
        child.proc.wait()
    shutil.rmtree(child.tmpdir, ignore_errors=True)


def wait_for_file(path: Path, child: Child, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.proc.poll() is not None:
            raise AssertionError(f"the child pytest exited (code {child.proc.returncode}) before {path.name} "
                                 f"appeared:\n{child.stdout.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout:g}s")
        time.sleep(0.02)


def copies_of(sid: int, pytest_pid: int) -> set[int]:
    """The model copies of a running child pytest: processes of its session that are not its own children."""
    out = set()
    for pid in session_processes(sid):
        fields = _stat(pid)
        if pid != pytest_pid and fields is not None and int(fields[1]) != pytest_pid:  # [1]: the parent
            out.add(pid)
    return out


def parent_of(pid: int) -> int | None:
    """``pid``'s parent, from /proc; None when it is gone."""
    fields = _stat(pid)
    return int(fields[1]) if fields is not None else None


def failure_sections(output: str) -> dict[str, str]:
    """Test name -> the text of its failure section in a child pytest's output."""
    import re

    parts = re.split(r"_{3,} (test_\w+) _{3,}", output)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def call_durations(output: str) -> dict[str, float]:
    """Test name -> seconds of its call phase, from a child pytest run with ``--durations=0 -vv``."""
    import re

    return {m.group(2): float(m.group(1)) for m in re.finditer(r"([\d.]+)s call\s+\S+::(\w+)", output)}


def warnings_summary(output: str) -> str:
    """The ``warnings summary`` section of a child pytest's output ('' when there is none)."""
    start = output.find("warnings summary")
    if start < 0:
        return ""
    end = output.find("-- Docs:", start)
    return output[start:end if end > 0 else None]
