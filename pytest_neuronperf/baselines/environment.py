"""The environment fingerprint: what a baseline records about where it was measured.

A baseline applies only where the fields chosen by ``--npf-fingerprint-keys``
match (see :data:`pytest_neuronperf.spec.fields.FINGERPRINT_FIELDS`).
"""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from pytest_neuronperf._util import machine

NOT_INSTALLED: Final = "not installed"
# Enough for a local ``git rev-parse``; a hung git (a stale lock, a network file system) must not hold the save.
GIT_TIMEOUT_S: Final = 5.0
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1, or SHA-256 in repositories that use it


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


def current_commit(root: Path) -> str | None:
    """The commit sha of the HEAD of the git repository holding ``root``; None outside one, without git,
    before the first commit, or when git fails or hangs. Never raises."""
    try:
        done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=GIT_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and _SHA.fullmatch(sha) else None
