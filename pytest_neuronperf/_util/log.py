"""The ``pytest_neuronperf`` logger and NeuronPerf-style verbosity levels."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

LOGGER_NAME = "pytest_neuronperf"
logger = logging.getLogger(LOGGER_NAME)

_LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG}
_handler: logging.Handler | None = None


def level_for(verbosity: int) -> int:
    if verbosity not in _LEVELS:
        raise ValueError(f"verbosity must be 0 (silent), 1 (info) or 2 (debug), got {verbosity!r}")
    return _LEVELS[verbosity]


def set_verbosity(verbosity: int) -> None:
    """Set how much the runner logs: 0 = errors only, 1 = info (default), 2 = debug.

    Messages go to stderr as ``LEVEL:pytest_neuronperf - message`` unless the
    application has configured logging itself (then only the level changes).
    """
    global _handler
    logger.setLevel(level_for(verbosity))
    if _handler is None and not logging.getLogger().handlers:
        _handler = logging.StreamHandler()
        _handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s - %(message)s"))
        logger.addHandler(_handler)
        logger.propagate = False


@contextlib.contextmanager
def verbosity(level: int | None) -> Iterator[None]:
    """The logger at ``level`` (0/1/2) for the duration of a call; None leaves it as it is."""
    if level is None:
        yield
        return
    old = logger.level
    logger.setLevel(level_for(level))
    try:
        yield
    finally:
        logger.setLevel(old)
