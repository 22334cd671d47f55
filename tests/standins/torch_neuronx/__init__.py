"""A stand-in for ``torch_neuronx`` used by the tests: traces on the CPU and logs what it saw.

It logs one JSON line per event to the file named by ``NPF_STANDIN_LOG``:
``import`` (with the ``NEURON_RT_VISIBLE_CORES`` / ``NEURON_RT_NUM_CORES`` the
process had when it imported torch_neuronx) and ``trace`` (batch size and
compiler arguments). ``NPF_STANDIN_FAIL_BATCH_SIZES="2,8"`` makes ``trace``
raise for those batch sizes, as a compiler error would;
``NPF_STANDIN_CRASH_BATCH_SIZES`` makes the process die instead, as a
compiler killed for memory would.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

LOG_VAR = "NPF_STANDIN_LOG"
FAIL_VAR = "NPF_STANDIN_FAIL_BATCH_SIZES"
CRASH_VAR = "NPF_STANDIN_CRASH_BATCH_SIZES"
__version__ = "0.0+standin"


def _log(event: str, **fields: Any) -> None:
    path = os.environ.get(LOG_VAR)
    if not path:
        return
    record = {"event": event, "pid": os.getpid(), **fields}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


_log(
    "import",
    visible_cores=os.environ.get("NEURON_RT_VISIBLE_CORES"),
    num_cores=os.environ.get("NEURON_RT_NUM_CORES"),
)


def _batch_sizes(variable: str) -> set[int]:
    return {int(x) for x in os.environ.get(variable, "").split(",") if x.strip()}


def trace(
    func: Any,
    example_inputs: Any,
    compiler_workdir: Any = None,
    compiler_args: Any = None,
    **kwargs: Any,
) -> Any:
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    first = inputs[0] if inputs else None
    batch = int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() > 0 else 1
    _log(
        "trace",
        batch_size=batch,
        compiler_args=compiler_args,
        compiler_workdir=compiler_workdir,
        kwargs=sorted(kwargs),
        visible_cores=os.environ.get("NEURON_RT_VISIBLE_CORES"),
    )
    if batch in _batch_sizes(CRASH_VAR):
        os._exit(9)
    if batch in _batch_sizes(FAIL_VAR):
        raise RuntimeError(f"stand-in neuronx-cc: simulated compile failure for batch size {batch}")
    return torch.jit.trace(func, example_inputs)
