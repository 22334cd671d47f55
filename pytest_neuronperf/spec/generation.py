"""A generative (streaming) model's request shape: how long its prompts and its outputs are.

``streaming=True`` declares a model whose call streams its output token by token
(:mod:`pytest_neuronperf.runner.tokens` drives it). Prompt and output lengths are set
explicitly, so that a baseline stays comparable: ``output_tokens`` (new tokens per request) and
``input_tokens`` (a prompt the runner builds) are an int, or a list of ints that requests take in
turn (request i takes item ``i % len``), the same list in every round and every run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_neuronperf.spec.params import optional_callable


@dataclass(frozen=True)
class Generation:
    """How a streaming model's requests are made; None of a field: the model's own choice."""

    output_tokens: tuple[int, ...] | None = None
    input_tokens: tuple[int, ...] | None = None
    generate_fn: Callable[..., Any] | None = None

    def text(self) -> str:
        """The request shape a baseline must share to be compared: ``input_tokens=16 output_tokens=16/32``."""
        parts = [f"{name}={'/'.join(map(str, lengths))}" for name, lengths in
                 (("input_tokens", self.input_tokens), ("output_tokens", self.output_tokens)) if lengths is not None]
        return " ".join(parts) or "streaming"

    def output_of(self, request: int) -> int | None:
        """How many new tokens request ``request`` asks for (None: as many as the model yields)."""
        lengths = self.output_tokens
        return None if lengths is None else lengths[request % len(lengths)]

    def input_of(self, request: int) -> int | None:
        lengths = self.input_tokens
        return None if lengths is None else lengths[request % len(lengths)]


def _lengths(name: str, value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    items: Sequence[object] = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{name}: the list is empty; give a token count such as {name}=32, or a list of them")
    for item in items:
        if not isinstance(item, int) or isinstance(item, bool) or item < 1:
            raise ValueError(f"{name}: expected a whole number of tokens >= 1, or a list of them (requests take "
                             f"them in turn), got {value!r}")
    return tuple(int(i) for i in items)  # type: ignore[call-overload]


def generation(streaming: object, output_tokens: object, input_tokens: object, generate_fn: object, *,
               must_pickle: bool) -> Generation | None:
    """The checked request shape of a streaming model; None when ``streaming`` is off.

    ValueError naming the parameter for a bad value, or for a generative parameter without
    ``streaming=True`` (it would be ignored, and the numbers would not be what was asked for).
    """
    if not isinstance(streaming, bool):
        raise ValueError(f"streaming: expected True or False, got {streaming!r}")
    if not streaming:
        given = [name for name, value in (("output_tokens", output_tokens), ("input_tokens", input_tokens),
                                          ("generate_fn", generate_fn)) if value is not None]
        if given:
            raise ValueError(f"{given[0]}: applies to a generative model, whose call streams its tokens; add "
                             f"streaming=True (or drop {given[0]})")
        return None
    fn = optional_callable("generate_fn", generate_fn, must_pickle=must_pickle)
    return Generation(_lengths("output_tokens", output_tokens), _lengths("input_tokens", input_tokens), fn)
