"""Generative models: drive a streaming call token by token and time every token.

A request is one call of a streaming model (``streaming=True``), made in one of three ways
(:func:`driver_for`): a Hugging Face style model (it has ``generate`` and a ``config``) is run
through ``generate(..., streamer=...)`` with a streamer of ours; with ``generate_fn``,
``generate_fn(model, *inputs)`` returns the stream; otherwise the model's own call does. A stream
yields items: an int (one token id), or a tensor, array or list of token ids, which counts as many
tokens as its last dimension holds (leading dimensions are the batch).

Each item's arrival is stamped on the runner's clock. Per request that gives the time to first
token (TTFT, from the request's start, or its scheduled arrival under open-loop load), the time per
output token after the first (TPOT: (last - first) / (tokens - 1)), every inter-token gap (ITL) and
the end-to-end latency; every token inside the window counts towards the output tokens/s.
"""

from __future__ import annotations

import contextlib
import itertools
import numbers
import reprlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.runner.recorder import TRACE_CAP, LatencySummary
from pytest_neuronperf.spec.generation import Generation

I64 = npt.NDArray[np.int64]

# Per request: when it ended, its TTFT, TPOT (-1 with a single token) and end-to-end latency (ns), its tokens.
REQUEST_COLUMNS = ("end_ns", "ttft_ns", "tpot_ns", "e2e_ns", "tokens")

# Called with each item's token count; True asks the stream to stop (the window closed, or the request
# has its output_tokens).
OnToken = Callable[[int], bool]


class StreamError(TypeError):
    """A streaming model's output is not a stream of tokens."""


