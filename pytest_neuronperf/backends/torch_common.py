"""Model loading shared by the torch-based backends (runs inside a model copy)."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.backends.model_files import exported_module, load_model_file, set_eval_mode
from pytest_neuronperf.spec.model_source import ModelSource


def load_torch_model(source: ModelSource, device: str, device_index: int = -1) -> Any:
    """Load a model file or instantiate a model class on ``device``, in eval mode where it has one.

    A factory may return an ``ExportedProgram`` (its module is what runs) or the module of one.
    """
    import torch

    if source.kind == "torchscript":
        assert source.path is not None
        model = load_model_file(source.path, device, device_index)
    else:
        model = source.instantiate()
        if isinstance(model, torch.export.ExportedProgram):
            model = exported_module(model, device)
        elif isinstance(model, torch.nn.Module):
            model = model.to(device)
    return set_eval_mode(model)


def move_inputs(inputs: tuple[Any, ...], device: str) -> tuple[Any, ...]:
    import torch

    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)


def inference_context() -> Any:
    """Gradient tracking off for the whole copy: benchmarks measure inference."""
    import torch

    return torch.inference_mode()


def explain_torch_error(error_text: str) -> str | None:
    """Plain words for torch errors that a copy on any device can hit: torch.compile's C++ toolchain."""
    if "InvalidCxxCompiler" in error_text:
        return (
            "torch.compile (compile_mode) found no C++ compiler: its inductor backend builds the compiled "
            "model with one; install g++ (or clang++), or point the CXX environment variable at one, or "
            "benchmark without compile_mode"
        )
    if "CppCompileError" in error_text:
        return (
            "torch.compile (compile_mode) could not build the compiled model: the C++ compiler failed (its "
            "output is in the traceback below; missing Python headers, python3-dev, are a common cause); fix "
            "the toolchain, or benchmark without compile_mode"
        )
    return None
