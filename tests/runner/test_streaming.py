"""Generative models through ``benchmark``: every way a model streams, token counts, and what goes wrong.

Figures are checked against each other and against what the model was built to do (token counts,
which bound a request meets), never against absolute times.
"""

from __future__ import annotations

from typing import Any

import pytest

import pytest_neuronperf as npf
from pytest_neuronperf.errors import BenchmarkError
from tests import generative_models as gm

pytestmark = pytest.mark.usefixtures("no_leftover_children")

ONE: dict[str, Any] = {"n_models": 1, "workers_per_model": 1, "warmup": 2, "streaming": True}


def run(model: Any, inputs: Any = 0, **kwargs: Any) -> dict[str, Any]:
    [report] = npf.benchmark(model, inputs, **{**ONE, "duration": 0.6, **kwargs})  # type: ignore[list-item]
    return report


def test_an_iterator_model_is_timed_token_by_token() -> None:
    r = run(gm.synthetic, slo="ttft<=1s,tpot<=1s")
    assert r["status"] == "finished", r["reason"]
    assert r["generation"] == "streaming" and r["output_tokens"] == 8
    assert r["failed_requests"] == 0 and r["short_requests"] == 0
    assert 0 < r["ttft_ms_p50"] < r["e2e_ms_p50"] == r["latency_ms_p50"]
    assert r["tpot_ms_p50"] < r["ttft_ms_p50"]  # the generator's prefill is 4x its decode step
    assert r["itl_ms_p50"] <= r["itl_ms_p99"]
    # Every request yields 8 tokens: the window's tokens/s is about 8x its requests/s (cut requests add a few).
    assert r["requests_per_s"] == r["throughput_avg"]
    assert 7.5 <= r["output_tokens_per_s"] / r["requests_per_s"] <= 9.0
    assert r["goodput"] == r["throughput_avg"] and r["goodput_ratio"] == 1.0
    assert r["slo_met"] is None  # per-request bounds only: goodput is their answer
    [summary] = r["rounds"]
    for key in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "tokens_per_s", "goodput"):
        assert summary[key] > 0, key
    assert summary["ttft_p50_ci"][0] <= summary["ttft_p50_ms"] <= summary["ttft_p50_ci"][1]
    assert len(r["ttft_cdf_ms"]) == len(r["latency_cdf_ms"]) and r["itl_cdf_ms"]
    assert r["tokens_timeline"] and r["tokens_timeline"][0]


def test_a_bound_no_request_meets_gives_a_goodput_of_zero() -> None:
    r = run(gm.synthetic, slo="ttft<=1us")
    assert r["goodput"] == 0 and r["goodput_ratio"] == 0
    assert "goodput" not in r["rounds"][0] or r["rounds"][0]["goodput"] == 0


def test_output_tokens_caps_a_longer_stream_and_lists_are_taken_in_turn() -> None:
    r = run(gm.long_stream, output_tokens=[4, 12])
    assert r["status"] == "finished", r["reason"]
    assert r["generation"] == "output_tokens=4/12"
    assert 7.0 <= r["output_tokens"] <= 9.0 and r["short_requests"] == 0


def test_a_model_that_cannot_honour_output_tokens_reports_what_it_gave() -> None:
    r = run(gm.Short, output_tokens=8, multiprocess=False, model_name="short")
    assert r["status"] == "finished"
    assert r["output_tokens"] == 4 and r["short_requests"] > 0
    assert "fewer tokens than output_tokens asked" in r["reason"] and "cannot honour output_tokens" in r["reason"]


def test_items_holding_several_tokens_count_them_all() -> None:
    r = run(gm.Chunks, multiprocess=False)
    assert r["output_tokens"] == 12


def test_generate_fn_streams_a_model_that_does_not() -> None:
    r = run(gm.plain, generate_fn=gm.generate_plain)
    assert r["status"] == "finished", r["reason"]
    assert r["output_tokens"] == 5


def test_a_model_that_reports_its_phases_gets_prefill_and_decode_figures() -> None:
    r = run(gm.phased)
    assert r["prefill_ms_p50"] is not None and r["decode_ms_p50"] is not None
    assert r["decode_ms_p50"] < r["prefill_ms_p50"]
    plain = run(gm.synthetic)
    assert plain["prefill_ms_p50"] is None


