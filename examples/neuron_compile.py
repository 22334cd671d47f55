"""From a model to a compiled model index to a benchmark on NeuronCores (Inf2/Trn1/Trn2 with torch-neuronx).

    python examples/neuron_compile.py

Compiles the MLP for batch sizes 1 and 8 (each compilation in a child process, cached under
models/.cache), writes models/TinyMLP.json, then benchmarks every compiled configuration over
the data-parallel matrix. On a machine without NeuronCores it says so and stops.
"""

from __future__ import annotations

import sys

import torch
from models import TinyMLP

import pytest_neuronperf as npf
from pytest_neuronperf.backends import get_backend

if __name__ == "__main__":
    reason = get_backend("neuron").unavailable_reason()
    if reason is not None:
        sys.exit(f"skipping: {reason}")
    inputs = [torch.randn(1, 64), torch.randn(8, 64)]
    index = npf.torch.compile(TinyMLP(), inputs, batch_sizes=[1, 8], models_dir="models",
                              compiler_args=["--auto-cast", "matmult"])
    reports = npf.torch.benchmark(index, inputs, batch_sizes=[1, 8], duration=10)  # device_type="neuron"
    npf.print_reports(reports)
