"""Wall-clock stamps for reports and default file names (NeuronPerf's ``YYYYmmdd-HHMMSS``)."""

from __future__ import annotations

import time


def wall_clock_stamp(t: float | None = None) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(t))
