"""Locks that every writer really shares, whatever its TMPDIR or user (issue 12, item 2).

Baseline saves lock the folder the baseline file lives in; benchmarks lock one fixed file,
/tmp/pytest-neuronperf-benchmark.lock (mode 0666). Before, both lived in the temporary folder,
so sessions with different TMPDIRs (per-job temp folders, containers sharing a checkout) lost
each other's baseline entries and measured on the same cores at once, and a second Unix user
could not create its lock at all.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from pytest_neuronperf._util.filelock import BENCHMARK_LOCK_ENV, FileLock, LockTimeoutError, benchmark_lock_path
from pytest_neuronperf.baselines.schema import parse_baseline
from pytest_neuronperf.baselines.store import BaselineStore, lock_path
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS
from tests.reliability import harness, saver

# The machine-wide lock, not whatever a suite that runs this file may have chosen for its children.
REAL_BENCHMARK_LOCK = {BENCHMARK_LOCK_ENV: ""}


@pytest.fixture
def tmpdirs() -> Iterator[list[Path]]:
    """Short private temp folders, one per process that needs its own TMPDIR."""
    made = [Path(tempfile.mkdtemp(prefix=f"npft{i}-")) for i in range(4)]
    yield made
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def _saver(tmpdir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = harness.child_env({"TMPDIR": str(tmpdir)})
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.saver", *args], cwd=harness.REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_savers_with_different_tmpdirs_keep_every_entry(tmp_path: Path, tmpdirs: list[Path]) -> None:
    procs = [_saver(tmpdirs[n], "add", str(tmp_path), f"proc{n}", "25") for n in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    baseline = BaselineStore(tmp_path).load(saver.MODULE)
    expected = {f"proc{n}-{i}::default::b1-n1-w1-p1" for n in range(4) for i in range(25)}
    assert set(baseline.entries) == expected, f"lost: {sorted(expected - set(baseline.entries))[:10]}"
    for folder in tmpdirs:
        assert not any(folder.iterdir()), f"a lock was made in {folder}: {sorted(os.listdir(folder))}"


def _openers(path: Path, pids: set[int]) -> set[int]:
    """The processes among ``pids`` that have ``path`` open: to lock it, which is all these tests' children open it for.

    (A saver polls for its lock, so it never shows as a waiter in /proc/locks; an open descriptor shows.)
    """
    target = os.path.realpath(path)
    found = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    found.add(pid)
            except OSError:
                continue
    return found


def _wait_for_waiter(path: Path, child: harness.Child, timeout: float = 300.0) -> None:
    """Return once the child pytest (or a process of its session) is trying to take the lock held on ``path``."""
    deadline = time.monotonic() + timeout
    while not _openers(path, harness.session_processes(child.pid) | {child.pid}):
        if child.proc.poll() is not None:
            raise AssertionError(f"the child pytest finished (code {child.proc.returncode}) without waiting "
                                 f"for the lock on {path}:\n{child.stdout.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the child pytest did not wait on {path} within {timeout:g}s")
        time.sleep(0.02)


ONE_TEST = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_it():
    pass
"""


def test_a_session_with_another_tmpdir_waits_for_a_save_in_progress(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_locked=ONE_TEST)
    store = BaselineStore(pytester.path / ".neuronperf" / "baselines")
    path = store.path_for("test_locked.py")
    path.parent.mkdir(parents=True)
    # The test holds the lock as a session saving at that moment would, with its own TMPDIR;
    # the child gets another (harness.start gives every child a private one).
    done = _run_behind(lock_path(path), pytester, "--npf-save-baseline", timeout=60,
                       check=lambda: not path.exists())
    assert done.result.ret == 0, done.output
    assert list(parse_baseline(path.read_bytes(), path).entries) == ["test_it::default::b1-n1-w1-p1"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".lock")], "a lock file in the baseline folder"


