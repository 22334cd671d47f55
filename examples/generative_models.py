"""Generative (streaming) models defined in code (no downloads), shared by the examples.

The classes and factories live at module top level, and the factories take no arguments, so that
every model-copy process can import them by name and build its own copy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any


class Synthetic:
    """A generator with a known shape: the first token after ``prefill_ms``, each next one ``decode_ms`` later.

    Each token is due at a time fixed from the request's start, and the generator sleeps until then
    rather than computing: a sleeping worker releases the GIL, so several workers in one copy do not
    slow each other down, and the lateness of one token does not push back the ones after it, so
    the figures can be checked against ``prefill_ms`` and ``decode_ms`` exactly.
    """

    def __init__(self, prefill_ms: float = 20.0, decode_ms: float = 5.0, tokens: int = 32) -> None:
        self.prefill_ns = int(prefill_ms * 1e6)
        self.decode_ns = int(decode_ms * 1e6)
        self.tokens = tokens

    def __call__(self, x: Any = None) -> Iterator[int]:
        due = time.perf_counter_ns()
        for i in range(self.tokens):
            due += self.prefill_ns if i == 0 else self.decode_ns
            left = due - time.perf_counter_ns()
            if left > 0:
                time.sleep(left / 1e9)
            yield i


def synthetic() -> Synthetic:
    """Prefill 20 ms, 5 ms per token, 32 tokens: a request lasts 20 + 31 * 5 = 175 ms."""
    return Synthetic(20.0, 5.0, 32)


def tiny_gpt2() -> Any:
    """A 2-layer GPT-2 with random weights: a real Hugging Face ``generate`` loop, small enough for any CPU.

    Built from a config rather than downloaded, so it runs offline; its weights do not matter, since
    the benchmark asks for a fixed number of new tokens (the end-of-sequence token does not end it).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=1000, n_positions=256, bos_token_id=0,
                        eos_token_id=0)
    return GPT2LMHeadModel(config).eval()  # type: ignore[no-untyped-call]
