"""Live progress of running benchmarks in the terminal.

On a TTY one line is rewritten in place while a benchmark runs; otherwise plain
lines mark each configuration; nothing with ``-q``. Under pytest-xdist each
worker writes its latest line to a file in a folder the controller chose, and
the controller prints what changed, prefixed with the worker's id.
"""

from __future__ import annotations

import contextlib
import functools
import os
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


def describe(label: str, event: events.Progress) -> str:
    rounds = f", round {event.round_index + 1}/{event.rounds}" if event.rounds > 1 else ""
    return (f"neuronperf {label}: configuration {event.index + 1}/{event.total} ({event.description}){rounds}: "
            f"{event.phase}, ~{event.seconds_left():.0f} s left")


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
        self._lock = threading.Lock()

    @property
    def terminal(self) -> Any:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    # -- inside a test ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def showing(self, label: str) -> Iterator[None]:
        self._label = label
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
        line = describe(self._label, event)
        if self.worker_file is not None:
            tmp = self.worker_file.with_suffix(".tmp")
            tmp.write_text(line)
            os.replace(tmp, self.worker_file)
            return
        tr = self.terminal
        if self.quiet or tr is None:
            return
        if _is_tty(tr):
            self._show(lambda: tr.rewrite(line, erase=True))
            if event.phase == "running" and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="npf-progress", daemon=True)
                self._ticker.start()
        elif event.phase != "loading" or event.round_index == 0:
            self._show(lambda: tr.write_line(line))

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
            self._show(functools.partial(tr.rewrite, describe(self._label, event), erase=True))

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
                if line and shown.get(path.name) != line.split(", ~")[0]:
                    shown[path.name] = line.split(", ~")[0]
                    tr = self.terminal
                    if tr is not None:
                        tr.write_line(f"[{path.name}] {line}")

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        if self._controller_dir is not None:
            shutil.rmtree(self._controller_dir, ignore_errors=True)
