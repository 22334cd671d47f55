"""An exclusive lock between processes, held on a separate lock file (POSIX ``flock``).

The lock lives in its own file rather than on the data file because the data
file is replaced with ``os.replace`` on every write: a lock on the old inode
would protect nothing once the new one is in place.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from types import TracebackType


class LockTimeoutError(TimeoutError):
    """The lock stayed held by another process for longer than the timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"could not lock {path} within {timeout:g} s: another process is holding it")
        self.path = path
        self.timeout = timeout


class FileLock:
    """An exclusive, non-reentrant lock on ``path`` (created if missing, never deleted).

    The lock file is left in place: deleting it while another process waits on
    it would let a third process lock a fresh inode, and two holders would
    each believe they own the lock.

    ``timeout=None`` waits as long as it takes; the kernel drops a lock when its
    holder dies, so a crashed holder never blocks anyone forever.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float | None = None, poll_s: float = 0.02) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.poll_s = poll_s
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this FileLock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if self.timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                self._acquire_polling(fd, self.timeout)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _acquire_polling(self, fd: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(self.path, timeout) from None
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
    """One lock per machine and user: benchmarks never share cores, across xdist workers or sessions."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"pytest-neuronperf-{uid}.lock")
