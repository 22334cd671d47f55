"""Small models and compile functions for the tests; importable in spawned processes via sys.path."""

from __future__ import annotations

from typing import Any

import torch


class TinyModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


class PairModel(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 2 + y


def make_tiny() -> TinyModel:
    return TinyModel()


def cpu_trace(model: Any, inputs: tuple[Any, ...], compiler_args: Any = None, pipeline_size: int = 1) -> Any:
    """A compile_fn that traces on the CPU and logs its call like the stand-in torch_neuronx."""
    import torch_neuronx

    torch_neuronx._log("compile_fn", batch_size=int(inputs[0].shape[0]), pipeline_size=pipeline_size,
                       compiler_args=compiler_args)
    return torch.jit.trace(model, inputs)


def interrupting_compile(
    model: Any, inputs: tuple[Any, ...], compiler_args: Any = None, pipeline_size: int = 1
) -> Any:
    """A compile_fn that is interrupted (as by Ctrl-C) when it reaches batch size 2."""
    if int(inputs[0].shape[0]) == 2:
        raise KeyboardInterrupt
    return torch.jit.trace(model, inputs)
