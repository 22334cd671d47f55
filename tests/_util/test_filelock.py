"""FileLock on lock files and folders, and the machine-wide benchmark lock (issue 12, item 2)."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

import pytest

from pytest_neuronperf._util import filelock
from pytest_neuronperf._util.filelock import (
    BENCHMARK_LOCK_ENV,
    FOLDER_FALLBACK_NAME,
    FileLock,
    LockTimeoutError,
    benchmark_lock_path,
    open_lock_file,
)


def test_a_lock_file_gets_its_mode_despite_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with FileLock(tmp_path / "shared.lock", mode=0o666):
            pass
        with FileLock(tmp_path / "private.lock"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "shared.lock").st_mode) == 0o666
    assert stat.S_IMODE(os.stat(tmp_path / "private.lock").st_mode) == 0o644


def test_a_folder_can_be_locked_and_excludes_a_second_holder(tmp_path: Path) -> None:
    with FileLock(tmp_path) as held:
        assert held.locked
        with pytest.raises(LockTimeoutError, match="within 0 s"):
            FileLock(tmp_path, timeout=0).acquire()
    with FileLock(tmp_path, timeout=0):
        pass
    assert os.listdir(tmp_path) == []  # locking a folder leaves nothing in it


def test_where_a_folder_cannot_be_locked_a_file_inside_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_flock = fcntl.flock

    def nfs_like(fd: int, operation: int) -> None:
        # NFS emulates flock with byte-range locks, which refuse a read-only descriptor such as a folder's.
        if stat.S_ISDIR(os.fstat(fd).st_mode) and operation & fcntl.LOCK_EX:
            raise OSError(errno.EBADF, "Bad file descriptor")
        real_flock(fd, operation)

    monkeypatch.setattr(filelock.fcntl, "flock", nfs_like)
    with FileLock(tmp_path, timeout=1):
        assert (tmp_path / FOLDER_FALLBACK_NAME).exists()
        with pytest.raises(LockTimeoutError):
            FileLock(tmp_path, timeout=0).acquire()


def test_a_lock_file_this_user_cannot_write_is_opened_read_only(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "theirs.lock"
    path.write_bytes(b"")
    real_open = os.open

    def as_another_user(file: str, flags: int, mode: int = 0o777) -> int:
        if file == str(path) and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", file)
        return real_open(file, flags, mode)

    monkeypatch.setattr(filelock.os, "open", as_another_user)
    fd = open_lock_file(str(path))
    try:
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # flock needs no write access
    finally:
        os.close(fd)


def test_the_benchmark_lock_is_one_fixed_path_whatever_tmpdir_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BENCHMARK_LOCK_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(filelock.tempfile, "tempdir", None)  # tempfile caches what it found first
    path = benchmark_lock_path()
    assert path == "/tmp/pytest-neuronperf-benchmark.lock"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    monkeypatch.setenv(BENCHMARK_LOCK_ENV, str(tmp_path / "mine.lock"))
    assert benchmark_lock_path() == str(tmp_path / "mine.lock")


def test_without_a_writable_tmp_the_benchmark_lock_falls_back_to_a_per_user_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BENCHMARK_LOCK_ENV, raising=False)
    monkeypatch.setattr(filelock, "SHARED_LOCK_DIR", str(tmp_path / "missing"))
    monkeypatch.setattr(filelock.tempfile, "tempdir", str(tmp_path))
    assert benchmark_lock_path() == str(tmp_path / f"pytest-neuronperf-{os.getuid()}.lock")
