"""The environment fingerprint: what a baseline records about where it was measured.

A baseline applies only where the fields chosen by ``--npf-fingerprint-keys``
match (see :data:`pytest_neuronperf.spec.fields.FINGERPRINT_FIELDS`).

The device-specific fields come from local sources only, each bounded in time
and never raising: the Neuron SDK (``device_type="neuron"``) from installed
package metadata, ``neuron-ls --version`` and ``/sys/module/neuron/version``;
the GPU (``device_type="cuda"``) from ``nvidia-smi`` and the installed torch's
``version.py``, read as text. Nothing here imports torch or starts a device
runtime, and a fingerprint of one device type spawns no process for another.
"""

from __future__ import annotations

import ast
import functools
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pytest_neuronperf._util import machine
from pytest_neuronperf.spec.fields import (
    CUDA_FINGERPRINT_FIELDS,
    DEVICE_FINGERPRINT_FIELDS,
    NEURON_FINGERPRINT_FIELDS,
)

NOT_INSTALLED: Final = "not installed"
UNKNOWN: Final = "unknown"
# A device-specific field in the fingerprint of another device type (never compared there).
NOT_APPLICABLE: Final = "n/a"
# torch built without CUDA (torch.version.cuda is None).
NO_CUDA: Final = "none"
# What an old record that lacks a field shows where that field is compared.
NOT_RECORDED: Final = "(not recorded)"
# Enough for a local ``git rev-parse``; a hung git (a stale lock, a network file system) must not hold the save.
GIT_TIMEOUT_S: Final = 5.0
# A tool that only prints its version answers in well under a second; a wedged driver must not hold a test.
TOOL_TIMEOUT_S: Final = 5.0
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1, or SHA-256 in repositories that use it
_VERSION = re.compile(r"\d+(?:\.\d+)+")
# The distributions and OS packages that carry libnrt, in the order they are asked.
RUNTIME_DISTRIBUTIONS: Final = ("aws-neuronx-runtime-lib",)
RUNTIME_OS_PACKAGES: Final = ("aws-neuronx-runtime-lib",)


def _dist_version(name: str) -> str:
    # Read from installed metadata: importing torch just to ask its version
    # would cost seconds in every pytest run.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return NOT_INSTALLED
    except Exception:  # broken metadata must not stop a test
        return UNKNOWN


@dataclass(frozen=True)
class Sources:
    """Where the device-specific fields are read from; the defaults are the real ones.

    ``env`` is the environment the tools are looked up in (its PATH) and GPUs are picked by
    (``CUDA_VISIBLE_DEVICES``); None: this process's, read at call time.
    """

    neuron_ls: str = "neuron-ls"
    nvidia_smi: str = "nvidia-smi"
    sys_module: str = "/sys/module"
    dpkg_status: str = "/var/lib/dpkg/status"
    timeout_s: float = TOOL_TIMEOUT_S
    env: Mapping[str, str] | None = None

    @property
    def environ(self) -> Mapping[str, str]:
        return self.env if self.env is not None else os.environ


def fingerprint(device_type: str, sources: Sources | None = None) -> dict[str, str]:
    """What identifies this environment for baseline purposes, all values strings, in display order.

    ``device_type`` should be the canonical name ("cuda", not "gpu") so that
    aliases do not split baselines. The device-specific fields are read once per
    process with the default ``sources`` (an SDK does not change under a running
    session), on every call with explicit ones.
    """
    devices = _device_fields(device_type) if sources is None else device_fields(device_type, sources)
    return {
        "device_type": device_type,
        "instance_type": machine.instance_type(),
        "cpu_model": machine.cpu_model(),
        "cpu_count": str(len(machine.usable_cpus())),
        "torch": _dist_version("torch"),
        "torch_neuronx": _dist_version("torch-neuronx"),
        **devices,
        "python": platform.python_version(),
    }


@functools.cache
def _device_fields(device_type: str) -> dict[str, str]:
    return device_fields(device_type, Sources())


def device_fields(device_type: str, sources: Sources) -> dict[str, str]:
    """The Neuron and CUDA fields; only the sources of ``device_type`` are read, the others are "n/a"."""
    out = {k: NOT_APPLICABLE for k in (*NEURON_FINGERPRINT_FIELDS, *CUDA_FINGERPRINT_FIELDS)}
    if device_type == "neuron":
        out.update(neuron_versions(sources))
    elif device_type == "cuda":
        out.update(cuda_versions(sources))
    return out


# -- Neuron ------------------------------------------------------------------------------------------


def neuron_versions(sources: Sources) -> dict[str, str]:
    return {
        "neuronx_cc": _dist_version("neuronx-cc"),
        "neuron_runtime": neuron_runtime_version(sources),
        "neuron_driver": neuron_driver_version(sources),
    }


def neuron_runtime_version(sources: Sources) -> str:
    """libnrt's version: an installed package's metadata, else what ``neuron-ls --version`` prints."""
    for name in RUNTIME_DISTRIBUTIONS:
        found = _dist_version(name)
        if found not in (NOT_INSTALLED, UNKNOWN):
            return found
    packaged = dpkg_version(sources.dpkg_status, RUNTIME_OS_PACKAGES)
    if packaged is not None:
        return packaged
    if _which(sources.neuron_ls, sources) is None:
        return NOT_INSTALLED
    text = _run_tool(sources.neuron_ls, ["--version"], sources)
    if text is None:
        return UNKNOWN
    match = _VERSION.search(text)
    return match.group(0) if match else UNKNOWN


