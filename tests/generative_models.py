"""Streaming (generative) models for the tests, at module top level so model-copy processes can import them.

Timings are set exactly: the synthetic generator sleeps to each token's scheduled time (prefill, then a fixed
time per token), so worker threads of one copy do not hold the GIL while they wait, as a device would not.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from pytest_neuronperf.phases import record_phase

clock = time.monotonic_ns


def sleep_until(t_ns: int) -> None:
    left = t_ns - clock()
    if left > 0:
        time.sleep(left / 1e9)


class Synthetic:
    """Prefill ``prefill_ms``, then ``decode_ms`` per token, ``tokens`` tokens (each an int token id).

    NPF_GEN_DECODE_MS, when set, overrides the decode time: how a test slows decode alone.
    """

    def __init__(self, prefill_ms: float = 2.0, decode_ms: float = 0.5, tokens: int = 8) -> None:
        decode_ms = float(os.environ.get("NPF_GEN_DECODE_MS", decode_ms))
        self.prefill_ns, self.decode_ns, self.tokens = int(prefill_ms * 1e6), int(decode_ms * 1e6), tokens

    def __call__(self, x: Any) -> Iterator[int]:
        t = clock()
        for i in range(self.tokens):
            t += self.prefill_ns if i == 0 else self.decode_ns
            sleep_until(t)
            yield i


def synthetic() -> Synthetic:
    return Synthetic()


def long_stream() -> Synthetic:
    """More tokens than any test asks for: output_tokens caps it."""
    return Synthetic(1.0, 0.2, 1000)


class Phased(Synthetic):
    """Reports its own phases, as an NxD Inference style model does: one prefill, then one decode per token."""

    def __call__(self, x: Any) -> Iterator[int]:
        t = clock()
        for i in range(self.tokens):
            start = clock()
            t += self.prefill_ns if i == 0 else self.decode_ns
            sleep_until(t)
            record_phase("prefill" if i == 0 else "decode", (clock() - start) / 1e9)
            yield i


def phased() -> Phased:
    return Phased()


class Chunks:
    """Yields tensors of shape (1, 4): four tokens per item."""

    def __call__(self, x: Any) -> Iterator[Any]:
        import torch

        for _ in range(3):
            time.sleep(0.001)
            yield torch.zeros(1, 4, dtype=torch.int64)


class Silent:
    """A request that yields nothing."""

    def __call__(self, x: Any) -> Iterator[int]:
        time.sleep(0.001)
        return iter(())


class SometimesSilent:
    """Every other request yields nothing."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: Any) -> Iterator[int]:
        self.calls += 1
        time.sleep(0.001)
        return iter(() if self.calls % 2 else (1, 2, 3))


class Words:
    """Yields text chunks, as a TextIteratorStreamer does: not tokens."""

    def __call__(self, x: Any) -> Iterator[str]:
        yield "hello"


class NotAStream:
    """Returns a tensor: a model declared streaming=True whose call does not stream."""

    def __call__(self, x: Any) -> Any:
        return x


class Short:
    """Yields 4 tokens whatever it is asked: it cannot honour output_tokens=8."""

    def __call__(self, x: Any) -> Iterator[int]:
        for i in range(4):
            time.sleep(0.0005)
            yield i


_never = threading.Event()


class Hangs:
    """Yields one token, then waits forever: a streamer that never ends."""

    def __call__(self, x: Any) -> Iterator[int]:
        yield 1
        _never.wait()


class Plain:
    """Not a generator itself: generate_fn drives it."""

    def step(self) -> int:
        time.sleep(0.0005)
        return 7


def plain() -> Plain:
    return Plain()


def generate_plain(model: Plain, x: Any) -> Iterator[int]:
    for _ in range(5):
        yield model.step()


def tiny_gpt2() -> Any:
    """A 2-layer GPT-2 with random weights, built from a config: nothing is downloaded."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=500, n_positions=128, bos_token_id=0,
                        eos_token_id=0)
    return GPT2LMHeadModel(config).eval()
