"""The hook a generative model uses to report its own phases: prefill (context encoding) and decode.

A model that times its phases itself (an NxD Inference style model runs a context-encoding model,
then a token-generation model per step) calls :func:`record_phase` from inside its streaming call;
the runner then reports ``prefill_ms_p50/p99`` and ``decode_ms_p50/p99``, one sample per call of
the hook. Outside a benchmark, and in warm-up, the hook does nothing, so a model can call it always.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

PHASES: Final[tuple[str, ...]] = ("prefill", "decode")

_local = threading.local()


def record_phase(name: str, seconds: float) -> None:
    """Report that phase ``name`` (``"prefill"`` or ``"decode"``) of the current request took ``seconds``."""
    if name not in PHASES:
        raise ValueError(f"record_phase: name must be one of {', '.join(PHASES)}, got {name!r}")
    sink: Callable[[str, float], None] | None = getattr(_local, "sink", None)
    if sink is not None:
        sink(name, seconds)


def set_sink(sink: Callable[[str, float], None] | None) -> None:
    """Where this thread's :func:`record_phase` calls go (None: nowhere). The runner's workers set it."""
    _local.sink = sink