def neuron_driver_version(sources: Sources) -> str:
    """The loaded Neuron kernel driver's version (``/sys/module/neuron/version``)."""
    path = Path(sources.sys_module, "neuron", "version")
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return NOT_INSTALLED
    except OSError:
        return UNKNOWN
    return text.splitlines()[0].strip() if text else UNKNOWN


def dpkg_version(status_file: str, packages: Iterable[str]) -> str | None:
    """The upstream version of the first of ``packages`` that dpkg's status file lists as installed."""
    try:
        text = Path(status_file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    wanted = list(packages)
    found: dict[str, str] = {}
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line[:1].isspace():
                fields[key.strip().lower()] = value.strip()
        name = fields.get("package")
        if name in wanted and "installed" in fields.get("status", "").split() and fields.get("version"):
            # "2.21.41.0-fb1705f5f": the part after the last hyphen is the packaging revision.
            version = fields["version"].split(":", 1)[-1]
            found[name] = version.rsplit("-", 1)[0] if "-" in version else version
    return next((found[p] for p in wanted if p in found), None)


# -- CUDA --------------------------------------------------------------------------------------------


def cuda_versions(sources: Sources) -> dict[str, str]:
    gpu_name, driver = nvidia_smi_identity(sources)
    return {"gpu_name": gpu_name, "cuda_driver": driver, "cuda_runtime": torch_cuda_version()}


def nvidia_smi_identity(sources: Sources) -> tuple[str, str]:
    """(GPU name, driver version) from ``nvidia-smi --query-gpu``, for the GPUs this process sees.

    Several kinds of GPU give their names joined by " + "; ``CUDA_VISIBLE_DEVICES`` given as indices
    picks the GPUs that count.
    """
    if _which(sources.nvidia_smi, sources) is None:
        return UNKNOWN, NOT_INSTALLED
    text = _run_tool(sources.nvidia_smi, ["--query-gpu=name,driver_version", "--format=csv,noheader"], sources)
    if text is None:
        return UNKNOWN, UNKNOWN
    rows = []
    for line in text.splitlines():
        name, sep, driver = line.rpartition(",")
        if sep and name.strip():
            rows.append((name.strip(), driver.strip()))
    if not rows:
        return UNKNOWN, UNKNOWN
    visible = sources.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", visible):
        picked = [rows[int(i)] for i in visible.split(",") if int(i) < len(rows)]
        rows = picked or rows
    names = list(dict.fromkeys(name for name, _ in rows))
    # One driver serves every GPU of a machine.
    driver = next((d for _, d in rows if d), UNKNOWN)
    return " + ".join(names), driver


def torch_cuda_version() -> str:
    """``torch.version.cuda`` of the installed torch, read from its ``version.py`` without importing torch."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return UNKNOWN
    if spec is None:
        return NOT_INSTALLED
    locations = list(spec.submodule_search_locations or [])
    if not locations:
        return UNKNOWN
    try:
        tree = ast.parse(Path(locations[0], "version.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return UNKNOWN
    for node in tree.body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id == "cuda" and isinstance(value, ast.Constant):
            if value.value is None:
                return NO_CUDA
            return str(value.value)
    return UNKNOWN


# -- tools -------------------------------------------------------------------------------------------


def _which(tool: str, sources: Sources) -> str | None:
    return shutil.which(tool, path=sources.environ.get("PATH"))


def _run_tool(tool: str, args: list[str], sources: Sources) -> str | None:
    """The tool's standard output, or None when it is not there, fails or does not answer in time."""
    exe = _which(tool, sources)
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=sources.timeout_s,
                              stdin=subprocess.DEVNULL, check=False, errors="replace")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout if done.returncode == 0 else None


# -- comparing ---------------------------------------------------------------------------------------


def _compared(key: str, a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Whether ``key`` is compared between ``a`` and ``b``: a device-specific field only where it applies."""
    device = DEVICE_FINGERPRINT_FIELDS.get(key)
    return device is None or device in (a.get("device_type"), b.get("device_type"))


def fingerprint_differences(a: Mapping[str, str], b: Mapping[str, str], keys: Iterable[str]) -> list[str]:
    """The ``keys`` on which two fingerprints differ; an empty list means they match.

    A key missing from one side differs from any value on the other, so a
    record written before a field existed does not silently match; a
    device-specific field (the Neuron SDK's, the GPU's) is compared only when
    one side's device type uses it, so it neither splits nor orphans the
    baselines of other devices.
    """
    return [key for key in keys if _compared(key, a, b) and a.get(key) != b.get(key)]


def version_changes(theirs: Mapping[str, str], ours: Mapping[str, str], keys: Iterable[str]) -> list[str]:
    """Each of ``keys`` as ``"neuronx_cc 2.15.128 -> 2.16.372"``: the baseline's value, then this machine's."""
    return [f"{k} {theirs.get(k, NOT_RECORDED)} -> {ours.get(k, NOT_RECORDED)}" for k in keys]


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
