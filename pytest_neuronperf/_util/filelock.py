"""An exclusive lock between processes, held on a separate lock file or a folder (POSIX ``flock``).

The lock is never taken on a data file itself because the data file is replaced
with ``os.replace`` on every write: a lock on the old inode would protect nothing
once the new one is in place. A folder's inode stays put while files inside it
are replaced, so the baseline store locks the folder a baseline file lives in:
every writer of that file meets there, whatever its ``TMPDIR``, user or
container, and no lock file appears in the committed baseline folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from types import TracebackType
from typing import Final

# File systems that emulate flock with byte-range locks (NFS) cannot lock a descriptor opened
# read-only, which is the only way to open a folder; there a lock file inside the folder is used.
_NO_FOLDER_LOCK: Final = frozenset({errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP})
FOLDER_FALLBACK_NAME: Final = ".pytest-neuronperf.lock"

BENCHMARK_LOCK_ENV: Final = "PYTEST_NEURONPERF_BENCHMARK_LOCK"
BENCHMARK_LOCK_NAME: Final = "pytest-neuronperf-benchmark.lock"
# The machine-wide folder every user can create files in (sticky, so no one can delete another's lock).
SHARED_LOCK_DIR: Final = "/tmp"


class LockTimeoutError(TimeoutError):
    """The lock stayed held by another process for longer than the timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"could not lock {path} within {timeout:g} s: another process is holding it")
        self.path = path
        self.timeout = timeout


def open_lock_file(path: str, mode: int = 0o644) -> int:
    """A descriptor to flock ``path`` with: a folder as it is, a file created with ``mode`` if missing.

    ``mode`` is applied despite the umask, so a lock meant for every user (0o666) is one. An
    existing lock file is opened without ``O_CREAT``: in a sticky world-writable folder such as
    /tmp the kernel refuses ``O_CREAT`` on another user's file (``fs.protected_regular``) even
    when its mode allows writing. A lock file this user may not write is opened read-only, which
    ``flock`` accepts on local file systems.
    """
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_NOCTTY)
        except IsADirectoryError:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError:
            return os.open(path, os.O_RDONLY | os.O_NOCTTY)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOCTTY, mode)
        except FileExistsError:
            continue  # another process created it in between: open theirs
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)
        return fd


class FileLock:
    """An exclusive, non-reentrant lock on ``path``: a lock file (created if missing, never deleted) or a folder.

    The lock file is left in place: deleting it while another process waits on
    it would let a third process lock a fresh inode, and two holders would
    each believe they own the lock.

    ``timeout=None`` waits as long as it takes; the kernel drops a lock when its
    holder dies, so a crashed holder never blocks anyone forever. ``mode`` is the
    permission of a lock file this creates (applied despite the umask).
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float | None = None, poll_s: float = 0.02,
                 mode: int = 0o644) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.poll_s = poll_s
        self.mode = mode
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this FileLock")
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        fd = open_lock_file(self.path, self.mode)
        try:
            self._lock(fd, deadline)
        except LockTimeoutError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _NO_FOLDER_LOCK or not os.path.isdir(self.path):
                raise
            fd = open_lock_file(os.path.join(self.path, FOLDER_FALLBACK_NAME), self.mode)
            try:
                self._lock(fd, deadline)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _lock(self, fd: int, deadline: float | None) -> None:
        if deadline is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(self.path, self.timeout or 0.0) from None
                time.sleep(self.poll_s)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Unlock explicitly: a forked child may share this descriptor, and
            # closing only our copy would keep the lock held on its behalf.
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def benchmark_lock_path() -> str:
    """The one lock per machine that benchmarks hold, so that they never share cores.

    ``/tmp/pytest-neuronperf-benchmark.lock``: a fixed path, whatever ``TMPDIR`` says, so that
    xdist workers, sessions with per-job temp folders and other users of the machine all queue on
    it. It is created here, mode 0o666, so that every user can open it. The environment variable
    ``PYTEST_NEURONPERF_BENCHMARK_LOCK`` names another lock file (a test suite that runs sessions
    which must not wait on the machine's other benchmarks). Where /tmp is not writable and holds
    no lock yet, a per-user lock in the temporary folder is the fallback, which excludes only
    this user's sessions.
    """
    override = os.environ.get(BENCHMARK_LOCK_ENV)
    if override:
        return override  # asked for by name: an unusable one is an error that names it, not a silent fallback
    shared = os.path.join(SHARED_LOCK_DIR, BENCHMARK_LOCK_NAME)
    try:
        fd = open_lock_file(shared, 0o666)
    except OSError:
        pass
    else:
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return shared
        finally:
            os.close(fd)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"pytest-neuronperf-{uid}.lock")
