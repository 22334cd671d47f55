"""NeuronCore discovery and core-list arithmetic, free of any Neuron software.

Sources, in order of trust: ``neuron-ls --json-output`` (the Neuron tools'
own view of the devices), then the ``/dev/neuron*`` device nodes multiplied by
the NeuronCores each device of this instance type carries. Nothing here asks
the network: the instance type is the DMI product name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence

VISIBLE_CORES_VAR = "NEURON_RT_VISIBLE_CORES"
NUM_CORES_VAR = "NEURON_RT_NUM_CORES"
LOGICAL_NC_CONFIG_VAR = "NEURON_LOGICAL_NC_CONFIG"

# instance type -> (NeuronCores per instance, Neuron devices per instance).
# trn2 counts logical cores at the runtime's default LNC=2; see cores_from_device_nodes.
INSTANCE_CORES: Mapping[str, tuple[int, int]] = {
    "inf1.xlarge": (4, 1),
    "inf1.2xlarge": (4, 1),
    "inf1.6xlarge": (16, 4),
    "inf1.24xlarge": (64, 16),
    "inf2.xlarge": (2, 1),
    "inf2.8xlarge": (2, 1),
    "inf2.24xlarge": (12, 6),
    "inf2.48xlarge": (24, 12),
    "trn1.2xlarge": (2, 1),
    "trn1.32xlarge": (32, 16),
    "trn1n.32xlarge": (32, 16),
    "trn2.48xlarge": (64, 16),
}
_PHYSICAL_PER_LOGICAL_DEFAULT = {"trn2": 2}

_DEVICE_NODE = re.compile(r"neuron\d+")
_CORE_ITEM = re.compile(r"(\d+)(?:-(\d+))?")


def parse_neuron_ls(text: str) -> int:
    """Total NeuronCores in ``neuron-ls --json-output`` output (the sum of ``nc_count``).

    Raises ValueError when the text is not the expected JSON array of devices.
    """
    try:
        devices = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"neuron-ls printed something that is not JSON ({exc})") from exc
    if not isinstance(devices, list):
        raise ValueError(f"neuron-ls printed JSON {type(devices).__name__}, expected an array of devices")
    total = 0
    for device in devices:
        if not isinstance(device, dict):
            raise ValueError("neuron-ls printed a device entry that is not a JSON object")
        count = device.get("nc_count")
        if count is None and isinstance(device.get("neuroncore_ids"), list):
            count = len(device["neuroncore_ids"])
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(
                f"neuron-ls device {device.get('neuron_device', '?')} has no usable nc_count ({count!r})"
            )
        total += count
    return total


def count_device_nodes(dev_dir: str) -> int:
    """How many ``neuron<N>`` device nodes ``dev_dir`` holds (0 when it cannot be read)."""
    try:
        names = os.listdir(dev_dir)
    except OSError:
        return 0
    return sum(1 for name in names if _DEVICE_NODE.fullmatch(name))


def cores_from_device_nodes(
    n_nodes: int, instance_type: str, env: Mapping[str, str] | None = None
) -> int | None:
    """NeuronCores behind ``n_nodes`` device nodes on ``instance_type``; None when the type is not known.

    A container may see only some of the instance's devices, so the count scales
    with the nodes present; the per-instance total applies when all are there.
    On trn2 the runtime groups physical cores into logical ones
    (``NEURON_LOGICAL_NC_CONFIG``, default 2), and the core indices a process
    sees are logical, so the table's figure is rescaled for LNC=1.
    """
    entry = INSTANCE_CORES.get(instance_type.strip().lower())
    if entry is None or n_nodes <= 0:
        return None
    cores, devices = entry
    family = instance_type.split(".", 1)[0].lower()
    default_lnc = _PHYSICAL_PER_LOGICAL_DEFAULT.get(family)
    if default_lnc is not None:
        lnc_text = (env if env is not None else os.environ).get(LOGICAL_NC_CONFIG_VAR, "").strip()
        if lnc_text.isdigit() and int(lnc_text) > 0:
            cores = cores * default_lnc // int(lnc_text)
    if n_nodes == devices:
        return cores
    return n_nodes * (cores // devices)


def parse_core_list(text: str, variable: str = VISIBLE_CORES_VAR) -> list[int]:
    """Parse ``"3"``, ``"4-7"`` or ``"0,2-3"`` into sorted unique core indices.

    Raises ValueError naming ``variable`` and the offending part.
    """
    cores: set[int] = set()
    parts = [part.strip() for part in text.split(",")]
    if not text.strip():
        raise ValueError(f"{variable} is empty; give a core index or an inclusive range such as '0-3'")
    for part in parts:
        match = _CORE_ITEM.fullmatch(part)
        if match is None:
            raise ValueError(
                f"{variable}={text!r}: {part!r} is not a core index or an inclusive range such as '4-7'"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(
                f"{variable}={text!r}: range {part!r} runs backwards; write it as '{last}-{first}'"
            )
        cores.update(range(first, last + 1))
    return sorted(cores)


def format_core_list(cores: Sequence[int]) -> str:
    """How ``NEURON_RT_VISIBLE_CORES`` spells ``cores``: ``"2"``, ``"2-3"``, or ``"1,3"`` when not contiguous."""
    if not cores:
        raise ValueError("an empty core list has no NEURON_RT_VISIBLE_CORES spelling")
    if len(cores) == 1:
        return str(cores[0])
    if list(cores) == list(range(cores[0], cores[0] + len(cores))):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def usable_cores(total: int | None, env: Mapping[str, str]) -> list[int] | None:
    """The cores this process may hand out: an outer ``NEURON_RT_VISIBLE_CORES``, else all ``total``.

    An outer ``NEURON_RT_NUM_CORES`` (a count, 0 meaning all) caps the list at
    its first N cores. None when neither the total nor an outer list is known.
    """
    visible = env.get(VISIBLE_CORES_VAR)
    if visible is not None and visible.strip():
        cores = parse_core_list(visible)
        if total is not None:
            missing = [c for c in cores if c >= total]
            if missing:
                raise ValueError(
                    f"{VISIBLE_CORES_VAR}={visible!r} names core(s) {_join(missing)} but this machine has "
                    f"{total} NeuronCores (0-{total - 1})"
                )
        return cores
    if total is None:
        return None
    cores = list(range(total))
    num = env.get(NUM_CORES_VAR, "").strip()
    if num:
        if not num.isdigit():
            raise ValueError(f"{NUM_CORES_VAR}={num!r} is not a whole number of NeuronCores")
        if int(num) > 0:
            cores = cores[: int(num)]
    return cores


def _join(values: Iterable[int]) -> str:
    return ", ".join(map(str, values))
