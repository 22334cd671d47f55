"""Model loading shared by the torch-based backends (runs inside a model copy)."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.spec.model_source import ModelSource


def load_torch_model(source: ModelSource, device: str) -> Any:
    """Load a TorchScript artifact or instantiate a model class on ``device``, in eval mode."""
    import torch

    if source.kind == "torchscript":
        assert source.path is not None
        try:
            model = torch.jit.load(source.path, map_location=device)  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            raise ValueError(
                f"model: {source.path!r} could not be loaded with torch.jit.load ({exc}); "
                "is it a TorchScript file saved with torch.jit.save?"
            ) from exc
    else:
        model = source.instantiate()
        if isinstance(model, torch.nn.Module):
            model = model.to(device)
    if hasattr(model, "eval"):
        model.eval()
    return model


def move_inputs(inputs: tuple[Any, ...], device: str) -> tuple[Any, ...]:
    import torch

    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)


def inference_context() -> Any:
    """Gradient tracking off for the whole copy: benchmarks measure inference."""
    import torch

    return torch.inference_mode()
