from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.procs import descendants, is_mp_helper

# Plugins of this environment that no child pytest of the tests uses; hypothesis alone costs each
# child most of a second of start-up.
UNUSED_IN_CHILDREN = ("-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:anyio")


@pytest.fixture(autouse=True, scope="session")
def _children_skip_unused_plugins() -> Iterator[None]:
    """Every pytest a test starts in a subprocess leaves out the plugins it does not use.

    Set once the session (or xdist worker) is configured, so that only the children read it.
    """
    before = os.environ.get("PYTEST_ADDOPTS")
    os.environ["PYTEST_ADDOPTS"] = " ".join([*([before] if before else []), *UNUSED_IN_CHILDREN])
    yield
    if before is None:
        os.environ.pop("PYTEST_ADDOPTS", None)
    else:
        os.environ["PYTEST_ADDOPTS"] = before


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytest's pytester, whose runs leave out the unused plugins too (pytester clears PYTEST_ADDOPTS)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(UNUSED_IN_CHILDREN))
    return pytester


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
