"""Generative (streaming) models: every token timed, on a synthetic generator and a tiny GPT-2.

    python examples/generative.py [DURATION_SECONDS]

The synthetic generator's first token comes 20 ms after a request starts and each next one 5 ms
later, 32 in all, so its TTFT, TPOT and end-to-end latency (20 + 31 * 5 = 175 ms) are known in
advance; with two workers the output tokens/s doubles while every latency stays put. The tiny GPT-2
runs through Hugging Face ``generate``: the runner builds a 16-token prompt, asks for exactly 32 new
tokens, and counts the requests that meet a per-request objective (goodput).
"""

from __future__ import annotations

import sys

import torch
from generative_models import synthetic, tiny_gpt2

import pytest_neuronperf as npf

COLS = ["workers_per_model", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "e2e_ms_p50",
        "output_tokens_per_s", "requests_per_s", "status"]


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    # The synthetic generator ignores its prompt, but a streaming call is given one all the same.
    prompt = torch.zeros(1, 8, dtype=torch.int64)
    streamed = npf.cpu.benchmark(synthetic, prompt, streaming=True, output_tokens=32, n_models=1,
                                 workers_per_model=[1, 2], duration=duration)
    npf.print_reports(streamed, cols=COLS)
    generated = npf.cpu.benchmark(tiny_gpt2, None, streaming=True, input_tokens=16, output_tokens=32, n_models=1,
                                  workers_per_model=1, duration=duration, slo="ttft<=50ms,tpot<=20ms")
    npf.print_reports(generated, cols=[*COLS[:-1], "goodput", "goodput_ratio", "status"])
    print("wrote", npf.write_json(streamed + generated, "generative_results.json"))


if __name__ == "__main__":  # model copies import this module again; the guard keeps them from re-running it
    main()
