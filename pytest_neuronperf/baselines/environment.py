"""The environment fingerprint: what a baseline records about where it was measured.

A baseline applies only where the fields chosen by ``--npf-fingerprint-keys``
match (see :data:`pytest_neuronperf.spec.fields.FINGERPRINT_FIELDS`).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from typing import Final

from pytest_neuronperf._util import machine

NOT_INSTALLED: Final = "not installed"


def _dist_version(name: str) -> str:
    # Read from installed metadata: importing torch just to ask its version
    # would cost seconds in every pytest run.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return NOT_INSTALLED


def fingerprint(device_type: str) -> dict[str, str]:
    """What identifies this environment for baseline purposes, all values strings.

    ``device_type`` should be the canonical name ("cuda", not "gpu") so that
    aliases do not split baselines.
    """
    return {
        "device_type": device_type,
        "instance_type": machine.instance_type(),
        "cpu_model": machine.cpu_model(),
        "cpu_count": str(len(machine.usable_cpus())),
        "torch": _dist_version("torch"),
        "torch_neuronx": _dist_version("torch-neuronx"),
        "python": platform.python_version(),
    }


def fingerprint_differences(a: Mapping[str, str], b: Mapping[str, str], keys: Iterable[str]) -> list[str]:
    """The ``keys`` on which two fingerprints differ; an empty list means they match.

    A key missing from one side differs from any value on the other, so a
    record written before a field existed does not silently match.
    """
    return [key for key in keys if a.get(key) != b.get(key)]
