"""Turn the user's ``inputs`` into one input tuple (or a dataset) per batch size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInput:
    """What the workers of one configuration feed the model: a fixed tuple, or dataset items."""

    batch_size: int
    args: tuple[Any, ...] | None = None
    dataset: Any = None

    @property
    def is_dataset(self) -> bool:
        return self.dataset is not None


def is_dataset(obj: object) -> bool:
    """A map-style dataset (``torch.utils.data.Dataset`` or anything with ``__getitem__``/``__len__``)."""
    if isinstance(obj, (list, tuple, str, bytes, dict)):
        return False
    if type(obj).__module__.startswith("torch") and type(obj).__name__ in ("Tensor", "Parameter"):
        return False
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not hasattr(obj, "shape")


def leading_dim(args: tuple[Any, ...]) -> int:
    for x in args:
        shape = getattr(x, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


def as_tuple(x: Any) -> tuple[Any, ...]:
    return x if isinstance(x, tuple) else (x,)


def pair_inputs(inputs: Any, batch_sizes: Sequence[int] | None) -> list[ModelInput]:
    """Pair inputs with batch sizes by position, as the NeuronPerf guide describes.

    A single tensor becomes a one-element tuple; a tuple is one multi-input
    model's arguments; a list holds one input per batch size. Without
    ``batch_sizes`` the batch size is the leading dimension of each input's
    first tensor (1 for a dataset or a scalar).
    """
    if inputs is None:
        raise ValueError("inputs: required; pass a tensor, a tuple of tensors, a list of those, or a Dataset")
    if is_dataset(inputs):
        _check_dataset_length(inputs)
        sizes = list(batch_sizes) if batch_sizes else [1]
        if len(sizes) != 1:
            raise ValueError(
                f"batch_sizes: a Dataset is one input, so give one batch size, got {len(sizes)} ({sizes})"
            )
        return [ModelInput(batch_size=sizes[0], dataset=inputs)]
    items = list(inputs) if isinstance(inputs, list) else [inputs]
    if not items:
        raise ValueError("inputs: the list is empty; give one input per batch size")
    tuples = [as_tuple(item) for item in items]
    if batch_sizes is None:
        sizes = [leading_dim(t) for t in tuples]
    else:
        sizes = list(batch_sizes)
        if len(sizes) != len(tuples):
            raise ValueError(
                f"inputs and batch_sizes must pair by position: got {len(tuples)} input(s) but "
                f"{len(sizes)} batch size(s) {sizes}; pass a list with one input per batch size"
            )
    return [ModelInput(batch_size=bs, args=t) for bs, t in zip(sizes, tuples, strict=True)]


def _check_dataset_length(dataset: Any) -> None:
    # An empty dataset would run no inference at all: warm-up has no item to feed, and without
    # warm-up the window would close at once with nothing timed, so refuse it before any copy starts.
    try:
        length = len(dataset)
    except Exception as exc:
        raise ValueError(f"inputs: len() of the Dataset raised {type(exc).__name__}: {exc}") from exc
    if length == 0:
        raise ValueError(
            f"inputs: the Dataset is empty ({type(dataset).__name__} has len() 0); give a Dataset with at least "
            "one item (with loop_dataset=True it is repeated until the duration ends)"
        )
