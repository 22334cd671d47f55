"""Turn the user's ``inputs`` into one model call (or a dataset) per batch size.

A model call is positional arguments and keyword arguments: a tuple is a
multi-input model's arguments (``model(*args)``), a mapping (a ``dict``, a
Hugging Face ``BatchEncoding``) its keyword arguments (``model(**kwargs)``),
anything else its one argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelInput:
    """What the workers of one configuration feed the model: a fixed call, or dataset items."""

    batch_size: int
    args: tuple[Any, ...] | None = None
    dataset: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    # How many inputs the user's list held (0: the inputs were not a list), for the hint when a
    # list of tensors was meant as one multi-input call.
    listed: int = 0

    @property
    def is_dataset(self) -> bool:
        return self.dataset is not None


def is_dataset(obj: object) -> bool:
    """A map-style dataset (``torch.utils.data.Dataset`` or anything with ``__getitem__``/``__len__``)."""
    if isinstance(obj, (list, tuple, str, bytes, Mapping)):
        return False
    if type(obj).__module__.startswith("torch") and type(obj).__name__ in ("Tensor", "Parameter"):
        return False
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not hasattr(obj, "shape")


def leading_dim(args: tuple[Any, ...], kwargs: Mapping[str, Any] | None = None) -> int:
    """The first dimension of the call's first tensor (positional first, then keyword values); 1 if none."""
    for x in (*args, *(kwargs or {}).values()):
        shape = getattr(x, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


def as_tuple(x: Any) -> tuple[Any, ...]:
    return x if isinstance(x, tuple) else (x,)


def as_call(x: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One input as the model call it stands for: ``(args, kwargs)``."""
    if isinstance(x, Mapping):
        keys = [k for k in x if not isinstance(k, str)]
        if keys:
            raise TypeError(
                f"inputs: a mapping is the model's keyword arguments, so its keys must be strings, got {keys[0]!r}"
            )
        return (), dict(x)
    return as_tuple(x), {}


def pair_inputs(inputs: Any, batch_sizes: Sequence[int] | None) -> list[ModelInput]:
    """Pair inputs with batch sizes by position, as the NeuronPerf guide describes.

    A single tensor becomes a one-element tuple; a tuple is one multi-input
    model's arguments; a mapping its keyword arguments; a list holds one input
    per batch size. Without ``batch_sizes`` the batch size is the leading
    dimension of each input's first tensor (1 for a dataset or a scalar).
    """
    if inputs is None:
        raise ValueError("inputs: required; pass a tensor, a tuple of tensors, a dict of keyword tensors, "
                         "a list of those, or a Dataset")
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
    calls = [as_call(item) for item in items]
    if batch_sizes is None:
        sizes = [leading_dim(args, kwargs) for args, kwargs in calls]
    else:
        sizes = list(batch_sizes)
        if len(sizes) != len(calls):
            raise ValueError(
                f"inputs and batch_sizes must pair by position: got {len(calls)} input(s) but "
                f"{len(sizes)} batch size(s) {sizes}; pass a list with one input per batch size"
            )
    listed = len(items) if isinstance(inputs, list) else 0
    return [ModelInput(batch_size=bs, args=args, kwargs=kwargs, listed=listed)
            for bs, (args, kwargs) in zip(sizes, calls, strict=True)]


def pair_index_inputs(inputs: Any, index_sizes: Sequence[int], batch_sizes: Sequence[int] | None,
                      where: str) -> list[ModelInput]:
    """Inputs for the batch sizes ``index_sizes`` of a model index (after the ``batch_sizes`` filter).

    The inputs given to ``compile`` usually hold one input per compiled batch size; a filter selects
    some of them by their leading dimension, and the other inputs are left out. When no input's leading
    dimension is a selected batch size (the batch is not the first dimension), inputs pair by position
    as in :func:`pair_inputs`. ``where`` names the index in messages.
    """
    selected = list(dict.fromkeys(index_sizes))
    if is_dataset(inputs):
        return pair_inputs(inputs, batch_sizes if batch_sizes is not None else selected[:1] or None)
    given = pair_inputs(inputs, None)
    by_dim: dict[int, ModelInput] = {}
    for mi in given:
        by_dim.setdefault(mi.batch_size, mi)
    if set(by_dim) & set(selected):
        missing = [bs for bs in selected if bs not in by_dim]
        if missing:
            raise ValueError(
                f"inputs: {where} has batch size(s) {missing} selected but no input has that leading dimension; "
                f"the inputs' leading dimensions are {sorted(by_dim)}; add an input for each, or select fewer "
                f"with batch_sizes= (the index holds {selected})"
            )
        return [by_dim[bs] for bs in selected]
    # The batch dimension is not the first one: the guide's pairing by position.
    if batch_sizes is not None and len(given) == len(batch_sizes):
        return pair_inputs(inputs, batch_sizes)
    if len(given) == len(selected):
        return pair_inputs(inputs, selected)
    raise ValueError(
        f"inputs: {where} has batch size(s) {selected} but the inputs' leading dimensions are "
        f"{[mi.batch_size for mi in given]}; give inputs whose first dimension is the batch size, or one input "
        f"per batch size in the order {selected}"
    )


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
