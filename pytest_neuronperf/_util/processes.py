"""Stopping child processes within a bounded time, whatever they are doing.

Model copies and the compile process are both stopped this way, so a
benchmark or a ``compile`` that ends (normally, on an error, on Ctrl-C)
never waits longer than the bounds below and never leaves a child running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

# How long the joins after SIGKILL wait, all together; a killed process is gone in
# milliseconds unless it is stuck in the kernel, and then waiting longer would not help.
KILL_WAIT_S = 1.0
# How often an emptying process group is looked at; only while something is left in it.
_GROUP_POLL_S = 0.01


class Stoppable(Protocol):
    """The part of ``multiprocessing.Process`` that stopping needs."""

    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


def stop_processes(processes: Iterable[Stoppable], *, wait_s: float = 0.0, grace_s: float = 1.0) -> None:
    """Stop ``processes``: wait for a natural exit, then SIGTERM, then SIGKILL.

    Up to ``wait_s`` (shared by all) for the processes to end by themselves;
    then SIGTERM to every one still alive at once, and one shared ``grace_s``
    deadline for them to exit; then SIGKILL to the rest. Every phase signals
    all processes before waiting on any, so the whole takes at most about
    ``wait_s + grace_s + KILL_WAIT_S`` however many processes there are. An
    interruption while waiting (a second Ctrl-C, SIGTERM) kills the remaining
    processes before it propagates.
    """
    processes = list(processes)
    try:
        if wait_s > 0:
            _join_all(processes, time.monotonic() + wait_s)
        for p in processes:
            with contextlib.suppress(Exception):
                if p.is_alive():
                    p.terminate()
        _join_all(processes, time.monotonic() + grace_s)
    finally:
        for p in processes:
            with contextlib.suppress(Exception):
                if p.is_alive():
                    p.kill()
        _join_all(processes, time.monotonic() + KILL_WAIT_S)


def _join_all(processes: list[Stoppable], deadline: float) -> None:
    for p in processes:
        # Joining a process that never started, or was closed, raises; there is nothing to wait for.
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))


@dataclass
class GroupLeftovers:
    """Processes found in stopped process groups besides their leaders (what the leaders started)."""

    found: dict[int, str] = field(default_factory=dict)  # pid -> command line, as first seen
    survivors: list[int] = field(default_factory=list)  # still alive after SIGKILL and KILL_WAIT_S

    def __bool__(self) -> bool:
        return bool(self.found or self.survivors)


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc (``R``, ``S``, ``T``, ``Z``...); None if unknown or gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a dead process its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return process_state(pid) != "Z"


def group_members(pgid: int) -> set[int] | None:
    """The live processes of process group ``pgid``; None where /proc cannot tell (other systems).

    One ``killpg(pgid, 0)`` answers "is anything left" for an empty group, the common case, so the
    scan of /proc only happens when the group still has members.
    """
    if pgid <= 1:
        return set()
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return set()
    except PermissionError:
        # Another user's group has this id: not ours to report or stop.
        return set()
    if not os.path.isdir("/proc/self"):
        return None
    members = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        # After the ")" of the command name: state, ppid, pgrp.
        if fields is not None and len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            members.add(int(name))
    return members


def command_line(pid: int) -> str:
    """``pid``'s command line, shortened, for messages; ``?`` when it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            text = fh.read(400).replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    return text[:120] or "?"


def stop_groups(pgids: Iterable[int], *, exclude: Iterable[int] = (), grace_s: float = 1.0) -> GroupLeftovers:
    """Stop every process left in the process groups ``pgids``: SIGTERM, one shared grace, SIGKILL.

    Model copies lead process groups of their own, so whatever a model started (a helper
    process, a server, a shell pipeline) is in its copy's group and ends with it, even after
    the copy itself has exited and its children were re-parented. ``exclude``: pids not to
    report as found (the leaders themselves, which are stopped, and reported, elsewhere).
    Bounded like :func:`stop_processes`, and an interruption still sends the SIGKILL.
    """
    groups = [g for g in dict.fromkeys(pgids) if g > 1]
    skip = set(exclude)
    out = GroupLeftovers()

    def look() -> list[int]:
        busy = []
        for g in groups:
            members = group_members(g)
            if members is None or members:
                busy.append(g)
            for pid in members or ():
                if pid not in skip and pid not in out.found:
                    out.found[pid] = command_line(pid)
        return busy

    busy = look()
    if not busy:
        return out
    try:
        _signal_groups(busy, signal.SIGTERM)
        busy = _wait_groups(busy, time.monotonic() + grace_s, look)
    finally:
        busy = look() if busy else busy
        if busy:
            _signal_groups(busy, signal.SIGKILL)
            busy = _wait_groups(busy, time.monotonic() + KILL_WAIT_S, look)
    for g in busy:
        out.survivors.extend(sorted(group_members(g) or ()))
    return out


def _signal_groups(groups: list[int], signum: int) -> None:
    for g in groups:
        with contextlib.suppress(OSError):
            os.killpg(g, signum)


def _wait_groups(groups: list[int], deadline: float, look: Callable[[], list[int]]) -> list[int]:
    busy = groups
    while busy and time.monotonic() < deadline:
        time.sleep(_GROUP_POLL_S)
        busy = [g for g in look() if g in busy]
    return busy


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # The command name (field 2) may hold spaces and parentheses: split after its last ")".
            return fh.read().rsplit(b")", 1)[1].decode("ascii", "replace").split()
    except (OSError, IndexError):
        return None