@dataclass
class TokenStats:
    """What one worker's (or a merge of workers') streamed requests measured; mergeable."""

    ttft: LatencySummary = field(default_factory=LatencySummary)
    tpot: LatencySummary = field(default_factory=LatencySummary)
    itl: LatencySummary = field(default_factory=LatencySummary)
    prefill: LatencySummary = field(default_factory=LatencySummary)
    decode: LatencySummary = field(default_factory=LatencySummary)
    requests: int = 0  # completed with at least one token
    failed: int = 0  # completed with none
    output_tokens: int = 0  # of the completed requests, per sequence
    input_tokens: int = 0
    inputs_counted: int = 0  # requests whose prompt length was known
    asked_tokens: int = 0  # of the requests that asked for a number of tokens
    short: int = 0  # requests that yielded fewer tokens than they asked for
    token_bins: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    table: list[I64] = field(default_factory=list)  # rows of REQUEST_COLUMNS, at most TRACE_CAP

    def merge(self, other: TokenStats) -> None:
        for name in ("ttft", "tpot", "itl", "prefill", "decode"):
            getattr(self, name).merge(getattr(other, name))
        for name in ("requests", "failed", "output_tokens", "input_tokens", "inputs_counted", "asked_tokens",
                     "short"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if self.token_bins.size < other.token_bins.size:
            self.token_bins = np.pad(self.token_bins, (0, other.token_bins.size - self.token_bins.size))
        self.token_bins[: other.token_bins.size] += other.token_bins
        self.table.extend(other.table)

    def requests_table(self) -> I64:
        """Every recorded request's row of :data:`REQUEST_COLUMNS` (a 0 x 5 array when none)."""
        if not self.table:
            return np.zeros((0, len(REQUEST_COLUMNS)), dtype=np.int64)
        return np.concatenate(self.table)


class TokenRecorder:
    """Folds one worker's requests into a :class:`TokenStats`.

    A request only appends to short Python lists (its tokens' stamps, its TTFT, TPOT and gaps); every
    ``FOLD_TOKENS`` tokens or ``FOLD_REQUESTS`` requests they are folded with numpy, as the latency
    recorder does, so the time between two requests of a worker stays the loop's own.
    """

    FOLD_TOKENS = 1 << 16
    FOLD_REQUESTS = 1024

    def __init__(self, window_start_ns: int, bin_ns: int, n_bins: int, window_stop_ns: int) -> None:
        self.stats = TokenStats(token_bins=np.zeros(n_bins, dtype=np.int64))
        self._start = window_start_ns
        self._stop = window_stop_ns
        self._bin_ns = bin_ns
        self._rows: list[tuple[int, int, int, int, int]] = []
        self._traced = 0
        self._times: list[int] = []
        self._counts: list[int] = []
        self._ttft: list[int] = []
        self._tpot: list[int] = []
        self._gaps: list[int] = []

    def request(self, ref_ns: int, times: list[int], counts: list[int], end_ns: int | None,
                asked: int | None, input_tokens: int | None) -> None:
        """One request that started (or was scheduled to arrive) at ``ref_ns`` and yielded items at ``times``.

        ``end_ns`` None: the window closed before it finished; only its tokens inside the window count.
        """
        s = self.stats
        if times:
            self._times += times
            self._counts += counts
        if end_ns is not None:
            n = sum(counts)
            if n == 0:
                s.failed += 1
            else:
                s.requests += 1
                s.output_tokens += n
                if input_tokens is not None:
                    s.input_tokens += input_tokens
                    s.inputs_counted += 1
                if asked is not None:
                    s.asked_tokens += asked
                    s.short += n < asked
                first, last = times[0], times[-1]
                ttft = first - ref_ns
                tpot = (last - first) // (n - 1) if n > 1 else -1
                self._ttft.append(ttft)
                if n > 1:
                    self._tpot.append(tpot)
                if len(times) > 1:
                    self._gaps += [b - a for a, b in itertools.pairwise(times)]
                if self._traced < TRACE_CAP:
                    self._rows.append((end_ns, ttft, tpot, end_ns - ref_ns, n))
                    self._traced += 1
        if len(self._times) >= self.FOLD_TOKENS or len(self._ttft) >= self.FOLD_REQUESTS:
            self._fold()

    def _fold(self) -> None:
        s = self.stats
        if self._times:
            t = np.asarray(self._times, dtype=np.int64)
            c = np.asarray(self._counts, dtype=np.int64)
            inside = t <= self._stop
            bins = np.clip((t[inside] - self._start) // self._bin_ns, 0, s.token_bins.size - 1)
            s.token_bins += np.bincount(bins, weights=c[inside], minlength=s.token_bins.size).astype(np.int64)
        for summary, values in ((s.ttft, self._ttft), (s.tpot, self._tpot), (s.itl, self._gaps)):
            if values:
                summary.add(np.asarray(values, dtype=np.int64))
        self._times, self._counts, self._ttft, self._tpot, self._gaps = [], [], [], [], []

    def phase(self, name: str, seconds: float) -> None:
        summary = self.stats.prefill if name == "prefill" else self.stats.decode
        summary.add(np.array([int(seconds * 1e9)], dtype=np.int64))

    def finish(self) -> TokenStats:
        self._fold()
        s = self.stats
        if self._rows:
            rows = np.array(self._rows, dtype=np.int64)
            s.table.append(rows)
            # Exact percentiles and effective sample sizes come from these time-ordered traces.
            s.ttft.traces.append(rows[:, 1].copy())
            tpot = rows[:, 2]
            s.tpot.traces.append(tpot[tpot >= 0].copy())
        self._rows = []
        s.ttft.complete = s.ttft.count == sum(t.size for t in s.ttft.traces)
        s.tpot.complete = s.tpot.count == sum(t.size for t in s.tpot.traces)
        for summary in (s.itl, s.prefill, s.decode):
            summary.complete = False
        return s


def count_tokens(item: object) -> int:
    """How many tokens one streamed item holds; StreamError for something that is no token."""
    if type(item) is int:  # the common case first: an ABC isinstance costs more than the rest of a token
        return 1
    if isinstance(item, (bool, str, bytes)):
        raise StreamError(_not_a_token(item))
    if isinstance(item, numbers.Integral):
        return 1
    shape = getattr(item, "shape", None)
    if shape is not None and hasattr(item, "dtype"):
        return 1 if len(shape) == 0 else int(shape[-1])
    if isinstance(item, (list, tuple)):
        inner: object = item
        while isinstance(inner, (list, tuple)) and inner and isinstance(inner[0], (list, tuple)):
            inner = inner[0]
        assert isinstance(inner, (list, tuple))
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in inner):
            return len(inner)
    raise StreamError(_not_a_token(item))


def _short(obj: object) -> str:
    r = reprlib.Repr()
    r.maxstring = r.maxother = 40
    return r.repr(obj)


def _not_a_token(item: object) -> str:
    shown = _short(item)
    text = ""
    if isinstance(item, str):
        text = ("; text chunks (a TextIteratorStreamer's) are not tokens: yield token ids, or give the Hugging "
                "Face model itself, whose generate() the runner drives with a streamer of its own")
    return (f"streaming=True: the model's stream yielded {type(item).__name__} {shown}; expected tokens: an int "
            f"(a token id), or a tensor, array or list of token ids (counted by the last dimension){text}")


class _StopStream(Exception):
    """Raised from our streamer's put() to end a Hugging Face generate() when the window closes."""


class _Streamer:
    """A transformers streamer (put/end) that counts one token per sequence for each generated step.

    ``generate`` first puts the prompt; that is skipped.
    """

    def __init__(self, on_token: OnToken) -> None:
        self._on_token = on_token
        self._prompt = True

    def put(self, value: Any) -> None:
        if self._prompt:
            self._prompt = False
            return
        if self._on_token(1):
            raise _StopStream

    def end(self) -> None:
        pass


def is_hugging_face(model: object) -> bool:
    return callable(getattr(model, "generate", None)) and getattr(model, "config", None) is not None


@dataclass
class Driver:
    """Runs one streaming request of a copy's model; built once per copy, after the model loaded."""

    model: Any
    generation: Generation
    kind: str  # "hugging_face" | "generate_fn" | "call"
    vocab_size: int | None = None
    _prompts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)

    def prompt(self, request: int, batch_size: int) -> dict[str, Any] | None:
        """The runner-built prompt of ``request`` (input_tokens), as generate()'s keyword arguments."""
        length = self.generation.input_of(request)
        if length is None:
            return None
        key = (length, batch_size)
        if key not in self._prompts:
            import torch

            assert self.vocab_size is not None
            g = torch.Generator().manual_seed(length)
            ids = torch.randint(0, self.vocab_size, (batch_size, length), generator=g, dtype=torch.int64)
            self._prompts[key] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return self._prompts[key]

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any], request: int, on_token: OnToken) -> None:
        """One request: the stream is read until it ends or ``on_token`` asks to stop."""
        asked = self.generation.output_of(request)
        if self.kind == "hugging_face":
            self._generate(args, kwargs, asked, on_token)
            return
        fn = self.generation.generate_fn
        out = fn(self.model, *args, **kwargs) if fn is not None else self.model(*args, **kwargs)
        stream = _stream_of(out, "generate_fn" if fn is not None else "the model's call")
        total = 0
        try:
            for item in stream:
                n = count_tokens(item)
                if n == 0:
                    continue
                if asked is not None and total + n > asked:
                    n = asked - total
                total += n
                if on_token(n) or (asked is not None and total >= asked):
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _generate(self, args: tuple[Any, ...], kwargs: dict[str, Any], asked: int | None, on_token: OnToken) -> None:
        options: dict[str, Any] = {"streamer": _Streamer(on_token)}
        if asked is not None:
            options["max_new_tokens"] = options["min_new_tokens"] = asked
        config = getattr(self.model, "generation_config", None)
        if config is not None and getattr(config, "pad_token_id", None) is None \
                and getattr(config, "eos_token_id", None) is not None:
            eos = config.eos_token_id
            options["pad_token_id"] = eos[0] if isinstance(eos, list) else eos
        with contextlib.suppress(_StopStream):
            self.model.generate(*args, **kwargs, **options)


