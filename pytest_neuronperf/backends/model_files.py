"""Model files: TorchScript archives, ``torch.export`` programs and AOTInductor packages.

All three are zip archives, and ``.pt2`` names both of the latter, so the kind is read from the
archive's entries (never by trying loaders in turn, which would hide the real load error):
TorchScript keeps ``<root>/data.pkl`` and ``<root>/code/``, ``torch.export.save`` writes
``<root>/models/*.json`` (``serialized_exported_program.json`` before torch 2.6), and
``aoti_compile_and_package`` adds compiled code under ``<root>/data/aotinductor/``.
"""

from __future__ import annotations

import contextlib
import zipfile
from typing import Any, Final, Literal

ModelFileKind = Literal["torchscript", "exported_program", "aoti_package", "unknown"]

DESCRIPTIONS: Final[dict[str, str]] = {
    "torchscript": "a TorchScript archive (torch.jit.save)",
    "exported_program": "an ExportedProgram (torch.export.save)",
    "aoti_package": "an AOTInductor package (torch._inductor.aoti_compile_and_package)",
}
SAVE_HINT: Final = (
    "save a TorchScript file with torch.jit.save, an ExportedProgram with torch.export.save, or an "
    "AOTInductor package with torch._inductor.aoti_compile_and_package"
)


def model_file_kind(path: str) -> ModelFileKind:
    """What the archive at ``path`` holds, from its entry names; "unknown" for other zips."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return "unknown"
    # Entries sit under one root folder whose name is free (the file's stem, "archive", ...).
    inner = {name.split("/", 1)[1] if "/" in name else name for name in names}
    if any(name.startswith("data/aotinductor/") for name in inner):
        return "aoti_package"
    if any(name.startswith("models/") and name.endswith(".json") for name in inner) or (
        "serialized_exported_program.json" in inner
    ):
        return "exported_program"
    if "data.pkl" in inner or any(name.startswith("code/") for name in inner):
        return "torchscript"
    return "unknown"


def load_model_file(path: str, device: str | None, device_index: int = -1) -> Any:
    """Load the model file at ``path`` with the loader its kind needs, placed on ``device``.

    ``device`` None leaves placement to the artifact (a Neuron model places itself as it loads);
    ``device_index`` is the GPU an AOTInductor package loads onto (-1: its default).
    """
    kind = model_file_kind(path)
    if kind == "exported_program":
        return _load_exported(path, device)
    if kind == "aoti_package":
        return _load_aoti(path, device_index)
    if kind == "torchscript":
        return _load_torchscript(path, device)
    return _load_unknown(path, device)


def _load_torchscript(path: str, device: str | None) -> Any:
    import torch

    try:
        return torch.jit.load(path, map_location=device)  # type: ignore[no-untyped-call]
    except RuntimeError as exc:
        raise ValueError(
            f"model: {path!r} could not be loaded with torch.jit.load ({exc}); "
            "is it a TorchScript file saved with torch.jit.save?"
        ) from exc


def _load_exported(path: str, device: str | None) -> Any:
    import torch

    try:
        program = torch.export.load(path)
    except Exception as exc:  # torch raises RuntimeError, KeyError, ... for a damaged or foreign archive
        raise ValueError(
            f"model: {path!r} holds {DESCRIPTIONS['exported_program']} but torch.export.load failed "
            f"({type(exc).__name__}: {exc}); save it again with torch.export.save under this torch "
            f"({torch.__version__})"
        ) from exc
    return exported_module(program, device)


def exported_module(program: Any, device: str | None) -> Any:
    """The callable module of an ``ExportedProgram``, its weights on ``device``."""
    if device is not None and device != "cpu":
        try:
            from torch.export.passes import move_to_device_pass
        except ImportError:  # torch < 2.5: the unlifted module moves like any other
            return program.module().to(device)
        program = move_to_device_pass(program, device)
    return program.module()


def _load_aoti(path: str, device_index: int) -> Any:
    import torch

    loader = getattr(torch._inductor, "aoti_load_package", None)
    if loader is None:
        raise ValueError(
            f"model: {path!r} is {DESCRIPTIONS['aoti_package']}, but torch {torch.__version__} has no "
            "torch._inductor.aoti_load_package to load it (torch >= 2.6 has); upgrade torch, or benchmark "
            "the ExportedProgram (torch.export.save) instead"
        )
    try:
        return loader(path, device_index=device_index)
    except Exception as exc:  # the C++ loader raises RuntimeError; a package built elsewhere, others
        raise ValueError(
            f"model: {path!r} is {DESCRIPTIONS['aoti_package']} but torch._inductor.aoti_load_package "
            f"failed ({type(exc).__name__}: {exc}); packages load only with the torch version and the "
            "device type they were compiled for"
        ) from exc


def _load_unknown(path: str, device: str | None) -> Any:
    import torch

    try:
        return torch.jit.load(path, map_location=device)  # type: ignore[no-untyped-call]
    except RuntimeError as jit_error:
        try:
            program = torch.export.load(path)
        except Exception as export_error:
            raise ValueError(
                f"model: {path!r} could not be loaded with torch.jit.load ({jit_error}) nor with "
                f"torch.export.load ({type(export_error).__name__}: {export_error}); {SAVE_HINT}"
            ) from jit_error
        return exported_module(program, device)


def set_eval_mode(model: Any) -> Any:
    """``model.eval()`` where the model supports it; returns the model.

    The module of an ``ExportedProgram`` refuses it ("Calling eval() is not supported yet"): it
    runs as it was exported, so a model exported after ``.eval()`` is already in inference mode.
    """
    if hasattr(model, "eval"):
        with contextlib.suppress(NotImplementedError):
            model.eval()
    return model
