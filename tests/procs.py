"""Process-tree inspection through /proc, for tests that check nothing is left running."""

from __future__ import annotations

import os


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (zombies excluded)."""
    seen: list[int] = []
    stack = _children(pid)
    while stack:
        child = stack.pop()
        if child in seen:
            continue
        try:
            with open(f"/proc/{child}/stat", encoding="ascii", errors="replace") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            seen.append(child)
        stack.extend(_children(child))
    return seen


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def is_mp_helper(pid: int, owner: int) -> bool:
    """A long-lived multiprocessing helper (forkserver, resource tracker) started by ``owner``.

    Model copies are the forkserver's children, so they are never mistaken for it.
    """
    if parent_of(pid) != owner:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        return b"forkserver" in cmdline or b"resource_tracker" in cmdline
    except OSError:
        return False