def test_a_hugging_face_model_is_driven_through_generate_with_exact_lengths() -> None:
    pytest.importorskip("transformers")
    r = run(gm.tiny_gpt2, None, input_tokens=[8, 16], output_tokens=6, duration=1.0)
    assert r["status"] == "finished", r["reason"]
    assert r["output_tokens"] == 6 and r["short_requests"] == 0
    assert 8 <= r["input_tokens"] <= 16
    assert r["generation"] == "input_tokens=8/16 output_tokens=6"
    assert r["ttft_ms_p50"] > 0 and r["tpot_ms_p50"] > 0


def test_two_workers_of_a_copy_share_its_requests() -> None:
    r = run(gm.synthetic, workers_per_model=2)
    assert r["status"] == "finished", r["reason"]
    assert r["output_tokens"] == 8 and r["failed_requests"] == 0


def test_open_loop_requests_count_their_ttft_from_the_scheduled_arrival() -> None:
    r = run(gm.synthetic, request_rate=50, duration=1.0)
    assert r["status"] == "finished", r["reason"]
    assert r["offered_rps"] > 0 and r["output_tokens"] == 8
    # Latency counts from the arrival: a request's TTFT is part of its e2e, plus its wait.
    assert r["ttft_ms_p50"] < r["e2e_ms_p50"]
    assert r["wait_ms_p50"] is not None


def test_a_request_that_yields_nothing_is_a_failed_request() -> None:
    r = run(gm.SometimesSilent, multiprocess=False)
    assert r["status"] == "finished"
    assert r["failed_requests"] > 0 and r["output_tokens"] == 3
    assert "yielded no token: counted as failed" in r["reason"]


def test_a_model_that_never_yields_a_token_is_an_error_that_says_so() -> None:
    r = run(gm.Silent, multiprocess=False)
    assert r["status"] == "error"
    assert "yielded no token" in r["reason"]


@pytest.mark.parametrize(("model", "match"), [
    (gm.Words, "yielded str 'hello'; expected tokens"),
    (gm.NotAStream, "returned int 0, not a stream of tokens"),
])
def test_a_stream_of_no_tokens_fails_saying_what_was_expected(model: Any, match: str) -> None:
    with pytest.raises(BenchmarkError, match=match):
        run(model, multiprocess=False)


def test_a_stream_that_never_ends_is_bounded_by_the_timeout() -> None:
    with pytest.raises(BenchmarkError, match=r"did not finish running the timed window in time \(timeout=5s"):
        run(gm.Hangs, multiprocess=False, duration=0.3, timeout=5, warmup=0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"postprocess_fn": len}, r"^postprocess_fn: a streaming model's output is its stream"),
    ({"compile_mode": "default"}, r"^compile_mode: not supported with streaming=True"),
    ({"input_tokens": 8}, r"^input_tokens: the runner builds the prompt"),
])
def test_what_a_streaming_model_cannot_take_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run(gm.synthetic, **kwargs)


def test_input_tokens_need_a_vocabulary() -> None:
    with pytest.raises(BenchmarkError, match=r"input_tokens: .*has no config.vocab_size; give the prompt as inputs="):
        run(gm.Synthetic, None, input_tokens=8, multiprocess=False)


def test_time_between_tokens_bounds_only_a_streaming_model() -> None:
    with pytest.raises(ValueError, match=r"^slo: tpot<=5ms bounds the time between tokens.*add streaming=True"):
        npf.benchmark(gm.synthetic, 0, slo="tpot<=5ms", duration=0.2)
    with pytest.raises(ValueError, match=r"^slo: ttft<=5ms bounds the time to the first token"):
        npf.benchmark(gm.synthetic, 0, slo="ttft<=5ms", duration=0.2)


def test_a_generator_model_without_streaming_is_refused_saying_what_to_add() -> None:
    with pytest.raises(BenchmarkError, match=r"returned a generator, which does no work until it is read.*"
                                             r"needs streaming=True"):
        npf.benchmark(gm.synthetic, 0, n_models=1, workers_per_model=1, duration=0.2, multiprocess=False)
