"""Live progress of running benchmarks in the terminal.

On a TTY one line, fitted to the terminal's width, is rewritten in place while a
benchmark runs; otherwise one plain line marks the start of each configuration;
nothing with ``-q``. Under pytest-xdist each
worker writes its latest line to a file in a folder the controller chose, and
the controller prints what changed, prefixed with the worker's id.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_neuronperf.runner import events


WORKERINPUT_KEY = "neuronperf_progress_dir"
POLL_S = 1.0


def describe_configuration(label: str, event: events.Progress) -> str:
    """The line that says which configuration has started: one per configuration in a log."""
    rounds = f", {event.rounds} rounds" if event.rounds > 1 else ""
    return (f"neuronperf {label}: configuration {event.index + 1}/{event.total} ({event.description}){rounds}, "
            f"~{event.seconds_left():.0f} s left")


def describe(label: str, event: events.Progress, width: int | None = None) -> str:
    """The live line of a terminal, at most ``width - 1`` characters (a full-width line wraps on some
    terminals): abbreviated, then with the test's label cut from the left."""
    rounds = f", round {event.round_index + 1}/{event.rounds}" if event.rounds > 1 else ""
    line = (f"neuronperf {label}: configuration {event.index + 1}/{event.total} ({event.description}){rounds}: "
            f"{event.phase}, ~{event.seconds_left():.0f} s left")
    if width is None or len(line) < width:
        return line
    short = _ABBREVIATION.sub(lambda m: _ABBREVIATIONS[m.group(1)], event.description)
    rounds = f" r{event.round_index + 1}/{event.rounds}" if event.rounds > 1 else ""
    tail = f": {event.index + 1}/{event.total} {short}{rounds} {event.phase} ~{event.seconds_left():.0f}s"
    room = width - 1 - len("npf ") - len(tail)
    if room < len(label):
        label = "..." + label[-(room - 3):] if room > 3 else ""
    return f"npf {label}{tail}"[: width - 1]


_ABBREVIATIONS = {"n_models=": "n", "workers=": "w", "batch=": "b", "pipeline=": "p"}
_ABBREVIATION = re.compile("(" + "|".join(_ABBREVIATIONS) + ")")


def _is_tty(terminal: Any) -> bool:
    # pytest's TerminalReporter.isatty is a callable bool (a method in newer versions).
    flag = getattr(terminal, "isatty", False)
    return bool(flag() if callable(flag) else flag)


class ProgressView:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.quiet = config.get_verbosity() < 0
        workerinput = getattr(config, "workerinput", None)
        self.worker_file: Path | None = None
        if workerinput is not None and workerinput.get(WORKERINPUT_KEY):
            self.worker_file = Path(workerinput[WORKERINPUT_KEY]) / str(workerinput.get("workerid", "gw"))
        self._controller_dir: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._event: events.Progress | None = None
        self._label = ""
        # The configurations of the current test that have shown their first line.
        self._started: set[tuple[int, int, str]] = set()
        self._log_once: str | None = None
        self._logged_once: set[str] = set()
        self._lock = threading.Lock()

    @property
    def terminal(self) -> Any:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    # -- inside a test ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def showing(self, label: str, *, log_line: str | None = None) -> Iterator[None]:
        """Show the progress of the benchmarks run inside; ``log_line``: a log gets this line, once however
        often it is shown, instead of one line per configuration (for the extra rounds of configurations
        that were each shown once already)."""
        self._label = label
        self._started = set()
        self._log_once = log_line
        # The runner's event module loads with the first benchmark, not with every pytest run.
        from pytest_neuronperf.runner.events import listening

        with listening(self._on_event):
            try:
                yield
            finally:
                self._finish()

    def _on_event(self, event: events.Progress) -> None:
        with self._lock:
            self._event = event
        if self._log_once is not None:
            started = self._log_once not in self._logged_once
            self._logged_once.add(self._log_once)
        else:
            started = (event.index, event.total, event.description) not in self._started
            self._started.add((event.index, event.total, event.description))
        if self.worker_file is not None:
            # The controller prints each line it has not printed: one per configuration.
            if started:
                tmp = self.worker_file.with_suffix(".tmp")
                tmp.write_text(self._log_line(event))
                os.replace(tmp, self.worker_file)
            return
        tr = self.terminal
        if self.quiet or tr is None:
            return
        if _is_tty(tr):
            line = describe(self._label, event, self._width())
            self._show(lambda: tr.rewrite(line, erase=True))
            if event.phase == "running" and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="npf-progress", daemon=True)
                self._ticker.start()
        elif started:
            # A log gets one line per configuration, not one per round and phase.
            line = self._log_line(event)
            self._show(lambda: tr.write_line(line))

    def _log_line(self, event: events.Progress) -> str:
        return self._log_once if self._log_once is not None else describe_configuration(self._label, event)

    def _width(self) -> int:
        return int(self.config.get_terminal_writer().fullwidth)

    def _show(self, write: Callable[[], None]) -> None:
        """Write past pytest's output capture, as live logging does: a test is running."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            write()

    def _tick(self) -> None:
        # Keeps the "~N s left" of the TTY line moving between runner events.
        while not self._stop.wait(1.0):
            with self._lock:
                event = self._event
            tr = self.terminal
            if event is None or tr is None:
                continue
            self._show(functools.partial(tr.rewrite, describe(self._label, event, self._width()), erase=True))

    def _finish(self) -> None:
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._ticker = None
            self._stop.clear()
        tr = self.terminal
        if self.worker_file is None and not self.quiet and tr is not None and _is_tty(tr):
            self._show(lambda: tr.rewrite("", erase=True))
        if self.worker_file is not None:
            with contextlib.suppress(OSError):
                self.worker_file.unlink()

    # -- the xdist controller -----------------------------------------------------------------------

    def configure_node(self, node: Any) -> None:
        """Tell a new xdist worker where to write its progress, and start showing it."""
        if self._controller_dir is None:
            self._controller_dir = tempfile.mkdtemp(prefix="npf-progress-")
        node.workerinput[WORKERINPUT_KEY] = self._controller_dir
        if self._poller is None and not self.quiet:
            self._poller = threading.Thread(target=self._poll, name="npf-progress-poll", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        shown: dict[str, str] = {}
        while not self._stop.wait(POLL_S):
            folder = self._controller_dir
            if folder is None:
                continue
            for path in sorted(Path(folder).glob("gw*")):
                if path.suffix:
                    continue
                try:
                    line = path.read_text()
                except OSError:
                    continue
                if line and shown.get(path.name) != line:
                    shown[path.name] = line
                    tr = self.terminal
                    if tr is not None:
                        tr.write_line(f"[{path.name}] {line}")

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        if self._controller_dir is not None:
            shutil.rmtree(self._controller_dir, ignore_errors=True)
