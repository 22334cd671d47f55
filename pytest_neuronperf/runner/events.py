"""Progress events from the runner, for whoever listens (the pytest plugin shows them live)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    model_name: str
    index: int  # 0-based configuration number
    total: int
    description: str  # "n_models=2 workers=1 batch=1 pipeline=1"
    phase: str  # "loading", "running" or "finished"
    round_index: int
    rounds: int
    ends_at: float  # time.monotonic() when the whole call is expected to finish

    def seconds_left(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def emit(event: Progress) -> None:
    for listener in list(_listeners):
        listener(event)
