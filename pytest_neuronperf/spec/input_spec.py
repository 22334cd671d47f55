"""``--inputs`` of ``npf run`` and ``npf ab``: random model inputs written on the command line.

    INPUTS := CALL ("," CALL)*              one input per batch size
    CALL   := ARG ((";" | " ") ARG)*        one model call's arguments: all positional, or all named
    ARG    := [NAME "="] SHAPE [":" DTYPE [":" LOW "-" HIGH]]
    SHAPE  := SIZE ("x" SIZE)*              such as 1x3x224x224

A floating-point argument is ``torch.randn(SHAPE)`` (``torch.rand`` scaled to [LOW, HIGH) with a
range); an integer one is drawn uniformly from LOW..HIGH, both included (default 0-1, a valid
token id and mask value for any model); a bool one likewise from 0-1. Named arguments make a dict,
which the model is called with as keyword arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

GRAMMAR: Final = (
    "the form is [NAME=]SHAPE[:DTYPE[:LOW-HIGH]], such as 1x64, 1x32:int64:0-30000 or "
    "input_ids=1x32:int64:0-30000; ';' or a space between one call's arguments, ',' between batch sizes"
)

# Names torch and people use for each dtype, to torch's attribute name.
DTYPES: Final[dict[str, str]] = {
    **dict.fromkeys(("float32", "float", "fp32", "f32"), "float32"),
    **dict.fromkeys(("float16", "half", "fp16", "f16"), "float16"),
    **dict.fromkeys(("bfloat16", "bf16"), "bfloat16"),
    **dict.fromkeys(("float64", "double", "fp64", "f64"), "float64"),
    **dict.fromkeys(("int64", "long", "i64"), "int64"),
    **dict.fromkeys(("int32", "int", "i32"), "int32"),
    **dict.fromkeys(("int16", "short", "i16"), "int16"),
    **dict.fromkeys(("int8", "i8"), "int8"),
    **dict.fromkeys(("uint8", "u8"), "uint8"),
    "bool": "bool",
}
FLOAT_DTYPES: Final = frozenset({"float32", "float16", "bfloat16", "float64"})
DEFAULT_INT_RANGE: Final = (0, 1)
# The values each integer dtype holds, so that a range cannot wrap around.
INT_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "bool": (0, 1), "uint8": (0, 255), "int8": (-128, 127), "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 2),
}

_NUMBER = r"-?\d+(?:\.\d+)?"
_RANGE = re.compile(rf"^({_NUMBER})-({_NUMBER})$")
_NAME = re.compile(r"^[A-Za-z_]\w*$")


class InputSpecError(ValueError):
    """A bad ``--inputs`` value; the message names the option, the bad part and the grammar."""


@dataclass(frozen=True)
class ArgSpec:
    """One tensor: its shape, torch dtype name and value range (None: the dtype's default)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None
    name: str | None = None


@dataclass(frozen=True)
class CallSpec:
    """One model call: positional arguments, or named ones (keyword arguments)."""

    args: tuple[ArgSpec, ...]

    @property
    def named(self) -> bool:
        return self.args[0].name is not None


def _fail(problem: str, text: str) -> InputSpecError:
    return InputSpecError(f"--inputs: {problem} in {text!r}; {GRAMMAR}")


def parse_arg(text: str) -> ArgSpec:
    """One ``[NAME=]SHAPE[:DTYPE[:LOW-HIGH]]``."""
    word = text.strip()
    name = None
    if "=" in word:
        name, word = (part.strip() for part in word.split("=", 1))
        if not _NAME.match(name):
            raise _fail(f"{name!r} is not a Python identifier, so it cannot name a keyword argument", text)
    parts = word.split(":")
    if len(parts) > 3:
        raise _fail("too many ':' (at most SHAPE:DTYPE:LOW-HIGH)", text)
    shape = _shape(parts[0], text)
    dtype = "float32"
    if len(parts) > 1:
        key = parts[1].strip().lower()
        if key not in DTYPES:
            choices = ", ".join(sorted(set(DTYPES.values())))
            raise _fail(f"unknown dtype {parts[1]!r} (choose from {choices})", text)
        dtype = DTYPES[key]
    low = high = None
    if len(parts) > 2:
        low, high = _range(parts[2], dtype, text)
    return ArgSpec(shape=shape, dtype=dtype, low=low, high=high, name=name)


def _shape(word: str, text: str) -> tuple[int, ...]:
    sizes = [w.strip() for w in word.strip().lower().split("x")]
    if not all(w.isdigit() and int(w) > 0 for w in sizes):
        raise _fail("expected a shape such as 1x64 (positive sizes joined by x)", text)
    return tuple(int(w) for w in sizes)


def _range(word: str, dtype: str, text: str) -> tuple[float, float]:
    match = _RANGE.match(word.strip())
    if match is None:
        raise _fail(f"expected a range LOW-HIGH such as 0-30000, got {word!r}", text)
    low, high = float(match.group(1)), float(match.group(2))
    if low > high:
        raise _fail(f"the range {word!r} has LOW above HIGH", text)
    if dtype not in FLOAT_DTYPES:
        if not (low.is_integer() and high.is_integer()):
            raise _fail(f"{dtype} values need a range of whole numbers, got {word!r}", text)
        lowest, highest = INT_BOUNDS[dtype]
        if low < lowest or high > highest:
            raise _fail(f"{dtype} values lie in {lowest}-{highest}, got {word!r}", text)
    return low, high


def parse(words: str | Sequence[str]) -> list[CallSpec]:
    """The ``--inputs`` words (argparse's list, or one string) as one call per batch size."""
    text = words if isinstance(words, str) else " ".join(words)
    if not text.strip():
        raise InputSpecError(f"--inputs: expected at least one shape such as 1x64; {GRAMMAR}")
    calls = []
    for item in text.split(","):
        if not item.strip():
            raise _fail("an empty input between ','", text)
        args = tuple(parse_arg(arg) for arg in re.split(r"[;\s]+", item.strip()) if arg)
        named = [a.name for a in args if a.name is not None]
        if named and len(named) != len(args):
            raise _fail("some arguments of one call are named and some are not; name all of them or none", item)
        duplicates = sorted({n for n in named if named.count(n) > 1})
        if duplicates:
            raise _fail(f"the argument name {duplicates[0]!r} is given twice", item)
        calls.append(CallSpec(args))
    return calls


def make_tensor(spec: ArgSpec) -> Any:
    import torch

    dtype = getattr(torch, spec.dtype)
    if spec.dtype in FLOAT_DTYPES:
        if spec.low is None or spec.high is None:
            return torch.randn(*spec.shape, dtype=dtype)
        return torch.rand(*spec.shape, dtype=dtype) * (spec.high - spec.low) + spec.low
    low, high = (spec.low, spec.high) if spec.low is not None and spec.high is not None else DEFAULT_INT_RANGE
    values = torch.randint(int(low), int(high) + 1, spec.shape, dtype=torch.int64)
    return values.to(dtype)


def make_inputs(calls: Sequence[CallSpec]) -> Any:
    """The benchmark's ``inputs``: a tensor, a tuple, or a dict per call; a list of those for several."""
    items: list[Any] = []
    for call in calls:
        if call.named:
            items.append({a.name: make_tensor(a) for a in call.args})
        else:
            tensors = tuple(make_tensor(a) for a in call.args)
            items.append(tensors[0] if len(tensors) == 1 else tensors)
    return items[0] if len(items) == 1 else items
