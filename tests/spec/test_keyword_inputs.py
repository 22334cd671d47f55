"""Keyword inputs: a dict or BatchEncoding is the model's keyword arguments, everywhere inputs go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import pytest_neuronperf as npf
from pytest_neuronperf.errors import BenchmarkError
from pytest_neuronperf.spec.inputs import as_call, is_dataset, pair_inputs
from tests import kinds_models as km

ROOT = Path(__file__).resolve().parents[2]
ONE = {"duration": 0.2, "warmup": 2, "n_models": 1, "workers_per_model": 1}


def test_a_mapping_is_one_call_with_keyword_arguments_and_its_first_tensor_gives_the_batch() -> None:
    inputs = {"input_ids": torch.zeros(4, 8, dtype=torch.long), "attention_mask": torch.ones(4, 8)}
    (mi,) = pair_inputs(inputs, None)
    assert mi.batch_size == 4 and mi.args == () and list(mi.kwargs) == ["input_ids", "attention_mask"]


def test_a_batch_encoding_is_a_mapping_not_a_dataset() -> None:
    encoding = km.batch_encoding(3)
    assert not isinstance(encoding, dict) and not is_dataset(encoding)
    (mi,) = pair_inputs(encoding, None)
    assert mi.batch_size == 3 and type(mi.kwargs) is dict and set(mi.kwargs) == {"input_ids", "attention_mask"}


def test_a_list_of_mappings_is_one_call_per_batch_size() -> None:
    calls = pair_inputs([km.token_batch(1), km.token_batch(8)], None)
    assert [mi.batch_size for mi in calls] == [1, 8] and all(mi.listed == 2 for mi in calls)


def test_keys_must_be_strings() -> None:
    with pytest.raises(TypeError, match="inputs: a mapping is the model's keyword arguments, so its keys must be"):
        as_call({0: torch.zeros(1)})


def test_a_transformers_model_is_called_with_keyword_tensors() -> None:
    (r,) = npf.benchmark(km.distilbert, km.token_batch(2), **ONE)
    assert r["status"] == "finished" and r["batch_size"] == 2 and r["total_infs"] > 0


def test_a_batch_encoding_runs_on_a_keyword_model_and_the_batch_is_its_leading_dimension() -> None:
    (r,) = npf.benchmark(km.KeywordOnly, km.batch_encoding(4), **ONE)
    assert r["status"] == "finished" and r["batch_size"] == 4


def test_a_dataset_of_dicts_calls_the_model_with_each_items_keywords() -> None:
    (r,) = npf.benchmark(km.KeywordOnly, km.TokenDataset(), **ONE)
    assert r["status"] == "finished" and r["total_infs"] == len(km.TokenDataset())


def test_preprocess_may_return_a_batch_encoding_and_postprocess_gets_the_models_output() -> None:
    (r,) = npf.benchmark(km.distilbert, "some text to tokenize", batch_sizes=1, preprocess_fn=km.tokenize,
                         postprocess_fn=km.last_hidden_argmax, **ONE)
    assert r["status"] == "finished" and r["preprocess_avg_ms"] > 0 and r["postprocess_avg_ms"] > 0


def test_a_list_meant_as_the_arguments_of_one_call_says_to_pass_a_tuple() -> None:
    with pytest.raises(BenchmarkError) as info:
        npf.benchmark(km.TwoArgs, [torch.randn(2, 4), torch.randn(2, 4)], **ONE)
    message = str(info.value)
    assert "missing 1 required positional argument: 'b'" in message
    assert ("inputs is a list: a list holds one input per batch size, so each element is one batch size's input"
            in message)
    assert "for several positional arguments pass a tuple, inputs=(a, b)" in message
    # The tuple it should have been works.
    (r,) = npf.benchmark(km.TwoArgs, (torch.randn(2, 4), torch.randn(2, 4)), **ONE)
    assert r["status"] == "finished"


def test_a_missing_argument_without_a_list_gets_no_list_hint() -> None:
    with pytest.raises(BenchmarkError) as info:
        npf.benchmark(km.TwoArgs, torch.randn(2, 4), **ONE)
    assert "missing 1 required positional argument" in str(info.value)
    assert "inputs is a list" not in str(info.value)


@pytest.mark.slow
def test_the_marker_takes_a_dict_for_a_distilbert_from_its_config(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    pytester.makepyfile(test_bert="""
        import pytest
        from tests.kinds_models import distilbert, token_batch

        @pytest.mark.neuron_benchmark(model=distilbert, inputs=token_batch(2), n_models=1, workers_per_model=1,
                                      warmup=2)
        def test_bert_marker():
            pass

        def test_bert_fixture(npf_bench):
            result = npf_bench(distilbert, token_batch(4), n_models=1, workers_per_model=1, warmup=2)
            assert [r["batch_size"] for r in result.reports] == [4]
    """)
    result = pytester.runpytest_subprocess("--npf-duration=0.2", "--npf-rounds=1", "--npf-max-rounds=1",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_compile_refuses_keyword_inputs_and_says_to_pass_a_tuple(tmp_path: Path) -> None:
    from pytest_neuronperf.compile.parent import compile as npf_compile

    with pytest.raises(ValueError, match=r"inputs: compile traces the model with positional example inputs, so a "
                                         r"dict of keyword inputs cannot be compiled; pass a tuple"):
        npf_compile(km.KeywordOnly, km.token_batch(1), models_dir=tmp_path, compile_fn=km.trace_on_cpu)
