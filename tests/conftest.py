from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.procs import descendants, is_mp_helper


@pytest.fixture
def no_leftover_children() -> Iterator[None]:
    """Fails the test if it leaves a process running (the long-lived forkserver itself excepted)."""
    me = os.getpid()
    before = set(descendants(me))
    yield
    deadline = time.monotonic() + 5
    while True:
        extra = {p for p in descendants(me) if p not in before and not is_mp_helper(p, me)}
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"processes left running: {sorted(extra)}"


from tests.standins.fixtures import fake_neuron  # noqa: E402, F401  (stand-ins for the Neuron software)
