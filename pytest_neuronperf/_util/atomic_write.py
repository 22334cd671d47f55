"""Replacing a file so that readers see the old version or the new one, never a mix.

Baselines, model indexes, result files and compiled artifacts are all written this way: a killed
or failed write leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new one, never a mix.

    See :func:`atomic_path`: on any failure ``path`` is untouched and no temp file is left.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write the new ``path`` to; on a clean exit it replaces ``path`` atomically.

    For writers that want a path rather than bytes (``torch.jit.save``). The
    temp file is created (empty) in the same folder as ``path``, because
    ``os.replace`` is only atomic within one file system. When the block
    ends normally the temp file is fsynced, given ``path``'s permission bits
    (0o644 for a new file) and renamed over ``path``; when it raises, the
    temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
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
    never match.
    """
    stale = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if stale.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
