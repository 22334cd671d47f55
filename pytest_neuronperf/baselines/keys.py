"""The names of baseline entries: ``<test name>::<measurement>::<config key>``."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_neuronperf.spec.matrix import config_key

__all__ = ["check_part", "config_key", "entry_key", "split_nodeid"]


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """Split a pytest node id into (module path, test name within the module)."""
    module_path, sep, test_name = nodeid.partition("::")
    if not sep or not module_path or not test_name:
        raise ValueError(f"expected a test node id such as 'tests/test_x.py::test_y', got {nodeid!r}")
    return module_path, test_name


def entry_key(test_name: str, measurement: str, config: Mapping[str, object] | str) -> str:
    """``<test name>::<measurement>::<config key>``; ``config`` is a config mapping or a ready key.

    The test name may itself contain ``::`` (class-based tests); the
    measurement and config key may not, so a key always splits from the right.
    """
    key = config if isinstance(config, str) else config_key(config)
    if not test_name:
        raise ValueError("test name must not be empty")
    check_part("measurement", measurement)
    check_part("config key", key)
    return f"{test_name}::{measurement}::{key}"


def check_part(what: str, value: str) -> None:
    """A measurement name or config key that an entry key can hold: not empty, no ``::``; else ValueError."""
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "::" in value:
        raise ValueError(f"{what} must not contain '::', got {value!r}")