def _stream_of(out: object, what: str) -> Iterator[Any]:
    if isinstance(out, (str, bytes)) or hasattr(out, "shape") or not hasattr(out, "__iter__"):
        shown = _short(out)
        raise StreamError(
            f"streaming=True: {what} returned {type(out).__name__} {shown}, not a stream of tokens; a streaming "
            "model's call returns an iterator (a generator that yields each new token), or give generate_fn= "
            "that does, or a Hugging Face model (with generate())")
    return iter(out)


def driver_for(model: Any, generation: Generation) -> Driver:
    """How this copy's model streams: through generate() (Hugging Face), generate_fn, or its own call."""
    if generation.generate_fn is not None:
        kind = "generate_fn"
    elif is_hugging_face(model):
        kind = "hugging_face"
    else:
        kind = "call"
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if generation.input_tokens is not None and not isinstance(vocab, int):
        raise ValueError(
            f"input_tokens: the runner builds prompts of random token ids below the model's config.vocab_size, and "
            f"{type(model).__name__} has no config.vocab_size; give the prompt as inputs= instead")
    return Driver(model, generation, kind, vocab if isinstance(vocab, int) else None)


def prompt_tokens(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The prompt length of a request's call: the last dimension of ``input_ids`` or of its first tensor."""
    ids = kwargs.get("input_ids")
    for x in (ids, *args, *kwargs.values()):
        shape = getattr(x, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[-1])
        if isinstance(x, (list, tuple)) and x and all(isinstance(v, numbers.Integral) for v in x):
            return len(x)
    return None
