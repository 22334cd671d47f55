"""Replacing a file so that readers see the old version or the new one, never a mix.

Baselines, model indexes and result files are all written this way: a killed
or failed write leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new one, never a mix.

    The data goes to a temp file in the same folder (``os.replace`` is only
    atomic within one file system), is fsynced, then renamed over ``path``;
    on any failure the temp file is removed and ``path`` is untouched. An
    existing file's permission bits are kept.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
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
    The pattern is write_atomic's exact temp name, so other files' temp files
    never match.
    """
    stale = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if stale.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
