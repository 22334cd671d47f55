"""Token timing on known timestamps: TTFT, TPOT, ITL, tokens in the window, failed and short requests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_neuronperf.runner.reports import good_requests
from pytest_neuronperf.runner.tokens import StreamError, TokenRecorder, TokenStats, count_tokens
from pytest_neuronperf.spec.generation import Generation, generation
from pytest_neuronperf.spec.slo import parse_slo

MS = 1_000_000


def recorder(stop_ms: float = 1000.0, bin_ms: float = 100.0) -> TokenRecorder:
    n_bins = int(stop_ms // bin_ms)
    return TokenRecorder(0, int(bin_ms * MS), n_bins, int(stop_ms * MS))


def test_ttft_counts_from_the_request_start_and_tpot_excludes_the_first_token() -> None:
    rec = recorder()
    # Start at 10 ms; first token at 30 ms; then one every 5 ms: 4 tokens.
    rec.request(10 * MS, [30 * MS, 35 * MS, 40 * MS, 45 * MS], [1, 1, 1, 1], 46 * MS, None, 16)
    s = rec.finish()
    assert s.requests == 1 and s.output_tokens == 4 and s.input_tokens == 16
    assert s.ttft.percentiles((50.0,)) == [20 * MS]
    assert s.tpot.percentiles((50.0,)) == [5 * MS]
    assert s.itl.count == 3 and s.itl.min_ns == s.itl.max_ns == 5 * MS
    [row] = s.requests_table().tolist()
    assert row == [46 * MS, 20 * MS, 5 * MS, 36 * MS, 4]


def test_tpot_divides_by_tokens_not_items_when_an_item_holds_several() -> None:
    rec = recorder()
    # Two items of 3 tokens: from the first item to the last, 10 ms for 5 more tokens.
    rec.request(0, [10 * MS, 20 * MS], [3, 3], 21 * MS, None, None)
    s = rec.finish()
    assert s.output_tokens == 6
    assert s.tpot.percentiles((50.0,)) == [2 * MS]


def test_a_single_token_request_has_a_ttft_and_no_tpot() -> None:
    rec = recorder()
    rec.request(0, [7 * MS], [1], 8 * MS, None, None)
    s = rec.finish()
    assert s.ttft.count == 1 and s.tpot.count == 0 and s.itl.count == 0
    assert s.requests_table()[0, 2] == -1


def test_a_request_without_tokens_is_failed_and_times_nothing() -> None:
    rec = recorder()
    rec.request(0, [], [], 5 * MS, None, None)
    s = rec.finish()
    assert s.failed == 1 and s.requests == 0 and s.ttft.count == 0


def test_tokens_after_the_window_do_not_count_and_a_cut_request_is_not_a_request() -> None:
    rec = recorder(stop_ms=100.0, bin_ms=50.0)
    # Cut by the window's end: its tokens inside still count towards tokens/s, the request does not.
    rec.request(0, [20 * MS, 60 * MS, 120 * MS], [1, 1, 1], None, None, None)
    s = rec.finish()
    assert s.requests == 0 and s.failed == 0
    assert s.token_bins.tolist() == [1, 1]


def test_short_requests_are_counted_against_what_they_asked() -> None:
    rec = recorder()
    rec.request(0, [MS, 2 * MS], [1, 1], 3 * MS, 8, None)
    rec.request(0, [MS] * 8, [1] * 8, 3 * MS, 8, None)
    s = rec.finish()
    assert s.short == 1 and s.asked_tokens == 16 and s.output_tokens == 10


def test_merged_stats_add_up() -> None:
    a, b = recorder(), recorder()
    a.request(0, [10 * MS, 15 * MS], [1, 1], 16 * MS, None, None)
    b.request(0, [20 * MS, 30 * MS], [1, 1], 31 * MS, None, None)
    total = TokenStats()
    total.merge(a.finish())
    total.merge(b.finish())
    assert total.requests == 2 and total.output_tokens == 4
    assert total.ttft.percentiles((0.0, 100.0)) == [10 * MS, 20 * MS]
    assert total.requests_table().shape == (2, 5)


def test_goodput_counts_requests_meeting_every_per_request_bound() -> None:
    rec = recorder()
    rec.request(0, [10 * MS, 12 * MS], [1, 1], 13 * MS, None, None)  # ttft 10, tpot 2: good
    rec.request(0, [50 * MS, 52 * MS], [1, 1], 53 * MS, None, None)  # ttft 50: misses
    rec.request(0, [10 * MS, 40 * MS], [1, 1], 41 * MS, None, None)  # tpot 30: misses
    rec.request(0, [10 * MS], [1], 11 * MS, None, None)  # one token: no tpot to bound
    good = good_requests(rec.finish(), parse_slo("ttft<=20ms,tpot<=10ms"))
    assert good is not None and good.tolist() == [True, False, False, True]
    assert good_requests(rec.stats, parse_slo("p99<=20ms")) is None


@pytest.mark.parametrize(("item", "tokens"), [
    (5, 1), (np.int64(5), 1), ([1, 2, 3], 3), ((1, 2), 2), ([[1, 2], [3, 4]], 2), ([], 0),
    (torch.tensor(3), 1), (torch.zeros(4, dtype=torch.int64), 4), (torch.zeros(2, 5), 5), (np.zeros((1, 3)), 3),
])
def test_items_count_as_their_last_dimension(item: object, tokens: int) -> None:
    assert count_tokens(item) == tokens


@pytest.mark.parametrize("item", ["hello", b"x", 1.5, None, True, {"a": 1}, ["a", "b"], object()])
def test_anything_but_tokens_is_refused_saying_what_was_expected(item: object) -> None:
    with pytest.raises(StreamError, match=r"streaming=True: the model's stream yielded .*expected tokens: an int"):
        count_tokens(item)


def test_text_chunks_are_refused_with_the_way_to_stream_tokens() -> None:
    with pytest.raises(StreamError, match=r"text chunks .* are not tokens"):
        count_tokens("hello")


def test_lengths_cycle_per_request_and_name_the_shape() -> None:
    g = generation(True, [16, 32], 8, None, must_pickle=False)
    assert isinstance(g, Generation)
    assert [g.output_of(i) for i in range(4)] == [16, 32, 16, 32]
    assert g.input_of(3) == 8
    assert g.text() == "input_tokens=8 output_tokens=16/32"
    assert Generation().text() == "streaming"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"output_tokens": 0}, r"^output_tokens: expected a whole number of tokens >= 1"),
    ({"output_tokens": []}, r"^output_tokens: the list is empty"),
    ({"input_tokens": 2.5}, r"^input_tokens: expected a whole number"),
    ({"output_tokens": [8, True]}, r"^output_tokens: expected a whole number"),
    ({"generate_fn": 3}, r"generate_fn"),
])
def test_bad_lengths_are_refused_naming_the_parameter(kwargs: dict[str, object], match: str) -> None:
    args = {"output_tokens": None, "input_tokens": None, "generate_fn": None, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        generation(True, args["output_tokens"], args["input_tokens"], args["generate_fn"], must_pickle=False)


@pytest.mark.parametrize("name", ["output_tokens", "input_tokens"])
def test_generative_parameters_without_streaming_are_refused(name: str) -> None:
    args: dict[str, object] = {"output_tokens": None, "input_tokens": None, **{name: 8}}
    with pytest.raises(ValueError, match=rf"^{name}: applies to a generative model.*add streaming=True"):
        generation(False, args["output_tokens"], args["input_tokens"], None, must_pickle=False)


def test_streaming_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match=r"^streaming: expected True or False"):
        generation("yes", None, None, None, must_pickle=False)
