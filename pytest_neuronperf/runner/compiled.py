"""``compile_mode``: torch.compile a model inside its copy and call it until the compiled graph is stable.

The first calls of a compiled model compile it (and a recompilation can follow, when a guard fails
on the next input, or CUDA graphs are recorded on the calls after that); all of that happens here,
timed apart as the copy's compile time, before the warm-up and far from the timed window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

# Stable means: this many calls in a row compiled nothing and none of them took more than
# SLOW_FACTOR x the fastest call seen since the last compilation (a call that records a CUDA graph,
# or runs a graph for the first time, is slower than that by far).
STABLE_CALLS: Final = 3
SLOW_FACTOR: Final = 2.0
# A model whose calls keep recompiling, or vary more than SLOW_FACTOR, is left at this many calls:
# what it still does is the warm-up's (and the window's) to show.
MAX_SETTLE_CALLS: Final = 50


def compile_model(model: Any, mode: str) -> Any:
    import torch

    return torch.compile(model, mode=mode)


def _compilations() -> Callable[[], int]:
    """A reading of how many frames dynamo has compiled in this process (0 when torch keeps no count)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return lambda: 0
    return lambda: int(sum(counters["frames"].values()) + sum(counters["stats"].values()))


def settle(call: Callable[[int], None], clock: Callable[[], int] = time.monotonic_ns) -> int:
    """Call ``call(i)`` for i = 0, 1, ... until the compiled model is stable; returns the calls made."""
    compiled = _compilations()
    clean: list[int] = []
    calls = 0
    while calls < MAX_SETTLE_CALLS:
        before = compiled()
        t0 = clock()
        call(calls)
        elapsed = clock() - t0
        calls += 1
        if compiled() != before:
            clean.clear()
            continue
        clean.append(elapsed)
        recent = clean[-STABLE_CALLS:]
        if len(recent) == STABLE_CALLS and max(recent) <= SLOW_FACTOR * min(clean):
            break
    return calls


def stop_compile_workers() -> None:
    """End the compiler's worker processes once the graph is stable: they would hold memory (and, in
    the copy's process group, count as processes the model left behind) through the window."""
    try:
        from torch._inductor.async_compile import shutdown_compile_workers
    except ImportError:
        return
    shutdown_compile_workers()
