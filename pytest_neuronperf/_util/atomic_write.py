"""Replacing a file so that readers see the old version or the new one, never a mix.

Baselines, model indexes, result files and compiled artifacts are all written this way: a killed
or failed write leaves the previous file as it was.

Only regular files are replaced. A symbolic link is written through: its target is replaced and
the link stays. A character device or a FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is
written into in place, since renaming over it would replace the device node itself (as root,
``--npf-json=/dev/full`` once replaced the machine's ``/dev/full``). A directory, a block device
or a socket is refused with an error that says what the path is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The kernel's own limit on a chain of links (MAXSYMLINKS on Linux).
_MAX_LINKS: Final = 40
# /proc/<pid>/fd/<n> (what /dev/stdout and /dev/fd/<n> lead to): the link names an open file, not a path.
_PROC_FD: Final = re.compile(r"/proc/(\d+)(?:/task/\d+)?/fd/(\d+)")


@dataclass(frozen=True)
class WriteTarget:
    """Where a write to a path lands.

    ``path`` is the file to replace (a link's final target) or, when ``in_place``, the path to
    open and write into; ``own_fd`` is set when that path is one of this process's own file
    descriptors (``/dev/stdout``), which is then written to directly so that the bytes land at
    its current offset, in order with what the process already wrote there.
    """

    path: Path
    in_place: bool = False
    own_fd: int | None = None


def _refusal(path: Path, mode: int) -> OSError | None:
    if stat.S_ISDIR(mode):
        return IsADirectoryError(errno.EISDIR, "it is a directory; name a file inside it instead", str(path))
    if stat.S_ISBLK(mode):
        return OSError(errno.EPERM, "it is a block device (a disk), which a result is never written onto; "
                       "name a regular file, or a character device such as /dev/null", str(path))
    if stat.S_ISSOCK(mode):
        return OSError(errno.EPERM, "it is a socket, which cannot be written as a file; name a regular file, "
                       "a FIFO or a character device", str(path))
    return None


def write_target(path: str | os.PathLike[str]) -> WriteTarget:
    """Resolve ``path`` the way :func:`write_atomic` will write it (see the module docstring).

    Raises OSError for a path that must not be written (a directory, a block device, a socket)
    or that is a loop of links.
    """
    current = Path(os.path.abspath(path))
    for _ in range(_MAX_LINKS):
        # Resolve the folders (they may be links too) but keep the last component, which may be a link.
        current = Path(os.path.realpath(current.parent)) / current.name
        fd_link = _PROC_FD.fullmatch(str(current))
        if fd_link is not None:
            own = int(fd_link.group(1)) == os.getpid()
            return WriteTarget(current, in_place=True, own_fd=int(fd_link.group(2)) if own else None)
        if str(current).startswith("/proc/"):
            raise OSError(errno.EPERM, "it is in /proc (the kernel's settings and process state), which a "
                          "result is never written into; name a regular file", str(path))
        try:
            link = os.readlink(current)
        except OSError:
            break  # not a link, or not there: this is the file
        current = current.parent / link  # an absolute link target replaces the parent
    else:
        raise OSError(errno.ELOOP, "too many levels of symbolic links", str(path))
    try:
        mode = os.stat(current).st_mode
    except FileNotFoundError:
        return WriteTarget(current)
    refusal = _refusal(current, mode)
    if refusal is not None:
        raise refusal
    return WriteTarget(current, in_place=not stat.S_ISREG(mode))


def _write_in_place(target: WriteTarget, data: bytes) -> None:
    if target.own_fd is not None:
        # Text this process buffered for the same descriptor must come out before these bytes.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                if stream is not None and stream.fileno() == target.own_fd:
                    stream.flush()
        _write_all(target.own_fd, data, target.path)
        return
    try:
        # O_NONBLOCK: a FIFO that nobody reads fails at once (ENXIO) instead of hanging the session.
        fd = os.open(target.path, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "no process is reading this FIFO (or the device is absent)",
                          str(target.path)) from None
        raise
    try:
        import fcntl  # POSIX only, and only needed here

        # Blocking again from here on: a slow reader of a FIFO is waited for, not failed.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        mode = os.fstat(fd).st_mode
        refusal = _refusal(target.path, mode)  # what a /proc link led to is known only once open
        if refusal is not None:
            raise refusal
        _write_all(fd, data, target.path)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, path: Path) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "the write made no progress", str(path))
        view = view[written:]


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new one, never a mix.

    See :func:`atomic_path`: on any failure ``path`` is untouched and no temp file is left. A
    link is written through (its target replaced, the link kept); a character device or FIFO is
    written into in place.
    """
    target = write_target(path)
    if target.in_place:
        _write_in_place(target, data)
        return
    with atomic_path(target.path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write the new ``path`` to; on a clean exit it replaces ``path`` atomically.

    For writers that want a path rather than bytes (``torch.jit.save``). The
    temp file is created (empty) in the same folder as the file ``path`` names
    (a link's target), because ``os.replace`` is only atomic within one file
    system. When the block ends normally the temp file is fsynced, given the
    file's permission bits (0o644 for a new file) and renamed over it; when it
    raises, the temp file is removed and ``path`` is untouched. A character
    device or FIFO is yielded as it is, to be written into in place.
    """
    target = write_target(path)
    if target.in_place:
        yield target.path
        return
    path = target.path
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # The writer may have closed its own handle without fsync; the data must be on disk before the rename.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable; not every file system allows it.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_stale_temp_files(path: Path) -> None:
    """Delete temp files that writers of ``path`` killed mid-save left behind (call with its lock held).

    Every writer of a baseline file holds its lock while its temp file exists, so
    under the lock any temp file of ``path`` is a leftover; without this, each
    killed save would leave a full copy of the file in the (committed) folder.
    The pattern is atomic_path's exact temp name, so other files' temp files
    never match. Temp files lie beside the file a link leads to, so that is where
    they are looked for.
    """
    try:
        target = write_target(path)
    except OSError:
        return
    if target.in_place:
        return
    path = target.path
    stale = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if stale.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