def _run_behind(lock: Path, pytester: pytest.Pytester, *args: str, timeout: float,
                env: Mapping[str, str] | None = None, check: Callable[[], bool] = lambda: True) -> harness.Run:
    """Hold ``lock``, start a child session, see it wait for the lock (and ``check`` hold meanwhile),
    release the lock and let the child finish."""
    with FileLock(lock, timeout=timeout):
        child = harness.start(pytester, *args, env=env)
        try:
            _wait_for_waiter(lock, child)
            assert check(), "the child went on while another process held the lock"
        except BaseException:
            harness.kill_session(child)
            raise
    try:
        return harness.finish(child)
    finally:
        harness.kill_session(child)


def _lock_path_with(tmpdir: Path) -> str:
    env = {k: v for k, v in harness.child_env({"TMPDIR": str(tmpdir)}).items() if k != BENCHMARK_LOCK_ENV}
    out = subprocess.run([sys.executable, "-c", "from pytest_neuronperf._util.filelock import benchmark_lock_path; "
                          "print(benchmark_lock_path())"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_benchmark_lock_does_not_depend_on_tmpdir(tmpdirs: list[Path]) -> None:
    paths = {_lock_path_with(folder) for folder in tmpdirs[:2]}
    assert len(paths) == 1, paths
    (path,) = paths
    assert not any(path.startswith(str(folder)) for folder in tmpdirs)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666, "other users could not open the benchmark lock"


def test_a_session_with_another_tmpdir_waits_for_a_benchmark_in_progress(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_queued=ONE_TEST)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(BENCHMARK_LOCK_ENV, raising=False)
        machine_lock = benchmark_lock_path()
    # Held as a benchmark of another session (this process, this TMPDIR) holds it; other
    # sessions on this machine wait meanwhile, which is what the lock is for.
    done = _run_behind(Path(machine_lock), pytester, env=REAL_BENCHMARK_LOCK, timeout=300)
    assert done.result.ret == 0, done.output


# --- another Unix user ------------------------------------------------------------------------------

NOBODY = 65534


def _as_nobody(work: str) -> int:
    """Fork, become the unprivileged user, run ``work``; returns the child's exit status (0: it worked)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = _WORK[work]()
        except BaseException as exc:
            os.write(2, f"as uid {NOBODY}: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


_SHARED: dict[str, str] = {}


def _nobody_saves() -> int:
    BaselineStore(_SHARED["root"]).save(saver.MODULE, {"nobody::default::b1-n1-w1-p1": saver.record(2, rounds=1)},
                                        DEFAULT_FINGERPRINT_KEYS)
    return 0


def _nobody_is_excluded_from_the_benchmark_lock() -> int:
    os.environ.pop(BENCHMARK_LOCK_ENV, None)
    try:
        FileLock(benchmark_lock_path(), timeout=0).acquire()
    except LockTimeoutError:
        return 0  # the lock the other user holds is the one this user would take: excluded, as it must be
    return 3


_WORK = {"save": _nobody_saves, "benchmark": _nobody_is_excluded_from_the_benchmark_lock}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as a second user")
def test_a_second_unix_user_shares_both_locks() -> None:
    shared = Path(tempfile.mkdtemp(prefix="npf-users-"))
    try:
        shared.chmod(0o777)
        _SHARED["root"] = str(shared / "baselines")
        store = BaselineStore(_SHARED["root"])
        store.save(saver.MODULE, {"root::default::b1-n1-w1-p1": saver.record(1, rounds=1)}, DEFAULT_FINGERPRINT_KEYS)
        path = store.path_for(saver.MODULE)
        for folder in (shared / "baselines", path.parent):
            folder.chmod(0o777)  # a checkout both users may write
        path.chmod(0o666)
        assert _as_nobody("save") == 0, "a second user could not save into the shared baseline folder"
        assert set(store.load(saver.MODULE).entries) == {"root::default::b1-n1-w1-p1", "nobody::default::b1-n1-w1-p1"}

        with pytest.MonkeyPatch.context() as mp:
            mp.delenv(BENCHMARK_LOCK_ENV, raising=False)
            machine_lock = benchmark_lock_path()
        with FileLock(machine_lock, timeout=300):
            assert _as_nobody("benchmark") == 0, "the second user's benchmarks do not wait for this user's"
    finally:
        shutil.rmtree(shared, ignore_errors=True)
